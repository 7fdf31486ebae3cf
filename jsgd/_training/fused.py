"""``apply_gradients``: the optimizer step and its application, fused when possible.

For the SGD configurations a :class:`FusedSGD` describes (attached by the
optimizer that has them), native XLA FFI calls on the CPU (one per 64
float32 leaves) step the tree: they read each parameter, gradient and
velocity once and write
the parameter and velocity in place (``jsgd/_native/fused_sgd.cc``). Its
arithmetic is the unfused chain's, operation for operation, so the results
are the same bits. Everything else (other optimizers, other dtypes, row
updates, the GPU) takes ``update`` + :func:`jsgd.apply_updates`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jsgd._common import tree as _tree
from jsgd._native import library as _library
from jsgd._sparse.apply_updates import apply_updates
from jsgd._transforms.clipping import clip_scale, global_norm
from jsgd._transforms.learning_rate import ScheduleState
from jsgd._transforms.momentum import MomentumState, damping_gain
from jsgd._transforms.step_count import is_counted

# The kernel's flags (fused_sgd.cc).
_MOMENTUM, _NESTEROV, _LR_IN_VELOCITY = 1, 2, 4
_DECOUPLED_DECAY, _COUPLED_DECAY, _BF16_VELOCITY = 8, 16, 32


@dataclasses.dataclass(frozen=True)
class FusedSGD:
    """An SGD configuration the fused step covers, as its optimizer built it.

    The step it describes is the kernel's (``jsgd/_native/fused_sgd.cc``),
    in this order: clip, ``maximize``, coupled weight decay, momentum (either
    learning-rate rule), decoupled weight decay.

    Attributes:
      learning_rate: a number, 0-d array or schedule of the step count.
      momentum: ``None`` for plain SGD (no velocity), else the momentum.
      nesterov: the Nesterov look-ahead.
      dampening: torch's dampening (first step undamped), or ``None`` for 0.
      lr_in_velocity: Keras's rule (True) or optax's and torch's.
      weight_decay: Keras 3's decoupled weight decay, or ``None``.
      coupled_weight_decay: torch's ``g + wd * w`` before the momentum, or
        ``None``.
      maximize: torch's ``maximize`` (``g = -g`` first).
      global_clipnorm: Keras's clip by the global norm, or ``None``.
      view: ``view(state) -> FusedView | None`` for a state that is not the
        chain's own tuple (``None`` from it: the unfused path).
    """

    learning_rate: Any
    momentum: Any
    nesterov: bool
    dampening: Any
    lr_in_velocity: bool
    weight_decay: Any = None
    coupled_weight_decay: Any = None
    maximize: bool = False
    global_clipnorm: Any = None
    view: Callable[[Any], FusedView | None] | None = None


@dataclasses.dataclass(frozen=True)
class FusedView:
    """An optimizer state as the fused step reads it.

    Attributes:
      chain: the SGD chain's state, a tuple of its steps' states.
      rule: this step's configuration (a torch state's group values and
        scheduled hyperparameters, say).
      rebuild: ``rebuild(new_chain) -> new_state``: the whole state after the
        step, everything outside the chain advanced as ``update`` does.
    """

    chain: tuple[Any, ...]
    rule: FusedSGD
    rebuild: Callable[[tuple[Any, ...]], Any]


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


def _velocity_dtype(velocity: Any) -> Any:
    """float32 or bfloat16 when every velocity leaf has it, else ``None``."""
    dtypes = {jnp.result_type(x) for x in jax.tree.leaves(velocity)}
    if len(dtypes) != 1:
        return None
    dtype = dtypes.pop()
    return dtype if dtype in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)) else None


def _is_float32_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray)) and jnp.result_type(x) == jnp.float32


def _covers(params: Any, grads: Any, velocity: Any) -> bool:
    """Dense float32 parameters and gradients, a float32 or bfloat16 velocity."""
    leaves = jax.tree.leaves(params)
    grad_leaves = jax.tree.leaves(grads, is_leaf=_tree.is_update_leaf)
    if not leaves or len(grad_leaves) != len(leaves):
        return False
    if not all(_is_float32_array(x) for x in (*leaves, *grad_leaves)):
        return False
    if velocity is None:
        return True
    velocity_leaves = jax.tree.leaves(velocity)
    return len(velocity_leaves) == len(leaves) and _velocity_dtype(velocity) is not None


# One kernel call takes at most this many leaves; a larger tree takes several.
# XLA compiles a custom call in time quadratic in its aliased operands (1,000
# leaves in one call: 37 s; 64: 0.1 s, measured on the 2-core machine).
LEAVES_PER_CALL = 64
# And only trees of this many elements a leaf on average. A bound, not a
# measured crossover: below it JAX's cost per array passed to and from the step
# is most of the step, fused or not (benchmarks/fused.py's "floor" column: 53 ms
# of the 3,000-leaf tree's 75-83 ms momentum step), and what the kernel saves
# there is within that cost's noise. Such a tree gains from jsgd.pack instead.
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


def _view(rule: FusedSGD, state: Any) -> FusedView | None:
    if rule.view is not None:
        return rule.view(state)
    if type(state) is not tuple:  # the chain's own state (jsgd.sgd, jsgd.SGD)
        return None
    return FusedView(state, rule, lambda chain: chain)


def _velocity_of(view: FusedView) -> Any:
    return next((s.velocity for s in view.chain if isinstance(s, MomentumState)), None)


def _scalars_and_flags(view: FusedView, grads, velocity_dtype):
    """The kernel's six scalars (float32) and flags for this step."""
    chain, rule = view.chain, view.rule
    schedules = [s for s in chain if isinstance(s, ScheduleState)]
    count = schedules[0].count if schedules else jnp.zeros([], jnp.int32)
    rate = rule.learning_rate
    lr = _f32(rate(count) if callable(rate) else rate)
    momentum = rule.momentum
    one, zero = jnp.float32(1.0), jnp.float32(0.0)
    m, gain, minus_lr_wd, wd = zero, one, zero, zero
    flags = 0
    velocity_state = next((s for s in chain if isinstance(s, MomentumState)), None)
    if velocity_state is not None:
        flags |= _MOMENTUM | (_NESTEROV if rule.nesterov else 0)
        flags |= _LR_IN_VELOCITY if rule.lr_in_velocity else 0
        flags |= _BF16_VELOCITY if velocity_dtype == jnp.bfloat16 else 0
        m = _f32(momentum)
        if rule.dampening is not None:  # else momentum_trace multiplies by nothing
            gain = _f32(damping_gain(velocity_state.count, momentum, rule.dampening))
    if rule.weight_decay is not None:
        flags |= _DECOUPLED_DECAY
        minus_lr_wd = -(_f32(rule.weight_decay) * lr)
    if rule.coupled_weight_decay is not None:
        flags |= _COUPLED_DECAY
        wd = _f32(rule.coupled_weight_decay)
    grad_scale = one
    if rule.global_clipnorm is not None:
        grad_scale = clip_scale(global_norm(grads), rule.global_clipnorm)
    if rule.maximize:
        grad_scale = -grad_scale
    scalars = jnp.stack([-lr, m, gain, minus_lr_wd, grad_scale, wd])
    return scalars.astype(jnp.float32), flags


def _fused_step(rule: FusedSGD, params, grads, state):
    """``(params, state)`` by the native kernel; the state's counts stepped."""
    view = _view(rule, state)
    assert view is not None, "apply_gradients checked the state's layout"
    velocity = _velocity_of(view)
    velocity_dtype = None if velocity is None else _velocity_dtype(velocity)
    scalars, flags = _scalars_and_flags(view, grads, velocity_dtype)
    treedef = jax.tree.structure(params)
    p = treedef.flatten_up_to(params)
    g = treedef.flatten_up_to(grads)
    v = [] if velocity is None else treedef.flatten_up_to(velocity)
    new_p: list[Any] = []
    new_v: list[Any] = []
    for start in range(0, len(p), LEAVES_PER_CALL):
        part = slice(start, start + LEAVES_PER_CALL)
        stepped_p, stepped_v = _call(scalars, p[part], g[part], v[part], flags)
        new_p += stepped_p
        new_v += stepped_v
    chain = []
    for entry in view.chain:
        if is_counted(entry):
            entry = entry._replace(count=_tree.increment(entry.count))
        if isinstance(entry, MomentumState):
            entry = entry._replace(velocity=treedef.unflatten(new_v))
        chain.append(entry)
    return treedef.unflatten(new_p), view.rebuild(tuple(chain))


def apply_gradients(
    optimizer: optax.GradientTransformation,
    grads: optax.Updates,
    opt_state: optax.OptState,
    params: optax.Params,
) -> tuple[optax.Params, optax.OptState]:
    """One optimizer step applied: ``(new_params, new_opt_state)``.

    Equal to ``updates, opt_state = optimizer.update(grads, opt_state,
    params)`` followed by :func:`jsgd.apply_updates`, bit for bit (run op by
    op; a jitted unfused step may differ by an ulp, where XLA contracts
    ``a * b + c`` into a fused multiply-add). For the configurations the
    fused kernel covers it is one native call on the CPU per 64 float32
    leaves, reading parameter, gradient and velocity once and writing
    parameter and velocity in place (donate ``params`` and ``opt_state`` to
    the ``jit``, in that order, as :func:`jsgd.make_train_step` does: JAX
    pairs donated buffers with the results in order). Covered:

    * :func:`jsgd.sgd` and :class:`jsgd.SGD`: with or without momentum,
      Nesterov and dampening, either learning-rate rule
      (``lr_in_velocity``), ``global_clipnorm``, decoupled
      ``weight_decay`` and a float32 or bfloat16 ``accumulator_dtype``;
      not ``clipvalue``, ``clipnorm``, the legacy ``decay``, EMA,
      accumulation, loss scaling or weight-decay exclusions.
    * :func:`jsgd.torch.SGD` with one parameter group: momentum, dampening,
      Nesterov, coupled ``weight_decay``, ``maximize``, a float32 or
      bfloat16 buffer, and any scheduler.
    * A constant, traced or scheduled learning rate; trees of at least
      65,536 elements a leaf on average (below that JAX's cost per array
      passed to the step outweighs the saved traffic: pack such a tree with
      :func:`jsgd.pack`; see docs/benchmarks.md).

    Anything else (other optimizers, non-float32 parameters,
    ``IndexedSlices``, other platforms, or no native library: see
    :func:`jsgd.fused_available`) takes the unfused path.

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
    if rule is None or not fused_available():
        return unfused(params, grads, opt_state)
    view = _view(rule, opt_state)
    if view is None:
        return unfused(params, grads, opt_state)
    leaves = jax.tree.leaves(params)
    if (
        sum(isinstance(s, MomentumState) for s in view.chain) > 1
        or sum(x.size for x in leaves) < MIN_MEAN_LEAF_SIZE * len(leaves)
        or not _covers(params, grads, _velocity_of(view))
    ):
        return unfused(params, grads, opt_state)
    _tree.check_matching(grads, params, "parameters")

    # Decided when tracing: lax.platform_dependent would put both paths in a
    # conditional, around which XLA copies the buffers the kernel would
    # update in place.
    if jax.default_backend() != "cpu":
        return unfused(params, grads, opt_state)
    return _fused_step(rule, params, grads, opt_state)
