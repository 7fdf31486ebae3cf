"""What a switch of framework costs the steps that follow it (why run.py settles).

    python benchmarks/switch.py                  # 1M and 10M momentum steps
    python benchmarks/switch.py --sizes 1000000 --rounds 20

For each size, three ``torch.optim.SGD(fused=True)`` steps, then twelve
``jsgd.apply_gradients`` steps (momentum 0.9, the native kernel where it is
built), each timed; and the same the other way round. Prints, for each of the
twelve positions, the median step time over ``--rounds`` rounds and when the
step started (ms after the switch). On the 2-core machine both frameworks'
steps ran slower for 2 ms (1M) to about 50 ms (10M) after a switch, which is
why ``benchmarks/_bench.py`` settles each timed step with about 50 ms of the
same implementation's steps (``SETTLE_S``). Needs torch; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

import jsgd

try:
    import torch
except ImportError:  # torch is optional here
    torch = None

POSITIONS = 12


def _jax_step(size: int) -> Callable[[], None]:
    opt = jsgd.sgd(0.01, 0.9, lr_in_velocity=False)
    params = {"w": jnp.ones(size, jnp.float32)}
    grads = {"w": jnp.full(size, 0.5, jnp.float32)}
    step = jax.jit(
        lambda p, s, g: jsgd.apply_gradients(opt, g, s, p), donate_argnums=(0, 1)
    )
    box = [params, opt.init(params)]

    def run() -> None:
        box[0], box[1] = step(box[0], box[1], grads)
        jax.block_until_ready(box[0])

    return run


def _torch_step(size: int) -> Callable[[], None]:
    assert torch is not None
    param = torch.ones(size)
    param.grad = torch.full((size,), 0.5)
    return torch.optim.SGD([param], lr=0.01, momentum=0.9, fused=True).step


def _profile(first, then, rounds: int) -> str:
    times: list[list[float]] = [[] for _ in range(POSITIONS)]
    starts: list[list[float]] = [[] for _ in range(POSITIONS)]
    for _ in range(rounds):
        for _ in range(3):
            first()
        switched = time.perf_counter()
        for i in range(POSITIONS):
            t0 = time.perf_counter()
            then()
            starts[i].append(t0 - switched)
            times[i].append(time.perf_counter() - t0)
    return " ".join(
        f"{statistics.median(t) * 1e3:.2f}@{statistics.median(s) * 1e3:.1f}"
        for t, s in zip(times, starts, strict=True)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the cost of a framework switch")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    if torch is None:
        print("torch is not installed: nothing to compare")
        return 0
    torch.set_num_threads(2)
    print(f"{jsgd.fused_available().reason}; step ms @ start ms after the switch")
    for size in args.sizes:
        jax_step, torch_step = _jax_step(size), _torch_step(size)
        for _ in range(3):
            jax_step()
            torch_step()
        print(
            f"{size:,} jsgd after torch: {_profile(torch_step, jax_step, args.rounds)}"
        )
        print(
            f"{size:,} torch after jsgd: {_profile(jax_step, torch_step, args.rounds)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
