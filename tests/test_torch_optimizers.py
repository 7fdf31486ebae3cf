"""jsgd.torch's optimizers against the real torch.optim (torch 2.13).

Parity: for each of SGD, Adam, AdamW, RMSprop and Adagrad, ``N_CONFIGS``
seeded random configurations, each ``STEPS`` steps on a small float32 tree
(a 0-d, vector and matrix leaves; a complex64 vector in some): jsgd's jitted
``update`` + ``optax.apply_updates`` against torch's ``opt.step()`` with each
``.grad`` set to the same gradient, the whole parameter trajectory compared.
A configuration mixes the optimizer's own options, weight decay,
``maximize``, 0 to 3 explicit parameter groups with per-group overrides
selected by a regular expression, a list of paths or a callable (torch: the
same partition, in jsgd's group order: the explicit groups, then the leaves
none selects), and a scheduler (StepLR, ExponentialLR, OneCycleLR, cycling
the momentum or beta1, or SequentialLR of LinearLR then CosineAnnealingLR)
stepped per step or per epoch (``steps_per_epoch=EPOCH``; torch:
``sched.step()`` every ``EPOCH`` ``opt.step()``). Complex leaves are compared
through their real view (torch's ``view_as_real``).

Sparse gradients: SGD and Adagrad on ``jsgd.IndexedSlices`` and SparseAdam,
against torch's uncoalesced ``torch.sparse_coo_tensor`` gradients (an
embedding-like table, duplicate indices) for ``STEPS`` steps.

The transform contract, for each jsgd.torch optimizer: jit equals eager, one
compile across updates with a traced ``lr`` (``optax.inject_hyperparams``,
against torch with the lr changed in ``param_groups``), inside
``optax.chain``, and under ``flax.nnx.Optimizer``.

torch's numbers come live or from ``tests/golden/test_torch_optimizers.npz``
(tests/_golden.py). The parity sweep's default run is, for each
optimizer, the fewest configurations that between them take every option
(``_oracle.fewest_covering``); the rest run under ``-m oracle``.

Tolerance: float32 arithmetic on both sides, in different orders (torch's
in-place ``addcdiv_``/``lerp_`` kernels and its Python-double scheduler
values against XLA's fused float32): ``RTOL = 2e-5`` and ``ATOL = 1e-6``
times the parameters' scale (the largest initial magnitude, at least 1).
Measured worst error over all 100 configurations of each optimizer, as
``max |jsgd - torch| / (ATOL * scale + RTOL * |torch|)`` (1 is the
tolerance) and as ``max |jsgd - torch| / scale``: SGD 0.32 (7.9e-7), Adam
0.026 (1.2e-7), AdamW 0.049 (8.0e-7), RMSprop 0.38 (2.5e-6), Adagrad 0.023
(1.7e-7); the sparse cases 0.19 at most (SGD with Nesterov momentum).

Two torch behaviours the tests pin: torch's SGD fails on a sparse gradient
with weight decay ("add(sparse, dense) is not supported"), where jsgd gives
the dense result, so that case is compared with torch on the dense gradient;
and torch's Adagrad ignores a group's ``initial_accumulator_value``, which
jsgd refuses, so the random groups never override it.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
import jsgd.torch
from jsgd.torch import lr_scheduler
from tests import _golden, _oracle
from tests._golden import Golden

golden = Golden(__name__)

N_CONFIGS = 100
STEPS = 20
EPOCH = 4
RTOL = 2e-5
ATOL = 1e-6

NAMES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")
ALL_NAMES = (*NAMES, "SparseAdam")

# The tree: path -> shape (and "rot", complex64, in some configurations).
SHAPES = {
    "dec/b": (2,),
    "dec/w": (3, 2),
    "enc/b": (3,),
    "enc/w": (2, 3),
    "scale": (),
}
COMPLEX = {"rot": (2,)}


# ------------------------------------------------------------ configurations


def _draw(rng: np.random.Generator, name: str) -> dict[str, Any]:
    """One full set of ``name``'s hyperparameters (torch's keywords)."""

    def pick(*options):
        return options[int(rng.integers(len(options)))]

    weight_decay = float(pick(0.0, rng.uniform(0, 0.1)))
    if name == "SGD":
        momentum = float(pick(0.0, 0.9, rng.uniform(0, 0.99)))
        nesterov = bool(rng.integers(2)) and momentum > 0
        dampening = 0.0 if nesterov else float(pick(0.0, 0.5, rng.uniform(0, 1)))
        return dict(
            lr=float(rng.uniform(0.001, 0.2)),
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
    if name in ("Adam", "AdamW"):
        return dict(
            lr=float(rng.uniform(1e-4, 0.05)),
            betas=(
                float(pick(0.9, rng.uniform(0, 0.99))),
                float(pick(0.999, rng.uniform(0.5, 0.9999))),
            ),
            eps=float(pick(1e-8, 10 ** rng.uniform(-8, -3))),
            weight_decay=weight_decay,
            amsgrad=bool(rng.integers(2)),
        )
    if name == "RMSprop":
        return dict(
            lr=float(rng.uniform(1e-4, 0.02)),
            alpha=float(pick(0.99, rng.uniform(0.5, 0.999))),
            eps=float(pick(1e-8, 10 ** rng.uniform(-8, -3))),
            weight_decay=weight_decay,
            momentum=float(pick(0.0, 0.9, rng.uniform(0, 0.99))),
            centered=bool(rng.integers(2)),
        )
    assert name == "Adagrad"
    return dict(
        lr=float(rng.uniform(0.001, 0.2)),
        lr_decay=float(pick(0.0, rng.uniform(0, 0.1))),
        weight_decay=weight_decay,
        initial_accumulator_value=float(pick(0.0, rng.uniform(0, 1))),
        eps=float(pick(1e-10, 10 ** rng.uniform(-10, -4))),
    )


def _nesterov_ok(values: dict[str, Any]) -> bool:
    return not values.get("nesterov") or (
        values["momentum"] > 0 and values["dampening"] == 0
    )


def _scheduler(rng: np.random.Generator, name: str, n_groups: int, per_epoch: bool):
    """A scheduler spec ``(kind, kwargs)`` (the same kwargs for torch and jsgd)."""
    steps = STEPS // EPOCH if per_epoch else STEPS
    kind = ("StepLR", "ExponentialLR", "OneCycleLR", "SequentialLR")[
        int(rng.integers(4))
    ]
    if kind == "StepLR":
        return kind, dict(
            step_size=int(rng.integers(1, 6)), gamma=float(rng.uniform(0.3, 0.9))
        )
    if kind == "ExponentialLR":
        return kind, dict(gamma=float(rng.uniform(0.8, 0.99)))
    if kind == "OneCycleLR":
        top = [float(rng.uniform(0.005, 0.1)) for _ in range(n_groups)]
        if name in ("Adam", "AdamW"):
            top = [t / 5 for t in top]
        cycle = name != "Adagrad"  # Adagrad has neither momentum nor betas
        kwargs = dict(
            max_lr=top if rng.integers(2) else top[0],
            total_steps=steps + int(rng.integers(0, 3)),
            pct_start=float(rng.uniform(0.2, 0.5)),
            anneal_strategy=("cos", "linear")[int(rng.integers(2))],
            cycle_momentum=cycle,
            div_factor=float(rng.uniform(5, 30)),
            three_phase=bool(rng.integers(2)),
        )
        if cycle and rng.integers(2):
            kwargs.update(
                base_momentum=float(rng.uniform(0.5, 0.85)),
                max_momentum=float(rng.uniform(0.9, 0.98)),
            )
        return kind, kwargs
    milestone = int(rng.integers(1, steps // 2 + 1))
    return kind, dict(
        warmup=dict(start_factor=float(rng.uniform(0.1, 0.5)), total_iters=milestone),
        cosine=dict(
            T_max=int(rng.integers(2, steps + 1)),
            eta_min=float(_small_or_zero(rng)),
        ),
        milestones=[milestone],
    )


def _small_or_zero(rng: np.random.Generator) -> float:
    return 0.0 if rng.integers(2) else float(rng.uniform(0, 1e-3))


@functools.cache
def config(name: str, seed: int) -> dict[str, Any]:
    """The configuration of ``test_matches_torch[seed-name]``."""
    rng = np.random.default_rng([seed, NAMES.index(name), 20_26])
    hyper = _draw(rng, name)
    maximize = bool(rng.random() < 0.25)
    with_complex = bool(rng.random() < 0.3)
    paths = list(SHAPES) + (list(COMPLEX) if with_complex else [])
    n_explicit = int(rng.choice([0, 1, 2, 3], p=[0.2, 0.35, 0.3, 0.15]))
    # Each leaf's group: 0..n_explicit - 1, or n_explicit (the defaults').
    owner = rng.integers(0, n_explicit + 1, size=len(paths))
    groups = []
    for index in range(n_explicit):
        members = [p for p, o in zip(paths, owner, strict=True) if o == index]
        other = _draw(rng, name)
        other["maximize"] = bool(rng.random() < 0.25)
        # torch's Adagrad starts every sum at the constructor's value and
        # ignores a group's own, which jsgd refuses
        # (test_adagrad_refuses_a_groups_initial_accumulator_value).
        keys = sorted(set(other) - {"initial_accumulator_value"})
        chosen = rng.choice(keys, size=int(rng.integers(1, 4)), replace=False)
        overrides = {str(k): other[str(k)] for k in chosen}
        if not _nesterov_ok({**hyper, **overrides}):
            overrides["nesterov"] = False
        groups.append(
            dict(
                selector=("regex", "list", "callable")[int(rng.integers(3))],
                members=members,
                overrides=overrides,
            )
        )
    rest = [p for p, o in zip(paths, owner, strict=True) if o == n_explicit]
    n_groups = n_explicit + (1 if rest else 0)
    scheduler = None
    per_epoch = False
    if rng.random() < 0.6:
        per_epoch = bool(rng.integers(2))
        scheduler = _scheduler(rng, name, n_groups, per_epoch)
    return dict(
        hyper=hyper,
        maximize=maximize,
        paths=paths,
        groups=groups,
        rest=rest,
        scheduler=scheduler,
        per_epoch=per_epoch,
        data_seed=[seed, NAMES.index(name), 7],
    )


def features(name: str, seed: int) -> set[str]:
    """What ``config(name, seed)`` exercises (for the covering sample)."""
    c = config(name, seed)
    h = c["hyper"]
    out = {
        f"maximize={c['maximize']}",
        f"complex={'rot' in c['paths']}",
        f"groups={len(c['groups'])}",
        f"scheduler={c['scheduler'][0] if c['scheduler'] else None}",
        f"per_epoch={c['per_epoch']}",
        f"weight_decay>0={h['weight_decay'] > 0}",
    }
    out |= {f"selector={g['selector']}" for g in c["groups"]}
    for key in ("nesterov", "amsgrad", "centered"):
        if key in h:
            out.add(f"{key}={h[key]}")
    for key in ("momentum", "dampening", "lr_decay", "initial_accumulator_value"):
        if key in h:
            out.add(f"{key}>0={h[key] > 0}")
    if c["scheduler"] and c["scheduler"][0] == "OneCycleLR":
        out.add(f"cycle_momentum={c['scheduler'][1]['cycle_momentum']}")
    return out


def _problem(c: dict[str, Any]):
    """Initial parameters and the gradient sequence (path -> NumPy arrays)."""
    rng = np.random.default_rng(c["data_seed"])
    shapes = {**SHAPES, **COMPLEX}

    def draw(path):
        shape = shapes[path]
        x = rng.standard_normal(shape).astype(np.float32)
        if path in COMPLEX:
            y = rng.standard_normal(shape).astype(np.float32)
            return (x + 1j * y).astype(np.complex64)
        return x

    params = {p: draw(p) for p in c["paths"]}
    grads = [{p: draw(p) for p in c["paths"]} for _ in range(STEPS)]
    return params, grads


def _flat(values: dict[str, np.ndarray], paths) -> np.ndarray:
    """The leaves' real views, in ``paths`` order, as one float32 vector."""
    parts = []
    for p in paths:
        x = np.asarray(values[p])
        if np.iscomplexobj(x):
            x = np.stack([x.real, x.imag], axis=-1)
        parts.append(np.asarray(x, np.float32).ravel())
    return np.concatenate(parts)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


def _unnest(tree: dict[str, Any]) -> dict[str, Any]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(k.key) for k in path): v for path, v in leaves}


# ----------------------------------------------------------------- jsgd side


def _jsgd_selector(group: dict[str, Any], paths):
    members = group["members"]
    if group["selector"] == "regex":
        if not members:
            return "^nothing here$"
        return "^(?:" + "|".join(re.escape(m) for m in members) + ")$"
    if group["selector"] == "list":
        return list(members)
    ndims = {p: len({**SHAPES, **COMPLEX}[p]) for p in paths}
    return lambda path, leaf: path in members and jnp.ndim(leaf) == ndims[path]


def _jsgd_scheduler(spec):
    if spec is None:
        return None
    kind, kwargs = spec
    if kind == "SequentialLR":
        return lr_scheduler.SequentialLR(
            [
                lr_scheduler.LinearLR(**kwargs["warmup"]),
                lr_scheduler.CosineAnnealingLR(**kwargs["cosine"]),
            ],
            milestones=kwargs["milestones"],
        )
    return getattr(lr_scheduler, kind)(**kwargs)


def jsgd_optimizer(name: str, c: dict[str, Any]):
    groups = [
        {"params": _jsgd_selector(g, c["paths"]), **g["overrides"]} for g in c["groups"]
    ]
    return getattr(jsgd.torch, name)(
        **c["hyper"],
        maximize=c["maximize"],
        param_groups=groups or None,
        scheduler=_jsgd_scheduler(c["scheduler"]),
        steps_per_epoch=EPOCH if c["per_epoch"] else None,
    )


def run_jsgd(tx, params, grads, *, jit=True):
    """The trajectory of ``tx`` from ``params`` under ``grads`` (path dicts)."""

    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    tree = jax.tree.map(jnp.asarray, _nest(params))
    state = tx.init(tree)
    trajectory = []
    for g in grads:
        tree, state = step(tree, state, jax.tree.map(jnp.asarray, _nest(g)))
        trajectory.append(jax.tree.map(np.asarray, _unnest(tree)))
    return trajectory


# ---------------------------------------------------------------- torch side


def _torch_scheduler(opt, spec):
    torch = _golden.torch
    if spec is None:
        return None
    kind, kwargs = spec
    schedulers = torch.optim.lr_scheduler
    if kind == "SequentialLR":
        return schedulers.SequentialLR(
            opt,
            [
                schedulers.LinearLR(opt, **kwargs["warmup"]),
                schedulers.CosineAnnealingLR(opt, **kwargs["cosine"]),
            ],
            milestones=kwargs["milestones"],
        )
    return getattr(schedulers, kind)(opt, **kwargs)


def run_torch(name: str, c: dict[str, Any]) -> np.ndarray:
    """torch's trajectory, ``[STEPS, size]`` float32 (the real views)."""
    torch = _golden.torch
    params, grads = _problem(c)
    tensors = {p: torch.tensor(v, requires_grad=True) for p, v in params.items()}
    groups = [
        {"params": [tensors[p] for p in g["members"]], **g["overrides"]}
        for g in c["groups"]
    ]
    if c["rest"]:
        groups.append({"params": [tensors[p] for p in c["rest"]]})
    opt = getattr(torch.optim, name)(groups, **c["hyper"], maximize=c["maximize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _torch_scheduler(opt, c["scheduler"])
        trajectory = []
        for t, g in enumerate(grads):
            for p, tensor in tensors.items():
                tensor.grad = torch.tensor(g[p])
            opt.step()
            if sched is not None and (not c["per_epoch"] or (t + 1) % EPOCH == 0):
                sched.step()
            trajectory.append(
                _flat({p: x.detach().numpy() for p, x in tensors.items()}, c["paths"])
            )
    return np.stack(trajectory)


# ----------------------------------------------------------------- compare


def error_ratio(ours: np.ndarray, theirs: np.ndarray, scale: float) -> float:
    """``max |ours - theirs| / (ATOL * scale + RTOL * |theirs|)``: <= 1 passes."""
    bound = ATOL * scale + RTOL * np.abs(theirs)
    return float(np.max(np.abs(ours.astype(np.float64) - theirs) / bound))


def parity(name: str, seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    c = config(name, seed)
    params, grads = _problem(c)
    expected = golden(f"{name}/{seed}", lambda: run_torch(name, c))
    ours = np.stack(
        [_flat(p, c["paths"]) for p in run_jsgd(jsgd_optimizer(name, c), params, grads)]
    )
    scale = max(1.0, float(np.max(np.abs(_flat(params, c["paths"])))))
    return error_ratio(ours, expected, scale), ours, expected


def _sample(name):
    return _oracle.fewest_covering(
        N_CONFIGS, functools.partial(features, name), salt=NAMES.index(name)
    )


PARITY = _oracle.cases(NAMES, N_CONFIGS, _sample)


@pytest.mark.parametrize(("name", "seed"), PARITY)
def test_matches_torch(name, seed):
    ratio, ours, expected = parity(name, seed)
    if ratio > 1:
        worst = np.unravel_index(np.argmax(np.abs(ours - expected)), expected.shape)
        pytest.fail(
            f"{name} config {seed}: error {ratio:.3g} x the tolerance at step "
            f"{worst[0] + 1}, component {worst[1]}: jsgd {ours[worst]!r}, torch "
            f"{expected[worst]!r}; config {config(name, seed)}"
        )


def test_the_default_samples_take_every_option():
    for name in NAMES:
        every = set().union(*(features(name, s) for s in range(N_CONFIGS)))
        chosen = [s for n, s in _oracle.in_default_run(PARITY) if n == name]
        assert chosen, name
        assert set().union(*(features(name, s) for s in chosen)) == every, name


def _adagrad_group_sum_config(override):
    groups = (
        []
        if override is None
        else [
            dict(
                selector="regex",
                members=["enc/w"],
                overrides={"initial_accumulator_value": override},
            )
        ]
    )
    return dict(
        hyper=dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-10),
        maximize=False,
        paths=list(SHAPES),
        groups=groups,
        rest=[p for p in SHAPES if override is None or p != "enc/w"],
        scheduler=None,
        per_epoch=False,
        data_seed=[1, 2, 3],
    )


def test_adagrad_refuses_a_groups_initial_accumulator_value():
    """torch's Adagrad starts every sum at the constructor's
    ``initial_accumulator_value`` and ignores a group's own; jsgd refuses a
    group's value that differs from the constructor's (and takes an equal one)."""

    def torch_runs():
        return {
            "with": run_torch("Adagrad", _adagrad_group_sum_config(2.0)),
            "without": run_torch("Adagrad", _adagrad_group_sum_config(None)),
        }

    runs = golden("Adagrad-group-initial-sum", torch_runs)
    np.testing.assert_array_equal(runs["with"], runs["without"])  # ignored
    with pytest.raises(ValueError) as error:
        jsgd_optimizer("Adagrad", _adagrad_group_sum_config(2.0))
    assert str(error.value) == (
        "param_groups[0]: torch's Adagrad ignores a group's "
        "initial_accumulator_value (every group starts from the constructor's, "
        "0.5); jsgd.torch refuses it rather than ignore it. Received: "
        "initial_accumulator_value=2.0"
    )
    c = _adagrad_group_sum_config(0.5)
    params, grads = _problem(c)
    ours = np.stack(
        [
            _flat(p, c["paths"])
            for p in run_jsgd(jsgd_optimizer("Adagrad", c), params, grads)
        ]
    )
    assert error_ratio(ours, runs["without"], 2.5) <= 1


# ------------------------------------------------------------ sparse gradients

TABLE = (8, 3)  # an embedding table: 8 rows of 3
ROWS = 5  # rows gathered per step, duplicates and untouched rows included


def _sparse_problem(seed: int, dense_leaf: bool):
    """Tables, a dense leaf (optional) and STEPS gradients: per table, ``ROWS``
    indices with a duplicate and their values."""
    rng = np.random.default_rng([seed, 99])
    params = {
        "emb/a": rng.standard_normal(TABLE).astype(np.float32),
        "emb/b": rng.standard_normal(TABLE).astype(np.float32),
    }
    if dense_leaf:
        params["head/w"] = rng.standard_normal((3, 2)).astype(np.float32)
    grads = []
    for _ in range(STEPS):
        g = {}
        for path in ("emb/a", "emb/b"):
            indices = rng.integers(0, TABLE[0], size=ROWS)
            indices[-1] = indices[0]  # a duplicate row
            g[path] = (
                indices.astype(np.int32),
                rng.standard_normal((ROWS, TABLE[1])).astype(np.float32),
            )
        if dense_leaf:
            g["head/w"] = rng.standard_normal((3, 2)).astype(np.float32)
        grads.append(g)
    return params, grads


# (optimizer, seed, constructor arguments, the emb/b group's overrides, whether
# torch gets the dense gradients: torch's SGD fails on a sparse gradient with
# weight decay, "add(sparse, dense) is not supported", and its dense result is
# what jsgd computes).
SPARSE_CASES = [
    ("SGD", 0, dict(lr=0.1), None, False),
    ("SGD", 1, dict(lr=0.05, momentum=0.9), {"lr": 0.1}, False),
    ("SGD", 2, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True), None, False),
    ("SGD", 3, dict(lr=0.1, momentum=0.5, dampening=0.3), {"momentum": 0.8}, False),
    ("SGD", 4, dict(lr=0.1, momentum=0.9, weight_decay=0.05), None, True),
    ("Adagrad", 5, dict(lr=0.1), None, False),
    (
        "Adagrad",
        6,
        dict(lr=0.05, lr_decay=0.05, initial_accumulator_value=0.3, eps=1e-6),
        {"lr": 0.2, "lr_decay": 0.0},
        False,
    ),
    ("Adagrad", 7, dict(lr=0.1, eps=1e-3, maximize=True), None, False),
    ("SparseAdam", 8, dict(lr=0.01), None, False),
    ("SparseAdam", 9, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6), {"lr": 0.05}, False),
    (
        "SparseAdam",
        10,
        dict(lr=0.01, betas=(0.8, 0.99), maximize=True),
        {"betas": (0.9, 0.999), "eps": 1e-4},
        False,
    ),
    ("SparseAdam", 11, dict(lr=0.01), {"lr": 0.02}, False),
    ("Adagrad", 12, dict(lr=0.1, lr_decay=0.02), None, False),
    ("SGD", 13, dict(lr=0.05, momentum=0.9), {"lr": 0.1}, False),
]
# Schedulers of some sparse cases, by seed: (spec, per epoch).
SPARSE_SCHEDULES = {
    11: (("OneCycleLR", dict(max_lr=[0.05, 0.02], total_steps=STEPS)), False),
    12: (("StepLR", dict(step_size=2, gamma=0.5)), True),
    13: (("OneCycleLR", dict(max_lr=0.1, total_steps=STEPS // EPOCH)), True),
}


def _sparse_jsgd(name, seed, hyper, override, *, jit=True, wrap=None, grads=None):
    """jsgd's trajectory on ``_sparse_problem(seed)``: ``wrap(tx)`` if given
    (a chain), ``grads`` instead of the problem's if given."""
    params, problem_grads = _sparse_problem(seed, name != "SparseAdam")
    grads = problem_grads if grads is None else grads
    groups = None if override is None else [{"params": "emb/b", **override}]
    spec, per_epoch = SPARSE_SCHEDULES.get(seed, (None, False))
    tx = getattr(jsgd.torch, name)(
        **hyper,
        param_groups=groups,
        scheduler=_jsgd_scheduler(spec),
        steps_per_epoch=EPOCH if per_epoch else None,
    )
    tx = tx if wrap is None else wrap(tx)

    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return jsgd.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step

    def leaf(path, g):
        if path.startswith("emb/"):
            indices, values = g
            return jsgd.IndexedSlices(jnp.asarray(values), jnp.asarray(indices), TABLE)
        return jnp.asarray(g)

    tree = jax.tree.map(jnp.asarray, _nest(params))
    state = tx.init(tree)
    trajectory = []
    for g in grads:
        if not isinstance(g, dict) or "emb" not in g:
            g = _nest({p: leaf(p, v) for p, v in g.items()})
        tree, state = step(tree, state, g)
        trajectory.append(_flat(_unnest(tree), sorted(params)))
    return params, np.stack(trajectory)


def _sparse_torch(name, seed, hyper, override, dense):
    torch = _golden.torch
    params, grads = _sparse_problem(seed, name != "SparseAdam")
    tensors = {p: torch.tensor(v, requires_grad=True) for p, v in params.items()}
    groups = [{"params": [t for p, t in tensors.items() if p != "emb/b"]}]
    if override is None:
        groups[0]["params"].append(tensors["emb/b"])
    else:
        groups.insert(0, {"params": [tensors["emb/b"]], **override})
    opt = getattr(torch.optim, name)(groups, **hyper)
    spec, per_epoch = SPARSE_SCHEDULES.get(seed, (None, False))
    trajectory = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's sparse invariant checks note
        sched = _torch_scheduler(opt, spec)
        for step, g in enumerate(grads):
            for p, t in tensors.items():
                if p.startswith("emb/"):
                    indices, values = g[p]
                    sparse = torch.sparse_coo_tensor(
                        torch.tensor(indices[None, :], dtype=torch.int64),
                        torch.tensor(values),
                        TABLE,
                    )
                    t.grad = sparse.to_dense() if dense else sparse
                else:
                    t.grad = torch.tensor(g[p])
            opt.step()
            if sched is not None and (not per_epoch or (step + 1) % EPOCH == 0):
                sched.step()
            trajectory.append(
                _flat(
                    {p: t.detach().numpy() for p, t in tensors.items()}, sorted(params)
                )
            )
    return np.stack(trajectory)


# Cases whose options another case takes too (SparseAdam 8 also runs, torch
# aside, in test_sparse_adam_moves_only_the_touched_rows) run under -m oracle.
SPARSE_ORACLE = {1, 5, 8}


@pytest.mark.parametrize(
    ("name", "seed", "hyper", "override", "dense"),
    [
        pytest.param(
            *c,
            id=f"{c[0]}-{c[1]}",
            marks=_oracle.oracle if c[1] in SPARSE_ORACLE else (),
        )
        for c in SPARSE_CASES
    ],
)
def test_sparse_gradients_match_torch(name, seed, hyper, override, dense):
    expected = golden(
        f"sparse/{name}-{seed}",
        lambda: _sparse_torch(name, seed, hyper, override, dense),
    )
    params, ours = _sparse_jsgd(name, seed, hyper, override)
    scale = max(1.0, float(np.max(np.abs(_flat(params, sorted(params))))))
    ratio = error_ratio(ours, expected, scale)
    assert ratio <= 1, f"{name} {hyper}: error {ratio:.3g} x the tolerance"


def test_sparse_adam_moves_only_the_touched_rows():
    """SparseAdam's row rule: a row no step's gradient touches never moves,
    and a row moves exactly at the steps that touch it."""
    name, seed, hyper, override, _ = SPARSE_CASES[8]
    params, ours = _sparse_jsgd(name, seed, hyper, override)
    _, grads = _sparse_problem(seed, False)
    before = np.concatenate([_flat(params, sorted(params))[None], ours])
    table = TABLE[0] * TABLE[1]
    for t, g in enumerate(grads):
        moved = before[t + 1, :table] != before[t, :table]  # emb/a, sorted first
        touched = np.zeros(TABLE, bool)
        touched[g["emb/a"][0]] = True
        np.testing.assert_array_equal(moved, touched.ravel())


# ------------------------------------------------------- the transform contract
#
# Each contract test keeps half of the optimizers in the default run
# (``_oracle.rotating``), so that between them every optimizer takes part; the
# other half run under -m oracle.


@functools.cache
def contract_seed(name: str) -> int:
    """A configuration with two groups or more, a scheduler and a complex leaf."""
    for seed in range(N_CONFIGS):
        c = config(name, seed)
        if len(c["groups"]) >= 2 and c["scheduler"] and "rot" in c["paths"]:
            return seed
    raise AssertionError(name)


def _sparse_batches(seed: int):
    """``_sparse_problem``'s gradients as IndexedSlices trees."""
    _, grads = _sparse_problem(seed, False)
    return [
        _nest(
            {
                p: jsgd.IndexedSlices(jnp.asarray(v), jnp.asarray(i), TABLE)
                for p, (i, v) in g.items()
            }
        )
        for g in grads
    ]


EAGER_STEPS = 2 * EPOCH


@pytest.mark.parametrize("name", _oracle.rotating(ALL_NAMES, share=2, salt=0))
def test_jit_equals_eager(name):
    """Up to XLA's fusion (an ulp or so): EAGER_STEPS steps, two epochs."""
    if name == "SparseAdam":
        case = SPARSE_CASES[9]
        grads = _sparse_batches(case[1])[:EAGER_STEPS]
        _, jitted = _sparse_jsgd(*case[:4], jit=True, grads=grads)
        _, eager = _sparse_jsgd(*case[:4], jit=False, grads=grads)
    else:
        c = config(name, contract_seed(name))
        params, grads = _problem(c)
        grads = grads[:EAGER_STEPS]
        jitted, eager = (
            np.stack(
                [
                    _flat(p, c["paths"])
                    for p in run_jsgd(jsgd_optimizer(name, c), params, grads, jit=j)
                ]
            )
            for j in (True, False)
        )
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)


TRACED_LRS = (0.1, 0.05, 0.2, 0.01, 0.07)
TRACED_KWARGS = {
    "SGD": dict(lr=0.1, momentum=0.9),
    "Adam": dict(lr=0.1, betas=(0.8, 0.99), amsgrad=True),
    "AdamW": dict(lr=0.1, weight_decay=0.1),
    "RMSprop": dict(lr=0.1, momentum=0.5, centered=True),
    "Adagrad": dict(lr=0.1, lr_decay=0.01),
    "SparseAdam": dict(lr=0.1, betas=(0.8, 0.99)),
}


def _traced_lr_torch(name: str) -> np.ndarray:
    torch = _golden.torch
    sparse = name == "SparseAdam"
    params, grads = _sparse_problem(3, False) if sparse else _problem(config(name, 0))
    paths = sorted(params)
    tensors = {p: torch.tensor(params[p], requires_grad=True) for p in paths}
    opt = getattr(torch.optim, name)(list(tensors.values()), **TRACED_KWARGS[name])
    trajectory = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lr, g in zip(TRACED_LRS, grads, strict=False):
            opt.param_groups[0]["lr"] = lr
            for p, t in tensors.items():
                if sparse:
                    indices, values = g[p]
                    t.grad = torch.sparse_coo_tensor(
                        torch.tensor(indices[None, :], dtype=torch.int64),
                        torch.tensor(values),
                        TABLE,
                    )
                else:
                    t.grad = torch.tensor(g[p])
            opt.step()
            trajectory.append(
                _flat({p: t.detach().numpy() for p, t in tensors.items()}, paths)
            )
    return np.stack(trajectory)


@pytest.mark.parametrize("name", _oracle.rotating(ALL_NAMES, share=2, salt=1))
def test_a_traced_lr_compiles_once_and_matches_torch(name):
    """``optax.inject_hyperparams``: the lr changed between steps, one compile,
    and torch's numbers with the lr changed in ``param_groups``."""
    expected = golden(f"traced-lr/{name}", lambda: _traced_lr_torch(name))
    sparse = name == "SparseAdam"
    if sparse:
        params, _ = _sparse_problem(3, False)
        grads = _sparse_batches(3)
    else:
        params, plain = _problem(config(name, 0))
        grads = [jax.tree.map(jnp.asarray, _nest(g)) for g in plain]
    paths = sorted(params)
    # float32 hyperparameters: optax would cast them to the params' highest
    # dtype, complex64 where a leaf is complex (SGD's tree), which jsgd refuses.
    tx = optax.inject_hyperparams(
        getattr(jsgd.torch, name), hyperparam_dtype=jnp.float32
    )(**TRACED_KWARGS[name])
    traces = []

    @jax.jit
    def step(tree, state, g):
        traces.append(1)
        updates, state = tx.update(g, state, tree)
        return jsgd.apply_updates(tree, updates), state

    tree = jax.tree.map(jnp.asarray, _nest(params))
    state = tx.init(tree)
    trajectory = []
    for lr, g in zip(TRACED_LRS, grads, strict=False):
        state.hyperparams["lr"] = jnp.asarray(lr, jnp.float32)
        tree, state = step(tree, state, g)
        trajectory.append(_flat(_unnest(tree), paths))
    assert len(traces) == 1
    scale = max(1.0, float(np.max(np.abs(_flat(params, paths)))))
    assert error_ratio(np.stack(trajectory), expected, scale) <= 1


def _clipped(grads, clip):
    return [clip.update(g, clip.init(None))[0] for g in grads]


@pytest.mark.parametrize("name", _oracle.rotating(ALL_NAMES, share=2, salt=0))
def test_inside_optax_chain(name):
    """``optax.chain(clip, tx)`` is ``tx`` on the clipped gradients."""
    if name == "SparseAdam":
        case = SPARSE_CASES[9]
        clip = jsgd.clip_by_global_norm(1.0)
        _, chained = _sparse_jsgd(*case[:4], wrap=lambda tx: optax.chain(clip, tx))
        grads = _clipped(_sparse_batches(case[1]), clip)
        _, alone = _sparse_jsgd(*case[:4], grads=grads)
    else:
        clip = optax.clip_by_global_norm(1.0)
        c = config(name, contract_seed(name))
        c = {**c, "paths": list(SHAPES)}  # optax's global norm is for real leaves
        params, grads = _problem(c)
        tx = jsgd_optimizer(name, c)
        chained = run_jsgd(optax.chain(clip, tx), params, grads)
        clipped = _clipped([jax.tree.map(jnp.asarray, g) for g in grads], clip)
        alone = run_jsgd(tx, params, clipped)
        chained, alone = (
            np.stack([_flat(p, c["paths"]) for p in t]) for t in (chained, alone)
        )
    np.testing.assert_allclose(chained, alone, rtol=1e-6, atol=1e-7)


NNX_GROUPS = [{"params": "bias", "lr": 0.02, "weight_decay": 0.0}]


@pytest.mark.parametrize("name", NAMES)
def test_flax_nnx_optimizer_equals_the_plain_loop(name):
    """Under ``flax.nnx.Optimizer`` (a Linear layer, a group for its bias
    by regex, a callable one for its kernel, a scheduler per epoch) the
    parameters are those of the plain ``tx.update`` loop on a dict."""
    from flax import nnx

    def make():
        groups = [
            *NNX_GROUPS,
            {"params": lambda path, leaf: jnp.ndim(leaf) == 2, "maximize": False},
        ]
        return getattr(jsgd.torch, name)(
            lr=0.01,
            param_groups=groups,
            scheduler=lr_scheduler.StepLR(step_size=1, gamma=0.5),
            steps_per_epoch=2,
        )

    x = jnp.asarray(np.random.default_rng(5).standard_normal((4, 3)), jnp.float32)
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    params = {"bias": model.bias[...], "kernel": model.kernel[...]}
    optimizer = nnx.Optimizer(model, make(), wrt=nnx.Param)

    def loss(p):
        return jnp.sum((x @ p["kernel"] + p["bias"]) ** 2)

    tx = make()
    state = tx.init(params)
    for _ in range(5):
        grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
        optimizer.update(model, grads)
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        np.testing.assert_allclose(model.kernel[...], params["kernel"], rtol=1e-6)
        np.testing.assert_allclose(model.bias[...], params["bias"], rtol=1e-6)
    assert not np.allclose(
        params["kernel"], nnx.Linear(3, 2, rngs=nnx.Rngs(0)).kernel[...]
    )


def test_adagrad_takes_sparse_gradients_under_inject_hyperparams():
    """inject_hyperparams traces the default weight_decay 0: sparse gradients
    are still taken (made dense: torch's result at 0)."""
    name, seed, hyper, override, dense = SPARSE_CASES[5]
    expected = golden(
        f"sparse/{name}-{seed}",
        lambda: _sparse_torch(name, seed, hyper, override, dense),
    )
    tx = optax.inject_hyperparams(jsgd.torch.Adagrad)(**hyper)
    params, _ = _sparse_problem(seed, True)
    _, plain = _sparse_problem(seed, True)
    tree = jax.tree.map(jnp.asarray, _nest(params))
    state = tx.init(tree)
    trajectory = []
    for g in plain:
        leaves = {
            p: jsgd.IndexedSlices(jnp.asarray(v[1]), jnp.asarray(v[0]), TABLE)
            if p.startswith("emb/")
            else jnp.asarray(v)
            for p, v in g.items()
        }
        updates, state = tx.update(_nest(leaves), state, tree)
        tree = jsgd.apply_updates(tree, updates)
        trajectory.append(_flat(_unnest(tree), sorted(params)))
    scale = max(1.0, float(np.max(np.abs(_flat(params, sorted(params))))))
    assert error_ratio(np.stack(trajectory), expected, scale) <= 1


# --- ReduceLROnPlateau, driven by the metric passed as `value=` --------------

PLATEAU_METRICS = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.55, 0.56, 0.6, 0.61]


def _torch_plateau():
    torch = _golden.torch
    w = torch.tensor([0.5, -1.5, 2.0], requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=0.5, patience=1, cooldown=1, min_lr=0.01
    )
    params, lrs = [], []
    for metric in PLATEAU_METRICS:
        for _ in range(2):  # two steps per epoch, the metric after the epoch
            w.grad = w.detach().clone()
            opt.step()
            params.append(w.detach().numpy().copy())
        sched.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    return {"params": np.array(params), "lrs": np.array(lrs)}


def test_reduce_lr_on_plateau_reads_the_value_passed_to_update():
    expected = golden("ReduceLROnPlateau/SGD", _torch_plateau)
    plateau = lr_scheduler.ReduceLROnPlateau(
        mode="min", factor=0.5, patience=1, cooldown=1, min_lr=0.01
    )
    tx = jsgd.torch.SGD(0.1, momentum=0.9, scheduler=plateau, steps_per_epoch=2)
    w = jnp.array([0.5, -1.5, 2.0])
    state = tx.init(w)
    step = jax.jit(tx.update)
    params, lrs = [], []
    for metric in PLATEAU_METRICS:
        for _ in range(2):  # the metric counts only where an epoch ends
            updates, state = step(w, state, w, value=jnp.float32(metric))
            w = optax.apply_updates(w, updates)
            params.append(np.asarray(w))
        lrs.append(float(state.scheduler.values["lr"][0]))
    np.testing.assert_allclose(lrs, expected["lrs"], rtol=1e-6)
    np.testing.assert_allclose(params, expected["params"], rtol=2e-6, atol=1e-7)
    assert lrs[-1] < lrs[0]  # the plateau was detected
