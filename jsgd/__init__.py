"""jsgd: Keras-exact SGD-family optimizers as composable optax transformations.

Every transform is a factory returning an ``optax.GradientTransformationExtraArgs``
whose state is a typed NamedTuple (or ``optax.EmptyState``). Keras keeps the
learning rate inside the velocity, optax and torch outside it; jsgd gives both:
``chain(scale_by_learning_rate(lr), momentum(m))`` is Keras's rule,
``chain(momentum(m), scale_by_learning_rate(lr))`` optax's and torch's.
"""

from jsgd import schedules
from jsgd._accumulation import AccumulateGradientsState, accumulate_gradients
from jsgd._adaptive import (
    AdagradState,
    AdamState,
    RMSpropState,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_rmsprop,
)
from jsgd._adaptive_optimizers import adagrad, adam, rmsprop
from jsgd._apply_updates import apply_updates
from jsgd._clipping import clip_by_global_norm, clip_by_norm, clip_by_value, global_norm
from jsgd._ema import AverageParamsState, average_params, averaged_params
from jsgd._indexed_slices import IndexedSlices
from jsgd._keras_classes import SGD, Adagrad, Adam, RMSprop
from jsgd._keras_optimizer import KerasOptimizer
from jsgd._learning_rate import (
    ScheduleState,
    inverse_time_decay,
    scale_by_learning_rate,
)
from jsgd._momentum import MomentumState, momentum, nesterov
from jsgd._row_grad import value_and_row_grad
from jsgd._sgd import sgd
from jsgd._sharding import zero1_shardings
from jsgd._sweep import SweepResult, sweep
from jsgd._training import make_train_step
from jsgd._weight_decay import add_decayed_weights, decoupled_weight_decay

__version__ = "0.1.0"

__all__ = [
    "accumulate_gradients",
    "adagrad",
    "adam",
    "add_decayed_weights",
    "apply_updates",
    "average_params",
    "averaged_params",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "decoupled_weight_decay",
    "global_norm",
    "inverse_time_decay",
    "make_train_step",
    "momentum",
    "nesterov",
    "rmsprop",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rmsprop",
    "schedules",
    "sgd",
    "sweep",
    "value_and_row_grad",
    "zero1_shardings",
    "AccumulateGradientsState",
    "Adagrad",
    "AdagradState",
    "Adam",
    "AdamState",
    "AverageParamsState",
    "IndexedSlices",
    "KerasOptimizer",
    "MomentumState",
    "RMSprop",
    "RMSpropState",
    "SGD",
    "ScheduleState",
    "SweepResult",
]
