"""The velocity trace: heavy-ball momentum and the Nesterov look-ahead."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import (
    IndexedSlices,
    group_duplicates,
    takes_indexed_slices,
)
from jsgd._sparse.rows import gather_rows, row_step, scatter_rows


class MomentumState(NamedTuple):
    """State of :func:`jsgd.momentum_trace`.

    Attributes:
      count: int32 number of steps taken (saturating). Step 0 stores the
        incoming update undamped, torch's first-step rule.
      velocity: the trace ``v``, one leaf per parameter, in the parameter's
        dtype unless ``accumulator_dtype`` says otherwise.
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    velocity: optax.Updates


@takes_indexed_slices
def momentum_trace(
    momentum: jax.typing.ArrayLike,
    *,
    nesterov: bool = False,
    dampening: jax.typing.ArrayLike = 0.0,
    accumulator_dtype: Any | None = None,
    lazy: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """Accumulates a velocity; outputs it, or its Nesterov look-ahead.

    With ``m = momentum`` and ``d = dampening``, for each leaf::

        v_1 = u_1                          (first step: torch's rule)
        v_t = m * v_{t-1} + (1 - d) * u_t  (later steps; m = 0 gives u_t)
        output = v_t                       (heavy ball)
        output = m * v_t + u_t             (nesterov=True)

    Where the learning rate sits decides whose rule this is:

    * ``chain(scale_by_learning_rate(lr), momentum_trace(m))``: Keras,
      ``v = m*v - lr_t*g; w += v`` (the learning rate lives inside the
      velocity; a changed learning rate scales only new gradients).
    * ``chain(momentum_trace(m), scale_by_learning_rate(lr))``: optax ``sgd`` and
      ``torch.optim.SGD`` (dampening included), ``w -= lr_t * v`` (a changed
      learning rate rescales the whole velocity).

    With ``d = 0`` the first-step rule changes nothing (``v_0 = 0``).

    Row-sparse updates (an :class:`jsgd.IndexedSlices` leaf): with
    ``lazy=True``, tf.keras's legacy sparse rule (``_resource_apply_sparse``,
    ``SparseApplyKerasMomentum``): duplicate rows are summed, then only the
    touched rows ``i`` change, ``v[i] = m*v[i] + (1-d)*u[i]``, and the output
    is an ``IndexedSlices`` of those rows (``k`` rows, padded). Untouched
    rows keep their stale velocity and do not move, so the result differs
    from the dense one; the step costs O(k), not O(table). ``lazy=False``
    densifies the update first: exactly the dense result (Keras 3, which has
    no sparse momentum), a dense output, O(table) work.

    State: :class:`jsgd.MomentumState` (an int32 ``count`` and ``velocity``).

    Args:
      momentum: the decay ``m`` in [0, 1]; may be a traced 0-d array.
      nesterov: whether to output the Nesterov look-ahead ``m*v + u``.
      dampening: ``d`` in [0, 1], torch's dampening; may be traced.
      accumulator_dtype: dtype of the velocity; ``None`` means each
        parameter's own dtype. Arithmetic is done in at least float32 and
        rounded once when stored.
      lazy: for ``IndexedSlices`` updates, step only the touched rows (True,
        legacy tf.keras) or densify them (False, dense-equivalent). Dense
        updates are unaffected.

    Returns:
      An ``optax.GradientTransformationExtraArgs``. Updates keep their dtype;
      ``None`` update leaves stay ``None`` and leave their velocity untouched.

    Raises:
      ValueError: if a concrete ``momentum`` or ``dampening`` is outside [0, 1].
      TypeError: for bool, complex, string or non-scalar hyperparameters, a
        non-bool ``nesterov`` or ``lazy``, or a non-floating
        ``accumulator_dtype``.

    Examples:
      >>> import jax.numpy as jnp, jsgd, optax
      >>> keras_rule = optax.chain(
      ...     jsgd.scale_by_learning_rate(0.1), jsgd.momentum_trace(0.9))
      >>> state = keras_rule.init(jnp.zeros(()))
      >>> u1, state = keras_rule.update(jnp.ones(()), state)
      >>> u2, state = keras_rule.update(jnp.ones(()), state)
      >>> print(f"{float(u1):.2f} {float(u2):.2f}")
      -0.10 -0.19
    """
    _validation.check_unit_interval("momentum", momentum)
    _validation.check_bool("nesterov", nesterov)
    _validation.check_unit_interval("dampening", dampening)
    _validation.check_bool("lazy", lazy)
    accumulator_dtype = _validation.canonical_dtype(
        "accumulator_dtype", accumulator_dtype
    )
    undamped = _validation.is_static_zero(dampening)

    def init_fn(params: optax.Params) -> MomentumState:
        return MomentumState(
            count=_tree.zero_count(),
            velocity=_tree.state_like(params, accumulator_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, MomentumState, "momentum_trace")
        # torch stores the first update undamped; with d = 0 that is the
        # general rule, so the gain is only computed when it can differ. A
        # momentum of 0 (possibly traced) is plain SGD, as torch's, undamped.
        m_as = _tree.scalar_cache(
            lambda dtype: _tree.hyperparameter_as(momentum, dtype)
        )
        gain_as = None
        if not undamped:
            gain = damping_gain(state.count, momentum, dampening)
            gain_as = _tree.scalar_cache(
                lambda dtype: _tree.hyperparameter_as(gain, dtype)
            )

        def new_velocity(u: jax.Array, v: jax.Array) -> jax.Array:
            dtype = _tree.compute_dtype(u.dtype, v.dtype)
            u = _tree.cast(u, dtype)
            if gain_as is not None:
                u = gain_as(dtype) * u
            return _tree.cast(m_as(dtype) * _tree.cast(v, dtype) + u, v.dtype)

        def output(u: jax.Array, v: jax.Array) -> jax.Array:
            if not nesterov:
                return _tree.cast(v, u.dtype)
            dtype = _tree.compute_dtype(u.dtype, v.dtype)
            look_ahead = m_as(dtype) * _tree.cast(v, dtype)
            return _tree.cast(look_ahead + _tree.cast(u, dtype), u.dtype)

        def dense_step(u: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
            v = new_velocity(u, v)
            return output(u, v), v

        def heavy_ball_rows(
            u: IndexedSlices, v: jax.Array
        ) -> tuple[IndexedSlices, jax.Array]:
            # The lazy rule on the touched rows, with the duplicates summed
            # straight into the decayed rows: m*v[i] + g_1 + g_2 + ... This
            # saves the separate buffer of sums (a fifth of the step on CPU);
            # Nesterov needs those sums and takes the general row step.
            unique, slot = group_duplicates(u)
            dtype = _tree.compute_dtype(u.dtype, v.dtype)
            g = _tree.cast(u.values, dtype)
            if gain_as is not None:
                g = gain_as(dtype) * g
            decayed = m_as(dtype) * _tree.cast(gather_rows(v, unique), dtype)
            rows = decayed.at[slot].add(g, mode="promise_in_bounds")
            stored = _tree.cast(rows, v.dtype)
            out = IndexedSlices(_tree.cast(stored, u.dtype), unique, u.dense_shape)
            return out, scatter_rows(v, unique, stored)

        def step(u: Any, v: jax.Array) -> tuple[Any, jax.Array]:
            if isinstance(u, IndexedSlices):
                if not lazy:
                    u = u.to_dense()
                elif nesterov:
                    return row_step(u, v, dense_step)
                else:
                    return heavy_ball_rows(u, v)
            return dense_step(u, v)

        updates, velocity = _tree.map_updates_and_state(step, updates, state.velocity)
        return updates, MomentumState(
            count=_tree.increment(state.count), velocity=velocity
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def damping_gain(count: jax.Array, momentum: Any, dampening: Any) -> jax.Array:
    """The update's factor ``1 - d``; 1 on the first step and for momentum 0.

    torch stores the first update undamped, and a momentum of 0 (possibly
    traced) is plain SGD, undamped.
    """
    plain = (count == 0) | is_zero_in_float32(momentum)
    return jnp.where(plain, 1.0, 1 - dampening)


def is_zero_in_float32(momentum: jax.typing.ArrayLike) -> jax.Array | bool:
    """Whether ``momentum`` is 0 once read as float32 (then torch's plain SGD).

    A concrete value is decided here, exactly: compared by XLA:CPU, which
    flushes subnormals to zero, a momentum of 1e-45 would count as 0.
    """
    value = _validation.concrete_scalar("momentum", momentum)
    if value is None:
        return jnp.asarray(momentum) == 0
    return bool(np.float32(value) == 0)


@takes_indexed_slices
def nesterov_trace(
    momentum: jax.typing.ArrayLike, **kwargs: Any
) -> optax.GradientTransformationExtraArgs:
    """The Nesterov look-ahead: :func:`jsgd.momentum_trace` with ``nesterov=True``.

    Output ``m * v_t + u_t`` where ``v_t = m * v_{t-1} + (1 - d) * u_t``
    (Sutskever et al. 2013). After :func:`jsgd.scale_by_learning_rate` this is
    Keras's ``w += m*v - lr_t*g``; before it, optax's and torch's
    ``w -= lr_t * (g + m*v)``. State: :class:`jsgd.MomentumState`.

    Args:
      momentum: the decay ``m`` in [0, 1].
      **kwargs: ``dampening``, ``accumulator_dtype`` and ``lazy``, as in
        :func:`jsgd.momentum_trace`.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError, TypeError: as :func:`jsgd.momentum_trace`; TypeError also if
        ``nesterov`` is passed.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.nesterov_trace(0.9)
      >>> state = tx.init(jnp.zeros(()))
      >>> u, state = tx.update(jnp.ones(()), state)
      >>> print(f"{float(u):.2f}")  # 0.9 * 1 + 1
      1.90
    """
    if "nesterov" in kwargs:
        raise TypeError(
            "`nesterov` cannot be passed to jsgd.nesterov_trace (it is True)."
        )
    return momentum_trace(momentum, nesterov=True, **kwargs)
