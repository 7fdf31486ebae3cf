"""The family (Adagrad, RMSprop, Adam) and the Keras keywords: hand tables,
config round trips, and everything the core requires of a transform.

Tables use g = 1, 2, -1, lr = 0.1, epsilon = 0 and w0 = 0 so each number
can be followed by hand.

The checks run over every class of the registry, half of the classes in the
default run (each check a different half: ``tests._oracle.rotating``) and the
other half under ``-m oracle``.
"""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from tests._oracle import rotating
from tests._registry import CLASS_NAMES, FAMILY_SCHEDULE, REGISTRY

GRADS = [1.0, 2.0, -1.0]


def run(tx, grads=GRADS, w0=0.0):
    w = jnp.asarray(w0, jnp.float32)
    state = tx.init(w)
    out = []
    for g in grads:
        updates, state = tx.update(jnp.asarray(g, jnp.float32), state, w)
        w = optax.apply_updates(w, updates)
        out.append(float(w))
    return out


TABLES = {
    # a = 0.1 + sum g^2 = 1.1, 5.1, 6.1;  w -= 0.1 * g / sqrt(a)
    "adagrad": (
        jsgd.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=0.0),
        [-0.0953463, -0.1839077, -0.1434189],
    ),
    # v = 0.5 v + 0.5 g^2 = 0.5, 2.25, 1.625;  w -= 0.1 * g / sqrt(v)
    "rmsprop": (
        jsgd.RMSprop(0.1, rho=0.5, epsilon=0.0),
        [-0.1414214, -0.2747547, -0.1963082],
    ),
    # b = 0.9 b + 0.1 g / sqrt(v) = 0.1414214, 0.2606125, 0.1561049;  w -= b
    "rmsprop-momentum": (
        jsgd.RMSprop(0.1, rho=0.5, momentum=0.9, epsilon=0.0),
        [-0.1414214, -0.4020339, -0.5581388],
    ),
    # a = 0.5, 1.25, 0.125;  v - a^2 = 0.25, 0.6875, 1.609375
    "rmsprop-centered": (
        jsgd.RMSprop(0.1, rho=0.5, epsilon=0.0, centered=True),
        [-0.2, -0.4412091, -0.3623827],
    ),
    # m = 0.5, 1.25, 0.125; v = 0.5, 2.25, 1.625;
    # w -= 0.1 * sqrt(1 - 0.5^t) / (1 - 0.5^t) * m / sqrt(v)
    "adam": (
        jsgd.Adam(0.1, beta_1=0.5, beta_2=0.5, epsilon=0.0),
        [-0.1, -0.196225, -0.2067079],
    ),
    # v_hat = 0.5, 2.25, 2.25 (the max), so only step 3 changes
    "adam-amsgrad": (
        jsgd.Adam(0.1, beta_1=0.5, beta_2=0.5, epsilon=0.0, amsgrad=True),
        [-0.1, -0.196225, -0.2051338],
    ),
}


@pytest.mark.parametrize("name", TABLES)
def test_three_step_table(name):
    opt, expected = TABLES[name]
    np.testing.assert_allclose(run(opt), expected, rtol=2e-6)


def test_gradient_accumulation_table():
    # k = 2, schedule lr(c) = 0.1 * (c + 1). Keras evaluates the schedule at the
    # micro-step count: real step 0 (micro-step 1) uses 0.2, real step 1
    # (micro-step 3) uses 0.4. Means 2 and 3: w = -0.4, then -0.4 - 1.2.
    opt = jsgd.SGD(lambda c: 0.1 * (c + 1), gradient_accumulation_steps=2)
    np.testing.assert_allclose(run(opt, [1.0, 3.0, 2.0, 4.0]), [0, -0.4, -0.4, -1.6])


def test_ema_table():
    # SGD(1.0), g = 1: w = -1, -2, -3. EMA 0.5: first the params, then mixes:
    # -1, 0.5 * -1 + 0.5 * -2 = -1.5, 0.5 * -1.5 + 0.5 * -3 = -2.25.
    opt = jsgd.SGD(1.0, use_ema=True, ema_momentum=0.5)
    w, state = jnp.zeros(()), opt.init(jnp.zeros(()))
    averages = []
    for _ in range(3):
        updates, state = opt.update(jnp.ones(()), state, w)
        w = optax.apply_updates(w, updates)
        averages.append(float(jsgd.averaged_params(state)))
    assert averages == [-1.0, -1.5, -2.25]


def test_ema_overwrite_table():
    # As above with ema_overwrite_frequency=2: after step 2 the params become
    # the average -1.5; step 3 then moves to -2.5 and averages -2.0.
    opt = jsgd.SGD(1.0, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2)
    assert run(opt, [1.0, 1.0, 1.0]) == [-1.0, -1.5, -2.5]


def test_loss_scale_factor_divides_gradients():
    assert run(jsgd.SGD(0.1, loss_scale_factor=4.0), [4.0, 8.0]) == pytest.approx(
        [-0.1, -0.3]
    )


def test_averaged_params_needs_an_ema():
    with pytest.raises(ValueError, match="found 0"):
        jsgd.averaged_params(jsgd.sgd(0.1).init(jnp.zeros(2)))


# --- the registry's classes (tests/_registry.py), checked the same way ----------------
# (jit against eager, vmap and eval_shape are test_reliability.py's, for every entry)

PARAMS = {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.1, -0.1])}


def loss(params, x):
    return jnp.sum((x @ params["w"] + params["b"]) ** 2)


def batches(n):
    rng = np.random.default_rng(0)
    return [jnp.asarray(rng.normal(size=(3, 2)), jnp.float32) for _ in range(n)]


def train(tx, steps):
    params, state = PARAMS, tx.init(PARAMS)
    for x in batches(steps):
        updates, state = tx.update(jax.grad(loss)(params, x), state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name", rotating(CLASS_NAMES, share=2, salt=1))
def test_config_round_trip_through_json(name):
    opt = REGISTRY[name].make()
    rebuilt = type(opt).from_config(json.loads(json.dumps(opt.get_config())))
    assert rebuilt == opt and hash(rebuilt) == hash(opt)
    jax.tree.map(np.testing.assert_array_equal, train(rebuilt, 4), train(opt, 4))
    plain = opt.replace(learning_rate=0.01)
    assert type(opt).from_config(json.loads(json.dumps(plain.get_config()))) == plain


@pytest.mark.parametrize("name", rotating(CLASS_NAMES, share=2, salt=0))
def test_class_equals_factory(name):
    opt = REGISTRY[name].make()
    factory = getattr(jsgd, type(opt).__name__.lower())
    config = {k: v for k, v in opt._config.items() if k != "name"}
    jax.tree.map(
        np.testing.assert_array_equal, train(opt, 4), train(factory(**config), 4)
    )


def nnx_kernels(opt, steps):
    """A flax.nnx.Linear's kernel before and after each of ``steps`` updates on
    one batch, and the loss's gradient at the start."""
    from flax import nnx

    model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, opt, wrt=nnx.Param)
    x = batches(1)[0]
    kernels, grads = [model.kernel[...]], None
    for _ in range(steps):
        g = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
        grads = g if grads is None else grads
        optimizer.update(model, g)
        kernels.append(model.kernel[...])
    return kernels, grads


@pytest.mark.parametrize("name", rotating(CLASS_NAMES, share=2, salt=1))
def test_inside_optax_chain_and_nnx(name):
    opt = REGISTRY[name].make()
    chained = train(optax.chain(optax.identity(), opt), 3)
    jax.tree.map(np.testing.assert_array_equal, chained, train(opt, 3))

    (before, first, second), _ = nnx_kernels(opt, 2)
    if REGISTRY[name].deferred:
        # Accumulation over two micro-steps: the first only sums, the second
        # is a real step (test_adam_first_real_step_under_nnx_follows_its_math).
        np.testing.assert_array_equal(first, before)
        assert not np.allclose(second, before)
    else:
        assert not np.allclose(first, before) and not np.allclose(second, first)


def test_adam_first_real_step_under_nnx_follows_its_math():
    # The registry's Adam accumulates two micro-steps: the first moves nothing,
    # the second is Adam's first step on the mean gradient, which is the first
    # gradient g (the kernel did not move in between). At t = 1, with
    # m = (1 - b1) g and v = v_hat = (1 - b2) g^2 (amsgrad), Keras's step
    # lr * sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps) is
    # lr * g / (|g| + eps / sqrt(1 - b2)): lr times the sign of g, up to eps.
    # Keras reads the schedule at the micro-step count, 1.
    opt = REGISTRY["Adam-keras-keywords"].make()
    config = opt.get_config()
    assert config["gradient_accumulation_steps"] == 2 and config["amsgrad"]
    (before, first, second), grads = nnx_kernels(opt, 2)
    np.testing.assert_array_equal(first, before)
    g = np.asarray(grads["kernel"][...], np.float64)
    lr = float(FAMILY_SCHEDULE(1))
    eps, b2 = config["epsilon"], config["beta_2"]
    expected = np.asarray(before, np.float64) - lr * g / (
        np.abs(g) + eps / np.sqrt(1 - b2)
    )
    np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-7)
    assert np.all(np.abs(second - before) <= lr * (1 + 1e-6))


@pytest.mark.parametrize(
    ("factory", "hyper"),
    [
        (jsgd.adagrad, {"learning_rate": 0.1, "epsilon": 1e-3}),
        (jsgd.rmsprop, {"learning_rate": 0.1, "rho": 0.8, "momentum": 0.5}),
        (jsgd.adam, {"learning_rate": 0.1, "beta_1": 0.8, "weight_decay": 0.01}),
    ],
    ids=["adagrad", "rmsprop", "adam"],
)
def test_inject_hyperparams_without_recompiling(factory, hyper):
    tx = optax.inject_hyperparams(factory)(**hyper)
    traces = []

    @jax.jit
    def step(params, state, x):
        traces.append(1)
        updates, state = tx.update(jax.grad(loss)(params, x), state, params)
        return optax.apply_updates(params, updates), state

    params, state = PARAMS, tx.init(PARAMS)
    reference, ref_state = PARAMS, factory(**hyper).init(PARAMS)
    for i, x in enumerate(batches(4)):
        if i == 2:  # change every hyperparameter half-way
            hyper = {k: v * 0.5 for k, v in hyper.items()}
            for k, v in hyper.items():
                state.hyperparams[k] = jnp.asarray(v, jnp.float32)
        params, state = step(params, state, x)
        # the same step by a freshly built optimizer with these values
        updates, ref_state = factory(**hyper).update(
            jax.grad(loss)(reference, x), ref_state, reference
        )
        reference = optax.apply_updates(reference, updates)
    assert len(traces) == 1
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        params,
        reference,
    )


BAD = [
    (
        lambda: jsgd.Adam(beta_1=1.5),
        ValueError,
        "`beta_1` must be between [0, 1]. Received: beta_1=1.5",
    ),
    (
        lambda: jsgd.Adam(beta_2=-0.1),
        ValueError,
        "`beta_2` must be between [0, 1]. Received: beta_2=-0.1",
    ),
    (
        lambda: jsgd.Adam(epsilon=-1.0),
        ValueError,
        "`epsilon` must be a finite number >= 0. Received: epsilon=-1.0",
    ),
    (
        lambda: jsgd.Adam(amsgrad=1),
        TypeError,
        "`amsgrad` must be a bool. Received: amsgrad=1",
    ),
    (
        lambda: jsgd.RMSprop(rho=2.0),
        ValueError,
        "`rho` must be between [0, 1]. Received: rho=2.0",
    ),
    (
        lambda: jsgd.RMSprop(momentum=-0.5),
        ValueError,
        "`momentum` must be between [0, 1]. Received: momentum=-0.5",
    ),
    (
        lambda: jsgd.RMSprop(centered="yes"),
        TypeError,
        "`centered` must be a bool. Received: centered='yes'",
    ),
    (
        lambda: jsgd.Adagrad(initial_accumulator_value=-0.1),
        ValueError,
        "`initial_accumulator_value` must be a finite number >= 0. Received: initial_accumulator_value=-0.1",
    ),
    (
        lambda: jsgd.Adagrad(learning_rate=float("nan")),
        ValueError,
        "`learning_rate` must be a finite number >= 0. Received: learning_rate=nan",
    ),
    (
        lambda: jsgd.SGD(ema_momentum=1.5, use_ema=True),
        ValueError,
        "`ema_momentum` must be between [0, 1]. Received: ema_momentum=1.5",
    ),
    (
        lambda: jsgd.Adam(use_ema=True, ema_overwrite_frequency=0),
        ValueError,
        "`ema_overwrite_frequency` must be an integer >= 1 or None. Received: ema_overwrite_frequency=0",
    ),
    (
        lambda: jsgd.adam(gradient_accumulation_steps=1),
        ValueError,
        "`gradient_accumulation_steps` must be an integer >= 2. Received: gradient_accumulation_steps=1",
    ),
    (
        lambda: jsgd.rmsprop(gradient_accumulation_steps=2.5),
        ValueError,
        "`gradient_accumulation_steps` must be an integer >= 2. Received: gradient_accumulation_steps=2.5",
    ),
    (
        lambda: jsgd.adagrad(loss_scale_factor=0.0),
        ValueError,
        "`loss_scale_factor` must be > 0. Received: loss_scale_factor=0.0",
    ),
    (
        lambda: jsgd.Adam(clipnorm=1.0, global_clipnorm=1.0),
        ValueError,
        "`clipnorm` and `global_clipnorm` cannot both be set. Received: clipnorm=1.0, global_clipnorm=1.0",
    ),
    (
        lambda: jsgd.Adam(use_ema="no"),
        TypeError,
        "`use_ema` must be a bool. Received: use_ema='no'",
    ),
    (
        lambda: jsgd.Adam(betas=(0.9, 0.99)),
        TypeError,
        "Adam got unknown keyword argument(s): ['betas']",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD)
def test_family_validation(make, error, message):
    with pytest.raises(error, match="^" + re.escape(message)):
        make()
