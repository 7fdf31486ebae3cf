"""Issue 14's reproductions (trees, dtypes, hyperparameters, optax wrappers), each pinned.

Every error case checks the exception type and a message naming the argument
or key path and the received value; the deliberate choices are the ones
docs/guarantees.md states ("Inputs at the edges").
"""

import re
import warnings

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings

import jsgd
from tests import _oracle

OPTIMIZERS = {
    "sgd": lambda **k: jsgd.sgd(0.1, 0.9, **k),
    "adagrad": lambda **k: jsgd.adagrad(0.1, **k),
    "rmsprop": lambda **k: jsgd.rmsprop(0.1, momentum=0.5, centered=True, **k),
    "adam": lambda **k: jsgd.adam(0.1, amsgrad=True, **k),
}


# --- 1. tree mismatches --------------------------------------------------------


def test_a_tuple_of_gradients_for_a_list_of_parameters_names_the_container():
    w, b = jnp.ones(3), jnp.ones(())
    tx = jsgd.sgd(0.1, 0.9)
    grads = jax.grad(lambda w, b: w.sum() + b, argnums=(0, 1))(w, b)
    with pytest.raises(
        ValueError,
        match=r"not the same tree: at the root the updates have a tuple and the other a list",
    ):
        tx.update(grads, tx.init([w, b]))


def test_a_nested_container_mismatch_names_its_path():
    params = {"layer": [jnp.ones(2), jnp.ones(2)]}
    grads = {"layer": (jnp.ones(2), jnp.ones(2))}
    tx = jsgd.momentum_trace(0.9)
    with pytest.raises(
        ValueError,
        match=r"at \['layer'\] the updates have a tuple and the other a list",
    ):
        tx.update(grads, tx.init(params))


def test_a_state_with_none_where_the_gradient_has_an_array():
    w = jnp.ones(3)
    tx = jsgd.momentum_trace(0.9)
    state = tx.init({"a": w, "b": w})
    state = state._replace(velocity={"a": state.velocity["a"], "b": None})
    with pytest.raises(
        ValueError,
        match=r"the optimizer state has None at \['b'\], where the updates have an array float32\[3\]",
    ):
        tx.update({"a": w, "b": w}, state)


# --- 3. strict promotion with complex parameters -------------------------------


@pytest.fixture
def strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_complex_parameters_under_strict_promotion(name, strict_promotion):
    params = jnp.array([1 + 2j, 0.5 - 1j, 3j], jnp.complex64)
    make = OPTIMIZERS[name]
    tx = make(global_clipnorm=10.0, weight_decay=0.01)
    state = tx.init(params)
    updates, state = tx.update(params, state, params)
    with jax.numpy_dtype_promotion("standard"):
        reference = make(global_clipnorm=10.0, weight_decay=0.01)
        expected, _ = reference.update(params, reference.init(params), params)
    assert updates.dtype == jnp.complex64
    np.testing.assert_array_equal(updates, expected)


# --- 5. optax.inject_hyperparams and the state's structure ---------------------


def test_inject_hyperparams_injects_the_numeric_defaults_too():
    """Pinned (docs/guarantees.md): optax injects every numeric argument, so
    an injected ``decay`` makes the learning rate a schedule; ``static_args``
    keeps the plain optimizer's structure (and its checkpoints)."""
    params = {"w": jnp.ones(3)}
    plain = jax.tree.structure(jsgd.sgd(1e-3, 0.9).init(params))
    injected = optax.inject_hyperparams(jsgd.sgd)(learning_rate=1e-3, momentum=0.9)
    state = injected.init(params)
    assert set(state.hyperparams) >= {"decay", "dampening", "ema_momentum"}
    assert jax.tree.structure(state.inner_state) != plain
    kept = optax.inject_hyperparams(
        jsgd.sgd, static_args=("decay", "dampening", "ema_momentum")
    )(learning_rate=1e-3, momentum=0.9)
    state = kept.init(params)
    assert set(state.hyperparams) == {"learning_rate", "momentum"}
    assert jax.tree.structure(state.inner_state) == plain


# --- 6. optax.apply_if_finite around sparse updates ----------------------------


def _sparse(indices):
    values = jnp.array([[1.0, 2.0], [jnp.nan, 1.0]])
    return {"t": jsgd.IndexedSlices(values, indices, (300, 2))}


def test_apply_if_finite_needs_indices_that_can_hold_the_padding_index():
    """Pinned: uint8 indices into a table of more than 255 rows come back as
    int32 (the padding index, 300, does not fit uint8), which
    optax.apply_if_finite's skip branch cannot match. Use int32 indices."""
    params = {"t": jnp.zeros((300, 2))}
    tx = optax.apply_if_finite(jsgd.sgd(0.1, 0.9), 3)
    with pytest.raises(TypeError, match="cond branches must have equal output types"):
        tx.update(_sparse(jnp.array([1, 1], jnp.uint8)), tx.init(params), params)


def test_apply_if_finite_skips_a_non_finite_lazy_row_step():
    params = {"t": jnp.zeros((300, 2))}
    tx = optax.apply_if_finite(jsgd.sgd(0.1, 0.9), max_consecutive_errors=3)
    state = tx.init(params)
    updates, new_state = tx.update(_sparse(jnp.array([1, 1])), state, params)
    assert int(new_state.notfinite_count) == 1
    new_params = jsgd.apply_updates(params, updates)
    np.testing.assert_array_equal(new_params["t"], params["t"])
    jax.tree.map(
        np.testing.assert_array_equal, new_state.inner_state, state.inner_state
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"lazy": False}, {"gradient_accumulation_steps": 2}],
    ids=["dense", "accumulation"],
)
def test_apply_if_finite_needs_updates_of_the_gradients_structure(kwargs):
    """Pinned (docs/guarantees.md): optax.apply_if_finite's skip branch returns
    zeros shaped like the *gradients*; steps whose updates leave dense do not
    fit it. Densify such gradients first (``to_dense()``)."""
    params = {"t": jnp.zeros((300, 2))}
    tx = optax.apply_if_finite(jsgd.sgd(0.1, 0.9, **kwargs), 3)
    with pytest.raises(
        TypeError, match="cond branch outputs must have the same pytree structure"
    ):
        tx.update(_sparse(jnp.array([1, 1])), tx.init(params), params)
    dense = {"t": _sparse(jnp.array([1, 1]))["t"].to_dense()}
    updates, state = tx.update(dense, tx.init(params), params)
    assert int(state.notfinite_count) == 1
    assert not np.any(updates["t"])


# --- 8. shapes are never broadcast ---------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_gradient_of_another_shape_is_an_error(name):
    tx = OPTIMIZERS[name]()
    params = {"w": jnp.ones(3)}
    with pytest.raises(
        ValueError,
        match=r"the update at \['w'\] has shape \[3, 1\] but the optimizer state",
    ):
        tx.update({"w": jnp.ones((3, 1))}, tx.init(params), params)


def test_indexed_slices_of_another_dense_shape_is_an_error():
    tx = jsgd.sgd(0.1, 0.9, lazy=False)
    params = {"t": jnp.zeros((3, 2))}
    g = jsgd.IndexedSlices(jnp.ones((1, 2)), jnp.array([0]), (5, 2))
    with pytest.raises(ValueError, match=r"the update at \['t'\] has shape \[5, 2\]"):
        tx.update({"t": g}, tx.init(params), params)


def test_a_stateless_step_of_another_shape_fails_at_apply_updates():
    """Plain SGD keeps no state to compare with: jsgd.apply_updates (used by
    minimize, make_train_step and sweep) refuses to broadcast instead."""
    tx = jsgd.sgd(0.1)
    params = {"w": jnp.ones(3)}
    updates, _ = tx.update({"w": jnp.ones((3, 1))}, tx.init(params), params)
    with pytest.raises(
        ValueError,
        match=r"the update at \['w'\] has shape \(3, 1\), its parameter the shape \(3,\)",
    ):
        jsgd.apply_updates(params, updates)
    with pytest.raises(ValueError, match="has shape"):
        jsgd.apply_updates(jnp.ones(3), jnp.ones((1, 3)))


def test_optax_broadcasts_where_jsgd_raises():
    """docs/guarantees.md says jsgd does better here than optax: pinned."""
    params = jnp.ones(3)
    tx = optax.sgd(0.1, momentum=0.9)
    updates, state = tx.update(jnp.ones((3, 1)), tx.init(params), params)
    assert updates.shape == (3, 3) and state[0].trace.shape == (3, 3)


# --- 9. hyperparameters float32 cannot hold -----------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"learning_rate": 1e39},
            "`learning_rate` overflows float32, whose largest number is 3.4028235e+38. Received: learning_rate=1e+39",
        ),
        (
            {"weight_decay": 1e39},
            "`weight_decay` overflows float32, whose largest number is 3.4028235e+38. Received: weight_decay=1e+39",
        ),
        (
            {"loss_scale_factor": 1e-46},
            "`loss_scale_factor` underflows float32, whose smallest normal number is 1.1754944e-38 (XLA treats smaller ones as 0). Received: loss_scale_factor=1e-46",
        ),
        (
            {"clipnorm": 1e-46},
            "`clipnorm` underflows float32, whose smallest normal number is 1.1754944e-38 (XLA treats smaller ones as 0). Received: clipnorm=1e-46",
        ),
        (
            {"loss_scale_factor": 1e-40},
            "`loss_scale_factor` underflows float32, whose smallest normal number is 1.1754944e-38 (XLA treats smaller ones as 0). Received: loss_scale_factor=1e-40",
        ),
    ],
)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_float32_overflow_and_underflow_are_rejected(name, kwargs, message):
    factory = getattr(jsgd, name)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        factory(**kwargs)


def test_tiny_learning_rates_and_infinite_clips_stay_valid():
    tx = jsgd.sgd(1e-46, clipnorm=float("inf"))
    updates, _ = tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
    np.testing.assert_array_equal(updates, -jnp.zeros(2))


# --- 10. what a schedule returns ----------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "error", "message"),
    [
        (
            lambda c: -0.1,
            ValueError,
            "must be a finite number >= 0. Received: learning_rate=-0.1",
        ),
        (lambda c: 0.1j, TypeError, "not complex"),
        (lambda c: jnp.full(3, 0.1), TypeError, r"not an array of shape \(3,\)"),
    ],
    ids=["negative", "complex", "vector"],
)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_schedule_value_is_checked(name, schedule, error, message):
    tx = getattr(jsgd, name)(schedule)
    params = jnp.ones(3)
    match = "^The schedule given as `learning_rate` returned a bad value: .*" + message
    with pytest.raises(error, match=match):
        tx.update(jnp.ones(3), tx.init(params), params)


def test_a_traced_schedule_value_is_checked_for_shape_and_dtype_only():
    tx = jsgd.sgd(lambda c: jnp.where(c >= 0, -0.1, 0.1))
    params = jnp.ones(3)
    updates, _ = jax.jit(tx.update)(jnp.ones(3), tx.init(params), params)
    np.testing.assert_allclose(updates, 0.1)  # negative under jit: its own business
    tx = jsgd.sgd(lambda c: jnp.full(3, 0.1))
    with pytest.raises(TypeError, match=r"not an array of shape \(3,\)"):
        jax.jit(tx.update)(jnp.ones(3), tx.init(params), params)


# --- 11. a real accumulator for complex parameters ----------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_real_accumulator_dtype_for_complex_parameters_is_an_error(name):
    tx = OPTIMIZERS[name](accumulator_dtype=jnp.float32)
    with pytest.raises(
        TypeError,
        match=r"^`accumulator_dtype` float32 is real, but the parameter at \['w'\] is complex64",
    ):
        tx.init({"w": jnp.ones(2, jnp.complex64)})


# --- 12. the complex convention: |g|**2, not torch's real view -----------------


def test_complex_adam_uses_the_squared_modulus():
    g = np.array([1 + 2j, -0.5 + 0.25j], np.complex64)
    tx = jsgd.adam(0.1, epsilon=0.0)
    params = jnp.zeros(2, jnp.complex64)
    state = tx.init(params)
    m = v = 0
    for t in range(1, 4):
        updates, state = tx.update(jnp.asarray(g), state, params)
        m = m + (g - m) * (1 - 0.9)
        v = v + (np.abs(g) ** 2 - v) * (1 - 0.999)
        expected = -0.1 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / np.sqrt(v)
        # float32 `1 - beta_2` and its powers: 6.6e-6 relative by step 3
        np.testing.assert_allclose(updates, expected, rtol=2e-5)
    # torch's real view (real and imaginary parts as two real numbers) differs.
    real_view = -0.1 * np.sign(g.real) + -0.1j * np.sign(g.imag)
    assert not np.allclose(updates, real_view, atol=1e-3)


# --- 15 (decay half). Keras 3 reads jsgd's SGD config -------------------------


def test_keras_reads_jsgd_sgd_config():
    keras = pytest.importorskip("keras")
    config = jsgd.SGD(0.1, momentum=0.9, nesterov=True).get_config()
    assert "decay" not in config  # not written at 0: Keras 3 would warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # so Keras 3 reads it without a warning
        opt = keras.optimizers.SGD.from_config(config)
    assert float(opt.learning_rate) == pytest.approx(0.1)
    assert opt.momentum == pytest.approx(0.9) and opt.nesterov is True


# --- fuzz: tree structure variants and NumPy scalar types ----------------------

_CONTAINERS = st.sampled_from(["list", "tuple", "dict"])


def _wrap(kind, leaves):
    if kind == "list":
        return list(leaves)
    if kind == "tuple":
        return tuple(leaves)
    return {f"k{i}": leaf for i, leaf in enumerate(leaves)}


@settings(max_examples=30, deadline=None)
@given(
    st.tuples(_CONTAINERS, _CONTAINERS),
    st.integers(1, 3),
    st.sampled_from(list(OPTIMIZERS)),
)
def test_fuzz_container_variants(kinds, n, name):
    leaves = [jnp.full((2,), float(i + 1)) for i in range(n)]
    params, grads = _wrap(kinds[0], leaves), _wrap(kinds[1], leaves)
    tx = OPTIMIZERS[name]()
    state = tx.init(params)
    if kinds[0] == kinds[1]:
        updates, _ = tx.update(grads, state, params)
        assert jax.tree.structure(updates) == jax.tree.structure(params)
    else:
        with pytest.raises(ValueError, match="not the same tree"):
            tx.update(grads, state, params)


_NUMPY_SCALARS = st.sampled_from(
    [np.float16, np.float32, np.float64, np.int32, np.int64]
)


@settings(max_examples=30, deadline=None)
@given(
    _NUMPY_SCALARS,
    st.floats(0.0, 1.0),
    st.sampled_from(
        [n for n, s in jsgd._optimizers.spec.REGISTRY.items() if not s.family.prefix]
    ),
)
def test_fuzz_numpy_scalar_hyperparameters_round_trip(scalar, value, cls_name):
    cls = getattr(jsgd, cls_name)
    value = scalar(value)
    opt = cls(learning_rate=value)
    again = cls.from_config(opt.get_config())
    assert again == opt and hash(again) == hash(opt)
    assert type(opt.learning_rate) in (int, float)


@_oracle.hypothesis_twins(
    20,
    given(
        st.lists(
            st.complex_numbers(max_magnitude=10.0, allow_nan=False),
            min_size=1,
            max_size=4,
        ),
        st.sampled_from(list(OPTIMIZERS)),
    ),
)
def test_fuzz_strict_promotion_with_complex(values, name):
    params = jnp.asarray(np.array(values, np.complex64))
    make = OPTIMIZERS[name]
    with jax.numpy_dtype_promotion("standard"):
        tx = make(clipvalue=5.0)
        expected, _ = tx.update(params, tx.init(params), params)
    with jax.numpy_dtype_promotion("strict"):
        tx = make(clipvalue=5.0)
        updates, _ = tx.update(params, tx.init(params), params)
    np.testing.assert_array_equal(updates, expected)


@_oracle.hypothesis_twins(
    20,
    given(
        st.lists(st.integers(0, 9), min_size=1, max_size=5),
        st.booleans(),
        st.sampled_from(["sgd", "adagrad"]),
    ),
)
def test_fuzz_apply_if_finite_with_sparse_rows(rows, poisoned, name):
    params = {"t": jnp.arange(20.0).reshape(10, 2), "b": jnp.ones(2)}
    values = np.ones((len(rows), 2), np.float32)
    if poisoned:
        values[-1, 0] = np.nan
    grads = {
        "t": jsgd.IndexedSlices(
            jnp.asarray(values), jnp.asarray(rows, jnp.int32), (10, 2)
        ),
        "b": jnp.ones(2),
    }
    tx = optax.apply_if_finite(OPTIMIZERS[name](), max_consecutive_errors=5)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    new = jsgd.apply_updates(params, updates)
    assert int(state.notfinite_count) == int(poisoned)
    changed = bool(np.any(new["t"] != params["t"]))
    assert changed is not poisoned
    assert np.all(np.isfinite(new["t"]))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_python_number_gradients_work_as_in_optax(name):
    tx = OPTIMIZERS[name](global_clipnorm=1.0, weight_decay=0.1)
    params = jnp.array(1.0)
    updates, _ = tx.update(1.0, tx.init(params), params)
    expected, _ = tx.update(jnp.array(1.0), tx.init(params), params)
    np.testing.assert_array_equal(updates, expected)


def test_a_root_leaf_is_named_the_root():
    with pytest.raises(ValueError, match="the update at the root has shape"):
        jsgd.apply_updates(jnp.ones(3), jnp.ones((3, 1)))


def test_a_custom_node_mismatch_shows_both_structures():
    @jax.tree_util.register_pytree_node_class
    class Box:
        def __init__(self, items):
            self.items = items

        def tree_flatten(self):
            return (self.items,), None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

    w = jnp.ones(2)
    tx = jsgd.momentum_trace(0.9)
    with pytest.raises(ValueError, match=r"their containers differ \(PyTreeDef"):
        tx.update(Box((w,)), tx.init(Box([w])))
