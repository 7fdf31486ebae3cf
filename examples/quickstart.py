"""jsgd quickstart: legacy tf.keras's SGD doctests, then a small model.

The doctests are those of the legacy tf.keras (TF 2.x ``OptimizerV2``) ``SGD``.

Run: python examples/quickstart.py [--steps N]
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import jsgd


def keras_doctests() -> None:
    """Legacy tf.keras's SGD doctests, on loss = var**2 / 2 from var = 1.0."""
    loss = lambda var: var**2 / 2.0  # noqa: E731 - mirrors the doctests

    opt = jsgd.SGD(learning_rate=0.1)
    var, _ = opt.minimize(loss, jnp.array(1.0))
    print(f"SGD(0.1), one step:                var = {float(var):.1f}  (Keras: 0.9)")

    opt = jsgd.SGD(learning_rate=0.1, momentum=0.9)
    val0 = jnp.array(1.0)
    val1, state = opt.minimize(loss, val0)
    val2, state = opt.minimize(loss, val1, state)
    print(
        f"SGD(0.1, momentum=0.9), steps:     {float(val0 - val1):.2f} then "
        f"{float(val1 - val2):.2f}  (Keras: 0.1 then 0.18)"
    )


def conventions() -> None:
    """Keras vs optax/torch momentum when the learning rate drops 0.1 -> 0.01."""
    schedule = lambda count: jnp.where(count == 0, 0.1, 0.01)  # noqa: E731
    for lr_in_velocity, who in ((True, "Keras"), (False, "optax/torch")):
        tx = jsgd.sgd(schedule, momentum=0.9, lr_in_velocity=lr_in_velocity)
        w, state = jnp.zeros(()), tx.init(jnp.zeros(()))
        for _ in range(2):
            updates, state = tx.update(jnp.ones(()), state, w)
            w = optax.apply_updates(w, updates)
        print(f"lr 0.1 then 0.01, g = 1, two steps: w = {float(w):+.3f}  ({who})")


def train_small_model(steps: int) -> float:
    """A two-layer MLP fitting y = sin(3x) with Keras-style Nesterov SGD."""
    key_data, key_w1, key_w2 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.uniform(key_data, (256, 1), minval=-1.0, maxval=1.0)
    y = jnp.sin(3.0 * x)
    params = {
        "w1": jax.random.normal(key_w1, (1, 32)),
        "b1": jnp.zeros(32),
        "w2": jax.random.normal(key_w2, (32, 1)) / jnp.sqrt(32.0),
        "b2": jnp.zeros(1),
    }

    def loss_fn(params):
        hidden = jnp.tanh(x @ params["w1"] + params["b1"])
        return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)

    opt = jsgd.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, clipnorm=1.0)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    state = opt.init(params)
    for i in range(steps):
        params, state, loss = step(params, state)
        if i % max(1, steps // 5) == 0:
            print(f"step {i:4d}  loss {float(loss):.5f}")
    final = float(loss_fn(params))
    print(f"final loss {final:.5f}")
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="100 steps")
    args = parser.parse_args()
    keras_doctests()
    conventions()
    train_small_model(100 if args.quick else args.steps)


if __name__ == "__main__":
    main()
