"""jsgd states to Keras 3's ``optimizer.variables`` and back (issue 16, item 5).

A Keras optimizer runs K steps with ``optimizer.apply`` on Keras Variables;
its variables load into jsgd and both go on K steps: the same parameters and
the same variables. Then the reverse: jsgd runs K steps, its state is
assigned to a built Keras optimizer, and both go on.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from jsgd._optimizers import keras_variables as kv
from tests._oracle import oracle

keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover
    pytest.skip("needs KERAS_BACKEND=jax", allow_module_level=True)

K = 5

_OPTIMIZERS = {
    "sgd": ("SGD", {}),
    "sgd-momentum": ("SGD", {"momentum": 0.9}),
    "sgd-nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop-centered-momentum": ("RMSprop", {"centered": True, "momentum": 0.5}),
    "adam": ("Adam", {}),
    "adam-amsgrad": ("Adam", {"amsgrad": True}),
}
_KEYWORDS = {
    "plain": {},
    "ema": {"use_ema": True, "ema_momentum": 0.9},
    "accumulation": {"gradient_accumulation_steps": 2},
    "ema+accumulation": {
        "use_ema": True,
        "ema_momentum": 0.9,
        "gradient_accumulation_steps": 3,
    },
}


# By default every optimizer once, every keyword set and both learning-rate
# kinds over the two directions: each direction both learning-rate kinds and one
# of the keyword sets with gradient accumulation (the slowest, Keras
# accumulating eagerly), Keras to jsgd the first four configurations below and
# jsgd to Keras the other four; the rest of the grid with -m oracle (slow:
# Keras steps eagerly).
_DEFAULT = [
    ("sgd", "plain", False),
    ("sgd-nesterov", "plain", True),
    ("adagrad", "accumulation", False),
    ("rmsprop", "ema", False),
    ("sgd-momentum", "ema", True),
    ("rmsprop-centered-momentum", "plain", True),
    ("adam", "ema", False),
    ("adam-amsgrad", "ema+accumulation", True),
]


def _cases(default: list[tuple[str, str, bool]]) -> list:
    return [
        pytest.param(
            name,
            kw,
            schedule,
            id=f"{o}-{k}-{'schedule' if schedule else 'lr'}",
            marks=() if (o, k, schedule) in default else (oracle,),
        )
        for o, (name, own) in _OPTIMIZERS.items()
        for k, keywords in _KEYWORDS.items()
        for schedule in (False, True)
        for kw in [{**own, **keywords}]
    ]


_KERAS_TO_JSGD = _cases(_DEFAULT[:4])
_JSGD_TO_KERAS = _cases(_DEFAULT[4:])


def _learning_rate(module, schedule: bool):
    if schedule:
        return module.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.7)
    return 0.05


def _pair(name: str, kw: dict, schedule: bool):
    mine = getattr(jsgd, name)(learning_rate=_learning_rate(jsgd, schedule), **kw)
    theirs = getattr(keras.optimizers, name)(
        learning_rate=_learning_rate(keras.optimizers, schedule), **kw
    )
    return mine, theirs


_START = {  # in jax.tree.leaves order (sorted keys), Keras's order here
    "b": np.array([0.5, -0.25, 2.0], np.float32),
    "w": np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3),
}


def _grads(params: dict, step: int) -> dict:
    """A deterministic gradient of the parameters and the step."""
    return {
        k: jnp.asarray(v) * (0.5 + 0.1 * step) + jnp.float32(0.3 * (-1) ** step)
        for k, v in params.items()
    }


def _keras_steps(opt, variables: dict, start: int, n: int) -> None:
    for step in range(start, start + n):
        grads = _grads({k: v.value for k, v in variables.items()}, step)
        opt.apply([grads[k] for k in variables], list(variables.values()))


def _jsgd_steps(opt, params: dict, state, start: int, n: int):
    for step in range(start, start + n):
        updates, state = opt.update(_grads(params, step), state, params)
        params = jsgd.apply_updates(params, updates)
    return params, state


def _assert_same(mine, theirs, what):
    assert len(mine) == len(theirs), what
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        b = np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (what, i)
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7, err_msg=f"{what} {i}")


@pytest.mark.parametrize(("name", "kw", "schedule"), _KERAS_TO_JSGD)
def test_keras_to_jsgd_and_on(name, kw, schedule):
    mine, theirs = _pair(name, kw, schedule)
    variables = {k: keras.Variable(v, name=k) for k, v in _START.items()}
    theirs.build(list(variables.values()))
    _keras_steps(theirs, variables, 0, K)

    params = {k: jnp.asarray(v.value) for k, v in variables.items()}
    state = mine.state_from_keras(params, theirs.variables)
    _assert_same(
        kv.keras_variables(mine, params, state),
        [v.value for v in theirs.variables],
        "loaded",
    )
    steps = kw.get("gradient_accumulation_steps", 1)
    assert int(theirs.iterations) == K // steps
    assert int(kv.keras_iterations(mine, state)) == K // steps

    _keras_steps(theirs, variables, K, K)
    params, state = _jsgd_steps(mine, params, state, K, K)
    _assert_same(
        [np.asarray(params[k]) for k in variables],
        [v.value for v in variables.values()],
        "params",
    )
    _assert_same(
        kv.keras_variables(mine, params, state),
        [v.value for v in theirs.variables],
        "variables",
    )


@pytest.mark.parametrize(("name", "kw", "schedule"), _JSGD_TO_KERAS)
def test_jsgd_to_keras_and_on(name, kw, schedule):
    mine, theirs = _pair(name, kw, schedule)
    params = {k: jnp.asarray(v) for k, v in _START.items()}
    params, state = _jsgd_steps(mine, params, mine.init(params), 0, K)

    variables = {k: keras.Variable(np.asarray(v), name=k) for k, v in params.items()}
    theirs.build(list(variables.values()))
    values = mine.keras_variables(params, state)
    assert len(values) == len(theirs.variables)
    for variable, value in zip(theirs.variables, values, strict=True):
        variable.assign(value)

    _keras_steps(theirs, variables, K, K)
    params, state = _jsgd_steps(mine, params, state, K, K)
    _assert_same(
        [np.asarray(params[k]) for k in variables],
        [v.value for v in variables.values()],
        "params",
    )
    _assert_same(
        kv.keras_variables(mine, params, state),
        [v.value for v in theirs.variables],
        "variables",
    )


def test_order_by_paths_and_numpy_values():
    # Keras's variables in another order than jax.tree.leaves: name them.
    opt = jsgd.Adam(0.1, amsgrad=True)
    params = {"a": jnp.ones((2,)), "b": jnp.zeros((3,))}
    state = opt.init(params)
    for step in range(3):
        _, state = opt.update(_grads(params, step), state, params)
    values = kv.keras_variables(opt, params, state, order=["b", "a"])
    shapes = [v.shape for v in values]
    assert shapes == [(), (), (3,), (3,), (2,), (2,), (3,), (2,)]
    back = kv.state_from_keras_variables(opt, params, values, order=["b", "a"])
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="order"):
        kv.keras_variables(opt, params, state, order=["a"])


@pytest.mark.parametrize(
    "opt",
    [
        jsgd.SGD(0.1),  # constant rate, no momentum: a StepCountState
        jsgd.SGD(0.1, momentum=0.9),
        jsgd.SGD(jsgd.schedules.ExponentialDecay(0.1, 2, 0.5)),
        jsgd.Adagrad(0.1),
        jsgd.Adagrad(0.1, clipnorm=1.0, weight_decay=0.01),
        jsgd.RMSprop(0.1),
        jsgd.RMSprop(0.1, momentum=0.5, centered=True),
        jsgd.Adam(0.1),
        jsgd.Adam(0.1, use_ema=True),
        jsgd.Adagrad(0.1, gradient_accumulation_steps=2),
        jsgd.SGD(0.1, loss_scale_factor=4.0),
    ],
    ids=repr,
)
def test_iterations_of_every_state(opt):
    params = jnp.zeros(2)
    state = opt.init(params)
    assert int(opt.iterations(state)) == 0
    step = jax.jit(opt.update)
    for _ in range(5):
        _, state = step(jnp.ones(2), state, params)
    steps = opt.get_config().get("gradient_accumulation_steps") or 1
    assert int(kv.keras_iterations(opt, state)) == 5 // steps  # Keras: 5 // 2
    assert kv.keras_iterations(opt, state).dtype == jnp.int32
    # Keras's `iteration` variable survives the round trip through Keras's list.
    values = kv.keras_variables(opt, params, state)
    assert int(values[0]) == 5
    back = kv.state_from_keras_variables(opt, params, values)
    assert int(kv.keras_iterations(opt, back)) == 5 // steps


def test_iterations_counter_saturates():
    opt = jsgd.Adagrad(0.1)
    params = jnp.zeros(2)
    top = np.iinfo(np.int32).max
    values = kv.keras_variables(opt, params, opt.init(params))
    values[0] = np.int32(top)
    state = kv.state_from_keras_variables(opt, params, values)
    _, state = opt.update(jnp.ones(2), state, params)
    assert int(opt.iterations(state)) == top  # never wraps


def test_a_state_without_a_count_is_refused():
    opt = jsgd.SGD(0.1)
    with pytest.raises(TypeError, match="keeps no step count"):
        kv.keras_iterations(opt, (optax.EmptyState(), optax.EmptyState()))


def test_errors():
    params = jnp.zeros(2)
    opt = jsgd.SGD(0.1, momentum=0.9)
    state = opt.init(params)
    with pytest.raises(ValueError, match="has 3 Keras variables"):
        kv.state_from_keras_variables(opt, params, [np.int32(0)])
    with pytest.raises(ValueError, match="learning_rate"):
        kv.state_from_keras_variables(
            opt, params, [np.int32(0), np.float32(0.2), np.zeros(2, np.float32)]
        )
    with pytest.raises(ValueError, match="shape"):
        kv.state_from_keras_variables(
            opt, params, [np.int32(0), np.float32(0.1), np.zeros(3, np.float32)]
        )
    torch_rule = jsgd.SGD(0.1, momentum=0.9, lr_in_velocity=False)
    with pytest.raises(ValueError, match="lr_in_velocity"):
        kv.keras_variables(torch_rule, params, torch_rule.init(params))
    with pytest.raises(TypeError, match="Keras-style"):
        kv.keras_variables(jsgd.sgd(0.1), params, state)
