"""Parity with the real ``keras.optimizers.SGD`` (Keras 3, JAX backend).

100 random configurations x 20 steps: momentum, Nesterov, one clip option (Keras
3 allows only one), decoupled weight decay and a changing learning rate
(``InverseTimeDecay`` standing in for the legacy ``decay``). Every step's
parameters must match to float32 tolerance.

The default run checks the fewest configurations that between them take
every option drawn (``_oracle.fewest_covering``); the others run under
``-m oracle``.
"""

import numpy as np
import pytest

import jsgd
from tests import _oracle

keras = pytest.importorskip("keras")

N_CONFIGS = 100
N_STEPS = 20
SHAPES = {"bias": (4,), "kernel": (3, 4), "scale": ()}


def random_config(seed):
    rng = np.random.default_rng(seed)
    config = {
        "learning_rate": float(rng.uniform(0.001, 0.3)),
        "momentum": float(rng.choice([0.0, 0.5, 0.9, rng.uniform(0, 0.99)])),
        "nesterov": bool(rng.integers(2)),
        "decay": float(rng.choice([0.0, rng.uniform(0.01, 0.5)])),
    }
    clip = rng.choice(["none", "clipvalue", "clipnorm", "global_clipnorm"])
    if clip != "none":
        config[str(clip)] = float(rng.uniform(0.1, 2.0))
    if rng.integers(2):
        config["weight_decay"] = float(rng.uniform(0.0, 0.2))
    return config


def keras_optimizer(config):
    config = dict(config)
    decay = config.pop("decay")
    if decay:
        config["learning_rate"] = keras.optimizers.schedules.InverseTimeDecay(
            config["learning_rate"], decay_steps=1, decay_rate=decay
        )
    return keras.optimizers.SGD(**config)


def random_problem(seed):
    rng = np.random.default_rng(10_000 + seed)
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    # Gradient scales vary per step so that the clips sometimes bind.
    grads = [
        {
            k: (rng.normal(size=s) * rng.choice([0.1, 1.0, 5.0])).astype(np.float32)
            for k, s in SHAPES.items()
        }
        for _ in range(N_STEPS)
    ]
    return params, grads


def options_taken(seed):
    """What configuration ``seed`` exercises (for the default sample)."""
    config = random_config(seed)
    clips = config.keys() & {"clipvalue", "clipnorm", "global_clipnorm"}
    return {
        f"momentum>0={config['momentum'] > 0}",
        f"nesterov={config['nesterov']}",
        f"decay>0={config['decay'] > 0}",
        f"clip={min(clips, default=None)}",
        f"weight_decay={'weight_decay' in config}",
    }


SEEDS = _oracle.seeds(
    N_CONFIGS, chosen=_oracle.fewest_covering(N_CONFIGS, options_taken)
)


@pytest.mark.parametrize("seed", SEEDS)
def test_sgd_matches_keras(seed):
    config = random_config(seed)
    params, grads = random_problem(seed)
    names = sorted(SHAPES)  # the order of jax.tree.leaves on a dict

    reference = keras_optimizer(config)
    variables = [keras.Variable(params[k]) for k in names]

    opt = jsgd.SGD(**config)
    tx = jsgd.sgd(**config)
    ours = {k: np.asarray(v) for k, v in params.items()}
    ours_tx = dict(ours)
    state, state_tx = opt.init(ours), tx.init(ours_tx)

    for step, g in enumerate(grads):
        reference.apply([g[k] for k in names], variables)
        updates, state = opt.update(g, state, ours)
        ours = {k: ours[k] + np.asarray(updates[k]) for k in names}
        updates, state_tx = tx.update(g, state_tx, ours_tx)
        ours_tx = {k: ours_tx[k] + np.asarray(updates[k]) for k in names}
        for k, variable in zip(names, variables, strict=True):
            expected = np.asarray(variable.value)
            message = f"config={config} step={step} leaf={k}"
            np.testing.assert_allclose(
                ours[k], expected, rtol=2e-5, atol=2e-6, err_msg=message
            )
            np.testing.assert_allclose(
                ours_tx[k], expected, rtol=2e-5, atol=2e-6, err_msg=message
            )


def test_keras_and_optax_conventions_differ_under_keras_schedule():
    """Sanity: the Keras reference itself tells the conventions apart."""
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.1, 0.01])
    reference = keras.optimizers.SGD(schedule, momentum=0.9)
    variable = keras.Variable(np.zeros((), np.float32))
    for _ in range(2):
        reference.apply([np.ones((), np.float32)], [variable])
    assert float(variable.value) == pytest.approx(-0.2, abs=1e-6)  # not -0.119


def test_the_default_sample_takes_every_option():
    every = set().union(*(options_taken(seed) for seed in range(N_CONFIGS)))
    chosen = [seed for (seed,) in _oracle.in_default_run(SEEDS)]
    assert chosen
    assert set().union(*(options_taken(seed) for seed in chosen)) == every
