"""Learning-rate schedules with Keras 3's names, signatures, configs and math.

Each schedule is an immutable, hashable callable ``count -> lr``: ``count`` is
the number of optimizer steps taken so far (an int, or an int32 array that may
be traced under ``jit`` or ``vmap``) and ``lr`` a float32 array equal to what
``keras.optimizers.schedules`` computes. Pass one wherever a schedule is
accepted (``jsgd.sgd``, ``jsgd.SGD``, ``optax.sgd``...).

``get_config()`` / ``from_config(config)`` and ``serialize`` /
``deserialize`` round-trip schedules through JSON in Keras's format;
``deserialize`` also reads ``keras.optimizers.schedules.serialize``'s output.

Examples:
  >>> import optax
  >>> from jsgd import schedules
  >>> schedule = schedules.CosineDecay(0.1, decay_steps=1000)
  >>> round(float(schedule(500)), 4)
  0.05
  >>> tx = optax.sgd(schedule)
  >>> schedules.deserialize(schedules.serialize(schedule)) == schedule
  True
"""

from jsgd._schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
    deserialize,
    serialize,
)

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "serialize",
]
