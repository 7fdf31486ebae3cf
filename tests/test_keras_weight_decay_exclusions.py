"""Keras 3's ``exclude_from_weight_decay``, immutable, on JAX pytrees.

The reference is a real Keras 3 model (Dense, LayerNormalization and
BatchNormalization layers) trained with ``optimizer.exclude_from_weight_decay
(var_names=...)``; jsgd gets the same weights as a dict tree keyed by the
Keras variables' paths, and the same gradients.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from jsgd._transforms.weight_decay import weight_decay_mask
from tests import _oracle

keras = pytest.importorskip("keras")

STEPS = 10


def keras_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, name="dense"),
            keras.layers.LayerNormalization(name="layer_norm"),
            keras.layers.Dense(3, name="head"),
            keras.layers.BatchNormalization(name="batch_norm"),
        ]
    )
    return model


def as_tree(variables, values):
    """``{"dense": {"kernel": ...}, ...}`` from the variables' paths."""
    tree = {}
    for variable, value in zip(variables, values, strict=True):
        layer, name = variable.path.split("/")[-2:]
        tree.setdefault(layer, {})[name] = jnp.asarray(value)
    return tree


def gradients(variables, seed=0):
    rng = np.random.default_rng(seed)
    return [
        [rng.normal(size=v.shape).astype(np.float32) for v in variables]
        for _ in range(STEPS)
    ]


CASES = [
    ("SGD", dict(learning_rate=0.1, momentum=0.9)),
    ("Adam", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01)),
]


VAR_NAMES = [["bias"], ["bias", "gamma", "beta"], ["norm", "head"], ["^k"]]
# By default SGD (which also checks that the exclusion matters) with every
# ``var_names``, Adam and RMSprop with one each; the rest under -m oracle.
_DEFAULT = {("SGD", 0), ("SGD", 1), ("SGD", 2), ("SGD", 3), ("Adam", 1), ("RMSprop", 3)}
EXCLUSION_CASES = [
    pytest.param(
        name,
        config,
        var_names,
        id=f"{name}-var_names{vi}",
        marks=() if (name, vi) in _DEFAULT else _oracle.oracle,
    )
    for name, config in CASES
    for vi, var_names in enumerate(VAR_NAMES)
]


@pytest.mark.parametrize(("name", "config", "var_names"), EXCLUSION_CASES)
def test_matches_keras_exclude_from_weight_decay(name, config, var_names):
    model = keras_model()
    variables = model.trainable_variables
    start = [np.asarray(v.value) for v in variables]
    grads = gradients(variables)

    reference = getattr(keras.optimizers, name)(weight_decay=0.1, **config)
    reference.exclude_from_weight_decay(var_names=var_names)
    for g in grads:
        reference.apply(g, variables)
    expected = as_tree(variables, [v.value for v in variables])
    # Keras matches ``variable.name``, the last key of the jsgd path.
    assert {v.name for v in variables} == {
        k for layer in expected.values() for k in layer
    }

    opt = getattr(jsgd, name)(weight_decay=0.1, **config)
    opt = opt.exclude_from_weight_decay(var_names=var_names)
    params = as_tree(variables, start)
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update(as_tree(variables, g), state, params)
        params = optax.apply_updates(params, updates)
    for layer, leaves in expected.items():
        for key, want in leaves.items():
            # Keras's Adam and RMSprop order their float32 products
            # differently (one rounding apart; see tests/test_keras_sparse.py).
            np.testing.assert_allclose(
                params[layer][key], want, rtol=1e-6, atol=1e-7, err_msg=key
            )
    # Exclusion matters: without it the decayed leaves differ.
    if name == "SGD":
        plain = getattr(jsgd, name)(weight_decay=0.1, **config)
        state, other = plain.init(params), as_tree(variables, start)
        for g in grads:
            updates, state = plain.update(as_tree(variables, g), state, other)
            other = optax.apply_updates(other, updates)
        differs = any(
            not np.array_equal(other[layer][key], params[layer][key])
            for layer in params
            for key in params[layer]
        )
        # ["norm", "head"] names layers, not variables: nothing is excluded.
        assert differs == any(re.search("|".join(var_names), v.name) for v in variables)


def test_is_a_new_equal_hashable_optimizer_that_round_trips():
    opt = jsgd.Adam(weight_decay=0.01)
    excluded = opt.exclude_from_weight_decay(var_names=["bias", "norm"])
    assert excluded is not opt and opt.weight_decay_exclude is None
    assert excluded.weight_decay_exclude == ("bias", "norm")
    again = jsgd.Adam(weight_decay=0.01).exclude_from_weight_decay(
        var_names=["bias", "norm"]
    )
    assert again == excluded and hash(again) == hash(excluded)
    config = excluded.get_config()
    assert config["weight_decay_exclude"] == ["bias", "norm"]
    assert jsgd.Adam.from_config(config) == excluded
    # As in Keras, a second call replaces the first exclusion.
    assert excluded.exclude_from_weight_decay(
        var_names=["kernel"]
    ).weight_decay_exclude == ("kernel",)


def test_path_matching_and_var_list_of_paths():
    params = {
        "encoder": {"bias": jnp.ones(2), "kernel": jnp.ones(2)},
        "decoder": {"bias": jnp.ones(2), "kernel": jnp.ones(2)},
    }
    grads = {k: {n: jnp.zeros(2) for n in v} for k, v in params.items()}

    def decayed(opt):
        updates, _ = opt.update(grads, opt.init(params), params)
        return {f"{k}/{n}": bool(v[n][0] != 0) for k, v in updates.items() for n in v}

    sgd = jsgd.SGD(0.1, weight_decay=0.5)
    assert decayed(sgd.exclude_from_weight_decay(var_names=["encoder"])) == {
        "encoder/bias": True,
        "encoder/kernel": True,
        "decoder/bias": True,
        "decoder/kernel": True,
    }
    by_path = sgd.exclude_from_weight_decay(var_names=["^encoder/"], by_path=True)
    assert decayed(by_path) == {
        "encoder/bias": False,
        "encoder/kernel": False,
        "decoder/bias": True,
        "decoder/kernel": True,
    }
    listed = sgd.exclude_from_weight_decay(var_list=["decoder/bias"])
    assert decayed(listed) == {
        "encoder/bias": True,
        "encoder/kernel": True,
        "decoder/bias": False,
        "decoder/kernel": True,
    }
    # The factory keywords do the same.
    tx = jsgd.sgd(
        0.1,
        weight_decay=0.5,
        weight_decay_exclude=("^encoder/",),
        weight_decay_exclude_by_path=True,
    )
    updates, _ = tx.update(grads, tx.init(params), params)
    assert float(updates["encoder"]["bias"][0]) == 0.0
    assert float(updates["decoder"]["bias"][0]) != 0.0


def test_nnx_value_attribute_is_dropped():
    class Variable:  # a pytree whose leaf sits under a `.value` attribute
        def __init__(self, value):
            self.value = value

    jax.tree_util.register_pytree_with_keys(
        Variable,
        lambda v: (((jax.tree_util.GetAttrKey("value"), v.value),), None),
        lambda _, children: Variable(*children),
    )
    params = {"layer": {"bias": Variable(jnp.ones(2)), "kernel": Variable(jnp.ones(2))}}
    mask = weight_decay_mask(("bias",))(params)
    assert mask["layer"]["bias"].value is False
    assert mask["layer"]["kernel"].value is True


def test_the_coupled_decay_takes_the_same_mask():
    params = {"w": jnp.ones(2), "bias": jnp.ones(2)}
    tx = jsgd.add_decayed_weights(0.1, mask=weight_decay_mask(("bias",)))
    updates, _ = tx.update(
        {"w": jnp.zeros(2), "bias": jnp.zeros(2)}, tx.init(params), params
    )
    np.testing.assert_array_equal(updates["bias"], 0.0)
    np.testing.assert_allclose(updates["w"], 0.1)


def test_bad_arguments_raise_clear_errors():
    opt = jsgd.Adam(weight_decay=0.01)
    with pytest.raises(ValueError, match="valid regular expressions"):
        opt.exclude_from_weight_decay(var_names=["("])
    with pytest.raises(TypeError, match="`var_names` must be a list of str"):
        opt.exclude_from_weight_decay(var_names="bias")
    with pytest.raises(TypeError, match="Keras variables have no meaning"):
        opt.exclude_from_weight_decay(var_list=[object()])
    with pytest.raises(ValueError, match="needs by_path=True"):
        opt.exclude_from_weight_decay(var_list=["a/b"], by_path=False)
    with pytest.raises(TypeError, match="tuple of str"):
        jsgd.adam(weight_decay_exclude=["bias"])
    with pytest.raises(ValueError, match="valid regular expressions"):
        jsgd.adam(weight_decay_exclude=("[",))
