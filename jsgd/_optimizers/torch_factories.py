"""torch.optim's SGD, Adam, AdamW, RMSprop, Adagrad and SparseAdam.

Each is a *core* (torch's update rule as jsgd transforms, in torch's order)
and a decorated signature stub with torch's names, defaults and checks
(:mod:`jsgd._optimizers.torch_checks`). The keywords they share
(``maximize``, ``param_groups``, ``scheduler``, ``steps_per_epoch``) and how
they wrap the core are defined once in
:data:`jsgd._optimizers.torch_family.TORCH`, which also writes their Args
entries into each docstring (hence ``noqa: D417`` on the stubs).

Where the learning rate sits: torch keeps it *outside* the momentum buffer
(``b = m*b + g; w -= lr * b``), as optax does and Keras does not; a changed
learning rate rescales the whole buffer.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from jsgd._common import validation as _validation
from jsgd._optimizers import spec as _spec
from jsgd._optimizers import torch_checks as _checks
from jsgd._optimizers.torch_family import TORCH, refuse_sparse
from jsgd._training.fused import FusedSGD
from jsgd._transforms.adaptive import scale_by_adagrad, scale_by_adam, scale_by_rmsprop
from jsgd._transforms.learning_rate import inverse_time_decay, scale_by_learning_rate
from jsgd._transforms.momentum import momentum_trace
from jsgd._transforms.weight_decay import add_decayed_weights, decoupled_weight_decay

Steps = list[optax.GradientTransformation]
Betas = tuple[jax.typing.ArrayLike, jax.typing.ArrayLike]


def _coupled_weight_decay(weight_decay: Any) -> Steps:
    """Coupled decay, ``grad = grad + weight_decay * param`` (sparse made dense)."""
    if _validation.is_static_zero(weight_decay):
        return []
    return [add_decayed_weights(weight_decay, lazy=False)]


def _sgd_fused(values: dict[str, Any]) -> FusedSGD:
    """The fused step's rule for one group's values (jsgd.apply_gradients)."""

    def unless_zero(value: Any) -> Any:
        return None if _validation.is_static_zero(value) else value

    return FusedSGD(
        learning_rate=values["lr"],
        momentum=unless_zero(values["momentum"]),
        nesterov=values["nesterov"],
        dampening=unless_zero(values["dampening"]),
        lr_in_velocity=False,
        coupled_weight_decay=unless_zero(values["weight_decay"]),
        maximize=values["maximize"],
    )


def _sgd_core(
    lr: Any,
    momentum: Any,
    dampening: Any,
    weight_decay: Any,
    nesterov: bool,
    accumulator_dtype: Any,
) -> Steps:
    m = _validation.concrete_scalar("momentum", momentum)
    d = _validation.concrete_scalar("dampening", dampening)
    if nesterov and ((m is not None and m <= 0) or (d is not None and d != 0)):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    steps = _coupled_weight_decay(weight_decay)
    if not _validation.is_static_zero(momentum):
        steps.append(
            momentum_trace(
                momentum,
                nesterov=nesterov,
                dampening=dampening,
                accumulator_dtype=accumulator_dtype,
                lazy=False,
            )
        )
    return [*steps, scale_by_learning_rate(lr)]


@_spec.optimizer(
    class_name="SGD",
    family=TORCH,
    core=_sgd_core,
    checks={  # in torch's order (torch does not check dampening)
        "lr": _checks.learning_rate,
        "momentum": _checks.momentum,
        "weight_decay": _checks.weight_decay,
        "dampening": _checks.dampening,
        "nesterov": _checks.switch,
        "accumulator_dtype": _spec.dtype,
    },
    config_keys=(),
    sparse=True,
    fused=_sgd_fused,
)
def SGD(  # noqa: D417 (the shared Args come from TORCH)
    lr: optax.ScalarOrSchedule = 1e-3,
    momentum: jax.typing.ArrayLike = 0,
    dampening: jax.typing.ArrayLike = 0,
    weight_decay: jax.typing.ArrayLike = 0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    param_groups: list[dict[str, Any]] | None = None,
    scheduler: Any = None,
    steps_per_epoch: int | None = None,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.SGD``: momentum outside the learning rate, torch's first step.

    With ``g`` the gradient (``-g`` when ``maximize``), ``wd`` the weight
    decay, ``m`` the momentum and ``d`` the dampening::

        g = g + wd * w
        b = g                              (first step)
        b = m * b + (1 - d) * g            (later steps; m == 0: no buffer)
        g = g + m * b                      (nesterov)
        g = b                              (otherwise, with momentum)
        w = w - lr * g

    The chain is :func:`jsgd.add_decayed_weights`, :func:`jsgd.momentum_trace`
    and :func:`jsgd.scale_by_learning_rate`, each only when it does something.
    torch keeps the learning rate outside the buffer (so does optax; Keras
    does not): under a scheduler a changed ``lr`` rescales the whole buffer.
    :class:`jsgd.IndexedSlices` gradients get torch's sparse result, which is
    the dense one (a step without momentum or weight decay stays sparse).
    State: :class:`jsgd.torch.OptimizerState`, whose groups hold a
    :class:`jsgd.MomentumState` when ``momentum`` is set.

    Args:
      lr: the learning rate, a number >= 0 or a 0-d array (may be traced).
      momentum: ``m`` >= 0 (jsgd also needs ``m <= 1``).
      dampening: ``d`` in [0, 1].
      weight_decay: coupled (L2) weight decay ``wd`` >= 0.
      nesterov: the Nesterov look-ahead (needs ``m > 0`` and ``d == 0``).
      accumulator_dtype: dtype of the ``momentum_buffer`` (default: the
        parameters'; jsgd's, torch has none).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: torch's ("Invalid learning rate: -1.0", "Nesterov momentum
        requires a momentum and zero dampening", ...), also for NaN and
        infinite values; a param group's error is prefixed with its place.
      TypeError: for bools, strings or arrays where numbers go.

    Examples:
      >>> import jax.numpy as jnp, jsgd.torch, optax
      >>> tx = jsgd.torch.SGD(lr=0.1, momentum=0.9)
      >>> params = jnp.array(1.0)
      >>> state = tx.init(params)
      >>> for _ in range(2):
      ...     updates, state = tx.update(params, state, params)  # grad of w**2/2
      ...     params = optax.apply_updates(params, updates)
      >>> print(f"{float(params):.3f}")  # 0.9, then 0.9 - 0.1 * (0.9 * 1 + 0.9)
      0.720
    """
    ...  # built by @optimizer: family.build(spec, checked arguments)


def _torch_adam(
    betas: Betas,
    eps: Any,
    amsgrad: bool,
    accumulator_dtype: Any,
    exp_avg_dtype: Any,
    exp_avg_sq_dtype: Any,
    form: Any = "torch",
    sparse_rows: bool = False,
) -> optax.GradientTransformation:
    """The Adam scaling of torch's Adam family, buffers named as in its state."""
    return scale_by_adam(
        betas[0],
        betas[1],
        eps,
        amsgrad,
        accumulator_dtype=accumulator_dtype,
        momentum_dtype=exp_avg_dtype,
        velocity_dtype=exp_avg_sq_dtype,
        form=form,
        sparse_rows=sparse_rows,
    )


def _adam_core(
    lr: Any,
    betas: Betas,
    eps: Any,
    weight_decay: Any,
    amsgrad: bool,
    accumulator_dtype: Any,
    exp_avg_dtype: Any,
    exp_avg_sq_dtype: Any,
) -> Steps:
    scaler = _torch_adam(
        betas, eps, amsgrad, accumulator_dtype, exp_avg_dtype, exp_avg_sq_dtype
    )
    return [*_coupled_weight_decay(weight_decay), scaler, scale_by_learning_rate(lr)]


# In torch's order, which is not its signatures' (eps before betas).
_ADAM_CHECKS = {
    "lr": _checks.learning_rate,
    "eps": _checks.epsilon,
    "betas": _checks.betas,
    "weight_decay": _checks.weight_decay,
    "amsgrad": _checks.switch,
    "accumulator_dtype": _spec.dtype,
    "exp_avg_dtype": _spec.dtype,
    "exp_avg_sq_dtype": _spec.dtype,
}


@_spec.optimizer(
    class_name="Adam",
    family=TORCH,
    core=_adam_core,
    checks=_ADAM_CHECKS,
    config_keys=(),
)
def Adam(  # noqa: D417 (the shared Args come from TORCH)
    lr: optax.ScalarOrSchedule = 1e-3,
    betas: Betas = (0.9, 0.999),
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: jax.typing.ArrayLike = 0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    param_groups: list[dict[str, Any]] | None = None,
    scheduler: Any = None,
    steps_per_epoch: int | None = None,
    accumulator_dtype: Any | None = None,
    exp_avg_dtype: Any | None = None,
    exp_avg_sq_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.Adam``: epsilon outside the corrected root, coupled decay.

    With ``t`` the step (from 1) and ``(b1, b2) = betas``::

        g = g + weight_decay * w
        m = lerp(m, g, 1 - b1)
        v = b2 * v + (1 - b2) * g**2        (per real component if complex)
        v_max = max(v_max, v)               (amsgrad; then v := v_max)
        w = w - lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)

    Unlike :func:`jsgd.adam` (Keras's), epsilon is added *after* the bias
    correction of ``v`` and its default is 1e-8. The chain is
    :func:`jsgd.add_decayed_weights` (when ``weight_decay``),
    :func:`jsgd.scale_by_adam` (``form="torch"``) and
    :func:`jsgd.scale_by_learning_rate`. State:
    :class:`jsgd.torch.OptimizerState`, whose groups hold a
    :class:`jsgd.AdamState`.

    Args:
      lr: the learning rate, a number >= 0 or a 0-d array (may be traced).
      betas: ``(b1, b2)``, each in [0, 1).
      eps: added to the corrected root, >= 0.
      weight_decay: coupled (L2) weight decay >= 0 (for decoupled decay use
        :func:`jsgd.torch.AdamW`).
      amsgrad: use the running maximum of ``v``.
      accumulator_dtype: dtype of every buffer (default: the parameters';
        jsgd's, as the two below).
      exp_avg_dtype: dtype of ``exp_avg`` (default: ``accumulator_dtype``).
      exp_avg_sq_dtype: dtype of ``exp_avg_sq`` and ``max_exp_avg_sq``
        (default: ``accumulator_dtype``); a bfloat16 model often wants it
        float32.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: torch's ("Invalid beta parameter at index 1: 1.0", ...).
      TypeError: for bools, strings or arrays where numbers go, or sparse
        gradients ("Adam does not support sparse gradients, please consider
        SparseAdam instead").

    Examples:
      >>> import jax.numpy as jnp, jsgd.torch
      >>> tx = jsgd.torch.Adam(lr=0.1)
      >>> u, _ = tx.update(jnp.array([-4.0]), tx.init(jnp.zeros(1)))
      >>> print(f"{float(u[0]):.4f}")  # the first step is about lr * -sign(g)
      0.1000
    """
    ...  # built by @optimizer: family.build(spec, checked arguments)


def _adamw_core(
    lr: Any,
    betas: Betas,
    eps: Any,
    weight_decay: Any,
    amsgrad: bool,
    accumulator_dtype: Any,
    exp_avg_dtype: Any,
    exp_avg_sq_dtype: Any,
) -> Steps:
    steps: Steps = [
        _torch_adam(
            betas, eps, amsgrad, accumulator_dtype, exp_avg_dtype, exp_avg_sq_dtype
        ),
        scale_by_learning_rate(lr),
    ]
    if not _validation.is_static_zero(weight_decay):
        steps.append(decoupled_weight_decay(weight_decay, lr))
    return steps


@_spec.optimizer(
    class_name="AdamW",
    family=TORCH,
    core=_adamw_core,
    checks=_ADAM_CHECKS,
    config_keys=(),
)
def AdamW(  # noqa: D417 (the shared Args come from TORCH)
    lr: optax.ScalarOrSchedule = 1e-3,
    betas: Betas = (0.9, 0.999),
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: jax.typing.ArrayLike = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    param_groups: list[dict[str, Any]] | None = None,
    scheduler: Any = None,
    steps_per_epoch: int | None = None,
    accumulator_dtype: Any | None = None,
    exp_avg_dtype: Any | None = None,
    exp_avg_sq_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.AdamW``: :func:`jsgd.torch.Adam` with decoupled weight decay.

    ``w = w * (1 - lr * weight_decay)``, then the Adam step of
    :func:`jsgd.torch.Adam` without its coupled decay (Loshchilov & Hutter
    2019); ``lr`` is the group's scheduled one. The chain is
    :func:`jsgd.scale_by_adam` (``form="torch"``),
    :func:`jsgd.scale_by_learning_rate` and :func:`jsgd.decoupled_weight_decay`.
    State: :class:`jsgd.torch.OptimizerState`, whose groups hold a
    :class:`jsgd.AdamState`.

    Args:
      lr: the learning rate, a number >= 0 or a 0-d array (may be traced).
      betas: ``(b1, b2)``, each in [0, 1).
      eps: added to the corrected root, >= 0.
      weight_decay: decoupled weight decay >= 0 (default 1e-2, torch's).
      amsgrad: use the running maximum of ``v``.
      accumulator_dtype: dtype of every buffer (default: the parameters';
        jsgd's, as the two below).
      exp_avg_dtype: dtype of ``exp_avg`` (default: ``accumulator_dtype``).
      exp_avg_sq_dtype: dtype of ``exp_avg_sq`` and ``max_exp_avg_sq``
        (default: ``accumulator_dtype``); a bfloat16 model often wants it
        float32.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: torch's ("Invalid weight_decay value: -0.1", ...).
      TypeError: for bools, strings or arrays where numbers go, or sparse
        gradients.

    Examples:
      >>> import jax.numpy as jnp, jsgd.torch
      >>> tx = jsgd.torch.AdamW(lr=0.1, weight_decay=0.5)
      >>> w = jnp.array([2.0])
      >>> u, _ = tx.update(jnp.zeros(1), tx.init(w), w)
      >>> u  # a zero gradient: only the decay, -0.1 * 0.5 * 2
      Array([-0.1], dtype=float32)
    """
    ...  # built by @optimizer: family.build(spec, checked arguments)


def _rmsprop_core(
    lr: Any,
    alpha: Any,
    eps: Any,
    weight_decay: Any,
    momentum: Any,
    centered: bool,
    accumulator_dtype: Any,
    square_avg_dtype: Any,
    momentum_buffer_dtype: Any,
    grad_avg_dtype: Any,
) -> Steps:
    steps = [
        *_coupled_weight_decay(weight_decay),
        scale_by_rmsprop(
            alpha,
            eps,
            centered,
            accumulator_dtype=accumulator_dtype,
            velocity_dtype=square_avg_dtype,
            average_gradient_dtype=grad_avg_dtype,
            form="torch",
        ),
    ]
    if not _validation.is_static_zero(momentum):
        dtype = (
            accumulator_dtype
            if momentum_buffer_dtype is None
            else momentum_buffer_dtype
        )
        steps.append(momentum_trace(momentum, accumulator_dtype=dtype))
    return [*steps, scale_by_learning_rate(lr)]


@_spec.optimizer(
    class_name="RMSprop",
    family=TORCH,
    core=_rmsprop_core,
    checks={  # in torch's order
        "lr": _checks.learning_rate,
        "eps": _checks.epsilon,
        "momentum": _checks.momentum,
        "weight_decay": _checks.weight_decay,
        "alpha": _checks.alpha,
        "centered": _checks.switch,
        "accumulator_dtype": _spec.dtype,
        "square_avg_dtype": _spec.dtype,
        "momentum_buffer_dtype": _spec.dtype,
        "grad_avg_dtype": _spec.dtype,
    },
    config_keys=(),
)
def RMSprop(  # noqa: D417 (the shared Args come from TORCH)
    lr: optax.ScalarOrSchedule = 1e-2,
    alpha: jax.typing.ArrayLike = 0.99,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: jax.typing.ArrayLike = 0,
    momentum: jax.typing.ArrayLike = 0,
    centered: bool = False,
    *,
    maximize: bool = False,
    param_groups: list[dict[str, Any]] | None = None,
    scheduler: Any = None,
    steps_per_epoch: int | None = None,
    accumulator_dtype: Any | None = None,
    square_avg_dtype: Any | None = None,
    momentum_buffer_dtype: Any | None = None,
    grad_avg_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.RMSprop``: epsilon outside the root, momentum before ``lr``.

    ::

        g = g + weight_decay * w
        v = alpha * v + (1 - alpha) * g**2       (per real component if complex)
        a = lerp(a, g, 1 - alpha)                (centered)
        r = sqrt(v - a**2) + eps                 (centered)
        r = sqrt(v) + eps                        (otherwise)
        b = momentum * b + g / r;  w -= lr * b   (momentum > 0; b from 0)
        w -= lr * g / r                          (otherwise)

    Unlike :func:`jsgd.rmsprop` (Keras's) epsilon sits outside the square
    root and the learning rate outside the momentum buffer. The chain is
    :func:`jsgd.add_decayed_weights` (when ``weight_decay``),
    :func:`jsgd.scale_by_rmsprop` (``form="torch"``),
    :func:`jsgd.momentum_trace` (when ``momentum``) and
    :func:`jsgd.scale_by_learning_rate`. State:
    :class:`jsgd.torch.OptimizerState`, whose groups hold a
    :class:`jsgd.RMSpropState` (and a :class:`jsgd.MomentumState`).

    Args:
      lr: the learning rate, a number >= 0 or a 0-d array (may be traced).
      alpha: the averages' decay, >= 0 (jsgd also needs ``alpha <= 1``).
      eps: added to the root, >= 0.
      weight_decay: coupled (L2) weight decay >= 0.
      momentum: >= 0 (jsgd also needs ``momentum <= 1``).
      centered: normalize by the variance estimate.
      accumulator_dtype: dtype of every buffer (default: the parameters';
        jsgd's, as the three below).
      square_avg_dtype: dtype of ``square_avg`` (default:
        ``accumulator_dtype``).
      momentum_buffer_dtype: dtype of ``momentum_buffer`` (default:
        ``accumulator_dtype``).
      grad_avg_dtype: dtype of ``grad_avg`` (default: ``accumulator_dtype``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: torch's ("Invalid alpha value: -0.5", ...).
      TypeError: for bools, strings or arrays where numbers go, or sparse
        gradients ("RMSprop does not support sparse gradients").

    Examples:
      >>> import jax.numpy as jnp, jsgd.torch
      >>> tx = jsgd.torch.RMSprop(lr=0.01, alpha=0.75, eps=0.0)
      >>> u, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
      >>> u  # -0.01 * 2 / sqrt(0.25 * 4)
      Array([-0.02], dtype=float32)
    """
    ...  # built by @optimizer: family.build(spec, checked arguments)


def _adagrad_core(
    lr: Any,
    lr_decay: Any,
    weight_decay: Any,
    initial_accumulator_value: Any,
    eps: Any,
    accumulator_dtype: Any,
) -> Steps:
    steps: Steps = []
    decay = _validation.concrete_scalar("weight_decay", weight_decay)
    if decay is not None and decay != 0:
        # A traced weight decay (inject_hyperparams) may be 0: its sparse
        # gradients are made dense, which is torch's result when it is 0.
        steps.append(
            refuse_sparse("weight_decay option is not compatible with sparse gradients")
        )
    steps += _coupled_weight_decay(weight_decay)
    steps.append(
        scale_by_adagrad(
            initial_accumulator_value,
            eps,
            accumulator_dtype=accumulator_dtype,
            form="torch",
        )
    )
    if not _validation.is_static_zero(lr_decay):
        lr = inverse_time_decay(lr, lr_decay)
    return [*steps, scale_by_learning_rate(lr)]


@_spec.optimizer(
    class_name="Adagrad",
    family=TORCH,
    core=_adagrad_core,
    checks={
        "lr": _checks.learning_rate,
        "lr_decay": _checks.lr_decay,
        "weight_decay": _checks.weight_decay,
        "initial_accumulator_value": _checks.initial_accumulator_value,
        "eps": _checks.epsilon,
        "accumulator_dtype": _spec.dtype,
    },
    config_keys=(),
    sparse=True,
)
def Adagrad(  # noqa: D417 (the shared Args come from TORCH)
    lr: optax.ScalarOrSchedule = 1e-2,
    lr_decay: jax.typing.ArrayLike = 0,
    weight_decay: jax.typing.ArrayLike = 0,
    initial_accumulator_value: jax.typing.ArrayLike = 0,
    eps: jax.typing.ArrayLike = 1e-10,
    *,
    maximize: bool = False,
    param_groups: list[dict[str, Any]] | None = None,
    scheduler: Any = None,
    steps_per_epoch: int | None = None,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.Adagrad``: epsilon outside the root, ``lr_decay`` per step.

    With ``t`` the step (from 1)::

        g = g + weight_decay * w
        s = s + g**2                          (s from initial_accumulator_value)
        w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Unlike :func:`jsgd.adagrad` (Keras's) epsilon sits outside the root and
    the accumulator starts at 0 by default. :class:`jsgd.IndexedSlices`
    gradients get torch's sparse rule (duplicates summed, only the touched
    rows' sums change: the dense result); with ``weight_decay`` they are
    refused, as in torch. The chain is :func:`jsgd.add_decayed_weights`
    (when ``weight_decay``), :func:`jsgd.scale_by_adagrad` (``form="torch"``)
    and :func:`jsgd.scale_by_learning_rate` (at
    :func:`jsgd.inverse_time_decay` when ``lr_decay``). State:
    :class:`jsgd.torch.OptimizerState`, whose groups hold a
    :class:`jsgd.AdagradState`.

    Args:
      lr: the learning rate, a number >= 0 or a 0-d array (may be traced).
      lr_decay: the learning rate's inverse-time decay per step, >= 0.
      weight_decay: coupled (L2) weight decay >= 0.
      initial_accumulator_value: the sums' start, >= 0.
      eps: added to the root, >= 0.
      accumulator_dtype: dtype of ``sum`` (default: the parameters'; jsgd's).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: torch's ("Invalid lr_decay value: -1.0", ...).
      TypeError: for bools, strings or arrays where numbers go, or sparse
        gradients with ``weight_decay``.

    Examples:
      >>> import jax.numpy as jnp, jsgd.torch
      >>> tx = jsgd.torch.Adagrad(lr=0.1, eps=0.0)
      >>> u, _ = tx.update(jnp.array([3.0]), tx.init(jnp.zeros(1)))
      >>> u  # -0.1 * 3 / sqrt(9)
      Array([-0.1], dtype=float32)
    """
    ...  # built by @optimizer: family.build(spec, checked arguments)


def _sparse_adam_core(
    lr: Any,
    betas: Betas,
    eps: Any,
    accumulator_dtype: Any,
    exp_avg_dtype: Any,
    exp_avg_sq_dtype: Any,
) -> Steps:
    scaler = _torch_adam(
        betas,
        eps,
        False,
        accumulator_dtype,
        exp_avg_dtype,
        exp_avg_sq_dtype,
        form="torch_sparse",
        sparse_rows=True,
    )
    return [scaler, scale_by_learning_rate(lr)]


@_spec.optimizer(
    class_name="SparseAdam",
    family=TORCH,
    core=_sparse_adam_core,
    checks={  # in torch's order
        "lr": _checks.positive_learning_rate,
        "eps": _checks.positive_epsilon,
        "betas": _checks.betas,
        "accumulator_dtype": _spec.dtype,
        "exp_avg_dtype": _spec.dtype,
        "exp_avg_sq_dtype": _spec.dtype,
    },
    config_keys=(),
    sparse=True,
)
def SparseAdam(  # noqa: D417 (the shared Args come from TORCH)
    lr: optax.ScalarOrSchedule = 1e-3,
    betas: Betas = (0.9, 0.999),
    eps: jax.typing.ArrayLike = 1e-8,
    *,
    maximize: bool = False,
    param_groups: list[dict[str, Any]] | None = None,
    scheduler: Any = None,
    steps_per_epoch: int | None = None,
    accumulator_dtype: Any | None = None,
    exp_avg_dtype: Any | None = None,
    exp_avg_sq_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.SparseAdam``: Adam on the rows a sparse gradient touches.

    For each :class:`jsgd.IndexedSlices` gradient (duplicates summed), with
    ``t`` the step (from 1), on the touched rows only::

        m = m + (g - m) * (1 - b1)
        v = v + (g**2 - v) * (1 - b2)
        w = w - lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)

    Untouched rows keep their moments and do not move. Epsilon sits on the
    uncorrected root, as in Keras's Adam (torch's Adam has it on the corrected
    one). The chain is :func:`jsgd.scale_by_adam` (``form="torch_sparse"``,
    ``sparse_rows=True``) and :func:`jsgd.scale_by_learning_rate`. Dense
    gradients and complex parameters are refused, as in torch. State:
    :class:`jsgd.torch.OptimizerState`, whose groups hold a
    :class:`jsgd.AdamState`.

    Args:
      lr: the learning rate, a number > 0 or a 0-d array (may be traced).
      betas: ``(b1, b2)``, each in [0, 1).
      eps: added to the root, > 0.
      accumulator_dtype: dtype of every buffer (default: the parameters';
        jsgd's, as the two below).
      exp_avg_dtype: dtype of ``exp_avg`` (default: ``accumulator_dtype``).
      exp_avg_sq_dtype: dtype of ``exp_avg_sq`` and ``max_exp_avg_sq``
        (default: ``accumulator_dtype``); a bfloat16 model often wants it
        float32.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: torch's ("Invalid learning rate: 0.0", ...); at ``init``,
        for complex parameters.
      TypeError: for bools, strings or arrays where numbers go; at
        ``update``, for a dense gradient ("SparseAdam does not support dense
        gradients, please consider Adam instead").

    Examples:
      >>> import jax.numpy as jnp, jsgd, jsgd.torch
      >>> tx = jsgd.torch.SparseAdam(lr=0.1)
      >>> table = jnp.zeros((3, 2))
      >>> g = jsgd.IndexedSlices(jnp.ones((1, 2)), jnp.array([1]), (3, 2))
      >>> u, _ = tx.update(g, tx.init(table))
      >>> jsgd.apply_updates(table, u)  # only row 1 moves, by about -lr
      Array([[ 0.        ,  0.        ],
             [-0.09999996, -0.09999996],
             [ 0.        ,  0.        ]], dtype=float32)
    """
    ...  # built by @optimizer: family.build(spec, checked arguments)
