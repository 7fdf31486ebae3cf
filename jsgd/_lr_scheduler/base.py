"""The interface between a torch-style scheduler and a ``jsgd.torch`` optimizer.

A scheduler here is an immutable description (a frozen dataclass built from
Python numbers, as torch's constructors take) of one of
``torch.optim.lr_scheduler``'s classes, without the optimizer argument. It is
pure: :meth:`LRScheduler.init` and :meth:`LRScheduler.step` map a
:class:`SchedulerState` pytree to the next, jittable, with the step count
traced. A ``jsgd.torch`` optimizer holds the state inside its own, reads each
parameter group's hyperparameters from :attr:`SchedulerState.values` before a
step and calls :meth:`LRScheduler.step` after it (once per step, or once per
epoch with ``steps_per_epoch``), as torch's ``opt.step(); sched.step()`` loop
does.

Hyperparameter keys: ``"lr"`` (every optimizer), ``"momentum"`` (SGD,
RMSprop) and ``"beta1"`` (``betas[0]`` of Adam, AdamW, SparseAdam). Values are
float32 arrays of shape ``[n_groups]``, one entry per parameter group, in the
optimizer's group order.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax


class SchedulerState(NamedTuple):
    """A scheduler's state: torch's ``last_epoch`` and the groups' values.

    Attributes:
      last_epoch: int32, torch's ``scheduler.last_epoch`` (0 after the
        constructor's initial step; saturating, never wraps).
      values: the hyperparameters the optimizer reads, by key (``"lr"``,
        ``"momentum"``, ``"beta1"``): float32 arrays ``[n_groups]``, what
        torch's ``param_groups[i][key]`` holds after the last ``step()``.
      base: the values the schedule is relative to (torch's ``base_lrs``,
        ``initial_lr``, OneCycleLR's ``initial_lr``/``max_lr``...), by key.
      extra: the scheduler's own state (e.g. ReduceLROnPlateau's ``best``,
        ``num_bad_epochs`` and ``cooldown_counter``; the children's states of
        ``SequentialLR`` and ``ChainedScheduler``), a pytree, or ``None``.
    """

    last_epoch: jax.Array
    values: dict[str, jax.Array]
    base: dict[str, jax.Array]
    extra: Any


class LRScheduler(abc.ABC):
    """Base class of the schedulers (torch's ``LRScheduler``, optimizer-free)."""

    @abc.abstractmethod
    def hyperparameters(self, available: frozenset[str]) -> frozenset[str]:
        """The keys this scheduler sets, out of the optimizer's ``available`` ones.

        Always contains ``"lr"``. ``cycle_momentum`` schedulers add
        ``"momentum"`` or ``"beta1"`` (torch's rule: ``beta1`` when the
        optimizer has ``betas``), and raise torch's ValueError when neither is
        available ("optimizer must support momentum or beta1 with
        `cycle_momentum` option enabled").
        """

    @abc.abstractmethod
    def init(self, initial: Mapping[str, jax.Array]) -> SchedulerState:
        """The state right after torch's constructor (its initial ``step()``).

        Args:
          initial: each group's value of every available key (float32
            ``[n_groups]``), as the optimizer was built: what torch's
            ``param_groups`` hold before the scheduler is constructed.

        Returns:
          The state whose ``values`` the optimizer's first step uses. Keys
          the scheduler does not set pass through unchanged.

        Raises:
          ValueError: torch's, e.g. for a per-group list whose length is not
            the number of groups ("max_lr must have the same length as
            optimizer.param_groups. max_lr has 3 values, param_groups has 2.").
        """

    @abc.abstractmethod
    def step(self, state: SchedulerState, value: Any = None) -> SchedulerState:
        """One torch ``scheduler.step()``; ``value``: ReduceLROnPlateau's metric."""
