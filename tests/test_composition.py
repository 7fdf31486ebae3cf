"""jsgd inside JAX and optax: vmap over hyperparameters, pytrees, chain,
inject_hyperparams, MultiSteps and flax.nnx.Optimizer.

jit against eager, vmap over an ensemble, eval_shape of init and
apply_if_finite are tested once for every transform and optimizer, in
test_reliability.py (the registry is tests/_registry.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd

PARAMS = {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.1, -0.1])}


def loss(params, x):
    return jnp.sum((x @ params["w"] + params["b"]) ** 2)


def batches(n, seed=0):
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.normal(size=(3, 2)), jnp.float32) for _ in range(n)]


def train(tx, steps):
    params, state = PARAMS, tx.init(PARAMS)
    for x in batches(steps):
        updates, state = tx.update(jax.grad(loss)(params, x), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def chex_close(a, b, rtol=1e-6, atol=1e-7):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol, atol), a, b)


def test_counters_are_int32_and_saturate():
    tx = jsgd.sgd(lambda count: 0.1, momentum=0.9)
    state = tx.init(PARAMS)
    counts = [leaf for leaf in jax.tree.leaves(state) if leaf.shape == ()]
    assert counts and all(c.dtype == jnp.int32 for c in counts)
    top = jnp.iinfo(jnp.int32).max
    state = jax.tree.map(lambda x: jnp.full_like(x, top) if x.shape == () else x, state)
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    _, state = tx.update(grads, state, PARAMS)
    counts = [leaf for leaf in jax.tree.leaves(state) if leaf.shape == ()]
    assert all(int(c) == top for c in counts)


def test_inject_hyperparams_changes_lr_and_momentum_without_recompiling():
    traces = []

    def make(lr_in_velocity):
        tx = optax.inject_hyperparams(jsgd.sgd, static_args=("lr_in_velocity",))(
            learning_rate=0.1, momentum=0.9, lr_in_velocity=lr_in_velocity
        )

        @jax.jit
        def step(params, state, grads):
            traces.append(1)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return tx, step

    for lr_in_velocity, expected in ((True, -0.2), (False, -0.119)):
        traces.clear()
        tx, step = make(lr_in_velocity)
        w = jnp.zeros(())
        state = tx.init(w)
        w, state = step(w, state, jnp.ones(()))
        state.hyperparams["learning_rate"] = jnp.asarray(0.01, jnp.float32)
        w, state = step(w, state, jnp.ones(()))
        # The design notes' worked example: Keras -0.200, optax/torch -0.119.
        assert float(w) == pytest.approx(expected, abs=1e-6)
        state.hyperparams["momentum"] = jnp.asarray(0.0, jnp.float32)
        w2, state = step(w, state, jnp.ones(()))
        # Momentum 0 now: the step is exactly -lr * g.
        assert float(w2 - w) == pytest.approx(-0.01, abs=1e-7)
        assert len(traces) == 1


def test_chain_with_optax_transforms():
    tx = optax.chain(
        optax.clip(0.5), jsgd.clip_by_global_norm(1.0), jsgd.SGD(0.1, momentum=0.9)
    )
    manual = jsgd.sgd(0.1, momentum=0.9, clipvalue=0.5, global_clipnorm=1.0)
    chex_close(train(tx, 5)[0], train(manual, 5)[0])


def test_multisteps_accumulates_then_steps():
    opt = jsgd.SGD(0.1, momentum=0.9)
    multi = optax.MultiSteps(opt, every_k_schedule=2)
    xs = batches(4)
    params, state = PARAMS, multi.init(PARAMS)
    for x in xs:
        grads = jax.grad(loss)(params, x)
        updates, state = multi.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    # Two real steps on the mean of each pair of micro-batch gradients.
    ref, ref_state = PARAMS, opt.init(PARAMS)
    for x0, x1 in ((xs[0], xs[1]), (xs[2], xs[3])):
        g = jax.tree.map(
            lambda a, b: (a + b) / 2,
            jax.grad(loss)(ref, x0),
            jax.grad(loss)(ref, x1),
        )
        updates, ref_state = opt.update(g, ref_state, ref)
        ref = optax.apply_updates(ref, updates)
    chex_close(params, ref)


def test_vmap_over_learning_rates():
    def one_step(lr):
        tx = jsgd.sgd(lr, momentum=0.9)
        updates, _ = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), jnp.zeros(2))
        return updates

    out = jax.vmap(one_step)(jnp.array([0.1, 0.2, 0.4]))
    np.testing.assert_allclose(out, [[-0.1] * 2, [-0.2] * 2, [-0.4] * 2], rtol=1e-6)


@pytest.mark.parametrize(
    "tx",
    [
        jsgd.sgd(0.1, 0.9, clipnorm=1.0, weight_decay=0.1),
        jsgd.sgd(0.1, 0.9, True, global_clipnorm=1.0, lr_in_velocity=False),
        jsgd.SGD(0.1, momentum=0.5, clipvalue=0.1),
    ],
    ids=["keras", "optax", "class"],
)
def test_none_leaves_survive(tx):
    params = {"a": jnp.ones(3), "frozen": jnp.ones(2), "empty": None}
    grads = {"a": jnp.ones(3), "frozen": None, "empty": None}
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(grads, state, params)
        assert updates["frozen"] is None and updates["empty"] is None
        # optax.apply_updates needs an update for every parameter; skip Nones.
        params = jax.tree.map(
            lambda p, u: p if u is None else p + u,
            params,
            updates,
            is_leaf=lambda x: x is None,
        )
    np.testing.assert_array_equal(params["frozen"], jnp.ones(2))
    assert float(params["a"][0]) < 1.0


def test_tuple_and_nested_pytrees():
    tx = jsgd.sgd(0.1, 0.9)
    params = (jnp.ones(2), [jnp.zeros(()), {"x": jnp.ones((2, 2))}])
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    for u in jax.tree.leaves(updates):
        np.testing.assert_allclose(u, -0.1 * np.ones(u.shape), rtol=1e-6)


def test_flax_nnx_optimizer():
    from flax import nnx

    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    reference = nnx.state(model, nnx.Param)
    opt = jsgd.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    optimizer = nnx.Optimizer(model, opt, wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)

    def model_loss(model):
        return jnp.mean(model(x) ** 2)

    @nnx.jit
    def train_step(model, optimizer):
        grads = nnx.grad(model_loss)(model)
        optimizer.update(model, grads)

    def pure_loss(state):
        w, b = state["kernel"], state["bias"]
        return jnp.mean((x @ w + b) ** 2)

    params = {"kernel": reference["kernel"][...], "bias": reference["bias"][...]}
    state = opt.init(params)
    for _ in range(3):
        train_step(model, optimizer)
        updates, state = opt.update(jax.grad(pure_loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(model.kernel[...], params["kernel"], atol=1e-6)
    np.testing.assert_allclose(model.bias[...], params["bias"], atol=1e-6)


def test_nnx_state_pytree():
    from flax import nnx

    model = nnx.Linear(2, 2, rngs=nnx.Rngs(1))
    params = nnx.state(model, nnx.Param)
    tx = jsgd.sgd(0.1, 0.9)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert isinstance(updates, nnx.State)
    for u in jax.tree.leaves(updates):
        np.testing.assert_allclose(u, -0.1 * np.ones(u.shape), rtol=1e-6)
