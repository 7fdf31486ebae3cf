"""jsgd's MultiOptimizer against Keras 3's MultiOptimizer / OptimizerMap."""

from __future__ import annotations

import functools
import json
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from jsgd._optimizers.loss_scale_optimizer import LossScaleOptimizer
from jsgd._optimizers.multi_optimizer import MultiOptimizer, MultiOptimizerState

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras

STEPS = 10
# The parameter paths, as Keras's variable.path and as jsgd's tree paths.
LAYOUT = {
    "dense": {"kernel": (3, 2), "bias": (2,)},
    "conv": {"kernel": (2, 2), "bias": (2,)},
    "head": {"kernel": (2, 1)},
}


def _initial(shape):
    return np.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape).astype("f4")


def _gradient_list(step):
    rng = np.random.default_rng(step)
    return [
        rng.standard_normal(shape).astype("f4")
        for layer in LAYOUT.values()
        for shape in layer.values()
    ]


def _as_tree(flat):
    it = iter(flat)
    return {k: {n: next(it) for n in layer} for k, layer in LAYOUT.items()}


def _keras_optimizers():
    return (
        {
            "dense/.*": keras.optimizers.Adam(learning_rate=0.01),
            "conv/kernel": keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        },
        keras.optimizers.RMSprop(learning_rate=0.01),
    )


def _jsgd_optimizer():
    return MultiOptimizer(
        {
            "dense/.*": jsgd.Adam(learning_rate=0.01),
            "conv/kernel": jsgd.SGD(learning_rate=0.1, momentum=0.9),
        },
        default_optimizer=jsgd.RMSprop(learning_rate=0.01),
    )


@functools.cache
def _keras_trace():
    mapping, default = _keras_optimizers()
    optimizer_map = keras.optimizers.OptimizerMap(default_optimizer=default)
    for key, value in mapping.items():
        optimizer_map[key] = value
    multi = keras.optimizers.MultiOptimizer(optimizer_map)
    variables = []
    for layer, weights in LAYOUT.items():
        with keras.name_scope(layer):
            for name, shape in weights.items():
                variables.append(keras.Variable(_initial(shape), name=name))
    assert [v.path for v in variables] == [
        f"{k}/{n}" for k, layer in LAYOUT.items() for n in layer
    ]
    trace = []
    for step in range(STEPS):
        multi.apply(_gradient_list(step), variables)
        trace.append([np.asarray(v.value) for v in variables])
    return (
        trace,
        int(multi.iterations.value),
        [int(o.iterations) for o in multi.optimizers],
    )


def _jsgd_trace(opt, jit=False):
    params = _as_tree(
        [jnp.asarray(_initial(s)) for la in LAYOUT.values() for s in la.values()]
    )
    state = opt.init(params)

    def step_fn(grads, state, params):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    if jit:
        step_fn = jax.jit(step_fn)
    trace = []
    for step in range(STEPS):
        grads = _as_tree([jnp.asarray(g) for g in _gradient_list(step)])
        params, state = step_fn(grads, state, params)
        trace.append([np.asarray(p) for p in jax.tree.leaves(_as_list(params))])
    return trace, state


def _as_list(tree):
    return [tree[k][n] for k, layer in LAYOUT.items() for n in layer]


def test_matches_keras():
    theirs, iterations, inner_iterations = _keras_trace()
    ours, state = _jsgd_trace(_jsgd_optimizer())
    for step, (t, o) in enumerate(zip(theirs, ours, strict=True)):
        for a, b in zip(t, o, strict=True):
            np.testing.assert_array_equal(b, a, err_msg=f"step {step}")
    assert int(state.iterations) == iterations == STEPS
    assert inner_iterations == [STEPS] * 3


def test_jit_matches_keras():
    theirs, _, _ = _keras_trace()
    ours, _ = _jsgd_trace(_jsgd_optimizer(), jit=True)
    for step, (t, o) in enumerate(zip(theirs, ours, strict=True)):
        for a, b in zip(t, o, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7, err_msg=f"{step}")


def test_equals_each_optimizer_on_its_part():
    opt = _jsgd_optimizer()
    ours, _ = _jsgd_trace(opt)
    parts = {
        ("dense", "kernel"): jsgd.Adam(learning_rate=0.01),
        ("dense", "bias"): jsgd.Adam(learning_rate=0.01),
        ("conv", "kernel"): jsgd.SGD(learning_rate=0.1, momentum=0.9),
        ("conv", "bias"): jsgd.RMSprop(learning_rate=0.01),
        ("head", "kernel"): jsgd.RMSprop(learning_rate=0.01),
    }
    # Group the leaves by optimizer, as MultiOptimizer does.
    groups: dict = {}
    for key, o in parts.items():
        groups.setdefault(o, []).append(key)
    values = {
        (k, n): jnp.asarray(_initial(s))
        for k, la in LAYOUT.items()
        for n, s in la.items()
    }
    states = {o: o.init([values[k] for k in keys]) for o, keys in groups.items()}
    for step in range(STEPS):
        grads = dict(zip(values, _gradient_list(step), strict=True))
        for o, keys in groups.items():
            p = [values[k] for k in keys]
            updates, states[o] = o.update(
                [jnp.asarray(grads[k]) for k in keys], states[o], p
            )
            for k, v in zip(keys, optax.apply_updates(p, updates), strict=True):
                values[k] = v
        for a, b in zip(values.values(), ours[step], strict=True):
            np.testing.assert_array_equal(b, np.asarray(a))


def test_matching_rule():
    adam, sgd, rms = jsgd.Adam(), jsgd.SGD(), jsgd.RMSprop()
    opt = MultiOptimizer(
        {"encoder/layer_0/dense": adam, "encoder/.*": sgd, "decoder": adam},
        default_optimizer=rms,
    )
    # Keras's OptimizerMap docstring example.
    assert opt.optimizer_for("decoder") is adam
    assert opt.optimizer_for("encoder/layer_0/dense") is adam  # exact first
    assert opt.optimizer_for("encoder/layer_0/attention/query") is sgd
    assert opt.optimizer_for("decoder/layer_0/dense") is rms  # fullmatch only
    assert opt.optimizers == (adam, sgd, rms)
    keras_map = keras.optimizers.OptimizerMap(
        default_optimizer=keras.optimizers.RMSprop()
    )
    keras_map["encoder/.*"] = keras.optimizers.SGD()
    assert keras_map["decoder/layer_0/dense"] is keras_map.default_optimizer


def test_two_patterns_and_no_default_are_errors():
    opt = MultiOptimizer(
        {".*kernel.*": jsgd.Adam(), ".*dense.*": jsgd.SGD()}, jsgd.SGD()
    )
    params = {"dense": {"kernel": jnp.ones(2)}}
    with pytest.raises(ValueError, match=r"'\.\*kernel\.\*' and '\.\*dense\.\*'"):
        opt.init(params)
    keras_map = keras.optimizers.OptimizerMap(keras.optimizers.SGD())
    keras_map[".*kernel.*"] = keras.optimizers.Adam()
    keras_map[".*dense.*"] = keras.optimizers.SGD()
    with pytest.raises(ValueError, match="Multiple optimizers"):
        keras_map["dense/kernel"]
    opt = MultiOptimizer({"a": jsgd.SGD()})
    with pytest.raises(ValueError, match=r"'b'.*no default_optimizer"):
        opt.init({"a": jnp.ones(1), "b": jnp.ones(1)})
    opt.init({"a": jnp.ones(1)})  # every leaf matched: fine


def test_argument_errors():
    with pytest.raises(ValueError, match="LossScaleOptimizer"):
        MultiOptimizer({"a": LossScaleOptimizer(jsgd.SGD())})
    with pytest.raises(ValueError, match="MultiOptimizer"):
        MultiOptimizer({}, MultiOptimizer({}, jsgd.SGD()))
    with pytest.raises(TypeError, match="key must be a string"):
        MultiOptimizer({1: jsgd.SGD()})  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="optimizer_map"):
        MultiOptimizer([jsgd.SGD()])  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="init"):
        MultiOptimizer({"a": 0.1})
    with pytest.raises(ValueError, match="loss_scale_factor"):
        MultiOptimizer({"a": optax.sgd(0.1)}, loss_scale_factor=2.0)
    opt = MultiOptimizer({}, jsgd.SGD())
    with pytest.raises(TypeError, match="state"):
        opt.update(jnp.ones(1), optax.EmptyState())
    with pytest.raises(AttributeError):
        opt._map = ()  # pyright: ignore[reportAttributeAccessIssue]


def test_shared_optimizer_and_none_leaves():
    sgd = jsgd.SGD(learning_rate=1.0)
    opt = MultiOptimizer({"a": sgd, "b": jsgd.SGD(learning_rate=1.0)})
    assert opt.optimizers == (sgd,)  # equal optimizers are one
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    state = opt.init(params)
    updates, state = opt.update({"a": jnp.ones(2), "b": None}, state, params)
    assert updates["b"] is None
    np.testing.assert_array_equal(updates["a"], [-1.0, -1.0])


def test_indexed_slices_leaves():
    opt = MultiOptimizer({"emb": jsgd.SGD(1.0)}, jsgd.Adam(0.1))
    params = {"emb": jnp.zeros((4, 2)), "w": jnp.ones(2)}
    state = opt.init(params)
    rows = jsgd.IndexedSlices(jnp.array([[2.0, 4.0]]), jnp.array([1]), (4, 2))
    updates, state = opt.update({"emb": rows, "w": jnp.ones(2)}, state, params)
    new = jsgd.apply_updates(params, updates)
    np.testing.assert_array_equal(new["emb"], [[0, 0], [-2, -4], [0, 0], [0, 0]])
    np.testing.assert_allclose(new["w"], [0.9, 0.9], rtol=1e-5)


def test_loss_scale_factor_as_keras():
    opt = MultiOptimizer({"a": jsgd.SGD(loss_scale_factor=4.0)}, jsgd.SGD())
    assert opt.optimizers[0].loss_scale_factor is None  # Keras sets None too
    opt = MultiOptimizer({"a": jsgd.SGD(learning_rate=1.0)}, loss_scale_factor=4.0)
    assert opt.optimizers[0].loss_scale_factor == 4.0
    assert float(opt.scale_loss(jnp.array(2.0))) == 8.0
    state = opt.init({"a": jnp.zeros(1)})
    updates, _ = opt.update({"a": jnp.array([8.0])}, state)
    np.testing.assert_array_equal(updates["a"], [-2.0])
    keras_map = keras.optimizers.OptimizerMap(
        keras.optimizers.SGD(loss_scale_factor=4.0)
    )
    keras.optimizers.MultiOptimizer(keras_map)
    assert keras_map.default_optimizer.loss_scale_factor is None


def test_config_round_trip_and_keras_config():
    opt = _jsgd_optimizer()
    config = opt.get_config()
    assert list(config) == ["optimizer_map", "loss_scale_factor", "name"]
    assert config["optimizer_map"]["class_name"] == "OptimizerMap"
    inner = config["optimizer_map"]["config"]
    assert inner["default_optimizer"]["class_name"] == "RMSprop"
    assert inner["optimizer_map"]["dense/.*"]["class_name"] == "Adam"
    again = MultiOptimizer.from_config(json.loads(json.dumps(config)))
    assert again == opt and hash(again) == hash(opt)
    assert pickle.loads(pickle.dumps(opt)) == opt
    mapping, default = _keras_optimizers()
    keras_map = keras.optimizers.OptimizerMap(default_optimizer=default)
    for key, value in mapping.items():
        keras_map[key] = value
    theirs = keras.optimizers.MultiOptimizer(keras_map).get_config()
    assert set(theirs) == set(config)
    from_keras = MultiOptimizer.from_config(theirs)
    assert [type(o).__name__ for o in from_keras.optimizers] == [
        "Adam",
        "SGD",
        "RMSprop",
    ]
    assert from_keras.optimizers[1].momentum == 0.9
    no_default = MultiOptimizer({"a": jsgd.SGD()})
    assert MultiOptimizer.from_config(no_default.get_config()) == no_default
    with pytest.raises(TypeError, match="get_config"):
        MultiOptimizer({"a": optax.sgd(0.1)}).get_config()


def test_static_argument_of_jit_and_chain():
    opt = _jsgd_optimizer()
    params = _as_tree([jnp.ones(s) for la in LAYOUT.values() for s in la.values()])

    @functools.partial(jax.jit, static_argnums=0)
    def step(tx, grads, state):
        return tx.update(grads, state, params)

    tx = optax.chain(optax.clip(10.0), opt)
    state = opt.init(params)
    assert isinstance(state, MultiOptimizerState)
    eager, _ = opt.update(params, state, params)
    jitted, new = step(opt, params, state)
    close = functools.partial(np.testing.assert_allclose, rtol=1e-6)
    jax.tree.map(close, jitted, eager)
    assert int(new.iterations) == 1
    chained, _ = tx.update(params, tx.init(params), params)
    jax.tree.map(close, chained, eager)


def test_inside_nnx_optimizer():
    nnx = pytest.importorskip("flax.nnx")

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.encoder = nnx.Linear(2, 3, rngs=rngs)
            self.head = nnx.Linear(3, 1, rngs=rngs)

        def __call__(self, x):
            return self.head(jax.nn.relu(self.encoder(x)))

    model = Model(nnx.Rngs(0))
    opt = MultiOptimizer(
        {"encoder/.*": jsgd.SGD(learning_rate=0.1)},
        default_optimizer=jsgd.Adam(learning_rate=0.01),
    )
    optimizer = nnx.Optimizer(model, opt, wrt=nnx.Param)
    before = {k: np.asarray(v) for k, v in _flat(nnx.state(model, nnx.Param)).items()}
    x = jnp.ones((4, 2))
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    g = {k: np.asarray(v) for k, v in _flat(grads).items()}
    optimizer.update(model, grads)
    after = {k: np.asarray(v) for k, v in _flat(nnx.state(model, nnx.Param)).items()}
    assert set(after) == {"encoder/kernel", "encoder/bias", "head/kernel", "head/bias"}
    for key in ("encoder/kernel", "encoder/bias"):
        np.testing.assert_allclose(after[key], before[key] - 0.1 * g[key], rtol=1e-6)
    for key in ("head/kernel", "head/bias"):  # Adam's first step: lr * sign(g)
        np.testing.assert_allclose(
            after[key], before[key] - 0.01 * np.sign(g[key]), rtol=1e-5, atol=1e-7
        )


def _flat(state):
    from jsgd._optimizers.torch_groups import path_string

    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    return {path_string(p): v for p, v in flat}
