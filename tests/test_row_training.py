"""make_train_step and sweep with row gradients (``row_tables=``).

The tables' gradients come as ``IndexedSlices`` from the gathered rows: with a
dense-equivalent optimizer (``lazy=False``) the run equals the dense one on
``table[indices]`` exactly; with the lazy rule it equals a hand-written loop
over :func:`jsgd.value_and_row_grad`; a sweep equals its separate runs
(under ``-m oracle``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd

RNG = np.random.default_rng(0)
PARAMS = {
    "users": jnp.asarray(RNG.normal(size=(20, 3)), jnp.float32),
    "items": jnp.asarray(RNG.normal(size=(10, 3)), jnp.float32),
    "bias": jnp.zeros(()),
}
STEPS = 6
U = jnp.asarray(RNG.integers(0, 20, size=(STEPS, 8)), jnp.int32)  # duplicates
ITEMS = jnp.asarray(RNG.integers(0, 10, size=(STEPS, 8)), jnp.int32)
R = jnp.asarray(RNG.normal(size=(STEPS, 8)), jnp.float32)
TABLES = {"users": 0, "items": 1}


def loss_of_rows(params, u, i, r):
    """The loss with each table already gathered: params["users"] is [8, 3]."""
    prediction = jnp.sum(params["users"] * params["items"], -1) + params["bias"]
    return jnp.mean((prediction - r) ** 2)


def dense_loss(params, u, i, r):
    rows = {**params, "users": params["users"][u], "items": params["items"][i]}
    return loss_of_rows(rows, u, i, r)


def run(step, opt, params=PARAMS):
    state = opt.init(params)
    losses = []
    for t in range(STEPS):
        params, state, loss = step(params, state, U[t], ITEMS[t], R[t])
        losses.append(float(loss))
    return params, losses


@pytest.mark.parametrize(
    "make",
    [
        lambda: jsgd.sgd(0.1, 0.9, lazy=False),
        lambda: jsgd.adagrad(0.1, lazy=False),
        lambda: jsgd.SGD(0.1, momentum=0.9, nesterov=True, lazy=False),
    ],
    ids=["sgd", "adagrad", "SGD-nesterov"],
)
def test_row_gradients_with_a_dense_rule_equal_the_dense_run(make):
    rows, row_losses = run(
        jsgd.make_train_step(loss_of_rows, make(), row_tables=TABLES, donate=False),
        make(),
    )
    dense, dense_losses = run(
        jsgd.make_train_step(dense_loss, make(), donate=False), make()
    )
    np.testing.assert_allclose(row_losses, dense_losses, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(rows), jax.tree.leaves(dense), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_the_lazy_rule_equals_a_hand_written_row_loop():
    opt = jsgd.sgd(0.1, 0.9)  # lazy: only touched rows' velocity changes
    rows, _ = run(
        jsgd.make_train_step(loss_of_rows, opt, row_tables=TABLES, donate=False), opt
    )

    @jax.jit
    def hand_step(params, state, u, i, r):
        def of_rows(user_rows, item_rows, bias):
            rows = {"users": user_rows, "items": item_rows, "bias": bias}
            return loss_of_rows(rows, u, i, r)

        g_users, g_items, g_bias = jax.grad(of_rows, argnums=(0, 1, 2))(
            params["users"][u], params["items"][i], params["bias"]
        )
        grads = {
            "users": jsgd.IndexedSlices(g_users, u, params["users"].shape),
            "items": jsgd.IndexedSlices(g_items, i, params["items"].shape),
            "bias": g_bias,
        }
        updates, state = opt.update(grads, state, params)
        return jsgd.apply_updates(params, updates), state

    params, state = PARAMS, opt.init(PARAMS)
    for t in range(STEPS):
        params, state = hand_step(params, state, U[t], ITEMS[t], R[t])
    for a, b in zip(jax.tree.leaves(rows), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.oracle
def test_sweep_with_row_tables_equals_separate_runs():
    lrs = [0.05, 0.1]
    result = jsgd.sweep(
        jsgd.sgd,
        {"learning_rate": lrs, "momentum": [0.9, 0.5]},
        loss_of_rows,
        PARAMS,
        (U, ITEMS, R),
        row_tables=TABLES,
    )
    for k, (lr, m) in enumerate(zip(lrs, [0.9, 0.5], strict=True)):
        opt = jsgd.sgd(lr, m)
        params, losses = run(
            jsgd.make_train_step(loss_of_rows, opt, row_tables=TABLES, donate=False),
            opt,
        )
        np.testing.assert_allclose(result.losses[k], losses, rtol=1e-5)
        for a, b in zip(
            jax.tree.leaves(jax.tree.map(lambda x, k=k: x[k], result.params)),
            jax.tree.leaves(params),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_row_tables_errors():
    opt = optax.sgd(0.1)
    with pytest.raises(TypeError, match="`row_tables` must map"):
        jsgd.make_train_step(loss_of_rows, opt, row_tables={"users": "0"})
    with pytest.raises(ValueError, match="not supported"):
        jsgd.make_train_step(loss_of_rows, opt, row_tables=TABLES, axis_name="d")
    step = jsgd.make_train_step(loss_of_rows, opt, row_tables={"nope": 0})
    with pytest.raises(KeyError, match="'nope'"):
        step(PARAMS, opt.init(PARAMS), U[0], ITEMS[0], R[0])
    step = jsgd.make_train_step(loss_of_rows, opt, row_tables={"users": 5})
    with pytest.raises(IndexError, match="has 3 arguments"):
        step(PARAMS, opt.init(PARAMS), U[0], ITEMS[0], R[0])
    step = jsgd.make_train_step(loss_of_rows, opt, row_tables={"users": 2})
    with pytest.raises(TypeError, match="must be integers"):
        step(PARAMS, opt.init(PARAMS), U[0], ITEMS[0], R[0])
