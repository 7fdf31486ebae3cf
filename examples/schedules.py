"""Keras vs optax/torch momentum under a decaying learning rate.

Keras keeps the learning rate *inside* the velocity (``v = m*v - lr_t*g;
w += v``), optax and torch keep it *outside* (``b = m*b + g; w -= lr_t*b``).
With a constant learning rate the two give the same iterates; when it changes,
Keras scales only the *new* gradient by the new rate and lets the momentum
already built up decay at its own pace, while optax and torch rescale the whole
accumulated velocity at once. jsgd gives both: ``jsgd.SGD(...)`` (Keras,
``lr_in_velocity=True``) and ``jsgd.SGD(..., lr_in_velocity=False)`` (optax/torch).

The script first prints the worked example (``g = 1``, ``m = 0.9``, learning rate
0.1 then 0.01: two steps end at ``w = -0.200`` with Keras's rule and ``-0.119``
with optax's; Nesterov ``-0.290`` vs ``-0.2171``), checked against ``optax.sgd``.
Then it fits a noisy line ``y = 2x - 1`` by mini-batch SGD with momentum 0.9 under
``jsgd.schedules.ExponentialDecay(0.1, 30, 0.1, staircase=True)`` (0.1 for the
first 30 updates, 0.01 for the next 30, then 0.001) with both rules, and plots the
learning rate, the size of each update, the slope's trajectory and the loss. The
two rules agree to float32 rounding until the first drop, then part.

Run: python examples/schedules.py [--steps 90] [--out out/schedules.png] [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

import jsgd

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MOMENTUM = 0.9
BATCH = 8
RULES = {
    True: "Keras (lr_in_velocity=True)",
    False: "optax/torch (lr_in_velocity=False)",
}


def two_steps(tx: optax.GradientTransformation) -> float:
    """``w`` after two steps from 0 with gradient 1."""
    w, state = jnp.zeros(()), tx.init(jnp.zeros(()))
    for _ in range(2):
        updates, state = tx.update(jnp.ones(()), state, w)
        w = optax.apply_updates(w, updates)
    return float(w)


def worked_example() -> None:
    """The design's numbers: g = 1, m = 0.9, learning rate 0.1 then 0.01.

    Keras: ``v1 = -0.1``, ``v2 = 0.9 * v1 - 0.01 = -0.1`` (the momentum built up
    keeps its size), ``w2 = -0.2``. optax: ``b2 = 0.9 * 1 + 1 = 1.9`` is scaled
    by the *new* rate, ``w2 = -0.1 - 0.01 * 1.9 = -0.119``. Nesterov adds the
    look-ahead ``m * v`` (Keras) or ``m * b`` (optax) to each step.
    """
    drop = jsgd.schedules.PiecewiseConstantDecay(boundaries=[0], values=[0.1, 0.01])
    print("Worked example: g = 1, m = 0.9, learning rate 0.1 then 0.01, two steps")
    print(
        f"  {'w after 2 steps':<16} {'Keras rule':>10} {'optax rule':>10} "
        f"{'optax.sgd':>10}   design (Keras vs optax)"
    )
    for nesterov, expected in ((False, (-0.200, -0.119)), (True, (-0.290, -0.2171))):
        keras = two_steps(jsgd.SGD(drop, MOMENTUM, nesterov))
        torch_like = two_steps(jsgd.SGD(drop, MOMENTUM, nesterov, lr_in_velocity=False))
        reference = two_steps(optax.sgd(drop, MOMENTUM, nesterov))
        name = "Nesterov" if nesterov else "momentum"
        print(
            f"  {name:<16} {keras:>10.4f} {torch_like:>10.4f} {reference:>10.4f}   "
            f"{expected[0]:.3f} vs {expected[1]:.4g}"
        )
        assert abs(keras - expected[0]) < 1e-6, (keras, expected)
        assert abs(torch_like - expected[1]) < 1e-6, (torch_like, expected)
        assert abs(torch_like - reference) < 1e-6, (torch_like, reference)


def make_data(key: jax.Array, n: int = 256) -> tuple[jax.Array, jax.Array]:
    kx, kn = jax.random.split(key)
    x = jax.random.uniform(kx, (n,), minval=-2.0, maxval=2.0)
    return x, 2.0 * x - 1.0 + 0.5 * jax.random.normal(kn, (n,))


def loss_fn(params: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    return 0.5 * jnp.mean((params[0] * x + params[1] - y) ** 2)


def train(
    tx: optax.GradientTransformation, x: jax.Array, y: jax.Array, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mini-batch training from ``(w, b) = (0, 0)``, the same batches for any ``tx``.

    Returns the ``(steps + 1, 2)`` parameters and the losses on all the data.
    """
    batches = jax.random.randint(jax.random.key(1), (steps, BATCH), 0, x.shape[0])

    @jax.jit
    def run(params):
        def step(carry, idx):
            params, state = carry
            grads = jax.grad(loss_fn)(params, x[idx], y[idx])
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            return (params, state), (params, loss_fn(params, x, y))

        _, (path, losses) = jax.lax.scan(step, (params, tx.init(params)), batches)
        return (
            jnp.concatenate([params[None], path]),
            jnp.concatenate([loss_fn(params, x, y)[None], losses]),
        )

    path, losses = run(jnp.zeros(2))
    return np.asarray(path), np.asarray(losses)


def plot(schedule, runs: dict, steps: int, boundaries: list[int], out: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
    (ax_lr, ax_step), (ax_w, ax_loss) = axes
    t = np.arange(steps + 1)
    # Update k (k = 1, 2, ...) uses the rate at count k - 1; x is "updates done".
    lrs = [float(schedule(k - 1)) for k in t[1:]]
    ax_lr.step(t[1:], lrs, where="pre", color="k")
    ax_lr.set(
        title="Learning rate: ExponentialDecay(0.1, 30, 0.1, staircase=True)",
        xlabel="updates",
        ylabel="learning rate of that update",
        yscale="log",
    )
    colors = {False: "tab:blue", True: "tab:orange"}  # by nesterov
    for (nesterov, lr_in_velocity), (path, losses) in runs.items():
        style = {
            "color": colors[nesterov],
            "ls": "-" if lr_in_velocity else "--",
            "lw": 1.5,
            "label": f"{'Nesterov' if nesterov else 'momentum'}, "
            f"{RULES[lr_in_velocity]}",
        }
        ax_step.plot(t[1:], np.linalg.norm(np.diff(path, axis=0), axis=1), **style)
        ax_w.plot(t, path[:, 0], **style)
        ax_loss.plot(t, losses, **style)
    ax_step.set(
        title="Size of each update |Δ(w, b)|",
        xlabel="updates",
        ylabel="update norm",
        yscale="log",
    )
    ax_w.axhline(2.0, color="grey", lw=0.8)
    ax_w.set(title="Slope w (true value 2)", xlabel="updates", ylabel="w")
    ax_loss.set(
        title="Loss on all 256 points",
        xlabel="updates",
        ylabel="mean squared error / 2",
        yscale="log",
    )
    for ax in axes.flat:
        for b in boundaries:
            ax.axvline(b, color="grey", ls=":", lw=1)
        ax.grid(True, which="both", alpha=0.3)
    ax_step.legend(fontsize=8)
    fig.suptitle(
        "Same batches, same schedule, momentum 0.9: Keras keeps the momentum built "
        "up before a drop, optax/torch rescale it at once"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=90, help="default 90")
    parser.add_argument("--out", type=Path, default=Path("out/schedules.png"))
    parser.add_argument("--quick", action="store_true", help="45 steps (for CI)")
    args = parser.parse_args()
    steps = 45 if args.quick else args.steps
    if steps < 1:
        parser.error("--steps must be at least 1")

    worked_example()

    schedule = jsgd.schedules.ExponentialDecay(0.1, 30, 0.1, staircase=True)
    boundaries = [b for b in (30, 60) if b < steps]
    x, y = make_data(jax.random.key(0))
    runs = {
        (nesterov, lr_in_velocity): train(
            jsgd.SGD(schedule, MOMENTUM, nesterov, lr_in_velocity=lr_in_velocity),
            x,
            y,
            steps,
        )
        for nesterov in (False, True)
        for lr_in_velocity in (True, False)
    }

    print(
        f"\nLine fit y = 2x - 1 + noise, batch {BATCH}, {steps} steps, drops at "
        f"{boundaries}"
    )
    print(
        f"  {'':10} {'rule':<36} {'final w':>7} {'final b':>7} {'loss':>8}   "
        "max |(w, b) - other rule's|"
    )
    print(
        f"  {'':10} {'':<36} {'':>7} {'':>7} {'':>8}   {'before drop':>12} {'after':>9}"
    )
    first = boundaries[0] if boundaries else steps
    for (nesterov, lr_in_velocity), (path, losses) in runs.items():
        gap = np.abs(path - runs[(nesterov, not lr_in_velocity)][0]).max(axis=1)
        after = f"{gap[first + 1 :].max():.1e}" if boundaries else "-"
        w, b = path[-1]
        print(
            f"  {'Nesterov' if nesterov else 'momentum':10} "
            f"{RULES[lr_in_velocity]:<36} "
            f"{w:>7.4f} {b:>7.4f} {losses[-1]:>8.5f}   "
            f"{gap[: first + 1].max():>12.1e} {after:>9}"
        )
    plot(schedule, runs, steps, boundaries, args.out)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
