"""A registry-driven matrix: every public transform and optimizer gets every check.

The registry is ``tests/_registry.py``'s; adding a transform to it adds it to
all of them; ``test_registry_is_complete`` fails when a public factory is
missing from it.

Every check runs over every entry, a share of them in the default run
(``tests._oracle.rotating``: a third, or a sixth for the costliest checks, each
check a different share) and the rest under ``-m oracle``, so that the default
run still takes every entry through several of the checks.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from tests._oracle import rotating
from tests._registry import NAMES, REGISTRY

# Public callables that are not gradient transformations.
NOT_TRANSFORMS = {
    "apply_gradients",  # a step, not a transform (tests/test_fused.py)
    "apply_updates",
    "fused_available",
    "averaged_params",
    "global_norm",
    "inverse_time_decay",
    "keras_iterations",
    "keras_variables",
    "make_train_step",
    "pack",  # a tree as flat buffers (tests/test_packed.py), not a transform
    "state_from_keras_variables",
    "sweep",
    "value_and_row_grad",
    "weight_decay_mask",
    "zero1_shardings",
}


def test_registry_is_complete():
    covered = {name.split("-")[0] for name in REGISTRY}
    for name in jsgd.__all__:
        obj = getattr(jsgd, name)
        is_factory = inspect.isfunction(obj) or (
            inspect.isclass(obj) and issubclass(obj, jsgd.KerasOptimizer)
        )
        if is_factory and obj is not jsgd.KerasOptimizer and name not in NOT_TRANSFORMS:
            assert name in covered, f"jsgd.{name} is missing from REGISTRY"


def make_params(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return {
        "a": jnp.asarray(rng.normal(size=(3, 2)), dtype),
        "b": jnp.asarray(rng.normal(size=(4,)), dtype),
        "c": jnp.asarray(rng.normal(), dtype),
    }


def make_grads(params, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=p.shape) * 2, p.dtype), params
    )


def run(tx, params, steps, step_fn=None):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, updates

    step_fn = step_fn or step
    state = tx.init(params)
    for i in range(steps):
        params, state, updates = step_fn(params, state, make_grads(params, i))
    return params, state, updates


def assert_trees_close(a, b, **tolerance):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tolerance), a, b)


@pytest.mark.parametrize("name", rotating(NAMES, share=6, salt=0))
def test_jit_equals_eager_and_compiles_once(name):
    # Once for every entry (this was written three times: here, in
    # test_family.py for the classes and in test_composition.py for four sgd
    # configurations), with the tolerances each of those used.
    tx = REGISTRY[name].make()
    traces = []

    def step(params, state, grads):
        traces.append(1)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, updates

    eager = run(tx, make_params(), 6)
    jitted = run(tx, make_params(), 6, jax.jit(step))
    assert len(traces) == 1
    assert_trees_close(eager[:2], jitted[:2], rtol=1e-7, atol=1e-6)
    if name.lower().startswith("sgd"):
        assert_trees_close(eager[:2], jitted[:2], rtol=1e-6, atol=1e-7)


DTYPES = {
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
    "float32": jnp.float32,
    "complex64": jnp.complex64,
}


def per_parameter_leaves(state, params):
    """State leaves shaped like a parameter (counters and scalars excluded)."""
    shapes = {p.shape for p in jax.tree.leaves(params) if p.shape}
    return [x for x in jax.tree.leaves(state) if x.shape in shapes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", rotating(NAMES, share=6, salt=1))
def test_dtypes_are_kept(name, dtype):
    params = make_params(DTYPES[dtype])
    _, state, updates = run(REGISTRY[name].make(), params, 2)
    for u in jax.tree.leaves(updates):
        assert u.dtype == DTYPES[dtype]
    for leaf in per_parameter_leaves(state, params):
        assert leaf.dtype == DTYPES[dtype]
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if jnp.issubdtype(leaf.dtype, jnp.integer):
            if jax.tree_util.GetAttrKey("key") in path:  # stochastic rounding's
                assert leaf.dtype == jnp.uint32 and leaf.shape == (2,)
            else:  # counters
                assert leaf.dtype == jnp.int32 and leaf.shape == ()


@pytest.mark.parametrize("name", rotating(NAMES, share=6, salt=2))
def test_float64_under_x64(name):
    with jax.enable_x64(True):
        params = make_params(jnp.float64)
        _, state, updates = run(REGISTRY[name].make(), params, 2)
        assert all(u.dtype == jnp.float64 for u in jax.tree.leaves(updates))
        assert all(s.dtype == jnp.float64 for s in per_parameter_leaves(state, params))


@pytest.mark.parametrize(
    "name", rotating([n for n in NAMES if REGISTRY[n].takes_accumulator_dtype], salt=12)
)
def test_accumulator_dtype_overrides_the_state_dtype(name):
    params = make_params(jnp.bfloat16)
    tx = REGISTRY[name].make(accumulator_dtype=jnp.float32)
    _, state, updates = run(tx, params, 2)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    dtypes = {s.dtype for s in per_parameter_leaves(state, params)}
    assert jnp.dtype(jnp.float32) in dtypes


@pytest.mark.parametrize("name", rotating(NAMES, share=6, salt=3))
def test_mixed_dtype_tree_under_strict_promotion(name):
    params = {
        "low": jnp.ones((2, 2), jnp.bfloat16),
        "half": jnp.ones(3, jnp.float16),
        "full": jnp.ones(2, jnp.float32),
    }
    with jax.numpy_dtype_promotion("strict"):
        _, _, updates = run(REGISTRY[name].make(), params, 2)
    for key, p in params.items():
        assert updates[key].dtype == p.dtype


@pytest.mark.parametrize("name", rotating(NAMES, salt=4))
def test_odd_trees(name):
    tx = REGISTRY[name].make()
    params = {
        "frozen": jnp.ones(2),
        "none": None,
        "empty": jnp.zeros((0,)),
        "zero_size": jnp.zeros((3, 0)),
        "scalar": jnp.asarray(2.0),
        "w": jnp.ones(3),
    }
    grads = {**jax.tree.map(jnp.ones_like, params), "frozen": None}
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(grads, state, params)
    assert updates["frozen"] is None and updates["none"] is None
    assert updates["empty"].shape == (0,) and updates["zero_size"].shape == (3, 0)
    assert updates["scalar"].shape == ()
    # An empty tree is a valid (if pointless) model.
    empty_updates, _ = tx.update({}, tx.init({}), {})
    assert empty_updates == {}


@pytest.mark.parametrize(
    "name", rotating([n for n in NAMES if not REGISTRY[n].decays_weights], salt=11)
)
def test_zero_gradients_from_a_fresh_state_change_nothing(name):
    tx = REGISTRY[name].make()
    params = make_params()
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
        new = optax.apply_updates(params, updates)
        jax.tree.map(np.testing.assert_array_equal, new, params)


@pytest.mark.parametrize("name", rotating(NAMES, salt=5))
def test_eval_shape_of_init(name):
    entry = REGISTRY[name]
    params = make_params()
    options = [{}]
    if entry.takes_accumulator_dtype:
        options.append({"accumulator_dtype": jnp.bfloat16})
    for kwargs in options:
        tx = entry.make(**kwargs)
        shapes = jax.eval_shape(tx.init, params)
        real = tx.init(params)
        assert jax.tree.structure(shapes) == jax.tree.structure(real)
        for s, r in zip(jax.tree.leaves(shapes), jax.tree.leaves(real), strict=True):
            assert (s.shape, s.dtype) == (r.shape, r.dtype)
        if kwargs:  # the accumulators take the requested dtype, abstractly too
            dtypes = {s.dtype for s in per_parameter_leaves(shapes, params)}
            assert jnp.dtype(jnp.bfloat16) in dtypes


@pytest.mark.parametrize("name", rotating(NAMES, share=6, salt=5))
def test_vmap_over_an_ensemble_equals_a_loop(name):
    tx = REGISTRY[name].make()
    members = [
        jax.tree.map(lambda p, i=i: p * (i + 1), make_params()) for i in range(3)
    ]
    ensemble = jax.tree.map(lambda *p: jnp.stack(p), *members)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    # Both jitted, each compiled once: eager, every step re-traced the vmapped
    # update (and any lax.cond in it) op by op, seconds per entry.
    batched, single = jax.jit(jax.vmap(step)), jax.jit(step)
    params, state = ensemble, jax.vmap(tx.init)(ensemble)
    singles = [(m, tx.init(m)) for m in members]
    for i in range(3):
        grads = [make_grads(m, i) for m in members]
        stacked = jax.tree.map(lambda *g: jnp.stack(g), *grads)
        params, state = batched(params, state, stacked)
        singles = [single(p, s, g) for (p, s), g in zip(singles, grads, strict=True)]
    for i, (p, _) in enumerate(singles):
        assert_trees_close(
            jax.tree.map(lambda x, i=i: x[i], params), p, rtol=1e-6, atol=1e-7
        )


# --- non-finite gradients -----------------------------------------------------------


def nan_grads(params, value=jnp.nan):
    grads = make_grads(params, 0)
    grads["a"] = grads["a"].at[0, 0].set(value)
    return grads


@pytest.mark.parametrize("name", rotating(NAMES, salt=7))
def test_nan_gradient_result_is_the_documented_one(name):
    entry = REGISTRY[name]
    tx = entry.make()
    params = make_params()
    state = tx.init(params)
    updates, state = tx.update(nan_grads(params), state, params)
    if entry.deferred:  # the NaN sits in the accumulator until the real step
        assert all(bool(jnp.all(u == 0)) for u in jax.tree.leaves(updates))
        updates, state = tx.update(make_grads(params, 1), state, params)
    a = np.asarray(updates["a"])
    assert np.isnan(a[0, 0]), "the NaN element's update is NaN: never hidden"
    if entry.nan_spreads_to == "element":
        assert np.isfinite(a.flat[1:]).all() and np.isfinite(updates["b"]).all()
    elif entry.nan_spreads_to == "leaf":
        assert np.isnan(a).all() and np.isfinite(updates["b"]).all()
    else:
        assert all(np.isnan(u).all() for u in jax.tree.leaves(updates))


@pytest.mark.parametrize("name", rotating(NAMES, share=6, salt=4))
def test_apply_if_finite_skips_a_nan_step_bit_for_bit(name):
    tx = optax.apply_if_finite(REGISTRY[name].make(), max_consecutive_errors=5)
    # Jitted once for all nine steps: run eagerly, optax's lax.cond would be
    # traced and compiled anew at every step (seconds per entry).
    update = jax.jit(tx.update)
    params = make_params()
    clean, clean_state = params, tx.init(params)
    dirty, dirty_state = params, tx.init(params)
    for i in range(4):
        if i == 1:
            updates, dirty_state = update(nan_grads(dirty), dirty_state, dirty)
            dirty = optax.apply_updates(dirty, updates)
        for which in ("clean", "dirty"):
            p, s = (clean, clean_state) if which == "clean" else (dirty, dirty_state)
            updates, s = update(make_grads(p, i), s, p)
            p = optax.apply_updates(p, updates)
            if which == "clean":
                clean, clean_state = p, s
            else:
                dirty, dirty_state = p, s
    jax.tree.map(np.testing.assert_array_equal, dirty, clean)
    jax.tree.map(
        np.testing.assert_array_equal, dirty_state.inner_state, clean_state.inner_state
    )
    assert int(dirty_state.total_notfinite) == 1


def test_inf_gradients():
    """inf is clipped by clipvalue; elsewhere it makes the element non-finite."""
    params = make_params()
    grads = nan_grads(params, jnp.inf)
    clipped, _ = jsgd.clip_by_value(0.5).update(grads, optax.EmptyState())
    assert float(clipped["a"][0, 0]) == 0.5
    for name in ("momentum_trace", "scale_by_adam", "adagrad"):
        tx = REGISTRY[name].make()
        updates, _ = tx.update(grads, tx.init(params), params)
        assert not np.isfinite(updates["a"][0, 0])
    updates, _ = jsgd.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
    assert all(np.isnan(u).all() for u in jax.tree.leaves(updates))


# --- long runs ----------------------------------------------------------------------


@pytest.mark.parametrize("name", rotating(NAMES, salt=9))
def test_counters_saturate_and_schedules_stay_finite(name):
    tx = REGISTRY[name].make()
    params = make_params()
    top = jnp.iinfo(jnp.int32).max
    state = tx.init(params)
    state = jax.tree.map(
        lambda x: jnp.full_like(x, top) if x.dtype == jnp.int32 else x, state
    )
    for i in range(2):
        updates, state = tx.update(make_grads(params, i), state, params)
        assert all(np.isfinite(u).all() for u in jax.tree.leaves(updates))
    for leaf in jax.tree.leaves(state):
        if leaf.dtype == jnp.int32:
            # Never wraps: it saturates, or (a counter with a period, such as
            # gradient accumulation's) cycles through its last period.
            assert top - 64 <= int(leaf) <= top


@pytest.mark.parametrize("steps", [2, 3, 7])
def test_periodic_steps_carry_on_past_the_int32_maximum(steps):
    # Accumulation's real steps and the EMA's overwrites keep their period
    # where a plain saturating counter would freeze them (or wrap). Both
    # output a nonzero update exactly on those steps.
    top = jnp.iinfo(jnp.int32).max
    params = jnp.ones(2)  # the EMA's average (from zeros) differs from them
    for tx in (
        jsgd.sgd(1.0, gradient_accumulation_steps=steps),
        jsgd.sgd(0.0, use_ema=True, ema_overwrite_frequency=steps),
    ):
        state = jax.tree.map(
            lambda x: jnp.full_like(x, top - 3 * steps) if x.dtype == jnp.int32 else x,
            tx.init(params),
        )
        update = jax.jit(tx.update)
        pattern = []
        for _ in range(6 * steps):
            updates, state = update(jnp.ones(2), state, params)
            pattern.append(bool(updates.any()))
        first = pattern.index(True)
        assert pattern == [(i - first) % steps == 0 for i in range(6 * steps)]


@pytest.mark.parametrize(
    "schedule",
    [
        jsgd.schedules.ExponentialDecay(0.1, 10, 0.5),
        jsgd.schedules.InverseTimeDecay(0.1, 10, 0.5),
        jsgd.schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]),
        jsgd.schedules.PolynomialDecay(0.1, 100, cycle=True),
        jsgd.schedules.CosineDecay(0.1, 100, warmup_steps=10, warmup_target=0.2),
        jsgd.schedules.CosineDecayRestarts(0.1, 10),
        jsgd.inverse_time_decay(0.1, 1e-3),
    ],
    ids=lambda s: type(s).__name__,
)
def test_schedules_are_finite_at_the_int32_maximum(schedule):
    top = jnp.iinfo(jnp.int32).max
    for count in (top - 1, top):
        value = float(schedule(jnp.asarray(count, jnp.int32)))
        assert np.isfinite(value) and value >= 0


# --- clear errors -------------------------------------------------------------------


def test_tree_mismatch_names_the_key_path():
    tx = jsgd.sgd(0.1, 0.9)
    state = tx.init({"layer": {"w": jnp.ones(2), "b": jnp.ones(2)}})
    grads = {"layer": {"w": jnp.ones(2), "bias": jnp.ones(2)}}
    with pytest.raises(ValueError, match=r"\['layer'\]\['bias'\]"):
        tx.update(grads, state)


def test_params_mismatch_names_the_key_path():
    tx = jsgd.add_decayed_weights(0.1)
    with pytest.raises(
        ValueError, match=r"the params has an array float32\[2\] at \['x'\]"
    ):
        tx.update(
            {"w": jnp.ones(2)}, optax.EmptyState(), {"w": jnp.ones(2), "x": jnp.ones(2)}
        )


@pytest.mark.parametrize("name", rotating(NAMES, salt=10))
def test_a_state_from_another_optimizer_is_a_type_error(name):
    tx = REGISTRY[name].make()
    params = make_params()
    other = (
        jsgd.scale_by_adagrad()
        if "adagrad" not in name.lower()
        else jsgd.nesterov_trace(0.9)
    )
    wrong = other.init(params)
    with pytest.raises(TypeError, match="state"):
        tx.update(make_grads(params, 0), wrong, params)


def test_a_state_with_lists_for_tuples_is_a_clear_type_error():
    tx = jsgd.sgd(0.1, 0.9)
    params = make_params()
    state = tx.init(params)
    as_lists = [list(s) if isinstance(s, tuple) else s for s in state]
    with pytest.raises(TypeError, match="lists in place of tuples"):
        tx.update(make_grads(params, 0), as_lists, params)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if REGISTRY[n].takes_accumulator_dtype]
)
def test_integer_parameters_are_a_type_error_naming_the_leaf(name):
    params = {"w": jnp.ones(2), "steps": jnp.zeros(3, jnp.int32)}
    with pytest.raises(TypeError, match=r"parameter leaf \['steps'\] has dtype int32"):
        REGISTRY[name].make().init(params)


def test_integer_updates_are_a_type_error_naming_the_leaf():
    with pytest.raises(TypeError, match=r"update leaf \['n'\] has dtype bool"):
        jsgd.scale_by_learning_rate(0.1).update(
            {"n": jnp.ones(2, bool)}, optax.EmptyState()
        )


@pytest.mark.parametrize(
    "name", ["add_decayed_weights", "decoupled_weight_decay", "with_ema"]
)
def test_missing_params_is_optax_no_params_error(name):
    from optax._src.base import NO_PARAMS_MSG

    tx = REGISTRY[name].make()
    params = make_params()
    with pytest.raises(ValueError, match=NO_PARAMS_MSG[:40]):
        tx.update(make_grads(params, 0), tx.init(params))
