"""jsgd demo: eight optimizers train the same small MLP on scikit-learn's digits.

One network (64-32-10, tanh) and one set of initial weights, trained by batch
gradient descent (BGD, the whole training set per step), stochastic gradient
descent (SGD, one example per step), mini-batch gradient descent (MBGD), SGD with
momentum, Nesterov, Adagrad, RMSprop and Adam, every one built from jsgd.
Each epoch is one jitted ``lax.scan`` over the shuffled mini-batches, so even the
~1400 single-example steps of an SGD epoch cost one call. It prints a table
(final training loss, test accuracy, compile and training time) and writes the
loss curves, against epochs and against parameter updates, to a PNG.

Run: python examples/demo.py [--epochs 50] [--batch-size 32] [--out out/demo.png]
     [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from tqdm import tqdm

import jsgd

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HIDDEN = 32
SEED = 0


@dataclass(frozen=True)
class Run:
    """One optimizer of the comparison: its label, its jsgd optimizer, its batch."""

    name: str
    optimizer: optax.GradientTransformation
    batch_size: int | None  # None: the whole training set (BGD)
    hyper: str  # how the table describes it


def optimizers(batch_size: int) -> list[Run]:
    """The eight optimizers, with learning rates that suit this problem.

    Momentum and Nesterov take MBGD's learning rate, so their curves show what
    momentum adds; Adam and RMSprop use Keras-range rates.
    """
    return [
        Run("BGD", jsgd.SGD(learning_rate=1.0), None, "lr 1, full batch"),
        Run("SGD", jsgd.SGD(learning_rate=0.01), 1, "lr 0.01, batch 1"),
        Run("MBGD", jsgd.SGD(learning_rate=0.1), batch_size, "lr 0.1"),
        Run(
            "SGD + momentum",
            jsgd.SGD(learning_rate=0.1, momentum=0.9),
            batch_size,
            "lr 0.1, m 0.9",
        ),
        Run(
            "Nesterov",
            jsgd.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
            batch_size,
            "lr 0.1, m 0.9",
        ),
        Run("Adagrad", jsgd.Adagrad(learning_rate=0.1), batch_size, "lr 0.1"),
        Run("RMSprop", jsgd.RMSprop(learning_rate=1e-3), batch_size, "lr 1e-3"),
        Run("Adam", jsgd.Adam(learning_rate=3e-3), batch_size, "lr 3e-3"),
    ]


def load_data() -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Digits (1797 8x8 images), 80/20 stratified split, standardized on train."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data.astype(np.float32),
        digits.target.astype(np.int32),
        test_size=0.2,
        random_state=SEED,
        stratify=digits.target,
    )
    scaler = StandardScaler().fit(x_train)
    return (
        jnp.asarray(scaler.transform(x_train), jnp.float32),
        jnp.asarray(y_train),
        jnp.asarray(scaler.transform(x_test), jnp.float32),
        jnp.asarray(y_test),
    )


def init_params(key: jax.Array, sizes: tuple[int, ...]) -> list[dict[str, jax.Array]]:
    """LeCun-normal weights and zero biases for an MLP with these layer sizes."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {
            "w": jax.random.normal(k, (n_in, n_out)) / jnp.sqrt(n_in),
            "b": jnp.zeros(n_out),
        }
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def logits_fn(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = logits_fn(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def accuracy(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits_fn(params, x), axis=-1) == y)


def make_epoch(
    optimizer: optax.GradientTransformation, batch_size: int, n_train: int
) -> Callable[..., Any]:
    """One epoch: shuffle, then a ``lax.scan`` of optimizer steps over the batches.

    Returns ``epoch(params, state, key, every, x_train, y_train, x_test, y_test)
    -> (params, state, losses, test_accuracy)``, ``key`` a shuffle key's raw
    ``uint32`` data (``jax.random.key_data``: a NumPy row per epoch is free to
    index, an eager slice of a key array is not). ``losses[i]`` is the loss on the
    whole training set after step ``i`` when ``(i + 1) % every == 0`` or ``i`` is
    the last step, NaN otherwise (``every`` is traced: one compile serves a
    step-by-step first epoch and sparser later ones). The last partial batch is
    dropped.
    """
    n_batches = n_train // batch_size

    def epoch(params, state, key, every, x_train, y_train, x_test, y_test):
        key = jax.random.wrap_key_data(key)
        order = jax.random.permutation(key, n_train)[: n_batches * batch_size]
        xs = x_train[order].reshape(n_batches, batch_size, -1)
        ys = y_train[order].reshape(n_batches, batch_size)

        def step(carry, batch):
            params, state = carry
            i, x, y = batch
            grads = jax.grad(loss_fn)(params, x, y)
            updates, state = optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            loss = jax.lax.cond(
                ((i + 1) % every == 0) | (i == n_batches - 1),
                lambda p: loss_fn(p, x_train, y_train),
                lambda p: jnp.full((), jnp.nan),
                params,
            )
            return (params, state), loss

        # Unrolling a few single-example steps per loop iteration cuts the
        # loop's own overhead, which dominates when a step is this small.
        (params, state), losses = jax.lax.scan(
            step,
            (params, state),
            (jnp.arange(n_batches), xs, ys),
            unroll=8 if batch_size < 8 else 1,
        )
        return params, state, losses, accuracy(params, x_test, y_test)

    return jax.jit(epoch)


@dataclass
class Result:
    """What one optimizer's training produced."""

    run: Run
    steps_per_epoch: int
    steps: np.ndarray  # parameter updates so far, at each recorded loss
    losses: np.ndarray  # training loss (whole training set) at those points
    accuracy: float
    compile_s: float
    train_s: float


@dataclass
class Compiled:
    """One optimizer's compiled epoch, with its initial parameters and state."""

    run: Run
    epoch: Any  # the compiled ``make_epoch`` program
    params: Any
    state: Any
    initial_loss: float
    compile_s: float
    epoch_keys: np.ndarray  # one shuffle key (raw data) per epoch, as every run's


def compile_run(run: Run, data: tuple[jax.Array, ...], epochs: int) -> Compiled:
    """Build ``run``'s initial state and compile its epoch (before any training).

    Compiling every program first (and the eager initial loss and shuffle keys)
    keeps compiles out of the training progress bar, whose rate (and so its
    ETA) then counts epochs only.
    """
    x_train, y_train = data[:2]
    n_train = x_train.shape[0]
    batch_size = run.batch_size or n_train
    params = init_params(jax.random.key(SEED), (x_train.shape[1], HIDDEN, 10))
    state = run.optimizer.init(params)
    initial_loss = float(loss_fn(params, x_train, y_train))
    keys = jax.random.split(jax.random.key(SEED + 1), epochs)
    epoch_keys = np.asarray(jax.random.key_data(keys))
    start = time.perf_counter()
    epoch = (
        make_epoch(run.optimizer, batch_size, n_train)
        .lower(params, state, epoch_keys[0], jnp.int32(1), *data)
        .compile()
    )
    compile_s = time.perf_counter() - start
    return Compiled(run, epoch, params, state, initial_loss, compile_s, epoch_keys)


def train(compiled: Compiled, data: tuple[jax.Array, ...], bar: tqdm) -> Result:
    """Train ``compiled.run`` from the shared initial weights.

    The training loss is recorded after every step of the first epoch, then
    about ten times an epoch.
    """
    run, epoch = compiled.run, compiled.epoch
    params, state = compiled.params, compiled.state
    n_train = data[0].shape[0]
    n_batches = n_train // (run.batch_size or n_train)
    every_step, sparse = jnp.int32(1), jnp.int32(max(1, n_batches // 10))

    steps, losses = [0], [compiled.initial_loss]
    start = time.perf_counter()
    for e, key in enumerate(compiled.epoch_keys):
        params, state, epoch_losses, acc = epoch(
            params, state, key, every_step if e == 0 else sparse, *data
        )
        epoch_losses = np.asarray(epoch_losses)  # waits for the epoch to finish
        (recorded,) = np.nonzero(~np.isnan(epoch_losses))
        steps.extend(e * n_batches + recorded + 1)
        losses.extend(epoch_losses[recorded])
        bar.set_postfix_str(f"{run.name}: loss {losses[-1]:.4f}", refresh=False)
        bar.update()
    train_s = time.perf_counter() - start
    return Result(
        run,
        n_batches,
        np.array(steps),
        np.array(losses),
        float(acc),
        compiled.compile_s,
        train_s,
    )


def print_table(results: list[Result]) -> None:
    header = (
        f"{'optimizer':<15} {'settings':<19} {'steps/ep':>8} {'train loss':>10} "
        f"{'test acc':>8} {'compile s':>9} {'train s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.run.name:<15} {r.run.hyper:<19} {r.steps_per_epoch:>8} "
            f"{r.losses[-1]:>10.4f} {r.accuracy:>8.1%} {r.compile_s:>9.2f} "
            f"{r.train_s:>7.2f}"
        )


def plot(results: list[Result], n_train: int, path: Path) -> None:
    """Training loss against epochs (left) and against updates (right), log scale."""
    fig, (by_epoch, by_step) = plt.subplots(1, 2, figsize=(13, 6), layout="constrained")
    for r in results:
        label = f"{r.run.name} ({r.run.hyper}): {r.accuracy:.1%} test"
        style = {"lw": 1.6, "ls": "--" if r.run.name == "Nesterov" else "-"}
        (line,) = by_epoch.plot(
            r.steps / r.steps_per_epoch, r.losses, label=label, **style
        )
        # On the log axis the initial loss (0 updates) is drawn at 1 update.
        by_step.plot(np.maximum(r.steps, 1), r.losses, color=line.get_color(), **style)
    by_epoch.set(
        xlabel=f"epochs (x {n_train} training examples seen)",
        ylabel="training loss (cross-entropy, whole training set)",
        yscale="log",
        title="Per epoch: the same examples seen",
    )
    by_step.set(
        xlabel="parameter updates",
        ylabel="training loss (cross-entropy, whole training set)",
        xscale="log",
        yscale="log",
        title="Per update: the same number of steps",
    )
    for ax in (by_epoch, by_step):
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=4, fontsize=9)
    fig.suptitle(
        "jsgd optimizers on scikit-learn digits: MLP 64-32-10 (tanh), "
        "same initial weights and shuffles"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=50, help="epochs (default 50)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="mini-batch size of MBGD, momentum, Nesterov, Adagrad, RMSprop, Adam",
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo.png"))
    parser.add_argument("--quick", action="store_true", help="5 epochs (for CI)")
    args = parser.parse_args()
    epochs = 5 if args.quick else args.epochs

    data = load_data()
    n_train = data[0].shape[0]
    if epochs < 1:
        parser.error("--epochs must be at least 1")
    if not 1 <= args.batch_size <= n_train:
        parser.error(f"--batch-size must be between 1 and {n_train}")
    print(
        f"digits: {n_train} training / {data[2].shape[0]} test images, "
        f"{epochs} epochs, jax {jax.__version__} on {jax.default_backend()}"
    )
    runs = optimizers(args.batch_size)
    compiled = []
    with tqdm(total=len(runs), unit="program", desc="compiling") as bar:
        for run in runs:
            compiled.append(compile_run(run, data, epochs))
            bar.update()
    results = []
    with tqdm(total=len(runs) * epochs, unit="epoch", desc="training") as bar:
        for c in compiled:
            results.append(train(c, data, bar))
    print_table(results)
    plot(results, n_train, args.out)
    print(f"loss curves: {args.out}")


if __name__ == "__main__":
    main()
