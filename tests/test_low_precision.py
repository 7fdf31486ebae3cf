"""bfloat16 parameters without a float32 master copy: Kahan summation and
stochastic rounding (jsgd.kahan_summation, jsgd.stochastic_rounding).

Oracles: a NumPy (ml_dtypes) transcription of the Kahan rule, bit for bit; a
float64 sum of the same update sequence; the exact mean of a stochastic
rounding over 10**5 draws. The transform contract (jit, vmap,
inject_hyperparams, dtypes, odd trees) also runs through tests/_registry.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest

import jsgd
from jsgd._transforms.stochastic_rounding import round_stochastically

BF16 = ml_dtypes.bfloat16


def _step(tx):
    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jsgd.apply_updates(params, updates), state, updates

    return step


def _ulp(x: np.ndarray, dtype=BF16) -> np.ndarray:
    """The ulp of ``dtype`` at each value of ``x`` (float64)."""
    x = np.abs(np.asarray(x, np.float64)).astype(dtype)
    return np.spacing(x).astype(np.float64)


# --- Kahan summation: the rule, bit for bit --------------------------------------


def _kahan_reference(p, c, u):
    """One step of the documented rule in NumPy: p, c bfloat16, u float32."""
    y = u.astype(np.float32) - c.astype(np.float32)
    target = (p.astype(np.float32) + y).astype(p.dtype)
    update = (target.astype(np.float32) - p.astype(np.float32)).astype(u.dtype)
    landed = (p.astype(np.float32) + update.astype(np.float32)).astype(p.dtype)
    moved = landed.astype(np.float32) - p.astype(np.float32)
    return landed, (moved - y).astype(c.dtype)


@pytest.mark.parametrize("update_dtype", [np.float32, BF16])
@pytest.mark.parametrize("compensation_dtype", [None, jnp.float32])
def test_kahan_is_the_documented_rule_bit_for_bit(update_dtype, compensation_dtype):
    rng = np.random.default_rng(0)
    p = rng.normal(size=257).astype(BF16)
    p[:3] = [0.0, 1.0, -2.0]  # zero, and values where a halving step lands
    c = np.zeros_like(p, dtype=compensation_dtype or BF16)
    tx = jsgd.kahan_summation(optax.identity(), compensation_dtype=compensation_dtype)
    params = jnp.asarray(p)
    state = tx.init(params)
    step = _step(tx)
    for k in range(200):
        scale = 10.0 ** rng.integers(-6, 1)  # tiny to parameter-sized steps
        u = (rng.normal(size=p.shape) * scale).astype(update_dtype)
        p, c = _kahan_reference(p, c, u)
        params, state, updates = step(params, state, jnp.asarray(u))
        assert updates.dtype == jnp.dtype(update_dtype)
        np.testing.assert_array_equal(np.asarray(params), p, err_msg=f"step {k}")
        np.testing.assert_array_equal(np.asarray(state.compensation), c)


def test_kahan_updates_land_exactly_through_optax_apply_updates():
    rng = np.random.default_rng(1)
    params = jnp.asarray(rng.normal(size=100), jnp.bfloat16)
    tx = jsgd.kahan_summation(optax.sgd(1e-3))
    state = tx.init(params)
    ours = params
    for _ in range(50):
        grads = jnp.asarray(rng.normal(size=100), jnp.bfloat16)
        updates, state = tx.update(grads, state, ours)
        through_optax = optax.apply_updates(ours, updates)
        ours = jsgd.apply_updates(ours, updates)
        np.testing.assert_array_equal(np.asarray(through_optax), np.asarray(ours))


# --- Kahan summation: against the float64 sum ------------------------------------


def _track(compensation_dtype, updates_of_step, steps, p0):
    tx = jsgd.kahan_summation(optax.identity(), compensation_dtype=compensation_dtype)
    step = _step(tx)
    params = jnp.asarray(p0)
    state = tx.init(params)
    exact = np.asarray(p0, np.float64)
    worst = 0.0
    for k in range(steps):
        u = updates_of_step(k)
        params, state, _ = step(params, state, jnp.asarray(u))
        exact += u.astype(np.float64)
        if k % 250 == 249:
            error = np.abs(np.asarray(params, np.float64) - exact) / _ulp(exact)
            worst = max(worst, float(error.max()))
    return worst


P0 = np.random.default_rng(2).uniform(0.5, 2.0, 2048).astype(BF16)
ULP0 = _ulp(P0)


def _constant(scale: float):
    rng = np.random.default_rng(3)
    u = rng.uniform(1, 2, P0.shape) * rng.choice([-1, 1], P0.shape) * scale * ULP0
    u = u.astype(np.float32)
    return lambda k: u


def _random(scale: float):
    rng = np.random.default_rng(4)
    return lambda k: (rng.normal(size=P0.shape) * scale * ULP0).astype(np.float32)


@pytest.mark.parametrize(
    "updates",
    [_constant(2**-12), _constant(2**-6), _random(2**-6), _random(0.5)],
    ids=["constant-2^-12-ulp", "constant-2^-6-ulp", "random-2^-6-ulp", "random-ulp/2"],
)
def test_kahan_with_float32_compensation_stays_within_one_ulp(updates):
    # 4,000 steps of updates far below half an ulp (plain bfloat16 keeps none).
    assert _track(jnp.float32, updates, 4000, P0) <= 1.0


def test_kahan_with_bfloat16_compensation_within_one_ulp_for_random_updates():
    assert _track(None, _random(2**-6), 4000, P0) <= 1.0


def test_kahan_with_bfloat16_compensation_drifts_as_documented():
    # A constant update: the compensation's own rounding (half an ulp of c,
    # at most 2**-9 ulp of p) drifts one way. The documented bound, n * 2**-9
    # ulp, holds; plain bfloat16 loses the whole sum (here about 60 ulp).
    n = 4000
    drift = _track(None, _constant(2**-6), n, P0)
    assert drift <= n * 2**-9
    lost_by_plain = n * 2**-6
    assert drift < lost_by_plain / 4


# --- plain bfloat16 stalls where both wrappers move -------------------------------


@pytest.mark.parametrize("wrapper", ["plain", "kahan", "stochastic"])
def test_plain_bfloat16_stalls_where_both_wrappers_move(wrapper):
    # The reported case: 768 weights near 1.0, updates below half an ulp.
    rng = np.random.default_rng(5)
    params = jnp.asarray(rng.uniform(1.0, 1.9, 768), jnp.bfloat16)
    grads = jnp.asarray(rng.uniform(-1, 1, 768), jnp.bfloat16)  # |lr*g| < 2**-9
    tx = optax.sgd(1e-3)
    if wrapper == "kahan":
        tx = jsgd.kahan_summation(tx)
    elif wrapper == "stochastic":
        tx = jsgd.stochastic_rounding(tx, seed=0)
    start, state = params, tx.init(params)
    step = _step(tx)
    for _ in range(100):
        params, state, _ = step(params, state, grads)
    moved = int(jnp.sum(params != start))
    exact = np.asarray(start, np.float64) - 0.1 * np.asarray(grads, np.float64)
    error = np.abs(np.asarray(params, np.float64) - exact) / _ulp(exact)
    if wrapper == "plain":
        assert moved == 0
    elif wrapper == "kahan":
        assert moved > 700 and error.max() <= 1.0
    else:  # unbiased: the mean error vanishes; each a random walk of 100 steps
        assert moved > 700
        signed = (np.asarray(params, np.float64) - exact) / _ulp(exact)
        assert abs(signed.mean()) < 0.5 and error.max() <= 5 * np.sqrt(100 * 0.25)


# --- stochastic rounding ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("x", [1.0 + 2**-10, -3.3e-3, 7.77e3, 1.0 + 2**-20, 3e-7])
def test_stochastic_rounding_is_unbiased(dtype, x):
    draws = 10**5
    value = jnp.full([draws], x, jnp.float32)
    rounded = round_stochastically(value, dtype, jax.random.PRNGKey(7))
    rounded = np.asarray(rounded.astype(jnp.float32), np.float64)
    lo, hi = rounded.min(), rounded.max()
    assert {lo, hi} >= set(np.unique(rounded))  # only the two neighbours
    exact = float(np.float32(x))
    p_up = (exact - lo) / (hi - lo) if hi > lo else 0.0
    standard_error = (hi - lo) * np.sqrt(max(p_up * (1 - p_up), 1 / draws) / draws)
    assert abs(rounded.mean() - exact) <= 3 * standard_error


def test_stochastic_rounding_keeps_exact_and_non_finite_values():
    x = jnp.array([1.0, -0.5, 0.0, jnp.inf, -jnp.inf, jnp.nan, 1e-40], jnp.float32)
    out = round_stochastically(x, jnp.bfloat16, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(
        np.asarray(out), np.asarray(x.astype(jnp.bfloat16).astype(jnp.float32))
    )


def test_the_wrapper_is_unbiased_over_many_elements():
    # One step from 1.0 by a tenth of an ulp: the mean over 10**5 elements.
    n = 10**5
    params = jnp.ones(n, jnp.bfloat16)
    u = jnp.full([n], 2**-7 / 10, jnp.float32)
    tx = jsgd.stochastic_rounding(optax.identity(), seed=11)
    updates, _ = tx.update(u, tx.init(params), params)
    new = np.asarray(jsgd.apply_updates(params, updates), np.float64)
    assert set(np.unique(new)) == {1.0, 1.0 + 2**-7}
    standard_error = 2**-7 * np.sqrt(0.1 * 0.9 / n)
    assert abs(new.mean() - (1 + 2**-7 / 10)) <= 3 * standard_error


def _sr_run(seed, steps=5, leaves=2):
    params = {f"w{i}": jnp.ones(4096, jnp.bfloat16) for i in range(leaves)}
    tx = jsgd.stochastic_rounding(optax.identity(), seed=seed)
    state = tx.init(params)
    step = _step(tx)
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 2**-9, jnp.float32), params)
    history = []
    for _ in range(steps):
        params, state, updates = step(params, state, grads)
        history.append(jax.tree.map(np.asarray, updates))
    return history


def test_stochastic_rounding_is_reproducible_and_independent():
    first, again, other = _sr_run(0), _sr_run(0), _sr_run(1)
    for a, b in zip(first, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])  # bitwise, per seed
    assert any(
        not np.array_equal(a["w0"], b["w0"]) for a, b in zip(first, other, strict=True)
    )
    # Leaves and steps draw independently: the up-rounded sets barely overlap
    # more than chance (a quarter of the ulp up: 1/4 of each, 1/16 of both).
    up = [{k: v > 0 for k, v in h.items()} for h in first]
    both_leaves = np.mean(up[0]["w0"] & up[0]["w1"])
    both_steps = np.mean(up[0]["w0"] & up[1]["w0"])
    for overlap in (both_leaves, both_steps):
        assert abs(overlap - np.mean(up[0]["w0"]) ** 2) < 0.03


# --- what passes through, rows, errors --------------------------------------------


@pytest.mark.parametrize("wrap", ["kahan", "stochastic"])
def test_float32_leaves_and_none_pass_through(wrap):
    inner = optax.adam(1e-2)
    tx = (
        jsgd.kahan_summation(inner)
        if wrap == "kahan"
        else jsgd.stochastic_rounding(inner, seed=2)
    )
    params = {
        "low": jnp.ones(3, jnp.bfloat16),
        "full": jnp.linspace(0, 1, 4),
        "none": None,
    }
    grads = {"low": jnp.ones(3, jnp.bfloat16), "full": jnp.ones(4), "none": None}
    state = tx.init(params)
    if wrap == "kahan":
        assert state.compensation["full"] is None
        assert state.compensation["low"].dtype == jnp.bfloat16
    updates, state = tx.update(grads, state, params)
    theirs, _ = inner.update(grads, inner.init(params), params)
    np.testing.assert_array_equal(np.asarray(updates["full"]), theirs["full"])
    assert updates["none"] is None
    assert updates["low"].dtype == jnp.bfloat16


@pytest.mark.parametrize(  # one wrapper by default, the other under -m oracle
    "wrap", ["kahan", pytest.param("stochastic", marks=pytest.mark.oracle)]
)
def test_row_updates_touch_only_their_rows(wrap):
    rng = np.random.default_rng(6)
    table = jnp.asarray(rng.normal(size=(12, 3)), jnp.bfloat16)
    inner = jsgd.sgd(1e-3)  # takes IndexedSlices: the row rule
    make = {
        "kahan": lambda t: jsgd.kahan_summation(t),
        "stochastic": lambda t: jsgd.stochastic_rounding(t, seed=4),
    }[wrap]
    tx, dense_tx = make(inner), make(inner)
    state, dense_state = tx.init(table), dense_tx.init(table)
    dense = table
    step, dense_step = _step(tx), _step(dense_tx)
    for k in range(30):
        indices = jnp.asarray(rng.choice(12, 5), jnp.int32)  # duplicates too
        values = jnp.asarray(rng.normal(size=(5, 3)), jnp.bfloat16)
        slices = jsgd.IndexedSlices(values, indices, table.shape)
        before = state
        new, state, _ = step(table, state, slices)
        untouched = np.setdiff1d(np.arange(12), np.asarray(indices))
        np.testing.assert_array_equal(np.asarray(new)[untouched], table[untouched])
        if wrap == "kahan":
            np.testing.assert_array_equal(
                np.asarray(state.compensation)[untouched],
                np.asarray(before.compensation)[untouched],
            )
            dense, dense_state, _ = dense_step(dense, dense_state, slices.to_dense())
            np.testing.assert_array_equal(np.asarray(new), np.asarray(dense), f"{k}")
        table = new


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="compensation_dtype"):
        jsgd.kahan_summation(optax.sgd(0.1), compensation_dtype=jnp.int32)
    with pytest.raises(ValueError, match="seed"):
        jsgd.stochastic_rounding(optax.sgd(0.1), seed=-1)
    with pytest.raises(TypeError, match="seed"):
        jsgd.stochastic_rounding(optax.sgd(0.1), seed="0")
    params = jnp.ones(2, jnp.bfloat16)
    for tx in (
        jsgd.kahan_summation(optax.sgd(0.1)),
        jsgd.stochastic_rounding(optax.sgd(0.1)),
    ):
        state = tx.init(params)
        with pytest.raises(ValueError, match="params"):
            tx.update(params, state)
        with pytest.raises(TypeError, match="state"):
            tx.update(params, optax.EmptyState(), params)


# --- the transform contract beyond the registry's -----------------------------


@pytest.mark.parametrize(  # one wrapper by default, the other under -m oracle
    "wrap", ["stochastic", pytest.param("kahan", marks=pytest.mark.oracle)]
)
def test_inject_hyperparams_vmap_and_a_checkpoint_round_trip(wrap):
    def make(learning_rate):
        inner = optax.sgd(learning_rate, momentum=0.9)
        if wrap == "kahan":
            return jsgd.kahan_summation(inner)
        return jsgd.stochastic_rounding(inner, seed=5)

    tx = optax.inject_hyperparams(make)(learning_rate=1e-3)
    params = jnp.linspace(1, 2, 64).astype(jnp.bfloat16)
    grads = jnp.linspace(-1, 1, 64).astype(jnp.bfloat16)
    step = _step(tx)
    state = tx.init(params)
    for _ in range(3):
        params, state, _ = step(params, state, grads)
    # A checkpoint: every leaf through NumPy and back, then on alike.
    leaves, treedef = jax.tree.flatten(state)
    restored = treedef.unflatten([jnp.asarray(np.asarray(x)) for x in leaves])
    a, b = (params, state), (params, restored)
    for _ in range(3):
        a = step(a[0], a[1], grads)[:2]
        b = step(b[0], b[1], grads)[:2]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # vmap over learning rates: each lane equals its own run.
    rates = jnp.array([1e-3, 3e-3, 1e-2])
    start = jnp.linspace(1, 2, 64).astype(jnp.bfloat16)

    def run(rate):
        s = tx.init(start)
        s.hyperparams["learning_rate"] = rate
        p = start
        for _ in range(4):
            u, s = tx.update(grads, s, p)
            p = jsgd.apply_updates(p, u)
        return p

    lanes = jax.vmap(run)(rates)
    for i, rate in enumerate(rates):
        np.testing.assert_array_equal(np.asarray(lanes[i]), np.asarray(run(rate)))


@pytest.mark.parametrize(  # one wrapper by default, the other under -m oracle
    "wrap", ["kahan", pytest.param("stochastic", marks=pytest.mark.oracle)]
)
def test_sharded_steps_equal_the_single_device_run(wrap):
    mesh = jax.make_mesh((8,), ("model",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("model"))
    inner = jsgd.torch.AdamW(1e-3) if wrap == "kahan" else jsgd.SGD(1e-3, momentum=0.9)
    tx = (
        jsgd.kahan_summation(inner)
        if wrap == "kahan"
        else jsgd.stochastic_rounding(inner, seed=9)
    )
    rng = np.random.default_rng(8)
    params = {"w": jnp.asarray(rng.normal(size=(64, 8)), jnp.bfloat16)}
    grads = {"w": jnp.asarray(rng.normal(size=(64, 8)), jnp.bfloat16)}
    step = _step(tx)
    single = (params, tx.init(params))
    sharded_params = jax.device_put(params, sharding)
    sharded = (sharded_params, tx.init(sharded_params))
    sharded_grads = jax.device_put(grads, sharding)
    for _ in range(5):
        single = step(single[0], single[1], grads)[:2]
        sharded = step(sharded[0], sharded[1], sharded_grads)[:2]
    assert sharded[0]["w"].sharding.is_equivalent_to(sharding, 2)
    for x, y in zip(jax.tree.leaves(single), jax.tree.leaves(sharded), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- per-buffer state dtypes ------------------------------------------------------

F32, BF = jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)


def _buffers(state) -> dict[str, jnp.dtype]:
    """Each per-parameter buffer's dtype, by its state field's name."""
    found: dict[str, jnp.dtype] = {}

    def visit(node):
        if hasattr(node, "_fields"):
            for field in node._fields:
                value = getattr(node, field)
                if isinstance(value, dict) and "w" in value:
                    found[f"{type(node).__name__}.{field}"] = value["w"].dtype
                else:
                    visit(value)
        elif isinstance(node, (tuple, list)):
            for x in node:
                visit(x)
        elif isinstance(node, dict):
            for x in node.values():
                visit(x)

    visit(state)
    return found


BUFFER_DTYPES = [
    (
        lambda: jsgd.Adam(1e-3, amsgrad=True, velocity_dtype=jnp.float32),
        {
            "AdamState.momentum": BF,
            "AdamState.velocity": F32,
            "AdamState.velocity_hat": F32,
        },
    ),
    (
        lambda: jsgd.adam(
            1e-3, accumulator_dtype=jnp.float32, momentum_dtype=jnp.bfloat16
        ),
        {"AdamState.momentum": BF, "AdamState.velocity": F32},
    ),
    (
        lambda: jsgd.RMSprop(
            1e-3,
            momentum=0.5,
            centered=True,
            velocity_dtype=jnp.float32,
            average_gradient_dtype=jnp.float32,
        ),
        {
            "RMSpropState.velocity": F32,
            "RMSpropState.average_gradient": F32,
            "MomentumState.velocity": BF,
        },
    ),
    (
        lambda: jsgd.RMSprop(1e-3, momentum=0.5, momentum_dtype=jnp.float32),
        {"RMSpropState.velocity": BF, "MomentumState.velocity": F32},
    ),
    (
        lambda: jsgd.Adagrad(1e-3, accumulator_dtype=jnp.float32),
        {"AdagradState.accumulator": F32},
    ),
    (
        lambda: jsgd.SGD(1e-3, momentum=0.9, accumulator_dtype=jnp.float32),
        {"MomentumState.velocity": F32},
    ),
    (
        lambda: jsgd.torch.Adam(1e-3, amsgrad=True, exp_avg_sq_dtype=jnp.float32),
        {
            "AdamState.momentum": BF,
            "AdamState.velocity": F32,
            "AdamState.velocity_hat": F32,
        },
    ),
    (
        lambda: jsgd.torch.AdamW(
            1e-3, accumulator_dtype=jnp.float32, exp_avg_dtype=jnp.bfloat16
        ),
        {"AdamState.momentum": BF, "AdamState.velocity": F32},
    ),
    (
        lambda: jsgd.torch.RMSprop(
            1e-3,
            momentum=0.5,
            centered=True,
            square_avg_dtype=jnp.float32,
            momentum_buffer_dtype=jnp.float32,
        ),
        {
            "RMSpropState.velocity": F32,
            "RMSpropState.average_gradient": BF,
            "MomentumState.velocity": F32,
        },
    ),
    (
        lambda: jsgd.torch.Adagrad(1e-3, accumulator_dtype=jnp.float32),
        {"AdagradState.accumulator": F32},
    ),
    (
        lambda: jsgd.torch.SGD(1e-3, momentum=0.9, accumulator_dtype=jnp.float32),
        {"MomentumState.velocity": F32},
    ),
]


@pytest.mark.parametrize(
    ("make", "expected"), BUFFER_DTYPES, ids=range(len(BUFFER_DTYPES))
)
def test_per_buffer_state_dtypes(make, expected):
    tx = make()
    params = {"w": jnp.linspace(-1, 1, 6).astype(jnp.bfloat16)}
    state = tx.init(params)
    assert _buffers(state) == expected
    wrapped = jsgd.kahan_summation(tx)
    step = _step(wrapped)
    grads = {"w": jnp.linspace(1, -1, 6).astype(jnp.bfloat16)}
    wstate = wrapped.init(params)
    for _ in range(3):
        params, wstate, updates = step(params, wstate, grads)
    assert updates["w"].dtype == jnp.bfloat16 and params["w"].dtype == jnp.bfloat16
    assert _buffers(wstate.inner_state) == expected  # kept through the steps
    assert np.all(np.isfinite(np.asarray(params["w"], np.float32)))


def test_per_buffer_dtypes_round_trip_the_config_and_are_checked():
    opt = jsgd.Adam(1e-3, velocity_dtype="float32")
    again = jsgd.Adam.from_config(opt.get_config())
    assert again == opt and again.get_config()["velocity_dtype"] == F32
    with pytest.raises(TypeError, match="velocity_dtype"):
        jsgd.Adam(1e-3, velocity_dtype=jnp.int32)
    with pytest.raises(TypeError, match="exp_avg_sq_dtype"):
        jsgd.torch.Adam(1e-3, exp_avg_sq_dtype="int8")
