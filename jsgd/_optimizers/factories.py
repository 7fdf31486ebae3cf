"""The Keras-style optimizers ``sgd``, ``adagrad``, ``rmsprop``, ``adam``.

Each optimizer is a *core* (its math as jsgd transforms, at the learning rate
``lr_t``) and a decorated signature stub (names, defaults, docs) whose
:func:`~jsgd._optimizers.spec.optimizer` declaration says the rest: checks,
config keys, sparse support. The Keras keywords they share, and how they
wrap the core, are defined once in
:data:`jsgd._optimizers.keras_keywords.KERAS`, which also writes their Args
entries into each docstring (hence ``noqa: D417`` on the stubs).
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from jsgd._common import validation as _validation
from jsgd._optimizers import spec as _spec
from jsgd._optimizers.keras_keywords import KERAS
from jsgd._training.fused import FusedSGD
from jsgd._transforms.adaptive import scale_by_adagrad, scale_by_adam, scale_by_rmsprop
from jsgd._transforms.learning_rate import scale_by_learning_rate
from jsgd._transforms.momentum import momentum_trace

Steps = list[optax.GradientTransformation]


def _sgd_core(
    learning_rate: optax.ScalarOrSchedule,
    momentum: Any,
    nesterov: bool,
    dampening: Any,
    lr_in_velocity: bool,
    accumulator_dtype: Any,
) -> Steps:
    learning_rate_step = scale_by_learning_rate(learning_rate)
    if _validation.is_static_zero(momentum):
        return [learning_rate_step]
    velocity_step = momentum_trace(
        momentum,
        nesterov=nesterov,
        dampening=dampening,
        accumulator_dtype=accumulator_dtype,
    )
    if lr_in_velocity:
        return [learning_rate_step, velocity_step]
    return [velocity_step, learning_rate_step]


def _sgd_fused(arguments: dict[str, Any]) -> FusedSGD | None:
    """The fused step covers SGD without these keywords (dense, float32)."""
    off = ("clipvalue", "clipnorm", "loss_scale_factor")
    others = ("gradient_accumulation_steps", "weight_decay_exclude")
    if any(arguments[k] is not None for k in (*off, *others)):
        return None
    if arguments["use_ema"] or not _validation.is_static_zero(arguments["decay"]):
        return None

    def unless_zero(value: Any) -> Any:
        return None if value is None or _validation.is_static_zero(value) else value

    return FusedSGD(
        learning_rate=arguments["learning_rate"],
        momentum=unless_zero(arguments["momentum"]),
        nesterov=arguments["nesterov"],
        dampening=unless_zero(arguments["dampening"]),
        lr_in_velocity=arguments["lr_in_velocity"],
        weight_decay=unless_zero(arguments["weight_decay"]),
        global_clipnorm=arguments["global_clipnorm"],
    )


@_spec.optimizer(
    class_name="SGD",
    family=KERAS,
    core=_sgd_core,
    checks={
        "learning_rate": _spec.learning_rate,
        "momentum": _spec.unit_interval,
        "nesterov": _spec.switch,
        "dampening": _spec.unit_interval,
        "lr_in_velocity": _spec.switch,
        "accumulator_dtype": _spec.dtype,
        "lazy": _spec.switch,
    },
    config_keys=("learning_rate", "momentum", "nesterov"),
    sparse=True,
    fused=_sgd_fused,
)
def sgd(  # noqa: D417 (the Keras keywords' Args come from KERAS)
    learning_rate: optax.ScalarOrSchedule = 0.01,
    momentum: jax.typing.ArrayLike = 0.0,
    nesterov: bool = False,
    *,
    clipvalue: jax.typing.ArrayLike | None = None,
    clipnorm: jax.typing.ArrayLike | None = None,
    global_clipnorm: jax.typing.ArrayLike | None = None,
    decay: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike | None = None,
    weight_decay_exclude: tuple[str, ...] | None = None,
    weight_decay_exclude_by_path: bool = False,
    use_ema: bool = False,
    ema_momentum: jax.typing.ArrayLike = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: jax.typing.ArrayLike | None = None,
    gradient_accumulation_steps: int | None = None,
    dampening: jax.typing.ArrayLike = 0.0,
    lr_in_velocity: bool = True,
    accumulator_dtype: Any | None = None,
    lazy: bool = True,
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
    :class:`jsgd.EmaState` when those keywords are used.

    Args:
      learning_rate: a finite number >= 0, a 0-d array, or a schedule
        ``count -> lr`` (count from 0).
      momentum: ``m`` in [0, 1].
      nesterov: use the Nesterov look-ahead.
      dampening: torch's dampening ``d`` in [0, 1].
      lr_in_velocity: True for Keras's rule, False for optax's/torch's.
      accumulator_dtype: dtype of the velocity (default: the parameters').
      lazy: for :class:`jsgd.IndexedSlices` gradients (embedding rows), the
        legacy tf.keras sparse rule: duplicates summed, then only the touched
        rows' velocity (and decoupled weight decay) change (True); or the
        dense result (False, Keras 3). See "Sparse rows" below.

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
    ...  # built by @optimizer: family.build(spec, checked arguments)


def _adagrad_core(
    learning_rate: optax.ScalarOrSchedule,
    initial_accumulator_value: Any,
    epsilon: Any,
    accumulator_dtype: Any,
) -> Steps:
    scaler = scale_by_adagrad(
        initial_accumulator_value, epsilon, accumulator_dtype=accumulator_dtype
    )
    return [scaler, scale_by_learning_rate(learning_rate)]


@_spec.optimizer(
    class_name="Adagrad",
    family=KERAS,
    core=_adagrad_core,
    checks={
        "learning_rate": _spec.learning_rate,
        "initial_accumulator_value": _spec.non_negative,
        "epsilon": _spec.non_negative,
        "accumulator_dtype": _spec.dtype,
        "lazy": _spec.switch,
    },
    config_keys=("learning_rate", "initial_accumulator_value", "epsilon"),
    sparse=True,
)
def adagrad(  # noqa: D417 (the Keras keywords' Args come from KERAS)
    learning_rate: optax.ScalarOrSchedule = 0.001,
    initial_accumulator_value: jax.typing.ArrayLike = 0.1,
    epsilon: jax.typing.ArrayLike = 1e-7,
    *,
    clipvalue: jax.typing.ArrayLike | None = None,
    clipnorm: jax.typing.ArrayLike | None = None,
    global_clipnorm: jax.typing.ArrayLike | None = None,
    decay: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike | None = None,
    weight_decay_exclude: tuple[str, ...] | None = None,
    weight_decay_exclude_by_path: bool = False,
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
    ...  # built by @optimizer: family.build(spec, checked arguments)


def _rmsprop_core(
    learning_rate: optax.ScalarOrSchedule,
    rho: Any,
    momentum: Any,
    epsilon: Any,
    centered: bool,
    accumulator_dtype: Any,
    velocity_dtype: Any,
    momentum_dtype: Any,
    average_gradient_dtype: Any,
) -> Steps:
    steps: Steps = [
        scale_by_rmsprop(
            rho,
            epsilon,
            centered,
            accumulator_dtype=accumulator_dtype,
            velocity_dtype=velocity_dtype,
            average_gradient_dtype=average_gradient_dtype,
            sparse_rows=True,  # only reached by IndexedSlices when lazy
        ),
        scale_by_learning_rate(learning_rate),
    ]
    if not _validation.is_static_zero(momentum):
        dtype = accumulator_dtype if momentum_dtype is None else momentum_dtype
        steps.append(momentum_trace(momentum, accumulator_dtype=dtype))
    return steps


@_spec.optimizer(
    class_name="RMSprop",
    family=KERAS,
    core=_rmsprop_core,
    checks={
        "learning_rate": _spec.learning_rate,
        "rho": _spec.unit_interval,
        "momentum": _spec.unit_interval,
        "epsilon": _spec.non_negative,
        "centered": _spec.switch,
        "accumulator_dtype": _spec.dtype,
        "velocity_dtype": _spec.dtype,
        "momentum_dtype": _spec.dtype,
        "average_gradient_dtype": _spec.dtype,
        "lazy": _spec.switch,
    },
    config_keys=("learning_rate", "rho", "momentum", "epsilon", "centered"),
    sparse=True,
)
def rmsprop(  # noqa: D417 (the Keras keywords' Args come from KERAS)
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
    weight_decay_exclude: tuple[str, ...] | None = None,
    weight_decay_exclude_by_path: bool = False,
    use_ema: bool = False,
    ema_momentum: jax.typing.ArrayLike = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: jax.typing.ArrayLike | None = None,
    gradient_accumulation_steps: int | None = None,
    accumulator_dtype: Any | None = None,
    velocity_dtype: Any | None = None,
    momentum_dtype: Any | None = None,
    average_gradient_dtype: Any | None = None,
    lazy: bool = True,
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
    (unless ``momentum`` is the Python number 0) :func:`jsgd.momentum_trace`,
    wrapped in the Keras keywords. State: the chain's, holding a
    :class:`jsgd.RMSpropState` (and a :class:`jsgd.MomentumState`).

    Sparse rows: a gradient leaf may be a :class:`jsgd.IndexedSlices`; its
    update is then an ``IndexedSlices`` to apply with
    :func:`jsgd.apply_updates`. ``lazy=True`` is legacy tf.keras's sparse
    RMSprop (``SparseApplyRMSProp`` / ``SparseApplyCenteredRMSProp``, which
    its ``_resource_apply_sparse`` calls; with momentum 0 the same kernels
    at momentum 0): duplicates summed, then on the touched rows ``i`` only::

        ms[i] = rho * ms[i] + (1 - rho) * g[i]**2
        mg[i] = rho * mg[i] + (1 - rho) * g[i]                    (centered)
        denom = ms[i] - mg[i]**2 + eps                            (centered)
        denom = ms[i] + eps                                       (otherwise)
        mom[i] = momentum * mom[i] + lr_t * g[i] / sqrt(denom)
        w[i] -= mom[i]

    (each of ``scale_by_rmsprop``, ``scale_by_learning_rate`` and
    ``momentum_trace`` steps the touched rows; untouched rows keep stale
    averages and momentum). ``lazy=False`` is Keras 3: the gradient is made
    dense after the clips, and the step is the dense one bit for bit.
    Decoupled weight decay follows ``lazy`` (touched rows only when True).

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      rho: the averages' decay in [0, 1].
      momentum: momentum in [0, 1].
      epsilon: added under the square root, >= 0.
      centered: normalize by the variance rather than the second moment.
      accumulator_dtype: dtype of the averages and the momentum buffer
        (default: the parameters').
      velocity_dtype: dtype of the ``velocity`` slot (the average of
        ``g**2``; default: ``accumulator_dtype``).
      momentum_dtype: dtype of the ``momentum`` slot (default:
        ``accumulator_dtype``).
      average_gradient_dtype: dtype of the ``average_gradient`` slot
        (centered; default: ``accumulator_dtype``).
      lazy: for :class:`jsgd.IndexedSlices` gradients, the legacy tf.keras
        sparse rule: only the touched rows' averages, momentum (and
        decoupled weight decay) change (True); or the dense result (False,
        Keras 3). See "Sparse rows" above.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: for out-of-range hyperparameters; ``clipnorm`` together
        with ``global_clipnorm``.
      TypeError: for wrongly typed hyperparameters (a non-bool ``centered``
        or ``lazy`` included).

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.rmsprop(learning_rate=0.01, rho=0.75, epsilon=0.0)
      >>> u, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
      >>> u  # -0.01 * 2 / sqrt(0.25 * 4)
      Array([-0.02], dtype=float32)
    """
    ...  # built by @optimizer: family.build(spec, checked arguments)


def _adam_core(
    learning_rate: optax.ScalarOrSchedule,
    beta_1: Any,
    beta_2: Any,
    epsilon: Any,
    amsgrad: bool,
    accumulator_dtype: Any,
    momentum_dtype: Any,
    velocity_dtype: Any,
) -> Steps:
    scaler = scale_by_adam(
        beta_1,
        beta_2,
        epsilon,
        amsgrad,
        accumulator_dtype=accumulator_dtype,
        momentum_dtype=momentum_dtype,
        velocity_dtype=velocity_dtype,
        sparse_rows=True,  # only reached by IndexedSlices when lazy
    )
    return [scaler, scale_by_learning_rate(learning_rate)]


@_spec.optimizer(
    class_name="Adam",
    family=KERAS,
    core=_adam_core,
    checks={
        "learning_rate": _spec.learning_rate,
        "beta_1": _spec.unit_interval,
        "beta_2": _spec.unit_interval,
        "epsilon": _spec.non_negative,
        "amsgrad": _spec.switch,
        "accumulator_dtype": _spec.dtype,
        "momentum_dtype": _spec.dtype,
        "velocity_dtype": _spec.dtype,
        "lazy": _spec.switch,
    },
    config_keys=("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"),
    sparse=True,
)
def adam(  # noqa: D417 (the Keras keywords' Args come from KERAS)
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
    weight_decay_exclude: tuple[str, ...] | None = None,
    weight_decay_exclude_by_path: bool = False,
    use_ema: bool = False,
    ema_momentum: jax.typing.ArrayLike = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: jax.typing.ArrayLike | None = None,
    gradient_accumulation_steps: int | None = None,
    accumulator_dtype: Any | None = None,
    momentum_dtype: Any | None = None,
    velocity_dtype: Any | None = None,
    lazy: bool = True,
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

    Sparse rows: a gradient leaf may be a :class:`jsgd.IndexedSlices`; its
    update is then an ``IndexedSlices`` to apply with
    :func:`jsgd.apply_updates`. ``lazy=True`` is the lazy-Adam rule
    (``scale_by_adam(sparse_rows=True)``, TensorFlow Addons' ``LazyAdam`` in
    Keras's form): duplicates summed, then on the touched rows ``i`` only,
    with ``t`` the global step count (every step counts, touched or not)::

        m[i] = m[i] + (g[i] - m[i]) * (1 - beta_1)
        v[i] = v[i] + (g[i]**2 - v[i]) * (1 - beta_2)
        v_hat[i] = max(v_hat[i], v[i])                   (amsgrad; v := v_hat)
        w[i] -= lr_t * sqrt(1 - beta_2**t) / (1 - beta_1**t)
                * m[i] / (sqrt(v[i]) + eps)

    Untouched rows keep stale moments and do not move. ``lazy=False`` is
    Keras 3: the gradient is made dense after the clips, and the step is the
    dense one bit for bit. Decoupled weight decay follows ``lazy`` (touched
    rows only when True).

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      beta_1: first-moment decay in [0, 1].
      beta_2: second-moment decay in [0, 1].
      epsilon: added to ``sqrt(v)``, >= 0.
      amsgrad: use the running maximum of ``v``.
      accumulator_dtype: dtype of the moments (default: the parameters').
      momentum_dtype: dtype of the ``momentum`` slot (the first moment;
        default: ``accumulator_dtype``).
      velocity_dtype: dtype of the ``velocity`` (and ``velocity_hat``)
        slots, the second moment (default: ``accumulator_dtype``); a
        bfloat16 model often wants it float32.
      lazy: for :class:`jsgd.IndexedSlices` gradients, the lazy-Adam rule:
        only the touched rows' moments (and decoupled weight decay) change
        (True); or the dense result (False, Keras 3). See "Sparse rows"
        above.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: for out-of-range hyperparameters; ``clipnorm`` together
        with ``global_clipnorm``.
      TypeError: for wrongly typed hyperparameters (a non-bool ``amsgrad``
        or ``lazy`` included).

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.adam(learning_rate=0.1, epsilon=0.0)
      >>> u, _ = tx.update(jnp.array([-4.0]), tx.init(jnp.zeros(1)))
      >>> print(f"{float(u[0]):.4f}")  # the first step is -lr * sign(g)
      0.1000
    """
    ...  # built by @optimizer: family.build(spec, checked arguments)
