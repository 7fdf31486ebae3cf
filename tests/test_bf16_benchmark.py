"""Smoke test of benchmarks/bf16.py's machinery on tiny models (nothing timed).

On a tiny version of the benchmark's char LM every method trains (its losses
go down) and keeps the bytes per parameter that docs/bf16.md's table promises
(checked against literal counts; the digits MLP's too, with scikit-learn),
and a plain bfloat16 step loses updates below half an ulp that
jsgd.kahan_summation keeps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import bf16  # noqa: E402

import jsgd  # noqa: E402

# The tiny char LM: embedding 8 of each of 4 previous characters, MLP 32-16-V.
CONTEXT, EMBED, HIDDEN = 4, 8, 16


@pytest.fixture(scope="module")
def charlm():
    # No scikit-learn needed (the text is jsgd's docstrings).
    return bf16.charlm_task(
        steps=40, lr=1e-2, context=CONTEXT, embed=EMBED, hidden=HIDDEN, heldout=64
    )


def _charlm_n(vocab: int) -> int:
    return vocab * EMBED + CONTEXT * EMBED * HIDDEN + HIDDEN + HIDDEN * vocab + vocab


def _total_bytes(params, state) -> int:
    return sum(int(a.nbytes) for a in jax.tree.leaves((params, state)))


# By default the three methods docs/bf16.md's table adds state for (and plain
# bfloat16 in the half-an-ulp test below); float32 and bf16 train here under
# ``-m oracle`` (their bytes are the digits test's too, with scikit-learn).
TRAINED = [
    pytest.param(name, marks=pytest.mark.oracle if name in ("float32", "bf16") else ())
    for name in bf16.METHODS
]


@pytest.mark.parametrize("name", TRAINED)
def test_each_method_trains_and_keeps_the_promised_bytes(charlm, name):
    run = bf16.train(charlm, name, eval_every=10, compile_update=False)
    n = _charlm_n(charlm.params32["embed"].shape[0])
    assert bf16.n_params(run.params) == n
    assert np.all(np.isfinite(run.losses))
    assert run.eval_losses[-1] < 0.9 * run.eval_losses[0], run.eval_losses
    assert run.losses[-10:].mean() < 0.9 * run.losses[:10].mean()
    # Literal counts: the parameters, Adam's float32 first and second moments
    # (8 bytes), two int32 step counts (Adam's and the schedule's: 8 bytes),
    # and per method what docs/bf16.md promises.
    want = {
        "float32": 4 * n + 8 * n + 8,
        "bf16": 2 * n + 8 * n + 8,
        "bf16+kahan": 2 * n + 2 * n + 8 * n + 8,  # + bfloat16 compensation
        "bf16+sr": 2 * n + 8 * n + 8 + 8,  # + one 8-byte key
        "bf16+master": 2 * n + 4 * n + 8 * n + 8,  # + float32 master
    }[name]
    assert _total_bytes(run.params, run.state) == want
    assert run.bytes_per_param == want / n
    assert run.bytes_per_param == pytest.approx(
        bf16.analytic_bytes_per_param(name, n, 8, 8), rel=1e-12
    )
    dtype = jnp.float32 if name == "float32" else jnp.bfloat16
    assert all(a.dtype == dtype for a in jax.tree.leaves(run.params))


@pytest.mark.parametrize("name", bf16.METHODS)
def test_digits_state_bytes(name):
    pytest.importorskip("sklearn")
    task = bf16.digits_task(steps=2, hidden=16)
    n = 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10  # MLP 64-16-16-10
    assert bf16.n_params(task.params32) == n
    params, state = bf16.make_method(name, task.make_tx()).init(task.params32)
    # SGD: a float32 velocity (4 bytes), two int32 counts.
    want = {
        "float32": 4 * n + 4 * n + 8,
        "bf16": 2 * n + 4 * n + 8,
        "bf16+kahan": 2 * n + 2 * n + 4 * n + 8,
        "bf16+sr": 2 * n + 4 * n + 8 + 8,
        "bf16+master": 2 * n + 4 * n + 4 * n + 8,
    }[name]
    assert _total_bytes(params, state) == want
    assert bf16.bytes_per_param(params, state) == want / n
    assert want / n == pytest.approx(
        bf16.analytic_bytes_per_param(name, n, 4, 8), rel=1e-12
    )


def _gaps(p: np.ndarray) -> np.ndarray:
    """The smaller distance from each bfloat16 value to its neighbours."""
    p = jnp.asarray(p, jnp.bfloat16)
    up = jnp.nextafter(p, jnp.asarray(jnp.inf, jnp.bfloat16)).astype(jnp.float32)
    down = jnp.nextafter(p, jnp.asarray(-jnp.inf, jnp.bfloat16)).astype(jnp.float32)
    p32 = p.astype(jnp.float32)
    return np.asarray(jnp.minimum(up - p32, p32 - down))


def test_plain_bf16_loses_updates_below_half_an_ulp_and_kahan_keeps_them(charlm):
    lr, steps = 1e-3, 60
    x, y = charlm.batches[0]
    params0 = bf16.cast(charlm.params32, jnp.bfloat16)
    grads = charlm.grad(params0, x, y)  # fixed: the same update every step
    # Plain SGD without momentum: the update is -lr * g every step.
    u = {k: -lr * np.asarray(g, np.float32) for k, g in grads.items()}
    finals = {}
    for name in ("bf16", "bf16+kahan"):
        method = bf16.make_method(name, jsgd.SGD(lr, accumulator_dtype=jnp.float32))
        params, state = method.init(charlm.params32)
        step = jax.jit(method.update)
        for _ in range(steps):
            params, state = step(grads, state, params)
        finals[name] = params
    lost = moved = 0
    for k, p0 in params0.items():
        p0 = np.asarray(p0, np.float32)
        gap = _gaps(p0)
        below = (np.abs(u[k]) < gap / 2) & (u[k] != 0)
        plain = np.asarray(finals["bf16"][k], np.float32)
        kahan = np.asarray(finals["bf16+kahan"][k], np.float32)
        # Plain bfloat16: every update below half an ulp is lost, every step.
        np.testing.assert_array_equal(plain[below], p0[below])
        # Kahan: once the updates add up to a whole gap the parameter moves,
        # in the updates' direction, and lands within a gap of the exact sum.
        adds_up = below & (steps * np.abs(u[k]) >= 2 * gap)
        delta = kahan[adds_up] - p0[adds_up]
        assert np.all(np.sign(delta) == np.sign(u[k][adds_up])), k
        exact = p0[adds_up] + steps * u[k][adds_up]
        assert np.all(np.abs(kahan[adds_up] - exact) <= 2 * gap[adds_up]), k
        lost += int(below.sum())
        moved += int(adds_up.sum())
    assert lost > 100 and moved > 100, (lost, moved)
