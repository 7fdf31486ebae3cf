"""Optimizer trajectories on the Rosenbrock function, drawn on its contour plot.

``f(x, y) = (1 - x)**2 + 100 * (y - x**2)**2`` has its minimum ``f = 0`` at
``(1, 1)``, at the end of a long, flat, curved valley. From the classic start
``(-1.2, 1)``, plain gradient descent (whose learning rate the valley's steep
walls cap near 2 / curvature) crawls along the valley floor; momentum and
Nesterov, with the *same* learning rate, reach the minimum; Adagrad's steps shrink
as it accumulates squared gradients; RMSprop and Adam take steps of roughly fixed
size whatever the gradient's scale. Every optimizer is a jsgd one; each run is one
jitted ``lax.scan``. Prints where each ends and how many steps it needed to get
``f`` below 1e-4; writes the trajectories and ``f`` against steps to a PNG.

Run: python examples/rosenbrock.py [--steps 2000] [--out out/rosenbrock.png]
     [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

import jsgd

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm

START = (-1.2, 1.0)
TOLERANCE = 1e-4


def rosenbrock(p: jax.Array) -> jax.Array:
    x, y = p[..., 0], p[..., 1]
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


OPTIMIZERS: list[tuple[str, optax.GradientTransformation]] = [
    ("SGD (lr 1e-3)", jsgd.SGD(learning_rate=1e-3)),
    ("momentum (lr 1e-3, m 0.9)", jsgd.SGD(learning_rate=1e-3, momentum=0.9)),
    (
        "Nesterov (lr 1e-3, m 0.9)",
        jsgd.SGD(learning_rate=1e-3, momentum=0.9, nesterov=True),
    ),
    ("Adagrad (lr 0.5)", jsgd.Adagrad(learning_rate=0.5)),
    ("RMSprop (lr 3e-3)", jsgd.RMSprop(learning_rate=3e-3)),
    ("Adam (lr 0.1)", jsgd.Adam(learning_rate=0.1)),
]


def trajectory(optimizer: optax.GradientTransformation, steps: int) -> jax.Array:
    """The ``(steps + 1, 2)`` iterates of ``optimizer`` from ``START``."""
    start = jnp.array(START)

    def step(carry, _):
        p, state = carry
        updates, state = optimizer.update(jax.grad(rosenbrock)(p), state, p)
        p = optax.apply_updates(p, updates)
        return (p, state), p

    _, path = jax.lax.scan(step, (start, optimizer.init(start)), length=steps)
    return jnp.concatenate([start[None], path])


def plot(paths: dict[str, np.ndarray], out: Path) -> None:
    fig, (ax, curve) = plt.subplots(
        1, 2, figsize=(13, 5.4), width_ratios=(1.15, 1), layout="constrained"
    )
    xs, ys = np.meshgrid(np.linspace(-1.6, 1.6, 400), np.linspace(-0.6, 2.0, 400))
    zs = np.asarray(rosenbrock(jnp.stack([xs, ys], axis=-1)))
    levels = np.logspace(-2, 3, 21)
    ax.contourf(
        xs, ys, zs, levels=levels, norm=LogNorm(), cmap="Greys_r", extend="both"
    )
    ax.contour(
        xs, ys, zs, levels=levels[::2], norm=LogNorm(), colors="w", linewidths=0.4
    )
    for name, path in paths.items():
        (line,) = ax.plot(path[:, 0], path[:, 1], lw=1.3, label=name)
        ax.plot(path[-1, 0], path[-1, 1], "o", color=line.get_color(), ms=6)
        values = np.asarray(rosenbrock(jnp.asarray(path)))
        curve.plot(np.arange(len(values)), values, color=line.get_color(), lw=1.4)
    ax.plot(*START, "ws", mec="k", ms=8, label=f"start {START}")
    ax.plot(1.0, 1.0, "r*", ms=14, label="minimum (1, 1)")
    ax.set(xlim=(-1.6, 1.6), ylim=(-0.6, 2.0), xlabel="x", ylabel="y")
    ax.set_title("Trajectories (dot: final point)")
    ax.legend(fontsize=8.5, loc="upper center")
    curve.axhline(TOLERANCE, color="k", ls=":", lw=1)
    curve.set(
        xlabel="step",
        ylabel="f(x, y)",
        yscale="log",
        title=f"Loss against steps (dotted: {TOLERANCE:g})",
    )
    curve.grid(True, which="both", alpha=0.3)
    fig.suptitle("jsgd optimizers on Rosenbrock's f = (1 - x)² + 100 (y - x²)²")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000, help="default 2000")
    parser.add_argument("--out", type=Path, default=Path("out/rosenbrock.png"))
    parser.add_argument("--quick", action="store_true", help="300 steps (for CI)")
    args = parser.parse_args()
    steps = 300 if args.quick else args.steps
    if steps < 1:
        parser.error("--steps must be at least 1")

    start = time.perf_counter()
    paths = {
        name: np.asarray(jax.jit(trajectory, static_argnums=(0, 1))(optimizer, steps))
        for name, optimizer in OPTIMIZERS
    }
    elapsed = time.perf_counter() - start

    print(f"Rosenbrock from {START}, {steps} steps ({elapsed:.1f} s incl. compiles)")
    header = f"{'optimizer':<27} {'final (x, y)':>18} {'f':>9} {'steps to f<1e-4':>15}"
    print(header)
    print("-" * len(header))
    for name, path in paths.items():
        values = np.asarray(rosenbrock(jnp.asarray(path)))
        (below,) = np.nonzero(values < TOLERANCE)
        reached = str(below[0]) if below.size else "not reached"
        x, y = path[-1]
        print(
            f"{name:<27} {f'({x:.4f}, {y:.4f})':>18} {values[-1]:>9.2e} {reached:>15}"
        )
    plot(paths, args.out)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
