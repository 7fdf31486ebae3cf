"""jsgd.SGD as a Keras-style class: value semantics, config, minimize, optax use."""

from __future__ import annotations

import copy
import functools
import json
import os
import pickle
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras


def _loss(var):
    return var**2 / 2.0


def _tree_loss(params):
    return sum(jnp.sum(jnp.sin(w) * w) for w in jax.tree.leaves(params))


def _params():
    return {
        "a": jnp.array([1.0, -2.0, 0.5, 3.0]),
        "b": jnp.array([[0.25, -0.75], [1.5, 2.0]]),
    }


def _run(tx, steps=5):
    """Updates and states of ``steps`` optimization steps on ``_tree_loss``."""
    params = _params()
    state = tx.init(params)
    history = []
    for _ in range(steps):
        grads = jax.grad(_tree_loss)(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append((updates, state, params))
    return history


def _assert_same_history(first, second):
    for (u1, s1, p1), (u2, s2, p2) in zip(first, second, strict=True):
        assert jax.tree.structure(s1) == jax.tree.structure(s2)
        jax.tree.map(np.testing.assert_array_equal, u1, u2)
        jax.tree.map(np.testing.assert_array_equal, s1, s2)
        jax.tree.map(np.testing.assert_array_equal, p1, p2)


CONFIGS = [
    pytest.param({}, id="defaults"),
    pytest.param({"learning_rate": 0.1}, id="lr"),
    pytest.param({"learning_rate": 0.1, "momentum": 0.9}, id="momentum"),
    pytest.param(
        {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}, id="nesterov"
    ),
    pytest.param({"learning_rate": 0.1, "clipvalue": 0.5}, id="clipvalue"),
    pytest.param(
        {"learning_rate": 0.1, "momentum": 0.5, "clipnorm": 1.0, "weight_decay": 0.01},
        id="clipnorm+weight_decay",
    ),
    pytest.param(
        {"learning_rate": 0.1, "global_clipnorm": 1.0, "decay": 0.1},
        id="global_clipnorm+decay",
    ),
    pytest.param(
        {
            "learning_rate": 0.1,
            "momentum": 0.9,
            "dampening": 0.1,
            "lr_in_velocity": False,
        },
        id="torch-style",
    ),
    pytest.param(
        {"learning_rate": 0.1, "momentum": 0.9, "accumulator_dtype": jnp.bfloat16},
        id="accumulator-bfloat16-type",
    ),
    pytest.param(
        {"learning_rate": 0.1, "momentum": 0.9, "accumulator_dtype": "bfloat16"},
        id="accumulator-bfloat16-str",
    ),
    pytest.param({"learning_rate": 1, "momentum": 1, "name": "my_sgd"}, id="ints+name"),
    pytest.param(
        {
            "learning_rate": 0.02,
            "momentum": 0.9,
            "nesterov": True,
            "clipvalue": 2.0,
            "clipnorm": 1.5,
            "decay": 0.01,
            "weight_decay": 1e-3,
            "dampening": 0.2,
            "accumulator_dtype": "float32",
            "name": "everything",
        },
        id="everything",
    ),
]


# --------------------------------------------------------------------------- #
# Immutability, attributes, equality and hashing.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "attribute", ["learning_rate", "momentum", "nesterov", "name", "foo", "_config"]
)
def test_setting_an_attribute_raises(attribute):
    opt = jsgd.SGD(0.1, momentum=0.9)
    message = f"SGD objects are immutable; use .replace({attribute}=...)."
    with pytest.raises(AttributeError, match="^" + re.escape(message) + "$"):
        setattr(opt, attribute, 0.5)
    assert opt.learning_rate == 0.1
    assert opt.momentum == 0.9
    assert not hasattr(opt, "__dict__")


def test_attribute_access():
    opt = jsgd.SGD(
        0.1,
        0.9,
        True,
        name="opt",
        clipvalue=1.0,
        clipnorm=2.0,
        decay=0.01,
        weight_decay=1e-4,
        dampening=0.1,
        lr_in_velocity=False,
        accumulator_dtype="bfloat16",
    )
    assert opt.learning_rate == 0.1
    assert opt.momentum == 0.9
    assert opt.nesterov is True
    assert opt.name == "opt"
    assert opt.clipvalue == 1.0
    assert opt.clipnorm == 2.0
    assert opt.global_clipnorm is None
    assert opt.decay == 0.01
    assert opt.weight_decay == 1e-4
    assert opt.dampening == 0.1
    assert opt.lr_in_velocity is False
    assert opt.accumulator_dtype == jnp.dtype(jnp.bfloat16)


def test_default_attributes():
    opt = jsgd.SGD()
    assert opt.name == "SGD"
    assert opt.learning_rate == 0.01
    assert opt.momentum == 0.0
    assert opt.nesterov is False
    assert opt.clipvalue is None
    assert opt.clipnorm is None
    assert opt.global_clipnorm is None
    assert opt.decay == 0.0
    assert opt.weight_decay is None
    assert opt.dampening == 0.0
    assert opt.lr_in_velocity is True
    assert opt.accumulator_dtype is None


EQUAL_PAIRS = [
    pytest.param(jsgd.SGD(0.1), jsgd.SGD(learning_rate=0.1), id="positional-keyword"),
    pytest.param(jsgd.SGD(), jsgd.SGD(0.01, 0.0, False, "SGD"), id="explicit-defaults"),
    pytest.param(jsgd.SGD(1), jsgd.SGD(1.0), id="int-float-lr"),
    pytest.param(jsgd.SGD(0.1, 0), jsgd.SGD(0.1, 0.0), id="int-float-momentum"),
    pytest.param(
        jsgd.SGD(0.1, 0.9, accumulator_dtype=jnp.bfloat16),
        jsgd.SGD(0.1, 0.9, accumulator_dtype="bfloat16"),
        id="dtype-spellings",
    ),
    pytest.param(
        jsgd.SGD(0.1, accumulator_dtype=np.float32),
        jsgd.SGD(0.1, accumulator_dtype=jnp.dtype("float32")),
        id="dtype-np-type-vs-dtype",
    ),
    pytest.param(
        jsgd.SGD(jnp.array(0.5)), jsgd.SGD(jnp.array(0.5)), id="equal-jax-arrays"
    ),
    pytest.param(
        jsgd.SGD(0.1, clipnorm=1.0, name="x"),
        jsgd.SGD(name="x", clipnorm=1.0, learning_rate=0.1),
        id="keyword-order",
    ),
]


@pytest.mark.parametrize(("first", "second"), EQUAL_PAIRS)
def test_equal_configs_are_equal_with_equal_hashes(first, second):
    assert first == second
    assert (first != second) is False
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


DIFFERENT = [
    jsgd.SGD(),
    jsgd.SGD(0.1),
    jsgd.SGD(0.1, 0.9),
    jsgd.SGD(0.1, 0.9, True),
    jsgd.SGD(0.1, name="other"),
    jsgd.SGD(0.1, clipvalue=1.0),
    jsgd.SGD(0.1, clipnorm=1.0),
    jsgd.SGD(0.1, global_clipnorm=1.0),
    jsgd.SGD(0.1, decay=0.1),
    jsgd.SGD(0.1, weight_decay=0.1),
    jsgd.SGD(0.1, weight_decay=0.0),
    jsgd.SGD(0.1, 0.9, dampening=0.1),
    jsgd.SGD(0.1, 0.9, lr_in_velocity=False),
    jsgd.SGD(0.1, 0.9, accumulator_dtype="float32"),
    jsgd.SGD(0.1, 0.9, accumulator_dtype="bfloat16"),
    jsgd.SGD(jnp.array(0.1)),
    jsgd.SGD(jnp.array(0.1, jnp.bfloat16)),
]


def test_different_configs_differ():
    assert len(set(DIFFERENT)) == len(DIFFERENT)
    for i, first in enumerate(DIFFERENT):
        for second in DIFFERENT[i + 1 :]:
            assert first != second, (first, second)


def test_not_equal_to_other_types():
    opt = jsgd.SGD(0.1)
    assert opt != 0.1
    assert opt != {"name": "SGD", "learning_rate": 0.1}
    assert opt != opt.get_config()
    assert opt != opt.transformation


def test_schedule_learning_rate_equality_is_by_identity():
    def schedule(count):
        return 0.1 / (1 + count)

    assert jsgd.SGD(schedule) == jsgd.SGD(schedule)
    assert hash(jsgd.SGD(schedule)) == hash(jsgd.SGD(schedule))
    assert jsgd.SGD(schedule) != jsgd.SGD(lambda count: 0.1 / (1 + count))


def test_jit_static_argument_does_not_retrace_for_equal_objects():
    traces = []

    @functools.partial(jax.jit, static_argnames=("opt",))
    def step(params, state, opt):
        traces.append(opt)
        return opt.minimize(_loss, params, state)

    opt = jsgd.SGD(0.1, momentum=0.9)
    params = jnp.array(1.0, jnp.float32)  # not weakly typed, like the outputs
    params, state = step(params, opt.init(params), opt=opt)
    assert len(traces) == 1
    # A distinct but equal object: the compiled step is reused.
    twin = jsgd.SGD(learning_rate=0.1, momentum=0.9, nesterov=False)
    assert twin is not opt
    params, state = step(params, state, opt=twin)
    params, state = step(params, state, opt=copy.deepcopy(opt))
    assert len(traces) == 1
    np.testing.assert_allclose(params, 1.0 - 0.1 - 0.18 - 0.234, rtol=1e-6)
    # A different configuration is a different static argument.
    step(params, state, opt=opt.replace(learning_rate=0.2))
    assert len(traces) == 2


# --------------------------------------------------------------------------- #
# replace, repr, pickle, deepcopy.
# --------------------------------------------------------------------------- #


def test_replace():
    opt = jsgd.SGD(0.1, momentum=0.9, name="base", clipnorm=1.0)
    other = opt.replace(momentum=0.5, nesterov=True)
    assert isinstance(other, jsgd.SGD)
    assert other == jsgd.SGD(0.1, 0.5, True, name="base", clipnorm=1.0)
    assert opt == jsgd.SGD(0.1, momentum=0.9, name="base", clipnorm=1.0)
    assert opt.replace() == opt
    assert opt.replace(clipnorm=None) == jsgd.SGD(0.1, momentum=0.9, name="base")


def test_replace_validates():
    opt = jsgd.SGD(0.1, momentum=0.9)
    with pytest.raises(ValueError, match=re.escape("Received: momentum=1.5")):
        opt.replace(momentum=1.5)
    with pytest.raises(TypeError, match=re.escape("['lr'] (`lr` is spelled")):
        opt.replace(lr=0.1)
    with pytest.raises(ValueError, match="cannot both be set"):
        opt.replace(clipnorm=1.0, global_clipnorm=1.0)


@pytest.mark.parametrize(
    ("opt", "text"),
    [
        pytest.param(jsgd.SGD(), "SGD(name='SGD')", id="defaults"),
        pytest.param(
            jsgd.SGD(0.1, momentum=0.9),
            "SGD(name='SGD', learning_rate=0.1, momentum=0.9)",
            id="momentum",
        ),
        pytest.param(
            jsgd.SGD(0.1, 0.9, True, name="n", clipnorm=1.0, weight_decay=0.01),
            "SGD(name='n', learning_rate=0.1, momentum=0.9, nesterov=True, "
            "clipnorm=1.0, weight_decay=0.01)",
            id="many",
        ),
        pytest.param(
            jsgd.SGD(0.1, lr_in_velocity=False, dampening=0.5),
            "SGD(name='SGD', learning_rate=0.1, dampening=0.5, lr_in_velocity=False)",
            id="torch-style",
        ),
    ],
)
def test_repr(opt, text):
    assert repr(opt) == text
    assert eval(text, {"SGD": jsgd.SGD}) == opt


def test_repr_shows_accumulator_dtype():
    assert repr(jsgd.SGD(accumulator_dtype="bfloat16")) == (
        "SGD(name='SGD', accumulator_dtype=dtype(bfloat16))"
    )


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    "clone",
    [
        pytest.param(lambda o: pickle.loads(pickle.dumps(o)), id="pickle"),
        pytest.param(copy.deepcopy, id="deepcopy"),
        pytest.param(copy.copy, id="copy"),
    ],
)
def test_pickle_and_copy_round_trip(config, clone):
    opt = jsgd.SGD(**config)
    twin = clone(opt)
    assert isinstance(twin, jsgd.SGD)
    assert twin == opt
    assert hash(twin) == hash(opt)
    _assert_same_history(_run(twin, steps=3), _run(opt, steps=3))


# --------------------------------------------------------------------------- #
# get_config / from_config.
# --------------------------------------------------------------------------- #

_ALWAYS = {"name", "learning_rate", "momentum", "nesterov"}
_WHEN_SET = ("clipvalue", "clipnorm", "global_clipnorm", "weight_decay")


@pytest.mark.parametrize("config", CONFIGS)
def test_get_config_is_json_with_keras_keys(config):
    opt = jsgd.SGD(**config)
    got = opt.get_config()
    text = json.dumps(got)
    assert json.loads(text) == got
    assert set(got) >= _ALWAYS
    for key in _WHEN_SET:
        assert (key in got) == (config.get(key) is not None), key
    assert got["name"] == config.get("name", "SGD")
    assert got["learning_rate"] == config.get("learning_rate", 0.01)
    assert got["momentum"] == config.get("momentum", 0.0)
    assert got["nesterov"] is config.get("nesterov", False)
    assert got.get("decay", 0.0) == config.get("decay", 0.0)  # written when not 0
    for key in _WHEN_SET:
        if key in config:
            assert got[key] == config[key]


def test_get_config_exact():
    assert jsgd.SGD(learning_rate=0.1, momentum=0.9).get_config() == {
        "name": "SGD",
        "learning_rate": 0.1,
        "momentum": 0.9,
        "nesterov": False,
    }
    assert jsgd.SGD().get_config() == {
        "name": "SGD",
        "learning_rate": 0.01,
        "momentum": 0.0,
        "nesterov": False,
    }
    got = jsgd.SGD(0.1, clipnorm=1, weight_decay=0, accumulator_dtype=jnp.bfloat16)
    assert got.get_config() == {
        "name": "SGD",
        "learning_rate": 0.1,
        "momentum": 0.0,
        "nesterov": False,
        "clipnorm": 1,
        "weight_decay": 0.0,
        "accumulator_dtype": "bfloat16",
    }
    # Numbers keep their Python type (an int stays an int: the int-only
    # keywords such as gradient_accumulation_steps must round-trip).
    assert all(type(v) in (str, int, float, bool) for v in got.get_config().values()), (
        got.get_config()
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_from_config_round_trip_through_json(config):
    opt = jsgd.SGD(**config)
    restored = jsgd.SGD.from_config(json.loads(json.dumps(opt.get_config())))
    assert restored == opt
    assert hash(restored) == hash(opt)
    assert restored.get_config() == opt.get_config()
    _assert_same_history(_run(restored), _run(opt))


def test_from_config_does_not_mutate_its_argument():
    config = jsgd.SGD(0.1, momentum=0.9).get_config()
    before = dict(config)
    jsgd.SGD.from_config(config)
    assert config == before


def test_from_config_accepts_a_full_keras_config_subset():
    # The shared keys of a Keras 3 SGD config (None clip keys included).
    config = {
        "name": "SGD",
        "learning_rate": 0.1,
        "weight_decay": None,
        "clipnorm": None,
        "global_clipnorm": None,
        "clipvalue": None,
        "momentum": 0.9,
        "nesterov": True,
    }
    assert jsgd.SGD.from_config(config) == jsgd.SGD(0.1, 0.9, True)


def test_from_config_rejects_unknown_keys():
    with pytest.raises(TypeError, match=re.escape("['amsgrad', 'beta_1']")):
        jsgd.SGD.from_config({"learning_rate": 0.1, "amsgrad": False, "beta_1": 0.9})


def test_from_config_accepts_a_keras_sgd_config():
    config = keras.optimizers.SGD(
        learning_rate=0.5, momentum=0.9, nesterov=True, clipnorm=1.0
    ).get_config()
    opt = jsgd.SGD.from_config(config)
    assert opt.momentum == 0.9 and opt.nesterov and opt.clipnorm == 1.0
    assert opt.learning_rate == pytest.approx(0.5)


def test_get_config_with_callable_learning_rate_raises():
    def schedule(count):
        return 0.1

    opt = jsgd.SGD(schedule)
    message = (
        f"`learning_rate` is a Python callable ({schedule!r}) and cannot be "
        "serialized by get_config(). Use a number or a jsgd.schedules object, "
        "or rebuild the optimizer in code."
    )
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        opt.get_config()
    # It is still a working optimizer.
    params, _ = opt.minimize(_loss, jnp.array(1.0))
    np.testing.assert_allclose(params, 0.9, rtol=1e-6)


def test_get_config_with_traced_learning_rate_raises():
    def configure(lr):
        jsgd.SGD(lr).get_config()
        return lr

    with pytest.raises(TypeError, match=re.escape("`learning_rate` is a traced value")):
        jax.jit(configure)(jnp.array(0.1))


def test_get_config_of_a_concrete_array_is_a_float():
    got = jsgd.SGD(jnp.array(0.5), momentum=np.float32(0.25)).get_config()
    assert got["learning_rate"] == 0.5
    assert got["momentum"] == 0.25
    json.dumps(got)


def test_from_config_round_trip_with_numpy_scalar():
    opt = jsgd.SGD(np.float64(0.1), momentum=0.9)
    assert jsgd.SGD.from_config(opt.get_config()) == opt


def test_from_config_of_array_momentum_is_documented():
    """A JAX-array hyperparameter is written as a number (get_config's docs):
    array 0 keeps a velocity, number 0 keeps none; updates are identical."""
    opt = jsgd.SGD(0.1, momentum=jnp.array(0.0))
    restored = jsgd.SGD.from_config(json.loads(json.dumps(opt.get_config())))
    assert restored.momentum == 0.0 and isinstance(restored.momentum, float)
    assert restored != opt
    params = _params()
    grads = jax.tree.map(jnp.ones_like, params)
    state, restored_state = opt.init(params), restored.init(params)
    assert jax.tree.structure(state) != jax.tree.structure(restored_state)
    for _ in range(3):
        updates, state = opt.update(grads, state, params)
        restored_updates, restored_state = restored.update(
            grads, restored_state, params
        )
        jax.tree.map(np.testing.assert_array_equal, updates, restored_updates)


# --------------------------------------------------------------------------- #
# minimize: the legacy tf.keras (TF 2.x OptimizerV2) doctests.
# --------------------------------------------------------------------------- #


def test_minimize_plain_sgd_doctest():
    opt = jsgd.SGD(learning_rate=0.1)
    var, state = opt.minimize(_loss, jnp.array(1.0))
    np.testing.assert_allclose(var, 0.9, rtol=1e-6)
    assert jax.tree.structure(state) == jax.tree.structure(opt.init(var))


def test_minimize_momentum_doctest():
    opt = jsgd.SGD(learning_rate=0.1, momentum=0.9)
    val0 = jnp.array(1.0)
    val1, state = opt.minimize(_loss, val0)
    np.testing.assert_allclose(val0 - val1, 0.1, rtol=1e-6)
    val2, state = opt.minimize(_loss, val1, state)
    np.testing.assert_allclose(val1 - val2, 0.18, rtol=1e-5)
    assert f"{float(val0 - val1):.2f}" == "0.10"
    assert f"{float(val1 - val2):.2f}" == "0.18"
    assert opt.get_config() == {
        "name": "SGD",
        "learning_rate": 0.1,
        "momentum": 0.9,
        "nesterov": False,
    }


def test_minimize_with_state_none_equals_explicit_init():
    opt = jsgd.SGD(0.1, momentum=0.9, nesterov=True)
    params = _params()
    p1, s1 = opt.minimize(_tree_loss, params)
    p2, s2 = opt.minimize(_tree_loss, params, opt.init(params))
    jax.tree.map(np.testing.assert_array_equal, p1, p2)
    jax.tree.map(np.testing.assert_array_equal, s1, s2)


def test_minimize_matches_manual_steps_and_jits():
    opt = jsgd.SGD(0.05, momentum=0.8, clipnorm=1.0, weight_decay=0.01)
    history = _run(opt, steps=4)
    close = functools.partial(np.testing.assert_allclose, rtol=1e-6)
    params, state = _params(), None
    for _, _, expected in history:
        params, state = opt.minimize(_tree_loss, params, state)
        jax.tree.map(close, params, expected)
    jitted = jax.jit(lambda p, s: opt.minimize(_tree_loss, p, s))
    params, state = _params(), opt.init(_params())
    for _, _, expected in history:
        params, state = jitted(params, state)
        jax.tree.map(close, params, expected)


# --------------------------------------------------------------------------- #
# SGD as a gradient transformation.
# --------------------------------------------------------------------------- #


def test_transformation_is_optax_extra_args():
    opt = jsgd.SGD(0.1, momentum=0.9)
    assert isinstance(opt.transformation, optax.GradientTransformationExtraArgs)
    assert opt.transformation is opt.transformation


def test_usable_inside_optax_chain():
    tx = optax.chain(optax.clip(1.0), jsgd.SGD(0.1))
    params = jnp.array([1.0, -1.0, 0.0])
    state = tx.init(params)
    updates, state = tx.update(jnp.array([5.0, -0.5, -3.0]), state, params)
    np.testing.assert_allclose(updates, [-0.1, 0.05, 0.1], rtol=1e-6)


def test_usable_inside_chain_with_momentum_and_jit():
    chained = optax.chain(optax.clip(1.0), jsgd.SGD(0.1, momentum=0.9))
    reference = optax.chain(optax.clip(1.0), jsgd.sgd(0.1, momentum=0.9))
    params = _params()
    s1, s2 = chained.init(params), reference.init(params)
    update, update_reference = jax.jit(chained.update), jax.jit(reference.update)
    for _ in range(3):
        grads = jax.grad(_tree_loss)(params)
        u1, s1 = update(grads, s1, params)
        u2, s2 = update_reference(grads, s2, params)
        jax.tree.map(np.testing.assert_array_equal, u1, u2)
        params = optax.apply_updates(params, u1)


def test_usable_with_multisteps():
    tx = optax.MultiSteps(jsgd.SGD(0.1), every_k_schedule=2)
    params = jnp.array(1.0)
    state = tx.init(params)
    u1, state = tx.update(jnp.array(1.0), state, params)
    u2, state = tx.update(jnp.array(3.0), state, params)
    np.testing.assert_allclose(u1, 0.0)
    np.testing.assert_allclose(u2, -0.2, rtol=1e-6)


@pytest.mark.parametrize("config", CONFIGS)
def test_init_update_identical_to_sgd_function(config):
    kwargs = {k: v for k, v in config.items() if k != "name"}
    _assert_same_history(_run(jsgd.SGD(**config)), _run(jsgd.sgd(**kwargs)))


def test_update_forwards_extra_args():
    opt = jsgd.SGD(0.1)
    params = jnp.array(1.0)
    updates, _ = opt.update(jnp.array(2.0), opt.init(params), params, loss=3.0)
    np.testing.assert_allclose(updates, -0.2, rtol=1e-6)


# --------------------------------------------------------------------------- #
# Keras 3 comparison of get_config.
# --------------------------------------------------------------------------- #

_SHARED = (
    "name",
    "learning_rate",
    "momentum",
    "nesterov",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "weight_decay",
)

KERAS_CONFIGS = [
    pytest.param({}, id="defaults"),
    pytest.param({"learning_rate": 0.1, "momentum": 0.9}, id="momentum"),
    pytest.param(
        {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}, id="nesterov"
    ),
    pytest.param({"learning_rate": 0.1, "clipvalue": 0.5}, id="clipvalue"),
    pytest.param({"learning_rate": 0.1, "clipnorm": 1.0}, id="clipnorm"),
    pytest.param({"learning_rate": 0.3, "global_clipnorm": 2.0}, id="global_clipnorm"),
    pytest.param(
        {"learning_rate": 0.1, "momentum": 0.5, "weight_decay": 0.01},
        id="weight_decay",
    ),
    pytest.param({"learning_rate": 1.0, "momentum": 1.0}, id="ones"),
    pytest.param({"learning_rate": 0.0}, id="zero-lr"),
]


# Keras's own variable code warns about NumPy 2's __array__ copy keyword.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
@pytest.mark.parametrize("config", KERAS_CONFIGS)
def test_get_config_matches_keras_3(config):
    name = "shared_name"
    ours = jsgd.SGD(name=name, **config).get_config()
    theirs = keras.optimizers.SGD(name=name, **config).get_config()
    for key in _SHARED:
        assert key in theirs, key
        mine = ours.get(key)  # absent in jsgd means unset, None in Keras
        if isinstance(theirs[key], float) and not isinstance(theirs[key], bool):
            # Keras stores the learning rate as a float32 variable.
            assert mine == pytest.approx(theirs[key], rel=1e-7), key
            assert type(mine) is float, key
        else:
            assert mine == theirs[key], key
            assert type(mine) is type(theirs[key]), key
