"""The per-batch cycles: CyclicLR and OneCycleLR (closed forms in torch too)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsgd._lr_scheduler import core
from jsgd._lr_scheduler.base import SchedulerState
from jsgd._lr_scheduler.core import Groups, Scheduler

_MOMENTUM_KEYS = ("max_momentum", "base_momentum")


def _momentum_hyperparameters(cycle: bool, available: frozenset[str]) -> frozenset[str]:
    if not cycle:
        return frozenset({"lr"})
    return frozenset({"lr", core.momentum_key(available)})


def _sin2(x: jax.Array) -> jax.Array:
    """``sin(pi * x / 2) ** 2``."""
    return jnp.sin(x * np.float32(math.pi / 2)) ** 2


def _is_integral(x: float) -> bool:
    return math.isfinite(x) and float(x).is_integer()


class _ClosedForm(Scheduler):
    """A scheduler whose every value is ``self._at(state, epoch)``."""

    def _at(self, state: Any, t: Any) -> Any:
        raise NotImplementedError

    def _first(self, base, values):
        return self._at(core.state(core.zero(), values, base), core.zero())

    def _advance(self, state, chained):
        del chained  # torch's get_lr is a closed form
        return self._at(state, core.increment(state.last_epoch))

    def _restart(self, state):
        return self._at(state, core.zero())


@dataclasses.dataclass(frozen=True)
class CyclicLR(_ClosedForm):
    """torch's ``CyclicLR``: the lr cycles between ``base_lr`` and ``max_lr``.

    With ``S = step_size_up + step_size_down``, ``cycle = floor(1 + t / S)``
    and the position ``r = t - (cycle - 1) * S`` in the cycle, the scale is
    ``r / step_size_up`` on the way up and ``(S - r) / step_size_down`` on the
    way down (torch's ``x / step_ratio`` and ``(x - 1) / (step_ratio - 1)``),
    and ``lr = base_lr + (max_lr - base_lr) * scale * scale_fn(.)``;
    ``momentum = max_momentum - (max_momentum - base_momentum) * scale *
    scale_fn(.)``, set as ``"beta1"`` if the optimizer has it (torch's
    ``betas``), else ``"momentum"``. ``scale_fn`` is evaluated on the int32
    cycle (``scale_mode="cycle"``) or epoch (``"iterations"``):
    ``triangular``: 1; ``triangular2``: ``1 / 2 ** (cycle - 1)`` (cycle);
    ``exp_range``: ``gamma ** t`` (iterations, from a table of powers in
    double). torch's formula is a closed form; jsgd computes ``cycle`` and
    ``r`` in integers when the step sizes are integers, so each value rounds a
    few times (measured over 1,000 steps: 1.7e-7 relative at most for the
    lr, 7e-8 for the momentum, every mode; with non-integer step sizes ``r``
    comes from float32 ``fmod``).

    The constructor sets each group's lr to ``base_lr`` and, with
    ``cycle_momentum``, its momentum to ``max_momentum`` (then its initial
    step, at ``t = 0``, gives the same values).

    Args:
      base_lr: the lower boundary (a number or one per group).
      max_lr: the upper boundary (a number or one per group).
      step_size_up: steps of the rising half. Default 2000.
      step_size_down: steps of the falling half (default: ``step_size_up``).
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"`` (ignored
        with ``scale_fn``).
      gamma: ``exp_range``'s base. Default 1.
      scale_fn: your scale, a jnp-traceable function of an int32 scalar
        (0 <= scale_fn(x) <= 1).
      scale_mode: ``"cycle"`` or ``"iterations"``: what ``scale_fn`` takes.
      cycle_momentum: cycle the momentum too. Default True.
      base_momentum: the lower momentum boundary (number or per group).
        Default 0.8.
      max_momentum: the upper momentum boundary (number or per group).
        Default 0.9.

    Raises:
      ValueError: torch's "mode is invalid and scale_fn is None"; for a
        ``step_size_up`` below or equal to 0 or a negative
        ``step_size_down`` (torch fails with ZeroDivisionError or cycles
        oddly); in ``init`` or :meth:`hyperparameters`: torch's "optimizer
        must support momentum or beta1 with `cycle_momentum` option
        enabled" and "max_lr must have the same length as
        optimizer.param_groups. max_lr has 3 values, param_groups has 2.".

    Example:
      >>> from jsgd.torch import lr_scheduler
      >>> sched = lr_scheduler.CyclicLR(0.1, 0.5, step_size_up=2)
      >>> out = lr_scheduler.trajectory(sched, {"lr": [0.3], "momentum": [0.0]}, 4)
      >>> print(out["lr"].T[0])
      [0.1 0.3 0.5 0.3 0.1]
      >>> print(out["momentum"].T[0])
      [0.9  0.85 0.8  0.85 0.9 ]
    """

    base_lr: float | tuple[float, ...]
    max_lr: float | tuple[float, ...]
    step_size_up: float = 2000
    step_size_down: float | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    scale_fn: Callable[[jax.Array], Any] | None = None
    scale_mode: str = "cycle"
    cycle_momentum: bool = True
    base_momentum: float | tuple[float, ...] = 0.8
    max_momentum: float | tuple[float, ...] = 0.9

    def __post_init__(self) -> None:
        owner = "CyclicLR"
        for name in ("base_lr", "max_lr", "base_momentum", "max_momentum"):
            value = core.check_per_group_numbers(owner, name, getattr(self, name))
            object.__setattr__(self, name, value)
        up = core.real(owner, "step_size_up", self.step_size_up)
        down = self.step_size_down
        down = up if down is None else core.real(owner, "step_size_down", down)
        if not up > 0:
            raise ValueError(f"Expected positive step_size_up, but got {up}")
        if not down >= 0:
            raise ValueError(f"Expected non-negative step_size_down, but got {down}")
        if (
            self.mode not in ["triangular", "triangular2", "exp_range"]
            and self.scale_fn is None
        ):
            raise ValueError("mode is invalid and scale_fn is None")
        core.real(owner, "gamma", self.gamma)

    def hyperparameters(self, available: frozenset[str]) -> frozenset[str]:
        """``{"lr"}``, with ``cycle_momentum`` also ``"beta1"`` or ``"momentum"``."""
        return _momentum_hyperparameters(self.cycle_momentum, available)

    def _sizes(self) -> tuple[float, float]:
        up = float(self.step_size_up)
        down = up if self.step_size_down is None else float(self.step_size_down)
        return up, down

    def _setup(self, values, private):
        n = core.n_groups(values)
        base_lrs = core.f32(core.per_group("base_lr", self.base_lr, n))
        values = core.with_lr(values, base_lrs)
        base = {
            "lr": base_lrs,
            "max_lr": core.f32(core.per_group("max_lr", self.max_lr, n)),
        }
        if self.cycle_momentum:
            key = core.momentum_key(values)
            base_m = core.f32(core.per_group("base_momentum", self.base_momentum, n))
            max_m = core.f32(core.per_group("max_momentum", self.max_momentum, n))
            values = {**values, key: max_m}
            private["max_momentum"], private["base_momentum"] = max_m, base_m
            base["base_momentum"], base["max_momentum"] = base_m, max_m
        private.setdefault("initial_lr", values["lr"])
        return values, private, base

    def _scale(self, cycle: jax.Array, t: jax.Array) -> jax.Array:
        if self.scale_fn is not None:
            x = cycle if self.scale_mode == "cycle" else t
            return core.f32(self.scale_fn(x))
        if self.mode == "triangular":
            return core.f32(1.0)
        if self.mode == "triangular2":
            return core.int_power(1.0, core.power_table(0.5), cycle - 1)
        return core.int_power(1.0, core.power_table(self.gamma), t)

    def _at(self, state: SchedulerState, t: jax.Array) -> SchedulerState:
        up, down = self._sizes()
        total = up + down
        if _is_integral(up) and _is_integral(down) and total <= core.INT32_MAX:
            S = int(total)
            cycle = core.increment(t // S)  # saturating: S may be 1
            r = (t % S).astype(jnp.float32)
        else:  # float32 fmod is exact on its float32 operands
            tf = t.astype(jnp.float32)
            r = jnp.fmod(tf, np.float32(total))
            cycle = core.increment(jnp.round((tf - r) / np.float32(total)))
        rising = r <= np.float32(up)
        falling = (np.float32(total) - r) / np.float32(down if down > 0 else 1.0)
        scale = jnp.where(rising, r / np.float32(up), falling)
        height = scale * self._scale(cycle, t)
        base = state.base
        values = core.with_lr(
            state.values, base["lr"] + (base["max_lr"] - base["lr"]) * height
        )
        if self.cycle_momentum:
            key = core.momentum_key(values)
            top = base["max_momentum"]
            values = {**values, key: top - (top - base["base_momentum"]) * height}
        return state._replace(last_epoch=t, values=values)


def _validate_total_steps(total_steps: Any, epochs: Any, steps_per_epoch: Any) -> int:
    if total_steps is not None:
        if total_steps <= 0 or not isinstance(total_steps, int):
            raise ValueError(
                f"Expected positive integer total_steps, but got {total_steps}"
            )
        return total_steps
    if epochs is not None and steps_per_epoch is not None:
        if not isinstance(epochs, int) or epochs <= 0:
            raise ValueError(f"Expected positive integer epochs, but got {epochs}")
        if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
            raise ValueError(
                f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
            )
        return epochs * steps_per_epoch
    raise ValueError(
        "You must define either total_steps OR (epochs AND steps_per_epoch)"
    )


@dataclasses.dataclass(frozen=True)
class OneCycleLR(_ClosedForm):
    """torch's ``OneCycleLR``: warm up to ``max_lr``, then anneal far below.

    The constructor sets each group's ``initial_lr = max_lr / div_factor``,
    ``max_lr`` and ``min_lr = initial_lr / final_div_factor`` (in double, as
    torch) and, with ``cycle_momentum``, the momentum (``"beta1"`` if the
    optimizer has it, else ``"momentum"``) to ``max_momentum``. Step ``t`` lies
    in the first phase whose ``end_step`` (torch's floats: ``pct_start *
    total_steps - 1``, three-phase ``2 * pct_start * total_steps - 2``, then
    ``total_steps - 1``) is ``>= t``, else in the last; with ``p = (t - start)
    / (end - start)`` the phase anneals from its start value ``a`` to its end
    value ``b``: ``cos``: ``b + (a - b) * (1 + cos(pi p)) / 2``, evaluated as
    ``a * sin(pi (1 - p) / 2) ** 2 + b * sin(pi p / 2) ** 2`` (two positive
    terms, ``1 - p`` from the integers: no cancellation); ``linear``:
    ``a * (1 - p) + b * p``. Two phases: ``initial_lr -> max_lr -> min_lr``,
    momentum ``max -> base -> max``; three phases: ``initial_lr -> max_lr ->
    initial_lr -> min_lr``, momentum ``max -> base -> max -> max``. Measured
    over 1,000 steps: 3.7e-7 relative at most for the lr, 2.7e-7 for the
    momentum (cos and linear, two and three phases).

    Past ``total_steps`` torch raises ValueError ("Tried to step 1001 times.
    The specified number of total steps is 1000"); inside ``jit`` jsgd cannot
    raise and gives NaN there (:func:`trajectory` raises torch's error).

    Args:
      max_lr: the peak lr (a number or one per group).
      total_steps: the steps of the cycle, or None to use ``epochs *
        steps_per_epoch``.
      epochs: with ``steps_per_epoch``, the cycle's epochs.
      steps_per_epoch: with ``epochs``, the steps per epoch.
      pct_start: the fraction of the cycle spent rising (a float in [0, 1]).
        Default 0.3.
      anneal_strategy: ``"cos"`` or ``"linear"``. Default ``"cos"``.
      cycle_momentum: cycle the momentum too. Default True.
      base_momentum: the momentum at the peak (number or per group).
        Default 0.85.
      max_momentum: the momentum at the ends (number or per group).
        Default 0.95.
      div_factor: ``initial_lr = max_lr / div_factor``. Default 25.
      final_div_factor: ``min_lr = initial_lr / final_div_factor``. Default
        1e4.
      three_phase: torch's three-phase schedule. Default False.

    Raises:
      ValueError: torch's "Expected positive integer total_steps, but got
        0", "You must define either total_steps OR (epochs AND
        steps_per_epoch)", "Expected float between 0 and 1 pct_start, but got
        1.5", "anneal_strategy must be one of 'cos' or 'linear', instead got
        ..." and, in ``init``/:meth:`hyperparameters`, "optimizer must
        support momentum or beta1 with `cycle_momentum` option enabled" and
        the per-group lists' lengths.

    Example:
      >>> from jsgd.torch import lr_scheduler
      >>> sched = lr_scheduler.OneCycleLR(
      ...     1.0, total_steps=4, pct_start=0.5, anneal_strategy="linear",
      ...     div_factor=4.0, final_div_factor=2.5)
      >>> out = lr_scheduler.trajectory(sched, {"lr": [0.5], "beta1": [0.9]}, 3)
      >>> print(out["lr"].T[0])
      [0.25 1.   0.55 0.1 ]
      >>> print(out["beta1"].T[0])
      [0.95 0.85 0.9  0.95]
    """

    max_lr: float | tuple[float, ...]
    total_steps: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    cycle_momentum: bool = True
    base_momentum: float | tuple[float, ...] = 0.85
    max_momentum: float | tuple[float, ...] = 0.95
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self) -> None:
        owner = "OneCycleLR"
        _validate_total_steps(self.total_steps, self.epochs, self.steps_per_epoch)
        pct_start = self.pct_start
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(
                f"Expected float between 0 and 1 pct_start, but got {pct_start}"
            )
        if self.anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                "anneal_strategy must be one of 'cos' or 'linear', instead got "
                f"{self.anneal_strategy}"
            )
        for name in ("max_lr", "base_momentum", "max_momentum"):
            value = core.check_per_group_numbers(owner, name, getattr(self, name))
            object.__setattr__(self, name, value)
        core.real(owner, "div_factor", self.div_factor)
        core.real(owner, "final_div_factor", self.final_div_factor)

    @property
    def steps(self) -> int:
        """The cycle's total steps (``total_steps`` or ``epochs * steps_per_epoch``)."""
        return _validate_total_steps(
            self.total_steps, self.epochs, self.steps_per_epoch
        )

    def _phases(self) -> list[tuple[float, str, str, str, str]]:
        total, pct = self.steps, self.pct_start
        if self.three_phase:
            return [
                (float(pct * total) - 1, "initial_lr", "max_lr", "max_m", "base_m"),
                (float(2 * pct * total) - 2, "max_lr", "initial_lr", "base_m", "max_m"),
                (total - 1, "initial_lr", "min_lr", "max_m", "max_m"),
            ]
        return [
            (float(pct * total) - 1, "initial_lr", "max_lr", "max_m", "base_m"),
            (total - 1, "max_lr", "min_lr", "base_m", "max_m"),
        ]

    def hyperparameters(self, available: frozenset[str]) -> frozenset[str]:
        """``{"lr"}``, with ``cycle_momentum`` also ``"beta1"`` or ``"momentum"``."""
        return _momentum_hyperparameters(self.cycle_momentum, available)

    def _setup(self, values, private):
        n = core.n_groups(values)
        max_lrs = core.per_group("max_lr", self.max_lr, n)
        initial = max_lrs / float(self.div_factor)
        private["initial_lr"] = core.f32(initial)
        private["max_lr"] = core.f32(max_lrs)
        private["min_lr"] = core.f32(initial / float(self.final_div_factor))
        if self.cycle_momentum:
            key = core.momentum_key(values)
            max_m = core.f32(core.per_group("max_momentum", self.max_momentum, n))
            base_m = core.f32(core.per_group("base_momentum", self.base_momentum, n))
            values = {**values, key: max_m}
            private["max_momentum"], private["base_momentum"] = max_m, base_m
        private.setdefault("initial_lr", values["lr"])
        return values, private, self._read(private)

    def _read(self, private: Groups) -> Groups:
        keys = ["initial_lr", "max_lr", "min_lr"]
        if self.cycle_momentum:
            keys += list(_MOMENTUM_KEYS)
        return {k: private[k] for k in keys}

    def _rebind(self, state, private):
        return state._replace(base=self._read(private))

    def _anneal(self, a: jax.Array, b: jax.Array, p, q) -> jax.Array:
        if self.anneal_strategy == "cos":
            return a * _sin2(q) + b * _sin2(p)
        return a * q + b * p

    def _at(self, state: SchedulerState, t: jax.Array) -> SchedulerState:
        base = state.base
        names = {
            "initial_lr": base["initial_lr"],
            "max_lr": base["max_lr"],
            "min_lr": base["min_lr"],
        }
        if self.cycle_momentum:
            names["max_m"] = base["max_momentum"]
            names["base_m"] = base["base_momentum"]
        tf = t.astype(jnp.float32)
        phases = self._phases()
        start = 0.0
        lrs, momenta, insides = [], [], []
        for end, a, b, ma, mb in phases:
            with np.errstate(divide="ignore"):
                inverse = np.float32(1.0 / (end - start) if end != start else math.inf)
            whole, frac = math.floor(start), start - math.floor(start)
            p = ((tf - np.float32(whole)) - np.float32(frac)) * inverse
            e_whole, e_frac = math.floor(end), end - math.floor(end)
            q = ((np.float32(e_whole) - tf) + np.float32(e_frac)) * inverse
            lrs.append(self._anneal(names[a], names[b], p, q))
            if self.cycle_momentum:
                momenta.append(self._anneal(names[ma], names[mb], p, q))
            insides.append(t <= core.clip_int32(math.floor(end)))
            start = end
        # The first phase whose end_step is >= t, else the last.
        lr = lrs[-1]
        momentum = momenta[-1] if momenta else lr
        for k in reversed(range(len(phases) - 1)):
            lr = jnp.where(insides[k], lrs[k], lr)
            if momenta:
                momentum = jnp.where(insides[k], momenta[k], momentum)
        past = t > core.clip_int32(self.steps)
        values = core.with_lr(state.values, jnp.where(past, jnp.nan, lr))
        if self.cycle_momentum:
            key = core.momentum_key(values)
            values = {**values, key: jnp.where(past, jnp.nan, momentum)}
        return state._replace(last_epoch=t, values=values)
