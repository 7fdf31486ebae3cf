"""Sparse row updates (IndexedSlices): legacy tf.keras semantics, exactly.

The oracle is the legacy tf.keras rule written out in NumPy (float64):
``_resource_apply_sparse_duplicate_indices`` (no momentum: scatter-add of
``-lr * values``, duplicates adding up) and, with momentum, deduplication
followed by ``SparseApplyKerasMomentum`` on the touched rows. TensorFlow is
not installed here, so the kernels' documented formulas are the reference.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jsgd
from tests import _oracle

N, D, K = 12, 3, 6
LRS = [0.1, 0.05, 0.2, 0.01, 0.08]  # changing: tells lr inside/outside apart


def schedule(count):
    return jnp.asarray(LRS)[count]


def random_slices(rng, steps=5, n=N, d=D, k=K, padding=True):
    """Steps of (values, indices) with duplicates and, optionally, padding."""
    out = []
    for _ in range(steps):
        indices = rng.integers(0, n // 2, size=k)  # few rows: many duplicates
        if padding:
            indices[-1] = n  # a padding row: must change nothing
        values = rng.normal(size=(k, d)).astype(np.float32)
        out.append((values, indices.astype(np.int32)))
    return out


def legacy_keras_sparse_sgd(w, grads, lrs, m, nesterov, clipnorm=None):
    """tf.keras (legacy OptimizerV2) SGD on IndexedSlices, in float64."""
    w = np.array(w, np.float64)
    accum = np.zeros_like(w)
    for (values, indices), lr in zip(grads, lrs, strict=True):
        values = np.array(values, np.float64)
        valid = (indices >= 0) & (indices < len(w))
        values, indices = values[valid], indices[valid]
        if clipnorm is not None:  # tf.clip_by_norm on IndexedSlices: values' norm
            norm = np.sqrt(np.sum(values**2))
            values = values * clipnorm / max(norm, clipnorm)
        if m == 0:
            np.add.at(w, indices, -lr * values)
            continue
        unique, inverse = np.unique(indices, return_inverse=True)
        summed = np.zeros((len(unique), w.shape[1]))
        np.add.at(summed, inverse, values)
        for row, g in zip(unique, summed, strict=True):
            accum[row] = accum[row] * m - lr * g
            if nesterov:
                w[row] += accum[row] * m - lr * g
            else:
                w[row] += accum[row]
    return w, accum


def velocity_of(state):
    """The velocity table inside an optimizer state."""
    found = [
        s
        for s in jax.tree.leaves(
            state, is_leaf=lambda x: isinstance(x, jsgd.MomentumState)
        )
        if isinstance(s, jsgd.MomentumState)
    ]
    (momentum_state,) = found
    return momentum_state.velocity["table"]


def run_jsgd(tx, w, grads, *, sparse=True, jit=False, steps_params=None):
    params = {"table": jnp.asarray(w)}
    state = tx.init(params)

    def step(params, state, values, indices):
        g = jsgd.IndexedSlices(values, indices, params["table"].shape)
        grad = g if sparse else g.to_dense()
        updates, state = tx.update({"table": grad}, state, params)
        return jsgd.apply_updates(params, updates), state

    if jit:
        step = jax.jit(step, donate_argnums=(0, 1))
    for values, indices in grads:
        params, state = step(params, state, jnp.asarray(values), jnp.asarray(indices))
    return params["table"], state


def initial_table(seed=0):
    return np.random.default_rng(seed).normal(size=(N, D)).astype(np.float32)


# --- the legacy rule -----------------------------------------------------------

LEGACY_CASES = [
    dict(m=0.0, nesterov=False),
    dict(m=0.9, nesterov=False),
    dict(m=0.9, nesterov=True),
    dict(m=0.5, nesterov=False, clipnorm=0.7),
    dict(m=0.9, nesterov=True, clipnorm=1.5),
]


# Every case under jit; eagerly (slow: op by op) plain SGD and Nesterov with a
# clip by default, the other three under -m oracle (tests/_oracle.py).
EAGER_DEFAULT = {0, 4}


@pytest.mark.parametrize(
    ("case", "jit"),
    [
        pytest.param(
            case,
            jit,
            id=f"{case}-{'jit' if jit else 'eager'}",
            marks=() if jit or i in EAGER_DEFAULT else _oracle.oracle,
        )
        for jit in (False, True)
        for i, case in enumerate(LEGACY_CASES)
    ],
)
def test_sgd_matches_the_legacy_sparse_rule(case, jit):
    rng = np.random.default_rng(1)
    w0, grads = initial_table(), random_slices(rng)
    expected_w, expected_accum = legacy_keras_sparse_sgd(w0, grads, LRS, **case)
    tx = jsgd.sgd(schedule, case["m"], case["nesterov"], clipnorm=case.get("clipnorm"))
    w, state = run_jsgd(tx, w0, grads, jit=jit)
    np.testing.assert_allclose(w, expected_w, rtol=1e-5, atol=1e-6)
    if case["m"]:
        velocity = velocity_of(state)
        np.testing.assert_allclose(velocity, expected_accum, rtol=1e-5, atol=1e-6)


def test_untouched_rows_keep_a_stale_velocity():
    # Step 1 touches row 0, step 2 row 1: row 0 keeps its velocity and stays put.
    tx = jsgd.sgd(0.1, momentum=0.9)
    grads = [
        (np.ones((1, D), np.float32), np.array([0], np.int32)),
        (np.ones((1, D), np.float32), np.array([1], np.int32)),
    ]
    w, state = run_jsgd(tx, np.zeros((N, D), np.float32), grads)
    np.testing.assert_allclose(w[0], -0.1)  # not -0.1 - 0.09: no decay step
    np.testing.assert_allclose(w[1], -0.1)
    np.testing.assert_allclose(velocity_of(state)[0], -0.1)
    # The dense rule moves row 0 a second time.
    dense, _ = run_jsgd(tx, np.zeros((N, D), np.float32), grads, sparse=False)
    np.testing.assert_allclose(dense[0], -0.19, rtol=1e-6)


def test_the_hand_computed_duplicates_table():
    # Rows 2, 2 and 5 with g = 1, 2, 4: duplicates summed before momentum.
    tx = jsgd.sgd(0.1, momentum=0.5, nesterov=True)
    values = np.array([[1.0], [2.0], [4.0]], np.float32)
    indices = np.array([2, 2, 5], np.int32)
    w, _ = run_jsgd(tx, np.zeros((6, 1), np.float32), [(values, indices)] * 2)
    # Step 1: v2 = -0.3, w2 = 0.5*-0.3 - 0.3 = -0.45; v5 = -0.4, w5 = -0.6.
    # Step 2: v2 = -0.45, w2 += 0.5*-0.45 - 0.3 -> -0.975; v5 = -0.6, w5 = -1.3.
    np.testing.assert_allclose(w[:, 0], [0, 0, -0.975, 0, 0, -1.3], rtol=1e-6)


# The hypothesis tests below draw a tenth of their examples by default
# (tests/_oracle.py); their ``_long`` twins draw them all under -m oracle.
@_oracle.hypothesis_twins(
    40,
    given(
        seed=st.integers(0, 2**31 - 1),
        m=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
        nesterov=st.booleans(),
        k=st.integers(1, 9),
    ),
)
def test_property_legacy_rule(seed, m, nesterov, k):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(N, D)).astype(np.float32)
    grads = []
    for _ in range(3):
        indices = rng.integers(-2, N + 2, size=k).astype(np.int32)  # padding too
        grads.append((rng.normal(size=(k, D)).astype(np.float32), indices))
    lrs = LRS[:3]
    expected, _ = legacy_keras_sparse_sgd(w0, grads, lrs, m, nesterov)
    tx = jsgd.sgd(schedule, m, nesterov)
    w, _ = run_jsgd(tx, w0, grads, jit=True)
    np.testing.assert_allclose(w, expected, rtol=2e-5, atol=2e-6)


# --- lazy=False and the dense equivalences -----------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda lazy: jsgd.sgd(schedule, 0.9, lazy=lazy),
        lambda lazy: jsgd.sgd(schedule, 0.9, True, lazy=lazy, weight_decay=0.1),
        lambda lazy: jsgd.sgd(
            schedule, 0.9, dampening=0.3, lr_in_velocity=False, lazy=lazy
        ),
        lambda lazy: jsgd.SGD(schedule, 0.8, nesterov=True, lazy=lazy),
        lambda lazy: optax.chain(
            jsgd.add_decayed_weights(0.2, lazy=lazy),
            jsgd.momentum_trace(0.9, lazy=lazy),
            jsgd.scale_by_learning_rate(schedule),
        ),
    ],
    ids=["keras", "nesterov+wd", "torch-dampening", "SGD-class", "coupled-wd"],
)
def test_lazy_false_is_the_dense_result(make):
    rng = np.random.default_rng(2)
    w0, grads = initial_table(), random_slices(rng)
    dense, _ = run_jsgd(make(True), w0, grads, sparse=False)
    not_lazy, _ = run_jsgd(make(False), w0, grads, sparse=True)
    lazy, _ = run_jsgd(make(True), w0, grads, sparse=True)
    np.testing.assert_allclose(not_lazy, dense, rtol=1e-6, atol=1e-7)
    assert not np.allclose(lazy, dense, rtol=1e-4)  # the rules do differ


@pytest.mark.parametrize(
    "make",
    [
        lambda: jsgd.sgd(schedule, lazy=False),
        lambda: jsgd.sgd(schedule, 0.9, lazy=False, weight_decay=0.1),
        lambda: jsgd.SGD(schedule, 0.8, nesterov=True, lazy=False),
        lambda: jsgd.adagrad(schedule, lazy=False),
    ],
    ids=["sgd", "momentum+wd", "SGD-nesterov", "adagrad"],
)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_lazy_false_optimizers_are_bitwise_the_dense_result(make, dtype):
    # Keras 3 densifies a sparse gradient before its first arithmetic: the
    # whole step, from the learning rate on, is the dense one, bit for bit,
    # duplicates included (their sum rounds as the dense gradient's does).
    rng = np.random.default_rng(4)
    w0 = initial_table().astype(dtype)
    grads = [(v.astype(dtype), i) for v, i in random_slices(rng, steps=3)]
    dense, dense_state = run_jsgd(make(), w0, grads, sparse=False, jit=True)
    sparse, sparse_state = run_jsgd(make(), w0, grads, sparse=True, jit=True)
    np.testing.assert_array_equal(np.float32(sparse), np.float32(dense))
    for a, b in zip(
        jax.tree.leaves(sparse_state), jax.tree.leaves(dense_state), strict=True
    ):
        np.testing.assert_array_equal(np.float32(a), np.float32(b))


def test_lazy_false_plain_sgd_sums_duplicates_before_the_step():
    # Four duplicates of 1e-8 at lr 1: the dense gradient is 4e-8 and
    # 1 - 4e-8 rounds to 0.99999994 in float32; four separate subtractions of
    # 1e-8 would each round back to 1.0 (the legacy lazy rule does that).
    g = (np.full((4, 1), 1e-8, np.float32), np.zeros(4, np.int32))
    w0 = np.ones((2, 1), np.float32)
    not_lazy, _ = run_jsgd(jsgd.sgd(1.0, lazy=False), w0, [g])
    lazy, _ = run_jsgd(jsgd.sgd(1.0), w0, [g])
    assert np.float32(not_lazy[0, 0]) == np.float32(1 - 4e-8) == np.float32(0.99999994)
    assert np.float32(lazy[0, 0]) == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: jsgd.sgd(schedule),
        lambda: jsgd.sgd(0.1, decay=0.5),
        lambda: jsgd.adagrad(schedule),
        lambda: jsgd.Adagrad(schedule, initial_accumulator_value=0.5, epsilon=1e-3),
    ],
    ids=["sgd", "sgd-legacy-decay", "adagrad", "Adagrad"],
)
def test_rules_without_stale_state_equal_the_dense_result(make):
    # No velocity: the lazy result is the dense one (duplicates add up either way).
    rng = np.random.default_rng(3)
    w0, grads = initial_table(), random_slices(rng)
    dense, dense_state = run_jsgd(make(), w0, grads, sparse=False)
    sparse, sparse_state = run_jsgd(make(), w0, grads, sparse=True, jit=True)
    np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-6)
    for a, b in zip(
        jax.tree.leaves(sparse_state), jax.tree.leaves(dense_state), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_clip_by_value_clips_values_before_duplicates_add_up():
    # tf.clip_by_value on IndexedSlices clips each value; the rows then add up.
    g = jsgd.IndexedSlices(jnp.array([[3.0], [3.0]]), jnp.array([0, 0]), (2, 1))
    tx = jsgd.clip_by_value(1.0)
    clipped, _ = tx.update({"w": g}, tx.init(None))
    np.testing.assert_allclose(clipped["w"].to_dense(), [[2.0], [0.0]])


def test_global_norm_counts_values_and_skips_padding():
    g = jsgd.IndexedSlices(
        jnp.array([[3.0, 0.0], [0.0, 4.0], [100.0, 100.0]]),
        jnp.array([1, 1, 7]),  # row 7 of 5: padding
        (5, 2),
    )
    tree = {"sparse": g, "dense": jnp.array([12.0])}
    assert float(jsgd.global_norm(tree)) == 13.0
    tx = jsgd.clip_by_global_norm(6.5)
    clipped, _ = tx.update(tree, tx.init(None))
    np.testing.assert_allclose(clipped["dense"], [6.0])
    np.testing.assert_allclose(clipped["sparse"].values[:2], [[1.5, 0], [0, 2.0]])
    np.testing.assert_allclose(float(jsgd.global_norm(clipped)), 6.5, rtol=1e-6)


def test_clip_by_norm_uses_the_values_norm():
    g = jsgd.IndexedSlices(jnp.array([[3.0], [4.0]]), jnp.array([0, 0]), (3, 1))
    tx = jsgd.clip_by_norm(1.0)
    clipped, _ = tx.update(g, tx.init(None))
    # ||values|| = 5 (not the dense row's 7), as tf.clip_by_norm.
    np.testing.assert_allclose(clipped.values, [[0.6], [0.8]], rtol=1e-6)


def test_decoupled_weight_decay_touches_each_row_once():
    w = jnp.arange(1.0, 5.0).reshape(4, 1)
    g = jsgd.IndexedSlices(jnp.zeros((3, 1)), jnp.array([2, 2, 0]), (4, 1))
    tx = jsgd.decoupled_weight_decay(0.5, learning_rate=0.1)
    u, _ = tx.update(g, tx.init(w), w)
    np.testing.assert_allclose(u.to_dense()[:, 0], [-0.05, 0, -0.15, 0], rtol=1e-6)
    dense_tx = jsgd.decoupled_weight_decay(0.5, learning_rate=0.1, lazy=False)
    u, _ = dense_tx.update(g, dense_tx.init(w), w)
    np.testing.assert_allclose(u[:, 0], [-0.05, -0.1, -0.15, -0.2], rtol=1e-6)


# --- trees, transformations, compilation ----------------------------------------


def mixed_problem():
    rng = np.random.default_rng(4)
    params = {
        "embedding": jnp.asarray(rng.normal(size=(N, D)), jnp.float32),
        "dense": {"w": jnp.asarray(rng.normal(size=(D, 2)), jnp.float32)},
        "frozen": jnp.ones(2),
    }
    grads = {
        "embedding": jsgd.IndexedSlices(
            jnp.asarray(rng.normal(size=(K, D)), jnp.float32),
            jnp.array([0, 3, 3, 5, 0, N], jnp.int32),
            (N, D),
        ),
        "dense": {"w": jnp.asarray(rng.normal(size=(D, 2)), jnp.float32)},
        "frozen": None,
    }
    return params, grads


@pytest.mark.parametrize(
    "tx",
    [
        jsgd.sgd(0.1, 0.9, nesterov=True, global_clipnorm=1.0, weight_decay=0.01),
        jsgd.SGD(0.1, momentum=0.9, clipvalue=0.3, clipnorm=2.0),
        jsgd.adagrad(0.1, clipnorm=1.0),
        optax.chain(jsgd.clip_by_global_norm(1.0), jsgd.sgd(0.1, 0.9)),
    ],
    ids=["sgd", "SGD", "adagrad", "optax.chain"],
)
def test_mixed_trees_jit_equals_eager_with_one_compile(tx):
    params, grads = mixed_problem()
    traces = []

    def step(params, state, grads):
        traces.append(1)
        updates, state = tx.update(grads, state, params)
        return jsgd.apply_updates(params, updates), state

    jitted = jax.jit(step)
    eager_params, eager_state = params, tx.init(params)
    jit_params, jit_state = params, tx.init(params)
    for i in range(3):
        scaled = jax.tree.map(lambda x, i=i: x * (i + 1), grads)  # values only
        scaled["embedding"] = jsgd.IndexedSlices(
            grads["embedding"].values * (i + 1), grads["embedding"].indices, (N, D)
        )
        eager_params, eager_state = step(eager_params, eager_state, scaled)
        jit_params, jit_state = jitted(jit_params, jit_state, scaled)
    assert len(traces) == 3 + 1  # three eager calls, one trace for all jitted
    for a, b in zip(
        jax.tree.leaves(eager_params), jax.tree.leaves(jit_params), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(jit_params["frozen"], params["frozen"])
    updates, _ = tx.update(grads, tx.init(params), params)
    assert isinstance(updates["embedding"], jsgd.IndexedSlices)
    assert updates["frozen"] is None


def test_one_trace_across_learning_rate_and_momentum_changes():
    params, grads = mixed_problem()
    tx = optax.inject_hyperparams(jsgd.sgd)(learning_rate=0.1, momentum=0.9)
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(1)
        updates, state = tx.update(grads, state, params)
        return jsgd.apply_updates(params, updates), state

    state = tx.init(params)
    for lr, m in [(0.1, 0.9), (0.05, 0.5), (0.2, 0.0)]:
        state.hyperparams["learning_rate"] = jnp.asarray(lr)
        state.hyperparams["momentum"] = jnp.asarray(m)
        params, state = step(params, state, grads)
    assert len(traces) == 1


def test_donated_step_updates_the_table_in_place():
    n, d, k = 100_000, 16, 64
    params = {"table": jnp.zeros((n, d))}
    tx = jsgd.sgd(0.1, momentum=0.9)
    state = tx.init(params)

    def step(params, state, values, indices):
        g = {"table": jsgd.IndexedSlices(values, indices, (n, d))}
        updates, state = tx.update(g, state, params)
        return jsgd.apply_updates(params, updates), state

    values, indices = jnp.ones((k, d)), jnp.arange(k, dtype=jnp.int32) * 7
    jitted = jax.jit(step, donate_argnums=(0, 1))
    compiled = jitted.lower(params, state, values, indices).compile()
    table_bytes = n * d * 4
    analysis = compiled.memory_analysis()
    if analysis is not None:  # O(k) scratch, not a copy of the table
        assert analysis.temp_size_in_bytes < table_bytes // 20
    new_params, new_state = jitted(params, state, values, indices)
    assert params["table"].is_deleted()  # donated: the buffer was reused
    np.testing.assert_allclose(new_params["table"][7], -0.1)
    assert float(jnp.abs(new_params["table"]).sum()) == pytest.approx(0.1 * k * d)
    del new_state


def test_vmap_over_a_batch_of_sparse_problems():
    tx = jsgd.sgd(0.1, momentum=0.9)
    tables = jnp.zeros((3, N, D))
    values = jnp.ones((3, K, D))
    indices = jnp.array([[0] * K, [1, 2, 3, 4, 5, 6], [N] * K], jnp.int32)

    def one(table, values, indices):
        params = {"t": table}
        updates, _ = tx.update(
            {"t": jsgd.IndexedSlices(values, indices, (N, D))}, tx.init(params), params
        )
        return jsgd.apply_updates(params, updates)["t"]

    batched = jax.vmap(one)(tables, values, indices)
    for i in range(3):
        np.testing.assert_allclose(batched[i], one(tables[i], values[i], indices[i]))
    np.testing.assert_allclose(batched[0, 0], -0.1 * K)  # duplicates summed
    np.testing.assert_allclose(batched[2], 0)  # all padding


def test_scan_over_steps():
    tx = jsgd.sgd(0.1, momentum=0.9)
    params = {"t": jnp.zeros((N, D))}

    def body(carry, idx):
        params, state = carry
        g = {"t": jsgd.IndexedSlices(jnp.ones((1, D)), idx[None], (N, D))}
        updates, state = tx.update(g, state, params)
        return (jsgd.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), jnp.array([0, 0]))
    np.testing.assert_allclose(params["t"][0], -0.1 - 0.19, rtol=1e-6)


def test_ema_averages_the_parameters_that_row_updates_produce():
    # use_ema on row updates: the updates pass through unchanged (still rows)
    # and the average is Keras's EMA of the parameters after each update.
    grads = random_slices(np.random.default_rng(5), steps=4)
    tx = jsgd.sgd(schedule, 0.9, use_ema=True, ema_momentum=0.5)
    plain = jsgd.sgd(schedule, 0.9)
    params = {"table": jnp.asarray(initial_table())}
    state, plain_state = tx.init(params), plain.init(params)
    average = None
    for values, indices in grads:
        g = {"table": jsgd.IndexedSlices(values, indices, (N, D))}
        updates, state = jax.jit(tx.update)(g, state, params)
        expected, plain_state = plain.update(g, plain_state, params)
        assert isinstance(updates["table"], jsgd.IndexedSlices)
        np.testing.assert_array_equal(updates["table"].values, expected["table"].values)
        params = jsgd.apply_updates(params, updates)
        w = np.asarray(params["table"])
        average = w if average is None else np.float32(0.5) * (average + w)
        np.testing.assert_allclose(
            jsgd.averaged_params(state)["table"], average, rtol=1e-6, atol=1e-7
        )


def test_ema_overwrite_with_row_updates_moves_every_row():
    # An overwrite step sets every row to its average, so with
    # ema_overwrite_frequency the row updates leave as dense arrays.
    grads = random_slices(np.random.default_rng(6), steps=2)
    tx = jsgd.sgd(
        schedule, 0.9, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2
    )
    params = {"table": jnp.asarray(initial_table())}
    state = tx.init(params)
    for values, indices in grads:
        g = {"table": jsgd.IndexedSlices(values, indices, (N, D))}
        updates, state = jax.jit(tx.update)(g, state, params)
        assert not isinstance(updates["table"], jsgd.IndexedSlices)
        params = jsgd.apply_updates(params, updates)
    np.testing.assert_allclose(
        params["table"], jsgd.averaged_params(state)["table"], rtol=1e-6, atol=1e-6
    )


def test_accumulate_gradients_with_sparse_rows_equals_dense():
    rng = np.random.default_rng(5)
    w0, grads = initial_table(), random_slices(rng, steps=4)
    tx = jsgd.sgd(0.1, 0.9, gradient_accumulation_steps=2)
    dense, _ = run_jsgd(tx, w0, grads, sparse=False)
    sparse, _ = run_jsgd(tx, w0, grads, sparse=True, jit=True)
    np.testing.assert_allclose(sparse, dense, rtol=1e-6, atol=1e-7)


# --- IndexedSlices itself ----------------------------------------------------------


@_oracle.hypothesis_twins(
    50,
    given(
        indices=st.lists(st.integers(-3, 8), min_size=1, max_size=12),
        seed=st.integers(0, 1000),
    ),
)
def test_coalesce_sums_duplicates_and_pads(indices, seed):
    n = 6
    values = np.random.default_rng(seed).normal(size=(len(indices), 2))
    g = jsgd.IndexedSlices(
        jnp.asarray(values, jnp.float32), jnp.asarray(indices, jnp.int32), (n, 2)
    )
    dense = np.zeros((n, 2))
    for v, i in zip(values, indices, strict=True):
        if 0 <= i < n:
            dense[i] += v
    c = g.coalesce()
    np.testing.assert_allclose(g.to_dense(), dense, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.to_dense(), dense, rtol=1e-5, atol=1e-6)
    distinct = sorted({i for i in indices if 0 <= i < n})
    assert list(np.asarray(c.indices)) == distinct + [n] * (
        len(indices) - len(distinct)
    )
    np.testing.assert_array_equal(np.asarray(c.values)[len(distinct) :], 0)


@_oracle.hypothesis_twins(
    30, given(indices=st.lists(st.integers(0, 9), min_size=1, max_size=20))
)
def test_both_grouping_strategies_agree(indices):
    # The CPU groups duplicates by binary search, accelerators by a key-value
    # sort; the CPU runs both here.
    from jsgd._sparse.indexed_slices import _segments_by_pair_sort, _segments_by_search

    indices = jnp.asarray(indices, jnp.int32)
    for a, b in zip(
        _segments_by_search(indices), _segments_by_pair_sort(indices), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("dtype", "n", "indices", "rows"),
    [
        (jnp.uint16, 70_000, [10, 5000, 65535], [10, 5000, 65535]),
        (jnp.int16, 40_000, [-1, 3, 32767], [3, 32767]),
        (jnp.uint8, 300, [255, 7, 7], [7, 255]),
    ],
)
def test_narrow_index_dtypes_reach_every_row(dtype, n, indices, rows):
    # The padding index n does not fit the indices' dtype: it must not wrap
    # onto a real row (70,000 as uint16 is 4,464), nor hide one.
    indices = jnp.array(indices, dtype)
    g = jsgd.IndexedSlices(jnp.ones((len(indices), 1)), indices, (n, 1))
    touched = lambda a: np.flatnonzero(np.asarray(a)[:, 0]).tolist()  # noqa: E731
    assert touched(g.to_dense()) == rows
    assert touched(jsgd.apply_updates(jnp.zeros((n, 1)), g)) == rows
    tx = jsgd.sgd(0.1, 0.9)
    params = {"table": jnp.zeros((n, 1))}
    updates, state = jax.jit(tx.update)({"table": g}, tx.init(params))
    assert touched(jsgd.apply_updates(params, updates)["table"]) == rows
    assert touched(velocity_of(state)) == rows
    table = jnp.arange(n, dtype=jnp.float32)[:, None]
    value, grad = jsgd.value_and_row_grad(lambda r: jnp.sum(r))(table, indices)
    looked_up = np.asarray(indices, np.int64)
    assert float(value) == float(np.sum(looked_up[(looked_up >= 0) & (looked_up < n)]))
    assert touched(grad.to_dense()) == rows


def test_indexed_slices_is_a_pytree_with_static_dense_shape():
    g = jsgd.IndexedSlices(jnp.ones((2, 3)), jnp.array([0, 1]), [4, 3])
    assert g.dense_shape == (4, 3) and g.shape == (4, 3) and g.dtype == jnp.float32
    leaves, treedef = jax.tree.flatten(g)
    assert len(leaves) == 2
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(g)]
    assert paths == [".values", ".indices"]
    assert jax.tree.unflatten(treedef, leaves).dense_shape == (4, 3)
    assert jax.jit(lambda g: g)(g).dense_shape == (4, 3)


def test_value_and_row_grad_matches_the_dense_gradient():
    rng = np.random.default_rng(6)
    table = jnp.asarray(rng.normal(size=(N, D)), jnp.float32)
    indices = jnp.array([[1, 4, 1], [7, N, 0]], jnp.int32)  # [batch, bag], padding
    target = jnp.asarray(rng.normal(size=(2, D)), jnp.float32)

    def loss_of_rows(rows, target):  # rows: [batch, bag, D]
        return jnp.sum((rows.sum(1) - target) ** 2)

    value, grad = jax.jit(jsgd.value_and_row_grad(loss_of_rows))(table, indices, target)
    safe = jnp.where(indices < N, indices, 0)
    mask = (indices < N)[..., None]

    def dense_loss(table):
        return loss_of_rows(jnp.where(mask, table[safe], 0), target)

    np.testing.assert_allclose(value, dense_loss(table), rtol=1e-6)
    np.testing.assert_allclose(grad.to_dense(), jax.grad(dense_loss)(table), rtol=1e-6)
    assert grad.values.shape == (6, D) and grad.dense_shape == (N, D)
    (value, aux), _ = jsgd.value_and_row_grad(
        lambda rows: (jnp.sum(rows), 7), has_aux=True
    )(table, indices)
    assert aux == 7


def test_apply_updates_is_optax_apply_updates_for_dense_trees():
    rng = np.random.default_rng(7)
    params = {
        "a": jnp.asarray(rng.normal(size=3), jnp.bfloat16),
        "b": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32),
        "c": None,
    }
    updates = {
        "a": jnp.asarray(rng.normal(size=3), jnp.float32),
        "b": jnp.ones((2, 2)),
        "c": None,
    }
    ours = jsgd.apply_updates(params, updates)
    theirs = optax.apply_updates(params, updates)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert ours["c"] is None
    frozen = jsgd.apply_updates({"w": jnp.ones(2)}, {"w": None})
    np.testing.assert_array_equal(frozen["w"], 1.0)


# --- errors ------------------------------------------------------------------------


def test_transforms_without_a_sparse_rule_name_the_leaf():
    params, grads = mixed_problem()
    for tx in (jsgd.scale_by_rmsprop(), jsgd.scale_by_adam()):
        with pytest.raises(
            TypeError, match=r"\['embedding'\].*IndexedSlices.*to_dense"
        ):
            tx.update(grads, tx.init(params), params)


def test_optax_transforms_that_scale_indices_are_caught_at_apply():
    params, grads = mixed_problem()
    tx = optax.sgd(0.1)  # maps over the indices too: float indices
    updates, _ = tx.update(grads, tx.init(params), params)
    with pytest.raises(TypeError, match="`indices` must be integers"):
        jsgd.apply_updates(params, updates)


def test_apply_updates_rejects_a_mismatched_dense_shape():
    g = jsgd.IndexedSlices(jnp.ones((1, 2)), jnp.array([0]), (3, 2))
    with pytest.raises(ValueError, match=r"dense_shape \(3, 2\).*shape \(4, 2\)"):
        jsgd.apply_updates(jnp.zeros((4, 2)), g)
    bad = jsgd.IndexedSlices(jnp.ones((2, 2)), jnp.array([0]), (3, 2))
    with pytest.raises(
        ValueError, match=r"values.shape=\(2, 2\), indices.shape=\(1,\)"
    ):
        bad.to_dense()
    with pytest.raises(TypeError, match="`dense_shape` must be a sequence"):
        jsgd.IndexedSlices(jnp.ones((1, 2)), jnp.array([0]), 3)


def test_lazy_must_be_a_bool():
    for make in (
        lambda: jsgd.momentum_trace(0.9, lazy=1),
        lambda: jsgd.sgd(0.1, lazy="yes"),
        lambda: jsgd.decoupled_weight_decay(0.1, 0.1, lazy=None),
    ):
        with pytest.raises(TypeError, match="lazy"):
            make()


def test_sgd_config_round_trips_lazy():
    opt = jsgd.SGD(0.1, momentum=0.9, lazy=False)
    config = opt.get_config()
    assert config["lazy"] is False
    assert jsgd.SGD.from_config(config) == opt
    assert math.isclose(config["momentum"], 0.9)


@pytest.mark.parametrize(
    ("param_dtype", "grad_dtype", "accumulator_dtype"),
    [
        (jnp.bfloat16, jnp.bfloat16, None),
        (jnp.float32, jnp.bfloat16, None),
        (jnp.bfloat16, jnp.bfloat16, jnp.float32),
        (jnp.float16, jnp.float16, None),
    ],
)
def test_sparse_dtypes_follow_the_rules(param_dtype, grad_dtype, accumulator_dtype):
    # Updates keep the gradient dtype, the velocity the parameter dtype (or
    # accumulator_dtype); the rows are computed in float32 and rounded once.
    params = {"table": jnp.ones((N, D), param_dtype)}
    tx = jsgd.sgd(0.1, 0.9, nesterov=True, accumulator_dtype=accumulator_dtype)
    state = tx.init(params)
    g = {
        "table": jsgd.IndexedSlices(
            jnp.full((3, D), 0.5, grad_dtype), jnp.array([1, 1, 4]), (N, D)
        )
    }
    updates, state = jax.jit(tx.update)(g, state, params)
    assert updates["table"].dtype == grad_dtype
    velocity = velocity_of(state)
    assert velocity.dtype == (accumulator_dtype or param_dtype)
    new = jsgd.apply_updates(params, updates)["table"]
    assert new.dtype == param_dtype
    # Row 1: g = 1.0 summed, v = -0.1, w = 1 + 0.9 * -0.1 - 0.1 = 0.81.
    np.testing.assert_allclose(np.float32(new[1, 0]), 0.81, rtol=1e-2)
    np.testing.assert_allclose(np.float32(new[4, 0]), 1 - 0.095, rtol=1e-2)
    np.testing.assert_array_equal(np.float32(new[0]), 1.0)


@pytest.mark.parametrize("table_dtype", [jnp.bfloat16, jnp.float16])
def test_rows_added_to_a_narrow_table_round_once(table_dtype):
    # A hundred duplicates of -0.003 into a row of ones: their float32 sum is
    # added in float32 and rounded once, as the dense step does; added one by
    # one in bfloat16 each would round (to 0.609). The accumulator of
    # gradient accumulation takes rows the same way.
    table = jnp.ones((4, 1), table_dtype)
    g = jsgd.IndexedSlices(
        jnp.full((100, 1), -0.003, jnp.float32), jnp.zeros(100, jnp.int32), (4, 1)
    )
    expected = optax.apply_updates(table, g.to_dense())
    assert expected[0, 0] == jnp.asarray(1 - 0.3, table_dtype)
    np.testing.assert_array_equal(jsgd.apply_updates(table, g), expected)
    tx = jsgd.sgd(1.0, gradient_accumulation_steps=2)
    _, sparse_state = tx.update(g, tx.init(table), table)
    _, dense_state = tx.update(g.to_dense(), tx.init(table), table)
    for a, b in zip(
        jax.tree.leaves(sparse_state), jax.tree.leaves(dense_state), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "tx",
    [jsgd.sgd(1.0, 0.9, nesterov=True), jsgd.sgd(1.0, 0.9)],
    ids=["nesterov", "heavy-ball"],
)
def test_low_precision_duplicates_are_summed_in_float32(tx):
    # bfloat16 rows 1 and 2**-8 at one index: their float32 sum 1.00390625
    # reaches the float32 velocity unrounded (as bfloat16 it would be 1.0).
    params = {"table": jnp.zeros((4, 1), jnp.float32)}
    values = jnp.array([[1.0], [2.0**-8]], jnp.bfloat16)
    g = {"table": jsgd.IndexedSlices(values, jnp.array([2, 2]), (4, 1))}
    _, state = jax.jit(tx.update)(g, tx.init(params), params)
    assert float(velocity_of(state)[2, 0]) == -1.00390625


@pytest.mark.parametrize(
    "tx",
    [
        jsgd.sgd(0.1, 0.9),
        jsgd.sgd(0.1, 0.9, nesterov=True),
        jsgd.adagrad(0.1),
        jsgd.sgd(0.1, 0.9, weight_decay=0.1),
    ],
    ids=["momentum", "nesterov", "adagrad", "weight-decay"],
)
def test_a_table_of_zero_rows_takes_row_updates(tx):
    params = jnp.zeros((0, 2))
    g = jsgd.IndexedSlices(jnp.ones((3, 2)), jnp.array([0, -1, 5]), (0, 2))
    updates, _ = jax.jit(tx.update)(g, tx.init(params), params)
    assert jsgd.apply_updates(params, updates).shape == (0, 2)


@pytest.mark.parametrize("k", [0, 1])
@pytest.mark.parametrize(
    "tx",
    [jsgd.sgd(0.1, 0.9), jsgd.sgd(0.1, 0.9, nesterov=True), jsgd.adagrad(0.1)],
    ids=["momentum", "nesterov", "adagrad"],
)
def test_zero_and_one_rows_need_no_special_case(tx, k):
    params = jnp.ones((3, 2))
    g = jsgd.IndexedSlices(jnp.ones((k, 2)), jnp.zeros((k,), jnp.int32), (3, 2))
    updates, _ = jax.jit(tx.update)(g, tx.init(params), params)
    dense, _ = tx.update(g.to_dense(), tx.init(params), params)
    np.testing.assert_allclose(
        jsgd.apply_updates(params, updates), params + dense, rtol=1e-6
    )
