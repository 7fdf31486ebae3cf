"""jsgd: Keras-exact SGD-family optimizers as composable optax transformations.

Every transform is a factory returning an ``optax.GradientTransformationExtraArgs``
whose state is a typed NamedTuple (or ``optax.EmptyState``). Keras keeps the
learning rate inside the velocity, optax and torch outside it; jsgd gives both:
``chain(scale_by_learning_rate(lr), momentum(m))`` is Keras's rule,
``chain(momentum(m), scale_by_learning_rate(lr))`` optax's and torch's.
"""

from jsgd._clipping import clip_by_global_norm, clip_by_norm, clip_by_value, global_norm
from jsgd._keras_optimizer import KerasOptimizer
from jsgd._keras_sgd import SGD
from jsgd._learning_rate import (
    ScheduleState,
    inverse_time_decay,
    scale_by_learning_rate,
)
from jsgd._momentum import MomentumState, momentum, nesterov
from jsgd._sgd import sgd
from jsgd._weight_decay import add_decayed_weights, decoupled_weight_decay

__version__ = "0.1.0"

__all__ = [
    "KerasOptimizer",
    "MomentumState",
    "SGD",
    "ScheduleState",
    "add_decayed_weights",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "decoupled_weight_decay",
    "global_norm",
    "inverse_time_decay",
    "momentum",
    "nesterov",
    "scale_by_learning_rate",
    "sgd",
]
