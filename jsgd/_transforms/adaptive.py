"""Adaptive scalers in Keras 3's exact form: Adagrad, RMSprop and Adam.

Each divides the incoming update by a running statistic of squared gradients.
They differ from optax's ``scale_by_*`` in where epsilon sits, the initial
accumulator and the defaults; these follow Keras 3. None applies a learning
rate: chain :func:`jsgd.scale_by_learning_rate` after them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import IndexedSlices, takes_indexed_slices
from jsgd._sparse.rows import row_step


def _abs_sq(g: jax.Array) -> jax.Array:
    """``|g|**2`` in ``g``'s dtype (optax's convention for complex ``g``).

    For complex ``g`` the value is real but kept complex (zero imaginary
    part), as the complex state it is added to: the cast is explicit, so it
    holds under ``jax_numpy_dtype_promotion="strict"`` too.
    """
    if jnp.iscomplexobj(g):
        return jnp.real(g * jnp.conj(g)).astype(g.dtype)
    return g * g


class AdagradState(NamedTuple):
    """State of :func:`jsgd.scale_by_adagrad`.

    Attributes:
      accumulator: the running sum of squared updates, started at
        ``initial_accumulator_value``.
    """

    accumulator: optax.Updates


@takes_indexed_slices
def scale_by_adagrad(
    initial_accumulator_value: jax.typing.ArrayLike = 0.1,
    epsilon: jax.typing.ArrayLike = 1e-7,
    *,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Keras 3's Adagrad scaling: ``a = a + g**2;  u = g / sqrt(a + eps)``.

    The accumulator starts at ``initial_accumulator_value``; epsilon sits
    inside the square root (optax's ``scale_by_rss`` differs). Followed by
    ``scale_by_learning_rate(lr)`` this is ``keras.optimizers.Adagrad``.
    State: :class:`jsgd.AdagradState`.

    Row-sparse updates (:class:`jsgd.IndexedSlices`): duplicate rows are
    summed, then only the touched rows' accumulator changes and the output
    is an ``IndexedSlices`` of those rows. An untouched row's dense update
    would be 0 and its accumulator unchanged, so this is the dense result,
    at O(k) cost.

    Args:
      initial_accumulator_value: the accumulator's start, >= 0.
      epsilon: added to the accumulator under the square root, >= 0.
      accumulator_dtype: dtype of the accumulator (default: the parameters').

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: for a negative or non-finite concrete hyperparameter.
      TypeError: for bool, complex, string or non-scalar hyperparameters.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.scale_by_adagrad(initial_accumulator_value=0.0, epsilon=0.0)
      >>> u, state = tx.update(jnp.array([3.0]), tx.init(jnp.zeros(1)))
      >>> u, state.accumulator
      (Array([1.], dtype=float32), Array([9.], dtype=float32))
    """
    _validation.check_non_negative(
        "initial_accumulator_value", initial_accumulator_value
    )
    _validation.check_non_negative("epsilon", epsilon)
    accumulator_dtype = _validation.canonical_dtype(
        "accumulator_dtype", accumulator_dtype
    )

    def init_fn(params: optax.Params) -> AdagradState:
        return AdagradState(
            accumulator=_tree.state_like(
                params, accumulator_dtype, initial_accumulator_value
            )
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, AdagradState, "scale_by_adagrad")

        def step(g, a):
            dtype = _tree.compute_dtype(g.dtype, a.dtype)
            wide = g.astype(dtype)
            # Scale by the stored (rounded) accumulator, as Keras does.
            stored = (a.astype(dtype) + _abs_sq(wide)).astype(a.dtype)
            root = jnp.sqrt(
                stored.astype(dtype) + _tree.hyperparameter_as(epsilon, dtype)
            )
            return (wide / root).astype(g.dtype), stored

        def sparse_or_dense_step(g, a):
            if isinstance(g, IndexedSlices):
                # Untouched rows would get 0 / sqrt(a + eps) = 0 and keep
                # their accumulator: the row step is the dense result exactly.
                return row_step(g, a, step)
            return step(g, a)

        updates, accumulator = _tree.map_updates_and_state(
            sparse_or_dense_step, updates, state.accumulator
        )
        return updates, AdagradState(accumulator=accumulator)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class RMSpropState(NamedTuple):
    """State of :func:`jsgd.scale_by_rmsprop`.

    Attributes:
      velocity: the moving average of squared updates (from 0).
      average_gradient: the moving average of updates (from 0) when
        ``centered``, else ``None``.
    """

    velocity: optax.Updates
    average_gradient: Any  # a tree like the parameters, or None


def scale_by_rmsprop(
    rho: jax.typing.ArrayLike = 0.9,
    epsilon: jax.typing.ArrayLike = 1e-7,
    centered: bool = False,
    *,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Keras 3's RMSprop scaling.

    ::

        v = rho * v + (1 - rho) * g**2
        a = rho * a + (1 - rho) * g               (centered only)
        u = g / sqrt(v - a**2 + eps)              (centered)
        u = g / sqrt(v + eps)                     (otherwise)

    Both averages start at 0 and epsilon sits inside the square root (optax's
    ``scale_by_rms`` differs). ``keras.optimizers.RMSprop`` is this, then
    ``scale_by_learning_rate(lr)``, then (when its momentum is set)
    :func:`jsgd.momentum_trace`: Keras keeps the learning rate inside the momentum.
    State: :class:`jsgd.RMSpropState`.

    Args:
      rho: the averages' decay in [0, 1].
      epsilon: added under the square root, >= 0.
      centered: subtract the squared mean gradient (a variance estimate).
      accumulator_dtype: dtype of the averages (default: the parameters').

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: for ``rho`` outside [0, 1] or a negative ``epsilon``.
      TypeError: for bool, complex, string or non-scalar hyperparameters, or
        a non-bool ``centered``.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.scale_by_rmsprop(rho=0.75, epsilon=0.0)
      >>> u, state = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
      >>> u, state.velocity  # v = 0.25 * 4;  u = 2 / sqrt(1)
      (Array([2.], dtype=float32), Array([1.], dtype=float32))
    """
    _validation.check_unit_interval("rho", rho)
    _validation.check_non_negative("epsilon", epsilon)
    _validation.check_bool("centered", centered)
    accumulator_dtype = _validation.canonical_dtype(
        "accumulator_dtype", accumulator_dtype
    )

    def init_fn(params: optax.Params) -> RMSpropState:
        average = _tree.state_like(params, accumulator_dtype) if centered else None
        return RMSpropState(
            velocity=_tree.state_like(params, accumulator_dtype),
            average_gradient=average,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, RMSpropState, "scale_by_rmsprop")

        def moving_average(value_of_g):
            def update(g, s):
                dtype = _tree.compute_dtype(g.dtype, s.dtype)
                r, gain = (
                    _tree.hyperparameter_as(rho, dtype),
                    _tree.hyperparameter_as(1 - rho, dtype),
                )
                new = r * s.astype(dtype) + gain * value_of_g(g.astype(dtype))
                return new.astype(s.dtype)

            return update

        velocity = _tree.map_state(moving_average(_abs_sq), updates, state.velocity)
        average = None
        if centered:
            average = _tree.map_state(
                moving_average(lambda g: g), updates, state.average_gradient
            )

        def scaled(g, v, a=None):
            dtype = _tree.compute_dtype(g.dtype, v.dtype)
            denominator = v.astype(dtype)
            if a is not None:
                denominator = denominator - _abs_sq(a.astype(dtype))
            denominator = denominator + _tree.hyperparameter_as(epsilon, dtype)
            return (g.astype(dtype) / jnp.sqrt(denominator)).astype(g.dtype)

        if centered:
            updates = _tree.map_updates(scaled, updates, velocity, average)
        else:
            updates = _tree.map_updates(scaled, updates, velocity)
        return updates, RMSpropState(velocity=velocity, average_gradient=average)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AdamState(NamedTuple):
    """State of :func:`jsgd.scale_by_adam`.

    Attributes:
      count: int32 number of steps taken (saturating); step ``t = count + 1``
        sets the bias corrections.
      momentum: first moment ``m`` (from 0).
      velocity: second moment ``v`` (from 0).
      velocity_hat: running maximum of ``v`` when ``amsgrad``, else ``None``.
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    momentum: optax.Updates
    velocity: optax.Updates
    velocity_hat: Any  # a tree like the parameters, or None


def scale_by_adam(
    beta_1: jax.typing.ArrayLike = 0.9,
    beta_2: jax.typing.ArrayLike = 0.999,
    epsilon: jax.typing.ArrayLike = 1e-7,
    amsgrad: bool = False,
    *,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Keras 3's Adam scaling, epsilon outside the bias correction.

    With ``t = count + 1``::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                     (amsgrad; then v := v_hat)
        u = m * sqrt(1 - beta_2**t) / (1 - beta_1**t) / (sqrt(v) + eps)

    This is Keras's (and the Adam paper's "epsilon hat") form: epsilon is not
    bias-corrected, unlike optax's ``scale_by_adam``; the two differ for small
    ``t`` and small ``v``. Followed by ``scale_by_learning_rate(lr)`` it is
    ``keras.optimizers.Adam``. State: :class:`jsgd.AdamState`.

    Args:
      beta_1: first-moment decay in [0, 1].
      beta_2: second-moment decay in [0, 1].
      epsilon: added to ``sqrt(v)``, >= 0.
      amsgrad: use the running maximum of ``v`` (Reddi et al. 2018).
      accumulator_dtype: dtype of the moments (default: the parameters').

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: for betas outside [0, 1] or a negative ``epsilon``.
      TypeError: for bool, complex, string or non-scalar hyperparameters, or
        a non-bool ``amsgrad``.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.scale_by_adam(epsilon=0.0)
      >>> u, state = tx.update(jnp.array([-4.0]), tx.init(jnp.zeros(1)))
      >>> print(f"{float(u[0]):.4f}")  # the first step is sign(g) when eps is 0
      -1.0000
    """
    _validation.check_unit_interval("beta_1", beta_1)
    _validation.check_unit_interval("beta_2", beta_2)
    _validation.check_non_negative("epsilon", epsilon)
    _validation.check_bool("amsgrad", amsgrad)
    accumulator_dtype = _validation.canonical_dtype(
        "accumulator_dtype", accumulator_dtype
    )

    def init_fn(params: optax.Params) -> AdamState:
        return AdamState(
            count=_tree.zero_count(),
            momentum=_tree.state_like(params, accumulator_dtype),
            velocity=_tree.state_like(params, accumulator_dtype),
            velocity_hat=_tree.state_like(params, accumulator_dtype)
            if amsgrad
            else None,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, AdamState, "scale_by_adam")

        def moment(beta, value_of_g):
            def update(g, s):
                dtype = _tree.compute_dtype(g.dtype, s.dtype)
                s_ = s.astype(dtype)
                # `1 - beta` before the cast, as Keras computes it: for a
                # Python float that keeps the small gain exact.
                gain = _tree.hyperparameter_as(1 - beta, dtype)
                return (s_ + (value_of_g(g.astype(dtype)) - s_) * gain).astype(s.dtype)

            return update

        momentum = _tree.map_state(moment(beta_1, lambda g: g), updates, state.momentum)
        velocity = _tree.map_state(moment(beta_2, _abs_sq), updates, state.velocity)
        velocity_hat = None
        if amsgrad:
            velocity_hat = _tree.map_state(jnp.maximum, velocity, state.velocity_hat)
        denominator_source = velocity_hat if amsgrad else velocity

        step = state.count.astype(jnp.float32) + 1  # no int32 wrap at the maximum

        def scaled(g, m, v):
            dtype = _tree.compute_dtype(g.dtype, m.dtype, v.dtype)
            t = step.astype(dtype)
            correction = jnp.sqrt(1 - _tree.hyperparameter_as(beta_2, dtype) ** t) / (
                1 - _tree.hyperparameter_as(beta_1, dtype) ** t
            )
            root = jnp.sqrt(v.astype(dtype)) + _tree.hyperparameter_as(epsilon, dtype)
            return (m.astype(dtype) * correction / root).astype(g.dtype)

        updates = _tree.map_updates(scaled, updates, momentum, denominator_source)
        return updates, AdamState(
            count=_tree.increment(state.count),
            momentum=momentum,
            velocity=velocity,
            velocity_hat=velocity_hat,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
