"""Multi-process data-parallel training: one JAX program, several processes.

Every process runs this same script: it joins the others through
``jax.distributed.initialize``, loads only its own slice of the batch, and
trains on one global ``"data"`` mesh over all processes' devices. The
gradient average across processes is inserted by the compiler (over gloo on
CPU, NCCL on GPU, ICI on TPU).

Here, with no ``--process-id``, the script launches itself twice on this
machine (coordinator 127.0.0.1, a free port, 2 fake CPU devices each) and
waits for both. On a cluster, start it once per host with the same
coordinator (process 0's host and a free port) and that host's rank:

    python examples/multi_process.py --coordinator 10.0.0.1:1234 \
        --num-processes 4 --process-id $RANK

Run: python examples/multi_process.py [--steps N] [--num-processes 2] [--quick]
"""

import argparse
import os
import socket
import subprocess
import sys
import time


def train(args: argparse.Namespace) -> None:
    """One process's part of the run (the same code on every process)."""
    import jax

    # Both settings change only the CPU backend, and must precede initialize:
    # fake local CPU devices, and gloo for CPU collectives across processes.
    jax.config.update("jax_num_cpu_devices", args.local_devices)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        initialization_timeout=args.timeout,
    )

    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import jsgd

    mesh = Mesh(np.array(jax.devices()), ("data",))  # every process's devices
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec("data"))

    # The data: each process reads only its own rows (here: generates them).
    batch = 128 * args.num_processes
    rows = batch // args.num_processes
    rng = np.random.default_rng(args.process_id)
    x_local = rng.uniform(-1, 1, (rows, 1)).astype(np.float32)
    y_local = np.sin(3 * x_local)
    x = jax.make_array_from_process_local_data(split, x_local)
    y = jax.make_array_from_process_local_data(split, y_local)

    # The parameters: the same everywhere (same seed), replicated.
    rng = np.random.default_rng(0)
    init = {
        "w1": rng.normal(size=(1, 32)).astype(np.float32),
        "b1": np.zeros(32, np.float32),
        "w2": (rng.normal(size=(32, 1)) / np.sqrt(32)).astype(np.float32),
        "b2": np.zeros(1, np.float32),
    }
    params = {
        k: jax.make_array_from_callback(v.shape, replicated, lambda i, v=v: v[i])
        for k, v in init.items()
    }

    def loss_fn(params, x, y):
        hidden = jnp.tanh(x @ params["w1"] + params["b1"])
        return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)

    # The loss is the mean over the global batch, so its gradient is already
    # the cross-process average: no axis_name anywhere.
    opt = jsgd.sgd(0.1, momentum=0.9, nesterov=True, global_clipnorm=1.0)
    opt_state = opt.init(params)
    step = jsgd.make_train_step(loss_fn, opt)
    if args.process_id == 0:
        print(
            f"{jax.process_count()} processes, {jax.device_count()} devices, "
            f"{rows} examples per process"
        )
    steps = 50 if args.quick else args.steps
    for i in range(steps):
        params, opt_state, loss = step(params, opt_state, x, y)
        # Wait for each step: with gloo, several CPU devices per process and
        # dozens of steps in flight, jaxlib 0.10.2 can deadlock (not seen
        # with one device per process). On GPU/TPU this wait is not needed.
        loss.block_until_ready()
        if args.process_id == 0 and (i % max(1, steps // 5) == 0 or i == steps - 1):
            # Replicated: this process's copy is the global value.
            print(
                f"step {i:4d}  loss {float(loss.addressable_data(0)):.5f}", flush=True
            )
    jax.distributed.shutdown()


def launch_locally(args: argparse.Namespace) -> int:
    """Runs ``--num-processes`` copies of this script on 127.0.0.1; their status."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, os.path.abspath(__file__), *sys.argv[1:]]
    command += ["--coordinator", f"127.0.0.1:{port}"]
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    procs = []
    try:
        for i in range(args.num_processes):
            procs.append(subprocess.Popen([*command, "--process-id", str(i)], env=env))
        deadline = time.monotonic() + args.timeout + 60
        return max(p.wait(timeout=max(1, deadline - time.monotonic())) for p in procs)
    finally:  # never leave a process behind, whatever happened
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--coordinator", help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--process-id", type=int, help="this process's rank")
    parser.add_argument("--local-devices", type=int, default=2, help="CPU only")
    parser.add_argument("--timeout", type=int, default=60, help="seconds to join")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="50 steps")
    args = parser.parse_args()
    if args.process_id is None:
        sys.exit(launch_locally(args))
    if args.coordinator is None:
        parser.error("--process-id needs --coordinator")
    train(args)


if __name__ == "__main__":
    main()
