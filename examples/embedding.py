"""Matrix factorization with sparse (row) updates of two embedding tables.

Ratings ``r(u, i) = <p_u, q_i> + noise`` are generated from random rank-16
user and item factors. The model learns a user table and an item table by
minimizing the summed squared error on batches of 4,096 ratings with SGD +
momentum 0.9 (per-rating SGD, as in Funk's SVD). Each batch touches at most
4,096 rows of each table, so:

* the **sparse** step differentiates the loss with respect to the gathered
  rows only, wraps those gradients in ``jsgd.IndexedSlices`` and updates just
  those rows of the tables and of their velocities (legacy tf.keras ``SGD``
  semantics), in place;
* the **dense** step (``jax.grad`` of the same loss and ``optax.sgd``) turns
  each table's gradient into a full-size array and rewrites every row of the
  tables and velocities.

Prints the loss per epoch for both and the median time of one step. Both
learn; the sparse one is many times faster on large tables. (The two are
not the same trajectory: lazy momentum keeps untouched rows' velocity.)

The full run takes 4-6 minutes on 2 CPU cores, most of it the dense baseline,
and prints a speed-up of 5-11x (whole training steps); ``--quick`` (tables 10x
smaller) takes about 30 seconds and prints 1.5-2.3x (docs/examples.md).

Run: python examples/embedding.py [--users 1000000] [--items 100000]
     [--ratings 4000000] [--epochs 4] [--quick]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsgd

RANK, DIM, BATCH, LR = 16, 32, 4096, 0.01


def make_ratings(users: int, items: int, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(users, RANK)) / RANK**0.25
    q = rng.normal(size=(items, RANK)) / RANK**0.25
    u = rng.integers(0, users, size=count).astype(np.int32)
    i = rng.integers(0, items, size=count).astype(np.int32)
    r = np.einsum("nk,nk->n", p[u], q[i]) + 0.1 * rng.normal(size=count)
    return u, i, r.astype(np.float32)


def init_params(users: int, items: int, seed: int = 1):
    key_u, key_i = jax.random.split(jax.random.key(seed))
    return {
        "users": 0.3 * jax.random.normal(key_u, (users, DIM)),
        "items": 0.3 * jax.random.normal(key_i, (items, DIM)),
    }


def loss_of_rows(user_rows, item_rows, ratings):
    predictions = jnp.sum(user_rows * item_rows, axis=-1)
    return 0.5 * jnp.sum((predictions - ratings) ** 2)


def make_sparse_step(tx: optax.GradientTransformation):
    def step(params, state, u, i, r):
        # Differentiate with respect to the gathered rows, not the tables.
        loss, (g_users, g_items) = jax.value_and_grad(loss_of_rows, argnums=(0, 1))(
            params["users"][u], params["items"][i], r
        )
        grads = {
            "users": jsgd.IndexedSlices(g_users, u, params["users"].shape),
            "items": jsgd.IndexedSlices(g_items, i, params["items"].shape),
        }
        updates, state = tx.update(grads, state, params)
        return jsgd.apply_updates(params, updates), state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def make_dense_step(tx: optax.GradientTransformation):
    def loss(params, u, i, r):
        return loss_of_rows(params["users"][u], params["items"][i], r)

    def step(params, state, u, i, r):
        value, grads = jax.value_and_grad(loss)(params, u, i, r)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    return jax.jit(step, donate_argnums=(0, 1))


def train(name, step, tx, params, data, epochs):
    u, i, r = data
    state = tx.init(params)
    batches = len(r) // BATCH
    times = []
    for epoch in range(epochs):
        losses = []
        for b in range(batches):
            batch = slice(b * BATCH, (b + 1) * BATCH)
            start = time.perf_counter()
            params, state, loss = step(params, state, u[batch], i[batch], r[batch])
            loss = float(loss)  # waits for the step
            times.append(time.perf_counter() - start)
            losses.append(loss / BATCH)
        print(f"  {name:6s} epoch {epoch + 1}: loss per rating {np.mean(losses):.4f}")
    return params, float(np.median(times[1:]) * 1e3), float(np.mean(losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--ratings", type=int, default=4_000_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small tables, 3 epochs")
    args = parser.parse_args()
    if args.quick:
        args.users, args.items, args.ratings, args.epochs = (
            100_000,
            10_000,
            2_000_000,
            3,
        )

    sizes = ("users", "items", "ratings", "epochs")
    if all(getattr(args, size) == parser.get_default(size) for size in sizes):
        print(
            "The full run takes 4-6 minutes on 2 CPU cores (most of it the dense "
            "baseline); --quick takes about 30 seconds."
        )
    u, i, r = (
        jnp.asarray(a) for a in make_ratings(args.users, args.items, args.ratings)
    )
    print(
        f"{args.users:,} users x {args.items:,} items (dim {DIM}), "
        f"{args.ratings:,} ratings, batches of {BATCH}; SGD lr {LR}, momentum 0.9"
    )
    sparse_tx = jsgd.sgd(learning_rate=LR, momentum=0.9)
    dense_tx = optax.sgd(learning_rate=LR, momentum=0.9)
    results = {}
    for name, step, tx in (
        ("sparse", make_sparse_step(sparse_tx), sparse_tx),
        ("dense", make_dense_step(dense_tx), dense_tx),
    ):
        params = init_params(args.users, args.items)
        _, ms, last = train(name, step, tx, params, (u, i, r), args.epochs)
        results[name] = (ms, last)
    print(f"{'':6s} {'last-epoch loss':>16s} {'ms / step':>10s}  (noise floor 0.005)")
    for name, (ms, last) in results.items():
        print(f"{name:6s} {last:16.4f} {ms:10.2f}")
    ratio = results["dense"][0] / results["sparse"][0]
    print(f"sparse steps are {ratio:.1f}x faster than dense ones")
    start_loss = 0.5 * float(jnp.mean(r**2))  # the loss of predicting 0
    assert results["sparse"][1] < 0.5 * start_loss, "sparse training did not learn"


if __name__ == "__main__":
    main()
