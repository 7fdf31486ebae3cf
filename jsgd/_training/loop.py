"""One training step, written once: gradient, update, apply.

:meth:`jsgd.SGD.minimize`, :func:`jsgd.make_train_step` and :func:`jsgd.sweep`
all take their steps through :func:`gradient_step`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import optax

from jsgd._sparse.apply_updates import apply_updates


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
) -> tuple[optax.Params, optax.OptState, Any]:
    """``(params, opt_state, value)`` after one step on ``loss_fn(params, *batch)``.

    The gradient of ``loss_fn`` (``value`` is its loss, or ``(loss, aux)``
    with ``has_aux``), then ``optimizer.update`` given the parameters, then
    :func:`jsgd.apply_updates`. With ``axis_name`` (under ``pmap`` or
    ``shard_map``) the gradient and the loss are averaged over that axis
    first; ``aux`` stays per device, since it may hold integers or
    per-example data.
    """
    local = params if axis_name is None else _per_device(params, axis_name)
    value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(local, *batch)
    if axis_name is not None:
        loss = jax.lax.pmean(value[0] if has_aux else value, axis_name)
        value = (loss, value[1]) if has_aux else loss
        grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), opt_state, value
