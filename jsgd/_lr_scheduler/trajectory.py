"""Run a scheduler for many steps under one ``jax.jit`` (plots, tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsgd._lr_scheduler import core
from jsgd._lr_scheduler.base import LRScheduler
from jsgd._lr_scheduler.cyclic import OneCycleLR


def trajectory(
    scheduler: LRScheduler,
    initial: Mapping[str, Any],
    steps: int,
    values: Any = None,
) -> dict[str, np.ndarray]:
    """Every value a scheduler gives over ``init`` and ``steps`` steps.

    The whole run is one ``jax.jit`` of a ``lax.scan`` (one compilation).

    Args:
      scheduler: a ``jsgd.torch.lr_scheduler`` scheduler.
      initial: each group's initial hyperparameters, as for
        :meth:`LRScheduler.init` (e.g. ``{"lr": [0.1, 0.01]}``).
      steps: the number of ``step`` calls.
      values: ReduceLROnPlateau's metrics, one per step (``[steps]``).

    Returns:
      For each key of ``initial``: a float32 array ``[steps + 1, n_groups]``,
      row ``k`` the values after ``k`` steps (row 0: after ``init``).

    Raises:
      ValueError: torch's "Tried to step 1001 times. The specified number of
        total steps is 1000" for a OneCycleLR stepped past its total steps; a
        ``values`` of the wrong length.
      TypeError: ``values`` missing for ReduceLROnPlateau, or given for
        another scheduler.

    Example:
      >>> from jsgd.torch import lr_scheduler
      >>> sched = lr_scheduler.StepLR(step_size=1, gamma=0.5)
      >>> out = lr_scheduler.trajectory(sched, {"lr": [1.0, 0.1]}, 2)
      >>> print(out["lr"])
      [[1.    0.1  ]
       [0.5   0.05 ]
       [0.25  0.025]]
    """
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if isinstance(scheduler, OneCycleLR) and steps > scheduler.steps:
        raise ValueError(
            f"Tried to step {scheduler.steps + 1} times. The specified number of "
            f"total steps is {scheduler.steps}"
        )
    takes_value = isinstance(scheduler, core.Scheduler) and scheduler._takes_value
    if takes_value and values is None:
        raise TypeError(f"{type(scheduler).__name__} needs values (the metrics)")
    if values is not None and not takes_value:
        raise TypeError(f"{type(scheduler).__name__} takes no values (metrics)")
    metrics = None
    if values is not None:
        metrics = jnp.asarray(values, jnp.float32)
        if metrics.shape != (steps,):
            raise ValueError(
                f"values must hold one metric per step, shape ({steps},), got "
                f"shape {metrics.shape}"
            )
    initial = core.as_values(initial)

    @jax.jit
    def run(initial, metrics):
        state = scheduler.init(initial)

        def body(state, metric):
            if metric is None:
                state = scheduler.step(state)
            else:
                state = scheduler.step(state, metric)
            return state, state.values

        _, seq = jax.lax.scan(body, state, metrics, length=steps)
        return {
            k: jnp.concatenate([state.values[k][None], seq[k]]) for k in state.values
        }

    return {k: np.asarray(v) for k, v in run(initial, metrics).items()}
