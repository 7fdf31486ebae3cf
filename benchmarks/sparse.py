"""Sparse row updates vs a dense step on an embedding table.

A table of ``rows x 64`` float32, ``k = 4096`` looked-up rows per step (with
duplicates), SGD with momentum 0.9, parameters and optimizer state donated:

* jsgd sparse: ``jsgd.sgd`` on an ``IndexedSlices`` gradient (legacy tf.keras
  lazy rule) + ``jsgd.apply_updates`` (scatter into the donated table);
* optax dense: ``optax.sgd`` on the dense ``rows x 64`` gradient +
  ``optax.apply_updates``, jitted and donated the same way;
* jsgd dense: ``jsgd.sgd`` on the dense gradient, for reference;
* the two training steps, gradient included: ``jsgd.value_and_row_grad`` +
  ``jsgd.sgd`` (rows), against ``jax.grad`` of the same lookup loss (which
  scatters into a zero table the size of the embedding) + ``optax.sgd``;
* the row-traffic floor: the same lazy step in NumPy (compiled loops) on host
  copies of the tables, with the duplicates grouped and summed beforehand,
  untimed. It is only the row accesses every lazy step needs (read and write
  the touched velocity rows, add them into the table's rows), so
  ``optax dense / floor`` bounds the speedup that such a step can show on the
  machine. ``benchmarks/row_floor.cc`` is the same loop in C++ with software
  prefetching, for a lower floor still.

Each timed step is one jitted call. The implementations take turns in
interleaved rounds (the machine is noisy), each round running ``STEPS_PER_TURN``
consecutive steps of one implementation, as training does (a dense step of
another table in between would flush the caches the sparse step's random row
accesses rely on); medians and p10/p90 over all steps are reported.
For the optimizer steps the dense gradient is built once, outside the timing;
the training steps build their own. The sparse steps' time
should not grow with the table (its memory traffic is ``O(k * 64)``).

    python benchmarks/sparse.py            # 100k, 1M and 4M rows
    python benchmarks/sparse.py --quick    # 100k and 1M rows, fewer rounds
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsgd

WIDTH, K, MOMENTUM, LR = 64, 4096, 0.9, 0.01
STEPS_PER_TURN = 5


def make_indices(rows: int, rng: np.random.Generator) -> np.ndarray:
    """``K`` indices: a quarter are repeats (popular rows), the rest uniform."""
    hot = rng.integers(0, rows, size=64)
    indices = rng.integers(0, rows, size=K)
    indices[: K // 4] = rng.choice(hot, size=K // 4)
    return indices.astype(np.int32)


def sparse_step(tx):
    def step(params, state, values, indices):
        grads = {"table": jsgd.IndexedSlices(values, indices, params["table"].shape)}
        updates, state = tx.update(grads, state, params)
        return jsgd.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def dense_step(tx, apply):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def loss_of_rows(rows, targets):
    return 0.5 * jnp.sum((rows - targets) ** 2)


def sparse_train_step(tx):
    """Gradient (as rows) and update: a whole training step of a lookup model."""

    def step(params, state, indices, targets):
        _, grad = jsgd.value_and_row_grad(loss_of_rows)(
            params["table"], indices, targets
        )
        updates, state = tx.update({"table": grad}, state, params)
        return jsgd.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def dense_train_step(tx):
    """The same step as a JAX user writes it densely: ``jax.grad`` + optax."""

    def step(params, state, indices, targets):
        grads = jax.grad(lambda p: loss_of_rows(p["table"][indices], targets))(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


class RowTrafficFloor:
    """The lazy momentum step's row accesses in NumPy, duplicates pre-summed."""

    def __init__(self, table: jax.Array, indices: jax.Array, values: jax.Array):
        self.table = np.array(table)
        self.velocity = np.zeros_like(self.table)
        self.unique, inverse = np.unique(np.asarray(indices), return_inverse=True)
        self.sums = np.zeros((len(self.unique), WIDTH), np.float32)
        np.add.at(self.sums, inverse, -LR * np.asarray(values))

    def step(self) -> None:
        """``v[u] = m*v[u] + sums; w[u] += v[u]`` over the distinct rows ``u``."""
        rows = self.velocity[self.unique]
        rows *= MOMENTUM
        rows += self.sums
        self.velocity[self.unique] = rows
        self.table[self.unique] += rows


def measure(rows: int, rounds: int, rng: np.random.Generator) -> dict:
    indices = jnp.asarray(make_indices(rows, rng))
    values = jnp.asarray(rng.normal(size=(K, WIDTH)), jnp.float32)
    dense_grad = {
        "table": jsgd.IndexedSlices(values, indices, (rows, WIDTH)).to_dense()
    }
    table = jnp.asarray(rng.normal(size=(rows, WIDTH)), jnp.float32)
    targets = jnp.asarray(rng.normal(size=(K, WIDTH)), jnp.float32)

    jsgd_tx = jsgd.sgd(LR, MOMENTUM)
    optax_tx = optax.sgd(LR, MOMENTUM)
    runs = {
        "jsgd sparse": (sparse_step(jsgd_tx), jsgd_tx, (values, indices)),
        "optax dense": (
            dense_step(optax_tx, optax.apply_updates),
            optax_tx,
            (dense_grad,),
        ),
        "jsgd dense": (
            dense_step(jsgd_tx, jsgd.apply_updates),
            jsgd_tx,
            (dense_grad,),
        ),
        "jsgd sparse train": (sparse_train_step(jsgd_tx), jsgd_tx, (indices, targets)),
        "optax dense train": (dense_train_step(optax_tx), optax_tx, (indices, targets)),
    }
    floor = RowTrafficFloor(table, indices, values)
    carries, temp_bytes = {}, {}
    times = {name: [] for name in [*runs, "row floor"]}
    for name, (step, tx, args) in runs.items():
        params = {"table": table.copy()}
        state = tx.init(params)
        compiled = step.lower(params, state, *args).compile()
        analysis = compiled.memory_analysis()
        temp_bytes[name] = None if analysis is None else analysis.temp_size_in_bytes
        params, state = step(params, state, *args)  # warm up
        jax.block_until_ready(params)
        carries[name] = (params, state)
    for _ in range(rounds):
        for name, (step, _, args) in runs.items():
            params, state = carries[name]
            for _ in range(STEPS_PER_TURN):
                start = time.perf_counter()
                params, state = step(params, state, *args)
                jax.block_until_ready(params)
                times[name].append(time.perf_counter() - start)
            carries[name] = (params, state)
        for _ in range(STEPS_PER_TURN):
            start = time.perf_counter()
            floor.step()
            times["row floor"].append(time.perf_counter() - start)
    del table, dense_grad, carries, floor

    result = {"rows": rows, "k": K, "width": WIDTH, "temp_bytes": temp_bytes}
    for name, samples in times.items():
        ms = np.asarray(samples) * 1e3
        result[name] = {
            "median_ms": float(np.median(ms)),
            "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)),
        }
    result["speedup_vs_optax"] = (
        result["optax dense"]["median_ms"] / result["jsgd sparse"]["median_ms"]
    )
    result["floor_speedup_vs_optax"] = (
        result["optax dense"]["median_ms"] / result["row floor"]["median_ms"]
    )
    result["train_speedup_vs_optax"] = (
        result["optax dense train"]["median_ms"]
        / result["jsgd sparse train"]["median_ms"]
    )
    return result


def check_semantics(rng: np.random.Generator) -> None:
    """The jsgd sparse step is the legacy lazy rule (a small NumPy check)."""
    rows = 1000
    indices = make_indices(rows, rng)[:256] % rows
    values = rng.normal(size=(256, WIDTH)).astype(np.float32)
    table = rng.normal(size=(rows, WIDTH)).astype(np.float32)
    tx = jsgd.sgd(LR, MOMENTUM)
    params = {"table": jnp.asarray(table)}
    state = tx.init(params)
    step = sparse_step(tx)
    expected, accum = table.astype(np.float64), np.zeros((rows, WIDTH))
    for _ in range(2):
        params, state = step(params, state, jnp.asarray(values), jnp.asarray(indices))
        summed = np.zeros((rows, WIDTH))
        np.add.at(summed, indices, values)
        touched = np.unique(indices)
        accum[touched] = MOMENTUM * accum[touched] - LR * summed[touched]
        expected[touched] += accum[touched]
    np.testing.assert_allclose(params["table"], expected, rtol=1e-5, atol=1e-6)


def timing_cell(t: dict) -> str:
    return f"{t['median_ms']:.3f} ({t['p10_ms']:.3f}-{t['p90_ms']:.3f})"


def markdown_table(results: list[dict]) -> str:
    """The results as the markdown table of docs/sparse.md."""
    device = jax.devices()[0]
    lines = [
        f"Device: {device.platform} ({device.device_kind}), jax {jax.__version__}; "
        "median step time in ms (p10-p90).",
        "",
        "| table rows | jsgd sparse | optax dense | jsgd dense | sparse vs optax | "
        "jsgd sparse train | optax dense train | train: sparse vs optax | "
        "row floor (NumPy) | floor vs optax | sparse scratch MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cells = [f"{r['rows']:,}"]
        for name in ("jsgd sparse", "optax dense", "jsgd dense"):
            cells.append(timing_cell(r[name]))
        cells.append(f"{r['speedup_vs_optax']:.0f}x")
        for name in ("jsgd sparse train", "optax dense train"):
            cells.append(timing_cell(r[name]))
        cells.append(f"{r['train_speedup_vs_optax']:.0f}x")
        cells.append(timing_cell(r["row floor"]))
        cells.append(f"{r['floor_speedup_vs_optax']:.0f}x")
        temp = r["temp_bytes"]["jsgd sparse"]
        cells.append("n/a" if temp is None else f"{temp / 2**20:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two sizes, 3 rounds")
    parser.add_argument("--out", default="out/benchmarks", help="output folder")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    check_semantics(rng)

    sizes = [100_000, 1_000_000] if args.quick else [100_000, 1_000_000, 4_000_000]
    rounds = 3 if args.quick else 9
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; k={K}, width={WIDTH}")
    header = (
        f"{'rows':>10} {'jsgd sparse ms':>15} {'optax dense ms':>15} "
        f"{'jsgd dense ms':>14} {'speedup':>8} {'train speedup':>14} "
        f"{'row floor ms':>13} {'floor speedup':>14} {'sparse temp MiB':>16}"
    )
    print(header)
    results = []
    for rows in sizes:
        r = measure(rows, rounds, rng)
        results.append(r)
        temp = r["temp_bytes"]["jsgd sparse"]
        temp_mib = "n/a" if temp is None else f"{temp / 2**20:.2f}"
        print(
            f"{rows:>10,} {r['jsgd sparse']['median_ms']:>15.3f} "
            f"{r['optax dense']['median_ms']:>15.2f} "
            f"{r['jsgd dense']['median_ms']:>14.2f} "
            f"{r['speedup_vs_optax']:>7.0f}x {r['train_speedup_vs_optax']:>13.0f}x "
            f"{r['row floor']['median_ms']:>13.3f} "
            f"{r['floor_speedup_vs_optax']:>13.0f}x {temp_mib:>16}"
        )
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sparse.json").write_text(json.dumps(results, indent=2))
    (out / "sparse.md").write_text(markdown_table(results))
    at_1m = next(r for r in results if r["rows"] == 1_000_000)
    for key, what in (
        ("speedup_vs_optax", "optimizer step (given the gradient)"),
        ("train_speedup_vs_optax", "training step (gradient + update)"),
    ):
        verdict = "meets" if at_1m[key] >= 50 else "misses"
        print(
            f"1M rows, {what}: sparse {at_1m[key]:.0f}x faster than dense "
            f"optax.sgd ({verdict} 50x)"
        )
    print(
        f"1M rows, the row accesses alone (NumPy, duplicates pre-summed): "
        f"{at_1m['row floor']['median_ms']:.3f} ms, "
        f"{at_1m['floor_speedup_vs_optax']:.0f}x faster than dense optax.sgd: "
        "the most a lazy step can show on this machine without prefetching"
    )
    print(f"wrote {out / 'sparse.json'} and {out / 'sparse.md'}")


if __name__ == "__main__":
    main()
