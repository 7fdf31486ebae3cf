"""One of the processes of tests/test_distributed.py's multi-process test.

Also the problem every distributed test trains: a small MLP, a fixed batch and
Nesterov SGD with global-norm clipping.

Run as ``python -m tests._distributed_worker PROCESS_ID NUM_PROCESSES PORT
STEPS OUT``: the process joins the coordinator on 127.0.0.1:PORT (process 0
hosts it), trains data-parallel for STEPS steps on its slice of the batch
(gradients are averaged across processes over gloo) and writes the final
parameters to ``OUT.PROCESS_ID.npz``.
"""

import sys

import numpy as np

BATCH, IN, HIDDEN, OUT = 64, 16, 32, 4
LOCAL_DEVICES = 2  # per worker process


def problem() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Initial parameters and the full batch, the same in every process."""
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.normal(size=(IN, HIDDEN)).astype(np.float32) / np.sqrt(IN),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": rng.normal(size=(HIDDEN, OUT)).astype(np.float32) / np.sqrt(HIDDEN),
        "b2": np.zeros(OUT, np.float32),
    }
    x = rng.normal(size=(BATCH, IN)).astype(np.float32)
    y = np.sin(x[:, :OUT] * 2.0).astype(np.float32)
    return params, x, y


def loss_fn(params, x, y):
    import jax.numpy as jnp

    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)


def optimizer():
    import jsgd

    # The clip binds on the first steps (the tests check it), so a wrong
    # global norm would show in the parameters.
    return jsgd.sgd(0.1, momentum=0.9, nesterov=True, global_clipnorm=0.5)


def main(process_id: int, num_processes: int, port: int, steps: int, out: str):
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", LOCAL_DEVICES)
    # CPU collectives across processes; must be set before initialize().
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        f"127.0.0.1:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=30,
    )
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import jsgd

    mesh = Mesh(np.array(jax.devices()), ("data",))
    params, x, y = problem()
    # Every process holds the same replicated parameters...
    replicated = NamedSharding(mesh, PartitionSpec())
    params = {
        k: jax.make_array_from_callback(v.shape, replicated, lambda i, v=v: v[i])
        for k, v in params.items()
    }
    # ...and only its own slice of the batch.
    rows = slice(
        process_id * BATCH // num_processes, (process_id + 1) * BATCH // num_processes
    )
    batch = NamedSharding(mesh, PartitionSpec("data"))
    x = jax.make_array_from_process_local_data(batch, x[rows])
    y = jax.make_array_from_process_local_data(batch, y[rows])

    opt = optimizer()
    opt_state = opt.init(params)
    step = jsgd.make_train_step(loss_fn, opt)
    for i in range(steps):
        params, opt_state, loss = step(params, opt_state, x, y)
        # float() waits for the step. Without a wait per step, gloo with 2
        # CPU devices per process deadlocks after ~40 steps in flight
        # (jaxlib 0.10.2, also with a plain jax.jit step; not with 1 device).
        print(
            f"process {process_id} step {i} loss {float(loss.addressable_data(0)):.6f}"
        )
    np.savez(
        f"{out}.{process_id}.npz",
        **{k: np.asarray(v.addressable_data(0)) for k, v in params.items()},
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(*map(int, sys.argv[1:5]), sys.argv[5])
