"""Data- and model-parallel training with ``jax.jit`` over a 2-D device mesh.

The devices form a ``("data", "model")`` mesh. The batch is split over
"data"; the hidden layer of an MLP over "model" (Megatron style: the first
layer's columns, the second's rows), so no parameter is ever gathered. The
optimizer state is created from the sharded parameters and sharded like
them; with ``--zero`` it is further split over "data" (ZeRO stage 1) by
``jsgd.zero1_shardings``. ``jsgd.make_train_step`` compiles one step that
keeps every layout and updates parameters and state in place. On CPU the
devices are faked (``--data x --model``, default 2 x 4).

Run: python examples/sharded_jit.py [--steps N] [--data 2] [--model 4] [--zero]
     [--quick]
"""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data", type=int, default=2, help="data-parallel size")
    parser.add_argument("--model", type=int, default=4, help="model-parallel size")
    parser.add_argument("--zero", action="store_true", help="split state over data")
    parser.add_argument("--quick", action="store_true", help="30 steps, with --zero")
    args = parser.parse_args()

    import jax

    # Must precede the first use of a device; it changes only the CPU backend.
    jax.config.update("jax_num_cpu_devices", args.data * args.model)

    import jax.numpy as jnp
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import jsgd

    # Auto axes: the compiler places intermediate values and inserts the
    # collectives; only the inputs' layouts are chosen here.
    mesh = jax.make_mesh(
        (args.data, args.model), ("data", "model"), axis_types=(AxisType.Auto,) * 2
    )

    def shard(tree, specs):
        return jax.device_put(
            tree, jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
        )

    keys = jax.random.split(jax.random.key(0), 4)
    batch, width = 256, 64 * args.model
    x = jax.random.normal(keys[0], (batch, 8))
    y = jnp.sin(x @ jax.random.normal(keys[1], (8, 2)))
    x, y = shard((x, y), (P("data"), P("data")))
    params = shard(
        {
            "w1": jax.random.normal(keys[2], (8, width)) / jnp.sqrt(8.0),
            "b1": jnp.zeros(width),
            "w2": jax.random.normal(keys[3], (width, 2)) / jnp.sqrt(width),
            "b2": jnp.zeros(2),
        },
        {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None), "b2": P()},
    )

    def loss_fn(params, x, y):
        hidden = jnp.tanh(x @ params["w1"] + params["b1"])
        return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)

    # The clip takes no axis_name: under jit the gradient is one global
    # array, whatever its sharding, and its norm is the global norm.
    opt = jsgd.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, global_clipnorm=1.0)
    opt_state = opt.init(params)  # eager init: each velocity sharded like its param
    if args.zero or args.quick:
        opt_state = jax.device_put(opt_state, jsgd.zero1_shardings(opt_state, mesh))
    step = jsgd.make_train_step(loss_fn, opt)

    hlo = step.lower(params, opt_state, x, y).compile().as_text()
    collectives = ("all-reduce", "reduce-scatter", "all-gather")
    print(f"mesh {dict(mesh.shape)}; collectives in the compiled step:")
    print("  " + ", ".join(f"{c} x{hlo.count(c + '(')}" for c in collectives))
    for name in ("w1", "w2"):
        velocity = opt_state[-1].velocity[name]
        fraction = velocity.addressable_shards[0].data.size / velocity.size
        print(
            f"  {name}: param {params[name].sharding.spec}, velocity "
            f"{velocity.sharding.spec} ({fraction:.3g} of it per device)"
        )

    steps = 30 if args.quick else args.steps
    for i in range(steps):
        params, opt_state, loss = step(params, opt_state, x, y)
        if i % max(1, steps // 5) == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {float(loss):.5f}")


if __name__ == "__main__":
    main()
