"""Keras 3's learning-rate schedules as immutable, serializable JAX callables.

Each class has the name, signature, defaults, ``get_config`` keys and float32
arithmetic of its ``keras.optimizers.schedules`` namesake (Keras 3, JAX
backend), in the same operation order: evaluated the same way (both eagerly
or both under ``jit``) the values agree bit for bit, except where noted
below, and otherwise to float32 rounding. A schedule maps ``count``, the
number of optimizer steps taken so far, to a float32 learning rate; it is a
plain callable, so it works wherever optax takes a schedule
(``optax.sgd(schedule)``, ``jsgd.sgd(schedule)``) and under ``jit`` and
``vmap``.

Hyperparameters are static configuration: concrete Python numbers (NumPy
scalars and concrete 0-d arrays are turned into Python numbers; traced values
are rejected), validated when the schedule is built. That keeps a schedule
hashable (usable as a ``jit`` static argument) and its config
JSON-serializable. To trace a hyperparameter, write the schedule as a
function of it instead.

Deliberate differences from Keras:

- Out-of-range hyperparameters raise (Keras checks only ``decay_steps``).
- The result is always float32: Keras computes in the dtype of
  ``initial_learning_rate`` (of ``values[0]`` for ``PiecewiseConstantDecay``),
  so a Python int there gives integer arithmetic.
- ``PiecewiseConstantDecay`` needs at least one boundary (Keras accepts none,
  then fails when called) and integer, strictly increasing boundaries.
- Under ``jit`` XLA's division is not correctly rounded, and Keras 3 then
  drops a staircase, or restarts a ``cycle`` or a ``t_mul=1`` restart, one
  step late or early at some exact multiples of the decay steps, and
  ``PolynomialDecay`` with a fractional ``power`` can return NaN from
  ``decay_steps`` on. Here those floors and ceilings are exact and the NaN
  cannot occur, so the values are those of Keras's eager evaluation.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from jsgd._common import validation as _validation

_F32 = jnp.float32
_INT32 = np.iinfo(np.int32)
_Schedule = TypeVar("_Schedule", bound="LearningRateSchedule")


# --------------------------------------------------------------------------- #
# Validation and normalization of the (static) hyperparameters.
# --------------------------------------------------------------------------- #


def _number(name: str, value: Any) -> int | float:
    """A hyperparameter as a Python int or float (NumPy/JAX scalars converted).

    Raises:
      TypeError: for traced values, bools, complex, strings and non-scalars.
    """
    if isinstance(value, Tracer):
        raise TypeError(
            f"`{name}` must be a concrete number, not a traced value: a schedule's "
            f"hyperparameters are static configuration. Received: {name}={value!r}"
        )
    _validation.concrete_scalar(name, value)  # raises for non-real-scalars
    if isinstance(value, np.generic) or hasattr(value, "dtype"):
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value)


def _finite(name: str, value: int | float, condition: str) -> None:
    if not math.isfinite(value):
        raise ValueError(
            f"`{name}` must be a finite number {condition}. Received: {name}={value}"
        )


def _non_negative(name: str, value: Any) -> int | float:
    """Requires a finite number >= 0 (learning rates, rates, step counts)."""
    number = _number(name, value)
    _finite(name, number, ">= 0")
    if number < 0:
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={number}"
        )
    return number


def _positive(name: str, value: Any) -> int | float:
    """Requires a finite number > 0 (decay lengths, ``t_mul``)."""
    number = _number(name, value)
    _finite(name, number, "> 0")
    if number <= 0:
        # Keras's wording for decay_steps, without its "Argument " prefix.
        raise ValueError(f"`{name}` must be > 0. Received: {name}={number}")
    return number


def _unit_interval(name: str, value: Any) -> int | float:
    """Requires a number in [0, 1] (``alpha``, a fraction of the learning rate)."""
    number = _number(name, value)
    if not 0 <= number <= 1:
        raise ValueError(f"`{name}` must be between [0, 1]. Received: {name}={number}")
    return number


def _bool(name: str, value: Any) -> bool:
    _validation.check_bool(name, value)
    return bool(value)


def _name(value: Any) -> str | None:
    # None is accepted because Keras's own example configs carry "name": None.
    if value is not None and not isinstance(value, str):
        raise TypeError(f"`name` must be a str or None. Received: name={value!r}")
    return value


def _sequence(name: str, value: Any) -> list[Any]:
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return value.tolist()
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"`{name}` must be a list or tuple of numbers. Received: {name}={value!r}"
        )
    return list(value)


def _boundaries(value: Any) -> tuple[int, ...]:
    """Non-empty, strictly increasing int32 step numbers."""
    items = _sequence("boundaries", value)
    result = []
    for i, item in enumerate(items):
        key = f"boundaries[{i}]"
        number = _number(key, item)
        if not isinstance(number, int):
            raise TypeError(
                f"`{key}` must be an integer step number. Received: {key}={item!r}"
            )
        if not _INT32.min <= number <= _INT32.max:
            raise ValueError(
                f"`{key}` must fit in int32 (the step counter's dtype). "
                f"Received: {key}={number}"
            )
        result.append(number)
    if not result:
        raise ValueError("`boundaries` must not be empty. Received: boundaries=[]")
    if any(low >= high for low, high in itertools.pairwise(result)):
        raise ValueError(
            f"`boundaries` must be strictly increasing. Received: boundaries={result}"
        )
    return tuple(result)


# --------------------------------------------------------------------------- #
# The schedules.
# --------------------------------------------------------------------------- #


def _f32(value: Any) -> jax.Array:
    """Keras's ``ops.cast(value, "float32")`` of a hyperparameter or the step."""
    return jnp.asarray(value).astype(_F32)


def _floor_quotient(step: jax.Array, divisor: jax.Array) -> jax.Array:
    """``floor(step / divisor)`` as Keras computes it eagerly, in any context.

    XLA's float32 division is not always correctly rounded: under ``jit`` it
    multiplies by the reciprocal of a constant divisor (and may fuse that into
    an FMA), so at ``step == k * divisor`` the quotient can land just below or
    above ``k`` and its floor be off by one (Keras 3 under ``jit`` then drops a
    staircase or restarts a cycle one step late or early). Products such as
    ``k * divisor`` are exact for integer (or short binary fraction) divisors
    and steps below 2**24, so one comparison each way repairs the floor; where
    the division was correctly rounded, it changes nothing.
    """
    quotient = jnp.floor(step / divisor)
    quotient = jnp.where(quotient * divisor > step, quotient - 1, quotient)
    return jnp.where((quotient + 1) * divisor <= step, quotient + 1, quotient)


@dataclasses.dataclass(frozen=True)
class LearningRateSchedule:
    """Base class of the schedules: an immutable callable ``count -> lr``.

    Subclasses are frozen dataclasses whose fields, in signature order, are
    Keras's ``get_config`` keys; they validate and normalize the fields in
    ``_normalize`` and compute the rate in ``__call__``. Objects compare equal
    when their class and configuration are equal, and are hashable.
    """

    def __post_init__(self) -> None:
        for key, value in self._normalize().items():
            object.__setattr__(self, key, value)

    def _normalize(self) -> dict[str, Any]:
        """Validates the fields; returns the normalized values to store."""
        return {}

    def __call__(self, count: jax.typing.ArrayLike) -> jax.Array:
        """Returns the float32 learning rate after ``count`` optimizer steps.

        Args:
          count: the number of steps taken so far (0 on the first step): an
            integer scalar or array, a Python int, or a traced value.
            Arrays are evaluated elementwise.

        Returns:
          A float32 array of ``count``'s shape.
        """
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override "
            "`__call__(self, count)`."
        )

    def get_config(self) -> dict[str, Any]:
        """Returns Keras's config dict: JSON-serializable, in signature order."""
        config = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            config[field.name] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls: type[_Schedule], config: Mapping[str, Any]) -> _Schedule:
        """Instantiates a schedule from ``get_config()``'s output.

        Raises:
          TypeError: for keys that are not arguments of the class.
        """
        valid = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise TypeError(
                f"{cls.__name__} got unknown config key(s): {unknown}. "
                f"Valid keys: {valid}"
            )
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class _DecayEveryDecaySteps(LearningRateSchedule):
    """The fields, checks and progress shared by two of Keras's schedules.

    ``ExponentialDecay`` and ``InverseTimeDecay`` take the same arguments and
    differ only in what they do with ``p = count / decay_steps``.
    """

    initial_learning_rate: float
    decay_steps: float
    decay_rate: float
    staircase: bool = False
    name: str | None = None

    def _normalize(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": _non_negative(
                "initial_learning_rate", self.initial_learning_rate
            ),
            "decay_steps": _positive("decay_steps", self.decay_steps),
            "decay_rate": _non_negative("decay_rate", self.decay_rate),
            "staircase": _bool("staircase", self.staircase),
            "name": _name(self.name),
        }

    def _progress(self, count: jax.typing.ArrayLike) -> jax.Array:
        """``count / decay_steps`` in float32, floored when ``staircase``."""
        step, decay_steps = _f32(count), _f32(self.decay_steps)
        if self.staircase:
            return _floor_quotient(step, decay_steps)
        return step / decay_steps


@dataclasses.dataclass(frozen=True)
class ExponentialDecay(_DecayEveryDecaySteps):
    """Exponential decay: ``keras.optimizers.schedules.ExponentialDecay``.

    With ``p = count / decay_steps`` (``floor(count / decay_steps)`` when
    ``staircase``), all in float32::

        lr = initial_learning_rate * decay_rate ** p

    Args:
      initial_learning_rate: the rate at ``count = 0``, a finite number >= 0.
      decay_steps: the steps over which the rate is multiplied by
        ``decay_rate``, a finite number > 0.
      decay_rate: a finite number >= 0.
      staircase: decay at discrete intervals of ``decay_steps`` steps.
      name: Keras's name (kept in the config only).

    Calling it:
      A schedule ``count -> lr`` (see :meth:`LearningRateSchedule.__call__`).

    Raises:
      ValueError: for out-of-range values, e.g.
        ``"`decay_steps` must be > 0. Received: decay_steps=0"``.
      TypeError: for traced, bool, complex, string or non-scalar numbers, a
        non-bool ``staircase`` or a non-string ``name``.

    Examples:
      >>> from jsgd import schedules
      >>> schedule = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
      >>> [round(float(schedule(t)), 4) for t in range(5)]
      [0.1, 0.0707, 0.05, 0.0354, 0.025]
      >>> schedule = schedule.from_config({**schedule.get_config(), "staircase": True})
      >>> [round(float(schedule(t)), 4) for t in range(5)]
      [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    name: str | None = "ExponentialDecay"

    def __call__(self, count: jax.typing.ArrayLike) -> jax.Array:
        p = self._progress(count)
        return _f32(self.initial_learning_rate) * jnp.power(_f32(self.decay_rate), p)


@dataclasses.dataclass(frozen=True)
class InverseTimeDecay(_DecayEveryDecaySteps):
    """Inverse time decay: ``keras.optimizers.schedules.InverseTimeDecay``.

    With ``p = count / decay_steps`` (``floor(count / decay_steps)`` when
    ``staircase``), all in float32::

        lr = initial_learning_rate / (1 + decay_rate * p)

    ``InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)`` is the legacy
    Keras ``decay`` argument (:func:`jsgd.inverse_time_decay`).

    Args:
      initial_learning_rate: the rate at ``count = 0``, a finite number >= 0.
      decay_steps: how often the decay applies, a finite number > 0.
      decay_rate: a finite number >= 0.
      staircase: decay at discrete intervals of ``decay_steps`` steps.
      name: Keras's name (kept in the config only).

    Calling it:
      A schedule ``count -> lr`` (see :meth:`LearningRateSchedule.__call__`).

    Raises:
      ValueError: for out-of-range values, e.g.
        ``"`decay_rate` must be a finite number >= 0. Received: decay_rate=-1"``.
      TypeError: for traced, bool, complex, string or non-scalar numbers, a
        non-bool ``staircase`` or a non-string ``name``.

    Examples:
      >>> from jsgd import schedules
      >>> schedule = schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=1.0)
      >>> [round(float(schedule(t)), 4) for t in range(4)]
      [0.1, 0.05, 0.0333, 0.025]
    """

    name: str | None = "InverseTimeDecay"

    def __call__(self, count: jax.typing.ArrayLike) -> jax.Array:
        denominator = _f32(1) + _f32(self.decay_rate) * self._progress(count)
        return _f32(self.initial_learning_rate) / denominator


@dataclasses.dataclass(frozen=True)
class PiecewiseConstantDecay(LearningRateSchedule):
    """Piecewise constant: ``keras.optimizers.schedules.PiecewiseConstantDecay``.

    ::

        lr = values[0]   if count <= boundaries[0]
             values[i]   if boundaries[i-1] < count <= boundaries[i]
             values[-1]  if count > boundaries[-1]

    Note ``<=``: ``values[0]`` still applies *at* ``count == boundaries[0]``.

    Args:
      boundaries: a non-empty list of strictly increasing integer step
        numbers (int32).
      values: the rates, one more than ``boundaries``; finite numbers >= 0.
      name: Keras's name (kept in the config only).

    Calling it:
      A schedule ``count -> lr`` (see :meth:`LearningRateSchedule.__call__`).

    Raises:
      ValueError: if ``len(values) != len(boundaries) + 1``, if
        ``boundaries`` is empty, not strictly increasing or outside int32,
        or if a value is negative or not finite.
      TypeError: if ``boundaries`` or ``values`` is not a list or tuple, for
        non-integer boundaries, non-number values or a non-string ``name``.

    Examples:
      >>> from jsgd import schedules
      >>> schedule = schedules.PiecewiseConstantDecay([2, 4], [1.0, 0.5, 0.1])
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [1.0, 1.0, 1.0, 0.5, 0.5, 0.1]
      >>> schedule.get_config()
      {'boundaries': [2, 4], 'values': [1.0, 0.5, 0.1], 'name': 'PiecewiseConstant'}
    """

    boundaries: Sequence[int]
    values: Sequence[float]
    name: str | None = "PiecewiseConstant"

    def _normalize(self) -> dict[str, Any]:
        boundaries = _boundaries(self.boundaries)
        values = tuple(
            _non_negative(f"values[{i}]", value)
            for i, value in enumerate(_sequence("values", self.values))
        )
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                "`values` must have one more element than `boundaries`. Received: "
                f"boundaries={list(boundaries)} of length {len(boundaries)}, and "
                f"values={list(values)} of length {len(values)}"
            )
        return {"boundaries": boundaries, "values": values, "name": _name(self.name)}

    def __call__(self, count: jax.typing.ArrayLike) -> jax.Array:
        step = jnp.asarray(count)
        # Keras casts the boundaries to the step's dtype and sums
        # indicator * value over the intervals; with finite values exactly one
        # term is nonzero, so picking that value by a search is bit-identical.
        boundaries = jnp.asarray(self.boundaries, jnp.int32).astype(step.dtype)
        index = jnp.searchsorted(boundaries, step, side="left")
        return jnp.asarray(self.values, _F32)[index]


@dataclasses.dataclass(frozen=True)
class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay: ``keras.optimizers.schedules.PolynomialDecay``.

    In float32, with ``step = min(count, decay_steps)``::

        lr = (initial_learning_rate - end_learning_rate)
             * (1 - step / decay_steps) ** power + end_learning_rate

    With ``cycle=True`` the decay restarts: ``step = count`` and
    ``decay_steps`` is replaced by ``decay_steps * ceil(count / decay_steps)``
    (by ``decay_steps`` at ``count = 0``), so the rate reaches
    ``end_learning_rate`` at each multiple of ``decay_steps`` and jumps back
    up on the next step.

    Args:
      initial_learning_rate: the rate at ``count = 0``, a finite number >= 0.
      decay_steps: the length of the decay, a finite number > 0.
      end_learning_rate: the final rate, a finite number >= 0.
      power: the polynomial's power, a finite number >= 0.
      cycle: restart the decay every ``decay_steps`` steps.
      name: Keras's name (kept in the config only).

    Calling it:
      A schedule ``count -> lr`` (see :meth:`LearningRateSchedule.__call__`).

    Raises:
      ValueError: for out-of-range values, e.g.
        ``"`decay_steps` must be > 0. Received: decay_steps=-5"``.
      TypeError: for traced, bool, complex, string or non-scalar numbers, a
        non-bool ``cycle`` or a non-string ``name``.

    Examples:
      >>> from jsgd import schedules
      >>> schedule = schedules.PolynomialDecay(0.1, 4, end_learning_rate=0.02)
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [0.1, 0.08, 0.06, 0.04, 0.02, 0.02]
      >>> schedule = schedules.PolynomialDecay(0.1, 4, 0.02, cycle=True)
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [0.1, 0.08, 0.06, 0.04, 0.02, 0.05]
    """

    initial_learning_rate: float
    decay_steps: float
    end_learning_rate: float = 0.0001
    power: float = 1.0
    cycle: bool = False
    name: str | None = "PolynomialDecay"

    def _normalize(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": _non_negative(
                "initial_learning_rate", self.initial_learning_rate
            ),
            "decay_steps": _positive("decay_steps", self.decay_steps),
            "end_learning_rate": _non_negative(
                "end_learning_rate", self.end_learning_rate
            ),
            "power": _non_negative("power", self.power),
            "cycle": _bool("cycle", self.cycle),
            "name": _name(self.name),
        }

    def __call__(self, count: jax.typing.ArrayLike) -> jax.Array:
        initial_learning_rate = _f32(self.initial_learning_rate)
        end_learning_rate = _f32(self.end_learning_rate)
        step = _f32(count)
        decay_steps = _f32(self.decay_steps)
        if self.cycle:
            # The first multiple of decay_steps >= step (1 at step 0).
            # ceil(x) == -floor(-x), taken exactly (see _floor_quotient).
            ceil = -_floor_quotient(-step, decay_steps)
            multiplier = jnp.where(step == 0, 1.0, ceil)
            decay_steps = decay_steps * multiplier
        else:
            step = jnp.minimum(step, decay_steps)
        p = step / decay_steps
        # Under jit, XLA may compute 1 - step / decay_steps as an FMA with the
        # reciprocal, slightly negative at step == decay_steps, and a
        # fractional power of it is NaN (as Keras 3 returns under jit). A
        # correctly rounded p is never > 1, so the clamp changes nothing else.
        decayed = jnp.power(jnp.maximum(1 - p, 0.0), _f32(self.power))
        return (initial_learning_rate - end_learning_rate) * decayed + end_learning_rate


@dataclasses.dataclass(frozen=True)
class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warmup: Keras's ``CosineDecay``.

    Without warmup (``warmup_target=None``), in float32, with
    ``step = min(count, decay_steps)``::

        cosine = 0.5 * (1 + cos(pi * step / decay_steps))
        lr = initial_learning_rate * ((1 - alpha) * cosine + alpha)

    With warmup, ``step = min(count, warmup_steps + decay_steps)``; while
    ``step < warmup_steps`` the rate rises linearly::

        lr = (warmup_target - initial_learning_rate) * (step / warmup_steps)
             + initial_learning_rate

    and afterwards it is the cosine decay above from ``warmup_target`` (in
    place of ``initial_learning_rate``) at ``step - warmup_steps``. As in
    Keras, ``1 - alpha`` is computed in float64, then rounded.

    Args:
      initial_learning_rate: the rate at ``count = 0``, a finite number >= 0.
      decay_steps: the length of the decay, a finite number > 0.
      alpha: the final rate as a fraction of the decay's starting rate, in
        [0, 1].
      name: Keras's name (kept in the config only).
      warmup_target: the rate reached after the warmup, a finite number >= 0,
        or None for no warmup.
      warmup_steps: the length of the warmup, a finite number >= 0 (used only
        when ``warmup_target`` is set).

    Calling it:
      A schedule ``count -> lr`` (see :meth:`LearningRateSchedule.__call__`).

    Raises:
      ValueError: for out-of-range values, e.g.
        ``"`alpha` must be between [0, 1]. Received: alpha=2"``.
      TypeError: for traced, bool, complex, string or non-scalar numbers or a
        non-string ``name``.

    Examples:
      >>> from jsgd import schedules
      >>> schedule = schedules.CosineDecay(0.1, decay_steps=4)
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [0.1, 0.0854, 0.05, 0.0146, 0.0, 0.0]
      >>> schedule = schedules.CosineDecay(
      ...     0.0, decay_steps=2, warmup_target=0.1, warmup_steps=2
      ... )
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [0.0, 0.05, 0.1, 0.05, 0.0, 0.0]
    """

    initial_learning_rate: float
    decay_steps: float
    alpha: float = 0.0
    name: str | None = "CosineDecay"
    warmup_target: float | None = None
    warmup_steps: float = 0

    def _normalize(self) -> dict[str, Any]:
        warmup_target = self.warmup_target
        if warmup_target is not None:
            warmup_target = _non_negative("warmup_target", warmup_target)
        return {
            "initial_learning_rate": _non_negative(
                "initial_learning_rate", self.initial_learning_rate
            ),
            "decay_steps": _positive("decay_steps", self.decay_steps),
            "alpha": _unit_interval("alpha", self.alpha),
            "name": _name(self.name),
            "warmup_target": warmup_target,
            "warmup_steps": _non_negative("warmup_steps", self.warmup_steps),
        }

    def _decay(
        self, step: jax.Array, decay_steps: jax.Array, decay_from: jax.Array
    ) -> jax.Array:
        completed_fraction = step / decay_steps
        cosine_decayed = 0.5 * (1.0 + jnp.cos(_f32(math.pi) * completed_fraction))
        # A Python float times a float32 array, as in Keras.
        decayed = (1 - self.alpha) * cosine_decayed + self.alpha
        return decay_from * decayed

    def __call__(self, count: jax.typing.ArrayLike) -> jax.Array:
        initial_learning_rate = _f32(self.initial_learning_rate)
        decay_steps = _f32(self.decay_steps)
        step = _f32(count)
        if self.warmup_target is None:
            step = jnp.minimum(step, decay_steps)
            return self._decay(step, decay_steps, initial_learning_rate)

        warmup_target = _f32(self.warmup_target)
        warmup_steps = _f32(self.warmup_steps)
        step = jnp.minimum(step, decay_steps + warmup_steps)
        # Keras's ops.cond, without branching on the (possibly traced) step.
        # With warmup_steps == 0 the warmup branch is 0/0 = NaN, never picked.
        total_delta = warmup_target - initial_learning_rate
        warmup = total_delta * (step / warmup_steps) + initial_learning_rate
        decay = self._decay(step - warmup_steps, decay_steps, warmup_target)
        return jnp.where(step < warmup_steps, warmup, decay)


@dataclasses.dataclass(frozen=True)
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): Keras's ``CosineDecayRestarts``.

    In float32, with ``f = count / first_decay_steps``, the restart index
    ``i`` and the fraction ``c`` of the current period are::

        t_mul == 1:  i = floor(f);  c = f - i
        otherwise:   i = floor(log(1 - f * (1 - t_mul)) / log(t_mul))
                     c = (f - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i

    and::

        cosine = 0.5 * m_mul**i * (1 + cos(pi * c))
        lr = initial_learning_rate * ((1 - alpha) * cosine + alpha)

    Period ``i`` lasts ``first_decay_steps * t_mul**i`` steps and starts from
    ``initial_learning_rate * m_mul**i``. As in Keras, ``t_mul < 1`` gives NaN
    once ``count`` passes ``first_decay_steps / (1 - t_mul)``, the total
    length of all the (shrinking) periods.

    Args:
      initial_learning_rate: the rate at ``count = 0``, a finite number >= 0.
      first_decay_steps: the length of the first period, a finite number > 0.
      t_mul: the factor by which each period is longer than the previous
        one, a finite number > 0.
      m_mul: the factor by which each period starts lower than the previous
        one, a finite number >= 0.
      alpha: the minimum rate as a fraction of ``initial_learning_rate``, in
        [0, 1].
      name: Keras's name (kept in the config only).

    Calling it:
      A schedule ``count -> lr`` (see :meth:`LearningRateSchedule.__call__`).

    Raises:
      ValueError: for out-of-range values, e.g.
        ``"`first_decay_steps` must be > 0. Received: first_decay_steps=0"``.
      TypeError: for traced, bool, complex, string or non-scalar numbers or a
        non-string ``name``.

    Examples:
      >>> from jsgd import schedules
      >>> schedule = schedules.CosineDecayRestarts(
      ...     0.1, first_decay_steps=2, t_mul=2.0, m_mul=0.5
      ... )
      >>> [round(float(schedule(t)), 4) for t in range(8)]
      [0.1, 0.05, 0.05, 0.0427, 0.025, 0.0073, 0.025, 0.024]
    """

    initial_learning_rate: float
    first_decay_steps: float
    t_mul: float = 2.0
    m_mul: float = 1.0
    alpha: float = 0.0
    name: str | None = "SGDRDecay"

    def _normalize(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": _non_negative(
                "initial_learning_rate", self.initial_learning_rate
            ),
            "first_decay_steps": _positive("first_decay_steps", self.first_decay_steps),
            "t_mul": _positive("t_mul", self.t_mul),
            "m_mul": _non_negative("m_mul", self.m_mul),
            "alpha": _unit_interval("alpha", self.alpha),
            "name": _name(self.name),
        }

    def __call__(self, count: jax.typing.ArrayLike) -> jax.Array:
        alpha = _f32(self.alpha)
        t_mul = _f32(self.t_mul)
        m_mul = _f32(self.m_mul)
        completed_fraction = _f32(count) / _f32(self.first_decay_steps)
        # Keras's ops.cond compares the float32 t_mul with 1; t_mul is static.
        if np.float32(self.t_mul) == 1:
            i_restart = _floor_quotient(_f32(count), _f32(self.first_decay_steps))
            completed_fraction = completed_fraction - i_restart
        else:
            i_restart = jnp.floor(
                jnp.log(1.0 - completed_fraction * (1.0 - t_mul)) / jnp.log(t_mul)
            )
            sum_r = (1.0 - jnp.power(t_mul, i_restart)) / (1.0 - t_mul)
            completed_fraction = (completed_fraction - sum_r) / jnp.power(
                t_mul, i_restart
            )
        m_fac = jnp.power(m_mul, i_restart)
        cosine_decayed = (
            0.5 * m_fac * (1.0 + jnp.cos(_f32(math.pi) * completed_fraction))
        )
        decayed = (1 - alpha) * cosine_decayed + alpha
        return _f32(self.initial_learning_rate) * decayed


# --------------------------------------------------------------------------- #
# Serialization.
# --------------------------------------------------------------------------- #

_BUILT_IN: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls
    for cls in (
        CosineDecay,
        CosineDecayRestarts,
        ExponentialDecay,
        InverseTimeDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
    )
}

# Keras 3's serialized form of its own schedules names their public module and
# no registered name; written for jsgd's built-in schedules, it lets Keras
# (``keras.optimizers.SGD.from_config``, ``keras.saving``) find its namesakes.
_KERAS_MODULE = "keras.optimizers.schedules"
# Keys of Keras's serialized form besides ours; deserialize ignores them.
_KERAS_KEYS = frozenset({"module", "registered_name"})


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """Serializes a schedule into a JSON-compatible dict.

    A built-in schedule gets what ``keras.saving.serialize_keras_object``
    writes for its Keras namesake, ``{"module": "keras.optimizers.schedules",
    "class_name": ..., "config": ..., "registered_name": None}``, so that
    Keras deserializes it (``keras.optimizers.schedules.deserialize``, or a
    Keras optimizer's ``from_config`` given a jsgd optimizer's config) into
    the Keras schedule of the same values. Your own subclasses get
    ``{"class_name": ..., "config": ...}``, which :func:`deserialize` reads
    with ``custom_objects``.

    Args:
      schedule: a :class:`LearningRateSchedule`.

    Returns:
      The dict; its ``"config"`` is ``schedule.get_config()``.

    Raises:
      TypeError: if ``schedule`` is not a :class:`LearningRateSchedule`.

    Examples:
      >>> from jsgd import schedules
      >>> schedules.serialize(schedules.ExponentialDecay(0.1, 100, 0.96))
      ... # doctest: +NORMALIZE_WHITESPACE
      {'module': 'keras.optimizers.schedules',
       'class_name': 'ExponentialDecay',
       'config': {'initial_learning_rate': 0.1, 'decay_steps': 100,
                  'decay_rate': 0.96, 'staircase': False,
                  'name': 'ExponentialDecay'},
       'registered_name': None}
    """
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(
            "`schedule` must be a jsgd.schedules.LearningRateSchedule. "
            f"Received: schedule={schedule!r}"
        )
    class_name = type(schedule).__name__
    config = {"class_name": class_name, "config": schedule.get_config()}
    if _BUILT_IN.get(class_name) is type(schedule):
        return {"module": _KERAS_MODULE, **config, "registered_name": None}
    return config


def deserialize(
    config: Mapping[str, Any],
    custom_objects: Mapping[str, type[LearningRateSchedule]] | None = None,
) -> LearningRateSchedule:
    """Instantiates a schedule from :func:`serialize`'s (or Keras's) output.

    Keras's ``keras.optimizers.schedules.serialize`` output is accepted as
    well, and so is the form without ``module`` and ``registered_name`` that
    earlier jsgd versions wrote: those two keys are ignored.

    Args:
      config: a dict ``{"class_name": str, "config": dict}``, with or without
        Keras's ``"module"`` and ``"registered_name"``.
      custom_objects: extra schedule classes by class name (your own
        :class:`LearningRateSchedule` subclasses), as in Keras.

    Returns:
      A :class:`LearningRateSchedule`.

    Raises:
      ValueError: for an unknown ``class_name`` (the known ones are listed) or
        a dict without ``class_name`` or with unexpected keys.
      TypeError: if ``config`` or its ``"config"`` is not a dict, or the
        config has keys the class does not take.

    Examples:
      >>> from jsgd import schedules
      >>> schedules.deserialize(
      ...     {"class_name": "PiecewiseConstantDecay",
      ...      "config": {"boundaries": [10], "values": [0.1, 0.01]}}
      ... )  # doctest: +NORMALIZE_WHITESPACE
      PiecewiseConstantDecay(boundaries=(10,), values=(0.1, 0.01),
                             name='PiecewiseConstant')
    """
    if not isinstance(config, Mapping):
        raise TypeError(
            "`config` must be a dict {'class_name': ..., 'config': ...}. "
            f"Received: config={config!r}"
        )
    unexpected = sorted(set(config) - {"class_name", "config"} - _KERAS_KEYS)
    if "class_name" not in config or unexpected:
        raise ValueError(
            "`config` must be a dict {'class_name': ..., 'config': ...}. "
            f"Received: config={dict(config)!r}"
        )
    classes = {**_BUILT_IN, **(custom_objects or {})}
    class_name = config["class_name"]
    if class_name not in classes:
        raise ValueError(
            f"Unknown learning rate schedule: class_name={class_name!r}. "
            f"Known schedules: {sorted(classes)}"
        )
    arguments = config.get("config", {})
    if not isinstance(arguments, Mapping):
        raise TypeError(f"`config['config']` must be a dict. Received: {arguments!r}")
    return classes[class_name].from_config(arguments)
