"""Stochastically rounded updates of low-precision parameters (no extra buffer)."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jsgd._common import tree as _tree
from jsgd._sparse.indexed_slices import takes_indexed_slices
from jsgd._transforms import low_precision as _low


class StochasticRoundingState(NamedTuple):
    """State of :func:`jsgd.stochastic_rounding`.

    Attributes:
      key: the raw ``uint32[2]`` PRNG key of the next step (threefry, as
        ``jax.random.PRNGKey(seed)``); split once per step.
      inner_state: the wrapped transformation's state.
    """

    key: jax.Array
    inner_state: optax.OptState


def round_stochastically(x: jax.Array, dtype: Any, key: jax.Array) -> jax.Array:
    """``x`` (float32) rounded to ``dtype``: up with chance ``(x - lo) / (hi - lo)``.

    The result is float32, holding values of ``dtype`` (cast it; the cast is
    exact).

    ``lo <= x <= hi`` are the neighbours of ``x`` in ``dtype``, so the
    result's mean is ``x`` (unbiased); a value ``dtype`` holds exactly, and a
    non-finite one, round to themselves. A finite ``x`` beyond ``dtype``'s
    largest finite value rounds to it (``hi`` is infinity there, drawn with
    probability 0).
    """
    nearest = _low.rounded(x, dtype)
    low = nearest.astype(dtype)  # exact
    away = jnp.where(
        nearest > x,
        jnp.nextafter(low, jnp.asarray(-jnp.inf, dtype)),
        jnp.nextafter(low, jnp.asarray(jnp.inf, dtype)),
    ).astype(jnp.float32)
    lo = jnp.minimum(nearest, away)
    hi = jnp.maximum(nearest, away)
    # x - lo is exact in float32 for bfloat16 and float16 neighbours.
    p_up = (x - lo) / (hi - lo)
    draw = jax.random.uniform(key, x.shape, jnp.float32)
    rounded = jnp.where(draw < p_up, hi, lo)
    return jnp.where((nearest == x) | ~jnp.isfinite(x), nearest, rounded)


def _rounded(p: jax.Array, u: jax.Array, state: Any, key: jax.Array, dtype: Any):
    del state
    return round_stochastically(p + u, dtype, key)


_ROUNDING = _low.LeafRule(target=_rounded)


def _check_seed(seed: Any) -> jax.Array:
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"`seed` must be in [0, 2**64). Received: seed={seed!r}")
        return jax.random.PRNGKey(int(seed))
    key = np.asarray(seed) if not isinstance(seed, jax.Array) else seed
    if key.dtype == np.uint32 and key.shape == (2,):
        return jnp.asarray(key)
    raise TypeError(
        "`seed` must be an int or a raw uint32[2] PRNG key "
        f"(jax.random.PRNGKey(...)). Received: seed={seed!r}"
    )


@takes_indexed_slices
def stochastic_rounding(
    transformation: optax.GradientTransformation, seed: Any = 0
) -> optax.GradientTransformationExtraArgs:
    """Rounds each low-precision parameter's new value stochastically.

    Round-to-nearest loses every update smaller than half an ulp (a
    bfloat16 parameter near 1.0 never moves while ``|update| < 2**-9``).
    Rounding up or down at random, with the probabilities that make the
    result's mean exact, loses none on average and needs no buffer. For
    each bfloat16 or float16 parameter leaf ``p``, with ``u`` the wrapped
    transformation's update::

        x = p + u                                  (float32)
        p_new = hi  with probability (x - lo) / (hi - lo),  else lo

    where ``lo <= x <= hi`` are ``x``'s neighbours in ``p``'s dtype (see
    :func:`round_stochastically`), so ``E[p_new] = x``. The update this
    returns is ``p_new - p`` in the update's dtype, which
    ``optax.apply_updates`` and :func:`jsgd.apply_updates` turn into exactly
    ``p_new`` whenever ``p_new`` is within a factor of two of ``p`` (in the
    rare step that halves, doubles or zeroes a parameter the difference may
    not fit the update's dtype, and the parameter lands within half an ulp
    of the difference, as a plain update's would). Float32 and wider leaves
    pass through; a ``None`` update is left alone; an
    :class:`jsgd.IndexedSlices` update rounds only the touched rows
    (duplicates summed in float32 first).

    The randomness: the state's key is split once per step; the leaf at
    position ``i`` of the flattened updates draws from
    ``fold_in(step_key, i)``, one uniform per element. So a seed gives the
    same bits every run, and steps and leaves draw independently. Under
    ``pmap`` or ``jax.sharding`` the key is part of the replicated state:
    every device holds the same key, a replicated parameter rounds the same
    way on every device (replicas stay identical), and a sharded one draws,
    for each element, the bits the unsharded run draws for it (threefry is
    partitionable: ``jax_threefry_partitionable``, JAX's default), so the
    result does not depend on the mesh. For different draws per replica
    (rarely wanted), fold ``jax.lax.axis_index`` into the key yourself.

    Args:
      transformation: any gradient transformation (an optimizer).
      seed: an int in ``[0, 2**64)``, or a raw ``uint32[2]`` key.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a
      :class:`jsgd.StochasticRoundingState` (8 bytes, whatever the model);
      ``update`` needs ``params``.

    Raises:
      TypeError: for a ``seed`` that is neither.
      ValueError: for a negative or too large ``seed``, or if ``update`` is
        called without ``params``.

    Examples:
      >>> import jax.numpy as jnp, optax, jsgd
      >>> params = jnp.ones(1000, jnp.bfloat16)
      >>> tx = jsgd.stochastic_rounding(optax.sgd(1e-3), seed=0)
      >>> state = tx.init(params)
      >>> for _ in range(100):
      ...     updates, state = tx.update(-jnp.ones(1000, jnp.bfloat16), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> round(float(params.astype(jnp.float32).mean()), 2)  # 1 + 100 * 1e-3
      1.1
    """
    key = _check_seed(seed)
    inner = optax.with_extra_args_support(transformation)

    def init_fn(params: optax.Params) -> StochasticRoundingState:
        return StochasticRoundingState(key, inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        _tree.check_state(state, StochasticRoundingState, "jsgd.stochastic_rounding")
        _tree.require_params(params)
        updates, inner_state = inner.update(
            updates, state.inner_state, params, **extra_args
        )
        next_key, step_key = jax.random.split(state.key)
        updates, _ = _low.map_low_precision(
            _ROUNDING,
            updates,
            None,
            params,
            keys=lambda i: jax.random.fold_in(step_key, i),
        )
        return updates, StochasticRoundingState(next_key, inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
