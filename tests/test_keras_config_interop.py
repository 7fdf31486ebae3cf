"""Configs both ways between jsgd and Keras 3 (issue 16, item 6).

``keras.optimizers.X.from_config(jsgd.X(...).get_config())`` builds the same
optimizer (the same updates for 10 steps, every schedule inside), without a
warning; ``jsgd.X.from_config`` reads Keras's config; no ``decay`` key is
written at 0, and a config holding one is still read.
"""

from __future__ import annotations

import json
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax.numpy as jnp
import numpy as np
import pytest

import jsgd
from jsgd import schedules
from tests._oracle import oracle

keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover
    pytest.skip("needs KERAS_BACKEND=jax", allow_module_level=True)

STEPS = 10

_SCHEDULES = {
    "cosine": lambda m: m.CosineDecay(0.1, 8, alpha=0.1, warmup_target=None),
    "cosine-warmup": lambda m: m.CosineDecay(0.0, 6, warmup_target=0.1, warmup_steps=3),
    "restarts": lambda m: m.CosineDecayRestarts(0.1, 3, t_mul=2.0, m_mul=0.5),
    "exponential": lambda m: m.ExponentialDecay(0.1, 3, 0.5, staircase=True),
    "inverse-time": lambda m: m.InverseTimeDecay(0.1, 2, 0.5),
    "piecewise": lambda m: m.PiecewiseConstantDecay([2, 5], [0.1, 0.05, 0.01]),
    "polynomial": lambda m: m.PolynomialDecay(0.1, 6, 0.01, power=2.0, cycle=True),
    "constant": lambda m: 0.05,
}
_OPTIMIZERS = {
    "SGD": {"momentum": 0.9, "nesterov": True},
    "Adagrad": {"initial_accumulator_value": 0.2},
    "RMSprop": {"centered": True, "momentum": 0.5},
    "Adam": {"amsgrad": True, "beta_2": 0.99},
}
_KEYWORDS = [
    {},
    {"clipnorm": 0.5, "weight_decay": 0.01},
    {"global_clipnorm": 0.7, "use_ema": True, "ema_momentum": 0.9},
    {"clipvalue": 0.2, "gradient_accumulation_steps": 2},
    {
        "weight_decay": 0.02,
        "use_ema": True,
        "ema_overwrite_frequency": 3,
        "gradient_accumulation_steps": 3,
        "loss_scale_factor": 4.0,
    },
]


# By default every schedule once, every optimizer twice, every keyword set
# once or twice: the two with gradient accumulation (3 and 4: 10-20 s each,
# Keras accumulating eagerly) once each; the rest of the grid with -m oracle.
_DEFAULT = {
    ("SGD", "cosine", 0),
    ("SGD", "inverse-time", 1),
    ("Adagrad", "cosine-warmup", 2),
    ("Adagrad", "piecewise", 3),
    ("RMSprop", "restarts", 0),
    ("RMSprop", "polynomial", 1),
    ("Adam", "exponential", 2),
    ("Adam", "constant", 4),
}


def _marks(o: str, s: str, ki: int):
    return () if (o, s, ki) in _DEFAULT else (oracle,)


_CASES = [
    pytest.param(o, s, kw, id=f"{o}-{s}-{ki}", marks=_marks(o, s, ki))
    for o in _OPTIMIZERS
    for s in _SCHEDULES
    for ki, kw in enumerate(_KEYWORDS)
]
_ALL_CASES = [
    pytest.param(*case.values, id=case.id) for case in _CASES
]  # cheap: no steps, all run by default


def _jsgd(name: str, schedule: str, keywords: dict):
    lr = _SCHEDULES[schedule](schedules)
    return getattr(jsgd, name)(learning_rate=lr, **_OPTIMIZERS[name], **keywords)


_START = {  # in jax.tree.leaves order, the Keras variables' order here
    "b": np.array([0.5, -0.25, 2.0], np.float32),
    "w": np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3),
}


def _grads(params: dict, step: int) -> dict:
    return {
        k: jnp.asarray(v) * (0.5 + 0.1 * step) + jnp.float32(0.3 * (-1) ** step)
        for k, v in params.items()
    }


def _run_keras(opt) -> list[np.ndarray]:
    variables = {k: keras.Variable(v, name=k) for k, v in _START.items()}
    for step in range(STEPS):
        grads = _grads({k: v.value for k, v in variables.items()}, step)
        opt.apply([grads[k] for k in variables], list(variables.values()))
    return [np.asarray(v.value) for v in variables.values()]


def _run_jsgd(opt) -> list[np.ndarray]:
    params = {k: jnp.asarray(v) for k, v in _START.items()}
    state = opt.init(params)
    for step in range(STEPS):
        updates, state = opt.update(_grads(params, step), state, params)
        params = jsgd.apply_updates(params, updates)
    return [np.asarray(params[k]) for k in _START]


def _keras_from(config: dict, name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning (no `decay`, no unknown key)
        return getattr(keras.optimizers, name).from_config(
            json.loads(json.dumps(config))
        )


@pytest.mark.parametrize(("name", "schedule", "keywords"), _CASES)
def test_keras_reads_jsgd_config_and_steps_alike(name, schedule, keywords):
    mine = _jsgd(name, schedule, keywords)
    config = mine.get_config()
    assert "decay" not in config
    theirs = _keras_from(config, name)
    for key, value in keywords.items():
        assert getattr(theirs, key) == pytest.approx(value), key
    if schedule != "constant":
        assert isinstance(
            theirs._learning_rate, keras.optimizers.schedules.LearningRateSchedule
        )
        assert theirs._learning_rate.get_config() == config["learning_rate"]["config"]
    got, want = _run_jsgd(mine), _run_keras(theirs)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "schedule", "keywords"), _ALL_CASES)
def test_jsgd_reads_keras_config(name, schedule, keywords):
    lr = _SCHEDULES[schedule](keras.optimizers.schedules)
    theirs = getattr(keras.optimizers, name)(
        learning_rate=lr, **_OPTIMIZERS[name], **keywords
    )
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(theirs)))
    mine = getattr(jsgd, name).from_config(config["config"])
    expected = _jsgd(name, schedule, keywords).replace(name=theirs.name)
    if schedule == "constant":  # Keras writes its float32 variable's value
        assert np.float32(mine.learning_rate) == np.float32(expected.learning_rate)
        expected = expected.replace(learning_rate=mine.learning_rate)
    assert mine == expected
    # and back: Keras reads jsgd's config of it
    again = _keras_from(mine.get_config(), name)
    assert again.get_config() == theirs.get_config()


@pytest.mark.parametrize("name", list(_OPTIMIZERS))
def test_no_decay_key_at_zero_and_decay_still_read(name):
    cls = getattr(jsgd, name)
    assert "decay" not in cls().get_config()
    assert "decay" not in cls(decay=0.0).get_config()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(keras.optimizers, name).from_config(cls().get_config())
    # A config with a decay (legacy tf.keras wrote one) is still read.
    config = {**cls().get_config(), "decay": 0.0}
    assert cls.from_config(config) == cls()
    decayed = cls(decay=0.1)
    assert decayed.get_config()["decay"] == 0.1
    assert cls.from_config(decayed.get_config()) == decayed
    # Keras 3 ignores it, and says so.
    with pytest.warns(UserWarning, match="decay"):
        getattr(keras.optimizers, name).from_config(decayed.get_config())


def test_schedule_layout_is_keras_serialized_form():
    for make in _SCHEDULES.values():
        schedule = make(schedules)
        if not isinstance(schedule, schedules.LearningRateSchedule):
            continue
        config = jsgd.SGD(learning_rate=schedule).get_config()["learning_rate"]
        keras_schedule = make(keras.optimizers.schedules)
        assert config == keras.optimizers.schedules.serialize(keras_schedule)
        assert set(config) == {"module", "class_name", "config", "registered_name"}
