"""Kahan-compensated updates of low-precision parameters (no float32 master copy)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import takes_indexed_slices
from jsgd._transforms import low_precision as _low


class KahanSummationState(NamedTuple):
    """State of :func:`jsgd.kahan_summation`.

    Attributes:
      compensation: per low-precision parameter leaf, the part of the
        updates its rounding has lost so far, in ``compensation_dtype``;
        ``None`` at float32 and wider leaves.
      inner_state: the wrapped transformation's state.
    """

    compensation: optax.Params
    inner_state: optax.OptState


def _with_lost(p: jax.Array, u: jax.Array, c: jax.Array, key: Any, dtype: Any):
    del key
    return _low.rounded(p + (u - c.astype(jnp.float32)), dtype)


def _lost(p: jax.Array, landed: jax.Array, u: jax.Array, c: jax.Array) -> jax.Array:
    y = u - c.astype(jnp.float32)  # the update plus what earlier steps lost
    return ((landed - p) - y).astype(c.dtype)  # landed - p is exact


_KAHAN = _low.LeafRule(target=_with_lost, settle=_lost)


@takes_indexed_slices
def kahan_summation(
    transformation: optax.GradientTransformation,
    compensation_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Adds ``transformation``'s updates to low-precision parameters by Kahan summation.

    A bfloat16 parameter near 1.0 does not move while ``|update| < 2**-9``
    (half its ulp): plain low-precision updates lose them all. Kahan
    summation keeps what each addition loses in a compensation buffer ``c``
    and adds it back on the next step. For each bfloat16 or float16
    parameter leaf ``p``, with ``u`` the wrapped transformation's update::

        y = u - c                          (float32)
        p_new = round(p + y)               (to p's dtype, from float32)
        c = (p_new - p) - y                (exact in float32; stored rounded)

    so that after ``n`` steps ``p_n = p_0 + (u_1 + ... + u_n) + c_n`` up to
    the rounding of ``c`` to ``compensation_dtype``, which is all that
    drifts: at most half an ulp of ``c`` (about ``2**-9`` of an ulp of ``p``
    in bfloat16) per step, systematically only when the same update repeats;
    with a float32 compensation the sum stays within one ulp of the exact
    one however many steps (``docs/bf16.md`` has the measurements).

    The update this returns is ``p_new - p`` in the update's dtype, which
    ``optax.apply_updates`` and :func:`jsgd.apply_updates` turn into exactly
    ``p_new`` whenever ``p_new`` is within a factor of two of ``p``; in the
    rare step that halves, doubles or zeroes a parameter the difference may
    not fit the update's dtype, and ``c`` is computed from the parameter the
    update lands on (the same expression ``apply_updates`` evaluates), so
    the compensation stays exact even then. Float32 and wider leaves pass
    through untouched and keep no buffer; a ``None`` update is left alone.
    For a :class:`jsgd.IndexedSlices` update only the touched rows are
    computed (duplicates summed in float32) and only their compensation
    changes; apply it with :func:`jsgd.apply_updates`.

    The compensation costs ``compensation_dtype``'s bytes per low-precision
    parameter: 2 for a bfloat16 parameter by default, 4 with float32. Use
    it as the last step: a transform after it changes the updates whose
    rounding it compensated.

    Args:
      transformation: any gradient transformation (an optimizer).
      compensation_dtype: the float dtype of the compensation buffers
        (default: each parameter's own, bfloat16 for bfloat16).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a
      :class:`jsgd.KahanSummationState`; ``update`` needs ``params``.

    Raises:
      TypeError: for a ``compensation_dtype`` that is not a float dtype.
      ValueError: if ``update`` is called without ``params``.

    Examples:
      >>> import jax.numpy as jnp, optax, jsgd
      >>> params = jnp.ones(3, jnp.bfloat16)
      >>> tx = jsgd.kahan_summation(optax.sgd(1e-3))  # steps of 1e-3 < 2**-9
      >>> state = tx.init(params)
      >>> for _ in range(100):
      ...     updates, state = tx.update(-jnp.ones(3, jnp.bfloat16), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> params  # 1 + 100 * 1e-3, to bfloat16's ulp of 2**-7
      Array([1.10156, 1.10156, 1.10156], dtype=bfloat16)
    """
    dtype = None
    if compensation_dtype is not None:
        dtype = _validation.check_float_dtype("compensation_dtype", compensation_dtype)
    inner = optax.with_extra_args_support(transformation)

    def init_fn(params: optax.Params) -> KahanSummationState:
        compensation = _low.low_precision_like(
            params, lambda p: jnp.zeros(jnp.shape(p), dtype or jnp.result_type(p))
        )
        return KahanSummationState(compensation, inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        _tree.check_state(state, KahanSummationState, "jsgd.kahan_summation")
        _tree.require_params(params)
        updates, inner_state = inner.update(
            updates, state.inner_state, params, **extra_args
        )
        updates, compensation = _low.map_low_precision(
            _KAHAN, updates, state.compensation, params
        )
        return updates, KahanSummationState(compensation, inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
