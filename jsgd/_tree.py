"""Small pytree and dtype helpers shared by the transforms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

try:  # One message for "this transform needs params", shared with optax.
    from optax._src.base import NO_PARAMS_MSG
except ImportError:  # pragma: no cover - optax moved it
    NO_PARAMS_MSG = (
        "You are using a transformation that requires the current value of "
        "parameters, but you are not passing `params` when calling `update`."
    )


def _is_none(x: Any) -> bool:
    return x is None


def map_updates(fn: Callable[..., Any], updates: Any, *rest: Any) -> Any:
    """``jax.tree.map`` over ``updates`` that leaves ``None`` update leaves alone.

    A ``None`` update (a frozen or unused parameter) stays ``None`` whatever the
    other trees hold at that position.
    """
    return jax.tree.map(
        lambda u, *r: None if u is None else fn(u, *r), updates, *rest, is_leaf=_is_none
    )


def map_state(fn: Callable[..., Any], updates: Any, state: Any) -> Any:
    """Maps ``fn(u, s)`` over a per-parameter state tree.

    Where the update is ``None`` (a frozen parameter) the state leaf is kept.
    """
    return jax.tree.map(
        lambda u, s: s if u is None else fn(u, s), updates, state, is_leaf=_is_none
    )


def compute_dtype(*dtypes: Any) -> jnp.dtype:
    """The dtype to do optimizer arithmetic in: at least float32.

    Low-precision inputs (bfloat16, float16) are upcast so that each result is
    rounded once, when it is stored; float64 and complex inputs keep their
    precision.
    """
    result = jnp.dtype(jnp.float32)
    for dtype in dtypes:
        result = jnp.promote_types(result, dtype)
    return result


def as_dtype(value: Any, dtype: Any) -> jax.Array:
    """Casts a scalar hyperparameter (number, array or tracer) to ``dtype``."""
    return jnp.asarray(value).astype(dtype)


def squared_norm(x: jax.Array) -> jax.Array:
    """Sum of ``|x|**2``, accumulated in at least float32 (real result)."""
    x = x.astype(compute_dtype(x.dtype))
    if jnp.iscomplexobj(x):
        return jnp.sum(jnp.real(x) ** 2 + jnp.imag(x) ** 2)
    return jnp.sum(x * x)


def zero_count() -> jax.Array:
    """A fresh int32 step counter."""
    return jnp.zeros([], jnp.int32)


def increment(count: jax.Array) -> jax.Array:
    """Adds one to an int32 counter, saturating at the int32 maximum."""
    top = jnp.iinfo(jnp.int32).max
    return jnp.where(count < top, count + 1, top).astype(jnp.int32)


def require_params(params: Any) -> None:
    """Raises optax's error for transforms that need ``params``."""
    if params is None:
        raise ValueError(NO_PARAMS_MSG)
