"""torch.optim.lr_scheduler, ported to pure, jittable JAX.

Each class is torch 2.13's namesake without the ``optimizer`` argument: the
same constructor arguments, defaults, math and error messages. A scheduler
is an immutable description; :meth:`LRScheduler.init` gives the state right
after torch's constructor (each group's hyperparameters after its initial
step) and :meth:`LRScheduler.step` one ``scheduler.step()``, both jittable
with the state traced (no recompilation as the epoch grows). A
``jsgd.torch`` optimizer reads each parameter group's ``"lr"`` (and
``"momentum"`` or ``"beta1"`` for the cycling schedulers) from
``state.values``.

torch computes in Python double, jsgd in float32: where torch's recursion is
a closed form jsgd evaluates the closed form from the int32 epoch, so the
error does not grow with the run (each class says its form and its measured
worst error against torch over 1,000 steps).

Example:
  >>> import jax
  >>> from jsgd.torch import lr_scheduler
  >>> sched = lr_scheduler.StepLR(step_size=30, gamma=0.1)
  >>> state = sched.init({"lr": [0.05, 0.01]})
  >>> step = jax.jit(sched.step)
  >>> for _ in range(30):
  ...     state = step(state)
  >>> print(state.values["lr"])
  [0.005 0.001]
"""

from jsgd._lr_scheduler.base import LRScheduler, SchedulerState
from jsgd._lr_scheduler.closed_form import (
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)
from jsgd._lr_scheduler.composite import ChainedScheduler, SequentialLR
from jsgd._lr_scheduler.cyclic import CyclicLR, OneCycleLR
from jsgd._lr_scheduler.plateau import ReduceLROnPlateau
from jsgd._lr_scheduler.trajectory import trajectory

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SchedulerState",
    "SequentialLR",
    "StepLR",
    "trajectory",
]
