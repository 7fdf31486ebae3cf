"""A step counter for optimizers whose math keeps none (Keras's ``iterations``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from jsgd._common import tree as _tree


class StepCountState(NamedTuple):
    """State of the step counter a Keras-style optimizer keeps when its math keeps none.

    Keras 3 keeps ``optimizer.iterations`` for every optimizer. A jsgd state
    keeps the count its math needs (a schedule's, momentum's, Adam's, the
    EMA's or accumulation's); where there is none (constant-rate SGD without
    momentum, Adagrad, RMSprop without momentum) the optimizer appends this
    one, so that :func:`jsgd.keras_iterations` reads every state.

    Attributes:
      count: int32 number of steps taken (saturating at the int32 maximum).
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]


def count_steps() -> optax.GradientTransformationExtraArgs:
    """The identity on updates (``IndexedSlices``, ``None`` leaves) counting steps.

    State: :class:`jsgd.StepCountState`.
    """

    def init_fn(params: Any) -> StepCountState:
        del params
        return StepCountState(count=_tree.zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, StepCountState, "the step counter")
        return updates, StepCountState(count=_tree.increment(state.count))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def is_counted(state: Any) -> bool:
    """Whether a step's state is one with a step ``count`` field."""
    return "count" in getattr(type(state), "_fields", ())


def keeps_count(steps: tuple[optax.GradientTransformation, ...]) -> bool:
    """Whether one of ``steps`` keeps a step count in its state.

    Read from the states' structure (``jax.eval_shape`` of each ``init`` on
    no parameters), so nothing is computed.
    """
    return any(is_counted(jax.eval_shape(step.init, {})) for step in steps)
