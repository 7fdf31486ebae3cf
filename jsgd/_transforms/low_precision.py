"""What :func:`jsgd.kahan_summation` and :func:`jsgd.stochastic_rounding` share.

Both wrap a transformation and, for each low-precision parameter leaf,
compute the parameter they want next (``target``) from the float32 sum of
the parameter and the wrapped step's update. They return the update
``target - p`` in the update's own dtype, and compute ``landed``, the
parameter ``optax.apply_updates`` (or :func:`jsgd.apply_updates`) will make
of it: the same expression, so the same bits. ``landed`` is ``target``
whenever ``target - p`` fits the update's dtype, which for bfloat16 holds
whenever ``target`` is within a factor of two of ``p`` (Sterbenz's lemma):
every step but one that halves, doubles or zeroes a parameter. Kahan's
compensation is computed from ``landed``, so it stays true even then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jsgd._common import tree as _tree
from jsgd._sparse.indexed_slices import IndexedSlices, coalesce
from jsgd._sparse.rows import gather_rows, scatter_rows


@dataclasses.dataclass(frozen=True)
class LeafRule:
    """A wrapper's rule for one low-precision leaf, on dense arrays.

    Attributes:
      target: ``target(p, u, s, key, dtype) -> new``: the parameter wanted
        next, a float32 array of values ``dtype`` (the parameter's) holds
        (see :func:`rounded`), from the parameter ``p`` and update ``u`` in
        float32 (duplicate rows summed), the leaf's buffer ``s`` (or
        ``None``) and its PRNG key (or ``None``).
      settle: ``settle(p, landed, u, s) -> s``: the new buffer once the
        update has landed on ``landed`` (float32, as ``p``; ``None``: the
        rule keeps none).
    """

    target: Callable[..., jax.Array]
    settle: Callable[..., jax.Array] | None = None


def is_low_precision(leaf: Any) -> bool:
    """Whether a parameter leaf is a float narrower than float32 (bfloat16, float16)."""
    dtype = jnp.result_type(leaf)
    return bool(jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4)


def low_precision_like(params: Any, make: Callable[[jax.Array], Any]) -> Any:
    """``make(p)`` for each low-precision leaf of ``params``, ``None`` for the rest."""
    return jax.tree.map(lambda p: make(p) if is_low_precision(p) else None, params)


def rounded(x: jax.Array, dtype: Any) -> jax.Array:
    """``x`` (float32) rounded to nearest-even in ``dtype``, kept as float32.

    ``x.astype(dtype).astype(float32)`` may skip the rounding: XLA, allowed
    excess precision (its default), drops such a convert pair inside a
    fusion, and a compensation computed from the unrounded value is wrong.
    ``reduce_precision`` is never dropped; it flushes the subnormals of a
    narrower exponent range (float16's) to zero, so those round here on
    their fixed grid.
    """
    info = jnp.finfo(dtype)
    near = jax.lax.reduce_precision(
        x, exponent_bits=info.nexp, mantissa_bits=info.nmant
    )
    if info.nexp >= jnp.finfo(jnp.float32).nexp:
        return near
    scale = jnp.float32(1 / float(info.smallest_subnormal))  # float16: 2**24
    subnormal = jnp.round(x * scale) / scale  # half to even, exact in float32
    return jnp.where(jnp.abs(x) < float(info.smallest_normal), subnormal, near)


def _step(rule: LeafRule, p: jax.Array, u: jax.Array, s: Any, key: Any, dtype=None):
    """``(update, new_buffer)``: the update in ``dtype`` (default ``u``'s)."""
    u32 = u.astype(jnp.float32)
    p32 = p.astype(jnp.float32)
    target = rule.target(p32, u32, s, key, p.dtype)
    update_dtype = jnp.dtype(u.dtype if dtype is None else dtype)
    update = target - p32
    if update_dtype.itemsize < 4:
        update = rounded(update, update_dtype)
    if rule.settle is None:
        return update.astype(update_dtype), None
    # What apply_updates computes, p + update rounded once to p's dtype.
    landed = rounded(p32 + update, p.dtype)
    return update.astype(update_dtype), rule.settle(p32, landed, u32, s)


def _rows_step(rule: LeafRule, p: jax.Array, u: IndexedSlices, s: Any, key: Any):
    """The rule on the touched rows only; the other rows' buffer is untouched.

    Duplicate rows are summed in float32 (:func:`coalesce`) and reach the
    rule so; the update rows come back in the update's dtype.
    """
    rows = coalesce(u, keep_wide=True)
    p_rows = gather_rows(p, rows.indices)
    s_rows = None if s is None else gather_rows(s, rows.indices)
    values, new_rows = _step(rule, p_rows, rows.values, s_rows, key, u.dtype)
    update = IndexedSlices(values, rows.indices, u.dense_shape)
    if s is None or new_rows is None:
        return update, None
    return update, scatter_rows(s, rows.indices, new_rows)


def map_low_precision(
    rule: LeafRule,
    updates: Any,
    buffers: Any,
    params: Any,
    keys: Any = None,
) -> tuple[Any, Any]:
    """Applies ``rule`` to each low-precision leaf; other leaves pass through.

    Args:
      rule: the per-leaf rule (see :data:`LeafRule`).
      updates: the wrapped step's updates (arrays, ``IndexedSlices``, ``None``).
      buffers: per-parameter state, ``None`` at the leaves that are not low
        precision (or everywhere, for a rule without state).
      params: the parameters.
      keys: a function ``index -> key`` giving the PRNG key of the leaf at
        that position of the flattened updates, or ``None``.

    Returns:
      ``(updates, buffers)``: each low-precision leaf's update ``target - p``
      in the update's dtype (an ``IndexedSlices`` of the touched rows for a
      row update), and the new buffers.
    """
    _tree.require_params(params)
    _tree.check_matching(updates, params, "parameters")
    treedef = jax.tree.structure(updates, is_leaf=_tree.is_update_leaf)
    columns = [
        treedef.flatten_up_to(updates),
        treedef.flatten_up_to(params),
        [None] * treedef.num_leaves
        if buffers is None
        else treedef.flatten_up_to(buffers),
    ]
    out_updates, out_buffers = [], []
    for index, (u, p, s) in enumerate(zip(*columns, strict=True)):
        if u is None or not is_low_precision(p):
            out_updates.append(u)
            out_buffers.append(s)
            continue
        key = None if keys is None else keys(index)
        if isinstance(u, IndexedSlices):
            new_u, new_s = _rows_step(rule, jnp.asarray(p), u, s, key)
        else:
            new_u, new_s = _step(rule, jnp.asarray(p), u, s, key)
        out_updates.append(new_u)
        out_buffers.append(new_s)
    new_buffers = None if buffers is None else treedef.unflatten(out_buffers)
    return treedef.unflatten(out_updates), new_buffers
