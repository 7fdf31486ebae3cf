"""torch's ``state_dict`` layouts for :mod:`jsgd.torch`'s optimizers, both ways.

:func:`state_dict` writes a jsgd optimizer's state as torch 2.13's
``optimizer.state_dict()`` for the same optimizer, parameters and groups;
:func:`load_state_dict` reads one (from torch, or from :func:`state_dict`)
into a jsgd state; :func:`scheduler_state_dict` writes the scheduler's state
as torch's ``scheduler.state_dict()``. So a run can move between torch and
jsgd in the middle, either way.

Parameters are numbered as torch numbers them: parameter ``i`` is the
``i``-th path of ``order`` (paths as
:func:`jsgd._common.tree.path_string` writes them,
``"encoder/0/bias"``), by default the order of ``jax.tree.leaves(params)``.
torch numbers its parameters group after group, in each group's order
(``state_dict()``'s ``pack_group``), so for a torch optimizer built from
``[{"params": [b1, b2]}, {"params": [w1, w2]}]`` pass
``order=["b1", "b2", "w1", "w2"]`` (the jsgd paths of those tensors). torch's
``load_state_dict`` pairs the saved ids with its live parameters group by
group, in order, so a state dict of jsgd's loads into a torch optimizer
whose groups list the parameters in ``order``'s relative order.

Nothing here imports torch: torch tensors are read through their
``detach().cpu().numpy()`` (duck-typed), and values are written as NumPy
arrays and Python numbers (``torch.tensor(array)`` makes them tensors).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import numbers
import types
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jsgd._lr_scheduler import core as _core
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
from jsgd._optimizers import torch_family as _family
from jsgd._optimizers import torch_groups as _groups
from jsgd._transforms.adaptive import AdagradState, AdamState, RMSpropState
from jsgd._transforms.learning_rate import ScheduleState
from jsgd._transforms.momentum import MomentumState

__all__ = ["load_state_dict", "scheduler_state_dict", "state_dict"]

# torch 2.13's param_group keys, in each optimizer's ``defaults`` order.
_GROUP_KEYS = {
    "SGD": (
        "lr",
        "momentum",
        "dampening",
        "weight_decay",
        "nesterov",
        "maximize",
        "foreach",
        "differentiable",
        "fused",
    ),
    "Adam": (
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "amsgrad",
        "maximize",
        "foreach",
        "capturable",
        "differentiable",
        "fused",
        "decoupled_weight_decay",
    ),
    "RMSprop": (
        "lr",
        "momentum",
        "alpha",
        "eps",
        "centered",
        "weight_decay",
        "capturable",
        "foreach",
        "maximize",
        "differentiable",
    ),
    "Adagrad": (
        "lr",
        "lr_decay",
        "eps",
        "weight_decay",
        "initial_accumulator_value",
        "foreach",
        "maximize",
        "differentiable",
        "fused",
    ),
    "SparseAdam": ("lr", "betas", "eps", "maximize"),
}
_GROUP_KEYS["AdamW"] = _GROUP_KEYS["Adam"]

# The implementation switches: torch's defaults, no effect on the numbers.
_PERFORMANCE = {
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": None,
}
_FIXED = {"decoupled_weight_decay": {"Adam": False, "AdamW": True}}

# torch's per-parameter state keys, in the order its step writes them.
_STATE_KEYS = {
    "SGD": ("momentum_buffer",),
    "Adam": ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "AdamW": ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "RMSprop": ("step", "square_avg", "momentum_buffer", "grad_avg"),
    "Adagrad": ("step", "sum"),
    "SparseAdam": ("step", "exp_avg", "exp_avg_sq"),
}

# Which field of which jsgd state is which torch state key.
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {
    MomentumState: (("velocity", "momentum_buffer"),),
    AdamState: (
        ("momentum", "exp_avg"),
        ("velocity", "exp_avg_sq"),
        ("velocity_hat", "max_exp_avg_sq"),
    ),
    RMSpropState: (("velocity", "square_avg"), ("average_gradient", "grad_avg")),
    AdagradState: (("accumulator", "sum"),),
}

# Relative tolerance between torch's double schedules and jsgd's float32 ones.
_SCHEDULE_RTOL = 1e-4
_SCHEDULE_ATOL = 1e-12


# ------------------------------------------------------------- structure


class _Layout(NamedTuple):
    """The parameters in torch's numbering and jsgd's groups."""

    info: _family.TorchOptimizerInfo
    treedef: Any
    leaves: list[Any]  # in tree order
    order: list[str]  # torch index -> path
    tree_index: list[int]  # torch index -> tree position
    in_use: list[_groups.Group]  # torch's param_groups order
    members: list[list[int]]  # group position -> torch indices, ascending
    group_of: list[int]  # torch index -> group position

    @property
    def name(self) -> str:
        return self.info.spec.class_name

    def where(self, i: int) -> str:
        return f"parameter {i} ({self.order[i]!r})"


def _resolve(optimizer: Any, params: Any, order: Sequence[str] | None) -> _Layout:
    info = _family.torch_info(optimizer)
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [_groups.path_string(path) for path, _ in flat]
    leaves = [leaf for _, leaf in flat]
    labels, in_use = _groups.assign(params, list(info.groups), info.defaults)
    positions = jax.tree.leaves(labels)
    if len(positions) != len(leaves):
        raise ValueError(
            "state_dict: params must not hold None leaves (torch has no such "
            "parameters)"
        )
    if order is None:
        order_list = paths
    else:
        if isinstance(order, str) or not all(isinstance(p, str) for p in order):
            raise TypeError(
                "`order` must be a list of parameter paths ('/'-joined, as "
                f"'encoder/0/bias'). Received: order={order!r}"
            )
        order_list = list(order)
        _check_order(order_list, paths)
    at = {p: k for k, p in enumerate(paths)}
    tree_index = [at[p] for p in order_list]
    group_of = [positions[t] for t in tree_index]
    members = [
        [i for i, g in enumerate(group_of) if g == position]
        for position in range(len(in_use))
    ]
    return _Layout(
        info, treedef, leaves, order_list, tree_index, in_use, members, group_of
    )


def _check_order(order: list[str], paths: list[str]) -> None:
    counts = collections.Counter(paths)
    if len(counts) != len(paths):
        repeated = sorted(p for p, c in counts.items() if c > 1)
        raise ValueError(
            f"`order` cannot name the parameters: several have the path {repeated}"
        )
    listed = collections.Counter(order)
    unknown = [p for p in order if p not in counts]
    repeated = sorted(p for p, c in listed.items() if c > 1)
    missing = [p for p in paths if p not in listed]
    if unknown or repeated or missing:
        problems = []
        if unknown:
            problems.append(f"names {unknown[:12]}, which are not parameter paths")
        if repeated:
            problems.append(f"repeats {repeated[:12]}")
        if missing:
            problems.append(f"lacks {missing[:12]}")
        raise ValueError(
            f"`order` must list every parameter path once; it {'; '.join(problems)} "
            f"(the paths: {paths[:12]}{', ...' if len(paths) > 12 else ''})"
        )


def _group_states(layout: _Layout, opt_state: Any) -> list[tuple[Any, ...]]:
    """Each group's tuple of step states (torch's param_groups order)."""
    owner = f"jsgd.torch.{layout.name}"
    if not isinstance(opt_state, _family.OptimizerState):
        raise TypeError(
            f"state_dict: opt_state must be the {owner} state (a "
            f"jsgd.torch.OptimizerState). Received: {type(opt_state).__name__}"
        )
    inner: dict[Any, Any] = dict(opt_state.groups.inner_states)
    labels = [g.index for g in layout.in_use]
    if sorted(inner) != sorted(labels):
        raise ValueError(
            f"state_dict: opt_state has the groups {sorted(inner)} but {owner} "
            f"puts these params in the groups {labels}: a state of other params "
            "or another optimizer"
        )
    out = []
    for label in labels:
        masked = inner[label]
        states = getattr(masked, "inner_state", masked)
        if not isinstance(states, tuple):
            raise TypeError(f"state_dict: not a {owner} state: {masked!r}")
        out.append(tuple(states))
    return out


def _slots(states: tuple[Any, ...]) -> list[tuple[int, str, str]]:
    """``(step index, field, torch key)`` of each per-parameter statistic."""
    slots = []
    for k, s in enumerate(states):
        for field, key in _FIELDS.get(type(s), ()):
            if getattr(s, field) is not None:
                slots.append((k, field, key))
    return slots


def _count(name: str, states: tuple[Any, ...], total: int) -> int:
    """The group's torch ``step`` (SGD: its momentum count)."""
    kinds: list[type] = [AdamState, MomentumState, ScheduleState]
    if name not in ("SGD", "RMSprop"):
        kinds.remove(MomentumState)
    for kind in kinds:
        for s in states:
            if isinstance(s, kind):
                return int(s.count)
    return 0 if name == "SGD" else total


# ---------------------------------------------------------------- values


def _array(x: Any) -> np.ndarray:
    """A NumPy array from a torch tensor (CPU), a jax array or anything array-like."""
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor
        x = x.detach()
        if hasattr(x, "cpu"):
            x = x.cpu()
        if hasattr(x, "resolve_conj"):
            x = x.resolve_conj()
        return np.asarray(x.numpy())
    return np.asarray(x)


def _number(x: Any) -> Any:
    """A Python number (bool, int or float) from a 0-d tensor or array, or ``x``."""
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    if isinstance(x, (list, tuple)):
        return type(x)(_number(v) for v in x)
    if hasattr(x, "shape") or hasattr(x, "detach"):
        value = _array(x)
        if value.shape == ():
            return value.item()
        return value.tolist()
    if isinstance(x, numbers.Number):
        return x.item() if hasattr(x, "item") else x  # pyright: ignore
    return x


def _float32(value: Any, candidates: Sequence[Any] = ()) -> Any:
    """A float32 value as a Python number, as near torch's double as can be.

    A candidate (a number the constructor was given) that rounds to it, or
    else the shortest decimal that does (0.04, not 0.03999999910593033).
    """
    x = np.float32(value)
    for c in candidates:
        real = isinstance(c, numbers.Real) and not isinstance(c, bool)
        if real and np.float32(c) == x:
            return c
    return float(str(x))


def _integral(x: Any, where: str) -> int:
    value = _number(x)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number. Received: {x!r}")
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(f"{where} must be a whole number >= 0. Received: {x!r}")
    return int(value)


def _same(a: Any, b: Any) -> bool:
    """Equal as jsgd uses them: numbers in float32, sequences elementwise."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
            return False
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        x, y = np.float32(a), np.float32(b)
        return bool(x == y or (np.isnan(x) and np.isnan(y)))
    return a == b


def _close(a: Any, b: Any) -> bool:
    """Equal up to float32's rounding of a double schedule."""
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= _SCHEDULE_ATOL + _SCHEDULE_RTOL * max(abs(x), abs(y))


def _to_torch(state_leaf: Any, param: Any) -> np.ndarray:
    """A state leaf as torch stores it: a NumPy copy, complex again if ``param`` is."""
    value = np.array(state_leaf)
    if jnp.iscomplexobj(param):
        value = (value[..., 0] + 1j * value[..., 1]).astype(np.dtype(param.dtype))
    return value


def _from_torch(x: Any, like: Any, param: Any, where: str) -> jax.Array:
    """Torch's value as the jsgd state leaf ``like`` (complex as its real view)."""
    value = _array(x)
    shape = tuple(np.shape(param))
    if value.shape != shape:
        raise ValueError(
            f"{where} has the shape {value.shape}, but the parameter has the shape "
            f"{shape}"
        )
    if jnp.iscomplexobj(param):
        if not np.iscomplexobj(value):
            value = value.astype(np.dtype(param.dtype))
        value = np.stack([np.real(value), np.imag(value)], axis=-1)
    elif np.iscomplexobj(value):
        raise ValueError(f"{where} is complex, but the parameter is real")
    out = jnp.asarray(value, like.dtype)
    sharding = getattr(like, "sharding", None)
    if sharding is not None:
        out = jax.device_put(out, sharding)
    return out


# ------------------------------------------------------------- schedulers


class _Built(NamedTuple):
    """A scheduler's constructor, replayed: its state and the param-group writes."""

    scheduler: Any
    state: SchedulerState
    private: dict[str, jax.Array]


def _initial_values(spec: Any, groups: Sequence[_groups.Group]) -> dict[str, Any]:
    """What the groups hold before the scheduler is built (as the optimizer's init)."""
    values = {}
    for key in _family.scheduled_keys(spec):
        column = []
        for g in groups:
            v = g.values["betas"][0] if key == "beta1" else g.values[key]
            column.append(_number(v))
        values[key] = jnp.asarray(column, jnp.float32)
    return values


def _construction(
    scheduler: Any, initial: dict[str, Any]
) -> tuple[list[_Built], dict[str, jax.Array]]:
    """The constructors run in order (a composite's children one by one)."""
    values = _core.as_values(initial)
    if isinstance(scheduler, (SequentialLR, ChainedScheduler)):
        built, private = [], {}
        for child in scheduler.schedulers:
            state, private = child._construct(values, dict(private))
            values = state.values
            built.append(_Built(child, state, dict(private)))
        return built, dict(private)
    if isinstance(scheduler, _core.Scheduler):
        state, private = scheduler._construct(values, {})
        return [_Built(scheduler, state, dict(private))], dict(private)
    return [], {}


def _walk(scheduler: Any) -> list[Any]:
    if isinstance(scheduler, (SequentialLR, ChainedScheduler)):
        return [scheduler, *scheduler.schedulers]
    return [scheduler]


def _per_group(value: Any, n: int) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * n


def _candidates(
    scheduler: Any, groups: Sequence[_groups.Group], n: int
) -> list[list[Any]]:
    """Per group, torch's doubles that a float32 value may be the rounding of."""
    per: list[list[Any]] = [[] for _ in range(n)]
    for g, group in enumerate(groups[:n]):
        for key in ("lr", "momentum", "betas"):
            v = group.values.get(key)
            if key == "betas" and isinstance(v, (list, tuple)):
                v = v[0]
            if v is not None and not callable(v):
                per[g].append(_number(v))
    for s in _walk(scheduler) if scheduler is not None else ():
        if not dataclasses.is_dataclass(s):
            continue
        for f in dataclasses.fields(s):
            v = getattr(s, f.name)
            if isinstance(v, tuple) and len(v) == n:
                for g in range(n):
                    per[g].append(v[g])
            elif isinstance(v, numbers.Real) and not isinstance(v, bool):
                for g in range(n):
                    per[g].append(v)
        if isinstance(s, OneCycleLR):
            for g, peak in enumerate(_per_group(s.max_lr, n)):
                initial = float(peak) / float(s.div_factor)
                per[g] += [initial, initial / float(s.final_div_factor)]
    return per


def _column(values: Any, candidates: list[list[Any]]) -> list[Any]:
    return [_float32(v, c) for v, c in zip(np.asarray(values), candidates, strict=True)]


def _phases(s: OneCycleLR) -> list[dict[str, Any]]:
    """Torch's ``OneCycleLR._schedule_phases``."""
    total, pct = s.steps, s.pct_start

    def phase(end, a, b, ma, mb):
        return {
            "end_step": end,
            "start_lr": a,
            "end_lr": b,
            "start_momentum": ma,
            "end_momentum": mb,
        }

    if s.three_phase:
        return [
            phase(
                float(pct * total) - 1,
                "initial_lr",
                "max_lr",
                "max_momentum",
                "base_momentum",
            ),
            phase(
                float(2 * pct * total) - 2,
                "max_lr",
                "initial_lr",
                "base_momentum",
                "max_momentum",
            ),
            phase(total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
        ]
    return [
        phase(
            float(pct * total) - 1,
            "initial_lr",
            "max_lr",
            "max_momentum",
            "base_momentum",
        ),
        phase(total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
    ]


def _saved_function(fn: Any) -> Any:
    """Torch saves a callable object's ``__dict__`` and a function as None."""
    if fn is None or isinstance(fn, types.FunctionType):
        return None
    return dict(fn.__dict__)


def _config(s: Any, state: SchedulerState, n: int, beta1: bool) -> dict[str, Any]:
    """The constructor's entries of torch's state dict, before ``base_lrs``."""
    if isinstance(s, StepLR):
        return {"step_size": s.step_size, "gamma": s.gamma}
    if isinstance(s, MultiStepLR):
        return {"milestones": collections.Counter(s.milestones), "gamma": s.gamma}
    if isinstance(s, ConstantLR):
        return {"factor": s.factor, "total_iters": s.total_iters}
    if isinstance(s, LinearLR):
        return {
            "start_factor": s.start_factor,
            "end_factor": s.end_factor,
            "total_iters": s.total_iters,
        }
    if isinstance(s, ExponentialLR):
        return {"gamma": s.gamma}
    if isinstance(s, PolynomialLR):
        return {"total_iters": s.total_iters, "power": s.power}
    if isinstance(s, CosineAnnealingLR):
        return {"T_max": s.T_max, "eta_min": s.eta_min}
    if isinstance(s, (LambdaLR, MultiplicativeLR)):
        return {}
    if isinstance(s, CosineAnnealingWarmRestarts):
        t_cur, t_i = state.extra
        return {
            "T_0": s.T_0,
            "T_i": int(t_i),
            "T_mult": s.T_mult,
            "eta_min": s.eta_min,
            "T_cur": int(t_cur),
        }
    if isinstance(s, CyclicLR):
        up = float(s.step_size_up)
        down = up if s.step_size_down is None else float(s.step_size_down)
        scale_mode = s.scale_mode
        if s.scale_fn is None:
            scale_mode = "iterations" if s.mode == "exp_range" else "cycle"
        out = {
            "max_lrs": _per_group(s.max_lr, n),
            "total_size": up + down,
            "step_ratio": up / (up + down),
            "mode": s.mode,
            "gamma": s.gamma,
            "scale_mode": scale_mode,
            "cycle_momentum": s.cycle_momentum,
        }
        if s.cycle_momentum:
            out["use_beta1"] = beta1
            out["base_momentums"] = _per_group(s.base_momentum, n)
            out["max_momentums"] = _per_group(s.max_momentum, n)
        return out
    if isinstance(s, OneCycleLR):
        out = {
            "total_steps": s.steps,
            "_schedule_phases": _phases(s),
            "_anneal_func_type": s.anneal_strategy,
            "cycle_momentum": s.cycle_momentum,
        }
        if s.cycle_momentum:
            out["use_beta1"] = beta1
        return out
    raise TypeError(
        f"scheduler_state_dict does not know torch's layout for {type(s).__name__}"
    )


class _Context(NamedTuple):
    n: int
    beta1: bool
    candidates: list[list[Any]]


def _plain(
    built: _Built,
    state: SchedulerState,
    context: _Context,
    last_epoch: int,
    step_count: int,
    last_lr: Any,
) -> dict[str, Any]:
    """Torch's ``LRScheduler.state_dict()`` of one non-composite scheduler."""
    s = built.scheduler
    n, candidates = context.n, context.candidates
    out = _config(s, state, n, context.beta1)
    if isinstance(s, CyclicLR):
        base_lrs = _per_group(s.base_lr, n)
    else:
        base_lrs = _column(built.private["initial_lr"], candidates)
    if isinstance(s, CosineAnnealingWarmRestarts):
        step_count = 0  # its step() does not count (torch 2.13)
    out.update(
        base_lrs=base_lrs,
        last_epoch=last_epoch,
        _step_count=step_count,
        _is_initial=False,
        _get_lr_called_within_step=False,
        _last_lr=_column(last_lr, candidates),
    )
    if isinstance(s, (LambdaLR, MultiplicativeLR)):
        out["lr_lambdas"] = [_saved_function(f) for f in _per_group(s.lr_lambda, n)]
    if isinstance(s, CyclicLR):
        out["_scale_fn_custom"] = _saved_function(s.scale_fn)
    return out


def _plateau(s: ReduceLROnPlateau, state: SchedulerState, context: _Context):
    n = context.n
    listed = isinstance(s.min_lr, tuple)
    extra = state.extra
    return {
        "factor": s.factor,
        "default_min_lr": None if listed else s.min_lr,
        "min_lrs": _per_group(s.min_lr, n),
        "patience": s.patience,
        "cooldown": s.cooldown,
        "eps": s.eps,
        "last_epoch": int(state.last_epoch),
        "_last_lr": _column(state.values["lr"], context.candidates),
        "mode_worse": math.inf if s.mode == "min" else -math.inf,
        "mode": s.mode,
        "threshold": s.threshold,
        "threshold_mode": s.threshold_mode,
        "best": _float32(extra["best"]),
        "cooldown_counter": int(extra["cooldown_counter"]),
        "num_bad_epochs": int(extra["num_bad_epochs"]),
    }


def _sequential_child(
    s: SequentialLR, k: int, t: int
) -> tuple[bool, int]:  # (started, torch's last_epoch)
    milestones = [int(m) for m in s.milestones]
    first = sum(1 for m in milestones if m <= 0)  # bisect_right(milestones, 0)
    if k < first:
        return False, -1
    start = 0 if k == first else milestones[k - 1]
    if k > first and sum(1 for m in milestones if m <= start) != k:
        return False, -1  # an empty interval: torch never reaches it
    if t < start:
        return False, -1
    end = milestones[k] if k < len(milestones) else math.inf
    return True, int(min(t, end - 1) - start)


def _scheduler_dict(
    scheduler: Any, state: SchedulerState, built: list[_Built], context: _Context
) -> dict[str, Any]:
    t = int(state.last_epoch)
    lrs = _column(state.values["lr"], context.candidates)
    if isinstance(scheduler, ReduceLROnPlateau):
        return _plateau(scheduler, state, context)
    if isinstance(scheduler, SequentialLR):
        children = []
        for k, (b, child) in enumerate(zip(built, state.extra, strict=True)):
            started, last_epoch = _sequential_child(scheduler, k, t)
            last_lr = (child if started else b.state).values["lr"]
            count = last_epoch + 1 if started else 1  # the constructor's step
            children.append(_plain(b, child, context, last_epoch, count, last_lr))
        return {
            "_milestones": list(scheduler.milestones),
            "last_epoch": t,
            "_last_lr": lrs,
            "_schedulers": children,
        }
    if isinstance(scheduler, ChainedScheduler):
        children = []
        for b, child in zip(built, state.extra, strict=True):
            last_lr = (child if t > 0 else b.state).values["lr"]
            children.append(_plain(b, child, context, t, t + 1, last_lr))
        return {"_last_lr": lrs, "_schedulers": children}
    if not built:
        raise TypeError(
            "scheduler_state_dict does not know torch's layout for "
            f"{type(scheduler).__name__}"
        )
    return _plain(built[0], state, context, t, t + 1, state.values["lr"])


def _scheduler_context(
    layout_groups: Sequence[_groups.Group], info: _family.TorchOptimizerInfo, n: int
) -> tuple[list[_Built], dict[str, jax.Array], _Context]:
    built, private = _construction(
        info.scheduler, _initial_values(info.spec, layout_groups)
    )
    context = _Context(
        n=n,
        beta1="betas" in info.spec.signature.parameters,
        candidates=_candidates(info.scheduler, layout_groups, n),
    )
    return built, private, context


def _groups_of_state(info: _family.TorchOptimizerInfo, n: int) -> list[_groups.Group]:
    """The groups in use, from their number (the defaults' group last if there)."""
    groups = list(info.groups)
    if n > len(groups):
        groups.append(_groups.Group(len(groups), None, dict(info.defaults)))
    return groups


def scheduler_state_dict(optimizer: Any, opt_state: Any) -> dict[str, Any]:
    """The scheduler's state as torch's ``scheduler.state_dict()``.

    The layout of torch 2.13 for every scheduler of
    :mod:`jsgd.torch.lr_scheduler`: the constructor's entries (``step_size``,
    ``gamma``, OneCycleLR's ``total_steps`` and ``_schedule_phases``...),
    ``base_lrs``, ``last_epoch``, ``_step_count``, ``_is_initial``,
    ``_get_lr_called_within_step``, ``_last_lr``; SequentialLR's and
    ChainedScheduler's children under ``_schedulers`` (each with torch's own
    ``last_epoch`` bookkeeping: -1 for a child SequentialLR has not started);
    ReduceLROnPlateau's ``best``, ``num_bad_epochs``, ``cooldown_counter``...
    Numbers are Python numbers: the constructor's own where jsgd holds them,
    else the shortest decimal of jsgd's float32 value (torch's doubles agree
    to float32's precision). Functions (LambdaLR's ``lr_lambda``, CyclicLR's
    ``scale_fn``) are saved as torch saves them: ``None`` for a function, a
    callable object's ``__dict__``.

    Args:
      optimizer: the :mod:`jsgd.torch` optimizer, built with ``scheduler=``.
      opt_state: its state (a :class:`jsgd.torch.OptimizerState`).

    Returns:
      A dict, as torch's ``scheduler.state_dict()`` for the same run.

    Raises:
      ValueError: if the optimizer has no scheduler.
      TypeError: for another object than a :mod:`jsgd.torch` optimizer or
        its state, or a scheduler whose torch layout is unknown (nested
        composites).

    Examples:
      >>> import jax.numpy as jnp, jsgd.torch
      >>> from jsgd.torch import scheduler_state_dict
      >>> tx = jsgd.torch.SGD(
      ...     lr=0.5, scheduler=jsgd.torch.lr_scheduler.StepLR(2, gamma=0.1))
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> for _ in range(3):
      ...     _, state = tx.update(jnp.ones(2), state, params)
      >>> sd = scheduler_state_dict(tx, state)
      >>> sd["last_epoch"], sd["_step_count"], sd["base_lrs"], sd["_last_lr"]
      (3, 4, [0.5], [0.05])
    """
    info = _family.torch_info(optimizer)
    if info.scheduler is None:
        raise ValueError(
            f"scheduler_state_dict: this jsgd.torch.{info.spec.class_name} has no "
            "scheduler"
        )
    if not isinstance(opt_state, _family.OptimizerState) or not isinstance(
        opt_state.scheduler, SchedulerState
    ):
        raise TypeError(
            "scheduler_state_dict: opt_state must be the optimizer's state (a "
            f"jsgd.torch.OptimizerState). Received: {type(opt_state).__name__}"
        )
    n = int(np.shape(opt_state.scheduler.values["lr"])[0])
    groups = _groups_of_state(info, n)
    built, _, context = _scheduler_context(groups, info, n)
    return _scheduler_dict(info.scheduler, opt_state.scheduler, built, context)


# ------------------------------------------------------------- state_dict


def state_dict(
    optimizer: Any,
    params: Any,
    opt_state: Any,
    *,
    order: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The optimizer's state in torch's ``optimizer.state_dict()`` layout.

    ``{"state": {i: {...}}, "param_groups": [{..., "params": [i, ...]}]}``
    exactly as torch 2.13 writes it for the same optimizer after the same
    steps:

    * ``param_groups``: one dict per group, in torch's order (the
      ``param_groups`` entries, then the defaults' group when some leaf is in
      none), with every key of the torch optimizer's ``defaults`` (its
      implementation switches at torch's defaults: ``foreach=None``,
      ``capturable=False``, ``differentiable=False``, ``fused=None``;
      ``decoupled_weight_decay`` False for Adam, True for AdamW). Under a
      scheduler, ``lr`` (and a cycled ``momentum`` or ``betas[0]``) are the
      current scheduled values, and the entries torch's scheduler
      constructors add are there (``initial_lr``; OneCycleLR's ``max_lr``,
      ``min_lr``, ``max_momentum``, ``base_momentum``).
    * ``state``: per parameter index, as torch's step writes it: ``step``
      (a float32 0-d array; SparseAdam's a Python int; SGD has none) and the
      statistics: SGD ``momentum_buffer``; Adam and AdamW ``exp_avg``,
      ``exp_avg_sq`` (and ``max_exp_avg_sq`` with ``amsgrad``); RMSprop
      ``square_avg`` (``momentum_buffer`` with momentum, ``grad_avg`` when
      centered); Adagrad ``sum``; SparseAdam ``exp_avg``, ``exp_avg_sq``.
      NumPy arrays in the parameter's dtype, complex for complex parameters
      (as torch stores them). Like torch, a group that has not stepped has no
      entries (Adagrad's: their initial ones, as torch's constructor makes
      them), nor has SGD without momentum.

    ``step`` is the group's own count (:class:`jsgd.AdamState`'s,
    :class:`jsgd.MomentumState`'s, Adagrad's ``lr_decay`` count), else the
    number of ``update`` calls: for RMSprop without momentum and Adagrad
    without ``lr_decay`` under a :class:`jsgd.torch.GradScaler` that skipped
    steps, that is more than torch's (whose ``step`` does not enter their
    arithmetic).

    Args:
      optimizer: the :mod:`jsgd.torch` optimizer itself (not a chain around
        it).
      params: the parameters (their paths, shapes and dtypes; the groups'
        selectors are applied to them).
      opt_state: the optimizer's state.
      order: the parameter paths in torch's numbering (see the module
        docstring); default: ``jax.tree.leaves(params)``'s order.

    Returns:
      A dict in torch's layout; ``torch.optim.<Optimizer>.load_state_dict``
      takes it once its arrays are tensors (``torch.tensor(array)``).

    Raises:
      TypeError: for another object than a :mod:`jsgd.torch` optimizer or
        its state.
      ValueError: for an ``order`` that is not a permutation of the paths, or
        a state of other parameters.

    Examples:
      >>> import jax.numpy as jnp, jsgd.torch
      >>> from jsgd.torch import state_dict
      >>> params = {"b": jnp.zeros(2), "w": jnp.ones(2)}
      >>> tx = jsgd.torch.Adam(lr=0.1, param_groups=[{"params": "b", "lr": 0.01}])
      >>> state = tx.init(params)
      >>> _, state = tx.update({"b": jnp.ones(2), "w": jnp.ones(2)}, state, params)
      >>> sd = state_dict(tx, params, state)
      >>> sd["state"][1]["step"], sd["state"][1]["exp_avg"]
      (array(1., dtype=float32), array([0.1, 0.1], dtype=float32))
      >>> [(g["lr"], g["params"]) for g in sd["param_groups"]]
      [(0.01, [0]), (0.1, [1])]
    """
    layout = _resolve(optimizer, params, order)
    states = _group_states(layout, opt_state)
    info, name = layout.info, layout.name
    owner = f"jsgd.torch.{name}"
    total = int(opt_state.step)
    scheduler = info.scheduler
    sched_state = opt_state.scheduler
    private: dict[str, Any] = {}
    scheduled: frozenset[str] = frozenset()
    candidates: list[list[Any]] = [[] for _ in layout.in_use]
    if scheduler is not None:
        if not isinstance(sched_state, SchedulerState):
            raise TypeError(f"state_dict: opt_state is not a {owner} state")
        n = len(layout.in_use)
        _, private, context = _scheduler_context(layout.in_use, info, n)
        candidates = context.candidates
        scheduled = scheduler.hyperparameters(_family.scheduled_keys(info.spec))

    out_state: dict[int, dict[str, Any]] = {}
    out_groups = []
    for g, group in enumerate(layout.in_use):
        steps = states[g]
        slots = _slots(steps)
        count = _count(name, steps, total)
        if name == "SGD":
            present = bool(slots) and count > 0
        else:
            present = name == "Adagrad" or count > 0
        if present:
            fields = {
                (k, field): layout.treedef.flatten_up_to(getattr(steps[k], field))
                for k, field, _ in slots
            }
            for i in layout.members[g]:
                t = layout.tree_index[i]
                entry: dict[str, Any] = {}
                if name == "SparseAdam":
                    entry["step"] = count
                elif name != "SGD":
                    entry["step"] = np.asarray(count, np.float32)
                for k, field, key in slots:
                    entry[key] = _to_torch(fields[k, field][t], layout.leaves[t])
                out_state[i] = {k: entry[k] for k in _STATE_KEYS[name] if k in entry}
        values = {
            k: _number(v)
            for k, v in group.values.items()
            if not k.endswith("_dtype")  # jsgd's: torch's groups have none
        }
        if isinstance(sched_state, SchedulerState):
            for key in scheduled:
                v = _float32(sched_state.values[key][g], candidates[g])
                if key == "beta1":
                    values["betas"] = (v, *values["betas"][1:])
                else:
                    values[key] = v
        packed: dict[str, Any] = {}
        for key in _GROUP_KEYS[name]:
            if key in values:
                packed[key] = values[key]
            elif key in _FIXED:
                packed[key] = _FIXED[key][name]
            else:
                packed[key] = _PERFORMANCE[key]
        for key, column in private.items():
            packed[key] = _float32(column[g], candidates[g])
        packed["params"] = list(layout.members[g])
        out_groups.append(packed)
    return {"state": out_state, "param_groups": out_groups}


# -------------------------------------------------------- load_state_dict


def _check_groups(layout: _Layout, saved: Any) -> list[Mapping[str, Any]]:
    """The saved groups, checked against jsgd's partition of the parameters."""
    if isinstance(saved, Mapping) or not isinstance(saved, Sequence):
        raise TypeError(
            "load_state_dict: state_dict['param_groups'] must be a list of dicts. "
            f"Received: {type(saved).__name__}"
        )
    owner = f"jsgd.torch.{layout.name}"
    explicit = len(layout.info.groups)
    has_defaults = len(layout.in_use) > explicit
    if len(saved) != len(layout.in_use):
        ours = f"{explicit} param_groups entries" + (
            " and the defaults' group (the leaves none selects)" if has_defaults else ""
        )
        raise ValueError(
            f"load_state_dict: the state_dict has {len(saved)} param_groups, "
            f"{owner} has {len(layout.in_use)} for these params ({ours})"
        )
    n = len(layout.order)
    seen: dict[int, int] = {}
    for g, group in enumerate(saved):
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(
                f"load_state_dict: state_dict['param_groups'][{g}] must be a dict "
                "with 'params'"
            )
        for raw in group["params"]:
            i = _integral(raw, f"state_dict['param_groups'][{g}]['params'] entry")
            if i in seen:
                raise ValueError(
                    f"load_state_dict: parameter {i} is in param_groups[{seen[i]}] "
                    f"and param_groups[{g}] of the state_dict"
                )
            seen[i] = g
    if sorted(seen) != list(range(n)):
        raise ValueError(
            f"load_state_dict: the state_dict's param_groups hold {len(seen)} "
            f"parameters (ids {sorted(seen)[:12]}), params has {n} leaves "
            f"({layout.order[:12]})"
        )
    for g, group in enumerate(saved):
        ids = sorted(_integral(i, "") for i in group["params"])
        if ids != layout.members[g]:

            def named(indices):
                return ", ".join(f"{i} ({layout.order[i]!r})" for i in indices[:12])

            raise ValueError(
                f"load_state_dict: param_groups[{g}] of the state_dict holds the "
                f"parameters [{named(ids)}], but {owner}'s "
                f"{layout.in_use[g].where()} holds [{named(layout.members[g])}]. "
                "Parameter i is the i-th path of `order` (default: the order of "
                "jax.tree.leaves(params)); torch numbers its parameters group by "
                "group, so pass order= with the paths in torch's parameter order, "
                "or select the same groups"
            )
    return list(saved)


def _check_hyperparameters(
    layout: _Layout, saved: list[Mapping[str, Any]], scheduled: frozenset[str]
) -> None:
    name = layout.name
    owner = f"jsgd.torch.{name}"
    differences = []
    for g, (group, ours) in enumerate(zip(saved, layout.in_use, strict=True)):
        if "lr" not in group:
            raise ValueError(f"load_state_dict: param_groups[{g}] has no 'lr'")
        for key in _GROUP_KEYS[name]:
            if key not in group or key in _PERFORMANCE:
                continue
            if key in scheduled:
                continue
            theirs = _number(group[key])
            mine = _FIXED[key][name] if key in _FIXED else _number(ours.values[key])
            if key == "betas" and "beta1" in scheduled:
                if not isinstance(theirs, (list, tuple)) or len(theirs) != 2:
                    differences.append(f"param_groups[{g}]['betas']: {theirs!r}")
                    continue
                theirs, mine = theirs[1:], tuple(ours.values["betas"])[1:]
                key = "betas[1]"
            if not _same(theirs, mine):
                differences.append(
                    f"param_groups[{g}][{key!r}]: saved {theirs!r}, {owner} has "
                    f"{mine!r}"
                )
    if differences:
        raise ValueError(
            "load_state_dict: the saved hyperparameters differ from the "
            "optimizer's (param_groups[i]: its i-th group, the param_groups "
            "entries in order, then the defaults' group):\n  "
            + "\n  ".join(differences)
            + "\ntorch's "
            "load_state_dict would overwrite its groups' hyperparameters with the "
            "saved ones; a jsgd optimizer's are fixed when it is built, so build it "
            "with the saved values (its arguments, or param_groups=[{..., key: "
            "value}]). Under a scheduler the scheduled values (lr, and a cycled "
            "momentum or betas[0]) are read from the state_dict instead."
        )


def _read_state(
    layout: _Layout,
    states: list[tuple[Any, ...]],
    saved: Any,
) -> tuple[dict[int, dict[str, Any]], list[int | None]]:
    """The saved per-parameter entries, checked; and each group's step."""
    if not isinstance(saved, Mapping):
        raise TypeError(
            "load_state_dict: state_dict['state'] must be a dict. Received: "
            f"{type(saved).__name__}"
        )
    name = layout.name
    n = len(layout.order)
    entries: dict[int, dict[str, Any]] = {}
    steps: list[dict[int, list[int]]] = [{} for _ in layout.in_use]
    for raw, entry in saved.items():
        i = _integral(raw, f"state_dict['state'] key {raw!r}")
        if i >= n:
            raise ValueError(
                f"load_state_dict: state_dict['state'] has an entry for parameter "
                f"{i}, but params has {n} leaves"
            )
        if not isinstance(entry, Mapping):
            raise TypeError(
                f"load_state_dict: state_dict['state'][{i}] must be a dict. "
                f"Received: {type(entry).__name__}"
            )
        g = layout.group_of[i]
        where = f"state_dict['state'][{i}] ({layout.order[i]!r})"
        expected = {key for _, _, key in _slots(states[g])}
        if name != "SGD":
            expected.add("step")
        given = {k for k, v in entry.items() if v is not None or k != "momentum_buffer"}
        unknown = sorted(given - expected)
        missing = sorted(expected - given)
        if unknown or missing:
            raise ValueError(
                f"load_state_dict: {where} has the keys {sorted(given)}; "
                f"jsgd.torch.{name} with {layout.in_use[g].where()}'s "
                f"hyperparameters keeps {sorted(expected)}"
                + (f" (unknown: {unknown})" if unknown else "")
                + (f" (missing: {missing})" if missing else "")
            )
        entries[i] = {k: entry[k] for k in given}
        if "step" in given:
            step = _integral(entry["step"], f"{where}['step']")
            steps[g].setdefault(step, []).append(i)
    group_steps: list[int | None] = []
    for g, found in enumerate(steps):
        if len(found) > 1:
            listed = "; ".join(
                f"step {s}: {', '.join(layout.where(i) for i in ids[:6])}"
                for s, ids in sorted(found.items())
            )
            raise ValueError(
                f"load_state_dict: the parameters of param_groups[{g}] have "
                f"different step counts ({listed}); jsgd keeps one count per group"
            )
        group_steps.append(next(iter(found)) if found else None)
    return entries, group_steps


def _fill(
    layout: _Layout,
    fresh: _family.OptimizerState,
    entries: dict[int, dict[str, Any]],
    counts: list[int],
) -> Any:
    """``fresh``'s groups with the loaded statistics and counts."""
    inner: dict[Any, Any] = dict(fresh.groups.inner_states)
    for g, group in enumerate(layout.in_use):
        masked = inner[group.index]
        steps = list(masked.inner_state)
        for k, s in enumerate(steps):
            changes: dict[str, Any] = {}
            for field, key in _FIELDS.get(type(s), ()):
                tree = getattr(s, field)
                if tree is None:
                    continue
                flat = layout.treedef.flatten_up_to(tree)
                for i in layout.members[g]:
                    if i in entries and key in entries[i]:
                        t = layout.tree_index[i]
                        flat[t] = _from_torch(
                            entries[i][key],
                            flat[t],
                            layout.leaves[t],
                            f"state_dict['state'][{i}][{key!r}] ({layout.order[i]!r})",
                        )
                changes[field] = layout.treedef.unflatten(flat)
            if isinstance(s, (AdamState, MomentumState, ScheduleState)):
                changes["count"] = jnp.asarray(counts[g], jnp.int32)
            if changes:
                steps[k] = s._replace(**changes)
        inner[group.index] = masked._replace(inner_state=tuple(steps))
    return fresh.groups._replace(inner_states=inner)


def _replay(scheduler: LRScheduler, state: SchedulerState, steps: int):
    def run(s, n):
        return jax.lax.fori_loop(0, n, lambda _, s: scheduler.step(s), s)

    return jax.jit(run)(state, jnp.asarray(steps, jnp.int32))


def _compare(ours: Any, theirs: Any, where: str, out: list[str]) -> None:
    """The differences of two scheduler state dicts (keys in both only)."""
    if isinstance(ours, Mapping) and isinstance(theirs, Mapping):
        for key in ours:
            if key in theirs and key not in (
                "_step_count",
                "_is_initial",
                "_get_lr_called_within_step",
                "lr_lambdas",
                "_scale_fn_custom",
            ):
                _compare(ours[key], theirs[key], f"{where}[{key!r}]", out)
        return
    theirs = _number(theirs)
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)):
        if len(ours) != len(theirs):
            out.append(f"{where}: saved {theirs!r}, jsgd's {ours!r}")
            return
        for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _compare(a, b, f"{where}[{k}]", out)
        return
    numeric = (
        isinstance(ours, numbers.Real)
        and isinstance(theirs, numbers.Real)
        and not isinstance(ours, bool)
        and not isinstance(theirs, bool)
    )
    if (numeric and not _close(ours, theirs)) or (not numeric and ours != theirs):
        out.append(f"{where}: saved {theirs!r}, jsgd's {ours!r}")


def _load_scheduler(
    layout: _Layout,
    fresh: SchedulerState,
    saved_groups: list[Mapping[str, Any]],
    saved: Any,
    total: int | None,
) -> SchedulerState:
    info = layout.info
    scheduler = info.scheduler
    assert scheduler is not None
    period = info.steps_per_epoch or 1
    plateau = isinstance(scheduler, ReduceLROnPlateau)
    if saved is not None:
        if not isinstance(saved, Mapping) or (
            "last_epoch" not in saved and "_schedulers" not in saved
        ):
            raise TypeError(
                "load_state_dict: scheduler_state_dict must be torch's "
                "scheduler.state_dict() (a dict with 'last_epoch')"
            )
        if "last_epoch" in saved:
            last_epoch = _integral(
                saved["last_epoch"], "scheduler_state_dict['last_epoch']"
            )
        else:  # ChainedScheduler: its children's
            last_epoch = _integral(
                saved["_schedulers"][0]["last_epoch"],
                "scheduler_state_dict['_schedulers'][0]['last_epoch']",
            )
    elif plateau:
        raise ValueError(
            "load_state_dict: ReduceLROnPlateau's state (best, num_bad_epochs, "
            "cooldown_counter) is in torch's scheduler.state_dict(): pass "
            "scheduler_state_dict="
        )
    elif total is None:
        raise ValueError(
            "load_state_dict: torch's SGD state has no step count, so the "
            "scheduler's epoch is unknown: pass scheduler_state_dict="
            "scheduler.state_dict() (or step=)"
        )
    else:
        last_epoch = total // period
    if total is not None and last_epoch != total // period:
        every = (
            f"every {period} optimizer steps (steps_per_epoch={period})"
            if info.steps_per_epoch
            else "after every optimizer step"
        )
        raise ValueError(
            f"load_state_dict: the scheduler's last_epoch is {last_epoch}, but after "
            f"{total} optimizer steps jsgd's scheduler, which steps {every}, is at "
            f"{total // period}; build the optimizer with the steps_per_epoch "
            "torch's loop had (under a GradScaler that skipped steps, pass step=: "
            "the number of update calls)"
        )
    if plateau:
        assert saved is not None
        extra = {
            "best": jnp.asarray(_number(saved["best"]), jnp.float32),
            "num_bad_epochs": jnp.asarray(
                _integral(saved["num_bad_epochs"], "num_bad_epochs"), jnp.int32
            ),
            "cooldown_counter": jnp.asarray(
                _integral(saved["cooldown_counter"], "cooldown_counter"), jnp.int32
            ),
        }
        state = fresh._replace(
            last_epoch=jnp.asarray(last_epoch, jnp.int32), extra=extra
        )
    else:
        state = _replay(scheduler, fresh, last_epoch)

    scheduled = scheduler.hyperparameters(_family.scheduled_keys(info.spec))
    differences: list[str] = []
    values = dict(state.values)
    for key in sorted(scheduled):
        column = []
        for g, group in enumerate(saved_groups):
            if key == "beta1":
                betas = _number(group.get("betas"))
                theirs = betas[0] if isinstance(betas, (list, tuple)) else None
                label = "['betas'][0]"
            else:
                theirs = _number(group.get(key))
                label = f"[{key!r}]"
            ours = float(state.values[key][g])
            if theirs is None:
                raise ValueError(f"load_state_dict: param_groups[{g}] has no {key!r}")
            if not plateau and not _close(ours, theirs):
                differences.append(
                    f"param_groups[{g}]{label}: saved {theirs!r}, jsgd's scheduler "
                    f"gives {_float32(ours)!r} at last_epoch {last_epoch}"
                )
            column.append(theirs)
        values[key] = jnp.asarray(column, jnp.float32)
    n = len(layout.in_use)
    built, private, context = _scheduler_context(layout.in_use, info, n)
    for key, column in private.items():
        for g, group in enumerate(saved_groups):
            if key in group and not _close(float(column[g]), _number(group[key])):
                differences.append(
                    f"param_groups[{g}][{key!r}]: saved {_number(group[key])!r}, "
                    f"jsgd's scheduler sets {float(column[g])!r}"
                )
    if saved is not None:
        try:
            shown = state._replace(values=values) if plateau else state
            ours_dict = _scheduler_dict(scheduler, shown, built, context)
        except TypeError:
            ours_dict = None
        if ours_dict is not None:
            _compare(ours_dict, saved, "scheduler_state_dict", differences)
    if differences:
        raise ValueError(
            f"load_state_dict: the saved schedule is not jsgd's "
            f"{type(scheduler).__name__}'s:\n  "
            + "\n  ".join(differences)
            + "\nBuild the scheduler with torch's arguments (and the optimizer "
            "with torch's initial hyperparameters)."
        )
    return state._replace(values=values)


def load_state_dict(
    optimizer: Any,
    params: Any,
    state_dict: Mapping[str, Any],
    *,
    order: Sequence[str] | None = None,
    scheduler_state_dict: Mapping[str, Any] | None = None,
    step: int | None = None,
) -> _family.OptimizerState:
    """A jsgd state from torch's ``optimizer.state_dict()`` (and the scheduler's).

    Starts from ``optimizer.init(params)`` and fills in what the state dict
    holds: each parameter's statistics (complex ones as their real view), and
    the step counts (torch's per-parameter ``step`` becomes the group's
    :class:`jsgd.AdamState` ``count``, :class:`jsgd.MomentumState` ``count``,
    Adagrad's ``lr_decay`` :class:`jsgd.ScheduleState` ``count``, and the
    largest of them :class:`jsgd.torch.OptimizerState` ``step``). A parameter
    without an entry (torch makes none until a parameter first has a
    gradient) keeps jsgd's fresh state. The state dict's arrays may be torch
    CPU tensors or NumPy arrays.

    Checks, each a ValueError naming the group, the parameter (index and
    path) and both values: the number of groups and the parameters in each
    (the saved ``"params"`` ids against jsgd's partition of ``order``), the
    number of parameters, each entry's keys and shapes, one step count per
    group (jsgd keeps one; torch's differ when some parameters of a group
    missed gradients).

    Hyperparameters. torch's ``load_state_dict`` overwrites the live groups'
    hyperparameters with the saved ones; a jsgd optimizer's are fixed when it
    is built. So: the saved values of the keys torch's scheduler sets
    (``lr``, and ``momentum`` or ``betas[0]`` when the scheduler cycles
    them) go into the scheduler's state when the optimizer has a scheduler,
    as torch's next step would use them; every other saved hyperparameter
    must equal the optimizer's (in float32), else a ValueError lists each
    group, key and both values, telling you to build the optimizer with the
    saved ones. The implementation switches (``foreach``, ``fused``,
    ``capturable``, ``differentiable``), labels (``param_names``) and keys
    jsgd does not know are ignored; keys the state dict lacks (an older
    torch's) are not compared.

    The scheduler. Its state is torch's after ``last_epoch`` steps, rebuilt
    by running jsgd's scheduler that many steps from the optimizer's initial
    values (ReduceLROnPlateau: ``best``, ``num_bad_epochs`` and
    ``cooldown_counter`` are read instead). ``last_epoch`` comes from
    ``scheduler_state_dict`` (torch's ``scheduler.state_dict()``), or without
    it from the step count, as jsgd steps the scheduler (once per step, or
    per ``steps_per_epoch`` steps): they must agree. The result is checked
    against what was saved, within float32's precision of torch's doubles
    (1e-4 relative): each group's scheduled values, the entries the
    scheduler's constructor wrote (``initial_lr``, ``max_lr``...) and the
    scheduler state dict's entries (``gamma``, ``base_lrs``, ``_last_lr``...):
    a ValueError lists what differs (a scheduler built otherwise than
    torch's). The saved scheduled values are then used as they are.

    SGD's torch state has no step count: it is ``step`` if given, else
    ``last_epoch`` times ``steps_per_epoch`` (an epoch's start) with
    ``scheduler_state_dict``; it matters only for the scheduler's phase and
    a group's first-step rule (with dampening), which is taken from whether
    its parameters have a ``momentum_buffer``.

    Args:
      optimizer: the :mod:`jsgd.torch` optimizer itself, built with the
        saved run's hyperparameters.
      params: the parameters (their paths, shapes and dtypes).
      state_dict: torch's ``optimizer.state_dict()`` (or
        :func:`state_dict`'s).
      order: the parameter paths in torch's numbering (see the module
        docstring); default: ``jax.tree.leaves(params)``'s order.
      scheduler_state_dict: torch's ``scheduler.state_dict()`` (or
        :func:`scheduler_state_dict`'s), for an optimizer with a scheduler.
      step: the number of ``update`` calls so far (what ``steps_per_epoch``
        divides into epochs): needed for SGD, whose torch state has no step
        count, under ``steps_per_epoch`` or a scheduler without
        ``scheduler_state_dict``; and where a :class:`jsgd.torch.GradScaler`
        skipped steps (which torch's ``step`` does not count). Default: the
        saved ``step``. Never below it.

    Returns:
      The :class:`jsgd.torch.OptimizerState` to go on with.

    Raises:
      TypeError: for another object than a :mod:`jsgd.torch` optimizer, or a
        state dict not in torch's layout.
      ValueError: for the mismatches above.

    Examples:
      >>> import jax.numpy as jnp, jsgd.torch, numpy as np
      >>> from jsgd.torch import load_state_dict
      >>> saved = {  # torch.optim.Adam([w], lr=0.1).state_dict() after 3 steps
      ...     "state": {0: {"step": np.float32(3), "exp_avg": np.ones(2),
      ...                   "exp_avg_sq": np.ones(2)}},
      ...     "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8,
      ...                       "weight_decay": 0, "amsgrad": False,
      ...                       "maximize": False, "foreach": None,
      ...                       "params": [0]}]}
      >>> tx = jsgd.torch.Adam(lr=0.1)
      >>> state = load_state_dict(tx, jnp.zeros(2), saved)
      >>> int(state.step), state.groups.inner_states[0].inner_state[0].count
      (3, Array(3, dtype=int32))
      >>> try:  # jsgd's hyperparameters are fixed: build it with the saved ones
      ...     load_state_dict(jsgd.torch.Adam(lr=0.2), jnp.zeros(2), saved)
      ... except ValueError as error:
      ...     print(str(error).splitlines()[1].strip())
      param_groups[0]['lr']: saved 0.1, jsgd.torch.Adam has 0.2
    """
    layout = _resolve(optimizer, params, order)
    info, name = layout.info, layout.name
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(
        state_dict
    ):
        raise TypeError(
            "load_state_dict: state_dict must be torch's optimizer.state_dict(), "
            "a dict with 'state' and 'param_groups'"
        )
    if step is not None:
        step = _integral(step, "step")
    fresh = optimizer.init(params)
    states = _group_states(layout, fresh)
    saved_groups = _check_groups(layout, state_dict["param_groups"])
    scheduled: frozenset[str] = frozenset()
    if info.scheduler is not None:
        scheduled = info.scheduler.hyperparameters(_family.scheduled_keys(info.spec))
    _check_hyperparameters(layout, saved_groups, scheduled)
    entries, group_steps = _read_state(layout, states, state_dict["state"])

    total: int | None
    if name == "SGD":
        buffered = [any(i in entries for i in m) for m in layout.members]
        if step is not None:
            total = step
        elif scheduler_state_dict is not None and "last_epoch" in scheduler_state_dict:
            last = _integral(scheduler_state_dict["last_epoch"], "last_epoch")
            total = last * (info.steps_per_epoch or 1)
        elif info.scheduler is not None:
            total = None  # _load_scheduler asks for scheduler_state_dict
        elif info.steps_per_epoch is not None:
            raise ValueError(
                "load_state_dict: torch's SGD state has no step count, and with "
                "steps_per_epoch the step within the epoch matters: pass step="
            )
        else:
            total = int(any(buffered))
        counts = [max(total or 0, 1) if b else 0 for b in buffered]
    else:
        known = [s for s in group_steps if s is not None]
        total = max(known, default=0)
        if step is not None:
            if step < total:
                raise ValueError(
                    f"load_state_dict: step={step} is below the state_dict's step "
                    f"count, {total}"
                )
            total = step  # update calls: more when a GradScaler skipped steps
        counts = [0 if s is None else s for s in group_steps]

    groups_state = _fill(layout, fresh, entries, counts)
    scheduler_state = fresh.scheduler
    if info.scheduler is not None:
        assert isinstance(scheduler_state, SchedulerState)
        scheduler_state = _load_scheduler(
            layout, scheduler_state, saved_groups, scheduler_state_dict, total
        )
        if total is None:
            total = int(scheduler_state.last_epoch) * (info.steps_per_epoch or 1)
    assert total is not None
    return _family.OptimizerState(
        step=jnp.asarray(min(total, int(np.iinfo(np.int32).max)), jnp.int32),
        scheduler=scheduler_state,
        groups=groups_state,
    )
