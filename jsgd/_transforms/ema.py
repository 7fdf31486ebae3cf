"""An exponential moving average of the parameters (Keras 3's ``use_ema``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.apply_updates import apply_update
from jsgd._sparse.indexed_slices import takes_indexed_slices


class EmaState(NamedTuple):
    """State of :func:`jsgd.with_ema`.

    Attributes:
      count: int32 number of micro-steps taken; near the int32 maximum it
        cycles through its last period, so overwrites carry on.
      average: the moving average of the parameters, in their dtype.
      inner_state: the wrapped transformation's state.
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    average: optax.Params
    inner_state: optax.OptState


@takes_indexed_slices
def with_ema(
    transformation: optax.GradientTransformation,
    momentum: jax.typing.ArrayLike = 0.99,
    overwrite_frequency: int | None = None,
    *,
    steps_per_update: int = 1,
) -> optax.GradientTransformationExtraArgs:
    """Keeps Keras 3's EMA of the parameters beside ``transformation``.

    After every step, with ``w`` the parameters *after* the update and
    ``n = count // steps_per_update`` the number of real steps before it::

        average = w                                    (n == 0)
        average = momentum * average + (1 - momentum) * w   (otherwise)

    and, with ``overwrite_frequency = f``, whenever ``(n + 1) % f == 0`` the
    step's update is replaced by ``average - params``, so that the
    parameters become the average (to the rounding of one addition), as
    Keras's ``ema_overwrite_frequency`` does. Read the average with
    :func:`jsgd.averaged_params` (Keras's ``finalize_variable_values``).
    ``steps_per_update`` is the gradient-accumulation factor of the wrapped
    optimizer, so that ``n`` counts real steps as Keras's ``iterations``
    does. State: :class:`jsgd.EmaState`.

    Args:
      transformation: the optimizer whose parameters are averaged.
      momentum: the EMA decay in [0, 1] (Keras's ``ema_momentum``).
      overwrite_frequency: overwrite the parameters with the average every
        this many real steps; ``None`` never does.
      steps_per_update: micro-steps per real step (gradient accumulation).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs
      ``params``.

    Raises:
      ValueError: for ``momentum`` outside [0, 1], a bad frequency, or (at
        update time) missing ``params``.

    Examples:
      >>> import jax.numpy as jnp, jsgd, optax
      >>> tx = jsgd.with_ema(jsgd.sgd(1.0), momentum=0.5)
      >>> params = jnp.array(0.0)
      >>> state = tx.init(params)
      >>> for g in (1.0, 1.0):
      ...     updates, state = tx.update(jnp.array(g), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> float(params), float(jsgd.averaged_params(state))  # average: -1, then -1.5
      (-2.0, -1.5)
    """
    _validation.check_unit_interval("ema_momentum", momentum)
    overwrite_frequency = _validation.check_integer(
        "ema_overwrite_frequency", overwrite_frequency, 1, optional=True
    )
    inner = optax.with_extra_args_support(transformation)
    # The count's phase decides the overwrites: it must keep cycling.
    period = steps_per_update * (overwrite_frequency or 1)

    def init_fn(params: optax.Params) -> EmaState:
        return EmaState(
            count=_tree.zero_count(),
            average=_tree.state_like(params),
            inner_state=inner.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        _tree.check_state(state, EmaState, "with_ema")
        _tree.require_params(params)
        updates, inner_state = inner.update(
            updates, state.inner_state, params, **extra_args
        )
        if overwrite_frequency is not None:
            # An overwrite moves every row, so row updates leave dense (the
            # average is O(table) per step anyway).
            updates = _tree.densify(updates)
        real_steps = state.count // steps_per_update
        m = jnp.where(real_steps == 0, 0.0, momentum)

        def new_average(u, w, a):
            new_w = apply_update(w, u)  # what (jsgd|optax).apply_updates computes
            dtype = _tree.compute_dtype(w.dtype, a.dtype)
            decay = _tree.hyperparameter_as(m, dtype)
            mixed = decay * a.astype(dtype) + (1 - decay) * new_w.astype(dtype)
            return mixed.astype(a.dtype)

        _tree.check_matching(updates, params, "params")
        average = jax.tree.map(
            lambda u, w, a: a if u is None else new_average(u, w, a),
            updates,
            params,
            state.average,
            is_leaf=_tree.is_update_leaf,
        )
        if overwrite_frequency is not None:
            overwrite = real_steps % overwrite_frequency == overwrite_frequency - 1

            def to_average(u, w, a):
                jump = (a.astype(w.dtype) - w).astype(u.dtype)
                return jnp.where(overwrite, jump, u)

            updates = _tree.map_updates(
                to_average, updates, params, average, what="params"
            )
        return updates, EmaState(
            count=_tree.increment(state.count, period),
            average=average,
            inner_state=inner_state,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def averaged_params(state: optax.OptState) -> optax.Params:
    """The EMA of the parameters held in an optimizer state.

    Finds the :class:`jsgd.EmaState` inside ``state`` (of an
    optimizer built with ``use_ema=True`` or :func:`jsgd.with_ema`,
    possibly inside ``optax.chain`` or other wrappers) and returns its average.

    Args:
      state: an optimizer state.

    Returns:
      The averaged parameters (same tree as the parameters).

    Raises:
      ValueError: if ``state`` holds no (or more than one) parameter average.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.SGD(0.1, use_ema=True)
      >>> params, state = opt.minimize(lambda w: w**2 / 2, jnp.array(1.0))
      >>> print(f"{float(jsgd.averaged_params(state)):.3f}")  # first: the params
      0.900
    """
    found = [
        s.average
        for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, EmaState))
        if isinstance(s, EmaState)
    ]
    if len(found) != 1:
        raise ValueError(
            "averaged_params needs a state with exactly one EmaState "
            f"(an optimizer built with use_ema=True); found {len(found)}."
        )
    return found[0]
