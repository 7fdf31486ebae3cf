"""``apply_updates``: ``optax.apply_updates`` that also scatters row updates."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jsgd._sparse.indexed_slices import IndexedSlices, check_slices
from jsgd._sparse.rows import add_rows


def apply_update(param: Any, update: Any, path: Any = ()) -> Any:
    """One leaf of :func:`apply_updates`, at key ``path`` (for the errors)."""
    if param is None:
        return None
    if update is None:  # a frozen parameter: jsgd's transforms keep None
        return param
    param = jnp.asarray(param)
    if isinstance(update, IndexedSlices):
        check_slices(update)
        if update.dense_shape != param.shape:
            raise ValueError(
                "jsgd.apply_updates: the IndexedSlices update at "
                f"{jax.tree_util.keystr(path) or 'the root'} has dense_shape "
                f"{update.dense_shape}, its parameter the shape {param.shape}."
            )
        return add_rows(param, update)
    shape = getattr(update, "shape", None)
    if shape is not None and tuple(shape) != param.shape:
        # optax would broadcast: a [3, 1] update would make a [3] parameter [3, 3].
        where = jax.tree_util.keystr(path) or "the root"
        raise ValueError(
            f"jsgd.apply_updates: the update at {where} has "
            f"shape {tuple(shape)}, its parameter the shape {param.shape}."
        )
    return jnp.asarray(param + update).astype(param.dtype)


def apply_updates(params: optax.Params, updates: optax.Updates) -> optax.Params:
    """``params + updates``, with :class:`jsgd.IndexedSlices` rows scatter-added.

    A drop-in for ``optax.apply_updates``: for a dense leaf
    ``w = (w + u).astype(w.dtype)``, exactly optax's. For an
    ``IndexedSlices`` leaf, ``w[indices] += values`` (duplicate indices add
    up; padding rows are dropped): a float32 or wider table adds the values
    cast to its dtype one by one, as tf.keras's scatter-add; a narrower one
    gets each row's float32 sum, added in float32 and rounded once, as the
    dense step rounds. It writes only ``k`` rows: under ``jit`` with the
    parameters donated (``donate_argnums``) the table is updated in place
    (except a bfloat16 table on the CPU, where XLA converts the whole table
    for the scatter). A ``None`` parameter
    stays ``None``; a ``None`` update leaves its parameter unchanged.

    Args:
      params: the parameters, a pytree of arrays.
      updates: a tree of the same structure whose leaves are arrays,
        ``IndexedSlices`` (for parameters of their ``dense_shape``) or ``None``.

    Returns:
      The updated parameters, each leaf in its own dtype.

    Raises:
      ValueError: if an ``IndexedSlices`` does not fit its parameter, or the
        trees do not match.
      TypeError: if an ``IndexedSlices`` has non-integer indices.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> params = {"table": jnp.zeros((4, 2)), "bias": jnp.zeros(2)}
      >>> updates = {
      ...     "table": jsgd.IndexedSlices(
      ...         jnp.ones((3, 2)), jnp.array([1, 1, 3]), (4, 2)),
      ...     "bias": jnp.ones(2)}
      >>> new = jsgd.apply_updates(params, updates)
      >>> new["table"]
      Array([[0., 0.],
             [2., 2.],
             [0., 0.],
             [1., 1.]], dtype=float32)
    """
    return jax.tree_util.tree_map_with_path(
        lambda path, p, u: apply_update(p, u, path),
        params,
        updates,
        is_leaf=lambda x: x is None,
    )
