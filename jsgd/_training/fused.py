"""``apply_gradients``: the optimizer step and its application, fused when possible.

For the SGD configurations a :class:`FusedSGD` describes (attached by the
optimizer that has them), one native XLA FFI call on the CPU steps every
float32 leaf: it reads each parameter, gradient and velocity once and writes
the parameter and velocity in place (``jsgd/_native/fused_sgd.cc``). Its
arithmetic is the unfused chain's, operation for operation, so the results
are the same bits. Everything else (other optimizers, other dtypes, row
updates, the GPU) takes ``update`` + :func:`jsgd.apply_updates`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jsgd._common import tree as _tree
from jsgd._native import library as _library
from jsgd._sparse.apply_updates import apply_updates
from jsgd._transforms.learning_rate import ScheduleState
from jsgd._transforms.momentum import MomentumState, damping_gain
from jsgd._transforms.step_count import is_counted

_MOMENTUM, _NESTEROV, _LR_IN_VELOCITY, _WEIGHT_DECAY = 1, 2, 4, 8


@dataclasses.dataclass(frozen=True)
class FusedSGD:
    """An SGD configuration the fused step covers, as its optimizer built it.

    Attributes:
      learning_rate: a number, 0-d array or schedule of the step count.
      momentum: ``None`` for plain SGD (no velocity), else the momentum.
      nesterov: the Nesterov look-ahead.
      dampening: torch's dampening (first step undamped), or ``None`` for 0.
      lr_in_velocity: Keras's rule (True) or optax's and torch's.
      weight_decay: Keras 3's decoupled weight decay, or ``None``.
    """

    learning_rate: Any
    momentum: Any
    nesterov: bool
    dampening: Any
    lr_in_velocity: bool
    weight_decay: Any


def fused_available() -> _library.FusedStatus:
    """Whether :func:`jsgd.apply_gradients` has its native CPU kernel, and why.

    The kernel is compiled when jsgd is installed with a C++ compiler
    present; without one (or with ``JSGD_FUSED=0`` in the environment)
    every step takes the XLA path, with the same results.

    Returns:
      A ``FusedStatus``: truthy when available; ``.reason`` says which
      library was loaded, or why none was.

    Examples:
      >>> import jsgd
      >>> status = jsgd.fused_available()
      >>> isinstance(status.reason, str)
      True
    """
    return _library.status()


def fused_rule(optimizer: Any) -> FusedSGD | None:
    """The :class:`FusedSGD` an optimizer (or its Keras-style class) carries."""
    transformation = getattr(optimizer, "transformation", optimizer)
    rule = getattr(getattr(transformation, "init", None), "fused_rule", None)
    return rule if isinstance(rule, FusedSGD) else None


def _f32(value: Any) -> jax.Array:
    return _tree.hyperparameter_as(value, jnp.dtype(jnp.float32))


def _learning_rate(rule: FusedSGD, count: jax.Array) -> jax.Array:
    rate = rule.learning_rate
    return _f32(rate(count) if callable(rate) else rate)


def _gain(rule: FusedSGD, count: jax.Array) -> jax.Array:
    """momentum_trace's gain on the update: torch's undamped first step."""
    if rule.dampening is None:
        return jnp.float32(1.0)  # momentum_trace multiplies by nothing: same bits
    return _f32(damping_gain(count, rule.momentum, rule.dampening))


def _covers(params: Any, grads: Any, velocity: Any) -> bool:
    leaves = jax.tree.leaves(params)
    trees = [jax.tree.leaves(grads, is_leaf=_tree.is_update_leaf)]
    if velocity is not None:
        trees.append(jax.tree.leaves(velocity))
    f32 = jnp.dtype(jnp.float32)
    return bool(leaves) and all(
        len(tree) == len(leaves)
        and all(
            isinstance(x, (jax.Array, np.ndarray)) and jnp.result_type(x) == f32
            for x in tree
        )
        for tree in [leaves, *trees]
    )


# At most this many leaves go to the kernel, in one call. XLA compiles a
# custom call in time quadratic in its aliased operands (1,000 leaves: 37 s),
# and split into calls of 64 leaves the 3,000-leaf tree of benchmarks/run.py
# stepped slower than XLA's own loops (30 ms against 25 ms a step, measured
# on the 2-core machine: each call costs about 0.6 ms there), so a larger
# tree takes the unfused path.
MAX_FUSED_LEAVES = 64
# And only leaves of this many elements on average: below it the call's fixed
# cost (about 25 us) outweighs the saved traffic (measured: 8 leaves of 10,000
# took 0.103 ms fused, 0.061 ms by XLA; one of 10^6 0.45 ms against 1.01 ms).
MIN_MEAN_LEAF_SIZE = 1 << 16


def _call(scalars, p, g, v, flags: int) -> tuple[list[Any], list[Any]]:
    """One kernel call on a group: ``(new_params, new_velocities)``, in place."""
    n = len(p)
    out_types = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (*p, *v)]
    # Argument 0 is the scalars; parameter i is argument 1 + i, velocity i
    # argument 1 + 2n + i; results: the parameters, then the velocities.
    aliases = {1 + i: i for i in range(n)}
    aliases.update({1 + 2 * n + i: n + i for i in range(len(v))})
    call = jax.ffi.ffi_call(
        _library.TARGET,
        out_types,
        input_output_aliases=aliases,
        vmap_method="sequential",
    )
    results = call(scalars, *p, *g, *v, flags=np.int64(flags), threads=np.int64(0))
    return list(results[:n]), list(results[n:])


def _fused_step(rule: FusedSGD, params, grads, state):
    """``(params, state)`` by the native kernel; the state's counts stepped."""
    schedules = [s for s in state if isinstance(s, ScheduleState)]
    count = schedules[0].count if schedules else jnp.zeros([], jnp.int32)
    velocity_at = [i for i, s in enumerate(state) if isinstance(s, MomentumState)]
    velocity = state[velocity_at[0]].velocity if velocity_at else None
    lr = _learning_rate(rule, count)
    flags = 0
    scalars = [-lr, jnp.float32(0.0), jnp.float32(1.0), jnp.float32(0.0)]
    if velocity is not None:
        flags |= _MOMENTUM
        flags |= _NESTEROV if rule.nesterov else 0
        flags |= _LR_IN_VELOCITY if rule.lr_in_velocity else 0
        scalars[1] = _f32(rule.momentum)
        scalars[2] = _gain(rule, state[velocity_at[0]].count)
    if rule.weight_decay is not None:
        flags |= _WEIGHT_DECAY
        scalars[3] = -(_f32(rule.weight_decay) * lr)
    treedef = jax.tree.structure(params)
    p = treedef.flatten_up_to(params)
    g = treedef.flatten_up_to(grads)
    v = [] if velocity is None else treedef.flatten_up_to(velocity)
    n = len(p)
    new_p, new_v = _call(jnp.stack(scalars).astype(jnp.float32), p, g, v, flags)
    results = [*new_p, *new_v]
    new_params = treedef.unflatten(results[:n])
    new_state = []
    for i, entry in enumerate(state):
        if is_counted(entry):
            entry = entry._replace(count=_tree.increment(entry.count))
        if velocity_at and i == velocity_at[0]:
            entry = entry._replace(velocity=treedef.unflatten(results[n:]))
        new_state.append(entry)
    return new_params, tuple(new_state)


def apply_gradients(
    optimizer: optax.GradientTransformation,
    grads: optax.Updates,
    opt_state: optax.OptState,
    params: optax.Params,
) -> tuple[optax.Params, optax.OptState]:
    """One optimizer step applied: ``(new_params, new_opt_state)``.

    Equal to ``updates, opt_state = optimizer.update(grads, opt_state,
    params)`` followed by :func:`jsgd.apply_updates`, bit for bit. For the
    configurations the fused kernel covers it is one native call on the CPU
    for all float32 leaves, reading parameter, gradient and velocity once
    and writing parameter and velocity in place (donate ``params`` and
    ``opt_state`` to the ``jit``, in that order, as
    :func:`jsgd.make_train_step` does: JAX pairs donated buffers with the
    results in order): :func:`jsgd.sgd` and
    :class:`jsgd.SGD` without clipping, legacy ``decay``, EMA, accumulation,
    loss scaling, weight-decay exclusions or ``accumulator_dtype``; with or
    without momentum, Nesterov and dampening; either learning-rate rule
    (``lr_in_velocity``), a constant, traced or scheduled learning rate, and
    decoupled weight decay; trees of at most 64 leaves of at least 65,536
    elements on average (one kernel call; beyond either bound XLA's own
    loops measured faster on the CPU: see docs/benchmarks.md). Anything else
    (other optimizers, non-float32 leaves, ``IndexedSlices``, other
    platforms, or no native library: see :func:`jsgd.fused_available`)
    takes the unfused path.

    Args:
      optimizer: any gradient transformation or Keras-style optimizer.
      grads: the gradients, a tree like ``params``.
      opt_state: the optimizer's state.
      params: the parameters.

    Returns:
      ``(new_params, new_opt_state)``.

    Raises:
      ValueError: if ``grads`` and ``params`` differ in structure (and
        whatever ``optimizer.update`` raises for bad input).

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.SGD(0.1, momentum=0.9)
      >>> params = {"w": jnp.ones(3)}
      >>> state = opt.init(params)
      >>> params, state = jsgd.apply_gradients(opt, {"w": jnp.ones(3)}, state, params)
      >>> params["w"]
      Array([0.9, 0.9, 0.9], dtype=float32)
      >>> params, state = opt.apply_gradients({"w": jnp.ones(3)}, state, params)
      >>> params["w"]  # Keras: v = 0.9 * -0.1 - 0.1
      Array([0.71, 0.71, 0.71], dtype=float32)
    """

    def unfused(params, grads, opt_state):
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return apply_updates(params, updates), opt_state

    rule = fused_rule(optimizer)
    if rule is None or not fused_available() or type(opt_state) is not tuple:
        return unfused(params, grads, opt_state)
    velocity = next(
        (s.velocity for s in opt_state if isinstance(s, MomentumState)), None
    )
    leaves = jax.tree.leaves(params)
    if (
        not leaves
        or len(leaves) > MAX_FUSED_LEAVES
        or sum(x.size for x in leaves) < MIN_MEAN_LEAF_SIZE * len(leaves)
        or not _covers(params, grads, velocity)
    ):
        return unfused(params, grads, opt_state)
    _tree.check_matching(grads, params, "parameters")

    # Decided when tracing: lax.platform_dependent would put both paths in a
    # conditional, around which XLA copies the buffers the kernel would
    # update in place.
    if jax.default_backend() != "cpu":
        return unfused(params, grads, opt_state)
    return _fused_step(rule, params, grads, opt_state)
