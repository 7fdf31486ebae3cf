"""What every scheduler shares: torch's param-group protocol and exact helpers.

torch's schedulers talk through ``optimizer.param_groups``: a constructor
writes to them (``initial_lr``; CyclicLR's ``lr`` and momentum; OneCycleLR's
``initial_lr``, ``max_lr``, ``min_lr``, ``max_momentum``, ``base_momentum``)
and then takes its initial step; ``step()`` acts on the groups' current
values; SequentialLR resets the groups, undoes its children's steps and
restarts a child at each milestone with ``_update_lr(0)``. jsgd's schedulers
follow that protocol on float32 arrays, in two dicts of ``[n_groups]``
arrays:

* ``values``: the public hyperparameters (the keys of ``initial``: what the
  optimizer reads), :attr:`SchedulerState.values`;
* ``private``: the other param-group entries torch's constructors write
  (``initial_lr``, ``max_lr``...), threaded through the constructors of a
  composite's children in their order and read back by the children that
  read them at every step (OneCycleLR).

A scheduler implements torch's pieces as methods: ``_setup`` (the
constructor's writes), ``_first`` (its initial ``step()``), ``_advance`` (one
``step()``: the closed form, or with ``chained`` torch's chainable recursion
on the current values), ``_restart`` (``_update_lr(0)``) and ``_rebind``.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsgd._lr_scheduler.base import LRScheduler, SchedulerState

Groups = dict[str, jax.Array]

INT32_MAX = int(np.iinfo(np.int32).max)

# Base-64 digits of an int32 exponent: 6 digits cover 31 bits.
_DIGITS = 6
_RADIX_BITS = 6
_RADIX = 1 << _RADIX_BITS


# ----------------------------------------------------------------- integers


def zero() -> jax.Array:
    """A fresh int32 ``last_epoch`` of 0."""
    return jnp.zeros([], jnp.int32)


def increment(t: jax.Array) -> jax.Array:
    """``t + 1`` on int32, saturating at the int32 maximum (never wraps)."""
    t = jnp.asarray(t, jnp.int32)
    return jnp.where(t < INT32_MAX, t + 1, t).astype(jnp.int32)


def saturating_multiply(a: jax.Array, k: int) -> jax.Array:
    """``a * k`` for int32 ``a >= 0`` and a Python int ``k >= 1``, saturating."""
    a = jnp.asarray(a, jnp.int32)
    if k == 1:
        return a
    return jnp.where(a <= INT32_MAX // k, a * k, INT32_MAX).astype(jnp.int32)


def clip_int32(value: int) -> int:
    """A Python int clipped to int32's range (for host constants)."""
    return max(-INT32_MAX - 1, min(INT32_MAX, int(value)))


# ------------------------------------------------------------ host numbers


def split(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Host doubles as float32 ``(hi, lo)`` with ``hi + lo`` nearer the double."""
    values = np.asarray(values, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        hi = values.astype(np.float32)
        lo = (values - hi.astype(np.float64)).astype(np.float32)
    lo = np.where(np.isfinite(lo), lo, np.float32(0))
    return hi, lo.astype(np.float32)


def times_entry(x: jax.Array, table: tuple[np.ndarray, np.ndarray], i: Any) -> Any:
    """``x * table[i]`` for a :func:`split` table of doubles, rounded about once."""
    hi, lo = table
    x = jnp.asarray(x, jnp.float32)
    if not lo.any():
        return x * jnp.asarray(hi)[i]
    return x * jnp.asarray(hi)[i] + x * jnp.asarray(lo)[i]


def power_table(gamma: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``gamma ** (d * 64**j)`` in double, :func:`split`: 6 tables of 64.

    :func:`int_power` applies one entry per base-64 digit of the exponent, so
    ``gamma ** k`` for any int32 ``k`` costs at most 6 products, each rounded
    about once (2 for ``k < 4096``), instead of accumulating ``k`` roundings.
    """
    gamma = float(gamma)
    tables = []
    for j in range(_DIGITS):
        row = np.empty(_RADIX, np.float64)
        for d in range(_RADIX):
            exponent = d * _RADIX**j
            try:
                row[d] = gamma**exponent
            except OverflowError:
                negative = gamma < 0 and exponent % 2 == 1
                row[d] = -math.inf if negative else math.inf
        tables.append(split(row))
    return tables


def int_power(
    scale: Any, tables: list[tuple[np.ndarray, np.ndarray]], k: jax.Array
) -> jax.Array:
    """``scale * gamma ** k`` for an int32 ``k >= 0`` from a :func:`power_table`.

    The factors are applied one digit at a time onto ``scale``; a zero digit's
    factor is exactly 1.
    """
    k = jnp.asarray(k, jnp.int32)
    out = jnp.asarray(scale, jnp.float32)
    for j, table in enumerate(tables):
        digit = (k >> (_RADIX_BITS * j)) & (_RADIX - 1)
        out = times_entry(out, table, digit)
    return out


def half_cosine(t: jax.Array, period: int) -> jax.Array:
    """``(1 + cos(pi * t / period)) / 2`` for int32 ``t``, as a sine squared.

    ``t`` is reduced modulo ``2 * period`` in integers, and the value is
    ``sin(pi * (period - r) / (2 * period)) ** 2``: the sine of a small angle
    keeps its relative precision where the cosine is near its minimum.
    """
    t = jnp.asarray(t, jnp.int32)
    r = t % (2 * period) if 2 * period <= INT32_MAX else t
    d = (jnp.int32(period) - r).astype(jnp.float32)
    return jnp.sin(d * np.float32(math.pi / (2 * period))) ** 2


def times(x: jax.Array, c: float) -> jax.Array:
    """``x * c`` for a host double ``c``, rounded about once.

    ``c`` is split into float32 ``hi + lo``: ``x * hi + x * lo`` does not
    carry the float32 rounding of ``c`` itself, which a recursion
    (``lr * gamma`` every step) would otherwise compound (``0.998 ** 1000``:
    3e-5 relative).
    """
    c = float(c)
    hi = np.float32(c)
    lo = np.float32(c - float(hi)) if math.isfinite(c) and math.isfinite(hi) else 0
    x = jnp.asarray(x, jnp.float32)
    return x * hi + x * lo if lo else x * hi


def f32(x: Any) -> jax.Array:
    """A float32 array."""
    return jnp.asarray(x, jnp.float32)


def real(owner: str, name: str, value: Any) -> float:
    """A constructor's real-number argument as a Python float (TypeError if not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner}: {name} must be a real number, got {value!r} of type "
            f"{type(value).__name__}"
        )
    return float(value)


def integer(owner: str, name: str, value: Any) -> int:
    """A constructor's integer argument as a Python int (TypeError if not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{owner}: {name} must be an integer, got {value!r} of type "
            f"{type(value).__name__}"
        )
    return int(value)


def per_group(name: str, value: Any, n: int) -> np.ndarray:
    """A number for every group, or one per group (torch's ``_format_param``).

    Returns the host values in double (``[n]``).

    Raises:
      ValueError: torch's, for a list or tuple whose length is not ``n``.
    """
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(value)} values, param_groups has {n}."
            )
        return np.asarray([float(v) for v in value], np.float64)
    return np.full([n], float(value), np.float64)


def check_per_group_numbers(owner: str, name: str, value: Any) -> Any:
    """A number or a list/tuple of numbers (lists become tuples)."""
    if isinstance(value, (list, tuple)):
        for v in value:
            real(owner, name, v)
        return tuple(value)
    real(owner, name, value)
    return value


# ------------------------------------------------------------------ groups


def as_values(initial: Mapping[str, Any]) -> Groups:
    """``initial`` as float32 ``[n_groups]`` arrays, checked."""
    if not isinstance(initial, Mapping):
        raise TypeError(
            "initial must be a dict of each group's hyperparameters, e.g. "
            f"{{'lr': [0.1, 0.01]}}, got {type(initial).__name__}"
        )
    if "lr" not in initial:
        raise ValueError(
            f"initial must hold each group's 'lr', got keys {sorted(initial)}"
        )
    values = {str(k): f32(v) for k, v in initial.items()}
    n = values["lr"].shape
    for k, v in values.items():
        if v.ndim != 1 or v.shape != n:
            raise ValueError(
                f"initial[{k!r}] must be a vector with one entry per group "
                f"(shape {n} as initial['lr']), got shape {v.shape}"
            )
    return values


def n_groups(values: Groups) -> int:
    """The number of parameter groups."""
    return int(values["lr"].shape[0])


def momentum_key(keys: Any) -> str:
    """The key a cycling scheduler sets: ``beta1`` if available, else ``momentum``.

    torch's rule: ``betas[0]`` if the optimizer has betas, else ``momentum``.

    Raises:
      ValueError: torch's, when the optimizer has neither.
    """
    if "beta1" in keys:
        return "beta1"
    if "momentum" in keys:
        return "momentum"
    raise ValueError(
        "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
    )


def state(
    last_epoch: jax.Array, values: Groups, base: Groups, extra: Any = None
) -> SchedulerState:
    """A :class:`SchedulerState` with int32 ``last_epoch``."""
    return SchedulerState(
        last_epoch=jnp.asarray(last_epoch, jnp.int32),
        values=dict(values),
        base=dict(base),
        extra=extra,
    )


def with_lr(values: Groups, lr: jax.Array) -> Groups:
    """``values`` with ``lr`` replaced (float32, broadcast to the groups)."""
    return {**values, "lr": jnp.broadcast_to(f32(lr), values["lr"].shape)}


# --------------------------------------------------------------- protocol


class Scheduler(LRScheduler):
    """The protocol of jsgd's schedulers (private base of the public classes)."""

    # ReduceLROnPlateau's step needs the metric.
    _takes_value = False

    def hyperparameters(self, available: frozenset[str]) -> frozenset[str]:
        """The keys this scheduler sets: ``{"lr"}``."""
        del available
        return frozenset({"lr"})

    def init(self, initial: Mapping[str, jax.Array]) -> SchedulerState:
        """The state after torch's constructor (see :class:`LRScheduler`)."""
        values = as_values(initial)
        state, _ = self._construct(values, {})
        return state

    def step(self, state: SchedulerState, value: Any = None) -> SchedulerState:
        """One torch ``scheduler.step()``."""
        if value is not None:
            raise TypeError(
                f"{type(self).__name__}.step takes no metric (value= is "
                "ReduceLROnPlateau's)"
            )
        return self._advance(state, chained=False)

    # torch's pieces.

    def _construct(
        self, values: Groups, private: Groups
    ) -> tuple[SchedulerState, Groups]:
        """The constructor on the groups: (state after it, private entries)."""
        values, private, base = self._setup(values, dict(private))
        return self._first(base, values), private

    def _setup(self, values: Groups, private: Groups) -> tuple[Groups, Groups, Groups]:
        """The constructor's writes before its initial step: (values, private, base).

        By default ``LRScheduler.__init__``'s: ``initial_lr`` is set if absent
        and is ``base_lrs``.
        """
        private.setdefault("initial_lr", values["lr"])
        return values, private, {"lr": private["initial_lr"]}

    @abc.abstractmethod
    def _first(self, base: Groups, values: Groups) -> SchedulerState:
        """The initial ``step()`` (last_epoch -1 to 0) on the current ``values``."""

    @abc.abstractmethod
    def _advance(self, state: SchedulerState, chained: bool) -> SchedulerState:
        """One ``step()`` on ``state.values``.

        The closed form, or with ``chained`` torch's chainable ``get_lr``
        recursion on the float32 values.
        """

    @abc.abstractmethod
    def _restart(self, state: SchedulerState) -> SchedulerState:
        """SequentialLR's ``_update_lr(0)`` at a milestone, on ``state.values``."""

    def _rebind(self, state: SchedulerState, private: Groups) -> SchedulerState:
        """Reads the private entries a later constructor overwrote (default: none)."""
        del private
        return state

    def _initial_step(self, state: SchedulerState, values: Groups) -> SchedulerState:
        """SequentialLR's ``_initial_step()`` on its (undone) first child."""
        return self._first(state.base, values)


def children(owner: str, schedulers: Any) -> tuple[Scheduler, ...]:
    """A composite's ``schedulers`` checked as torch does (torch's messages)."""
    if isinstance(schedulers, Scheduler) or not isinstance(schedulers, Sequence):
        raise TypeError(
            f"{owner} expects a list of schedulers, got {type(schedulers).__name__}"
        )
    schedulers = tuple(schedulers)
    for i, s in enumerate(schedulers):
        if not isinstance(s, Scheduler):
            raise TypeError(
                f"{owner} at index {i} should be a jsgd.torch.lr_scheduler "
                f"scheduler, got {type(s).__name__}."
            )
        if s._takes_value:
            raise ValueError(
                f"{owner} does not support `ReduceLROnPlateau` scheduler as it "
                "requires additional kwargs to be specified when calling `step`, "
                f"but got one at index {i} in the given schedulers sequence."
            )
    return schedulers
