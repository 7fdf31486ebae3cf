"""Gradient clipping: Keras's ``clipvalue``, ``clipnorm`` and ``global_clipnorm``."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import takes_indexed_slices


def _clip_leaf_by_value(g: jax.Array, c: Any) -> jax.Array:
    if jnp.iscomplexobj(g):
        return jax.lax.complex(
            _clip_leaf_by_value(jnp.real(g), c), _clip_leaf_by_value(jnp.imag(g), c)
        )
    c = _tree.hyperparameter_as(c, g.dtype)
    return jnp.clip(g, -c, c)


@takes_indexed_slices
def clip_by_value(
    clipvalue: jax.typing.ArrayLike,
) -> optax.GradientTransformationExtraArgs:
    """Clips every element to ``[-clipvalue, clipvalue]`` (Keras ``clipvalue``).

    ``u = clip(g, -c, c)`` elementwise; NaN stays NaN. Complex leaves have their
    real and imaginary parts clipped separately. State: ``optax.EmptyState``.

    Args:
      clipvalue: the bound ``c > 0`` (may be a traced 0-d array).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: if a concrete ``clipvalue`` is not > 0.
      TypeError: if ``clipvalue`` is a bool, complex, string or non-scalar.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.clip_by_value(1.0)
      >>> tx.update(jnp.array([-3.0, 0.5, 2.0]), tx.init(None))[0]
      Array([-1. ,  0.5,  1. ], dtype=float32)
    """
    _validation.check_positive("clipvalue", clipvalue)
    return _tree.stateless_transform(
        lambda updates, _: _tree.map_updates(
            lambda g: _clip_leaf_by_value(g, clipvalue), updates
        ),
        "clip_by_value",
    )


@jax.custom_jvp
def _safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt`` with a finite gradient at 0 (for meta-learning through clips).

    Zero and NaN pass through unchanged. The value is a plain ``sqrt`` so that
    every later use depends on one (expensive, hence never duplicated) op:
    a ``where`` on ``x`` here made XLA copy the N-term sum of squares into
    each of the N per-leaf fusions (O(N^2) compile time).
    """
    return jnp.sqrt(x)


@_safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = jnp.sqrt(x)
    positive = x > 0
    return y, jnp.where(positive, t / (2 * jnp.where(positive, y, 1)), t)


def clip_scale(norm: jax.Array, c: Any) -> jax.Array:
    """``c / max(norm, c)``, or NaN when ``norm`` is not finite (Keras 3).

    Written as ``c / norm if norm > c else 1/1`` so that ``c = inf`` (never
    clip) gives 1 rather than ``inf / inf``, and so that the gradient at
    ``norm = 0`` is finite.
    """
    c = _tree.hyperparameter_as(c, norm.dtype)
    clips = norm > c
    scale = jnp.where(clips, c, 1) / jnp.where(clips, norm, 1)
    return jnp.where(jnp.isfinite(norm), scale, jnp.nan)


def _scaled(g: jax.Array, scale: jax.Array) -> jax.Array:
    dtype = _tree.compute_dtype(g.dtype, scale.dtype)
    return _tree.cast(_tree.cast(g, dtype) * _tree.cast(scale, dtype), g.dtype)


@takes_indexed_slices
def clip_by_norm(
    clipnorm: jax.typing.ArrayLike,
) -> optax.GradientTransformationExtraArgs:
    """Clips each leaf by its own L2 norm (Keras and tf.keras ``clipnorm``).

    ``u = g * c / max(||g||, c)`` for every leaf separately; ``||g||`` is
    accumulated in at least float32. If a leaf's norm is not finite (it holds
    an inf or NaN, or its sum of squares overflows float32: entries beyond
    about 1.8e19) the whole leaf becomes NaN, rather than its finite entries
    silently becoming 0 as in Keras 3. State: ``optax.EmptyState``.

    optax has no per-leaf L2 clip (``optax.clip_by_block_rms`` uses the RMS,
    which differs by ``sqrt(size)``).

    Args:
      clipnorm: the largest allowed norm ``c > 0`` per leaf.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: if a concrete ``clipnorm`` is not > 0.
      TypeError: if ``clipnorm`` is a bool, complex, string or non-scalar.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.clip_by_norm(1.0)
      >>> grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4])}
      >>> clipped, _ = tx.update(grads, tx.init(grads))
      >>> clipped["a"], clipped["b"]
      (Array([0.6, 0.8], dtype=float32), Array([0.3, 0.4], dtype=float32))
    """
    _validation.check_positive("clipnorm", clipnorm)

    def clip_leaf(g: jax.Array) -> jax.Array:
        return _scaled(g, clip_scale(_safe_sqrt(_tree.squared_norm(g)), clipnorm))

    return _tree.stateless_transform(
        lambda updates, _: _tree.map_updates(clip_leaf, updates), "clip_by_norm"
    )


def global_norm(
    updates: optax.Updates,
    *,
    axis_name: Hashable | Sequence[Hashable] | None = None,
) -> jax.Array:
    """The L2 norm of all leaves together, accumulated in at least float32.

    Args:
      updates: a pytree of arrays (``None`` leaves are skipped).
      axis_name: a ``pmap``/``shard_map`` axis name (or several) over which the
        leaves are sharded; the squared norm is summed across it, so every
        device gets the norm of the whole, unsharded tree.

    Returns:
      A scalar, float32 unless a leaf is wider (float64 / complex128).

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> jsgd.global_norm({"a": jnp.array([3.0]), "b": jnp.array([4.0])})
      Array(5., dtype=float32)
    """
    squares = [_tree.squared_norm(g) for g in _tree.update_leaves(updates)]
    dtype = _tree.compute_dtype(*(s.dtype for s in squares))
    total = sum((s.astype(dtype) for s in squares), start=jnp.zeros([], dtype))
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    return _safe_sqrt(total)


@takes_indexed_slices
def clip_by_global_norm(
    max_norm: jax.typing.ArrayLike,
    *,
    axis_name: Hashable | Sequence[Hashable] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Scales all leaves together so that their global norm is <= ``max_norm``.

    Keras ``global_clipnorm``: ``u = g * c / max(N, c)`` with
    ``N = sqrt(sum over leaves of sum(|g|**2))`` accumulated in at least
    float32 (a float16 sum of squares would overflow past a norm of 256).

    Non-finite norm: if any element of any leaf is inf or NaN (or the sum of
    squares overflows float32: entries beyond about 1.8e19), ``N`` is not
    finite and *every* update becomes NaN (Keras 3's rule). A bad step is thus
    never silently turned into a partial one (optax's ``clip_by_global_norm``
    zeroes the finite leaves instead); wrap the optimizer in
    ``optax.apply_if_finite`` to skip such steps. State: ``optax.EmptyState``.

    Args:
      max_norm: the largest allowed global norm ``c > 0``.
      axis_name: when the leaves are shards of larger arrays split over a
        ``pmap`` or ``shard_map`` axis (or several), the name(s) of that axis.
        The squared norm is then summed across it with ``lax.psum``, so the
        shards are clipped by the norm of the whole gradient. Leave ``None``
        for replicated or unsharded gradients.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: if a concrete ``max_norm`` is not > 0.
      TypeError: if ``max_norm`` is a bool, complex, string or non-scalar.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.clip_by_global_norm(1.0)
      >>> grads = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}
      >>> clipped, _ = tx.update(grads, tx.init(grads))
      >>> clipped["a"], clipped["b"]
      (Array([0.6], dtype=float32), Array([0.8], dtype=float32))
    """
    _validation.check_positive("max_norm", max_norm)

    def clip(updates: optax.Updates, params: optax.Params) -> optax.Updates:
        del params
        scale = clip_scale(global_norm(updates, axis_name=axis_name), max_norm)
        return _tree.map_updates(lambda g: _scaled(g, scale), updates)

    return _tree.stateless_transform(clip, "clip_by_global_norm")
