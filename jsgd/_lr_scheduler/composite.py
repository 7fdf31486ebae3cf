"""Schedulers of schedulers: SequentialLR and ChainedScheduler."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsgd._lr_scheduler import core
from jsgd._lr_scheduler.base import SchedulerState
from jsgd._lr_scheduler.core import Groups, Scheduler


def _construct_in_order(
    schedulers: tuple[Scheduler, ...], values: Groups, private: Groups
) -> tuple[list[SchedulerState], Groups, Groups]:
    """The children's constructors, in order, on the shared groups.

    As user code builds them, one after the other on one optimizer.
    """
    states = []
    for child in schedulers:
        child_state, private = child._construct(values, private)
        values = child_state.values
        states.append(child_state)
    states = [c._rebind(s, private) for c, s in zip(schedulers, states, strict=True)]
    return states, values, private


def _union(schedulers: tuple[Scheduler, ...], available: frozenset[str]):
    keys: frozenset[str] = frozenset()
    for s in schedulers:
        keys |= s.hyperparameters(available)
    return keys


class _Composite(Scheduler):
    """A scheduler of child schedulers, whose states its ``extra`` holds."""

    schedulers: Any

    def _restart(self, state):
        raise NotImplementedError

    def _rebind(self, state, private):
        states = tuple(
            c._rebind(s, private)
            for c, s in zip(self.schedulers, state.extra, strict=True)
        )
        return state._replace(extra=states)


@dataclasses.dataclass(frozen=True)
class SequentialLR(_Composite):
    """torch's ``SequentialLR``: one scheduler after the other, at milestones.

    As torch's: the children are built first, in order, on the same groups
    (each constructor's initial step and writes happen); SequentialLR then
    resets every group's lr to its ``initial_lr``, undoes the children's
    initial steps and takes the initial step of the child active at epoch 0
    (the first, or a later one if milestones are at 0). Step ``t`` goes to
    child ``i = bisect_right(milestones, t)``: at ``t == milestones[i - 1]``
    torch calls ``_update_lr(0)`` on it, which restarts it at its epoch 0 with
    its ``_get_closed_form_lr`` where it has one (else its chainable
    ``get_lr`` on the current lr: MultiplicativeLR multiplies the current lr
    by ``lr_lambda(0)``), otherwise the child's ``step()``. Each child keeps
    its closed form (its own precision; measured over 1,000 epochs: 3.9e-7
    relative at most with closed-form children, the warm-up-then-cosine
    recipe among them; 3e-6 with a MultiplicativeLR child's recursion); the
    non-lr values (momentum) are those the last writer left.

    Args:
      schedulers: the children (none a ReduceLROnPlateau, SequentialLR or
        ChainedScheduler).
      milestones: ``len(schedulers) - 1`` non-decreasing ints.

    Raises:
      ValueError: torch's "SequentialLR expects at least one scheduler, but
        got no scheduler.", "SequentialLR does not support
        `ReduceLROnPlateau` scheduler ...", and "Sequential Schedulers
        expects number of schedulers provided to be one more than the number
        of milestone points, ..."; and, beyond torch, for decreasing
        milestones (torch's bisection on an unsorted list starts children
        without restarting them) or a composite child (torch fails on
        ChainedScheduler children at their milestone and double-undoes
        nested SequentialLR).
      TypeError: for a child that is not one of these schedulers.

    Example:
      >>> from jsgd.torch import lr_scheduler
      >>> warmup = lr_scheduler.LinearLR(start_factor=0.5, total_iters=2)
      >>> decay = lr_scheduler.ExponentialLR(gamma=0.5)
      >>> sched = lr_scheduler.SequentialLR([warmup, decay], milestones=[2])
      >>> print(lr_scheduler.trajectory(sched, {"lr": [0.1]}, 4)["lr"].T[0])
      [0.05  0.075 0.1   0.05  0.025]
    """

    schedulers: tuple[Scheduler, ...]
    milestones: tuple[int, ...]

    def __post_init__(self) -> None:
        name = "SequentialLR"
        schedulers = core.children(name, self.schedulers)
        if len(schedulers) < 1:
            raise ValueError(
                f"{name} expects at least one scheduler, but got no scheduler."
            )
        milestones = tuple(self.milestones)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be "
                "one more than the number of milestone points, but got number of "
                f"schedulers {len(schedulers)} and the number of milestones to be "
                f"equal to {len(milestones)}"
            )
        for i, s in enumerate(schedulers):
            if isinstance(s, (SequentialLR, ChainedScheduler)):
                raise ValueError(
                    f"jsgd's {name} does not take a {type(s).__name__} (index {i}): "
                    "torch's fails at the milestone of a ChainedScheduler child "
                    "and undoes a nested SequentialLR's steps twice"
                )
        for m in milestones:
            core.integer(name, "milestones", m)
        if list(milestones) != sorted(milestones):
            raise ValueError(
                f"jsgd's {name} needs non-decreasing milestones, got {list(milestones)}"
            )
        object.__setattr__(self, "schedulers", schedulers)
        object.__setattr__(self, "milestones", milestones)

    def hyperparameters(self, available: frozenset[str]) -> frozenset[str]:
        """The keys any child sets."""
        return _union(self.schedulers, available)

    def _milestones(self) -> np.ndarray:
        return np.asarray([core.clip_int32(m) for m in self.milestones], np.int32)

    def _construct(self, values, private):
        states, values, private = _construct_in_order(self.schedulers, values, private)
        values = core.with_lr(values, private["initial_lr"])
        i = sum(1 for m in self.milestones if m <= 0)  # bisect_right(milestones, 0)
        states[i] = self.schedulers[i]._initial_step(states[i], values)
        shared = states[i].values
        states = [s._replace(values=shared) for s in states]
        return core.state(core.zero(), shared, {}, tuple(states)), private

    def _first(self, base, values):
        raise NotImplementedError  # _construct does it all

    def _advance(self, state, chained):
        t = core.increment(state.last_epoch)
        milestones = self._milestones()
        n = len(self.schedulers)
        if milestones.size:
            i = jnp.sum(t >= milestones).astype(jnp.int32)
            padded = jnp.asarray(np.concatenate([[-1], milestones]).astype(np.int32))
            restart = (i > 0) & (padded[i] == t)
        else:
            i, restart = jnp.int32(0), jnp.bool_(False)

        def go(k: int, restarting: bool):
            def branch(operand):
                states, shared = operand
                child = self.schedulers[k]
                s = states[k]._replace(values=shared)
                s = child._restart(s) if restarting else child._advance(s, chained)
                return (*states[:k], s, *states[k + 1 :]), s.values

            return branch

        branches = [go(k, False) for k in range(n)] + [go(k, True) for k in range(1, n)]
        index = jnp.where(restart, n + i - 1, i)
        states, shared = jax.lax.switch(index, branches, (state.extra, state.values))
        return state._replace(last_epoch=t, values=shared, extra=states)


@dataclasses.dataclass(frozen=True)
class ChainedScheduler(_Composite):
    """torch's ``ChainedScheduler``: every child's ``step()``, in order, each step.

    torch's semantics: each child's chainable ``get_lr`` acts on the current
    values, those the previous child set. The children are built in order on
    the same groups (each constructor's initial step acts on the lr the
    previous one left), and each step runs every child's chainable recursion
    on the float32 values, as torch does in double: each multiplication
    rounds about once, a host constant being applied in double (measured
    over 1,000 epochs: 1.2e-6 relative for ExponentialLR + StepLR, 1.3e-6
    for ConstantLR + ExponentialLR, 2.4e-6 for LinearLR +
    CosineAnnealingLR: random walks of float32 roundings). Children that are
    closed forms in torch (LambdaLR, CyclicLR, OneCycleLR,
    CosineAnnealingWarmRestarts) overwrite the lr.

    Args:
      schedulers: the children (no ReduceLROnPlateau).

    Raises:
      ValueError: torch's "ChainedScheduler expects at least one scheduler
        to be chained, but got no scheduler." and "ChainedScheduler does not
        support `ReduceLROnPlateau` scheduler ...".
      TypeError: for a child that is not one of these schedulers.

    Example:
      >>> from jsgd.torch import lr_scheduler
      >>> sched = lr_scheduler.ChainedScheduler([
      ...     lr_scheduler.ConstantLR(factor=0.5, total_iters=2),
      ...     lr_scheduler.ExponentialLR(gamma=0.5)])
      >>> print(lr_scheduler.trajectory(sched, {"lr": [0.8]}, 4)["lr"].T[0])
      [0.4  0.2  0.2  0.1  0.05]
    """

    schedulers: tuple[Scheduler, ...]

    def __post_init__(self) -> None:
        name = "ChainedScheduler"
        schedulers = core.children(name, self.schedulers)
        if len(schedulers) < 1:
            raise ValueError(
                f"{name} expects at least one scheduler to be chained, but got no "
                "scheduler."
            )
        object.__setattr__(self, "schedulers", schedulers)

    def hyperparameters(self, available: frozenset[str]) -> frozenset[str]:
        """The keys any child sets."""
        return _union(self.schedulers, available)

    def _construct(self, values, private):
        states, values, private = _construct_in_order(self.schedulers, values, private)
        states = [s._replace(values=values) for s in states]
        return core.state(core.zero(), values, {}, tuple(states)), private

    def _first(self, base, values):
        raise NotImplementedError  # _construct does it all

    def _advance(self, state, chained):
        del chained  # the children always act on the current values
        shared: Any = state.values
        states = []
        for child, s in zip(self.schedulers, state.extra, strict=True):
            s = child._advance(s._replace(values=shared), chained=True)
            shared = s.values
            states.append(s)
        return state._replace(
            last_epoch=core.increment(state.last_epoch),
            values=shared,
            extra=tuple(states),
        )
