"""jsgd: Keras- and torch-exact optimizers as composable optax transformations.

Every transform is a factory returning an ``optax.GradientTransformationExtraArgs``
whose state is a typed NamedTuple (or ``optax.EmptyState``). Keras keeps the
learning rate inside the velocity, optax and torch outside it; jsgd gives both:
``chain(scale_by_learning_rate(lr), momentum_trace(m))`` is Keras's rule,
``chain(momentum_trace(m), scale_by_learning_rate(lr))`` optax's and torch's.

The implementation is layered, each layer importing only those below it:
``_native`` (the optional native kernel's loader), ``_sparse`` (row-sparse
gradients), ``_common`` (tree and validation helpers),
``_transforms`` (the gradient transformations), ``_schedules`` (Keras's
schedules), ``_lr_scheduler`` (torch's schedulers), ``_training`` (training
helpers for any transformation) and ``_optimizers`` (each optimizer defined
once: Keras's factories and classes, :mod:`jsgd.torch`'s).
"""

import warnings as _warnings
from typing import Any as _Any

from jsgd import schedules, torch
from jsgd._optimizers.classes import SGD, Adagrad, Adam, KerasOptimizer, RMSprop
from jsgd._optimizers.factories import adagrad, adam, rmsprop, sgd
from jsgd._optimizers.keras_variables import (
    keras_iterations,
    keras_variables,
    state_from_keras_variables,
)
from jsgd._optimizers.loss_scale_optimizer import (
    LossScaleOptimizer,
    LossScaleOptimizerState,
)
from jsgd._optimizers.multi_optimizer import MultiOptimizer, MultiOptimizerState
from jsgd._sparse.apply_updates import apply_updates
from jsgd._sparse.indexed_slices import IndexedSlices
from jsgd._sparse.row_grad import value_and_row_grad
from jsgd._training.fused import apply_gradients, fused_available
from jsgd._training.packed import Packed, pack
from jsgd._training.sharding import zero1_shardings
from jsgd._training.sweep import SweepResult, sweep
from jsgd._training.train_step import make_train_step
from jsgd._transforms.accumulation import AccumulateGradientsState, accumulate_gradients
from jsgd._transforms.adaptive import (
    AdagradState,
    AdamState,
    RMSpropState,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_rmsprop,
)
from jsgd._transforms.clipping import (
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    global_norm,
)
from jsgd._transforms.ema import EmaState, averaged_params, with_ema
from jsgd._transforms.kahan import KahanSummationState, kahan_summation
from jsgd._transforms.learning_rate import (
    ScheduleState,
    inverse_time_decay,
    scale_by_learning_rate,
)
from jsgd._transforms.momentum import MomentumState, momentum_trace, nesterov_trace
from jsgd._transforms.step_count import StepCountState
from jsgd._transforms.stochastic_rounding import (
    StochasticRoundingState,
    stochastic_rounding,
)
from jsgd._transforms.weight_decay import (
    add_decayed_weights,
    decoupled_weight_decay,
    weight_decay_mask,
)

__version__ = "0.1.0"

__all__ = [
    "accumulate_gradients",
    "adagrad",
    "adam",
    "add_decayed_weights",
    "apply_gradients",
    "apply_updates",
    "averaged_params",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "decoupled_weight_decay",
    "fused_available",
    "global_norm",
    "inverse_time_decay",
    "kahan_summation",
    "keras_iterations",
    "keras_variables",
    "make_train_step",
    "momentum_trace",
    "nesterov_trace",
    "pack",
    "rmsprop",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rmsprop",
    "schedules",
    "sgd",
    "state_from_keras_variables",
    "stochastic_rounding",
    "sweep",
    "torch",
    "value_and_row_grad",
    "weight_decay_mask",
    "with_ema",
    "zero1_shardings",
    "AccumulateGradientsState",
    "Adagrad",
    "AdagradState",
    "Adam",
    "AdamState",
    "EmaState",
    "IndexedSlices",
    "KahanSummationState",
    "KerasOptimizer",
    "LossScaleOptimizer",
    "LossScaleOptimizerState",
    "MomentumState",
    "MultiOptimizer",
    "MultiOptimizerState",
    "Packed",
    "RMSprop",
    "RMSpropState",
    "SGD",
    "ScheduleState",
    "StepCountState",
    "StochasticRoundingState",
    "SweepResult",
]

# Old public names, kept for one release (see CHANGELOG.md).
_DEPRECATED = {
    "momentum": "momentum_trace",
    "nesterov": "nesterov_trace",
    "average_params": "with_ema",
    "AverageParamsState": "EmaState",
}


def __getattr__(name: str) -> _Any:
    new = _DEPRECATED.get(name)
    if new is None:
        raise AttributeError(f"module 'jsgd' has no attribute {name!r}")
    _warnings.warn(
        f"jsgd.{name} is deprecated and will be removed in the next release; "
        f"use jsgd.{new}.",
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]
