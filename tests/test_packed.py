"""jsgd.pack: a tree as one flat buffer per dtype, and optimizers stepping it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsgd

SCHEDULE = jsgd.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)


def _many_leaves(seed: int, leaves: int = 300, size: int = 350):
    rng = np.random.default_rng(seed)
    tree = {
        f"l{i}": jnp.asarray(rng.normal(size=(size // 7, 7)), jnp.float32)
        for i in range(leaves)
    }
    tree["big"] = jnp.asarray(rng.normal(size=(400, 300)), jnp.float32)
    return tree


def _assert_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_pack_and_unpack_are_exact_for_every_dtype():
    tree = {
        "w": jnp.arange(6.0).reshape(2, 3),
        "steps": jnp.arange(3, dtype=jnp.int32),
        "half": [jnp.ones(2, jnp.bfloat16), jnp.full((), 3, jnp.bfloat16)],
        "b": jnp.zeros((0, 4)),
        "scalar": 2.5,
    }
    flat = jsgd.pack(tree)
    # In order of first appearance, the dict's keys sorted: b, half, scalar...
    assert [b.dtype for b in flat.buffers] == [jnp.float32, jnp.bfloat16, jnp.int32]
    assert [b.shape for b in flat.buffers] == [(7,), (3,), (3,)]
    expected = dict(tree, scalar=jnp.asarray(2.5))
    _assert_equal(flat.unpack(), expected)
    _assert_equal(jax.jit(lambda f: f.unpack())(flat), expected)
    assert repr(flat) == "Packed(6 leaves in float32[7], bfloat16[3], int32[3])"
    # The layout is static: a second pack of the same shapes traces nothing new.
    again = jsgd.pack(jax.tree.map(lambda x: x + 1, expected))
    assert jax.tree.structure(again) == jax.tree.structure(flat)


def test_a_leaf_that_is_not_an_array_is_named():
    with pytest.raises(TypeError, match=r"\['b'\]\[1\] is not an array. Received: str"):
        jsgd.pack({"a": jnp.ones(2), "b": [jnp.ones(1), "x"]})


def test_packing_copies_so_donating_the_packed_tree_keeps_the_original():
    tree = {"w": jnp.ones(4)}
    flat = jsgd.pack(tree)
    jax.jit(lambda f: jax.tree.map(lambda b: b * 2, f), donate_argnums=0)(flat)
    np.testing.assert_array_equal(np.asarray(tree["w"]), np.ones(4))


@pytest.mark.parametrize(
    "opt",
    [
        pytest.param(jsgd.sgd(SCHEDULE, 0.9, lr_in_velocity=False), id="sgd"),
        pytest.param(
            jsgd.SGD(SCHEDULE, momentum=0.9, nesterov=True, global_clipnorm=1.0),
            id="keras-nesterov-clip",
        ),
        pytest.param(
            jsgd.torch.SGD(0.05, momentum=0.9, weight_decay=0.01),
            id="torch-sgd",
            marks=pytest.mark.oracle,
        ),
        pytest.param(jsgd.Adam(SCHEDULE), id="adam", marks=pytest.mark.oracle),
    ],
)
def test_an_elementwise_optimizer_steps_a_packed_tree_as_the_tree(opt):
    # Eager, op by op: the same operations on the same numbers, so the same
    # bits; the global norm's sum runs over the buffer instead of the
    # leaves, hence the tolerance where the clip is on.
    params = _many_leaves(0)
    flat = jsgd.pack(params)
    state, flat_state = opt.init(params), opt.init(flat)
    for k in range(4):
        grads = _many_leaves(10 + k)
        params, state = jsgd.apply_gradients(opt, grads, state, params)
        flat, flat_state = jsgd.apply_gradients(opt, jsgd.pack(grads), flat_state, flat)
    for x, y in zip(
        jax.tree.leaves(flat.unpack()), jax.tree.leaves(params), strict=True
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-6, atol=1e-7)


@pytest.mark.skipif(not jsgd.fused_available(), reason="no native kernel")
def test_a_packed_tree_of_small_leaves_takes_the_fused_kernel():
    # 301 leaves of 350 elements on average: too small for the kernel as a
    # tree, one buffer of 225,000 elements once packed.
    opt = jsgd.sgd(0.05, 0.9, nesterov=True, lr_in_velocity=False)
    params = _many_leaves(1)
    flat = jsgd.pack(params)
    grads = jsgd.pack(_many_leaves(2))

    def step(p, s, g):
        return jsgd.apply_gradients(opt, g, s, p)

    state = opt.init(flat)
    assert "jsgd_fused_sgd" in jax.jit(step).lower(flat, state, grads).as_text()
    tree_state = opt.init(params)
    assert (
        "jsgd_fused_sgd"
        not in jax.jit(step).lower(params, tree_state, grads.unpack()).as_text()
    )
    updates, expected_state = opt.update(grads, state, flat)  # eagerly
    expected = jsgd.apply_updates(flat, updates)
    pointer = flat.buffers[0].unsafe_buffer_pointer()
    new_flat, new_state = jax.jit(step, donate_argnums=(0, 1))(flat, state, grads)
    assert new_flat.buffers[0].unsafe_buffer_pointer() == pointer  # in place
    _assert_equal((new_flat, new_state), (expected, expected_state))


def test_the_gradient_of_a_packed_tree_is_packed_and_make_train_step_takes_it():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    flat = jsgd.pack(params)

    def loss_fn(packed, x):
        p = packed.unpack()
        return jnp.sum((x @ p["w"] + p["b"]) ** 2)

    x = jnp.ones((4, 2))
    grads = jax.grad(loss_fn)(flat, x)
    assert isinstance(grads, jsgd.Packed)
    tree_grads = jax.grad(lambda p, x: loss_fn(jsgd.pack(p), x))(params, x)
    _assert_equal(grads.unpack(), tree_grads)
    opt = jsgd.SGD(0.01, momentum=0.9)
    step = jsgd.make_train_step(loss_fn, opt, donate=False)
    new_flat, _, loss = step(flat, opt.init(flat), x)
    assert isinstance(new_flat, jsgd.Packed)
    tree_step = jsgd.make_train_step(
        lambda p, x: loss_fn(jsgd.pack(p), x), opt, donate=False
    )
    new_params, _, tree_loss = tree_step(params, opt.init(params), x)
    np.testing.assert_allclose(float(loss), float(tree_loss))
    for a, b in zip(
        jax.tree.leaves(new_flat.unpack()), jax.tree.leaves(new_params), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
