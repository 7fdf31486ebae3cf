"""Parity of the whole family with Keras 3 (JAX backend), all keywords included.

For each of SGD, Adagrad, RMSprop and Adam: 100 random configurations x 20
steps, drawing schedules, weight decay, one clip option, the optimizer's own
options (amsgrad, centered, RMSprop momentum, Nesterov), EMA (with and without
overwrites), gradient accumulation and loss scaling. Parameters (and the EMA
average) must match Keras at every step to float32 tolerance.

The default run keeps, for each optimizer, the fewest configurations that
between them take every option (``_oracle.fewest_covering``); the rest run
under ``-m oracle`` (tests/_oracle.py).
"""

import jax
import numpy as np
import optax
import pytest

import jsgd
from tests import _oracle

keras = pytest.importorskip("keras")

N_CONFIGS = 100
N_STEPS = 20
SHAPES = {"bias": (3,), "kernel": (2, 3), "scale": ()}

SCHEDULES = {
    "exponential": lambda rng: dict(
        initial_learning_rate=float(rng.uniform(0.01, 0.2)),
        decay_steps=int(rng.integers(1, 6)),
        decay_rate=float(rng.uniform(0.3, 0.95)),
        staircase=bool(rng.integers(2)),
    ),
    "piecewise": lambda rng: dict(
        boundaries=[int(b) for b in sorted(rng.choice(15, 2, replace=False))],
        values=[float(v) for v in rng.uniform(0.005, 0.2, 3)],
    ),
    "cosine": lambda rng: dict(
        initial_learning_rate=float(rng.uniform(0.01, 0.2)),
        decay_steps=int(rng.integers(5, 25)),
        alpha=float(rng.uniform(0, 0.3)),
    ),
}
CLASS_NAMES = {
    "exponential": "ExponentialDecay",
    "piecewise": "PiecewiseConstantDecay",
    "cosine": "CosineDecay",
}


def learning_rates(rng):
    """A (keras, jsgd) pair of equal learning rates: a number or a schedule."""
    kind = rng.choice(["constant", *SCHEDULES])
    if kind == "constant":
        lr = float(rng.uniform(0.001, 0.2))
        return lr, lr
    arguments = SCHEDULES[kind](rng)
    name = CLASS_NAMES[kind]
    return (
        getattr(keras.optimizers.schedules, name)(**arguments),
        getattr(jsgd.schedules, name)(**arguments),
    )


def own_options(name, rng):
    if name == "SGD":
        return dict(
            momentum=float(rng.choice([0.0, 0.9, rng.uniform(0, 0.99)])),
            nesterov=bool(rng.integers(2)),
        )
    if name == "Adagrad":
        return dict(
            initial_accumulator_value=float(rng.choice([0.1, rng.uniform(0, 1)])),
            epsilon=float(rng.choice([1e-7, 1e-3])),
        )
    if name == "RMSprop":
        return dict(
            rho=float(rng.uniform(0.5, 0.99)),
            momentum=float(rng.choice([0.0, rng.uniform(0, 0.95)])),
            epsilon=float(rng.choice([1e-7, 1e-3])),
            centered=bool(rng.integers(2)),
        )
    return dict(
        beta_1=float(rng.uniform(0.5, 0.95)),
        beta_2=float(rng.uniform(0.9, 0.9999)),
        epsilon=float(rng.choice([1e-7, 1e-3])),
        amsgrad=bool(rng.integers(2)),
    )


def random_configs(name, seed):
    rng = np.random.default_rng([seed, len(name)])
    keras_lr, jsgd_lr = learning_rates(rng)
    shared = own_options(name, rng)
    clip = rng.choice(["none", "clipvalue", "clipnorm", "global_clipnorm"])
    if clip != "none":
        shared[str(clip)] = float(rng.uniform(0.1, 2.0))
    if rng.integers(2):
        shared["weight_decay"] = float(rng.uniform(0.0, 0.1))
    if rng.integers(3) == 0:
        shared["use_ema"] = True
        shared["ema_momentum"] = float(rng.uniform(0.5, 0.99))
        if rng.integers(2):
            shared["ema_overwrite_frequency"] = int(rng.integers(1, 5))
    if rng.integers(3) == 0:
        shared["gradient_accumulation_steps"] = int(rng.integers(2, 4))
    if rng.integers(4) == 0:
        shared["loss_scale_factor"] = float(rng.choice([2.0, 128.0, 0.5]))
    return (
        dict(learning_rate=keras_lr, **shared),
        dict(learning_rate=jsgd_lr, **shared),
    )


def random_problem(seed):
    rng = np.random.default_rng(50_000 + seed)
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [
        {
            k: (rng.normal(size=s) * rng.choice([0.1, 1.0, 5.0])).astype(np.float32)
            for k, s in SHAPES.items()
        }
        for _ in range(N_STEPS)
    ]
    return params, grads


def keras_trajectory(name, config, params, grads):
    """Keras's parameters (and EMA) after each step, via its jitted stateless
    path (what ``model.fit`` runs on the JAX backend)."""
    names = sorted(SHAPES)
    reference = getattr(keras.optimizers, name)(**config)
    variables = [keras.Variable(params[k]) for k in names]
    reference.build(variables)
    ema_index = []
    if config.get("use_ema"):
        ids = [id(v) for v in reference.variables]
        ema_index = [
            ids.index(id(v)) for v in reference._model_variables_moving_average
        ]
    step = jax.jit(reference.stateless_apply)
    optimizer_values = [v.value for v in reference.variables]
    values = [v.value for v in variables]
    trajectory = []
    for g in grads:
        values, optimizer_values = step(optimizer_values, [g[k] for k in names], values)
        average = {
            k: optimizer_values[i] for k, i in zip(names, ema_index, strict=False)
        }
        trajectory.append((dict(zip(names, values, strict=True)), average))
    return trajectory


def jsgd_trajectory(opt, params, grads):
    @jax.jit
    def step(params, state, g):
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    state = opt.init(params)
    trajectory = []
    for g in grads:
        params, state = step(params, state, g)
        has_average = any(
            isinstance(s, jsgd.EmaState)
            for s in jax.tree.leaves(
                state, is_leaf=lambda x: isinstance(x, jsgd.EmaState)
            )
        )
        trajectory.append((params, jsgd.averaged_params(state) if has_average else {}))
    return trajectory


def options_taken(name, seed):
    """What configuration ``seed`` of ``name`` exercises (for the default sample)."""
    _, config = random_configs(name, seed)
    lr = config.pop("learning_rate")
    taken = {f"lr={type(lr).__name__}", f"staircase={getattr(lr, 'staircase', None)}"}
    if "momentum" in config:
        taken.add(f"momentum>0={config.pop('momentum') > 0}")
    for key, value in config.items():
        taken.add(f"{key}={value}" if isinstance(value, bool) else key)
    if not config.keys() & {"clipvalue", "clipnorm", "global_clipnorm"}:
        taken.add("no clip")
    if config.get("use_ema") and "ema_overwrite_frequency" not in config:
        taken.add("ema without overwrites")
    if "epsilon" in config:
        taken.add(f"epsilon={config['epsilon']}")
    return taken


FAMILY = ["SGD", "Adagrad", "RMSprop", "Adam"]
CASES = _oracle.cases(
    FAMILY,
    N_CONFIGS,
    lambda name: _oracle.fewest_covering(
        N_CONFIGS, lambda seed: options_taken(name, seed), salt=FAMILY.index(name)
    ),
)


@pytest.mark.parametrize(("name", "seed"), CASES)
def test_family_matches_keras(name, seed):
    keras_config, jsgd_config = random_configs(name, seed)
    params, grads = random_problem(seed)
    expected = keras_trajectory(name, keras_config, params, grads)
    got = jsgd_trajectory(getattr(jsgd, name)(**jsgd_config), params, grads)
    for step, ((w, average), (w_ref, average_ref)) in enumerate(
        zip(got, expected, strict=True)
    ):
        assert set(average) == set(average_ref)
        for k in w_ref:
            message = f"{name} {jsgd_config} step={step} leaf={k}"
            np.testing.assert_allclose(
                w[k], w_ref[k], rtol=2e-5, atol=2e-6, err_msg=message
            )
            if average_ref:
                np.testing.assert_allclose(
                    average[k],
                    average_ref[k],
                    rtol=2e-5,
                    atol=2e-6,
                    err_msg=f"{message} (EMA)",
                )


def test_the_default_sample_takes_every_option():
    for name in FAMILY:
        every = set().union(*(options_taken(name, seed) for seed in range(N_CONFIGS)))
        chosen = {seed for n, seed in _oracle.in_default_run(CASES) if n == name}
        assert chosen, name
        shown = set().union(*(options_taken(name, seed) for seed in chosen))
        assert shown == every, (name, every - shown)
