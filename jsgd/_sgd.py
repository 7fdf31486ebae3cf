"""``jsgd.sgd``: the origin document's SGD composed from jsgd's transforms."""

from __future__ import annotations

from typing import Any

import jax
import optax

from jsgd import _validation
from jsgd._keras_keywords import keras_chain, keras_keywords_in
from jsgd._learning_rate import scale_by_learning_rate
from jsgd._momentum import momentum as momentum_trace


def sgd(
    learning_rate: optax.ScalarOrSchedule = 0.01,
    momentum: jax.typing.ArrayLike = 0.0,
    nesterov: bool = False,
    *,
    clipvalue: jax.typing.ArrayLike | None = None,
    clipnorm: jax.typing.ArrayLike | None = None,
    global_clipnorm: jax.typing.ArrayLike | None = None,
    decay: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike | None = None,
    dampening: jax.typing.ArrayLike = 0.0,
    lr_in_velocity: bool = True,
    accumulator_dtype: Any | None = None,
    lazy: bool = True,
    use_ema: bool = False,
    ema_momentum: jax.typing.ArrayLike = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: jax.typing.ArrayLike | None = None,
    gradient_accumulation_steps: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Stochastic gradient descent with momentum, Keras's rule by default.

    With ``lr_t`` the learning rate at step ``t`` (after ``decay``), ``g`` the
    clipped gradient, ``m`` the momentum and ``w`` the parameters:

    ===================  ===============================================
    ``momentum == 0``    ``w += -lr_t * g``
    Keras (default)      ``v = m*v - lr_t*g;  w += v``
    Keras + Nesterov     ``v = m*v - lr_t*g;  w += m*v - lr_t*g``
    optax / torch        ``b = m*b + (1-d)*g;  w += -lr_t * b``
    ... + Nesterov       ``b = m*b + (1-d)*g;  w += -lr_t * (g + m*b)``
    ===================  ===============================================

    The Keras rule (``lr_in_velocity=True``) keeps the learning rate inside
    the velocity; ``lr_in_velocity=False`` keeps it outside, which is
    ``optax.sgd`` and ``torch.optim.SGD`` exactly (torch's first step stores
    ``b = g`` undamped). The two agree while the learning rate is constant and
    differ as soon as it changes.

    The chain is, in order: ``clip_by_value(clipvalue)``,
    ``clip_by_norm(clipnorm)``, ``clip_by_global_norm(global_clipnorm)`` (the
    legacy tf.keras clip order; each only when set), then
    ``scale_by_learning_rate`` and ``momentum`` (in the order
    ``lr_in_velocity`` picks), then ``decoupled_weight_decay`` when
    ``weight_decay`` is set (Keras 3: ``w -= lr_t * wd * w``, outside clipping
    and momentum). For torch-style coupled weight decay put
    :func:`jsgd.add_decayed_weights` in front of this chain. The other Keras
    3 keywords wrap that chain as they do in Keras (see
    ``docs/update_rules.md``, "Keras keywords"): ``loss_scale_factor``
    divides the gradients first, ``gradient_accumulation_steps`` runs it on
    the mean of that many micro-steps, ``use_ema`` keeps a moving average of
    the parameters.

    Sparse rows: a gradient leaf may be a :class:`jsgd.IndexedSlices` (see
    :func:`jsgd.value_and_row_grad`); its update is then an ``IndexedSlices``
    to apply with :func:`jsgd.apply_updates`, and a step costs O(rows
    touched), not O(table). Without momentum that is exactly
    ``w[indices] -= lr_t * values`` (duplicates add up). With momentum and
    ``lazy=True`` it is tf.keras's ``SparseApplyKerasMomentum``: duplicates
    summed, ``v[i] = m*v[i] - lr_t*g[i]; w[i] += v[i]`` for touched rows only
    (Nesterov ``w[i] += m*v[i] - lr_t*g[i]``); untouched rows keep a stale
    velocity. ``lazy=False`` is Keras 3: the gradient is made dense after the
    clips, and the step is the dense one bit for bit. Clipping uses the
    values' norms, as ``tf.clip_by_norm`` does.

    A ``momentum`` given as the Python number 0 keeps no velocity (and
    ``nesterov`` then changes nothing, as in Keras 3: exactly plain SGD). A
    momentum given as an array (also under ``optax.inject_hyperparams``)
    always keeps one, since its value may change.

    State: an ``optax.chain`` state tuple, one entry per step above (clip
    steps hold ``optax.EmptyState``; a learning-rate schedule holds a
    :class:`jsgd.ScheduleState`; momentum a :class:`jsgd.MomentumState`),
    inside a :class:`jsgd.AccumulateGradientsState` and a
    :class:`jsgd.AverageParamsState` when those keywords are used.

    Args:
      learning_rate: a finite number >= 0, a 0-d array, or a schedule
        ``count -> lr`` (count from 0).
      momentum: ``m`` in [0, 1].
      nesterov: use the Nesterov look-ahead.
      clipvalue: clip each element to ``[-clipvalue, clipvalue]``.
      clipnorm: clip each leaf by its own L2 norm.
      global_clipnorm: clip all leaves by their global L2 norm.
      decay: legacy tf.keras decay, ``lr_t = lr / (1 + decay * t)``.
      weight_decay: decoupled weight decay coefficient (Keras 3).
      dampening: torch's dampening ``d`` in [0, 1].
      lr_in_velocity: True for Keras's rule, False for optax's/torch's.
      accumulator_dtype: dtype of the velocity (default: the parameters').
      lazy: for :class:`jsgd.IndexedSlices` gradients (embedding rows), the
        legacy tf.keras sparse rule: duplicates summed, then only the touched
        rows' velocity (and decoupled weight decay) change (True); or the
        dense result (False, Keras 3). See "Sparse rows" below.
      use_ema: keep an exponential moving average of the parameters (read
        it with :func:`jsgd.averaged_params`).
      ema_momentum: the EMA's decay in [0, 1].
      ema_overwrite_frequency: overwrite the parameters with their average
        every this many steps (``None``: never).
      loss_scale_factor: divide the gradients by this (> 0) first.
      gradient_accumulation_steps: apply the mean gradient of this many
        (int >= 2) micro-steps once every that many steps.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (an ``optax.chain``).

    Raises:
      ValueError: for a concrete learning rate < 0 or not finite; momentum or
        dampening outside [0, 1]; a clip threshold <= 0; decay or weight decay
        < 0; ``clipnorm`` together with ``global_clipnorm``.
      TypeError: for bool, complex, string or non-scalar hyperparameters,
        non-bool ``nesterov``/``lr_in_velocity`` or a bad ``accumulator_dtype``.

    Examples:
      >>> import jax, jax.numpy as jnp, jsgd, optax
      >>> tx = jsgd.sgd(learning_rate=0.1, momentum=0.9)
      >>> params = jnp.array(1.0)
      >>> state = tx.init(params)
      >>> for _ in range(2):
      ...     grads = jax.grad(lambda w: w**2 / 2)(params)
      ...     updates, state = tx.update(grads, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> print(f"{float(params):.2f}")  # 1 - 0.1 - 0.18
      0.72
    """
    _validation.check_learning_rate("learning_rate", learning_rate)
    _validation.check_unit_interval("momentum", momentum)
    _validation.check_bool("nesterov", nesterov)
    _validation.check_unit_interval("dampening", dampening)
    _validation.check_bool("lr_in_velocity", lr_in_velocity)
    _validation.canonical_dtype("accumulator_dtype", accumulator_dtype)
    _validation.check_bool("lazy", lazy)

    def core(lr: optax.ScalarOrSchedule) -> list[optax.GradientTransformation]:
        learning_rate_step = scale_by_learning_rate(lr)
        if _validation.is_static_zero(momentum):
            return [learning_rate_step]
        velocity_step = momentum_trace(
            momentum,
            nesterov=nesterov,
            dampening=dampening,
            accumulator_dtype=accumulator_dtype,
            lazy=lazy,
        )
        if lr_in_velocity:
            return [learning_rate_step, velocity_step]
        return [velocity_step, learning_rate_step]

    return keras_chain(core, learning_rate, lazy=lazy, **keras_keywords_in(locals()))
