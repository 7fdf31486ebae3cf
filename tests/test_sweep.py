"""jsgd.sweep: K configurations in one jitted program equal K separate runs."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import jsgd

STEPS = 12
RTOL, ATOL = 2e-6, 5e-7  # float32 rounding over a few steps (1.2e-7 seen near 0)


def init_params(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "w1": jax.random.normal(k1, (5, 8)) / jnp.sqrt(5.0),
        "b1": jnp.zeros(8),
        "w2": jax.random.normal(k2, (8, 3)) / jnp.sqrt(8.0),
        "b2": jnp.zeros(3),
    }


def loss_fn(params, x, y):
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)


def make_batches(steps=STEPS, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps, batch, 5)).astype(np.float32)
    y = np.sin(x[..., :3]) + 0.1 * rng.normal(size=(steps, batch, 3))
    return jnp.asarray(x), jnp.asarray(y, jnp.float32)


def separate_run(optimizer, params, batches):
    """One configuration the usual way: a jitted step in a Python loop."""

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = optimizer.init(params), []
    for x, y in zip(*batches, strict=True):
        params, opt_state, loss = step(params, opt_state, x, y)
        losses.append(loss)
    return jnp.stack(losses), params


def assert_equals_separate_runs(result, factory, hyperparameters, static, starts):
    names = list(hyperparameters)
    k = len(hyperparameters[names[0]])
    assert result.losses.shape == (k, STEPS)
    for i in range(k):
        config = {name: float(hyperparameters[name][i]) for name in names}
        losses, params = separate_run(factory(**static, **config), starts[i], BATCHES)
        np.testing.assert_allclose(
            result.losses[i], losses, rtol=RTOL, atol=ATOL, err_msg=config
        )
        jax.tree.map(
            lambda a, b, i=i, c=config: np.testing.assert_allclose(
                a[i], b, rtol=RTOL, atol=ATOL, err_msg=c
            ),
            result.params,
            params,
        )


BATCHES = make_batches()
PARAMS = init_params()


@pytest.mark.parametrize(
    "static",
    [
        pytest.param({}, id="keras"),
        pytest.param({"nesterov": True}, id="keras-nesterov", marks=pytest.mark.oracle),
        pytest.param(
            {"lr_in_velocity": False, "dampening": 0.1},
            id="torch-dampening",
            marks=pytest.mark.oracle,
        ),
    ],
)
def test_sgd_grid_equals_separate_runs(static):
    momenta = [0.2, 0.5, 0.9] if "dampening" in static else [0.0, 0.5, 0.9]
    grid = list(itertools.product([0.03, 0.3], momenta))
    hyper = {
        "learning_rate": [lr for lr, _ in grid],
        "momentum": [m for _, m in grid],
    }
    result = jsgd.sweep(jsgd.sgd, hyper, loss_fn, PARAMS, BATCHES, static=static)
    assert_equals_separate_runs(result, jsgd.sgd, hyper, static, [PARAMS] * 6)
    # The configurations really differ (nothing was broadcast from one).
    assert len({float(loss) for loss in result.losses[:, -1]}) == 6


def test_swept_momentum_zero_with_dampening_is_plain_sgd():
    hyper = {"learning_rate": [0.1], "momentum": [0.0]}
    static = {"lr_in_velocity": False, "dampening": 0.1}
    result = jsgd.sweep(jsgd.sgd, hyper, loss_fn, PARAMS, BATCHES, static=static)
    assert_equals_separate_runs(result, jsgd.sgd, hyper, static, [PARAMS])


def test_adam_learning_rates_with_weight_decay_equal_separate_runs():
    hyper = {
        "learning_rate": [1e-3, 1e-2, 3e-2, 3e-2],
        "weight_decay": [0.0, 0.01, 0.1, 0.5],
    }
    static = {"beta_2": 0.99, "global_clipnorm": 1.0}
    result = jsgd.sweep(jsgd.adam, hyper, loss_fn, PARAMS, BATCHES, static=static)
    assert_equals_separate_runs(result, jsgd.adam, hyper, static, [PARAMS] * 4)


def test_per_config_params_equal_separate_runs():
    starts = [init_params(seed) for seed in range(3)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *starts)
    hyper = {"learning_rate": [0.05, 0.1, 0.2]}
    result = jsgd.sweep(
        jsgd.sgd, hyper, loss_fn, stacked, BATCHES, per_config_params=True
    )
    assert_equals_separate_runs(result, jsgd.sgd, hyper, {}, starts)


def test_the_sweep_compiles_once_and_is_reused_for_new_values():
    traces = []

    def counted_loss(params, x, y):
        traces.append(1)
        return loss_fn(params, x, y)

    first = jsgd.sweep(
        jsgd.sgd,
        {"learning_rate": [0.01, 0.1], "momentum": [0.9, 0.5]},
        counted_loss,
        PARAMS,
        BATCHES,
    )
    assert len(traces) == 1  # one trace for all K configurations and all steps
    second = jsgd.sweep(
        jsgd.sgd,
        {"learning_rate": [0.2, 0.3], "momentum": [0.0, 0.1]},
        counted_loss,
        PARAMS,
        BATCHES,
    )
    assert len(traces) == 1  # new values, same shapes: no retrace
    assert not np.allclose(first.losses[:, -1], second.losses[:, -1])


def test_a_loss_closing_over_its_data_takes_steps():
    x, y = BATCHES[0][0], BATCHES[1][0]
    result = jsgd.sweep(
        jsgd.sgd,
        {"learning_rate": [0.1, 0.2]},
        lambda params: loss_fn(params, x, y),
        PARAMS,
        steps=STEPS,
    )
    same_batch = (
        jnp.broadcast_to(x, BATCHES[0].shape),
        jnp.broadcast_to(y, BATCHES[1].shape),
    )
    expected = jsgd.sweep(
        jsgd.sgd, {"learning_rate": [0.1, 0.2]}, loss_fn, PARAMS, same_batch
    )
    np.testing.assert_allclose(result.losses, expected.losses, rtol=RTOL, atol=ATOL)


def test_inject_hyperparams_factory_and_sweep_under_jit():
    hyper = {"learning_rate": jnp.array([0.05, 0.1]), "momentum": jnp.array([0.9, 0.0])}
    injected = jsgd.sweep(
        optax.inject_hyperparams(jsgd.sgd), hyper, loss_fn, PARAMS, BATCHES
    )
    plain = jsgd.sweep(jsgd.sgd, hyper, loss_fn, PARAMS, BATCHES)
    np.testing.assert_allclose(injected.losses, plain.losses, rtol=RTOL, atol=ATOL)

    # Traced hyperparameters (sweep inside jit) skip the concrete checks only.
    jitted = jax.jit(
        lambda hyper: jsgd.sweep(jsgd.sgd, hyper, loss_fn, PARAMS, BATCHES).losses
    )
    np.testing.assert_allclose(jitted(hyper), plain.losses, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("axis_type", ["Auto", "Explicit"])
def test_hyperparameters_sharded_over_devices_split_the_configurations(axis_type):
    if len(jax.devices()) < 2:
        pytest.skip("needs 2 devices (tests/conftest.py makes 8 CPU devices)")
    mesh = jax.make_mesh(
        (2,),
        ("k",),
        axis_types=(getattr(jax.sharding.AxisType, axis_type),),
        devices=jax.devices()[:2],
    )
    configs = NamedSharding(mesh, PartitionSpec("k"))
    hyper = {"learning_rate": [0.01, 0.05, 0.1, 0.2], "momentum": [0.9, 0.5, 0.0, 0.9]}
    sharded = {
        name: jax.device_put(np.asarray(v, np.float32), configs)
        for name, v in hyper.items()
    }
    result = jsgd.sweep(jsgd.sgd, sharded, loss_fn, PARAMS, BATCHES)
    expected = jsgd.sweep(jsgd.sgd, hyper, loss_fn, PARAMS, BATCHES)
    for leaf in [result.losses, *jax.tree.leaves(result.params)]:
        assert isinstance(leaf.sharding, NamedSharding)
        assert leaf.sharding.spec[0] == "k"  # each device holds its configurations
    np.testing.assert_allclose(result.losses, expected.losses, rtol=RTOL, atol=ATOL)


def call(**overrides):
    kwargs = {
        "factory": jsgd.sgd,
        "hyperparameters": {"learning_rate": [0.1, 0.2]},
        "loss_fn": loss_fn,
        "params": PARAMS,
        "batches": BATCHES,
    }
    kwargs.update(overrides)
    return jsgd.sweep(**kwargs)


ERRORS = {
    "empty": (dict(hyperparameters={}), ValueError, "non-empty mapping"),
    "not a mapping": (dict(hyperparameters=[0.1]), TypeError, "non-empty mapping"),
    "lengths differ": (
        dict(hyperparameters={"learning_rate": [0.1, 0.2], "momentum": [0.9]}),
        ValueError,
        r"same number K of values .*'learning_rate': 2, 'momentum': 1",
    ),
    "zero configurations": (
        dict(hyperparameters={"learning_rate": []}),
        ValueError,
        r"K >= 1 values.*shape \(0,\)",
    ),
    "scalar": (
        dict(hyperparameters={"learning_rate": 0.1}),
        ValueError,
        r"1-d array .*shape \(\)",
    ),
    "2-d": (
        dict(hyperparameters={"learning_rate": [[0.1, 0.2]]}),
        ValueError,
        r"1-d array .*shape \(1, 2\)",
    ),
    "unknown name": (
        dict(hyperparameters={"lr": [0.1, 0.2]}),
        TypeError,
        r"sgd\(\) takes no keyword 'lr'; it takes learning_rate, momentum",
    ),
    "unknown static": (
        dict(static={"nestrov": True}),
        TypeError,
        "takes no keyword 'nestrov'",
    ),
    "bool swept": (
        dict(hyperparameters={"nesterov": [True, False]}),
        TypeError,
        "put them in `static`",
    ),
    "swept and static": (
        dict(static={"learning_rate": 0.1}),
        ValueError,
        "'learning_rate' given both",
    ),
    "unhashable static": (
        dict(static={"momentum": np.array(0.9)}),
        TypeError,
        "must be hashable",
    ),
    "bad value names the configuration": (
        dict(hyperparameters={"learning_rate": [0.1, 0.2], "momentum": [0.9, 1.5]}),
        ValueError,
        r"configuration 1 \{'learning_rate': 0.2, 'momentum': 1.5\}: `momentum` must "
        r"be between \[0, 1\]",
    ),
    "batches not a tuple": (dict(batches=list(BATCHES)), TypeError, "must be a tuple"),
    "batches of different lengths": (
        dict(batches=(BATCHES[0], BATCHES[1][:5])),
        ValueError,
        r"same leading steps axis. Received lengths \[5, 12\]",
    ),
    "no batches, no steps": (dict(batches=()), ValueError, "give `steps`"),
    "steps disagree": (dict(steps=3), ValueError, "steps=3 but `batches` has 12"),
    "zero steps": (dict(batches=(), steps=0), ValueError, "must be >= 1"),
    "steps not an int": (dict(batches=(), steps=2.0), TypeError, "must be an int"),
    "per-config params of the wrong length": (
        dict(per_config_params=True),
        ValueError,
        r"leading axis of K=2; the leaf \['b1'\] has shape \(8,\)",
    ),
    "factory not callable": (dict(factory="sgd"), TypeError, "must be callables"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_errors(name):
    overrides, error, match = ERRORS[name]
    with pytest.raises(error, match=match):
        call(**overrides)
