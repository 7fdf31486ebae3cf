"""``jsgd.schedules`` against ``keras.optimizers.schedules`` (Keras 3, JAX backend).

Values: every schedule is compared with its Keras namesake at every step
0..1000, for several parameter sets each, to float32 tolerance (a third of
the parameter sets, every option among them, in the default run; the rest
under ``-m oracle``). Ours is evaluated jitted over all steps at once,
vmapped, and jitted one scalar step at a time (how optax calls it). Keras is evaluated over all steps at once with
``jax.vmap`` of its ``__call__`` (its ``ops.cond`` needs a scalar step), and
one step at a time wherever a floor, ceil or comparison decides the value
(staircase drops, cycle and restart boundaries, warmup end, piecewise
boundaries, each +-1 step): there XLA's vectorized float32 division, which is
not correctly rounded, can put Keras's batched value one step early or late,
and Keras's scalar evaluation is the reference.

Config: ``get_config`` has Keras's keys, order and values; configs and
``serialize`` output round-trip through JSON; Keras's own serialized form
deserializes; constructors validate with exact messages.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import pickle
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from jsgd import schedules
from tests import _oracle

keras = pytest.importorskip("keras")
K = keras.optimizers.schedules

N_STEPS = 1001
RTOL, ATOL = 1e-6, 1e-7
INF, NAN = float("inf"), float("nan")


def case(name, *args, **kwargs):
    """``(name, kwargs)`` with Keras's keyword names for ``name(*args, **kwargs)``."""
    signature = inspect.signature(getattr(K, name).__init__)
    arguments = dict(signature.bind(None, *args, **kwargs).arguments)
    del arguments["self"]
    return name, arguments


CASES = [
    case("ExponentialDecay", 0.1, 100, 0.96),
    # 41 * (1/41) < 1 in float32: a reciprocal-multiply floor drops a step late.
    case("ExponentialDecay", 0.1, 41, 0.5, staircase=True),
    case("ExponentialDecay", 1.0, 12.5, 0.9, staircase=True),
    case("ExponentialDecay", 0.01, 250, 1.5),
    case("InverseTimeDecay", 0.3, 3.5, 0.7),
    case("InverseTimeDecay", 0.1, 1, 0.5),
    case("InverseTimeDecay", 0.3, 10, 0.7, staircase=True),
    case("InverseTimeDecay", 0.1, 47, 2.0, staircase=True),
    case("PolynomialDecay", 0.1, 300),
    # Keras 3 under jit gives NaN from step 300 on (a fractional power of -0).
    case("PolynomialDecay", 0.1, 300, end_learning_rate=0.01, power=0.5),
    case("PolynomialDecay", 0.1, 2000, end_learning_rate=0.001, power=1.5),
    # Keras 3 under jit restarts one step early at 21, 42, ... (21 * (1/7) > 3).
    case("PolynomialDecay", 0.1, 7, 0.01, power=0.5, cycle=True),
    case("PolynomialDecay", 0.1, 300, 0.01, power=2.0, cycle=True),
    case("PolynomialDecay", 1.0, 77, 0.0, power=3.3, cycle=True),
    case("CosineDecay", 0.1, 700),
    case("CosineDecay", 0.1, 700, alpha=0.1),
    case("CosineDecay", 0.0, 500, alpha=0.05, warmup_target=0.2, warmup_steps=100),
    case("CosineDecay", 0.01, 333, warmup_target=0.1, warmup_steps=0),
    case("CosineDecay", 0.01, 333, warmup_target=0.1, warmup_steps=57),
    case("CosineDecay", 0.1, 2000, warmup_target=0.05, warmup_steps=1500),
    case("CosineDecayRestarts", 0.1, 50),
    case("CosineDecayRestarts", 0.1, 41, t_mul=1.0, m_mul=0.8, alpha=0.1),
    case("CosineDecayRestarts", 0.1, 20, t_mul=1.5, m_mul=0.5, alpha=0.01),
    case("CosineDecayRestarts", 0.1, 10, t_mul=3.0, m_mul=0.9),
    case("CosineDecayRestarts", 0.1, 7, t_mul=2.0, m_mul=0.5),
    case("PiecewiseConstantDecay", [0, 10, 500, 999], [1.0, 0.5, 0.1, 0.01, 0.001]),
    case("PiecewiseConstantDecay", [100], [0.3, 0.2]),
    case("PiecewiseConstantDecay", [-5, 1000], [0.5, 0.25, 0.125]),
    case(
        "PiecewiseConstantDecay",
        list(range(3, 1000, 37)),
        [1.0 / (i + 1) for i in range(28)],
    ),
]

CASE_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]

# The value sweep's default run: each schedule with and without its options
# (staircase, cycle, power, alpha, warmup, t_mul and m_mul) and every case a
# comment above pins; the other cases run under -m oracle (tests/_oracle.py).
VALUE_DEFAULT = {1, 3, 4, 7, 9, 11, 16, 21, 22, 25}
VALUE_CASES = [
    pytest.param(*c, id=i, marks=() if k in VALUE_DEFAULT else _oracle.oracle)
    for k, (c, i) in enumerate(zip(CASES, CASE_IDS, strict=True))
]


def _ours(name, kwargs):
    return getattr(schedules, name)(**kwargs)


def _keras(name, kwargs):
    return getattr(K, name)(**kwargs)


def _decision_steps(name, kwargs):
    """Steps (+-1) where a floor, ceil or comparison decides the value."""
    if name == "PiecewiseConstantDecay":
        edges = list(kwargs["boundaries"])
    elif name == "CosineDecay":
        warmup = kwargs.get("warmup_steps", 0)
        edges = [warmup, kwargs["decay_steps"], warmup + kwargs["decay_steps"]]
    elif name == "CosineDecayRestarts":
        edges, start, length = [], 0.0, kwargs["first_decay_steps"]
        while start < N_STEPS:
            edges.append(start)
            start += length
            length *= kwargs.get("t_mul", 2.0)
    elif name == "PolynomialDecay" and not kwargs.get("cycle", False):
        edges = [kwargs["decay_steps"]]
    elif kwargs.get("staircase", False) or kwargs.get("cycle", False):
        step = kwargs["decay_steps"]
        edges = [k * step for k in range(1, math.ceil(N_STEPS / step))]
    else:
        edges = []
    steps = {math.floor(edge) + delta for edge in edges for delta in (-1, 0, 1)}
    return sorted(step for step in steps if 0 <= step < N_STEPS)


def _keras_values(name, kwargs):
    """Keras's value at every step 0..1000 (see the module docstring)."""
    schedule = _keras(name, kwargs)
    values = np.array(jax.vmap(schedule)(jnp.arange(N_STEPS, dtype=jnp.int32)))
    if name == "PiecewiseConstantDecay":
        return values  # integer comparisons only: the batched values are exact
    with jax.disable_jit():  # op by op: ops.cond then runs one branch only
        for step in _decision_steps(name, kwargs):
            values[step] = np.asarray(schedule(jnp.int32(step)))
    return values


def _assert_close(actual, expected, what):
    actual = np.asarray(actual)
    assert actual.dtype == np.float32, what
    assert np.all(np.isfinite(actual)), what
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


# --------------------------------------------------------------------------- #
# Values: parity with Keras.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("name", "kwargs"), VALUE_CASES)
def test_matches_keras_at_every_step(name, kwargs):
    expected = _keras_values(name, kwargs)
    schedule = _ours(name, kwargs)
    steps = jnp.arange(N_STEPS, dtype=jnp.int32)

    _assert_close(jax.jit(schedule)(steps), expected, "jit over all steps")
    _assert_close(jax.vmap(schedule)(steps), expected, "vmap over all steps")
    scalar = jax.jit(schedule)
    decisions = _decision_steps(name, kwargs) or [0, 1, N_STEPS - 1]
    _assert_close(
        [scalar(np.int32(step)) for step in decisions],
        expected[decisions],
        f"jitted scalar steps {decisions}",
    )


@pytest.mark.parametrize("step", [0, 1, 5, 99, 100, 101, 1000])
def test_python_int_and_int32_counts_give_the_same_float32(step):
    schedule = schedules.CosineDecayRestarts(0.1, 100, m_mul=0.5)
    from_int = schedule(step)
    from_array = schedule(jnp.asarray(step, jnp.int32))
    assert from_int.dtype == from_array.dtype == jnp.float32
    assert from_int.shape == ()
    assert float(from_int) == float(from_array)


def test_piecewise_constant_uses_values_0_at_the_first_boundary():
    schedule = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    got = [float(schedule(step)) for step in (9, 10, 11, 19, 20, 21)]
    assert got == [1.0, 1.0, 0.5, 0.5, 0.5, np.float32(0.1)]


def test_polynomial_decay_stays_finite_at_the_end_under_jit():
    # Keras 3 returns NaN here under jit on CPU: XLA's 1 - step * (1/300)
    # (an FMA) is slightly negative and its square root is NaN.
    schedule = schedules.PolynomialDecay(0.1, 300, end_learning_rate=0.01, power=0.5)
    got = jax.jit(schedule)(jnp.arange(295, 310))
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got[5:], np.float32(0.01))


def test_staircase_and_cycle_boundaries_are_exact_under_jit():
    exponential = schedules.ExponentialDecay(1.0, 41, 0.5, staircase=True)
    assert [float(jax.jit(exponential)(s)) for s in (40, 41, 81, 82)] == [
        1.0,
        0.5,
        0.5,
        0.25,
    ]
    polynomial = schedules.PolynomialDecay(0.1, 7, 0.01, power=0.5, cycle=True)
    ends = jax.jit(polynomial)(jnp.arange(7, 1001, 7))
    np.testing.assert_array_equal(ends, np.float32(0.01))


# --------------------------------------------------------------------------- #
# JAX and optax integration.
# --------------------------------------------------------------------------- #


def test_schedule_is_a_static_jit_argument():
    @jax.jit
    def twice(count):
        return 2 * schedule(count)

    schedule = schedules.ExponentialDecay(0.1, 10, 0.5)
    traced = jax.jit(lambda s, t: s(t), static_argnums=0)
    assert float(traced(schedule, 10)) == pytest.approx(0.05)
    same = schedules.ExponentialDecay(0.1, 10, 0.5)
    assert float(traced(same, 10)) == pytest.approx(0.05)  # cached: equal + hash
    assert float(twice(jnp.int32(10))) == pytest.approx(0.1)


def test_vmap_over_counts_of_any_shape():
    schedule = schedules.PiecewiseConstantDecay([1, 2], [3.0, 2.0, 1.0])
    counts = jnp.arange(6, dtype=jnp.int32).reshape(2, 3)
    expected = [[3.0, 3.0, 2.0], [1.0, 1.0, 1.0]]
    np.testing.assert_array_equal(jax.vmap(jax.vmap(schedule))(counts), expected)
    np.testing.assert_array_equal(schedule(counts), expected)


@pytest.mark.parametrize(("name", "kwargs"), CASES[::6], ids=CASE_IDS[::6])
def test_optax_sgd_follows_the_schedule(name, kwargs):
    schedule = _ours(name, kwargs)
    tx = optax.sgd(schedule)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    step = jax.jit(tx.update)
    grads = {"w": jnp.full(3, 2.0)}
    for count in range(5):
        updates, state = step(grads, state)
        np.testing.assert_allclose(updates["w"], -2.0 * schedule(count), rtol=1e-6)


def test_jsgd_transform_follows_the_schedule():
    schedule = schedules.CosineDecay(0.1, decay_steps=4)
    tx = jsgd.scale_by_learning_rate(schedule)
    state = tx.init({"w": jnp.zeros(2)})
    for count in range(6):
        updates, state = tx.update({"w": jnp.ones(2)}, state)
        np.testing.assert_array_equal(updates["w"], -schedule(count))


# --------------------------------------------------------------------------- #
# Objects and configs.
# --------------------------------------------------------------------------- #

ALL = [getattr(schedules, name) for name in sorted({name for name, _ in CASES})]


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_signature_and_defaults_are_keras(cls):
    ours = inspect.signature(cls).parameters
    theirs = dict(inspect.signature(getattr(K, cls.__name__).__init__).parameters)
    del theirs["self"]
    assert list(ours) == list(theirs)
    for key, parameter in theirs.items():
        assert ours[key].default == parameter.default, key
    assert issubclass(cls, schedules.LearningRateSchedule)


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_config_is_keras_and_round_trips_through_json(name, kwargs):
    schedule = _ours(name, kwargs)
    config = schedule.get_config()
    keras_config = _keras(name, kwargs).get_config()
    assert list(config) == list(keras_config)
    assert config == keras_config
    rebuilt = type(schedule).from_config(json.loads(json.dumps(config)))
    assert rebuilt == schedule
    assert hash(rebuilt) == hash(schedule)
    assert rebuilt.get_config() == config
    assert pickle.loads(pickle.dumps(schedule)) == schedule


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_serialize_round_trips_and_keras_reads_it(name, kwargs):
    schedule = _ours(name, kwargs)
    serialized = json.loads(json.dumps(schedules.serialize(schedule)))
    assert serialized == {
        "module": "keras.optimizers.schedules",
        "class_name": name,
        "config": schedule.get_config(),
        "registered_name": None,
    }
    assert schedules.deserialize(serialized) == schedule
    from_ours = K.deserialize(serialized)
    assert type(from_ours) is getattr(K, name)
    assert from_ours.get_config() == schedule.get_config()


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_deserializes_keras_serialized_schedules(name, kwargs):
    keras_schedule = _keras(name, kwargs)
    serialized = json.loads(json.dumps(K.serialize(keras_schedule)))
    assert {"module", "registered_name"} <= set(serialized)  # Keras's extras
    schedule = schedules.deserialize(serialized)
    assert schedule == _ours(name, kwargs)
    steps = [0, 1, 17, 123, 999]
    with jax.disable_jit():
        expected = [keras_schedule(jnp.int32(step)) for step in steps]
    _assert_close([schedule(step) for step in steps], expected, "Keras's values")


def test_deserialize_fills_defaults_and_accepts_name_none():
    schedule = schedules.deserialize(
        {
            "class_name": "PolynomialDecay",
            "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "name": None},
        }
    )
    assert schedule == schedules.PolynomialDecay(0.1, 10, name=None)
    assert schedule.end_learning_rate == 0.0001


def test_deserialize_custom_objects():
    @dataclasses.dataclass(frozen=True)
    class Constant(schedules.LearningRateSchedule):
        value: float
        name: str | None = "Constant"

        def __call__(self, count):
            return jnp.full(jnp.shape(count), self.value, jnp.float32)

    serialized = schedules.serialize(Constant(0.5))
    assert serialized == {
        "class_name": "Constant",
        "config": {"value": 0.5, "name": "Constant"},
    }
    rebuilt = schedules.deserialize(serialized, custom_objects={"Constant": Constant})
    assert rebuilt == Constant(0.5)
    assert float(rebuilt(3)) == 0.5


def test_equality_hash_and_immutability():
    a = schedules.ExponentialDecay(0.1, 100, 0.96)
    assert a == schedules.ExponentialDecay(0.1, 100, 0.96)
    assert hash(a) == hash(schedules.ExponentialDecay(0.1, 100, 0.96))
    assert a != schedules.ExponentialDecay(0.1, 100, 0.96, name="other")
    assert a != schedules.InverseTimeDecay(0.1, 100, 0.96)
    assert len({a, schedules.ExponentialDecay(0.1, 100, 0.96)}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.decay_rate = 0.5  # type: ignore[misc]
    changed = dataclasses.replace(a, decay_rate=0.5)
    assert changed.decay_rate == 0.5 and a.decay_rate == 0.96
    with pytest.raises(ValueError, match="decay_steps"):
        dataclasses.replace(a, decay_steps=0)  # replace re-validates


def test_numpy_and_jax_scalars_become_python_numbers():
    schedule = schedules.PiecewiseConstantDecay(
        np.array([10, 20]), (np.float64(1.0), jnp.asarray(0.5), 0.25)
    )
    assert schedule.boundaries == (10, 20)
    assert schedule.values == (1.0, 0.5, 0.25)
    assert all(type(v) is float for v in schedule.values)
    cosine = schedules.CosineDecay(np.float32(0.5), np.int64(10), alpha=jnp.array(0))
    assert type(cosine.decay_steps) is int and type(cosine.alpha) is int
    assert json.dumps(cosine.get_config())


def test_base_class_is_abstract():
    with pytest.raises(NotImplementedError, match="must override"):
        schedules.LearningRateSchedule()(0)


def test_public_namespace():
    assert sorted(schedules.__all__) == sorted(
        [cls.__name__ for cls in ALL]
        + ["LearningRateSchedule", "serialize", "deserialize"]
    )
    for name in schedules.__all__:
        assert getattr(schedules, name).__module__ == "jsgd._schedules"


# --------------------------------------------------------------------------- #
# Validation.
# --------------------------------------------------------------------------- #


def _exact(message):
    return "^" + re.escape(message) + "$"


def _positive(name, shown):
    return f"`{name}` must be > 0. Received: {name}={shown}"


def _finite(name, condition, shown):
    return f"`{name}` must be a finite number {condition}. Received: {name}={shown}"


def _unit(name, shown):
    return f"`{name}` must be between [0, 1]. Received: {name}={shown}"


def _not_real(name, why, shown):
    return (
        f"`{name}` must be a real scalar (a Python number or a 0-d real array), "
        f"{why}. Received: {name}={shown}"
    )


def _lengths(boundaries, values):
    return (
        "`values` must have one more element than `boundaries`. Received: "
        f"boundaries={boundaries} of length {len(boundaries)}, and "
        f"values={values} of length {len(values)}"
    )


S = schedules
LR = "initial_learning_rate"
VALUE_ERRORS = [
    (lambda: S.ExponentialDecay(0.1, 0, 0.5), _positive("decay_steps", "0")),
    (lambda: S.ExponentialDecay(0.1, -1.5, 0.5), _positive("decay_steps", "-1.5")),
    (
        lambda: S.ExponentialDecay(0.1, INF, 0.5),
        _finite("decay_steps", "> 0", "inf"),
    ),
    (lambda: S.ExponentialDecay(-0.1, 10, 0.5), _finite(LR, ">= 0", "-0.1")),
    (lambda: S.ExponentialDecay(NAN, 10, 0.5), _finite(LR, ">= 0", "nan")),
    (
        lambda: S.ExponentialDecay(0.1, 10, -0.5),
        _finite("decay_rate", ">= 0", "-0.5"),
    ),
    (lambda: S.InverseTimeDecay(0.1, 0.0, 1.0), _positive("decay_steps", "0.0")),
    (lambda: S.InverseTimeDecay(0.1, 1, -1), _finite("decay_rate", ">= 0", "-1")),
    (lambda: S.PolynomialDecay(0.1, -3), _positive("decay_steps", "-3")),
    (
        lambda: S.PolynomialDecay(0.1, 10, end_learning_rate=-0.1),
        _finite("end_learning_rate", ">= 0", "-0.1"),
    ),
    (lambda: S.PolynomialDecay(0.1, 10, power=-1), _finite("power", ">= 0", "-1")),
    (lambda: S.CosineDecay(0.1, 0), _positive("decay_steps", "0")),
    (lambda: S.CosineDecay(0.1, 10, alpha=2), _unit("alpha", "2")),
    (lambda: S.CosineDecay(0.1, 10, alpha=NAN), _unit("alpha", "nan")),
    (
        lambda: S.CosineDecay(0.1, 10, warmup_target=-1.0),
        _finite("warmup_target", ">= 0", "-1.0"),
    ),
    (
        lambda: S.CosineDecay(0.1, 10, warmup_steps=-10),
        _finite("warmup_steps", ">= 0", "-10"),
    ),
    (
        lambda: S.CosineDecay(0.1, 10, warmup_steps=INF),
        _finite("warmup_steps", ">= 0", "inf"),
    ),
    (lambda: S.CosineDecayRestarts(0.1, 0), _positive("first_decay_steps", "0")),
    (lambda: S.CosineDecayRestarts(0.1, 10, t_mul=0), _positive("t_mul", "0")),
    (
        lambda: S.CosineDecayRestarts(0.1, 10, m_mul=-1.0),
        _finite("m_mul", ">= 0", "-1.0"),
    ),
    (lambda: S.CosineDecayRestarts(0.1, 10, alpha=1.5), _unit("alpha", "1.5")),
    (
        lambda: S.PiecewiseConstantDecay([10, 20], [1.0, 0.5]),
        _lengths([10, 20], [1.0, 0.5]),
    ),
    (
        lambda: S.PiecewiseConstantDecay([10], [1.0, 0.5, 0.1]),
        _lengths([10], [1.0, 0.5, 0.1]),
    ),
    (
        lambda: S.PiecewiseConstantDecay([], [1.0]),
        "`boundaries` must not be empty. Received: boundaries=[]",
    ),
    (
        lambda: S.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1]),
        "`boundaries` must be strictly increasing. Received: boundaries=[20, 10]",
    ),
    (
        lambda: S.PiecewiseConstantDecay([10, 10], [1.0, 0.5, 0.1]),
        "`boundaries` must be strictly increasing. Received: boundaries=[10, 10]",
    ),
    (
        lambda: S.PiecewiseConstantDecay([2**31], [1.0, 0.5]),
        "`boundaries[0]` must fit in int32 (the step counter's dtype). "
        "Received: boundaries[0]=2147483648",
    ),
    (
        lambda: S.PiecewiseConstantDecay([10], [1.0, -0.5]),
        _finite("values[1]", ">= 0", "-0.5"),
    ),
    (
        lambda: S.PiecewiseConstantDecay([10], [INF, 0.5]),
        _finite("values[0]", ">= 0", "inf"),
    ),
]

TYPE_ERRORS = [
    (
        lambda: S.ExponentialDecay(0.1, 10, 0.5, staircase=1),
        "`staircase` must be a bool. Received: staircase=1",
    ),
    (
        lambda: S.PolynomialDecay(0.1, 10, cycle="yes"),
        "`cycle` must be a bool. Received: cycle='yes'",
    ),
    (
        lambda: S.ExponentialDecay(0.1, 10, 0.5, name=3),
        "`name` must be a str or None. Received: name=3",
    ),
    (
        lambda: S.ExponentialDecay(True, 10, 0.5),
        _not_real(LR, "not a bool", "True"),
    ),
    (
        lambda: S.InverseTimeDecay(0.1, "10", 0.5),
        _not_real("decay_steps", "not str", "'10'"),
    ),
    (
        lambda: S.CosineDecay(0.1, 10, alpha=1j),
        _not_real("alpha", "not complex", "1j"),
    ),
    (
        lambda: S.CosineDecay(0.1, 10, warmup_target=[0.2]),
        _not_real("warmup_target", "not list", "[0.2]"),
    ),
    (
        lambda: S.ExponentialDecay(0.1, jnp.ones(2), 0.5),
        _not_real("decay_steps", "not an array of shape (2,)", repr(jnp.ones(2))),
    ),
    (
        lambda: S.PiecewiseConstantDecay([10.5], [1.0, 0.5]),
        "`boundaries[0]` must be an integer step number. Received: boundaries[0]=10.5",
    ),
    (
        lambda: S.PiecewiseConstantDecay(10, [1.0, 0.5]),
        "`boundaries` must be a list or tuple of numbers. Received: boundaries=10",
    ),
    (
        lambda: S.PiecewiseConstantDecay([10], "ab"),
        "`values` must be a list or tuple of numbers. Received: values='ab'",
    ),
    (
        lambda: S.ExponentialDecay.from_config(
            {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5, "lr": 1}
        ),
        "ExponentialDecay got unknown config key(s): ['lr']. Valid keys: "
        "['initial_learning_rate', 'decay_steps', 'decay_rate', 'staircase', 'name']",
    ),
    (
        lambda: S.serialize(K.ExponentialDecay(0.1, 10, 0.5)),  # Keras's, not ours
        None,
    ),
    (lambda: S.deserialize([("class_name", "CosineDecay")]), None),
    (
        lambda: S.deserialize({"class_name": "CosineDecay", "config": [0.1, 10]}),
        "`config['config']` must be a dict. Received: [0.1, 10]",
    ),
]


@pytest.mark.parametrize(("build", "message"), VALUE_ERRORS)
def test_value_errors(build, message):
    with pytest.raises(ValueError, match=_exact(message)):
        build()


@pytest.mark.parametrize(("build", "message"), TYPE_ERRORS)
def test_type_errors(build, message):
    with pytest.raises(TypeError, match=None if message is None else _exact(message)):
        build()


def test_traced_hyperparameters_are_rejected():
    message = (
        "`initial_learning_rate` must be a concrete number, not a traced value: a "
        "schedule's hyperparameters are static configuration. Received: "
        "initial_learning_rate="
    )
    with pytest.raises(TypeError, match="^" + re.escape(message)):
        jax.jit(lambda lr: schedules.CosineDecay(lr, 10)(0))(0.1)


def test_deserialize_errors():
    known = (
        "['CosineDecay', 'CosineDecayRestarts', 'ExponentialDecay', "
        "'InverseTimeDecay', 'PiecewiseConstantDecay', 'PolynomialDecay']"
    )
    with pytest.raises(ValueError) as error:
        schedules.deserialize({"class_name": "OneCycle", "config": {}})
    assert str(error.value) == (
        "Unknown learning rate schedule: class_name='OneCycle'. "
        f"Known schedules: {known}"
    )
    with pytest.raises(ValueError, match=r"^`config` must be a dict"):
        schedules.deserialize({"config": {}})
    with pytest.raises(ValueError, match=r"^`config` must be a dict .*'extra'"):
        schedules.deserialize({"class_name": "CosineDecay", "config": {}, "extra": 1})
    with pytest.raises(TypeError, match="decay_steps"):  # missing argument
        schedules.deserialize(
            {"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1}}
        )
