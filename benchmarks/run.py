"""Benchmark one optimizer step: jsgd vs optax vs torch.optim.SGD.

    python benchmarks/run.py            # full run (6 trees x 6 configurations)
    python benchmarks/run.py --quick    # 3 small trees, fewer repeats (< 2 min)

Writes ``results.json``, ``results.md`` and ``benchmark.png`` to ``--out``
(default ``out/benchmarks``) and prints the table. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _bench  # noqa: E402
import _trees  # noqa: E402
import jax  # noqa: E402
import optax  # noqa: E402

import jsgd  # noqa: E402

IMPL_ORDER = (
    "jsgd",
    "optax",
    "jsgd-fused",
    "jsgd-packed",
    "torch-foreach",
    "torch-fused",
)
# --quick runs every configuration on the flat trees but only these on the
# 3,000-leaf tree (compiling 3,000 leaves takes seconds per configuration).
QUICK_CONFIGS = {"3000x3500": ("sgd", "momentum")}


def print_cell(cell: dict) -> None:
    r = cell["impls"]
    print(
        f"  {cell['config']:14s} "
        + "  ".join(
            f"{i} {r[i]['median_s'] * 1e3:8.2f} ms {r[i]['GBps']:5.1f} GB/s"
            for i in IMPL_ORDER
            if i in r
        )
        + "".join(f"  {i}: {why}" for i, why in cell.get("skipped", {}).items())
        + f"  jsgd/optax {fmt_ratio(ratio(cell, 'jsgd', 'optax'))}"
        f"  jsgd/torch-fused {fmt_ratio(ratio(cell, 'jsgd', 'torch-fused'))}"
        f"  jsgd-fused/torch-fused "
        f"{fmt_ratio(ratio(cell, 'jsgd-fused', 'torch-fused'))}"
        + ("" if cell.get("fused", True) else " (jsgd-fused: unfused here)")
        + f"  jsgd-packed/torch-fused "
        f"{fmt_ratio(ratio(cell, 'jsgd-packed', 'torch-fused'))}",
        flush=True,
    )


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "optax": optax.__version__,
        "jsgd": jsgd.__version__,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "apply_updates": {
            "jsgd": "jsgd.apply_updates"
            if hasattr(jsgd, "apply_updates")
            else "optax.apply_updates",
            "optax": "optax.apply_updates",
        },
    }
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_GiB"] = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    if _bench.torch is not None:
        info["torch"] = _bench.torch.__version__
        info["torch_threads"] = _bench.torch.get_num_threads()
    return info


def repeats_for(params: int, quick: bool) -> int:
    if quick:
        return 7
    return 15 if params >= 50_000_000 else 25


def fmt_ms(cell: dict, impl: str) -> str:
    r = cell["impls"].get(impl)
    if r is None:
        return "—"
    return f"{r['median_s'] * 1e3:.2f} ({r['p10_s'] * 1e3:.2f}-{r['p90_s'] * 1e3:.2f})"


def ratio(cell: dict, a: str, b: str) -> float | None:
    if a in cell["impls"] and b in cell["impls"]:
        return cell["impls"][a]["median_s"] / cell["impls"][b]["median_s"]
    return None


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    if n < 2**10:
        return f"{n} B"
    if n < 2**20:
        return f"{n / 2**10:.1f} KiB"
    return f"{n / 2**20:.1f} MiB"


def markdown(results: dict) -> str:
    bw = results["bandwidth"]["GBps"]
    lines = [
        f"Reference bandwidth: {bw:.1f} GB/s "
        f"({results['bandwidth']['reference']} triad, "
        f"{results['bandwidth']['elements'] / 1e6:.0f}M float32).",
        "",
        "Step time: median (p10-p90) in ms. GB/s and % are jsgd's and "
        "jsgd-packed's. jsgd-fused is `jsgd.apply_gradients` (the native kernel "
        'where it covers the cell; "(unfused)" where it does not), jsgd-packed '
        "the same on `jsgd.pack` of the trees.",
        "",
        "| tree | config | jsgd ms | optax ms | jsgd-fused ms | jsgd-packed ms "
        "| torch-foreach ms | torch-fused ms | jsgd GB/s (% bw) "
        "| jsgd-packed GB/s (% bw) | jsgd/optax | jsgd/torch-fused "
        "| jsgd-fused/torch-fused | jsgd-packed/torch-fused "
        "| compile s jsgd / optax | temp bytes jsgd / optax |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in results["cells"]:
        j, o = cell["impls"].get("jsgd"), cell["impls"].get("optax")
        skipped = cell.get("skipped", {})

        def compile_s(r, impl, skipped=skipped):
            return f"{r['compile_s']:.2f}" if r else skipped.get(impl, "—")

        lines.append(
            f"| {cell['tree']} | {cell['config']} | "
            + " | ".join(fmt_ms(cell, i) for i in IMPL_ORDER)
            + "".join(
                f" | {r['GBps']:.1f} ({100 * r['GBps'] / bw:.0f}%)" if r else " | —"
                for r in (j, cell["impls"].get("jsgd-packed"))
            )
            + f" | {fmt_ratio(ratio(cell, 'jsgd', 'optax'))}"
            f" | {fmt_ratio(ratio(cell, 'jsgd', 'torch-fused'))}"
            f" | {fmt_ratio(ratio(cell, 'jsgd-fused', 'torch-fused'))}"
            + ("" if cell.get("fused", True) else " (unfused)")
            + f" | {fmt_ratio(ratio(cell, 'jsgd-packed', 'torch-fused'))}"
            + ("" if cell.get("packed_fused", True) else " (unfused)")
            + f" | {compile_s(j, 'jsgd')} / {compile_s(o, 'optax')}"
            f" | {fmt_bytes(j and j['temp_bytes'])}"
            f" / {fmt_bytes(o and o['temp_bytes'])} |"
        )
    lines += [
        "",
        "Correctness gate (3 steps, learning rate and momentum changed every step, "
        "`optax.inject_hyperparams` / `param_groups`) and traces of the jitted "
        "step over those 3 steps:",
        "",
        "| config | implementations | max rel. diff vs jsgd | jsgd traces "
        "| optax traces | ok |",
        "|---|---|---|---|---|---|",
    ]
    for g in results["gate"]:
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in g["max_rel_diff"].items())
        lines.append(
            f"| {g['config']} | {len(g['impls'])} | {diffs} | {g['traces']['jsgd']} "
            f"| {g['traces']['optax']} | {'yes' if g['ok'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(dict.fromkeys(c["config"] for c in results["cells"]))
    trees = list(dict.fromkeys(c["tree"] for c in results["cells"]))
    cols = min(3, len(configs))
    rows = -(-len(configs) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False, sharey=True
    )
    colors = dict(zip(IMPL_ORDER, ("C0", "C1", "C4", "C5", "C2", "C3"), strict=True))
    bw = results["bandwidth"]["GBps"]
    width = 0.14
    for ax, config in zip(axes.flat, configs, strict=False):
        for k, impl in enumerate(IMPL_ORDER):
            xs, ys = [], []
            for i, tree in enumerate(trees):
                cell = next(
                    (
                        c
                        for c in results["cells"]
                        if c["tree"] == tree and c["config"] == config
                    ),
                    None,
                )
                if cell and impl in cell["impls"]:
                    xs.append(i + (k - 2.5) * width)
                    ys.append(cell["impls"][impl]["GBps"])
            if xs:
                ax.bar(xs, ys, width, label=impl, color=colors[impl])
        ax.axhline(bw, color="k", ls="--", lw=1, label="measured triad")
        ax.set_title(config)
        ax.set_xticks(range(len(trees)))
        ax.set_xticklabels(trees, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("effective GB/s")
    for ax in list(axes.flat)[len(configs) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        f"Optimizer step, effective GB/s (higher is better) — "
        f"{results['machine']['cpu']}, {results['machine']['cores']} cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subset, < 2 min")
    parser.add_argument("--out", default="out/benchmarks", help="output folder")
    parser.add_argument("--trees", nargs="*", choices=list(_trees.TREES))
    parser.add_argument("--configs", nargs="*", choices=list(_bench.CONFIGS))
    parser.add_argument("--repeats", type=int, help="timed steps per implementation")
    parser.add_argument("--no-torch", action="store_true", help="JAX only")
    parser.add_argument(
        "--compile-timeout",
        type=float,
        help="seconds before a JAX compile is abandoned (default 180; 30 quick)",
    )
    parser.add_argument(
        "--bandwidth-elements",
        type=int,
        default=100_000_000,
        help="float32 elements of the bandwidth triad (default 100M: 400 MB "
        "per buffer, larger than the caches)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with_torch = not args.no_torch and _bench.torch is not None
    if with_torch:
        _bench.torch.set_num_threads(os.cpu_count() or 1)
    trees = args.trees or list(_trees.QUICK_TREES if args.quick else _trees.TREES)
    configs = [_bench.CONFIGS[c] for c in (args.configs or _bench.CONFIGS)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    info = machine()
    print(
        f"{info['cpu']}, {info['cores']} cores; jax {info['jax']} "
        f"({info['jax_backend']}), optax {info['optax']}, "
        f"torch {info.get('torch', 'not installed')}"
        + (f" with set_num_threads({info['torch_threads']})" if with_torch else ""),
        flush=True,
    )

    # 1. Correctness gate: all implementations agree, and jsgd traces once.
    gate = []
    for config in configs:
        g = _bench.correctness_gate(config, _trees.mixed_small(), with_torch)
        gate.append(g.__dict__)
        print(
            f"gate {config.name:14s} ok={g.ok} traces={g.traces} "
            + " ".join(f"{k}:{v:.1e}" for k, v in g.max_rel_diff.items()),
            flush=True,
        )
        if not g.ok:
            raise SystemExit(f"correctness gate failed for {config.name}: {g}")
        if any(n != 1 for n in g.traces.values()):
            print(f"  WARNING: more than one trace: {g.traces}", flush=True)

    # 2. Reference bandwidth.
    bandwidth = _bench.measure_bandwidth(
        args.bandwidth_elements, 7 if args.quick else 15, with_torch
    )
    print(
        "bandwidth: "
        + ", ".join(
            f"{k} {v['GBps']:.1f} GB/s" for k, v in bandwidth["kernels"].items()
        ),
        flush=True,
    )

    # 3. The cells: one child process per tree (a compile that hangs is
    # killed after --compile-timeout and the cell rerun without it).
    cells = []
    for tree in trees:
        shapes = _trees.TREES[tree]()
        n = _trees.size(shapes)
        repeats = args.repeats or repeats_for(n, args.quick)
        names = [c.name for c in configs]
        if args.quick and tree in QUICK_CONFIGS and not args.configs:
            names = [c for c in names if c in QUICK_CONFIGS[tree]]
        print(f"\n{tree}: {len(shapes)} leaves, {n:,} params, {repeats} repeats")
        cells += _bench.run_tree(
            tree,
            names,
            repeats,
            with_torch,
            args.compile_timeout or (30 if args.quick else 180),
            log=lambda line: print(line, flush=True),
            on_cell=print_cell,
        )

    results = {
        "machine": info,
        "command": " ".join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "bandwidth": bandwidth,
        "gate": gate,
        "cells": cells,
    }
    results["wall_s"] = time.perf_counter() - started
    table = markdown(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.md").write_text(table)
    plot(results, out / "benchmark.png")
    print("\n" + table)
    ratios = [x for c in cells if (x := ratio(c, "jsgd", "optax")) is not None]
    fused = [x for c in cells if (x := ratio(c, "jsgd", "torch-fused")) is not None]
    kernel = [
        x
        for c in cells
        if c.get("fused") and (x := ratio(c, "jsgd-fused", "torch-fused")) is not None
    ]
    if ratios:
        print(
            f"jsgd/optax: median {statistics.median(ratios):.2f}, "
            f"max {max(ratios):.2f} over {len(ratios)} cells"
        )
    if fused:
        print(
            f"jsgd/torch-fused: median {statistics.median(fused):.2f}, "
            f"max {max(fused):.2f} over {len(fused)} cells"
        )
    packed = [x for c in cells if (x := ratio(c, "jsgd-packed", "torch-fused"))]
    if kernel:
        print(
            f"jsgd-fused/torch-fused where the kernel runs: median "
            f"{statistics.median(kernel):.2f}, max {max(kernel):.2f} over "
            f"{len(kernel)} cells ({jsgd.fused_available().reason})"
        )
    if packed:
        print(
            f"jsgd-packed/torch-fused: median {statistics.median(packed):.2f}, "
            f"max {max(packed):.2f} over {len(packed)} cells"
        )
    print(f"wrote {out}/results.json, results.md, benchmark.png")
    print(f"wall time {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
