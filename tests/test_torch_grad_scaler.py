"""jsgd's GradScaler against torch.amp.GradScaler("cpu") (torch 2.13).

Loops: torch's AMP loop (``scaler.scale(loss).backward()``, optionally
``scaler.unscale_(opt)`` and ``clip_grad_norm_``, ``scaler.step(opt)``,
``scaler.update()``, ``sched.step()``) against jsgd's ``scaler.wrap(tx)``
stepped under ``jit`` with ``jax.grad(lambda p: loss(p) * scale)``, for
``STEPS`` steps with infs and NaNs written into the gradients (one leaf,
another, several steps in a row, several leaves at once), ``growth_interval``
small so that the scale grows too. Compared after every step: the scale
(bit for bit), the growth tracker, the Adam/SGD step count, the learning
rate, and the parameters (float32 tolerance, both sides' autograd rounding
differently).

The rule itself, bit for bit: the new scale (torch's ``_amp_update_scale_``,
a float32 times a Python double, rounded from double) for random float32
scales (subnormals included) and factors, among them ones where rounding
twice (to double, then to float32) differs from rounding once; and the
unscaled gradients (``_amp_foreach_non_finite_check_and_unscale_`` with
``inv_scale = float(1 / double(scale))``), float32 and bfloat16, for scales up
to float32's largest (a subnormal ``inv_scale``).

torch's numbers come live or from ``tests/golden/test_torch_grad_scaler.npz``
(tests/_golden.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import warnings
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
import jsgd.torch
from jsgd._optimizers.torch_family import OptimizerState
from jsgd._optimizers.torch_grad_scaler import GradScaler, GradScalerState
from jsgd.torch import lr_scheduler
from tests import _golden
from tests._golden import Golden

golden = Golden(__name__)

STEPS = 40
# Parameters: both sides compute in float32, torch's autograd and XLA's
# jax.grad rounding the gradient differently (an ulp) and the optimizers'
# fused arithmetic too. Measured worst |jsgd - torch| / (ATOL + RTOL *
# |torch|) over the cases: 0.38 (sgd_exponential; largest difference 9e-8).
RTOL = 2e-6
ATOL = 2e-7
LR_RTOL = 1e-6  # torch's lr is a Python double, jsgd's float32

SHAPES = {"b": (2,), "s": (), "w": (3, 2)}

# Two (scale, factor) pairs where torch's float(double(x) * f) differs from
# the float32 nearest the exact product (rounding twice, to double then to
# float32, is not rounding once): found by construction.
DOUBLE_ROUNDING = (
    (1.2687283754348755, 1.7753423537741013),
    (1.7624083757400513, 1.6264093722514912),
)


def _rounded_once(x: np.float32, f: float) -> np.float32:
    """The float32 nearest to the exact product x * f (ties to even; normal range)."""
    exact = Fraction(float(x)) * Fraction(f)
    _, exponent = math.frexp(float(exact))
    ulp = Fraction(2) ** (exponent - 24)
    units = exact / ulp
    down = math.floor(units)
    rest = units - down
    up = rest > Fraction(1, 2) or (rest == Fraction(1, 2) and down % 2 == 1)
    return np.float32(float((down + up) * ulp))


@dataclasses.dataclass(frozen=True)
class Case:
    optimizer: str  # "Adam" or "SGD"
    scheduler: tuple[str, dict[str, Any]]
    scaler: dict[str, Any]
    injections: dict[int, tuple[tuple[str, tuple[int, ...], float], ...]]
    lr: float = 0.05
    clip: float | None = None
    steps_per_epoch: int | None = None
    curvature: float = 0.5  # the loss's coefficients are in (0, curvature]


_INF, _NAN = float("inf"), float("nan")

CASES = {
    # Adam + StepLR, torch's default factors: inf in w, NaN in b three steps in
    # a row, both at once, then a late inf.
    "adam_steplr": Case(
        "Adam",
        ("StepLR", dict(step_size=5, gamma=0.5)),
        dict(init_scale=2.0**16, growth_interval=3),
        {
            4: (("w", (1, 0), _INF),),
            10: (("b", (0,), _NAN),),
            11: (("b", (1,), _NAN),),
            12: (("b", (0,), _NAN),),
            20: (("w", (0, 1), -_INF), ("b", (1,), _NAN)),
            33: (("s", (), _INF),),
        },
    ),
    # SGD with momentum + ExponentialLR, factors float32 would round
    # differently (0.3: about half the backoffs).
    "sgd_exponential": Case(
        "SGD",
        ("ExponentialLR", dict(gamma=0.95)),
        dict(
            init_scale=1000.0, growth_factor=1.5, backoff_factor=0.3, growth_interval=3
        ),
        {
            2: (("s", (), _NAN),),
            7: (("w", (2, 1), _INF),),
            8: (("w", (0, 0), _INF),),
            9: (("b", (0,), -_INF),),
            25: (("w", (1, 1), _NAN),),
        },
        lr=0.1,
    ),
    # Adam stepped after clip_grad_norm (torch: unscale_, clip, step), the
    # scheduler per epoch of 4 steps, a growth factor whose first growth
    # rounds twice differently.
    "adam_clip_per_epoch": Case(
        "Adam",
        ("StepLR", dict(step_size=2, gamma=0.7)),
        dict(
            init_scale=DOUBLE_ROUNDING[0][0] * 2.0**10,
            growth_factor=DOUBLE_ROUNDING[0][1],
            backoff_factor=0.6,
            growth_interval=3,
        ),
        {
            5: (("w", (0, 0), _NAN),),
            6: (("b", (1,), _INF),),
            17: (("s", (), -_INF),),
            30: (("w", (2, 0), _INF), ("s", (), _NAN)),
        },
        lr=0.03,
        clip=0.5,
        steps_per_epoch=4,
    ),
    # Near float32's largest: grows every step up to 2**127 (a subnormal
    # inv_scale) and no further (2**128 would be inf).
    "sgd_near_max": Case(
        "SGD",
        ("StepLR", dict(step_size=10, gamma=0.5)),
        dict(init_scale=2.0**125, growth_interval=1),
        {8: (("w", (0, 0), _INF),), 15: (("b", (0,), _NAN),)},
        lr=0.2,
        curvature=0.05,
    ),
}


def _problem(case: Case) -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(20_26)
    params = {k: rng.uniform(-1, 1, s).astype(np.float32) for k, s in SHAPES.items()}
    targets = {
        k: rng.uniform(-0.5, 0.5, s).astype(np.float32) for k, s in SHAPES.items()
    }
    coefs = {
        k: (case.curvature * rng.uniform(0.2, 1, s)).astype(np.float32)
        for k, s in SHAPES.items()
    }
    return params, targets, coefs


# ------------------------------------------------------------------ torch side


def _torch_loop(name: str) -> dict[str, np.ndarray]:
    torch = _golden.torch
    case = CASES[name]
    params, targets, coefs = _problem(case)
    ps = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
    ts = {k: torch.tensor(v) for k, v in targets.items()}
    cs = {k: torch.tensor(v) for k, v in coefs.items()}
    plist = [ps[k] for k in SHAPES]
    if case.optimizer == "Adam":
        opt = torch.optim.Adam(plist, lr=case.lr)
    else:
        opt = torch.optim.SGD(plist, lr=case.lr, momentum=0.9)
    kind, kwargs = case.scheduler
    sched = getattr(torch.optim.lr_scheduler, kind)(opt, **kwargs)
    scaler = torch.amp.GradScaler("cpu", **case.scaler)
    out: dict[str, list] = {
        k: [] for k in ("params", "scale", "tracker", "found_inf", "lr", "count")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lr_scheduler.step() before optimizer.step()
        for i in range(STEPS):
            opt.zero_grad()
            loss = sum((cs[k] * (ps[k] - ts[k]) ** 2).sum() for k in SHAPES)
            scaler.scale(loss).backward()
            for leaf, index, value in case.injections.get(i, ()):
                ps[leaf].grad[index] = value
            if case.clip is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(plist, case.clip)
            scaler.step(opt)
            found = bool(
                sum(
                    v.item()
                    for v in scaler._per_optimizer_states[id(opt)][
                        "found_inf_per_device"
                    ].values()
                )
            )
            scaler.update()
            if case.steps_per_epoch is None or (i + 1) % case.steps_per_epoch == 0:
                sched.step()
            out["params"].append(
                np.concatenate([ps[k].detach().numpy().ravel() for k in SHAPES])
            )
            out["scale"].append(np.float32(scaler.get_scale()))
            out["tracker"].append(scaler._get_growth_tracker())
            out["found_inf"].append(found)
            out["lr"].append(opt.param_groups[0]["lr"])
            state = opt.state[plist[0]]
            if case.optimizer == "Adam":
                out["count"].append(float(state["step"]) if "step" in state else 0.0)
            else:  # torch's SGD keeps no count: the number of steps taken
                taken = (out["count"][-1] if out["count"] else 0.0) + (not found)
                out["count"].append(taken)
    return {
        "params": np.stack(out["params"]),
        "scale": np.asarray(out["scale"], np.float32),
        "tracker": np.asarray(out["tracker"], np.int32),
        "found_inf": np.asarray(out["found_inf"], bool),
        "lr": np.asarray(out["lr"], np.float64),
        "count": np.asarray(out["count"], np.float64),
    }


# ------------------------------------------------------------------- jsgd side


def _inner(case: Case) -> optax.GradientTransformation:
    kind, kwargs = case.scheduler
    scheduler = getattr(lr_scheduler, kind)(**kwargs)
    options = dict(
        lr=case.lr, scheduler=scheduler, steps_per_epoch=case.steps_per_epoch
    )
    if case.optimizer == "Adam":
        tx = jsgd.torch.Adam(**options)
    else:
        tx = jsgd.torch.SGD(momentum=0.9, **options)
    if case.clip is not None:
        tx = optax.chain(jsgd.torch.clip_grad_norm(case.clip), tx)
    return tx


def _injections(case: Case) -> list[tuple[dict, dict]]:
    """Per step: a mask and a value per leaf (where the mask is set)."""
    steps = []
    for i in range(STEPS):
        masks = {k: np.zeros(s, bool) for k, s in SHAPES.items()}
        values = {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}
        for leaf, index, value in case.injections.get(i, ()):
            masks[leaf][index] = True
            values[leaf][index] = value
        steps.append((masks, values))
    return steps


def _count(state: Any) -> jax.Array:
    """The step count of the optimizer's moments (AdamState / MomentumState)."""
    counts = [
        x.count
        for x in jax.tree.leaves(
            state, is_leaf=lambda x: hasattr(x, "_fields") and "count" in x._fields
        )
        if hasattr(x, "_fields") and "count" in x._fields
    ]
    assert len(counts) == 1, counts
    return counts[0]


def _optimizer_state(state: Any) -> OptimizerState:
    found = [
        x
        for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, OptimizerState))
        if isinstance(x, OptimizerState)
    ]
    assert len(found) == 1
    return found[0]


def _jsgd_loop(
    name: str, *, jit: bool = True, steps: int = STEPS
) -> dict[str, np.ndarray]:
    case = CASES[name]
    params, targets, coefs = _problem(case)
    params = {k: jnp.asarray(v) for k, v in params.items()}
    scaler = GradScaler(**case.scaler)
    tx = scaler.wrap(_inner(case))
    state = tx.init(params)

    def loss(p):
        return sum(jnp.sum(coefs[k] * (p[k] - targets[k]) ** 2) for k in SHAPES)

    def step(params, state, masks, values):
        scale = GradScaler.scale_of(state)
        grads = jax.grad(lambda p: loss(p) * scale)(params)
        grads = {k: jnp.where(masks[k], values[k], g) for k, g in grads.items()}
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    if jit:
        step = jax.jit(step)
    out: dict[str, list] = {
        k: [] for k in ("params", "scale", "tracker", "found_inf", "lr", "count")
    }
    for i, (masks, values) in enumerate(_injections(case)[:steps]):
        params, state = step(params, state, masks, values)
        opt_state = _optimizer_state(state)
        assert int(opt_state.step) == i + 1  # every update call counts
        out["params"].append(np.concatenate([np.ravel(params[k]) for k in SHAPES]))
        out["scale"].append(np.asarray(state.scale))
        out["tracker"].append(np.asarray(state.growth_tracker))
        out["found_inf"].append(np.asarray(state.found_inf))
        assert opt_state.scheduler is not None
        out["lr"].append(np.asarray(opt_state.scheduler.values["lr"][0]))
        out["count"].append(np.asarray(_count(state)))
    return {k: np.stack(v) for k, v in out.items()}


@functools.cache
def _torch_reference(name: str) -> dict[str, np.ndarray]:
    return golden(f"loop/{name}", lambda: _torch_loop(name))


@pytest.mark.parametrize("name", list(CASES))
def test_loop_matches_torch(name):
    want = _torch_reference(name)
    got = _jsgd_loop(name)
    np.testing.assert_array_equal(got["found_inf"], want["found_inf"])
    assert got["found_inf"].any() and not got["found_inf"].all()
    np.testing.assert_array_equal(
        got["scale"].view(np.uint32), want["scale"].astype(np.float32).view(np.uint32)
    )
    assert len(np.unique(got["scale"])) >= 2  # it grew and backed off
    np.testing.assert_array_equal(got["tracker"], want["tracker"])
    np.testing.assert_array_equal(got["count"], want["count"])
    np.testing.assert_allclose(got["lr"], want["lr"], rtol=LR_RTOL)
    np.testing.assert_allclose(got["params"], want["params"], rtol=RTOL, atol=ATOL)
    # A skipped step changes no parameter.
    skipped = np.flatnonzero(got["found_inf"])
    for i in skipped[skipped > 0]:
        np.testing.assert_array_equal(got["params"][i], got["params"][i - 1])


def test_near_max_reaches_a_subnormal_inv_scale():
    """The near-max case does reach 2**127 (torch's inv_scale is subnormal)."""
    want = _torch_reference("sgd_near_max")
    assert (want["scale"] == np.float32(2.0**127)).sum() >= 5
    assert np.isfinite(want["scale"]).all()


def test_double_rounding_case_reaches_the_first_growth():
    """The first growth of adam_clip_per_epoch is the double-rounded product."""
    x, f = DOUBLE_ROUNDING[0]
    want = _torch_reference("adam_clip_per_epoch")
    scale = np.float32(x * 2.0**10)
    assert _rounded_once(scale, f) != np.float32(float(scale) * f)
    assert want["scale"][2] == np.float32(float(scale) * f)  # torch's: twice


def test_jit_equals_eager():
    eager = _jsgd_loop("adam_clip_per_epoch", jit=False, steps=8)  # skips at 5, 6
    jitted = _jsgd_loop("adam_clip_per_epoch", steps=8)
    assert eager["found_inf"].sum() == 2
    for key in eager:
        np.testing.assert_allclose(eager[key], jitted[key], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(eager["scale"], jitted["scale"])


# ------------------------------------------------------------ the rule itself


def _scales() -> np.ndarray:
    rng = np.random.default_rng(7)
    random_bits = rng.integers(1, 0x7F800000, 400, dtype=np.int64).astype(np.uint32)
    special = np.array(
        [
            2.0**16,
            1.0,
            3.0,
            2.0**-149,
            2.0**-126,
            2.0**126,
            2.0**127,
            np.finfo(np.float32).max,
            *[x for x, _ in DOUBLE_ROUNDING],
        ],
        np.float32,
    )
    return np.concatenate([random_bits.view(np.float32), special])


GROWTH_FACTORS = (
    2.0,
    1.1,
    1.0001,
    3.7,
    1e10,
    float("inf"),
    *[f for _, f in DOUBLE_ROUNDING],
)
BACKOFF_FACTORS = (
    0.5,
    0.3,
    0.1,
    0.9999999999,
    1e-5,
    1e-300,
    *[f / 2 for _, f in DOUBLE_ROUNDING],
)


def _torch_update_scale(scales, factor, found_inf):
    torch = _golden.torch
    out = []
    for x in scales:
        scale = torch.tensor(x, dtype=torch.float32)
        tracker = torch.zeros((), dtype=torch.int32)
        found = torch.tensor(1.0 if found_inf else 0.0)
        torch._amp_update_scale_(scale, tracker, found, factor, factor, 1)
        out.append(scale.item())
    return np.asarray(out, np.float32)


def test_scale_update_matches_torch_bit_for_bit():
    from jsgd._optimizers.torch_grad_scaler import _update_scale

    scales = _scales()
    update = jax.jit(
        jax.vmap(_update_scale, (0, None, None, None, None, None)),
        static_argnums=(3, 4, 5),
    )
    tracker = jnp.zeros([], jnp.int32)
    for i, factor in enumerate(GROWTH_FACTORS):
        want = golden(
            f"grow/{i}", lambda f=factor: _torch_update_scale(scales, f, False)
        )
        got, new_tracker = update(scales, tracker, jnp.bool_(False), factor, 0.5, 1)
        np.testing.assert_array_equal(
            np.asarray(got).view(np.uint32), want.view(np.uint32), err_msg=f"{factor}"
        )
        assert (np.asarray(new_tracker) == 0).all()
    for i, factor in enumerate(BACKOFF_FACTORS):
        want = golden(
            f"backoff/{i}", lambda f=factor: _torch_update_scale(scales, f, True)
        )
        got, _ = update(scales, tracker, jnp.bool_(True), 2.0, factor, 1)
        np.testing.assert_array_equal(
            np.asarray(got).view(np.uint32), want.view(np.uint32), err_msg=f"{factor}"
        )
    # The double-rounding pairs: rounding the exact product once is not torch's.
    for x, f in DOUBLE_ROUNDING:
        assert _rounded_once(np.float32(x), f) != np.float32(float(np.float32(x)) * f)


def _torch_unscale(grads: np.ndarray, scale: float, dtype: str):
    torch = _golden.torch
    s = torch.tensor(scale, dtype=torch.float32)
    inv = s.double().reciprocal().float()  # GradScaler.unscale_'s
    g = torch.tensor(grads).to(getattr(torch, dtype))
    found = torch.zeros(())
    torch._amp_foreach_non_finite_check_and_unscale_([g], found, inv)
    return {"grads": g.float().numpy(), "found": np.float32(found.item())}


UNSCALE_SCALES = (
    2.0**16,
    3.0,
    0.3,
    1e-30,
    1.5 * 2.0**126,
    2.0**127,
    float(np.finfo(np.float32).max),
)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_unscale_matches_torch_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    grads = (rng.standard_normal(500) * 2.0 ** rng.integers(-20, 100, 500)).astype(
        np.float32
    )
    tiny = np.finfo(np.float32).tiny
    g = jnp.asarray(grads).astype(dtype)
    tx = GradScaler().wrap(optax.identity())
    update = jax.jit(tx.update)
    for i, scale in enumerate(UNSCALE_SCALES):
        want = golden(
            f"unscale/{dtype}/{i}", lambda s=scale: _torch_unscale(grads, s, dtype)
        )
        assert want["found"] == 0
        state = tx.init(g)._replace(scale=jnp.float32(scale))
        got, state = update(g, state)
        assert got.dtype == jnp.dtype(dtype)
        got = np.asarray(got.astype(jnp.float32))
        # XLA flushes subnormal results to 0; torch keeps them.
        representable = (np.abs(want["grads"]) >= tiny) | (want["grads"] == 0)
        assert representable.mean() > 0.5
        np.testing.assert_array_equal(
            got[representable].view(np.uint32),
            want["grads"][representable].view(np.uint32),
            err_msg=f"scale={scale}",
        )
        np.testing.assert_array_equal(got[~representable], 0.0)
        assert not bool(state.found_inf)


def _torch_backoffs(factor: float, steps: int) -> np.ndarray:
    torch = _golden.torch
    scale = torch.full((), 2.0**16, dtype=torch.float32)
    tracker = torch.zeros((), dtype=torch.int32)
    out = []
    for _ in range(steps):
        torch._amp_update_scale_(scale, tracker, torch.ones(()), 2.0, factor, 5)
        out.append(scale.item())
    return np.asarray(out, np.float32)


@pytest.mark.parametrize("factor", [0.5, 0.3])
def test_backoff_to_subnormal_and_zero_matches_torch(factor):
    """Every step overflowing: the scale falls through subnormals to 0, as torch's."""
    steps = 300 if factor == 0.5 else 120
    want = golden(f"backoffs/{factor}", lambda: _torch_backoffs(factor, steps))
    tx = GradScaler(backoff_factor=factor, growth_interval=5).wrap(optax.sgd(0.1))
    params = jnp.zeros(2)
    state = tx.init(params)
    update = jax.jit(tx.update)
    got = []
    for _ in range(steps):
        _, state = update(jnp.array([jnp.inf, 1.0]), state, params)
        got.append(np.asarray(state.scale))
    got = np.asarray(got)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert (
        want[-1] == 0 and (want > 0).any() and (want < np.finfo(np.float32).tiny).any()
    )


# ------------------------------------------------------------ skipping a step


def _tree_equal(a: Any, b: Any) -> bool:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb, strict=True)
    )


def test_optax_adam_skip_keeps_its_whole_state():
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
    tx = GradScaler(init_scale=8.0, growth_interval=2).wrap(optax.adam(0.1))
    state = tx.init(params)
    update = jax.jit(tx.update)
    finite = {"a": jnp.array([8.0, 4.0]), "b": jnp.array(-2.0)}
    updates, state = update(finite, state, params)
    assert not bool(state.found_inf)
    np.testing.assert_allclose(
        updates["a"],
        optax.adam(0.1).update(
            jax.tree.map(lambda g: g / 8, finite), optax.adam(0.1).init(params)
        )[0]["a"],
    )
    before = state
    for bad in (
        {"a": jnp.array([jnp.nan, 1.0]), "b": jnp.array(1.0)},
        {"a": jnp.array([1.0, 1.0]), "b": jnp.array(-jnp.inf)},
    ):
        updates, state = update(bad, state, params)
        assert bool(state.found_inf)
        assert all(np.all(np.asarray(u) == 0) for u in jax.tree.leaves(updates))
        assert _tree_equal(state.inner_state, before.inner_state)
        assert int(state.growth_tracker) == 0
    assert float(state.scale) == 2.0  # 8 -> 4 -> 2
    assert int(before.inner_state[0].count) == 1


def test_chain_skip_advances_step_and_scheduler_keeps_groups():
    """The scheduler rule, checked by hand through optax.chain."""
    params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(0.0)}
    inner = optax.chain(
        jsgd.torch.clip_grad_norm(1.0),
        jsgd.torch.SGD(lr=0.1, momentum=0.9, scheduler=lr_scheduler.StepLR(1, 0.5)),
    )
    tx = GradScaler(init_scale=4.0).wrap(inner)
    state = tx.init(params)
    grads = {"w": jnp.array([4.0, -4.0]), "b": jnp.array(2.0)}
    _, state = tx.update(grads, state, params)
    old = state.inner_state
    bad = {"w": jnp.array([jnp.inf, 1.0]), "b": jnp.array(1.0)}
    updates, state = jax.jit(tx.update)(bad, state, params)
    new = state.inner_state
    assert bool(state.found_inf) and float(state.scale) == 2.0
    assert all(np.all(np.asarray(u) == 0) for u in jax.tree.leaves(updates))
    old_opt, new_opt = old[1], new[1]
    assert isinstance(new_opt, OptimizerState)
    assert int(new_opt.step) == int(old_opt.step) + 1 == 2
    assert new_opt.scheduler is not None and old_opt.scheduler is not None
    assert int(new_opt.scheduler.last_epoch) == int(old_opt.scheduler.last_epoch) + 1
    np.testing.assert_allclose(
        new_opt.scheduler.values["lr"], old_opt.scheduler.values["lr"] * 0.5
    )
    assert _tree_equal(new_opt.groups, old_opt.groups)  # momentum buffer, count
    assert _tree_equal(new[0], old[0])  # the clip's total_norm: the old one
    # A finite step after the skip uses the advanced lr and the old buffer.
    good = {"w": jnp.array([2.0, 0.0]), "b": jnp.array(0.0)}
    _, after = tx.update(good, state, params)
    assert int(_count(after.inner_state)) == 2


def test_reduce_lr_on_plateau_gets_its_value_through_the_wrapper():
    params = jnp.ones(2)
    sched = lr_scheduler.ReduceLROnPlateau(patience=0, factor=0.5)
    tx = GradScaler().wrap(jsgd.torch.SGD(lr=1.0, scheduler=sched))
    state = tx.init(params)
    for metric in (1.0, 2.0):  # no improvement at the second: lr halves
        _, state = tx.update(jnp.array([jnp.nan, 0.0]), state, params, value=metric)
    opt_state = _optimizer_state(state)
    assert opt_state.scheduler is not None
    np.testing.assert_allclose(opt_state.scheduler.values["lr"], [0.5])


def test_indexed_slices_and_none_leaves():
    table = jnp.arange(12.0).reshape(4, 3)
    params = {"table": table, "frozen": jnp.ones(2)}
    scale = 16.0
    values = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]) * scale
    sparse = jsgd.IndexedSlices(
        values=values, indices=jnp.array([2, 0, 2]), dense_shape=(4, 3)
    )

    def run(grad_table):
        tx = GradScaler(init_scale=scale).wrap(jsgd.torch.SGD(lr=0.1))
        state = tx.init(params)
        updates, state = jax.jit(tx.update)(
            {"table": grad_table, "frozen": None}, state, params
        )
        return updates, state, tx

    updates, state, tx = run(sparse)
    dense_updates, _, _ = run(sparse.to_dense())
    assert updates["frozen"] is None
    assert isinstance(updates["table"], jsgd.IndexedSlices)
    np.testing.assert_allclose(
        updates["table"].to_dense(), dense_updates["table"], rtol=1e-6
    )
    # Non-finite values: zero updates, the same indices.
    bad = sparse.replace_values(sparse.values.at[1, 2].set(jnp.inf))
    updates, state2 = jax.jit(tx.update)({"table": bad, "frozen": None}, state, params)
    assert bool(state2.found_inf) and updates["frozen"] is None
    assert isinstance(updates["table"], jsgd.IndexedSlices)
    np.testing.assert_array_equal(updates["table"].values, 0.0)
    # A padding row (index 4 = dense_shape[0]) counts in no check.
    padded = jsgd.IndexedSlices(
        values=values.at[1].set(jnp.nan),
        indices=jnp.array([2, 4, 2]),
        dense_shape=(4, 3),
    )
    _, state3 = jax.jit(tx.update)({"table": padded, "frozen": None}, state, params)
    assert not bool(state3.found_inf)


def test_unscaled_gradients_reach_the_inner_transformation():
    grads = {"a": jnp.array([3.0, -6.0]), "b": None, "c": jnp.array(1.5, jnp.bfloat16)}
    tx = GradScaler(init_scale=3.0).wrap(optax.identity())
    state = tx.init(grads)
    out, state = tx.update(grads, state)
    np.testing.assert_array_equal(out["a"], np.float32([3.0, -6.0]) * np.float32(1 / 3))
    assert out["b"] is None and out["c"].dtype == jnp.bfloat16
    assert float(out["c"]) == 0.5


# ------------------------------------------------------------------ disabled


def test_disabled_is_a_pass_through():
    want = golden(
        "disabled/get_scale",
        lambda: np.float64(
            _golden.torch.amp.GradScaler("cpu", enabled=False).get_scale()
        ),
    )
    params = {"w": jnp.array([1.0, 2.0])}
    scaler = GradScaler(enabled=False, growth_factor=0.5)  # not checked, as torch
    inner = jsgd.torch.Adam(lr=0.1)
    tx = scaler.wrap(inner)
    state, inner_state = tx.init(params), inner.init(params)
    assert scaler.get_scale(state) == float(want) == 1.0
    assert float(GradScaler.scale_of(state)) == 1.0
    loss = jnp.float32(3.0)
    assert scaler.scale(loss, state) is loss
    for grads in ({"w": jnp.array([0.5, -1.0])}, {"w": jnp.array([jnp.nan, 1.0])}):
        updates, state = tx.update(grads, state, params)
        want_updates, inner_state = inner.update(grads, inner_state, params)
        assert _tree_equal(updates, want_updates)  # NaNs too: no skipping
        assert _tree_equal(state.inner_state, inner_state)
        assert float(state.scale) == 1.0 and not bool(state.found_inf)
    # float16 gradients pass too (nothing is unscaled).
    f16 = {"w": jnp.ones(2, jnp.float16)}
    identity = GradScaler(enabled=False).wrap(optax.identity())
    out, _ = identity.update(f16, identity.init(f16))
    assert out["w"].dtype == jnp.float16


# ------------------------------------------------------------------ the API


def test_scale_of_state_of_get_scale_and_scale():
    scaler = GradScaler(init_scale=2.0**10)
    tx = optax.chain(optax.identity(), scaler.wrap(optax.sgd(0.1)))
    state = tx.init(jnp.ones(2))
    assert float(GradScaler.scale_of(state)) == 1024.0
    assert isinstance(GradScaler.state_of(state), GradScalerState)
    assert scaler.get_scale(state) == 1024.0
    assert GradScaler.scale_of(state).dtype == jnp.float32
    np.testing.assert_array_equal(
        scaler.scale({"l": jnp.float32(2.0)}, state)["l"], 2048.0
    )
    assert jax.jit(GradScaler.scale_of)(state) == 1024.0
    with pytest.raises(ValueError, match="found 0"):
        GradScaler.scale_of(optax.sgd(0.1).init(jnp.ones(2)))
    with pytest.raises(ValueError, match="found 2"):
        GradScaler.scale_of((state, state))
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor()) == (2.0, 0.5)
    assert scaler.get_growth_interval() == 2000 and scaler.is_enabled()
    inner = tx.init(jnp.ones(2))[1]
    assert (
        inner.growth_tracker.dtype == jnp.int32 and inner.found_inf.dtype == jnp.bool_
    )


def test_wrong_state_and_inner():
    tx = GradScaler().wrap(optax.sgd(0.1))
    with pytest.raises(TypeError, match=r"jsgd\.torch\.GradScaler got a state of type"):
        tx.update(jnp.ones(2), optax.sgd(0.1).init(jnp.ones(2)))
    with pytest.raises(TypeError, match="takes an optax transformation"):
        GradScaler().wrap(lambda g: g)  # type: ignore[arg-type]


def test_float16_gradients_are_refused_as_by_torch():
    want = "Attempting to unscale FP16 gradients."
    tx = GradScaler().wrap(optax.identity())
    grads = {"h": jnp.ones(2, jnp.float16)}
    with pytest.raises(ValueError, match=re.escape(want) + r".*\['h'\]"):
        tx.update(grads, tx.init(grads))
    if _golden.LIVE:
        torch = _golden.torch
        p = torch.nn.Parameter(torch.ones(2, dtype=torch.float16))
        opt = torch.optim.SGD([p], lr=0.1)
        scaler = torch.amp.GradScaler("cpu")
        scaler.scale(p.sum()).backward()
        with pytest.raises(ValueError, match=re.escape(want)):
            scaler.step(opt)


BAD_ARGUMENTS = [
    (dict(growth_factor=1.0), ValueError, "The growth factor must be > 1.0."),
    (dict(growth_factor=0.5), ValueError, "The growth factor must be > 1.0."),
    (dict(growth_factor=float("nan")), ValueError, "The growth factor must be > 1.0."),
    (dict(backoff_factor=1.0), ValueError, "The backoff factor must be < 1.0."),
    (
        dict(backoff_factor=float("nan")),
        ValueError,
        "The backoff factor must be < 1.0.",
    ),
    (
        dict(backoff_factor=0.0),
        ValueError,
        "`backoff_factor` must be > 0. Received: backoff_factor=0.0",
    ),
    (dict(backoff_factor=-0.5), ValueError, "`backoff_factor` must be > 0."),
    (
        dict(growth_interval=0),
        ValueError,
        "`growth_interval` must be an integer >= 1. Received: growth_interval=0",
    ),
    (
        dict(growth_interval=2.0),
        ValueError,
        "`growth_interval` must be an integer >= 1. Received: growth_interval=2.0",
    ),
    (
        dict(growth_interval=2**31),
        ValueError,
        "`growth_interval` must be at most 2147483647",
    ),
    (
        dict(init_scale=0.0),
        ValueError,
        "`init_scale` must be a finite number > 0. Received: init_scale=0.0",
    ),
    (
        dict(init_scale=float("inf")),
        ValueError,
        "`init_scale` must be a finite number > 0.",
    ),
    (dict(init_scale=1e39), ValueError, "`init_scale` overflows float32"),
    (dict(init_scale=1e-40), ValueError, "`init_scale` underflows float32"),
    (dict(init_scale="big"), TypeError, "`init_scale` must be a real scalar"),
    (dict(growth_factor=True), TypeError, "`growth_factor` must be a real scalar"),
    (dict(enabled=1), TypeError, "`enabled` must be a bool. Received: enabled=1"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        GradScaler(**kwargs)


def test_torch_messages_are_torchs():
    if not _golden.LIVE:
        pytest.skip("needs torch")
    torch = _golden.torch
    for kwargs, message in (
        (dict(growth_factor=1.0), "The growth factor must be > 1.0."),
        (dict(backoff_factor=1.0), "The backoff factor must be < 1.0."),
    ):
        with pytest.raises(AssertionError, match=re.escape(message)):
            torch.amp.GradScaler("cpu", **kwargs)
    torch.amp.GradScaler("cpu", growth_factor=0.5, enabled=False)  # unchecked


def test_traced_arguments_are_refused():
    def build(x):
        GradScaler(init_scale=x)
        return x

    with pytest.raises(TypeError, match="`init_scale` must be a concrete number"):
        jax.jit(build)(1.0)


def test_growth_guard_at_float32_max():
    tx = GradScaler(init_scale=2.0**127, growth_interval=1).wrap(optax.identity())
    params = jnp.zeros(1)
    state = tx.init(params)
    for _ in range(3):
        _, state = tx.update(jnp.ones(1), state)
        assert float(state.scale) == 2.0**127 and int(state.growth_tracker) == 0
