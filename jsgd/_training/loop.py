"""One training step, written once: gradient, update, apply.

:meth:`jsgd.SGD.minimize`, :func:`jsgd.make_train_step` and :func:`jsgd.sweep`
all take their steps through :func:`gradient_step`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jsgd._sparse.apply_updates import apply_updates
from jsgd._sparse.indexed_slices import IndexedSlices, padded_indices
from jsgd._training.fused import apply_gradients

RowTables = Mapping[str, int]
"""``{key of an embedding table in params: position of its indices in the batch}``."""


def check_row_tables(
    row_tables: Any, axis_name: Any = None
) -> tuple[tuple[str, int], ...]:
    """``row_tables`` as a sorted tuple of items, or a clear error."""
    if row_tables is None:
        return ()
    if not isinstance(row_tables, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in row_tables.items()
    ):
        raise TypeError(
            "`row_tables` must map a table's key in params (a str) to the "
            "position of its indices in the batch (an int). Received: "
            f"row_tables={row_tables!r}"
        )
    if row_tables and axis_name is not None:
        raise ValueError(
            "`row_tables` with `axis_name` is not supported: each device's rows "
            "name different indices, so their gradients cannot be averaged with "
            "lax.pmean. Use jit over a sharded batch, or dense gradients."
        )
    return tuple(sorted(row_tables.items()))


def _value_and_row_grads(
    loss_fn: Callable[..., Any],
    params: Any,
    batch: tuple[Any, ...],
    row_tables: tuple[tuple[str, int], ...],
    has_aux: bool,
) -> tuple[Any, Any]:
    """The loss and its gradient, embedding tables' as :class:`jsgd.IndexedSlices`.

    ``loss_fn`` sees each table of ``row_tables`` replaced by its gathered
    rows ``table[indices]`` (a padding index reads zeros), and the gradient
    of those rows becomes the table's ``IndexedSlices``: what
    :func:`jsgd.value_and_row_grad` does for one table.
    """
    if type(params) is not dict:
        raise TypeError(
            "`row_tables` needs params to be a dict whose keys name the tables. "
            f"Received params of type {type(params).__name__}"
        )
    gathered = dict(params)
    indices = {}
    for key, position in row_tables:
        if key not in params:
            raise KeyError(f"`row_tables` names {key!r}, which params has not")
        if not 0 <= position < len(batch):
            raise IndexError(
                f"`row_tables[{key!r}]` = {position}, but the batch has "
                f"{len(batch)} arguments"
            )
        ids = jnp.asarray(batch[position])
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(
                f"The indices of {key!r} (batch argument {position}) must be "
                f"integers. Received dtype {ids.dtype}"
            )
        table = params[key]
        indices[key] = ids
        gathered[key] = table.at[padded_indices(ids, table.shape[0])].get(
            mode="fill", fill_value=0
        )
    value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(gathered, *batch)
    grads = dict(grads)
    for key, ids in indices.items():
        table = params[key]
        grads[key] = IndexedSlices(
            grads[key].reshape((-1, *table.shape[1:])), ids.reshape(-1), table.shape
        )
    return value, grads


def _per_device(params: Any, axis_name: Any) -> Any:
    """``params`` typed as varying over ``axis_name`` (one device's own copy).

    Inside ``shard_map`` (``check_vma=True``, the default) the gradient of a
    value replicated over an axis comes back already *summed* over it; of a
    per-device copy, it is the local gradient, which ``pmean`` then averages
    exactly as under ``pmap`` or ``check_vma=False``. Leaves already varying
    (under ``pmap``, or split over the axis) are left as they are.
    """
    pcast = getattr(jax.lax, "pcast", None)
    if pcast is None:  # pragma: no cover - JAX without varying-axis types
        return params

    def leaf(x: Any) -> Any:
        try:
            return pcast(x, axis_name, to="varying")
        except ValueError:  # already varying over axis_name
            return x

    return jax.tree.map(leaf, params)


def gradient_step(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    params: optax.Params,
    opt_state: optax.OptState,
    *batch: Any,
    has_aux: bool = False,
    axis_name: Hashable | Sequence[Hashable] | None = None,
    row_tables: tuple[tuple[str, int], ...] = (),
    fuse: bool = False,
) -> tuple[optax.Params, optax.OptState, Any]:
    """``(params, opt_state, value)`` after one step on ``loss_fn(params, *batch)``.

    The gradient of ``loss_fn`` (``value`` is its loss, or ``(loss, aux)``
    with ``has_aux``), then ``optimizer.update`` given the parameters, then
    :func:`jsgd.apply_updates`. With ``axis_name`` (under ``pmap`` or
    ``shard_map``) the gradient and the loss are averaged over that axis
    first; ``aux`` stays per device, since it may hold integers or
    per-example data. With ``row_tables`` (checked by
    :func:`check_row_tables`) the tables' gradients are row gradients
    (:func:`_value_and_row_grads`). With ``fuse`` the update and its
    application are :func:`jsgd.apply_gradients` (one device only).
    """
    local = params if axis_name is None else _per_device(params, axis_name)
    if row_tables:
        value, grads = _value_and_row_grads(loss_fn, local, batch, row_tables, has_aux)
    else:
        value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(local, *batch)
    if axis_name is not None:
        loss = jax.lax.pmean(value[0] if has_aux else value, axis_name)
        value = (loss, value[1]) if has_aux else loss
        grads = jax.lax.pmean(grads, axis_name)
    if fuse:
        params, opt_state = apply_gradients(optimizer, grads, opt_state, params)
        return params, opt_state, value
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), opt_state, value
