"""Parity of ``lr_in_velocity=False`` with ``optax.sgd`` (and optax's clips and decay).

Learning rates change every step, so a convention mismatch cannot hide.
"""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd

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


@pytest.mark.parametrize("seed", range(N_CONFIGS))
def test_matches_optax_sgd(seed):
    rng, params, grads, lrs = random_problem(seed)
    schedule = table_schedule(lrs)
    momentum = float(rng.choice([0.0, 0.9, rng.uniform(0, 0.99)]))
    nesterov = bool(rng.integers(2))
    clip = str(rng.choice(["none", "clipvalue", "global_clipnorm"]))
    threshold = float(rng.uniform(0.1, 2.0))
    weight_decay = float(rng.choice([0.0, rng.uniform(0, 0.2)]))

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


@pytest.mark.parametrize("seed", range(N_CONFIGS))
def test_matches_optax_under_inject_hyperparams(seed):
    """The learning rate changed by hand between steps, as in a training loop."""
    rng, params, grads, lrs = random_problem(seed)
    momentum = float(rng.uniform(0, 0.99))
    nesterov = bool(rng.integers(2))
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
