"""A flax.nnx MLP trained on scikit-learn's digits with a jsgd optimizer.

jsgd's optimizers are optax gradient transformations, so they plug straight into
``nnx.Optimizer``: ``nnx.Optimizer(model, jsgd.SGD(...), wrt=nnx.Param)``. The
model is a 64-64-10 ReLU MLP; the default optimizer is Keras-style Nesterov SGD
with a cosine-decayed learning rate (``jsgd.schedules.CosineDecay``), ``--optimizer
adam`` swaps in ``jsgd.Adam``. The training step is one ``nnx.jit`` call per
mini-batch. Prints the loss and the test accuracy as it trains.

Run: python examples/flax_mlp.py [--epochs 20] [--batch-size 32]
     [--optimizer {sgd,adam}] [--quick]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import jsgd


class MLP(nnx.Module):
    """Two dense layers with a ReLU between them."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(n_in, n_hidden, rngs=rngs)
        self.out = nnx.Linear(n_hidden, n_out, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits for a batch ``x`` of shape ``(n, n_in)``."""
        return self.out(nnx.relu(self.hidden(x)))


def loss_fn(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def train_step(
    model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array
) -> jax.Array:
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads)  # jsgd's update, then optax.apply_updates
    return loss


@nnx.jit
def evaluate(model: MLP, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, jnp.mean(jnp.argmax(logits, axis=-1) == y)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20, help="default 20")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--quick", action="store_true", help="3 epochs (for CI)")
    args = parser.parse_args()
    epochs = 3 if args.quick else args.epochs
    if epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data.astype(np.float32),
        digits.target.astype(np.int32),
        test_size=0.2,
        random_state=0,
        stratify=digits.target,
    )
    scaler = StandardScaler().fit(x_train)
    x_train = scaler.transform(x_train).astype(np.float32)
    x_test = jnp.asarray(scaler.transform(x_test), jnp.float32)
    n_batches = len(x_train) // args.batch_size
    if n_batches < 1:
        parser.error(f"--batch-size must be at most {len(x_train)}")

    model = MLP(64, 64, 10, rngs=nnx.Rngs(0))
    if args.optimizer == "sgd":
        schedule = jsgd.schedules.CosineDecay(0.05, decay_steps=epochs * n_batches)
        tx = jsgd.SGD(schedule, momentum=0.9, nesterov=True)
    else:
        tx = jsgd.Adam(learning_rate=3e-3)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    print(f"optimizer: {tx!r}")
    print(f"config:    {tx.get_config()}")

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))[: n_batches * args.batch_size]
        batch_losses = [
            train_step(model, optimizer, x_train[idx], y_train[idx])
            for idx in order.reshape(n_batches, args.batch_size)
        ]
        train_loss = float(jnp.mean(jnp.stack(batch_losses)))
        test_loss, test_acc = evaluate(model, x_test, y_test)
        print(
            f"epoch {epoch:3d}  train loss {train_loss:.4f}  "
            f"test loss {float(test_loss):.4f}  test accuracy {float(test_acc):.1%}"
        )
    elapsed = time.perf_counter() - start
    print(
        f"final test accuracy {float(test_acc):.1%} after {epochs} epochs "
        f"({epochs * n_batches} steps, {elapsed:.1f} s); "
        f"optimizer steps counted: {int(optimizer.step[...])}"
    )


if __name__ == "__main__":
    main()
