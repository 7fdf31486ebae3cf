"""ReduceLROnPlateau: cut the lr when a metric stops improving."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsgd._lr_scheduler import core
from jsgd._lr_scheduler.base import SchedulerState
from jsgd._lr_scheduler.core import Scheduler


@dataclasses.dataclass(frozen=True)
class ReduceLROnPlateau(Scheduler):
    """torch's ``ReduceLROnPlateau``, driven by ``step(state, value=metric)``.

    Each step, as torch's: the metric is better than ``best`` if (``min``,
    ``rel``) ``metric < best * (1 - threshold)``, (``min``, ``abs``) ``metric <
    best - threshold``, (``max``, ``rel``) ``metric > best * (1 + threshold)``,
    (``max``, ``abs``) ``metric > best + threshold`` (``best`` starts at +inf
    for ``min``, -inf for ``max``); a better metric becomes ``best`` and
    zeroes ``num_bad_epochs``, another adds one; during a cooldown
    (``cooldown_counter > 0``) the counter counts down and bad epochs are
    forgotten; when ``num_bad_epochs > patience`` every group's
    ``new = max(lr * factor, min_lr)`` replaces its lr if ``lr - new > eps``,
    and the cooldown starts. There is no initial step: the lr is untouched
    until then. torch's semantics is "act on the current value": jsgd runs
    the same recursion on the float32 lr (about one rounding per cut:
    measured over 1,000 epochs, 1.6e-7 relative at most; the comparisons are
    float32's, torch's double: a metric within one float32 ulp of a
    threshold can be judged otherwise).

    State: ``extra`` holds ``best`` (float32), ``num_bad_epochs`` and
    ``cooldown_counter`` (int32, saturating).

    Args:
      mode: ``"min"`` or ``"max"``. Default ``"min"``.
      factor: the cut's factor (< 1). Default 0.1.
      patience: bad epochs tolerated before a cut. Default 10.
      threshold: the significance threshold. Default 1e-4.
      threshold_mode: ``"rel"`` or ``"abs"``. Default ``"rel"``.
      cooldown: epochs without counting after a cut. Default 0.
      min_lr: the lower bound, a number or one per group. Default 0.
      eps: a smaller cut than this is skipped. Default 1e-8.

    Raises:
      ValueError: torch's "Factor should be < 1.0.", "mode max2 is
        unknown!", "threshold mode ab is unknown!" and, in ``init``,
        "expected 2 min_lrs, got 3".

    Example:
      >>> import jax.numpy as jnp
      >>> from jsgd.torch import lr_scheduler
      >>> sched = lr_scheduler.ReduceLROnPlateau(factor=0.5, patience=1)
      >>> metric = jnp.array([1.0, 0.9, 0.95, 0.95, 0.95, 0.95])
      >>> print(lr_scheduler.trajectory(sched, {"lr": [0.1]}, 6, metric)["lr"].T[0])
      [0.1   0.1   0.1   0.1   0.05  0.05  0.025]
    """

    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float | tuple[float, ...] = 0
    eps: float = 1e-8

    _takes_value = True

    def __post_init__(self) -> None:
        owner = "ReduceLROnPlateau"
        if core.real(owner, "factor", self.factor) >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        min_lr = self.min_lr
        object.__setattr__(
            self, "min_lr", core.check_per_group_numbers(owner, "min_lr", min_lr)
        )
        if self.mode not in {"min", "max"}:
            raise ValueError("mode " + self.mode + " is unknown!")
        if self.threshold_mode not in {"rel", "abs"}:
            raise ValueError("threshold mode " + self.threshold_mode + " is unknown!")
        core.real(owner, "threshold", self.threshold)
        core.real(owner, "eps", self.eps)
        core.integer(owner, "patience", self.patience)
        core.integer(owner, "cooldown", self.cooldown)

    def _setup(self, values, private):
        n = core.n_groups(values)
        min_lr = self.min_lr
        if isinstance(min_lr, tuple):
            if len(min_lr) != n:
                raise ValueError(f"expected {n} min_lrs, got {len(min_lr)}")
            min_lrs = np.asarray(min_lr, np.float64)
        else:
            min_lrs = np.full([n], float(min_lr), np.float64)
        return values, private, {"min_lr": core.f32(min_lrs)}

    def _first(self, base, values):
        worse = math.inf if self.mode == "min" else -math.inf
        extra = {
            "best": core.f32(worse),
            "num_bad_epochs": core.zero(),
            "cooldown_counter": core.zero(),
        }
        return core.state(core.zero(), values, base, extra)

    def _is_better(self, a: jax.Array, best: jax.Array) -> jax.Array:
        threshold = float(self.threshold)
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * np.float32(1.0 - threshold)
        if self.mode == "min":
            return a < best - np.float32(threshold)
        if self.threshold_mode == "rel":
            return a > best * np.float32(threshold + 1.0)
        return a > best + np.float32(threshold)

    def step(self, state: SchedulerState, value: Any = None) -> SchedulerState:
        """One torch ``scheduler.step(metric)``, ``value`` the metric.

        Raises:
          TypeError: without a metric.
        """
        if value is None:
            raise TypeError("ReduceLROnPlateau.step needs the metric: value=...")
        current = jnp.reshape(core.f32(value), ())
        extra = state.extra
        better = self._is_better(current, extra["best"])
        best = jnp.where(better, current, extra["best"])
        bad = jnp.where(better, 0, core.increment(extra["num_bad_epochs"]))
        cooling = extra["cooldown_counter"] > 0
        counter = jnp.where(
            cooling, extra["cooldown_counter"] - 1, extra["cooldown_counter"]
        )
        bad = jnp.where(cooling, 0, bad)
        cut = bad > core.clip_int32(self.patience)
        old = state.values["lr"]
        new = jnp.maximum(core.times(old, self.factor), state.base["min_lr"])
        lr = jnp.where(cut & (old - new > np.float32(self.eps)), new, old)
        counter = jnp.where(cut, core.clip_int32(self.cooldown), counter)
        bad = jnp.where(cut, 0, bad)
        extra = {
            "best": best.astype(jnp.float32),
            "num_bad_epochs": bad.astype(jnp.int32),
            "cooldown_counter": counter.astype(jnp.int32),
        }
        return state._replace(
            last_epoch=core.increment(state.last_epoch),
            values=core.with_lr(state.values, lr),
            extra=extra,
        )

    def _advance(self, state, chained):
        raise TypeError("ReduceLROnPlateau.step needs the metric: value=...")

    def _restart(self, state):
        raise NotImplementedError
