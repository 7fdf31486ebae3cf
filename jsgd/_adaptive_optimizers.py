"""``adagrad``, ``rmsprop`` and ``adam``: Keras 3's optimizers as optax chains.

Each composes its Keras-form scaler with ``scale_by_learning_rate`` and is
wrapped by :func:`keras_chain` in the Keras keywords shared with ``sgd``.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from jsgd import _validation
from jsgd._adaptive import scale_by_adagrad, scale_by_adam, scale_by_rmsprop
from jsgd._keras_keywords import keras_chain, keras_keywords_in
from jsgd._learning_rate import scale_by_learning_rate
from jsgd._momentum import momentum as momentum_trace


def adagrad(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    initial_accumulator_value: jax.typing.ArrayLike = 0.1,
    epsilon: jax.typing.ArrayLike = 1e-7,
    *,
    clipvalue: jax.typing.ArrayLike | None = None,
    clipnorm: jax.typing.ArrayLike | None = None,
    global_clipnorm: jax.typing.ArrayLike | None = None,
    decay: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike | None = None,
    use_ema: bool = False,
    ema_momentum: jax.typing.ArrayLike = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: jax.typing.ArrayLike | None = None,
    gradient_accumulation_steps: int | None = None,
    accumulator_dtype: Any | None = None,
    lazy: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """Adagrad exactly as ``keras.optimizers.Adagrad``.

    ``a = a + g**2;  w -= lr_t * g / sqrt(a + eps)`` with ``a`` starting at
    ``initial_accumulator_value``. The chain is
    ``scale_by_adagrad`` then ``scale_by_learning_rate``, wrapped in the Keras
    keywords as :func:`jsgd.sgd` is. State: the chain's, holding a
    :class:`jsgd.AdagradState`.

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      initial_accumulator_value: the accumulator's start, >= 0.
      epsilon: added under the square root, >= 0.
      clipvalue: clip each element to ``[-clipvalue, clipvalue]``.
      clipnorm: clip each leaf by its own L2 norm.
      global_clipnorm: clip all leaves by their global L2 norm.
      decay: legacy tf.keras decay, ``lr_t = lr / (1 + decay * t)``.
      weight_decay: decoupled weight decay, ``w -= lr_t * wd * w``.
      use_ema: keep an EMA of the parameters (:func:`jsgd.averaged_params`).
      ema_momentum: the EMA's decay in [0, 1].
      ema_overwrite_frequency: overwrite the parameters with the EMA this often.
      loss_scale_factor: divide the gradients by this first.
      gradient_accumulation_steps: step on the mean of this many micro-steps.
      accumulator_dtype: dtype of the accumulator (default: the parameters').
      lazy: for :class:`jsgd.IndexedSlices` gradients, step only the touched
        rows, decoupled weight decay included (True); or make the gradient
        dense after the clips, as Keras 3 does (False): the dense result bit
        for bit. Without weight decay the two agree (an untouched row's
        Adagrad update is 0) but for the rounding of duplicate sums.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: for out-of-range hyperparameters.
      TypeError: for wrongly typed hyperparameters.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.adagrad(learning_rate=0.1)
      >>> u, _ = tx.update(jnp.array([0.3]), tx.init(jnp.zeros(1)))
      >>> print(f"{float(u[0]):.6f}")  # -0.1 * 0.3 / sqrt(0.1 + 0.09 + 1e-7)
      -0.068825
    """
    _validation.check_bool("lazy", lazy)
    scaler = scale_by_adagrad(
        initial_accumulator_value, epsilon, accumulator_dtype=accumulator_dtype
    )
    return keras_chain(
        lambda lr: [scaler, scale_by_learning_rate(lr)],
        learning_rate,
        lazy=lazy,
        **keras_keywords_in(locals()),
    )


def rmsprop(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    rho: jax.typing.ArrayLike = 0.9,
    momentum: jax.typing.ArrayLike = 0.0,
    epsilon: jax.typing.ArrayLike = 1e-7,
    centered: bool = False,
    *,
    clipvalue: jax.typing.ArrayLike | None = None,
    clipnorm: jax.typing.ArrayLike | None = None,
    global_clipnorm: jax.typing.ArrayLike | None = None,
    decay: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike | None = None,
    use_ema: bool = False,
    ema_momentum: jax.typing.ArrayLike = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: jax.typing.ArrayLike | None = None,
    gradient_accumulation_steps: int | None = None,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """RMSprop exactly as ``keras.optimizers.RMSprop``.

    ::

        v = rho * v + (1 - rho) * g**2
        a = rho * a + (1 - rho) * g                      (centered)
        step = lr_t * g / sqrt(v - a**2 + eps)           (centered)
        step = lr_t * g / sqrt(v + eps)                  (otherwise)
        w -= step                                        (momentum == 0)
        b = momentum * b + step;  w -= b                 (otherwise)

    Keras keeps the learning rate inside the momentum buffer ``b``, as its SGD
    does. The chain is ``scale_by_rmsprop``, ``scale_by_learning_rate`` and
    (unless ``momentum`` is the Python number 0) :func:`jsgd.momentum`,
    wrapped in the Keras keywords. State: the chain's, holding a
    :class:`jsgd.RMSpropState` (and a :class:`jsgd.MomentumState`).

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      rho: the averages' decay in [0, 1].
      momentum: momentum in [0, 1].
      epsilon: added under the square root, >= 0.
      centered: normalize by the variance rather than the second moment.
      clipvalue: clip each element to ``[-clipvalue, clipvalue]``.
      clipnorm: clip each leaf by its own L2 norm.
      global_clipnorm: clip all leaves by their global L2 norm.
      decay: legacy tf.keras decay, ``lr_t = lr / (1 + decay * t)``.
      weight_decay: decoupled weight decay, ``w -= lr_t * wd * w``.
      use_ema: keep an EMA of the parameters (:func:`jsgd.averaged_params`).
      ema_momentum: the EMA's decay in [0, 1].
      ema_overwrite_frequency: overwrite the parameters with the EMA this often.
      loss_scale_factor: divide the gradients by this first.
      gradient_accumulation_steps: step on the mean of this many micro-steps.
      accumulator_dtype: dtype of the averages and the momentum buffer.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: for out-of-range hyperparameters.
      TypeError: for wrongly typed hyperparameters.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.rmsprop(learning_rate=0.01, rho=0.75, epsilon=0.0)
      >>> u, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
      >>> u  # -0.01 * 2 / sqrt(0.25 * 4)
      Array([-0.02], dtype=float32)
    """
    _validation.check_unit_interval("momentum", momentum)
    scaler = scale_by_rmsprop(
        rho, epsilon, centered, accumulator_dtype=accumulator_dtype
    )

    def core(lr: optax.ScalarOrSchedule) -> list[optax.GradientTransformation]:
        steps: list[optax.GradientTransformation] = [
            scaler,
            scale_by_learning_rate(lr),
        ]
        if not _validation.is_static_zero(momentum):
            steps.append(momentum_trace(momentum, accumulator_dtype=accumulator_dtype))
        return steps

    return keras_chain(core, learning_rate, **keras_keywords_in(locals()))


def adam(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    beta_1: jax.typing.ArrayLike = 0.9,
    beta_2: jax.typing.ArrayLike = 0.999,
    epsilon: jax.typing.ArrayLike = 1e-7,
    amsgrad: bool = False,
    *,
    clipvalue: jax.typing.ArrayLike | None = None,
    clipnorm: jax.typing.ArrayLike | None = None,
    global_clipnorm: jax.typing.ArrayLike | None = None,
    decay: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike | None = None,
    use_ema: bool = False,
    ema_momentum: jax.typing.ArrayLike = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: jax.typing.ArrayLike | None = None,
    gradient_accumulation_steps: int | None = None,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Adam exactly as ``keras.optimizers.Adam``.

    With ``t`` the step (from 1)::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                            (amsgrad; v := v_hat)
        w -= lr_t * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + eps)

    Epsilon is added *after* the bias correction (Keras's form; optax's
    ``adam`` corrects ``v`` first, so the two differ early in training).
    With ``weight_decay`` this is Keras 3's ``AdamW``-style decoupled decay.
    The chain is ``scale_by_adam`` then ``scale_by_learning_rate``, wrapped in
    the Keras keywords. State: the chain's, holding a :class:`jsgd.AdamState`.

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      beta_1: first-moment decay in [0, 1].
      beta_2: second-moment decay in [0, 1].
      epsilon: added to ``sqrt(v)``, >= 0.
      amsgrad: use the running maximum of ``v``.
      clipvalue: clip each element to ``[-clipvalue, clipvalue]``.
      clipnorm: clip each leaf by its own L2 norm.
      global_clipnorm: clip all leaves by their global L2 norm.
      decay: legacy tf.keras decay, ``lr_t = lr / (1 + decay * t)``.
      weight_decay: decoupled weight decay, ``w -= lr_t * wd * w``.
      use_ema: keep an EMA of the parameters (:func:`jsgd.averaged_params`).
      ema_momentum: the EMA's decay in [0, 1].
      ema_overwrite_frequency: overwrite the parameters with the EMA this often.
      loss_scale_factor: divide the gradients by this first.
      gradient_accumulation_steps: step on the mean of this many micro-steps.
      accumulator_dtype: dtype of the moments (default: the parameters').

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: for out-of-range hyperparameters.
      TypeError: for wrongly typed hyperparameters.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.adam(learning_rate=0.1, epsilon=0.0)
      >>> u, _ = tx.update(jnp.array([-4.0]), tx.init(jnp.zeros(1)))
      >>> print(f"{float(u[0]):.4f}")  # the first step is -lr * sign(g)
      0.1000
    """
    scaler = scale_by_adam(
        beta_1, beta_2, epsilon, amsgrad, accumulator_dtype=accumulator_dtype
    )
    return keras_chain(
        lambda lr: [scaler, scale_by_learning_rate(lr)],
        learning_rate,
        **keras_keywords_in(locals()),
    )
