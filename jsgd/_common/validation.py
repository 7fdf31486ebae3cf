"""Validation of hyperparameters, with Keras-style error messages.

Only concrete values are checked. A traced hyperparameter (under ``jit``,
``vmap`` or ``optax.inject_hyperparams``) has no value at trace time, so its
value passes through unchecked; its shape and dtype are still checked, since
those are known while tracing.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any, Literal, overload

import jax.numpy as jnp
import numpy as np
from jax.core import Tracer


def _type_error(name: str, value: Any, why: str) -> TypeError:
    return TypeError(
        f"`{name}` must be a real scalar (a Python number or a 0-d real array), "
        f"{why}. Received: {name}={value!r}"
    )


def concrete_scalar(name: str, value: Any) -> float | None:
    """Returns a hyperparameter's value as a Python float, or None if traced.

    Args:
      name: the argument's name, used in error messages.
      value: a Python number, a 0-d NumPy/JAX array, or a tracer.

    Returns:
      The value as a float, or None when ``value`` is a tracer.

    Raises:
      TypeError: for bool, complex, string, non-numeric or non-scalar values.
    """
    if isinstance(value, (bool, np.bool_)):
        raise _type_error(name, value, "not a bool")
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        return math.inf if value > 0 else -math.inf  # float() would overflow
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, numbers.Complex):
        raise _type_error(name, value, "not complex")
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None:
        raise _type_error(name, value, f"not {type(value).__name__}")
    if tuple(shape) != ():
        raise _type_error(name, value, f"not an array of shape {tuple(shape)}")
    try:
        jnp.dtype(dtype)
    except TypeError:  # e.g. a torch tensor's dtype
        raise _type_error(name, value, f"not a {type(value).__name__}") from None
    if jnp.issubdtype(dtype, jnp.bool_):
        raise _type_error(name, value, "not a bool array")
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise _type_error(name, value, "not a complex array")
    if not jnp.issubdtype(dtype, jnp.number):
        raise _type_error(name, value, f"not an array of dtype {dtype}")
    if isinstance(value, Tracer):
        return None
    return float(value)


def _received(name: str, value: Any, number: float) -> str:
    shown = number if hasattr(value, "dtype") else value
    return f"Received: {name}={shown}"


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def _check_float32_range(
    name: str, value: Any, number: float, *, zero_ok: bool
) -> None:
    """Rejects a finite number that float32 arithmetic would make inf (or 0).

    jsgd computes in at least float32: a learning rate of 1e39 would become
    inf there (NaN updates even for a zero gradient), a loss scale factor of
    1e-46 would become 0 (a division by zero).
    """
    if math.isfinite(number) and abs(number) > _FLOAT32_MAX:
        raise ValueError(
            f"`{name}` overflows float32, whose largest number is "
            f"{_FLOAT32_MAX:.8g}. {_received(name, value, number)}"
        )
    if not zero_ok and 0 < abs(number) < _FLOAT32_TINY:
        # Below float32's smallest normal number XLA:CPU flushes to 0.
        raise ValueError(
            f"`{name}` underflows float32, whose smallest normal number is "
            f"{_FLOAT32_TINY:.8g} (XLA treats smaller ones as 0). "
            f"{_received(name, value, number)}"
        )


def check_non_negative(name: str, value: Any) -> None:
    """Requires a finite number >= 0 (learning rates, decays) within float32."""
    number = concrete_scalar(name, value)
    if number is not None and not (math.isfinite(number) and number >= 0):
        raise ValueError(
            f"`{name}` must be a finite number >= 0. {_received(name, value, number)}"
        )
    if number is not None:
        # A tiny rate or decay rounding to 0 changes nothing: only overflow.
        _check_float32_range(name, value, number, zero_ok=True)


def check_unit_interval(name: str, value: Any) -> None:
    """Requires a number in [0, 1] (momentum, dampening)."""
    number = concrete_scalar(name, value)
    if number is not None and not 0.0 <= number <= 1.0:
        raise ValueError(
            f"`{name}` must be between [0, 1]. {_received(name, value, number)}"
        )


def check_positive(name: str, value: Any) -> None:
    """Requires a number > 0 within float32 (clip thresholds, divisors).

    +inf means "never clip"; a finite number that float32 makes inf or 0 is
    rejected.
    """
    number = concrete_scalar(name, value)
    if number is not None and not number > 0:
        raise ValueError(f"`{name}` must be > 0. {_received(name, value, number)}")
    if number is not None:
        _check_float32_range(name, value, number, zero_ok=False)


def check_learning_rate(name: str, value: Any) -> None:
    """A learning rate is a finite number >= 0 or a schedule (not checked)."""
    if callable(value):
        return
    check_non_negative(name, value)


def check_schedule_value(name: str, value: Any) -> None:
    """Checks what a schedule passed as ``name`` returned for one step.

    Its shape and dtype are checked always (they are known while tracing):
    a vector would silently become a per-element rate, a complex value a
    zero update. Its value is checked when concrete (eager calls); under
    ``jit`` a negative or non-finite value is the schedule's own business.
    """
    try:
        check_non_negative(name, value)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"The schedule given as `{name}` returned a bad value: {error}"
        ) from None


def static_int_hint(value: Any) -> str:
    """Advice for an array where a Python int fixes the program's structure."""
    if isinstance(value, (np.ndarray, np.generic, Tracer)) or hasattr(value, "shape"):
        return (
            " (it shapes the program, so it must be a Python int; under "
            "optax.inject_hyperparams, pass it in `static_args`)"
        )
    return ""


def check_bool(name: str, value: Any) -> None:
    """Requires a Python bool (a static switch, never traced)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")


def canonical_dtype(name: str, value: Any) -> jnp.dtype | None:
    """Normalizes an optional floating or complex dtype argument."""
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError as error:
        raise TypeError(
            f"`{name}` must be a dtype or None. Received: {name}={value!r}"
        ) from error
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"`{name}` must be a floating or complex dtype. Received: {name}={value!r}"
        )
    return dtype


def check_float_dtype(name: str, value: Any) -> jnp.dtype:
    """Normalizes a required real floating dtype argument."""
    dtype = canonical_dtype(name, value)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must be a real floating dtype. Received: {name}={value!r}"
        )
    return dtype


def is_static_zero(value: Any) -> bool:
    """True for a Python number equal to zero.

    Arrays are never "static": under ``optax.inject_hyperparams`` the same
    hyperparameter is a concrete array in ``init`` and a tracer in ``update``,
    so the state's structure must not depend on an array's value.
    """
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0
    )


@overload
def check_integer(
    name: str, value: Any, minimum: int, *, optional: Literal[False] = False
) -> int: ...
@overload
def check_integer(
    name: str, value: Any, minimum: int, *, optional: bool
) -> int | None: ...
def check_integer(
    name: str, value: Any, minimum: int, *, optional: bool = False
) -> int | None:
    """Requires a Python int >= ``minimum`` (a count that shapes the program).

    With ``optional``, ``None`` (meaning "never") is accepted too.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        valid = False
    else:
        valid = int(value) >= minimum
    if not valid:
        allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ValueError(
            f"`{name}` must be {allowed}. Received: {name}={value!r}"
            + static_int_hint(value)
        )
    return int(value)
