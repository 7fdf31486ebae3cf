"""Parity of ``lr_in_velocity=False`` with ``optax.sgd`` (and optax's clips and decay).

Learning rates change every step, so a convention mismatch cannot hide.

The default run checks, of each sweep's 100 configurations, the fewest that
between them take every option drawn (``_oracle.fewest_covering``); the
others run under ``-m oracle``.
"""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from tests import _oracle

N_CONFIGS = 100
N_STEPS = 20
SHAPES = {"a": (5,), "b": (2, 3), "c": ()}


def random_problem(seed):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [
        {
            k: (rng.normal(size=s) * rng.choice([0.1, 1.0, 5.0])).astype(np.float32)
            for k, s in SHAPES.items()
        }
        for _ in range(N_STEPS)
    ]
    lrs = rng.uniform(0.001, 0.3, size=N_STEPS).astype(np.float32)
    return rng, params, grads, lrs


def table_schedule(lrs):
    table = jnp.asarray(lrs)
    return lambda count: table[jnp.minimum(count, len(lrs) - 1)]


def run(tx, params, grads):
    state = tx.init(params)
    trajectory = []
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(params)
    return trajectory


def assert_trajectories_close(ours, theirs, message):
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for k in SHAPES:
            np.testing.assert_allclose(
                np.asarray(a[k]),
                np.asarray(b[k]),
                rtol=2e-5,
                atol=2e-6,
                err_msg=f"{message} step={step} leaf={k}",
            )


def sgd_config(seed):
    """The problem and the configuration of ``test_matches_optax_sgd[seed]``."""
    rng, params, grads, lrs = random_problem(seed)
    momentum = float(rng.choice([0.0, 0.9, rng.uniform(0, 0.99)]))
    nesterov = bool(rng.integers(2))
    clip = str(rng.choice(["none", "clipvalue", "global_clipnorm"]))
    threshold = float(rng.uniform(0.1, 2.0))
    weight_decay = float(rng.choice([0.0, rng.uniform(0, 0.2)]))
    config = dict(
        momentum=momentum,
        nesterov=nesterov,
        clip=clip,
        threshold=threshold,
        weight_decay=weight_decay,
    )
    return config, (params, grads, lrs)


def sgd_options(seed):
    c, _ = sgd_config(seed)
    return {
        f"momentum={c['momentum'] if c['momentum'] in (0.0, 0.9) else 'drawn'}",
        f"nesterov={c['nesterov']}",
        f"clip={c['clip']}",
        f"weight_decay>0={c['weight_decay'] > 0}",
    }


SGD_SEEDS = _oracle.seeds(
    N_CONFIGS, chosen=_oracle.fewest_covering(N_CONFIGS, sgd_options)
)


@pytest.mark.parametrize("seed", SGD_SEEDS)
def test_matches_optax_sgd(seed):
    config, (params, grads, lrs) = sgd_config(seed)
    schedule = table_schedule(lrs)
    momentum, nesterov, clip = config["momentum"], config["nesterov"], config["clip"]
    threshold, weight_decay = config["threshold"], config["weight_decay"]

    optax_steps = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    jsgd_steps = [jsgd.add_decayed_weights(weight_decay)] if weight_decay else []
    clip_kwargs = {}
    if clip == "clipvalue":
        optax_steps.append(optax.clip(threshold))
        clip_kwargs = {"clipvalue": threshold}
    elif clip == "global_clipnorm":
        optax_steps.append(optax.clip_by_global_norm(threshold))
        clip_kwargs = {"global_clipnorm": threshold}
    reference = optax.chain(
        *optax_steps, optax.sgd(schedule, momentum or None, nesterov=nesterov)
    )
    ours = optax.chain(
        *jsgd_steps,
        jsgd.sgd(schedule, momentum, nesterov, lr_in_velocity=False, **clip_kwargs),
    )
    message = f"momentum={momentum} nesterov={nesterov} clip={clip} wd={weight_decay}"
    assert_trajectories_close(
        run(ours, params, grads), run(reference, params, grads), message
    )


def injected_config(seed):
    """The problem and the momentum and Nesterov switch of
    ``test_matches_optax_under_inject_hyperparams[seed]``."""
    rng, params, grads, lrs = random_problem(seed)
    momentum = float(rng.uniform(0, 0.99))
    nesterov = bool(rng.integers(2))
    return momentum, nesterov, (params, grads, lrs)


def injected_options(seed):
    return {f"nesterov={injected_config(seed)[1]}"}


INJECTED_SEEDS = _oracle.seeds(
    N_CONFIGS, chosen=_oracle.fewest_covering(N_CONFIGS, injected_options, salt=1)
)


@pytest.mark.parametrize("seed", INJECTED_SEEDS)
def test_matches_optax_under_inject_hyperparams(seed):
    """The learning rate changed by hand between steps, as in a training loop."""
    momentum, nesterov, (params, grads, lrs) = injected_config(seed)
    reference = optax.inject_hyperparams(optax.sgd)(
        learning_rate=0.1, momentum=momentum, nesterov=nesterov
    )
    ours = optax.inject_hyperparams(jsgd.sgd)(
        learning_rate=0.1, momentum=momentum, nesterov=nesterov, lr_in_velocity=False
    )
    trajectories = []
    for tx in (reference, ours):
        p, state = params, tx.init(params)
        trajectory = []
        for lr, g in zip(lrs, grads, strict=True):
            state.hyperparams["learning_rate"] = jnp.asarray(lr)
            updates, state = tx.update(g, state, p)
            p = optax.apply_updates(p, updates)
            trajectory.append(p)
        trajectories.append(trajectory)
    assert_trajectories_close(trajectories[1], trajectories[0], f"m={momentum}")


@pytest.mark.parametrize(
    ("seeds", "options"),
    [
        (SGD_SEEDS, sgd_options),
        (INJECTED_SEEDS, injected_options),
    ],
    ids=["sgd", "inject_hyperparams"],
)
def test_the_default_sample_takes_every_option(seeds, options):
    every = set().union(*(options(seed) for seed in range(N_CONFIGS)))
    chosen = [seed for (seed,) in _oracle.in_default_run(seeds)]
    assert chosen
    assert set().union(*(options(seed) for seed in chosen)) == every
