"""jsgd.sweep: a learning-rate x momentum grid on scikit-learn's digits, as heatmaps.

64 configurations of Keras-rule SGD (8 learning rates x 8 momenta) train the
same MLP (64-64-10, ReLU) from the same initial weights on the same shuffled
mini-batches, all in one jitted program (``jsgd.sweep``: ``vmap`` over the
configurations, ``lax.scan`` over the steps). Each configuration's final
parameters are then scored on the whole training set (cross-entropy) and on
held-out test images (accuracy), and both grids are drawn as heatmaps;
diverged runs (final loss above the initial one) are grey.

Run: python examples/sweep.py [--steps 1000] [--batch-size 64]
     [--out out/sweep.png] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import jsgd

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm

HIDDEN = 64
SEED = 0
LEARNING_RATES = np.logspace(-3, 0, 8)  # 0.001 ... 1
MOMENTA = np.array([0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99])


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits split 80/20 (stratified), pixels standardized on the training set."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=SEED
    )
    scaler = StandardScaler().fit(x_train)
    return (
        scaler.transform(x_train).astype(np.float32),
        y_train.astype(np.int32),
        scaler.transform(x_test).astype(np.float32),
        y_test.astype(np.int32),
    )


def minibatches(x: np.ndarray, y: np.ndarray, steps: int, batch_size: int) -> Any:
    """``steps`` mini-batches, a fresh permutation each epoch: ``[steps, B, ...]``."""
    rng = np.random.default_rng(SEED)
    epochs = -(-steps * batch_size // len(x))
    order = np.concatenate([rng.permutation(len(x)) for _ in range(epochs)])
    index = order[: steps * batch_size].reshape(steps, batch_size)
    return jnp.asarray(x[index]), jnp.asarray(y[index])


def init_mlp() -> dict[str, jax.Array]:
    k1, k2 = jax.random.split(jax.random.key(SEED))
    return {
        "w1": jax.random.normal(k1, (64, HIDDEN)) * np.sqrt(2 / 64),
        "b1": jnp.zeros(HIDDEN),
        "w2": jax.random.normal(k2, (HIDDEN, 10)) * np.sqrt(1 / HIDDEN),
        "b2": jnp.zeros(10),
    }


def logits_fn(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def loss_fn(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    logits = logits_fn(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@jax.jit
def scores(params: Any, data: tuple[Any, ...]) -> tuple[jax.Array, jax.Array]:
    """Per configuration (leading axis of ``params``): train loss, test accuracy."""
    x_train, y_train, x_test, y_test = data

    def one(params: Any) -> tuple[jax.Array, jax.Array]:
        correct = jnp.argmax(logits_fn(params, x_test), -1) == y_test
        return loss_fn(params, x_train, y_train), jnp.mean(correct)

    return jax.vmap(one)(params)


def heatmap(ax: Any, grid: np.ndarray, title: str, fmt: str, **style: Any) -> None:
    """One panel: rows are learning rates, columns momenta; NaN cells grey."""
    cmap = plt.get_cmap(style.pop("cmap")).with_extremes(bad="0.8")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, origin="lower", **style)
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.3 * red + 0.6 * green + 0.1 * blue < 0.5
            text, color = format(value, fmt), "white" if dark else "black"
        else:
            text, color = "div.", "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(len(MOMENTA)), [f"{m:g}" for m in MOMENTA])
    ax.set_yticks(range(len(LEARNING_RATES)), [f"{lr:.3g}" for lr in LEARNING_RATES])
    ax.set(xlabel="momentum", ylabel="learning rate", title=title)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000, help="default 1000")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--out", type=Path, default=Path("out/sweep.png"))
    parser.add_argument("--quick", action="store_true", help="150 steps (for CI)")
    args = parser.parse_args()
    steps = 150 if args.quick else args.steps
    if steps < 1:
        parser.error("--steps must be at least 1")

    data = load_data()
    n_train = len(data[0])
    if not 1 <= args.batch_size <= n_train:
        parser.error(f"--batch-size must be between 1 and {n_train}")
    xs, ys = minibatches(data[0], data[1], steps, args.batch_size)
    lr_grid, momentum_grid = np.meshgrid(LEARNING_RATES, MOMENTA, indexing="ij")
    hyperparameters = {
        "learning_rate": lr_grid.ravel(),
        "momentum": momentum_grid.ravel(),
    }
    k = lr_grid.size
    print(
        f"digits: {n_train} training / {len(data[2])} test images; {k} "
        f"configurations x {steps} steps of batch {args.batch_size} "
        f"({steps * args.batch_size / n_train:.1f} epochs), jax {jax.__version__} "
        f"on {jax.default_backend()}"
    )

    params = init_mlp()
    start = time.perf_counter()
    result = jsgd.sweep(jsgd.sgd, hyperparameters, loss_fn, params, (xs, ys))
    train_loss, accuracy = jax.block_until_ready(
        scores(result.params, tuple(map(jnp.asarray, data)))
    )
    print(f"sweep (compile included): {time.perf_counter() - start:.1f} s")

    train_loss = np.array(train_loss).reshape(lr_grid.shape)
    accuracy = np.array(accuracy).reshape(lr_grid.shape)
    # Diverged: the training loss ended above where it started (or not
    # finite). Such a run's accuracy means little, so neither is drawn.
    initial_loss = float(loss_fn(params, data[0], data[1]))
    diverged = ~(train_loss <= initial_loss)
    train_loss[diverged] = accuracy[diverged] = np.nan
    best = np.unravel_index(np.nanargmax(accuracy), accuracy.shape)
    print(
        f"best test accuracy {accuracy[best]:.1%} at learning_rate="
        f"{LEARNING_RATES[best[0]]:.3g}, momentum={MOMENTA[best[1]]:g} "
        f"(final train loss {train_loss[best]:.4f}); "
        f"{int(diverged.sum())} of {k} runs diverged (final loss above the "
        f"initial {initial_loss:.3f})"
    )

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), layout="constrained")
    heatmap(left, 100 * accuracy, "test accuracy (%)", ".1f", cmap="viridis")
    norm = LogNorm(vmin=max(np.nanmin(train_loss), 1e-4), vmax=initial_loss)
    heatmap(right, train_loss, "final training loss", ".2g", cmap="magma_r", norm=norm)
    fig.suptitle(
        f"jsgd.sweep: Keras-rule SGD on digits, MLP 64-{HIDDEN}-10, {k} "
        f"configurations x {steps} steps of batch {args.batch_size} in one jit"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"heatmaps: {args.out}")


if __name__ == "__main__":
    main()
