"""Hand-computed tables: the legacy tf.keras (TF 2.x OptimizerV2) doctests and the two conventions.

A constant learning rate cannot tell Keras's rule (lr inside the velocity)
from optax's/torch's (lr outside), so every table here changes it.
"""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd


def run(tx, grads, w0=0.0):
    """Applies ``tx`` to a scalar parameter; returns the parameter after each step."""
    w = jnp.asarray(w0, jnp.float32)
    state = tx.init(w)
    trajectory = []
    for g in grads:
        updates, state = tx.update(jnp.asarray(g, jnp.float32), state, w)
        w = optax.apply_updates(w, updates)
        trajectory.append(float(w))
    return trajectory


def schedule_from(lrs):
    table = jnp.asarray(lrs, jnp.float32)
    return lambda count: table[jnp.minimum(count, len(lrs) - 1)]


# --- the legacy tf.keras (TF 2.x OptimizerV2) doctests ---------------------------


def loss(var):
    return var**2 / 2.0


def test_doctest_plain_sgd_gives_0_9():
    var, _ = jsgd.SGD(learning_rate=0.1).minimize(loss, jnp.array(1.0))
    assert float(var) == pytest.approx(0.9, abs=1e-7)


def test_doctest_momentum_first_step_0_1_then_0_18():
    opt = jsgd.SGD(learning_rate=0.1, momentum=0.9)
    val0 = jnp.array(1.0)
    val1, state = opt.minimize(loss, val0)
    val2, state = opt.minimize(loss, val1, state)
    assert float(val0 - val1) == pytest.approx(0.1, abs=1e-7)
    assert float(val1 - val2) == pytest.approx(0.18, abs=1e-7)


def test_doctest_functional_sgd_matches_class():
    tx = jsgd.sgd(learning_rate=0.1, momentum=0.9)
    assert run(tx, [1.0, 0.9], w0=1.0) == pytest.approx([0.9, 0.72], abs=1e-7)


# --- lr 0.1 then 0.01, g = 1, m = 0.9, w0 = 0 (design notes section 2) ---------

CHANGING_LR = schedule_from([0.1, 0.01])


@pytest.mark.parametrize(
    ("nesterov", "lr_in_velocity", "expected"),
    [
        # Keras: v1 = -0.1, w1 = -0.1; v2 = 0.9*-0.1 - 0.01 = -0.1, w2 = -0.2.
        (False, True, [-0.1, -0.2]),
        # optax/torch: b1 = 1, w1 = -0.1; b2 = 1.9, w2 = -0.1 - 0.01*1.9 = -0.119.
        (False, False, [-0.1, -0.119]),
        # Keras Nesterov: w1 = 0.9*-0.1 - 0.1 = -0.19; w2 = -0.19 + 0.9*-0.1 - 0.01.
        (True, True, [-0.19, -0.29]),
        # optax/torch Nesterov: w1 = -0.1*(1 + 0.9); w2 = w1 - 0.01*(1 + 0.9*1.9).
        (True, False, [-0.19, -0.2171]),
    ],
    ids=["keras-momentum", "optax-momentum", "keras-nesterov", "optax-nesterov"],
)
def test_changing_learning_rate_table(nesterov, lr_in_velocity, expected):
    tx = jsgd.sgd(CHANGING_LR, 0.9, nesterov, lr_in_velocity=lr_in_velocity)
    np.testing.assert_allclose(run(tx, [1.0, 1.0]), expected, rtol=1e-6)
    opt = jsgd.SGD(CHANGING_LR, 0.9, nesterov, lr_in_velocity=lr_in_velocity)
    np.testing.assert_allclose(run(opt, [1.0, 1.0]), expected, rtol=1e-6)


def test_conventions_agree_while_the_learning_rate_is_constant():
    grads = [1.0, -2.0, 0.5, 3.0, 1.5]
    for nesterov in (False, True):
        keras = run(jsgd.sgd(0.05, 0.9, nesterov), grads)
        torch = run(jsgd.sgd(0.05, 0.9, nesterov, lr_in_velocity=False), grads)
        np.testing.assert_allclose(keras, torch, rtol=1e-6)


# --- five steps with dampening ------------------------------------------------
# m = 0.9, d = 0.5, g = [1, 2, -1, 0.5, 3], lr = [0.1, 0.1, 0.05, 0.05, 0.01].

DAMPENING_GRADS = [1.0, 2.0, -1.0, 0.5, 3.0]
DAMPENING_LR = schedule_from([0.1, 0.1, 0.05, 0.05, 0.01])


def test_dampening_table_torch_rule():
    # b1 = g1 = 1 (torch's first step is undamped); b_t = 0.9*b + 0.5*g:
    # b = 1, 1.9, 1.21, 1.339, 2.7051;  w -= lr_t * b_t:
    expected = [-0.1, -0.29, -0.3505, -0.41745, -0.444501]
    tx = jsgd.sgd(DAMPENING_LR, 0.9, dampening=0.5, lr_in_velocity=False)
    np.testing.assert_allclose(run(tx, DAMPENING_GRADS), expected, rtol=1e-6)


def test_dampening_table_keras_rule():
    # u_t = -lr_t*g_t = -0.1, -0.2, 0.05, -0.025, -0.03; v1 = u1;
    # v_t = 0.9*v + 0.5*u: -0.1, -0.19, -0.146, -0.1439, -0.14451; w += v:
    expected = [-0.1, -0.29, -0.436, -0.5799, -0.72441]
    tx = jsgd.sgd(DAMPENING_LR, 0.9, dampening=0.5)
    np.testing.assert_allclose(run(tx, DAMPENING_GRADS), expected, rtol=1e-6)


def test_dampening_table_torch_nesterov():
    # d = 0.5 with Nesterov (torch forbids it; jsgd defines it): output
    # g_t + 0.9*b_t = 1.9, 3.71, 0.089, 1.7051, 5.43459; w -= lr_t * output.
    expected = [-0.19, -0.561, -0.56545, -0.650705, -0.7050509]
    tx = jsgd.sgd(DAMPENING_LR, 0.9, True, dampening=0.5, lr_in_velocity=False)
    np.testing.assert_allclose(run(tx, DAMPENING_GRADS), expected, rtol=1e-6)


# --- legacy decay and weight decay --------------------------------------------


def test_legacy_decay_table():
    # lr_t = 0.1 / (1 + 1.0 * t): 0.1, 0.05, 0.0333...; g = 1, m = 0.9, Keras:
    # v = -0.1, -0.14, -0.159333...; w = -0.1, -0.24, -0.399333...
    tx = jsgd.sgd(0.1, 0.9, decay=1.0)
    np.testing.assert_allclose(
        run(tx, [1.0, 1.0, 1.0]), [-0.1, -0.24, -0.3993333], rtol=1e-6
    )


def test_decoupled_weight_decay_table():
    # w0 = 1, g = 0, lr = 0.1 then 0.01, wd = 0.5: w1 = 1 - 0.1*0.5*1 = 0.95;
    # w2 = 0.95 - 0.01*0.5*0.95 = 0.94525. Momentum never sees the decay.
    tx = jsgd.sgd(CHANGING_LR, 0.9, weight_decay=0.5)
    np.testing.assert_allclose(run(tx, [0.0, 0.0], w0=1.0), [0.95, 0.94525], rtol=1e-6)


def test_coupled_weight_decay_table():
    # torch weight_decay: g' = g + wd*w flows through momentum (lr outside).
    # w0 = 1, g = 0, wd = 0.5, m = 0.9, lr 0.1 then 0.01:
    # b1 = 0.5, w1 = 0.95; b2 = 0.9*0.5 + 0.5*0.95 = 0.925, w2 = 0.95 - 0.00925.
    tx = optax.chain(
        jsgd.add_decayed_weights(0.5),
        jsgd.sgd(CHANGING_LR, 0.9, lr_in_velocity=False),
    )
    np.testing.assert_allclose(run(tx, [0.0, 0.0], w0=1.0), [0.95, 0.94075], rtol=1e-6)


def test_clip_order_is_value_then_norm():
    # clipvalue 1 then clipnorm 1 on [3, 4]: [1, 1] -> [0.7071, 0.7071].
    tx = jsgd.sgd(1.0, clipvalue=1.0, clipnorm=1.0)
    grads = jnp.array([3.0, 4.0])
    updates, _ = tx.update(grads, tx.init(grads), grads)
    np.testing.assert_allclose(updates, [-(0.5**0.5), -(0.5**0.5)], rtol=1e-6)


def test_nesterov_with_zero_momentum_is_plain_sgd():
    grads = [1.0, -2.0, 0.5]
    plain = run(jsgd.sgd(CHANGING_LR), grads)
    assert run(jsgd.sgd(CHANGING_LR, 0.0, True), grads) == plain
    assert run(jsgd.SGD(CHANGING_LR, 0.0, True), grads) == plain
