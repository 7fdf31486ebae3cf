"""The learning-rate step ``u = -lr_t * g`` and the legacy Keras ``decay``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import takes_indexed_slices


class ScheduleState(NamedTuple):
    """State of a transform that evaluates a learning-rate schedule.

    Attributes:
      count: int32 number of steps taken so far (saturating). The schedule is
        evaluated at ``count`` before it is incremented, so the first step
        uses ``schedule(0)``, as in optax and Keras.
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]


def learning_rate_transform(
    learning_rate: optax.ScalarOrSchedule,
    apply: Callable[[Any, Any, Any], Any],
    owner: str,
) -> optax.GradientTransformationExtraArgs:
    """Builds a transform that calls ``apply(updates, params, lr_t)``.

    A constant learning rate keeps ``optax.EmptyState``; a schedule keeps a
    ``ScheduleState`` and is evaluated at its count.
    """
    if not callable(learning_rate):
        return _tree.stateless_transform(
            lambda updates, params: apply(updates, params, learning_rate), owner
        )

    schedule = learning_rate

    def init_scheduled(params: optax.Params) -> ScheduleState:
        del params
        return ScheduleState(count=_tree.zero_count())

    def update_scheduled(updates, state, params=None, **extra_args):
        del extra_args
        _tree.check_state(state, ScheduleState, owner)
        lr_t = schedule(state.count)
        _validation.check_schedule_value("learning_rate", lr_t)
        updates = apply(updates, params, lr_t)
        return updates, ScheduleState(count=_tree.increment(state.count))

    return optax.GradientTransformationExtraArgs(init_scheduled, update_scheduled)


def _scale_leaf(g: jax.Array, minus_lr: Callable[[Any], jax.Array]) -> jax.Array:
    # g * (-lr) is bitwise -(g * lr) (negation is exact) and one op fewer.
    dtype = _tree.compute_dtype(g.dtype)
    return _tree.cast(_tree.cast(g, dtype) * minus_lr(dtype), g.dtype)


@takes_indexed_slices
def scale_by_learning_rate(
    learning_rate: optax.ScalarOrSchedule,
) -> optax.GradientTransformationExtraArgs:
    """Scales updates by minus the learning rate: ``u = -lr_t * g``.

    Placed *before* :func:`jsgd.momentum_trace` this gives Keras's rule (the
    learning rate lives inside the velocity); placed after it, optax's and
    torch's (the learning rate scales the whole velocity).

    State: ``optax.EmptyState`` for a constant learning rate; for a schedule a
    :class:`jsgd.ScheduleState` whose int32 ``count`` (from 0, saturating)
    is the step the schedule is evaluated at.

    Args:
      learning_rate: a finite number >= 0, a 0-d array (may be traced, e.g.
        by ``optax.inject_hyperparams``), or a schedule ``count -> lr``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``. Updates keep their dtype;
      the product is computed in at least float32.

    Raises:
      ValueError: if a concrete ``learning_rate`` is negative or not finite.
      TypeError: if ``learning_rate`` is a bool, complex, string or non-scalar.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.scale_by_learning_rate(lambda count: 0.1 / (count + 1))
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> updates, state = tx.update({"w": jnp.ones(2)}, state)
      >>> updates["w"]
      Array([-0.1, -0.1], dtype=float32)
      >>> updates, state = tx.update({"w": jnp.ones(2)}, state)
      >>> updates["w"]
      Array([-0.05, -0.05], dtype=float32)
    """
    _validation.check_learning_rate("learning_rate", learning_rate)

    def apply(updates, params, lr):
        del params
        minus_lr = _tree.scalar_cache(lambda dtype: -_tree.hyperparameter_as(lr, dtype))
        return _tree.map_updates(lambda g: _scale_leaf(g, minus_lr), updates)

    return learning_rate_transform(learning_rate, apply, "scale_by_learning_rate")


def inverse_time_decay(
    learning_rate: optax.ScalarOrSchedule, decay: jax.typing.ArrayLike
) -> optax.Schedule:
    """The legacy Keras ``decay`` argument as a schedule.

    ``lr_t = learning_rate(t) / (1 + decay * t)`` with ``t = 0`` on the first
    step, exactly tf.keras ``OptimizerV2``'s ``_decayed_lr`` and Keras 3's
    ``InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=decay)``.
    When ``learning_rate`` is itself a schedule both apply, as in tf.keras.

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      decay: the decay rate, a finite number >= 0 (or a traced 0-d array).

    Returns:
      A schedule ``count -> lr`` (float32 unless the inputs are wider).

    Raises:
      ValueError: if a concrete ``learning_rate`` or ``decay`` is negative or
        not finite.
      TypeError: if either is a bool, complex, string or non-scalar.

    Examples:
      >>> import jsgd
      >>> schedule = jsgd.inverse_time_decay(0.1, decay=1.0)
      >>> [round(float(schedule(t)), 4) for t in range(3)]
      [0.1, 0.05, 0.0333]
    """
    _validation.check_learning_rate("learning_rate", learning_rate)
    _validation.check_non_negative("decay", decay)

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        base = learning_rate(count) if callable(learning_rate) else learning_rate
        base = jnp.asarray(base)
        dtype = _tree.compute_dtype(base.dtype, jnp.asarray(decay).dtype)
        step = jnp.asarray(count).astype(dtype)
        return base.astype(dtype) / (1 + _tree.hyperparameter_as(decay, dtype) * step)

    return schedule
