"""jsgd.apply_gradients: the fused native SGD step against the unfused chain.

The kernel (jsgd/_native/fused_sgd.cc) rounds each operation as the unfused
chain run op by op does, so it equals that bit for bit. A jitted unfused step
may differ by an ulp per operation: XLA:CPU contracts ``a * b + c`` into a
fused multiply-add inside its loop fusions (and evaluates a schedule in the
same program), so the comparison with it is within float32 rounding.
"""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from jsgd._native import library as _library
from jsgd._training.fused import fused_rule
from tests._oracle import rotating

SCHEDULE = jsgd.schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5)
COVERED = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "optax-rule": {"momentum": 0.9, "lr_in_velocity": False},
    "optax-nesterov": {"momentum": 0.9, "nesterov": True, "lr_in_velocity": False},
    "dampening": {"momentum": 0.8, "dampening": 0.3, "lr_in_velocity": False},
    "keras-dampening": {"momentum": 0.8, "dampening": 0.3},
    "weight-decay": {"weight_decay": 0.1},
    "momentum-weight-decay": {"momentum": 0.5, "weight_decay": 0.05},
    "nesterov-weight-decay": {
        "momentum": 0.9,
        "nesterov": True,
        "lr_in_velocity": False,
        "weight_decay": 0.01,
    },
    "global-clipnorm": {"momentum": 0.9, "global_clipnorm": 1.0},
    "bf16-velocity": {"momentum": 0.9, "accumulator_dtype": jnp.bfloat16},
    "bf16-optax-nesterov": {
        "momentum": 0.9,
        "nesterov": True,
        "lr_in_velocity": False,
        "accumulator_dtype": jnp.bfloat16,
    },
}
# jsgd.torch.SGD: torch's rule (coupled weight decay, maximize, the undamped
# first step), a learning rate changed by a scheduler, one parameter group.
TORCH_COVERED = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov-weight-decay": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    "dampening-maximize": {"momentum": 0.8, "dampening": 0.3, "maximize": True},
    "weight-decay-no-momentum": {"weight_decay": 0.05},
    "step-lr": {
        "momentum": 0.9,
        "weight_decay": 0.01,
        "scheduler": jsgd.torch.lr_scheduler.StepLR(step_size=2, gamma=0.5),
    },
    "cyclic-momentum": {
        "momentum": 0.9,
        "scheduler": jsgd.torch.lr_scheduler.CyclicLR(
            base_lr=0.01, max_lr=0.1, step_size_up=2
        ),
    },
    "one-group": {"momentum": 0.9, "param_groups": [{"params": r".*", "lr": 0.02}]},
    "bf16-buffer": {"momentum": 0.9, "accumulator_dtype": jnp.bfloat16},
}
NATIVE = bool(jsgd.fused_available())


def _tree(seed: int, leaves: int = 3):
    rng = np.random.default_rng(seed)
    shapes = [(300, 700), (5,), ()][:leaves]  # 70,002 elements a leaf on average
    return {
        f"w{i}": jnp.asarray(rng.normal(size=shape), jnp.float32)
        for i, shape in enumerate(shapes)
    }


def _unfused(opt, grads, state, params):
    updates, state = opt.update(grads, state, params)
    return jsgd.apply_updates(params, updates), state


def _assert_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _lowered_text(opt, grads, state, params) -> str:
    fused = jax.jit(lambda g, s, p: jsgd.apply_gradients(opt, g, s, p))
    return fused.lower(grads, state, params).as_text()


def test_the_native_kernel_is_built_where_a_compiler_is():
    # .ci/run installs with a compiler: there the kernel must be available.
    has_compiler = any(shutil.which(c) for c in ("c++", "g++", "clang++"))
    disabled = "0" in (os.environ.get("JSGD_FUSED"), os.environ.get("JSGD_NATIVE"))
    if disabled or not has_compiler:
        pytest.skip("no compiler here, or the native kernel is off (JSGD_*=0)")
    status = jsgd.fused_available()
    assert status, status.reason
    assert str(_library.LIBRARY) in status.reason


def _optimizer(family: str, name: str):
    if family == "keras":
        return jsgd.SGD(0.05, **COVERED[name])
    return jsgd.torch.SGD(0.05, **TORCH_COVERED[name])


@pytest.mark.skipif(not NATIVE, reason="no native kernel")
@pytest.mark.parametrize(
    "family, name",
    [  # half of them by default, the other half under -m oracle
        pytest.param(family, name, marks=() if i % 2 == 0 else pytest.mark.oracle)
        for i, (family, name) in enumerate(
            [("keras", n) for n in COVERED] + [("torch", n) for n in TORCH_COVERED]
        )
    ],
)
def test_fused_equals_the_unfused_chain_op_by_op(family, name):
    opt = _optimizer(family, name)
    fused = jax.jit(lambda g, s, p: jsgd.apply_gradients(opt, g, s, p))
    params = _tree(0)
    mine, theirs = (params, opt.init(params)), (params, opt.init(params))
    for k in range(6):
        grads = _tree(100 + k)
        mine = fused(grads, mine[1], mine[0])
        theirs = _unfused(opt, grads, theirs[1], theirs[0])  # eagerly, op by op
        _assert_equal(mine, theirs)
    assert "jsgd_fused_sgd" in _lowered_text(opt, grads, mine[1], mine[0])


def test_inject_hyperparams_takes_the_unfused_path():
    # The rate is traced inside the wrapper's update: the kernel is not used,
    # and the step is exactly the jitted unfused one.
    opt = optax.inject_hyperparams(lambda learning_rate: jsgd.SGD(learning_rate))(
        learning_rate=0.05
    )
    assert fused_rule(opt) is None
    params, grads = _tree(0), _tree(1)
    state = opt.init(params)
    assert "jsgd_fused_sgd" not in _lowered_text(opt, grads, state, params)
    _assert_equal(
        jax.jit(lambda g, s, p: jsgd.apply_gradients(opt, g, s, p))(
            grads, state, params
        ),
        jax.jit(lambda g, s, p: _unfused(opt, g, s, p))(grads, state, params),
    )


@pytest.mark.skipif(not NATIVE, reason="no native kernel")
@pytest.mark.parametrize("name", rotating(list(COVERED), share=2))
def test_fused_follows_the_jitted_chain_and_a_schedule(name):
    opt = jsgd.SGD(SCHEDULE, **COVERED[name])
    fused = jax.jit(lambda g, s, p: jsgd.apply_gradients(opt, g, s, p))
    unfused = jax.jit(lambda g, s, p: _unfused(opt, g, s, p))
    params = _tree(1)
    mine, theirs = (params, opt.init(params)), (params, opt.init(params))
    for k in range(20):
        grads = _tree(200 + k)
        mine, theirs = fused(grads, *mine[::-1]), unfused(grads, *theirs[::-1])
    assert jax.tree.structure(mine) == jax.tree.structure(theirs)
    # A bfloat16 velocity rounds an ulp's difference to a bfloat16 ulp (2**-8
    # of the operands, up to 0.008 here where m * v + g nearly cancel), which
    # the momentum carries on over the 20 steps.
    rtol, atol = (2**-5, 2**-5) if "bf16" in name else (1e-5, 1e-6)
    for x, y in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(
            np.asarray(x, np.float32), np.asarray(y, np.float32), rtol=rtol, atol=atol
        )
    assert "jsgd_fused_sgd" in _lowered_text(opt, grads, mine[1], mine[0])


@pytest.mark.parametrize(
    "opt",
    [
        jsgd.SGD(0.1, momentum=0.9, clipnorm=1.0),
        jsgd.SGD(0.1, momentum=0.9, use_ema=True),
        jsgd.SGD(0.1, momentum=0.9, accumulator_dtype=jnp.float16),
        jsgd.Adam(0.1),
        optax.sgd(0.1, momentum=0.9),
        jsgd.torch.SGD(0.1, momentum=0.9, param_groups=[{"params": ["w0"]}]),
        jsgd.torch.Adam(0.1),
    ],
    ids=[
        "clipnorm",
        "ema",
        "f16-velocity",
        "adam",
        "optax",
        "torch-2-groups",
        "torch-adam",
    ],
)
def test_everything_else_takes_the_unfused_path(opt):
    params = _tree(2)
    state = opt.init(params)
    grads = _tree(3)
    assert "jsgd_fused_sgd" not in _lowered_text(opt, grads, state, params)
    _assert_equal(
        jsgd.apply_gradients(opt, grads, state, params),
        _unfused(opt, grads, state, params),
    )


def test_bfloat16_leaves_and_row_updates_are_unfused():
    opt = jsgd.SGD(0.1, momentum=0.9)
    params = {"w": jnp.ones(4, jnp.bfloat16)}
    state = opt.init(params)
    grads = {"w": jnp.ones(4, jnp.bfloat16)}
    assert "jsgd_fused_sgd" not in _lowered_text(opt, grads, state, params)
    table = {"t": jnp.ones((6, 2))}
    rows = {"t": jsgd.IndexedSlices(jnp.ones((2, 2)), jnp.array([1, 4]), (6, 2))}
    state = opt.init(table)
    _assert_equal(
        jsgd.apply_gradients(opt, rows, state, table),
        _unfused(opt, rows, state, table),
    )


def test_the_fallback_when_disabled(monkeypatch):
    monkeypatch.setenv("JSGD_FUSED", "0")
    status = jsgd.fused_available()
    assert not status and "JSGD_FUSED=0" in status.reason
    opt = jsgd.SGD(0.1, momentum=0.9)
    params, grads = _tree(4), _tree(5)
    state = opt.init(params)
    assert "jsgd_fused_sgd" not in _lowered_text(opt, grads, state, params)
    unfused = jax.jit(lambda g, s, p: _unfused(opt, g, s, p))
    _assert_equal(
        jax.jit(lambda g, s, p: jsgd.apply_gradients(opt, g, s, p))(
            grads, state, params
        ),
        unfused(grads, state, params),
    )


@pytest.mark.skipif(not NATIVE, reason="no native kernel")
def test_in_place_with_donation_many_leaves_and_the_method():
    opt = jsgd.SGD(0.01, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(6)
    params = {  # the most leaves one kernel call takes, one of them big
        f"l{i}": jnp.asarray(rng.normal(size=35), jnp.float32) for i in range(63)
    }
    params["big"] = jnp.asarray(rng.normal(size=(1000, 9000)), jnp.float32)
    grads = jax.tree.map(jnp.ones_like, params)
    state = opt.init(params)
    expected = _unfused(opt, grads, state, params)
    # Donated in the order of the results (params, then state), as
    # make_train_step does: JAX pairs donated buffers with results in order.
    step = jax.jit(lambda p, s, g: opt.apply_gradients(g, s, p), donate_argnums=(0, 1))
    pointer = params["big"].unsafe_buffer_pointer()
    new_params, new_state = step(params, state, grads)
    assert new_params["big"].unsafe_buffer_pointer() == pointer  # written in place
    _assert_equal((new_params, new_state), expected)
    # More leaves than one call takes (134): a call per 64, the same bits.
    params = dict(new_params)
    for i in range(70):
        params[f"m{i}"] = jnp.asarray(rng.normal(size=35), jnp.float32)
    state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    text = _lowered_text(opt, grads, state, params)
    assert text.count("@jsgd_fused_sgd(") == 3
    _assert_equal(
        jax.jit(lambda g, s, p: jsgd.apply_gradients(opt, g, s, p))(
            grads, state, params
        ),
        _unfused(opt, grads, state, params),
    )
    # A tree of small leaves: the unfused path.
    small = {k: v for k, v in params.items() if k != "big"}
    state = opt.init(small)
    grads = jax.tree.map(jnp.ones_like, small)
    assert "jsgd_fused_sgd" not in _lowered_text(opt, grads, state, small)


@pytest.mark.skipif(not NATIVE, reason="no native kernel")
def test_subnormals_are_flushed_as_xla_flushes_them_on_every_thread():
    # XLA:CPU computes with denormals flushed to zero; the kernel's pool
    # threads take the caller's floating-point mode, so every chunk agrees.
    opt = jsgd.SGD(1.0, momentum=0.5, lr_in_velocity=False)
    n = 1 << 20  # 16 chunks of 64 Ki elements, spread over the pool
    params = {"w": jnp.zeros(n, jnp.float32)}
    grads = {"w": jnp.full(n, 1e-39, jnp.float32)}  # subnormal
    state = opt.init(params)
    fused = jax.jit(lambda g, s, p: jsgd.apply_gradients(opt, g, s, p))
    mine = fused(grads, state, params)
    _assert_equal(mine, _unfused(opt, grads, state, params))
    assert not np.any(np.asarray(mine[0]["w"]))


@pytest.mark.skipif(not NATIVE, reason="no native kernel")
def test_make_train_step_uses_it_on_one_device_only():
    opt = jsgd.SGD(0.1, momentum=0.9)

    def loss_fn(params, x):
        return jnp.sum((params["w"] * x) ** 2)

    step = jsgd.make_train_step(loss_fn, opt, donate=False)
    params = {"w": jnp.ones(1 << 17)}
    state = opt.init(params)
    x = jnp.linspace(0, 1, 1 << 17)
    assert "jsgd_fused_sgd" in step.lower(params, state, x).as_text()
    mesh = jax.make_mesh((8,), ("d",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d"))
    sharded = jax.device_put(params, sharding)
    sharded_state = opt.init(sharded)
    assert "jsgd_fused_sgd" not in step.lower(sharded, sharded_state, x).as_text()
    one, _, _ = step(params, state, x)
    many, _, _ = step(sharded, sharded_state, x)
    np.testing.assert_allclose(np.asarray(one["w"]), np.asarray(many["w"]), rtol=1e-6)
    assert many["w"].sharding.is_equivalent_to(sharding, 1)


@pytest.mark.skipif(not NATIVE, reason="no native kernel")
def test_vmap_steps_each_lane_alike():
    opt = jsgd.SGD(0.1, momentum=0.9)
    assert "jsgd_fused_sgd" not in _lowered_text(  # too small a tree: XLA's
        opt, {"w": jnp.ones(8)}, opt.init({"w": jnp.ones(8)}), {"w": jnp.ones(8)}
    )
    n = 1 << 16
    params = {"w": jnp.linspace(-1, 1, n)}
    state = opt.init(params)
    grads = {"w": jnp.stack([jnp.linspace(0, 1, n), jnp.linspace(1, 2, n)])}
    lanes = jax.vmap(lambda g: jsgd.apply_gradients(opt, g, state, params))(grads)
    for i in range(2):
        lane = jax.tree.map(lambda x, i=i: x[i], lanes)
        _assert_equal(lane, _unfused(opt, {"w": grads["w"][i]}, state, params))
