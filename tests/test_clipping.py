"""Clipping: float32 norm accumulation, non-finite results, sharded global norms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec

import jsgd


def apply(tx, grads):
    updates, _ = tx.update(grads, tx.init(grads), grads)
    return updates


def test_float16_global_norm_does_not_overflow():
    # 4 elements of 300: the norm is 600, but a float16 sum of squares (360000)
    # overflows past 65504.
    grads = {"a": jnp.full((4,), 300.0, jnp.float16)}
    assert not jnp.isfinite(jnp.sum(grads["a"] ** 2))
    out = apply(jsgd.clip_by_global_norm(1.0), grads)
    assert out["a"].dtype == jnp.float16
    np.testing.assert_allclose(out["a"].astype(np.float32), 0.5, rtol=1e-3)
    out = apply(jsgd.clip_by_norm(1.0), grads)
    np.testing.assert_allclose(out["a"].astype(np.float32), 0.5, rtol=1e-3)


def test_bfloat16_gradients_keep_their_dtype():
    grads = {"a": jnp.array([3.0, 4.0], jnp.bfloat16), "b": jnp.ones(2)}
    for tx in (
        jsgd.clip_by_value(1.0),
        jsgd.clip_by_norm(1.0),
        jsgd.clip_by_global_norm(1.0),
    ):
        out = apply(tx, grads)
        assert out["a"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float32


def test_zero_gradients_stay_zero():
    grads = {"a": jnp.zeros(3), "b": jnp.zeros(())}
    for tx in (jsgd.clip_by_norm(1.0), jsgd.clip_by_global_norm(1.0)):
        for leaf in jax.tree.leaves(apply(tx, grads)):
            np.testing.assert_array_equal(leaf, 0.0)


def test_norm_clips_are_differentiable_at_zero():
    def clipped_sum(g):
        return jnp.sum(apply(jsgd.clip_by_global_norm(1.0), g))

    grad = jax.grad(clipped_sum)(jnp.zeros(3))
    np.testing.assert_array_equal(grad, 1.0)


def test_non_finite_global_norm_makes_every_update_nan():
    grads = {"a": jnp.array([1.0, jnp.inf]), "b": jnp.array([0.5, 0.25])}
    out = apply(jsgd.clip_by_global_norm(1.0), grads)
    # Keras 3's rule: never a silent partial zeroing of the finite leaf.
    assert bool(jnp.all(jnp.isnan(out["a"]))) and bool(jnp.all(jnp.isnan(out["b"])))
    grads["a"] = jnp.array([1.0, jnp.nan])
    out = apply(jsgd.clip_by_global_norm(1.0), grads)
    assert bool(jnp.all(jnp.isnan(out["b"])))


def test_non_finite_leaf_norm_makes_only_that_leaf_nan():
    grads = {"a": jnp.array([1.0, jnp.inf]), "b": jnp.array([3.0, 4.0])}
    out = apply(jsgd.clip_by_norm(1.0), grads)
    assert bool(jnp.all(jnp.isnan(out["a"])))
    np.testing.assert_allclose(out["b"], [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_an_overflowing_sum_of_squares_counts_as_non_finite(dtype):
    # Finite entries whose squares overflow float32 (1e20**2 > 3.4e38): the
    # norm is inf, so the leaf (or, for the global norm, every leaf) is NaN,
    # the documented signal of a bad step (Keras 3's clipnorm gives zeros).
    grads = {"a": jnp.array([1e20, -2e20, 0.5], dtype), "b": jnp.array([3.0, 4.0])}
    out = apply(jsgd.clip_by_norm(1.0), grads)
    assert bool(jnp.all(jnp.isnan(out["a"])))
    np.testing.assert_allclose(out["b"], [0.6, 0.8], rtol=1e-6)
    out = apply(jsgd.clip_by_global_norm(1.0), grads)
    assert all(bool(jnp.all(jnp.isnan(u))) for u in out.values())


def test_clip_by_value_keeps_nan_and_clips_inf():
    out = apply(jsgd.clip_by_value(2.0), jnp.array([jnp.nan, jnp.inf, -jnp.inf, 1.0]))
    assert bool(jnp.isnan(out[0]))
    np.testing.assert_array_equal(out[1:], [2.0, -2.0, 1.0])


def test_complex_leaves():
    g = jnp.array([3 + 4j, 0.3 - 0.4j], jnp.complex64)
    np.testing.assert_allclose(
        apply(jsgd.clip_by_value(1.0), g), [1 + 1j, 0.3 - 0.4j], rtol=1e-6
    )
    # |g| = sqrt(25 + 0.25)
    norm = np.sqrt(25.25)
    np.testing.assert_allclose(
        apply(jsgd.clip_by_norm(1.0), g), np.asarray(g) / norm, rtol=1e-6
    )


def test_global_norm_helper():
    tree = {"a": jnp.array([3.0]), "b": [jnp.array([[4.0]]), None]}
    assert float(jsgd.global_norm(tree)) == 5.0
    assert float(jsgd.global_norm({})) == 0.0


# --- sharded gradients: axis_name -------------------------------------------------

N_DEVICES = 8


def sharded_problem():
    rng = np.random.default_rng(0)
    grads = {
        "w": jnp.asarray(rng.normal(size=(N_DEVICES * 2, 3)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(N_DEVICES,)), jnp.float32),
    }
    expected = apply(jsgd.clip_by_global_norm(1.0), grads)
    assert float(jsgd.global_norm(grads)) > 1.0  # the clip binds
    return grads, expected


@pytest.fixture(autouse=True)
def _needs_devices():
    if jax.device_count() < N_DEVICES:
        pytest.skip("needs 8 (fake CPU) devices; see tests/conftest.py")


def test_global_norm_clip_under_pmap_matches_unsharded():
    grads, expected = sharded_problem()
    shards = jax.tree.map(lambda g: g.reshape(N_DEVICES, -1, *g.shape[1:]), grads)
    tx = jsgd.clip_by_global_norm(1.0, axis_name="devices")

    @functools.partial(jax.pmap, axis_name="devices")
    def clip(g):
        return tx.update(g, tx.init(g))[0]

    out = jax.tree.map(lambda s: s.reshape(-1, *s.shape[2:]), clip(shards))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), out, expected
    )
    # Without axis_name each shard would be clipped by its own norm: different.
    local = jsgd.clip_by_global_norm(1.0)
    wrong = jax.pmap(lambda g: local.update(g, local.init(g))[0])(shards)
    wrong = jax.tree.map(lambda s: s.reshape(-1, *s.shape[2:]), wrong)
    assert not np.allclose(wrong["w"], expected["w"])


def test_global_norm_clip_under_shard_map_matches_unsharded():
    grads, expected = sharded_problem()
    mesh = Mesh(np.array(jax.devices()[:N_DEVICES]).reshape(2, 4), ("data", "model"))
    # Every leaf is split over both mesh axes, so the psum over both counts
    # each element exactly once.
    both = PartitionSpec(("data", "model"))
    spec = {"w": both, "b": both}
    tx = jsgd.clip_by_global_norm(1.0, axis_name=("data", "model"))

    def clip(g):
        return tx.update(g, tx.init(g))[0]

    out = jax.shard_map(clip, mesh=mesh, in_specs=(spec,), out_specs=spec)(grads)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), out, expected
    )


def test_global_clip_program_grows_linearly_with_the_leaf_count():
    # A `where` on the sum of squares once made XLA copy the whole N-term sum
    # into each of the N leaves' fusions: O(N^2) program size and compile time
    # (minutes at 3,000 leaves). Size, not time, is asserted.
    def program_lines(leaves):
        tree = {f"l{i}": jnp.ones(8) for i in range(leaves)}
        tx = jsgd.clip_by_global_norm(1.0)
        step = jax.jit(lambda t: tx.update(t, tx.init(t))[0])
        return step.lower(tree).compile().as_text().count("\n")

    assert program_lines(200) < 2.5 * program_lines(100)


def test_clip_gradient_at_zero_and_nan_is_unchanged():
    # The custom JVP keeps the finite derivative at 0 that meta-learning needs.
    tx = jsgd.clip_by_global_norm(1.0)

    def clipped_sum(g):
        return jnp.sum(tx.update(g, tx.init(g))[0])

    np.testing.assert_array_equal(jax.grad(clipped_sum)(jnp.zeros(3)), 1.0)
    np.testing.assert_allclose(
        jax.grad(clipped_sum)(jnp.array([3.0, 4.0, 0.0])),
        [0.2 - 0.056 * 3, 0.2 - 0.056 * 4, 0.2],  # c/N - c*sum(g)*g/N**3
        rtol=1e-5,
    )
