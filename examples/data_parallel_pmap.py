"""Data-parallel training with ``jax.pmap``: one model replica per device.

Each device computes the gradient of its slice of the batch; ``lax.pmean``
averages the gradients, so every replica applies the same update and the
run is the single-device run on the full batch. On CPU the devices are faked
(``--devices``, default 8); on GPUs/TPUs the real ones are used.

Run: python examples/data_parallel_pmap.py [--steps N] [--devices D] [--quick]
"""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--devices", type=int, default=8, help="fake CPU devices")
    parser.add_argument("--quick", action="store_true", help="50 steps")
    args = parser.parse_args()

    import jax

    # Must precede the first use of a device; it changes only the CPU backend.
    jax.config.update("jax_num_cpu_devices", args.devices)

    import jax.numpy as jnp
    import numpy as np

    import jsgd

    n = jax.local_device_count()
    key_data, key_w1, key_w2 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.uniform(key_data, (64 * n, 1), minval=-1.0, maxval=1.0)
    y = jnp.sin(3.0 * x)
    params = {
        "w1": jax.random.normal(key_w1, (1, 32)),
        "b1": jnp.zeros(32),
        "w2": jax.random.normal(key_w2, (32, 1)) / jnp.sqrt(32.0),
        "b2": jnp.zeros(1),
    }

    def loss_fn(params, x, y):
        hidden = jnp.tanh(x @ params["w1"] + params["b1"])
        return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)

    # The clip sees the pmean'd (replicated) gradient, so it takes no
    # axis_name: summing the norm over devices would count it n times.
    opt = jsgd.sgd(0.1, momentum=0.9, nesterov=True, global_clipnorm=1.0)
    # make_train_step(axis_name=...) pmeans gradients and loss over the axis;
    # pmap runs it on every device and donates the old params and state.
    step = jax.pmap(
        jsgd.make_train_step(loss_fn, opt, axis_name="batch"),
        axis_name="batch",
        donate_argnums=(0, 1),
    )

    def replicate(tree):  # one copy per device along a new leading axis
        return jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape)), tree)

    def split(a):  # [n * b, ...] -> [n, b, ...]: one slice per device
        return a.reshape(n, -1, *a.shape[1:])

    replicated_params, opt_state = replicate(params), replicate(opt.init(params))
    xs, ys = split(x), split(y)
    steps = 50 if args.quick else args.steps
    print(f"{n} devices, {x.shape[0] // n} examples each")
    for i in range(steps):
        replicated_params, opt_state, loss = step(replicated_params, opt_state, xs, ys)
        if i % max(1, steps // 5) == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {float(loss[0]):.5f}")

    # Every replica applied the same averaged update.
    w1 = np.asarray(replicated_params["w1"])
    assert all(np.array_equal(w1[0], w) for w in w1), "replicas diverged"
    final = jax.tree.map(lambda a: a[0], replicated_params)
    print(f"final loss {float(loss_fn(final, x, y)):.5f} (replicas identical)")


if __name__ == "__main__":
    main()
