"""The fused step against XLA's and torch's, by tree shape: where the kernel pays.

    python benchmarks/fused.py            # the shapes in docs/benchmarks.md
    python benchmarks/fused.py --quick    # fewer repeats

For each tree (``leaves x elements`` float32 leaves) and configuration
(optax's rule: plain SGD, momentum 0.9, Nesterov), times jitted, donated
steps on the same arrays: ``jsgd.apply_gradients`` with the native kernel
forced on (``apply_gradients``'s size bound lifted, so every tree goes
through the kernel), the same on ``jsgd.pack`` of the tree (one buffer),
the unfused ``update`` + ``apply_updates`` (XLA's loops), the *floor* (a
jitted step that takes and returns the same arrays and computes nothing:
JAX's cost per array passed), and ``torch.optim.SGD(fused=True)`` when torch
is installed. Prints the median step of ``--repeats`` timed steps after
three warm ones and the ratios. Nothing is asserted: see docs/benchmarks.md
for a run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jsgd
from jsgd._training import fused as _fused

try:
    import torch
except ImportError:  # torch is optional here
    torch = None

SHAPES = [(1, 1_000), (8, 10_000), (64, 3_500), (1, 1_000_000), (16, 1_000_000)]
SHAPES += [(1, 10_000_000), (64, 160_000), (3000, 3_500)]
CONFIGS = {"sgd": (0.0, False), "momentum": (0.9, False), "nesterov": (0.9, True)}


def _median_ms(step, repeats: int) -> float:
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _jax_step(opt: Any, leaves: int, size: int, kind: str):
    """A timed step: ``kind`` is "fused", "packed", "xla" or "floor"."""
    params: Any = {f"l{i}": jnp.ones(size, jnp.float32) for i in range(leaves)}
    grads: Any = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)
    if kind == "packed":
        params, grads = jsgd.pack(params), jsgd.pack(grads)
    state = opt.init(params)
    rule = _fused.fused_rule(opt)
    assert rule is not None

    def step(params, state, grads):
        if kind in ("fused", "packed"):
            return _fused._fused_step(rule, params, grads, state)
        if kind == "floor":
            return params, state
        updates, state = opt.update(grads, state, params)
        return jsgd.apply_updates(params, updates), state

    compiled = (
        jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    )
    box = [params, state]

    def run() -> None:
        box[0], box[1] = compiled(box[0], box[1], grads)
        jax.block_until_ready(box[0])

    return run


def _torch_step(momentum: float, nesterov: bool, leaves: int, size: int):
    assert torch is not None
    params = [torch.ones(size) for _ in range(leaves)]
    for p in params:
        p.grad = torch.full((size,), 0.5)
    opt = torch.optim.SGD(
        params, lr=0.01, momentum=momentum, nesterov=nesterov, fused=True
    )
    return opt.step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the fused step by tree shape")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 30)
    status = jsgd.fused_available()
    print(f"{status.reason}; jax {jax.__version__}; repeats {repeats}")
    if not status:
        print("no native kernel: nothing to compare")
        return 0
    shapes = SHAPES[:4] if args.quick else SHAPES
    kinds = ("fused", "packed", "xla", "floor")
    print(
        "| tree | config | fused ms | packed ms | XLA ms | floor ms | torch-fused ms ",
        end="",
    )
    print("| fused/XLA | fused/torch | packed/torch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for leaves, size in shapes:
        for name, (momentum, nesterov) in CONFIGS.items():
            opt = jsgd.sgd(0.01, momentum, nesterov, lr_in_velocity=False)
            ms = {
                k: _median_ms(_jax_step(opt, leaves, size, k), repeats) for k in kinds
            }
            theirs = (
                _median_ms(_torch_step(momentum, nesterov, leaves, size), repeats)
                if torch is not None
                else float("nan")
            )
            print(
                f"| {leaves} x {size:,} | {name} | "
                + " | ".join(f"{ms[k]:.3f}" for k in kinds)
                + f" | {theirs:.3f} | {ms['fused'] / ms['xla']:.2f} "
                f"| {ms['fused'] / theirs:.2f} | {ms['packed'] / theirs:.2f} |",
                flush=True,
            )
    print(f"(np {np.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
