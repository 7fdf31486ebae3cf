"""jsgd.torch's state_dict / load_state_dict / scheduler_state_dict against torch 2.13.

For each optimizer (two parameter groups, some options on; complex
parameters where torch takes them): torch trains ``K`` steps, its
``state_dict()`` loads into jsgd and both go on ``M`` steps to the same
parameters; and back: jsgd trains ``K`` steps, its ``state_dict(...)`` loads
into a fresh torch optimizer (``opt.load_state_dict`` with tensors made from
the arrays) and both go on. jsgd's ``state_dict`` after the same ``K`` steps is
torch's exactly: keys, group dicts (value types included) and step values,
its arrays within float32's rounding. With schedulers (StepLR, OneCycleLR)
both ways, and every scheduler's ``scheduler_state_dict`` against torch's.
torch's numbers come live or from ``tests/golden/test_torch_state_dict.npz``
(tests/_golden.py): group dicts and scheduler dicts are stored as the
``repr`` of their plain-Python form (:func:`_plain`).

Tolerances: torch and jsgd round differently in float32 (an op order, a
fused multiply-add), about an ulp per step: ``RTOL = ATOL = 2e-6`` over
``K + M = 10`` steps on parameters of size ~1 (measured worst on CPU: 4.8e-7
absolute, 1.7e-7 relative). Scheduled values are float32 in jsgd and double
in torch: compared at ``1e-6`` relative.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
import jsgd.torch
from jsgd._optimizers.torch_state_dict import (
    load_state_dict,
    scheduler_state_dict,
    state_dict,
)
from jsgd.torch import lr_scheduler as js
from tests import _golden, _oracle
from tests._golden import Golden

golden = Golden(__name__)

K = 5
M = 5
RTOL = 2e-6
ATOL = 2e-6
VALUE_RTOL = 1e-6

PATHS = ("a", "b/c", "b/z")  # the tree order of params()
SHAPES = {"a": (3,), "b/c": (2, 2), "b/z": (2,)}
SPARSE_SHAPES = {"a": (4, 2), "b/c": (3, 2)}


# ----------------------------------------------------------------- the cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One optimizer, its groups (``first``: the paths of param_groups[0])."""

    name: str
    optimizer: str
    kwargs: dict[str, Any]
    group: dict[str, Any]
    first: tuple[str, ...] = ("a",)
    sparse: bool = False
    # (torch scheduler factory(opt), jsgd scheduler)
    scheduler: tuple[Callable[[Any], Any], Any] | None = None
    idle: tuple[str, ...] = ()  # paths without a gradient in torch's first K steps

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(SPARSE_SHAPES) if self.sparse else PATHS

    @property
    def order(self) -> list[str] | None:
        """torch's numbering: its groups' parameters, group after group."""
        order = [*self.first, *(p for p in self.paths if p not in self.first)]
        return None if order == list(self.paths) else order

    @property
    def torch_order(self) -> list[str]:
        return self.order or list(self.paths)

    def jsgd(self):
        build = getattr(jsgd.torch, self.optimizer)
        scheduler = None if self.scheduler is None else self.scheduler[1]
        return build(
            **self.kwargs,
            param_groups=[{"params": list(self.first), **self.group}],
            scheduler=scheduler,
        )


def _torch_step_lr(opt):
    return _golden.torch.optim.lr_scheduler.StepLR(opt, 2, gamma=0.5)


def _torch_one_cycle(opt):
    return _golden.torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[0.05, 0.02], total_steps=12
    )


CASES = [
    Case(
        "SGD",
        "SGD",
        dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        {"lr": 0.5},
    ),
    Case(
        "SGD-nesterov-maximize",
        "SGD",
        dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True),
        {"momentum": 0.5},
    ),
    Case("SGD-plain", "SGD", dict(lr=0.1), {"weight_decay": 0.1}),
    Case(
        "Adam-amsgrad",
        "Adam",
        dict(lr=0.01, amsgrad=True, weight_decay=0.1),
        {"lr": 0.05, "betas": (0.8, 0.99)},
    ),
    Case(
        "AdamW-maximize", "AdamW", dict(lr=0.01, maximize=True), {"weight_decay": 0.5}
    ),
    Case(
        "RMSprop-centered-momentum",
        "RMSprop",
        dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01),
        {"lr": 0.02, "alpha": 0.9},
    ),
    Case("RMSprop", "RMSprop", dict(lr=0.01), {"eps": 1e-3}),
    Case(
        "Adagrad-lr_decay",
        "Adagrad",
        dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
        {"lr": 0.3, "eps": 1e-6},
    ),
    Case("SparseAdam", "SparseAdam", dict(lr=0.01), {"lr": 0.05}, sparse=True),
    Case(
        "Adam-permuted-order",
        "Adam",
        dict(lr=0.01),
        {"lr": 0.03},
        first=("b/z", "a"),
    ),
    Case(
        "SGD-StepLR",
        "SGD",
        dict(lr=0.1, momentum=0.9),
        {"lr": 0.5},
        scheduler=(_torch_step_lr, js.StepLR(2, gamma=0.5)),
    ),
    Case(
        "Adam-OneCycleLR",
        "Adam",
        dict(lr=0.01, weight_decay=0.01),
        {"betas": (0.9, 0.99)},
        scheduler=(
            _torch_one_cycle,
            js.OneCycleLR(max_lr=[0.05, 0.02], total_steps=12),
        ),
    ),
]
IDLE = Case("Adam-idle-group", "Adam", dict(lr=0.01), {"lr": 0.05}, idle=("a",))


def _half(cases: list[Case], salt: int) -> list:
    """``cases`` as parameters, every other one under -m oracle (``salt`` says
    which half runs by default; tests/_oracle.py's ``rotating``, for cases):
    each case runs by default in one of the two resume tests and in one of the
    two state-dict comparisons, and in all four under the marker."""
    return [
        pytest.param(
            case, id=case.name, marks=() if (i + salt) % 2 == 0 else _oracle.oracle
        )
        for i, case in enumerate(cases)
    ]


# ---------------------------------------------------------- problem and runs


def start_params(case: Case) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    out = {}
    if case.sparse:
        for p, shape in SPARSE_SHAPES.items():
            out[p] = rng.standard_normal(shape).astype(np.float32)
        return out
    for p, shape in SHAPES.items():
        value = rng.standard_normal(shape).astype(np.float32)
        if p == "b/z":
            value = (value + 1j * rng.standard_normal(shape)).astype(np.complex64)
        out[p] = value
    return out


def gradient(case: Case, k: int) -> dict[str, Any]:
    """Step ``k``'s gradients by path (sparse: (values, row indices))."""
    rng = np.random.default_rng(1000 + k)
    out: dict[str, Any] = {}
    if case.sparse:
        for p, shape in SPARSE_SHAPES.items():
            rows = np.sort(rng.choice(shape[0], size=2, replace=False)).astype(np.int32)
            out[p] = (rng.standard_normal((2, *shape[1:])).astype(np.float32), rows)
        return out
    for p, shape in SHAPES.items():
        g = rng.standard_normal(shape).astype(np.float32)
        if p == "b/z":
            g = (g + 1j * rng.standard_normal(shape)).astype(np.complex64)
        out[p] = g
    return out


def tree(by_path: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in by_path.items():
        node = out
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def jsgd_gradient(case: Case, k: int) -> dict[str, Any]:
    g = gradient(case, k)
    if case.sparse:
        shapes = SPARSE_SHAPES
        g = {
            p: jsgd.IndexedSlices(jnp.asarray(v), jnp.asarray(i), shapes[p])
            for p, (v, i) in g.items()
        }
    else:
        g = {p: jnp.asarray(v) for p, v in g.items()}
    return tree(g)


def jsgd_run(case: Case, tx, params, state, steps):
    for k in steps:
        updates, state = tx.update(jsgd_gradient(case, k), state, params)
        params = jsgd.apply_updates(params, updates)
    return params, state


def by_path(params) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {"/".join(str(k.key) for k in path): np.asarray(v) for path, v in flat}


def _plain(x: Any) -> Any:
    """A state or scheduler dict as plain Python that ``ast.literal_eval`` reads."""
    if isinstance(x, collections.Counter):
        return ("Counter", sorted(x.items()))
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_plain(v) for v in x)
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return ("float", repr(x))
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return ("array", str(x.dtype).removeprefix("torch."), tuple(x.shape))
    return x


def _text(x: Any) -> np.ndarray:
    """``repr(_plain(x))`` as bytes (uint8: the golden file's check compares numbers)."""
    return np.frombuffer(repr(_plain(x)).encode(), np.uint8).copy()


def _groups_repr(param_groups) -> np.ndarray:
    return _text(param_groups)


def _read(stored: Any) -> Any:
    return ast.literal_eval(bytes(np.asarray(stored, np.uint8)).decode())


def assert_same_structure(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal keys, types and values (floats within VALUE_RTOL)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: {ours!r} vs {theirs!r}"
        assert sorted(ours, key=repr) == sorted(theirs, key=repr), (
            f"{where}: keys {list(ours)} vs {list(theirs)}"
        )
        for k in theirs:
            assert_same_structure(ours[k], theirs[k], f"{where}[{k!r}]")
        return
    assert type(ours) is type(theirs), f"{where}: {ours!r} vs {theirs!r}"
    if isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), f"{where}: {ours!r} vs {theirs!r}"
        for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same_structure(a, b, f"{where}[{k}]")
    elif isinstance(theirs, float):
        assert math.isclose(ours, theirs, rel_tol=VALUE_RTOL, abs_tol=1e-30), (
            f"{where}: {ours!r} vs {theirs!r}"
        )
    else:
        assert ours == theirs, f"{where}: {ours!r} vs {theirs!r}"


# ------------------------------------------------------------------ torch side


def torch_setup(case: Case, values: dict[str, np.ndarray]):
    """torch's tensors (in torch's order), optimizer and scheduler."""
    torch = _golden.torch
    tensors = {
        p: torch.tensor(np.array(values[p]), requires_grad=True) for p in case.paths
    }
    first = [tensors[p] for p in case.first]
    rest = [tensors[p] for p in case.paths if p not in case.first]
    cls = getattr(torch.optim, case.optimizer)
    opt = cls([{"params": first, **case.group}, {"params": rest}], **case.kwargs)
    sched = None
    if case.scheduler is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = case.scheduler[0](opt)
    return tensors, opt, sched


def torch_steps(case: Case, tensors, opt, sched, steps, idle=()):
    torch = _golden.torch
    for k in steps:
        for p, g in gradient(case, k).items():
            if p in idle:
                tensors[p].grad = None
            elif case.sparse:
                values, rows = g
                index = torch.tensor(rows[None].astype(np.int64))
                tensors[p].grad = torch.sparse_coo_tensor(
                    index, torch.tensor(values), SPARSE_SHAPES[p], check_invariants=True
                )
            else:
                tensors[p].grad = torch.tensor(g)
        opt.step()
        if sched is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sched.step()


def numpy_state_dict(sd) -> dict[str, Any]:
    """torch's state dict's arrays as NumPy arrays, its groups as a repr."""
    state = {}
    for i, entry in sd["state"].items():
        state[str(i)] = {
            k: v.detach().numpy().copy() if hasattr(v, "detach") else np.asarray(v)
            for k, v in entry.items()
        }
    return {
        "state": state,
        "structure": _text(sd["state"]),
        "groups": _groups_repr(sd["param_groups"]),
    }


def torch_run(case: Case) -> dict[str, Any]:
    """torch's K steps (its state dict then) and M more."""
    tensors, opt, sched = torch_setup(case, start_params(case))
    torch_steps(case, tensors, opt, sched, range(K), idle=case.idle)
    out: dict[str, Any] = {
        "resume": {
            str(i): tensors[p].detach().numpy().copy()
            for i, p in enumerate(case.torch_order)
        },
        **numpy_state_dict(opt.state_dict()),
    }
    if sched is not None:
        out["scheduler"] = _text(sched.state_dict())
    torch_steps(case, tensors, opt, sched, range(K, K + M))
    out["final"] = {
        str(i): tensors[p].detach().numpy().copy()
        for i, p in enumerate(case.torch_order)
    }
    return out


def as_tensors(x: Any) -> Any:
    torch = _golden.torch
    if isinstance(x, np.ndarray):
        return torch.tensor(x)
    if isinstance(x, dict):
        return {k: as_tensors(v) for k, v in x.items()}
    if isinstance(x, list):
        return [as_tensors(v) for v in x]
    return x


def torch_resume(case: Case, values, sd, sched_sd) -> dict[str, np.ndarray]:
    """A fresh torch optimizer (and scheduler) loading jsgd's dicts, M steps on."""
    tensors, opt, sched = torch_setup(case, values)
    opt.load_state_dict(as_tensors(sd))
    if sched is not None:
        sched.load_state_dict(sched_sd)
    torch_steps(case, tensors, opt, sched, range(K, K + M))
    return {
        str(i): tensors[p].detach().numpy().copy()
        for i, p in enumerate(case.torch_order)
    }


def saved_state_dict(reference: dict[str, Any]) -> dict[str, Any]:
    """torch's state dict back from its stored form (arrays, not tensors)."""
    state = {int(i): dict(entry) for i, entry in (reference.get("state") or {}).items()}
    groups = _read(reference["groups"])
    return {"state": state, "param_groups": _unplain(groups)}


def _unplain(x: Any) -> Any:
    if isinstance(x, tuple) and len(x) == 2 and x[0] == "float":
        return float(x[1])
    if isinstance(x, tuple) and len(x) == 2 and x[0] == "Counter":
        return collections.Counter(dict(x[1]))
    if isinstance(x, dict):
        return {k: _unplain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_unplain(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_unplain(v) for v in x)
    return x


def by_index(case: Case, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return tree(
        {p: jnp.asarray(arrays[str(i)]) for i, p in enumerate(case.torch_order)}
    )


def assert_params_close(case: Case, ours, theirs: dict[str, np.ndarray]) -> None:
    ours = by_path(ours)
    for i, p in enumerate(case.torch_order):
        np.testing.assert_allclose(
            ours[p], theirs[str(i)], rtol=RTOL, atol=ATOL, err_msg=f"{case.name}: {p}"
        )


# ----------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", _half([*CASES, IDLE], 0))
def test_torch_state_dict_resumes_in_jsgd(case):
    reference = golden(f"{case.name}/torch", lambda: torch_run(case))
    sd = saved_state_dict(reference)
    params = by_index(case, reference["resume"])
    tx = case.jsgd()
    sched_sd = None
    if case.scheduler is not None:
        sched_sd = _unplain(_read(reference["scheduler"]))
    state = load_state_dict(
        tx, params, sd, order=case.order, scheduler_state_dict=sched_sd
    )
    if case.optimizer != "SGD" or case.scheduler is not None:
        assert int(state.step) == K  # torch's SGD state has no step count
    params, _ = jsgd_run(case, tx, params, state, range(K, K + M))
    assert_params_close(case, params, reference["final"])


@pytest.mark.parametrize("case", _half(CASES, 1))
def test_state_dict_is_torchs(case):
    reference = golden(f"{case.name}/torch", lambda: torch_run(case))
    tx = case.jsgd()
    params = tree({p: jnp.asarray(v) for p, v in start_params(case).items()})
    params, state = jsgd_run(case, tx, params, tx.init(params), range(K))
    ours = state_dict(tx, params, state, order=case.order)
    theirs = saved_state_dict(reference)
    assert_same_structure(_plain(ours["param_groups"]), _read(reference["groups"]))
    assert_same_structure(_plain(ours["state"]), _read(reference["structure"]))
    for i, entry in theirs["state"].items():
        for key, value in entry.items():
            np.testing.assert_allclose(
                ours["state"][i][key],
                value,
                rtol=RTOL,
                atol=ATOL,
                err_msg=f"{case.name}: state[{i}][{key!r}]",
            )
            if key == "step":
                assert float(ours["state"][i][key]) == float(value) == K
    if case.scheduler is not None:
        assert_same_structure(
            _plain(scheduler_state_dict(tx, state)), _read(reference["scheduler"])
        )


@pytest.mark.parametrize("case", _half(CASES, 1))
def test_jsgd_state_dict_resumes_in_torch(case):
    tx = case.jsgd()
    params = tree({p: jnp.asarray(v) for p, v in start_params(case).items()})
    params, state = jsgd_run(case, tx, params, tx.init(params), range(K))
    sd = state_dict(tx, params, state, order=case.order)
    sched_sd = None if case.scheduler is None else scheduler_state_dict(tx, state)
    values = by_path(params)
    final = golden(
        f"{case.name}/jsgd_to_torch", lambda: torch_resume(case, values, sd, sched_sd)
    )
    params, _ = jsgd_run(case, tx, params, state, range(K, K + M))
    assert_params_close(case, params, final)


def torch_fresh(case: Case) -> dict[str, Any]:
    tensors, opt, _ = torch_setup(case, start_params(case))
    del tensors
    return numpy_state_dict(opt.state_dict())


@pytest.mark.parametrize("case", _half(CASES, 0))
def test_state_dict_before_any_step_is_torchs(case):
    """No state but Adagrad's, whose constructor makes it (step 0)."""
    reference = golden(f"{case.name}/fresh", lambda: torch_fresh(case))
    tx = case.jsgd()
    params = tree({p: jnp.asarray(v) for p, v in start_params(case).items()})
    ours = state_dict(tx, params, tx.init(params), order=case.order)
    theirs = saved_state_dict(reference)
    assert_same_structure(_plain(ours["param_groups"]), _read(reference["groups"]))
    assert_same_structure(_plain(ours["state"]), _read(reference["structure"]))
    for i, entry in theirs["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(ours["state"][i][key], value)
    # and it loads back to the fresh state
    fresh = tx.init(params)
    sched_sd = None if case.scheduler is None else scheduler_state_dict(tx, fresh)
    loaded = load_state_dict(
        tx, params, ours, order=case.order, scheduler_state_dict=sched_sd
    )
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), loaded, fresh)
    assert all(jax.tree.leaves(same))


@pytest.mark.skipif(not _golden.LIVE, reason="needs torch")
def test_load_takes_torch_tensors():
    case = CASES[3]  # Adam-amsgrad, with a complex parameter
    tensors, opt, _ = torch_setup(case, start_params(case))
    torch_steps(case, tensors, opt, None, range(K))
    params = tree({p: jnp.asarray(t.detach().numpy()) for p, t in tensors.items()})
    tx = case.jsgd()
    state = load_state_dict(tx, params, opt.state_dict())
    ours = state_dict(tx, params, state)
    for i, entry in opt.state_dict()["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(ours["state"][i][key], value.numpy())


# ---------------------------------------------------------------- schedulers


def _tl():
    return _golden.torch.optim.lr_scheduler


SCHEDULERS = {
    "StepLR": (lambda o: _tl().StepLR(o, 2, 0.5), js.StepLR(2, 0.5)),
    "ExponentialLR": (lambda o: _tl().ExponentialLR(o, 0.9), js.ExponentialLR(0.9)),
    "CosineAnnealingLR": (
        lambda o: _tl().CosineAnnealingLR(o, 5, 0.001),
        js.CosineAnnealingLR(5, 0.001),
    ),
    "LinearLR": (
        lambda o: _tl().LinearLR(o, 0.5, total_iters=4),
        js.LinearLR(0.5, total_iters=4),
    ),
    "ConstantLR": (lambda o: _tl().ConstantLR(o, 0.5, 2), js.ConstantLR(0.5, 2)),
    "MultiStepLR": (
        lambda o: _tl().MultiStepLR(o, [1, 3, 3]),
        js.MultiStepLR([1, 3, 3]),
    ),
    "PolynomialLR": (
        lambda o: _tl().PolynomialLR(o, 4, 2.0),
        js.PolynomialLR(4, 2.0),
    ),
    "LambdaLR": (
        lambda o: _tl().LambdaLR(o, lambda e: 0.9**e),
        js.LambdaLR(lambda e: 0.9**e),
    ),
    "MultiplicativeLR": (
        lambda o: _tl().MultiplicativeLR(o, lambda e: 0.9),
        js.MultiplicativeLR(lambda e: 0.9),
    ),
    "CosineAnnealingWarmRestarts": (
        lambda o: _tl().CosineAnnealingWarmRestarts(o, 2, 2),
        js.CosineAnnealingWarmRestarts(2, 2),
    ),
    "OneCycleLR": (
        lambda o: _tl().OneCycleLR(o, 1.0, total_steps=20),
        js.OneCycleLR(1.0, total_steps=20),
    ),
    "OneCycleLR-three-phase": (
        lambda o: _tl().OneCycleLR(
            o, [1.0, 0.5], total_steps=20, three_phase=True, anneal_strategy="linear"
        ),
        js.OneCycleLR(
            [1.0, 0.5], total_steps=20, three_phase=True, anneal_strategy="linear"
        ),
    ),
    "CyclicLR": (
        lambda o: _tl().CyclicLR(
            o, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.9
        ),
        js.CyclicLR(0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.9),
    ),
    "SequentialLR": (
        lambda o: _tl().SequentialLR(
            o,
            [_tl().LinearLR(o, 0.5, total_iters=2), _tl().ExponentialLR(o, 0.9)],
            milestones=[2],
        ),
        js.SequentialLR(
            [js.LinearLR(0.5, total_iters=2), js.ExponentialLR(0.9)], milestones=[2]
        ),
    ),
    "SequentialLR-unstarted": (
        lambda o: _tl().SequentialLR(
            o,
            [
                _tl().ConstantLR(o, 0.5, 2),
                _tl().StepLR(o, 2),
                _tl().ExponentialLR(o, 0.9),
            ],
            milestones=[0, 20],
        ),
        js.SequentialLR(
            [js.ConstantLR(0.5, 2), js.StepLR(2), js.ExponentialLR(0.9)],
            milestones=[0, 20],
        ),
    ),
    "ChainedScheduler": (
        lambda o: _tl().ChainedScheduler(
            [_tl().StepLR(o, 2), _tl().ExponentialLR(o, 0.9)]
        ),
        js.ChainedScheduler([js.StepLR(2), js.ExponentialLR(0.9)]),
    ),
    "ReduceLROnPlateau": (
        lambda o: _tl().ReduceLROnPlateau(o, patience=1, min_lr=[0.0, 0.001]),
        js.ReduceLROnPlateau(patience=1, min_lr=[0.0, 0.001]),
    ),
}
METRICS = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8]
SCHEDULER_STEPS = len(METRICS)
SCHEDULER_PARAMS = {"a": np.ones(3, np.float32), "b": np.ones(2, np.float32)}


def _optimizers(optimizer: str, scheduler):
    if optimizer == "SGD":
        kwargs: dict[str, Any] = dict(lr=0.1, momentum=0.9)
    else:
        kwargs = dict(lr=0.1)
    return (
        kwargs,
        {"lr": 0.5},
        getattr(jsgd.torch, optimizer)(
            **kwargs, param_groups=[{"params": "a", "lr": 0.5}], scheduler=scheduler
        ),
    )


def torch_scheduler_run(optimizer: str, name: str, steps: int) -> dict[str, Any]:
    torch = _golden.torch
    kwargs, group, _ = _optimizers(optimizer, None)
    a, b = (torch.nn.Parameter(torch.tensor(v)) for v in SCHEDULER_PARAMS.values())
    opt = getattr(torch.optim, optimizer)(
        [{"params": [a], **group}, {"params": [b]}], **kwargs
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = SCHEDULERS[name][0](opt)
        for k in range(steps):
            a.grad, b.grad = torch.ones(3), torch.ones(2)
            opt.step()
            sched.step(METRICS[k]) if name == "ReduceLROnPlateau" else sched.step()
    return {
        "groups": _groups_repr(opt.state_dict()["param_groups"]),
        "scheduler": _text(sched.state_dict()),
    }


def _scheduler_cases():
    """Every scheduler x optimizer x steps. The default run keeps each scheduler
    after SCHEDULER_STEPS steps with one optimizer (SGD and Adam in turn) and
    every third one before any step too (the optimizers in turn again); the
    other cases run under -m oracle (tests/_oracle.py)."""
    params = []
    for i, name in enumerate(SCHEDULERS):
        for optimizer in ("SGD", "Adam"):
            for steps in (0, SCHEDULER_STEPS):
                if steps:
                    kept = optimizer == ("SGD", "Adam")[i % 2]
                else:
                    kept = i % 3 == 0 and optimizer == ("SGD", "Adam")[i // 3 % 2]
                params.append(
                    pytest.param(
                        name,
                        optimizer,
                        steps,
                        id=f"{name}-{optimizer}-{steps}",
                        marks=() if kept else _oracle.oracle,
                    )
                )
    return params


@pytest.mark.parametrize(("name", "optimizer", "steps"), _scheduler_cases())
def test_scheduler_state_dict_is_torchs(name, optimizer, steps):
    reference = golden(
        f"scheduler/{name}/{optimizer}/{steps}",
        lambda: torch_scheduler_run(optimizer, name, steps),
    )
    _, _, tx = _optimizers(optimizer, SCHEDULERS[name][1])
    params = {k: jnp.asarray(v) for k, v in SCHEDULER_PARAMS.items()}
    state = tx.init(params)
    for k in range(steps):
        extra = {"value": METRICS[k]} if name == "ReduceLROnPlateau" else {}
        _, state = tx.update(
            jax.tree.map(jnp.ones_like, params), state, params, **extra
        )
    theirs = _read(reference["scheduler"])
    assert_same_structure(_plain(scheduler_state_dict(tx, state)), theirs)
    ours = state_dict(tx, params, state)
    assert_same_structure(_plain(ours["param_groups"]), _read(reference["groups"]))
    # torch's groups and scheduler dict load back to jsgd's own scheduler state
    saved = {
        "state": ours["state"],
        "param_groups": _unplain(_read(reference["groups"])),
    }
    loaded = load_state_dict(tx, params, saved, scheduler_state_dict=_unplain(theirs))
    assert int(loaded.scheduler.last_epoch) == int(state.scheduler.last_epoch)
    for key, value in state.scheduler.values.items():
        np.testing.assert_allclose(loaded.scheduler.values[key], value, rtol=1e-6)
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6),
        loaded.scheduler.extra,
        state.scheduler.extra,
    )


# ------------------------------------------------------------------- errors


def _adam_problem():
    params = {"a": jnp.ones(3), "b": {"c": jnp.ones((2, 2)), "z": jnp.ones(2)}}
    tx = jsgd.torch.Adam(lr=0.01, param_groups=[{"params": "^a$", "lr": 0.05}])
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    state = tx.init(params)
    for _ in range(3):
        _, state = tx.update(grads, state, params)
    return tx, params, state


def test_state_dict_needs_the_optimizer_itself():
    tx, params, state = _adam_problem()
    with pytest.raises(
        TypeError, match=r"state_dict needs the jsgd\.torch optimizer itself"
    ):
        state_dict(optax.chain(tx), params, state)
    with pytest.raises(
        TypeError, match=r"state_dict needs the jsgd\.torch optimizer itself"
    ):
        load_state_dict(optax.adam(0.1), params, state_dict(tx, params, state))
    with pytest.raises(TypeError, match=r"opt_state must be the jsgd.torch.Adam state"):
        state_dict(tx, params, state.groups)


def test_round_trip_is_exact():
    tx, params, state = _adam_problem()
    loaded = load_state_dict(tx, params, state_dict(tx, params, state))
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), loaded, state)
    assert all(jax.tree.leaves(same))


def test_hyperparameter_differences_are_listed():
    tx, params, state = _adam_problem()
    sd = state_dict(tx, params, state)
    sd["param_groups"][0]["weight_decay"] = 0.1
    sd["param_groups"][1]["betas"] = (0.9, 0.99)
    sd["param_groups"][1]["amsgrad"] = True
    sd["param_groups"][1]["foreach"] = True  # an implementation switch: ignored
    with pytest.raises(ValueError) as error:
        load_state_dict(tx, params, sd)
    message = str(error.value)
    assert (
        "param_groups[0]['weight_decay']: saved 0.1, jsgd.torch.Adam has 0" in message
    )
    assert (
        "param_groups[1]['betas']: saved (0.9, 0.99), jsgd.torch.Adam has (0.9, 0.999)"
        in message
    )
    assert (
        "param_groups[1]['amsgrad']: saved True, jsgd.torch.Adam has False" in message
    )
    assert "foreach" not in message
    assert "build it with the saved values" in message
    # AdamW's state dict is not Adam's
    adamw = jsgd.torch.AdamW(
        lr=0.01, weight_decay=0, param_groups=[{"params": "^a$", "lr": 0.05}]
    )
    with pytest.raises(
        ValueError,
        match=r"\['decoupled_weight_decay'\]: saved False, jsgd.torch.AdamW has True",
    ):
        load_state_dict(
            adamw,
            params,
            sd | {"param_groups": state_dict(tx, params, state)["param_groups"]},
        )


def test_group_mismatches_name_the_group():
    tx, params, state = _adam_problem()
    sd = state_dict(tx, params, state)
    swapped = {
        **sd,
        "param_groups": [
            {**sd["param_groups"][0], "params": [1]},
            {**sd["param_groups"][1], "params": [0, 2]},
        ],
    }
    with pytest.raises(
        ValueError,
        match=re.escape(
            "param_groups[0] of the state_dict holds the parameters [1 ('b/c')], but "
            "jsgd.torch.Adam's param_groups[0] holds [0 ('a')]"
        ),
    ) as error:
        load_state_dict(tx, params, swapped)
    assert "pass order=" in str(error.value)
    one_group = {**sd, "param_groups": [{**sd["param_groups"][1], "params": [0, 1, 2]}]}
    with pytest.raises(
        ValueError, match=r"the state_dict has 1 param_groups, jsgd.torch.Adam has 2"
    ):
        load_state_dict(tx, params, one_group)
    more = {
        **sd,
        "param_groups": [
            sd["param_groups"][0],
            {**sd["param_groups"][1], "params": [1, 2, 3]},
        ],
    }
    with pytest.raises(ValueError, match=r"hold 4 parameters .* params has 3 leaves"):
        load_state_dict(tx, params, more)
    twice = {
        **sd,
        "param_groups": [
            sd["param_groups"][0],
            {**sd["param_groups"][1], "params": [0, 1]},
        ],
    }
    with pytest.raises(
        ValueError, match=r"parameter 0 is in param_groups\[0\] and param_groups\[1\]"
    ):
        load_state_dict(tx, params, twice)


def test_state_mismatches_name_the_parameter():
    tx, params, state = _adam_problem()
    sd = state_dict(tx, params, state)
    bad_shape = {
        **sd,
        "state": {**sd["state"], 1: {**sd["state"][1], "exp_avg": np.zeros(4)}},
    }
    with pytest.raises(
        ValueError,
        match=re.escape(
            "state_dict['state'][1]['exp_avg'] ('b/c') has the shape (4,), but the "
            "parameter has the shape (2, 2)"
        ),
    ):
        load_state_dict(tx, params, bad_shape)
    extra = {
        **sd,
        "state": {**sd["state"], 0: {**sd["state"][0], "max_exp_avg_sq": np.zeros(3)}},
    }
    with pytest.raises(
        ValueError,
        match=r"state_dict\['state'\]\[0\] \('a'\) has the keys .* \(unknown: \['max_exp_avg_sq'\]\)",
    ):
        load_state_dict(tx, params, extra)
    entry = dict(sd["state"][2])
    del entry["exp_avg_sq"]
    missing = {**sd, "state": {**sd["state"], 2: entry}}
    with pytest.raises(ValueError, match=r"\(missing: \['exp_avg_sq'\]\)"):
        load_state_dict(tx, params, missing)
    steps = {
        **sd,
        "state": {**sd["state"], 2: {**sd["state"][2], "step": np.float32(2)}},
    }
    with pytest.raises(
        ValueError,
        match=r"the parameters of param_groups\[1\] have different step counts \(step 2: parameter 2 \('b/z'\); step 3: parameter 1 \('b/c'\)\); jsgd keeps one count per group",
    ):
        load_state_dict(tx, params, steps)
    outside = {**sd, "state": {**sd["state"], 7: sd["state"][0]}}
    with pytest.raises(
        ValueError, match="an entry for parameter 7, but params has 3 leaves"
    ):
        load_state_dict(tx, params, outside)
    with pytest.raises(TypeError, match="a dict with 'state' and 'param_groups'"):
        load_state_dict(tx, params, {"state": {}})


def test_a_missing_entry_keeps_the_fresh_state():
    tx, params, state = _adam_problem()
    sd = state_dict(tx, params, state)
    del sd["state"][1]
    loaded = load_state_dict(tx, params, sd)
    adam = loaded.groups.inner_states[1].inner_state[0]
    np.testing.assert_array_equal(adam.momentum["b"]["c"], np.zeros((2, 2)))
    np.testing.assert_array_equal(adam.momentum["b"]["z"], sd["state"][2]["exp_avg"])
    assert int(adam.count) == 3


def test_order_must_list_every_path_once():
    tx, params, state = _adam_problem()
    for order, problem in [
        (["a", "b/c"], r"lacks \['b/z'\]"),
        (["a", "b/c", "b/z", "x"], r"names \['x'\], which are not parameter paths"),
        (["a", "a", "b/c", "b/z"], r"repeats \['a'\]"),
    ]:
        with pytest.raises(ValueError, match=problem):
            state_dict(tx, params, state, order=order)
    with pytest.raises(TypeError, match="`order` must be a list of parameter paths"):
        state_dict(tx, params, state, order="a")


def test_order_numbers_the_parameters():
    tx, params, state = _adam_problem()
    sd = state_dict(tx, params, state, order=["b/z", "a", "b/c"])
    assert [g["params"] for g in sd["param_groups"]] == [[1], [0, 2]]
    np.testing.assert_array_equal(
        sd["state"][0]["exp_avg"], state_dict(tx, params, state)["state"][2]["exp_avg"]
    )
    loaded = load_state_dict(tx, params, sd, order=["b/z", "a", "b/c"])
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), loaded, state)
    assert all(jax.tree.leaves(same))


def _sgd_step_lr(**kwargs):
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}
    tx = jsgd.torch.SGD(lr=0.1, momentum=0.9, scheduler=js.StepLR(2, 0.5), **kwargs)
    state = tx.init(params)
    for _ in range(4):
        _, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    return tx, params, state


def test_scheduler_mismatches_are_listed():
    tx, params, state = _sgd_step_lr()
    sd, sched_sd = state_dict(tx, params, state), scheduler_state_dict(tx, state)
    assert sched_sd["last_epoch"] == 4 and sd["param_groups"][0]["lr"] == 0.025
    other = jsgd.torch.SGD(lr=0.1, momentum=0.9, scheduler=js.StepLR(2, 0.1))
    with pytest.raises(ValueError) as error:
        load_state_dict(other, params, sd, scheduler_state_dict=sched_sd)
    message = str(error.value)
    assert "the saved schedule is not jsgd's StepLR's" in message
    assert "param_groups[0]['lr']: saved 0.025, jsgd's scheduler gives 0.001" in message
    assert "scheduler_state_dict['gamma']: saved 0.5, jsgd's 0.1" in message
    # SGD's state has no step: the epoch comes from the scheduler's state dict,
    # or from step=
    loaded = load_state_dict(tx, params, sd, scheduler_state_dict=sched_sd)
    assert int(loaded.step) == 4 and int(loaded.scheduler.last_epoch) == 4
    loaded = load_state_dict(tx, params, sd, step=4)
    assert int(loaded.scheduler.last_epoch) == 4
    with pytest.raises(ValueError, match="pass scheduler_state_dict="):
        load_state_dict(tx, params, sd)
    with pytest.raises(
        ValueError,
        match=r"the scheduler's last_epoch is 4, but after 3 optimizer steps",
    ):
        load_state_dict(tx, params, sd, scheduler_state_dict=sched_sd, step=3)


def test_steps_per_epoch_and_last_epoch_must_agree():
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}
    tx = jsgd.torch.Adam(lr=0.1, scheduler=js.StepLR(1, 0.5), steps_per_epoch=2)
    state = tx.init(params)
    for _ in range(5):
        _, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    sd, sched_sd = state_dict(tx, params, state), scheduler_state_dict(tx, state)
    assert sched_sd["last_epoch"] == 2
    loaded = load_state_dict(tx, params, sd, scheduler_state_dict=sched_sd)
    assert int(loaded.step) == 5 and int(loaded.scheduler.last_epoch) == 2
    per_step = jsgd.torch.Adam(lr=0.1, scheduler=js.StepLR(1, 0.5))
    with pytest.raises(
        ValueError,
        match=r"last_epoch is 2, but after 5 optimizer steps jsgd's scheduler, which steps after every optimizer step, is at 5",
    ):
        load_state_dict(per_step, params, sd, scheduler_state_dict=sched_sd)


def test_plateau_needs_its_state_dict():
    params = {"a": jnp.ones(3)}
    tx = jsgd.torch.Adam(lr=0.1, scheduler=js.ReduceLROnPlateau(patience=0))
    state = tx.init(params)
    for metric in (1.0, 2.0, 3.0):
        _, state = tx.update({"a": jnp.ones(3)}, state, params, value=metric)
    sd, sched_sd = state_dict(tx, params, state), scheduler_state_dict(tx, state)
    assert sched_sd["best"] == 1.0 and sched_sd["num_bad_epochs"] == 0
    assert sd["param_groups"][0]["lr"] == pytest.approx(0.001)
    with pytest.raises(
        ValueError, match=r"ReduceLROnPlateau's state .* pass scheduler_state_dict="
    ):
        load_state_dict(tx, params, sd)
    loaded = load_state_dict(tx, params, sd, scheduler_state_dict=sched_sd)
    same = jax.tree.map(lambda a, b: bool(np.allclose(a, b)), loaded, state)
    assert all(jax.tree.leaves(same))


def test_scheduler_state_dict_needs_a_scheduler():
    tx, _, state = _adam_problem()
    with pytest.raises(ValueError, match="has no scheduler"):
        scheduler_state_dict(tx, state)


def test_a_grad_scaler_s_skipped_steps_need_step():
    """torch's step does not count skipped steps; jsgd's update count does."""
    params = {"a": jnp.ones(3)}
    adam = jsgd.torch.Adam(lr=0.1, scheduler=js.StepLR(1, 0.5))
    tx = jsgd.torch.GradScaler(init_scale=1.0).wrap(adam)
    state = tx.init(params)
    for k in range(4):
        g = jnp.full(3, jnp.inf if k == 1 else 1.0)
        _, state = tx.update({"a": g}, state, params)
    inner = state.inner_state
    assert int(inner.step) == 4
    sd, sched_sd = state_dict(adam, params, inner), scheduler_state_dict(adam, inner)
    assert float(sd["state"][0]["step"]) == 3 and sched_sd["last_epoch"] == 4
    with pytest.raises(
        ValueError, match="under a GradScaler that skipped steps, pass step="
    ):
        load_state_dict(adam, params, sd, scheduler_state_dict=sched_sd)
    loaded = load_state_dict(adam, params, sd, scheduler_state_dict=sched_sd, step=4)
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), loaded, inner)
    assert all(jax.tree.leaves(same))
    with pytest.raises(
        ValueError, match="step=2 is below the state_dict's step count, 3"
    ):
        load_state_dict(adam, params, sd, scheduler_state_dict=sched_sd, step=2)
