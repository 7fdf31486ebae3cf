"""Benchmark: jsgd.sweep vs the same 64 SGD runs one after another.

An 8 x 8 grid of learning rate x momentum (Keras-rule ``jsgd.sgd``) trains a
one-hidden-layer MLP on scikit-learn's bundled digits (no download), every
configuration on the same minibatches from the same initial parameters, in
three ways:

* ``jsgd.sweep``: all 64 configurations in one jitted program (``vmap`` over
  the configurations, ``lax.scan`` over the steps): one dispatch; on one
  device, then with the configurations sharded over ``--devices`` CPU
  devices (default: one per core), which run side by side.
* sequential, step loop: 64 runs of a jitted training step called from a
  Python loop, the way a training script runs: one dispatch per step.
* sequential, scanned: 64 runs of one jitted ``lax.scan`` over all steps:
  one dispatch per run, the fastest way to run them one at a time.

Hyperparameters are arguments of every jitted function, so each method
compiles once; compile time (first call minus a warm run) is reported apart
from the run time, the median of ``--repeats`` warm runs. All three end
with the same losses (checked).

Run: python benchmarks/sweep.py [--quick] [--steps N] [--hidden H]
[--batch-size B] [--repeats R] [--devices D]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import jsgd

LEARNING_RATES = np.logspace(-3, 0, 8)  # 0.001 ... 1
MOMENTA = np.array([0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99])


def digits_batches(steps: int, batch_size: int, seed: int = 0) -> tuple[Any, Any]:
    """``steps`` minibatches of the digits: ``x [steps, B, 64]``, ``y [steps, B]``.

    Each epoch is a fresh permutation of the 1797 images, pixels scaled to
    [0, 1].
    """
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch_size // len(x))
    order = np.concatenate([rng.permutation(len(x)) for _ in range(epochs)])
    index = order[: steps * batch_size].reshape(steps, batch_size)
    return jnp.asarray(x[index] / 16.0, jnp.float32), jnp.asarray(y[index], jnp.int32)


def init_mlp(hidden: int, seed: int = 0) -> dict[str, jax.Array]:
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "w1": jax.random.normal(k1, (64, hidden)) * np.sqrt(2 / 64),
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k2, (hidden, 10)) * np.sqrt(1 / hidden),
        "b2": jnp.zeros(10),
    }


def loss_fn(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    logits = hidden @ params["w2"] + params["b2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def train_step(params, opt_state, x, y, learning_rate, momentum):
    # The hyperparameters are traced, so the 64 runs share one compile.
    optimizer = jsgd.sgd(learning_rate, momentum)
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def train_scanned(params, xs, ys, learning_rate, momentum):
    def step(carry, batch):
        params, opt_state, loss = train_step(*carry, *batch, learning_rate, momentum)
        return (params, opt_state), loss

    opt_state = jsgd.sgd(learning_rate, momentum).init(params)
    (params, _), losses = jax.lax.scan(step, (params, opt_state), (xs, ys))
    return params, losses


def timed(run: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(first call in s, median of ``repeats`` warm calls in s, last result)."""
    start = time.perf_counter()
    result = jax.block_until_ready(run())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 steps, 1 repeat")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--devices",
        type=int,
        default=os.cpu_count() or 1,
        help="CPU devices to shard the sweep over (default: one per core)",
    )
    args = parser.parse_args()
    # Before JAX starts its CPU backend: one device per core, each running its
    # share of the configurations. Everything else stays on the first device.
    jax.config.update("jax_num_cpu_devices", args.devices)
    steps, repeats = (50, 1) if args.quick else (args.steps, args.repeats)

    xs, ys = digits_batches(steps, args.batch_size)
    params = init_mlp(args.hidden)
    lr_grid, momentum_grid = np.meshgrid(LEARNING_RATES, MOMENTA, indexing="ij")
    hyper = {
        "learning_rate": lr_grid.ravel().astype(np.float32),
        "momentum": momentum_grid.ravel().astype(np.float32),
    }
    configs = list(zip(hyper["learning_rate"], hyper["momentum"], strict=True))
    k = len(configs)
    # Device scalars and per-step batches made once, outside the timed loops:
    # a data loader hands a training loop its batches ready.
    device_configs = [(jnp.asarray(lr), jnp.asarray(m)) for lr, m in configs]
    batch_list = [(xs[t], ys[t]) for t in range(steps)]

    def run_sweep() -> Any:
        return jsgd.sweep(jsgd.sgd, hyper, loss_fn, params, (xs, ys)).losses

    mesh = jax.make_mesh((args.devices,), ("k",))
    along_k = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("k"))
    sharded_hyper = {name: jax.device_put(v, along_k) for name, v in hyper.items()}

    def run_sharded_sweep() -> Any:
        return jsgd.sweep(jsgd.sgd, sharded_hyper, loss_fn, params, (xs, ys)).losses

    step = jax.jit(train_step)

    def run_step_loop() -> Any:
        losses = []
        for lr, m in device_configs:
            p, opt_state = params, jsgd.sgd(lr, m).init(params)
            run_losses = []
            for x, y in batch_list:
                p, opt_state, loss = step(p, opt_state, x, y, lr, m)
                run_losses.append(loss)
            losses.append(jnp.stack(run_losses))
        return jnp.stack(losses)

    scanned = jax.jit(train_scanned)

    def run_scanned() -> Any:
        return jnp.stack(
            [scanned(params, xs, ys, lr, m)[1] for lr, m in device_configs]
        )

    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, "
        f"{os.cpu_count()} CPU cores; K = {k} configurations (8 lr x 8 momentum), "
        f"{steps} steps of batch {args.batch_size}, MLP 64-{args.hidden}-10, "
        f"median of {repeats} warm run(s)\n"
    )
    methods = [("`jsgd.sweep`, 1 device (one jit: vmap + scan)", run_sweep)]
    if args.devices > 1:
        methods.append(
            (
                f"`jsgd.sweep`, K sharded over {args.devices} CPU devices",
                run_sharded_sweep,
            )
        )
    methods += [
        ("sequential: jitted step, Python loop", run_step_loop),
        ("sequential: jitted scan per run", run_scanned),
    ]
    rows = []
    results = {}
    for name, run in methods:
        first, median, losses = timed(run, repeats)
        results[name] = np.asarray(losses)
        rows.append((name, max(first - median, 0.0), median))

    # Same numbers up to float32 rounding (vmap batches the matrix products,
    # which sums in another order). Rounding differences grow along the
    # trajectory where training is chaotic (momentum 0.99 at large learning
    # rates), so the early steps are checked tightly and late drift counted.
    reference = next(iter(results.values()))
    drift = {}
    for name, losses in results.items():
        early = slice(0, min(steps, 20))
        np.testing.assert_allclose(
            losses[:, early], reference[:, early], rtol=1e-4, atol=1e-5, err_msg=name
        )
        final, ref = losses[:, -1], reference[:, -1]
        drift[name] = int(np.sum(~np.isclose(final, ref, rtol=1e-3, equal_nan=True)))

    times = {name: median for name, _, median in rows}
    best_sweep = min(times[name] for name, _ in methods[:-2])
    print("| method | compile (s) | run (s) | configs/s | time / best sweep |")
    print("|---|---:|---:|---:|---:|")
    for name, compile_time, median in rows:
        print(
            f"| {name} | {compile_time:.2f} | {median:.3f} | {k / median:.0f} "
            f"| {median / best_sweep:.2f}x |"
        )
    print("\nthroughput ratios (sequential time / sweep time):")
    for sweep_name, _ in methods[:-2]:
        for sequential_name, _ in methods[-2:]:
            ratio = times[sequential_name] / times[sweep_name]
            print(f"  {sweep_name} vs {sequential_name}: {ratio:.2f}x")
    print(
        "\nlosses agree to 1e-4 over the first 20 steps; configurations whose "
        "final loss differs from the first row's by > 0.1%: "
        + ", ".join(f"{n}" for n in drift.values())
    )
    final = reference[:, -1].reshape(len(LEARNING_RATES), len(MOMENTA))
    best = np.unravel_index(
        np.nanargmin(np.where(np.isfinite(final), final, np.nan)), final.shape
    )
    print(
        f"best final train loss {final[best]:.4f} at learning_rate="
        f"{LEARNING_RATES[best[0]]:.3g}, momentum={MOMENTA[best[1]]:.2f}"
    )


if __name__ == "__main__":
    main()
