"""torch.optim's shared keywords and how they wrap an optimizer's core.

:data:`TORCH` is the family of :mod:`jsgd.torch`'s optimizers. Each one's core
is its update rule as jsgd transforms (torch's order: ``maximize``, coupled
weight decay, the statistic, momentum, then the learning rate); this module
adds what torch's ``Optimizer`` base class does: parameter groups (per-group
values of any argument; :mod:`jsgd._optimizers.torch_groups`), complex
parameters stepped as their real view, a scheduler setting each group's
``lr`` (and ``momentum`` or ``betas[0]``) between steps, once per step or
once per epoch, and the one step count all groups share.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._lr_scheduler.base import LRScheduler, SchedulerState
from jsgd._optimizers import spec as _spec
from jsgd._optimizers import torch_groups as _groups
from jsgd._optimizers.keras_keywords import checked_chain
from jsgd._sparse.indexed_slices import IndexedSlices
from jsgd._training.fused import FusedView
from jsgd._transforms.real_view import as_real_view


class OptimizerState(NamedTuple):
    """State of a :mod:`jsgd.torch` optimizer.

    Attributes:
      step: int32 number of ``update`` calls (saturating), the count that
        ``steps_per_epoch`` divides into epochs. It equals torch's
        per-parameter ``state["step"]`` except under a
        :class:`jsgd.torch.GradScaler`, whose skipped steps it counts (torch's
        count is then the groups' own, e.g. :class:`jsgd.AdamState`'s).
      scheduler: the scheduler's state (its ``values`` are the groups'
        scheduled hyperparameters), or ``None`` without a scheduler.
      groups: an ``optax.MultiTransformState`` whose ``inner_states`` hold
        each parameter group's steps' states (keyed by the group's position:
        the entries of ``param_groups`` in order, then the defaults' group).
    """

    step: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    scheduler: Any  # a SchedulerState, or None
    groups: Any  # an optax.MultiTransformState


# Arguments torch reads from the constructor only, whatever a group says.
_CONSTRUCTOR_ONLY = {"Adagrad": ("initial_accumulator_value",)}


def _negate() -> optax.GradientTransformationExtraArgs:
    """``maximize``: ``g = -g`` (exact), dense and sparse leaves alike."""
    return _tree.stateless_transform(
        lambda updates, _: _tree.map_updates(jnp.negative, updates), "maximize"
    )


def refuse_sparse(message: str) -> optax.GradientTransformationExtraArgs:
    """A step raising torch's ``message`` (a TypeError) for sparse updates."""

    def refuse(updates: Any, params: Any) -> Any:
        del params
        for path, u in jax.tree_util.tree_flatten_with_path(
            updates, is_leaf=_tree.is_update_leaf
        )[0]:
            if isinstance(u, IndexedSlices):
                raise TypeError(
                    f"{message} (the update at {_tree.keystr(path)} is an "
                    "IndexedSlices)"
                )
        return updates

    return _tree.stateless_transform(refuse, "refuse_sparse")


def scheduled_keys(spec: _spec.OptimizerSpec) -> frozenset[str]:
    """The keys a scheduler may set on this optimizer's groups."""
    keys = {"lr"}
    if "momentum" in spec.signature.parameters:
        keys.add("momentum")
    if "betas" in spec.signature.parameters:
        keys.add("beta1")
    return frozenset(keys)


def _with_scheduled(values: Mapping[str, Any], scheduled: Mapping[str, Any]) -> dict:
    merged = dict(values)
    for key, value in scheduled.items():
        if key == "beta1":
            merged["betas"] = (value, merged["betas"][1])
        else:
            merged[key] = value
    return merged


def group_transform(
    spec: _spec.OptimizerSpec, values: Mapping[str, Any]
) -> optax.GradientTransformationExtraArgs:
    """One group's steps at the hyperparameters ``values``."""
    core = spec.core(**{name: values[name] for name in spec.own_arguments})
    steps = [_negate(), *core] if values["maximize"] else core
    return as_real_view(checked_chain(*steps))


def _initial(key: str, values: Mapping[str, Any]) -> Any:
    return values["betas"][0] if key == "beta1" else values[key]


def _check_sparsity(spec: _spec.OptimizerSpec, updates: Any) -> None:
    """The errors torch raises for a sparse gradient it refuses, and back."""
    name = spec.class_name
    for path, u in jax.tree_util.tree_flatten_with_path(
        updates, is_leaf=_tree.is_update_leaf
    )[0]:
        if u is None:
            continue
        sparse = isinstance(u, IndexedSlices)
        if sparse and not spec.sparse:
            # torch's AdamW is Adam's subclass and says what Adam says.
            message = f"{name} does not support sparse gradients"
            if name in ("Adam", "AdamW"):
                message = (
                    "Adam does not support sparse gradients, please consider "
                    "SparseAdam instead"
                )
            raise TypeError(
                f"{message} (the update at {_tree.keystr(path)} is an IndexedSlices)"
            )
        if not sparse and name == "SparseAdam":
            raise TypeError(
                "SparseAdam does not support dense gradients, please consider Adam "
                f"instead (the update at {_tree.keystr(path)} is dense)"
            )


def torch_chain(
    spec: _spec.OptimizerSpec, arguments: dict[str, Any]
) -> optax.GradientTransformationExtraArgs:
    """A torch optimizer from its checked arguments.

    Per step: each parameter group's steps (``spec.core`` at the group's
    hyperparameters, the scheduled ones read from the scheduler's state),
    complex leaves as their real view; then the scheduler's ``step()`` when a
    step (or, with ``steps_per_epoch``, an epoch) ends.
    """
    defaults = {name: arguments[name] for name in (*spec.own_arguments, "maximize")}
    owner = f"torch.{spec.class_name}"

    def validate(values: dict[str, Any], names: tuple[str, ...]) -> None:
        spec.validate(values, names=names)
        for name in _CONSTRUCTOR_ONLY.get(spec.class_name, ()):
            if name in names and values[name] != defaults[name]:
                raise ValueError(
                    f"torch's {spec.class_name} ignores a group's {name} (every "
                    f"group starts from the constructor's, {defaults[name]}); "
                    f"jsgd.torch refuses it rather than ignore it. Received: "
                    f"{name}={values[name]}"
                )
        if "maximize" in names:
            _validation.check_bool("maximize", values["maximize"])
        group_transform(spec, values)  # the cross-argument checks of the core

    validate(defaults, ())
    groups = _groups.parse(arguments["param_groups"], defaults, validate)
    scheduler: LRScheduler | None = arguments["scheduler"]
    steps_per_epoch: int | None = arguments["steps_per_epoch"]
    scheduled = (
        frozenset()
        if scheduler is None
        else scheduler.hyperparameters(scheduled_keys(spec))
    )

    def partition(tree: Any, scheduler_state: SchedulerState | None):
        labels, in_use = _groups.assign(tree, groups, defaults)
        transforms = {}
        for position, group in enumerate(in_use):
            values = dict(group.values)
            if scheduler_state is not None:
                values = _with_scheduled(
                    values,
                    {k: scheduler_state.values[k][position] for k in scheduled},
                )
            transforms[group.index] = group_transform(spec, values)
        return optax.multi_transform(transforms, labels), in_use

    def init_fn(params: optax.Params) -> OptimizerState:
        if spec.class_name == "SparseAdam":
            complex_paths = [
                _tree.keystr(path)
                for path, p in jax.tree_util.tree_flatten_with_path(params)[0]
                if jnp.iscomplexobj(p)
            ]
            if complex_paths:
                raise ValueError(
                    f"Complex params at {', '.join(complex_paths)}: SparseAdam does "
                    "not support complex parameters"
                )
        scheduler_state = None
        if scheduler is not None:
            _, in_use = _groups.assign(params, groups, defaults)
            initial = {
                key: jnp.asarray([_initial(key, g.values) for g in in_use], jnp.float32)
                for key in scheduled_keys(spec)
            }
            scheduler_state = scheduler.init(initial)
        transformation, _ = partition(params, scheduler_state)
        return OptimizerState(
            step=_tree.zero_count(),
            scheduler=scheduler_state,
            groups=transformation.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        _tree.check_state(state, OptimizerState, owner)
        _check_sparsity(spec, updates)
        if params is None and any(callable(g.selector) for g in groups):
            raise ValueError(
                f"jsgd.{owner}: a callable param_groups selector is called with "
                "each parameter, so update() needs `params`."
            )
        transformation, _ = partition(
            updates if params is None else params, state.scheduler
        )
        updates, groups_state = transformation.update(
            updates, state.groups, params, **extra_args
        )
        return updates, advanced(state, groups_state, extra_args.get("value"))

    def advanced(state: OptimizerState, groups_state: Any, value: Any):
        """The state after a step: the groups' new state, the scheduler stepped."""
        scheduler_state = state.scheduler
        if scheduler is not None and scheduler_state is not None:
            stepped = scheduler.step(scheduler_state, value)
            if steps_per_epoch is None:
                scheduler_state = stepped
            else:
                epoch_ends = (state.step + 1) % steps_per_epoch == 0
                scheduler_state = jax.tree.map(
                    functools.partial(jnp.where, epoch_ends), stepped, scheduler_state
                )
        return OptimizerState(
            step=_tree.increment(state.step, steps_per_epoch or 1),
            scheduler=scheduler_state,
            groups=groups_state,
        )

    def fused_view(state: Any) -> Any:
        """The one group's chain, for jsgd.apply_gradients (``None``: unfused)."""
        if spec.fused is None or not isinstance(state, OptimizerState):
            return None
        inner = getattr(state.groups, "inner_states", None)
        if not isinstance(inner, dict) or len(inner) != 1:
            return None  # several groups: each has its own chain
        ((index, masked),) = inner.items()
        chain = getattr(masked, "inner_state", None)
        if type(chain) is not tuple:
            return None
        values = dict(groups[index].values if index < len(groups) else defaults)
        if state.scheduler is not None:
            values = _with_scheduled(
                values, {k: state.scheduler.values[k][0] for k in scheduled}
            )
        rule = spec.fused(values)
        if rule is None:
            return None

        def rebuild(new_chain: tuple[Any, ...]) -> OptimizerState:
            new_masked = masked._replace(inner_state=new_chain)
            groups_state = state.groups._replace(inner_states={index: new_masked})
            return advanced(state, groups_state, None)

        return FusedView(chain, rule, rebuild)

    init_fn.torch_info = TorchOptimizerInfo(
        spec, defaults, tuple(groups), scheduler, steps_per_epoch
    )
    init_fn.fused_view = fused_view
    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _check_param_groups(name: str, value: Any) -> None:
    if value is not None and (
        isinstance(value, (Mapping, str)) or not hasattr(value, "__len__")
    ):
        raise TypeError(
            f"`{name}` must be a list of dicts or None. Received: {name}={value!r}"
        )


def _check_scheduler(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, LRScheduler):
        raise TypeError(
            f"`{name}` must be a jsgd.torch.lr_scheduler scheduler or None. "
            f"Received: {name}={value!r}"
        )


TORCH = _spec.Family(
    name="torch",
    keywords=(
        _spec.Keyword(
            "maximize",
            False,
            _validation.check_bool,
            "maximize the objective: step along ``+g`` (torch negates the "
            "gradient first).",
        ),
        _spec.Keyword(
            "param_groups",
            None,
            _check_param_groups,
            'torch\'s parameter groups: a list of dicts, each a ``"params"`` '
            "selector (a regular expression searched in the leaf's "
            "``/``-joined path, a list of paths, or a callable ``(path, leaf) "
            "-> bool``) and per-group values of any argument above; leaves no "
            "group selects take the arguments above, as a last group.",
        ),
        _spec.Keyword(
            "scheduler",
            None,
            _check_scheduler,
            "a :mod:`jsgd.torch.lr_scheduler` scheduler setting each group's "
            "``lr`` (and ``momentum``/``betas[0]`` when it cycles them) from "
            "the group's own initial values, as torch's ``scheduler.step()`` "
            "after each ``optimizer.step()``.",
        ),
        _spec.Keyword(
            "steps_per_epoch",
            None,
            _spec.NoneOr(functools.partial(_validation.check_integer, minimum=1)),
            "step the scheduler once per this many optimizer steps (once per "
            "epoch, as most torch scripts do) instead of after every step.",
        ),
    ),
    build=torch_chain,
    rate="lr",
    sparse_switch=None,
    prefix="torch.",
    checks_in_signature_order=False,
)
"""torch.optim's shared keywords and how they wrap an optimizer's core."""


# ------------------------------------------------------- for state_dict


class TorchOptimizerInfo(NamedTuple):
    """What :func:`torch_chain` built an optimizer from (for ``state_dict``).

    Attributes:
      spec: the optimizer's spec (its ``class_name``, ``own_arguments``...).
      defaults: the constructor's values of the own arguments and
        ``maximize``.
      groups: the parsed explicit parameter groups, in order (the defaults'
        group is added by :func:`jsgd._optimizers.torch_groups.assign`).
      scheduler: the scheduler, or ``None``.
      steps_per_epoch: the optimizer steps per scheduler step, or ``None``.
    """

    spec: _spec.OptimizerSpec
    defaults: Mapping[str, Any]
    groups: tuple[_groups.Group, ...]
    scheduler: LRScheduler | None
    steps_per_epoch: int | None


def torch_info(optimizer: Any) -> TorchOptimizerInfo:
    """The :class:`TorchOptimizerInfo` of a :mod:`jsgd.torch` optimizer.

    Raises:
      TypeError: for anything else (a chain or wrapper around one included).
    """
    info = getattr(getattr(optimizer, "init", None), "torch_info", None)
    if not isinstance(info, TorchOptimizerInfo):
        raise TypeError(
            "state_dict needs the jsgd.torch optimizer itself (e.g. "
            "jsgd.torch.Adam(...), not a chain or wrapper around it); got "
            f"{optimizer!r}"
        )
    return info
