"""Argument checks with torch.optim's messages ("Invalid learning rate: -1.0").

torch checks lower bounds only (most as ``not 0.0 <= lr``, which refuses NaN
too; SGD's as ``lr < 0.0``, which lets NaN through, and SGD does not check
``dampening``). jsgd also refuses what torch lets through but would corrupt
a run, in the same style with the reason appended: NaN everywhere, an
infinite or float32-overflowing value, a negative ``dampening``, and values
outside the range of the transform that computes the step (a ``momentum``,
``dampening`` or ``alpha`` above 1). Other differences, all documented in
docs/porting.md: integer ``betas`` are accepted (torch's Adam wants floats or
tensors), ``maximize`` is keyword-only (positional in torch's RMSprop and
SparseAdam), and a refused sparse gradient raises a TypeError at ``update``
(torch: a RuntimeError at ``step``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jsgd._common import validation as _validation

Check = Callable[[str, Any], None]


def _shown(value: Any, number: float) -> str:
    return str(number) if hasattr(value, "dtype") else str(value)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _checked(label: str, *, strict: bool = False, at_most_one: bool = False) -> Check:
    def check(name: str, value: Any) -> None:
        number = _validation.concrete_scalar(name, value)
        if number is None:  # traced: checked by its shape and dtype only
            return
        shown = _shown(value, number)
        if not (number > 0 if strict else number >= 0):  # NaN too, as torch
            raise ValueError(f"Invalid {label}: {shown}")
        if number > _FLOAT32_MAX:
            raise ValueError(
                f"Invalid {label}: {shown} (jsgd.torch computes in float32, whose "
                f"largest number is {_FLOAT32_MAX:.8g})"
            )
        if at_most_one and number > 1:
            raise ValueError(
                f"Invalid {label}: {shown} (jsgd.torch needs {name} <= 1; torch "
                "accepts it, but every step would grow the buffer)"
            )

    return check


learning_rate = _checked("learning rate")
positive_learning_rate = _checked("learning rate", strict=True)  # SparseAdam
momentum = _checked("momentum value", at_most_one=True)
dampening = _checked("dampening value", at_most_one=True)
weight_decay = _checked("weight_decay value")
epsilon = _checked("epsilon value")
positive_epsilon = _checked("epsilon value", strict=True)  # SparseAdam
alpha = _checked("alpha value", at_most_one=True)
lr_decay = _checked("lr_decay value")
initial_accumulator_value = _checked("initial_accumulator_value value")
switch = _validation.check_bool


def betas(name: str, value: Any) -> None:
    """``(beta1, beta2)``, each in [0, 1), torch's message per index."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(
            f"`{name}` must be a pair (beta1, beta2). Received: {name}={value!r}"
        )
    for index, beta in enumerate(value):
        number = _validation.concrete_scalar(f"{name}[{index}]", beta)
        if number is not None and not 0.0 <= number < 1.0:
            raise ValueError(
                f"Invalid beta parameter at index {index}: {_shown(beta, number)}"
            )
