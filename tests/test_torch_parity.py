"""Parity of ``lr_in_velocity=False`` with the real ``torch.optim.SGD``.

Dampening, Nesterov and (coupled) weight decay, with the learning rate changed
in ``param_groups`` before every step, as a torch scheduler does.

The default run checks the fewest of the 100 configurations that between them
take every option drawn (``_oracle.fewest_covering``); the others run under
``-m oracle``.
"""

import numpy as np
import optax
import pytest

import jsgd
from tests import _oracle
from tests.test_optax_parity import (
    N_CONFIGS,
    assert_trajectories_close,
    random_problem,
    run,
    table_schedule,
)

torch = pytest.importorskip("torch")


def torch_run(params, grads, lrs, **hyper):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(tensors.values()), lr=float(lrs[0]), **hyper)
    trajectory = []
    for lr, g in zip(lrs, grads, strict=True):
        for group in opt.param_groups:
            group["lr"] = float(lr)
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        opt.step()
        trajectory.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    return trajectory


def torch_config(seed):
    """The problem and torch.optim.SGD's arguments of ``test_matches_torch_sgd[seed]``."""
    rng, params, grads, lrs = random_problem(seed)
    momentum = float(rng.choice([0.0, 0.9, rng.uniform(0, 0.99)]))
    nesterov = bool(rng.integers(2)) and momentum > 0
    dampening = 0.0 if nesterov else float(rng.choice([0.0, 0.5, rng.uniform(0, 1)]))
    weight_decay = float(rng.choice([0.0, rng.uniform(0, 0.2)]))
    hyper = dict(
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        weight_decay=weight_decay,
    )
    return hyper, (params, grads, lrs)


def options_taken(seed):
    h, _ = torch_config(seed)
    return {
        f"momentum={h['momentum'] if h['momentum'] in (0.0, 0.9) else 'drawn'}",
        f"nesterov={h['nesterov']}",
        f"dampening={h['dampening'] if h['dampening'] in (0.0, 0.5) else 'drawn'}",
        f"weight_decay>0={h['weight_decay'] > 0}",
    }


SEEDS = _oracle.seeds(
    N_CONFIGS, chosen=_oracle.fewest_covering(N_CONFIGS, options_taken)
)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_torch_sgd(seed):
    hyper, (params, grads, lrs) = torch_config(seed)
    momentum, nesterov = hyper["momentum"], hyper["nesterov"]
    dampening, weight_decay = hyper["dampening"], hyper["weight_decay"]
    ours = optax.chain(
        jsgd.add_decayed_weights(weight_decay),
        jsgd.sgd(
            table_schedule(lrs),
            momentum,
            nesterov,
            dampening=dampening,
            lr_in_velocity=False,
        ),
    )
    assert_trajectories_close(
        run(ours, params, grads), torch_run(params, grads, lrs, **hyper), str(hyper)
    )


def test_the_default_sample_takes_every_option():
    every = set().union(*(options_taken(seed) for seed in range(N_CONFIGS)))
    chosen = [seed for (seed,) in _oracle.in_default_run(SEEDS)]
    assert chosen
    assert set().union(*(options_taken(seed) for seed in chosen)) == every


def test_torch_dampening_table_is_the_real_torch():
    """The hand table of test_tables.py, checked against torch itself."""
    params = {"a": np.zeros(1, np.float32), "b": np.zeros((1, 1), np.float32)}
    params["c"] = np.zeros((), np.float32)
    grads = [
        {k: np.full(v.shape, g, np.float32) for k, v in params.items()}
        for g in (1.0, 2.0, -1.0, 0.5, 3.0)
    ]
    lrs = np.array([0.1, 0.1, 0.05, 0.05, 0.01], np.float32)
    trajectory = torch_run(params, grads, lrs, momentum=0.9, dampening=0.5)
    np.testing.assert_allclose(
        [float(p["c"]) for p in trajectory],
        [-0.1, -0.29, -0.3505, -0.41745, -0.444501],
        rtol=1e-6,
    )
