"""Gradient accumulation with Keras 3's ``gradient_accumulation_steps`` semantics."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import IndexedSlices, takes_indexed_slices
from jsgd._sparse.rows import add_rows


class AccumulateGradientsState(NamedTuple):
    """State of :func:`jsgd.accumulate_gradients`.

    Attributes:
      count: int32 number of micro-steps taken; near the int32 maximum it
        cycles through its last ``steps`` values, so real steps carry on.
      accumulated: the sum of the micro-batch gradients since the last real
        step, in the parameters' dtype.
      inner_state: the wrapped transformation's state (it advances only on
        real steps).
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    accumulated: optax.Updates
    inner_state: optax.OptState


@takes_indexed_slices
def accumulate_gradients(
    transformation: optax.GradientTransformation, steps: int
) -> optax.GradientTransformationExtraArgs:
    """Applies ``transformation`` every ``steps`` micro-steps, to their mean.

    Keras 3's ``gradient_accumulation_steps``: on micro-steps ``0 .. k-2`` of
    each group the gradient is added to ``accumulated`` and the update is 0
    (parameters unchanged, inner state untouched); on micro-step ``k-1`` the
    inner transformation receives ``(g + accumulated) / k`` and the
    accumulator is reset. The inner transformation (and so its schedules and
    bias corrections) counts real steps only; ``jsgd``'s optimizers shift
    their schedules so that the learning rate is the one Keras uses, the
    schedule at the *micro*-step count. Unlike ``optax.MultiSteps`` the mean
    is the plain sum divided by ``k``, as in Keras. An
    :class:`jsgd.IndexedSlices` gradient is added into the (dense)
    accumulator row by row, and real steps pass the inner transformation the
    dense mean. State:
    :class:`jsgd.AccumulateGradientsState`.

    Args:
      transformation: the optimizer to run on the averaged gradients.
      steps: ``k``, an int >= 2.

    Returns:
      An ``optax.GradientTransformationExtraArgs``. Extra arguments are passed
      to the inner transformation on real steps.

    Raises:
      ValueError: if ``steps`` is not an int >= 2.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.accumulate_gradients(jsgd.sgd(1.0), steps=2)
      >>> state = tx.init(jnp.zeros(()))
      >>> u1, state = tx.update(jnp.array(1.0), state)
      >>> u2, state = tx.update(jnp.array(3.0), state)
      >>> float(u1), float(u2)  # nothing, then -(1 + 3) / 2
      (0.0, -2.0)
    """
    steps = _validation.check_integer("steps", steps, 2)
    inner = optax.with_extra_args_support(transformation)

    def init_fn(params: optax.Params) -> AccumulateGradientsState:
        return AccumulateGradientsState(
            count=_tree.zero_count(),
            accumulated=_tree.state_like(params),
            inner_state=inner.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        _tree.check_state(state, AccumulateGradientsState, "accumulate_gradients")
        is_real_step = state.count % steps == steps - 1

        def real_step(_):
            def mean(g, a):
                dtype = _tree.compute_dtype(g.dtype, a.dtype)
                return ((g.astype(dtype) + a.astype(dtype)) / steps).astype(g.dtype)

            averaged = _tree.map_updates(
                mean,
                updates,
                state.accumulated,
                sparse=lambda g, a: mean(g.to_dense(), a),
            )
            new_updates, inner_state = inner.update(
                averaged, state.inner_state, params, **extra_args
            )
            accumulated = jax.tree.map(jnp.zeros_like, state.accumulated)
            return new_updates, accumulated, inner_state

        def micro_step(_):
            def add(g, a):
                if isinstance(g, IndexedSlices):  # O(k): add the rows only
                    return None, add_rows(a, g)
                dtype = _tree.compute_dtype(g.dtype, a.dtype)
                return None, (g.astype(dtype) + a.astype(dtype)).astype(a.dtype)

            _, accumulated = _tree.map_updates_and_state(
                add, updates, state.accumulated
            )
            # Real steps output dense updates, so micro-steps do too.
            zeros = _tree.map_updates(
                jnp.zeros_like,
                updates,
                sparse=lambda g: jnp.zeros(g.dense_shape, g.dtype),
            )
            return zeros, accumulated, state.inner_state

        new_updates, accumulated, inner_state = jax.lax.cond(
            is_real_step, real_step, micro_step, None
        )
        return new_updates, AccumulateGradientsState(
            count=_tree.increment(state.count, steps),
            accumulated=accumulated,
            inner_state=inner_state,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
