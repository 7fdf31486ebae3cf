"""Data-, model- and multi-process-parallel training with jsgd on 8 fake CPU devices.

Every parallel run trains the same problem (tests/_distributed_worker.py) as a
single-device run on the full batch and must end with the same parameters, to
float32 rounding: only the order of the gradient sums differs.
"""

import functools
import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec

import jsgd
from tests import _distributed_worker as worker

ROOT = pathlib.Path(__file__).resolve().parents[1]
N_DEVICES = 8
STEPS = 8
TOL = {"rtol": 1e-5, "atol": 1e-6}

P = PartitionSpec
# Megatron-style model parallelism: the hidden layer is split over "model",
# so no parameter, gradient or velocity ever needs gathering.
MODEL_SPECS = {
    "w1": P(None, "model"),
    "b1": P("model"),
    "w2": P("model", None),
    "b2": P(),
}


@pytest.fixture(autouse=True)
def _needs_devices():
    if jax.device_count() < N_DEVICES:
        pytest.skip("needs 8 (fake CPU) devices; see tests/conftest.py")


def mesh_2x4(axis_types=AxisType.Auto):
    return jax.make_mesh((2, 4), ("data", "model"), axis_types=(axis_types,) * 2)


def assert_trees_close(actual, expected, **tol):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), **(tol or TOL))


@functools.cache
def reference(steps=STEPS):
    """The single-device, full-batch run, with a plain jitted step (the oracle)."""
    params, x, y = worker.problem()
    opt = worker.optimizer()
    # The global-norm clip binds, so a norm taken over the wrong devices shows.
    assert float(jsgd.global_norm(jax.grad(worker.loss_fn)(params, x, y))) > 0.5

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(worker.loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    state = opt.init(params)
    for _ in range(steps):
        params, state, loss = step(params, state)
    return jax.tree.map(np.asarray, params), float(loss)


def put(tree, mesh, specs):
    return jax.device_put(tree, jax.tree.map(lambda s: NamedSharding(mesh, s), specs))


def sharded_problem(mesh, param_specs):
    params, x, y = worker.problem()
    params = put(params, mesh, param_specs)
    x, y = put((x, y), mesh, (P("data"), P("data")))
    return params, x, y


# --- make_train_step on one device ------------------------------------------------


def test_train_step_matches_the_reference_and_donates():
    params, x, y = worker.problem()
    params = jax.tree.map(jnp.asarray, params)
    opt = worker.optimizer()
    state = opt.init(params)
    step = jsgd.make_train_step(worker.loss_fn, opt)
    first = params
    for _ in range(STEPS):
        params, state, loss = step(params, state, x, y)
    expected, expected_loss = reference()
    assert_trees_close(params, expected)
    np.testing.assert_allclose(float(loss), expected_loss, **TOL)
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(first))


def test_train_step_without_donation_and_with_aux():
    params, x, y = worker.problem()
    params = jax.tree.map(jnp.asarray, params)
    opt = jsgd.SGD(0.1, momentum=0.9)  # a Keras-style class works too

    def loss_with_aux(params, x, y):
        return worker.loss_fn(params, x, y), {"n": x.shape[0]}

    step = jsgd.make_train_step(loss_with_aux, opt, has_aux=True, donate=False)
    new_params, _, (loss, aux) = step(params, opt.init(params), x, y)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(params))
    assert int(aux["n"]) == worker.BATCH
    np.testing.assert_allclose(float(loss), float(worker.loss_fn(params, x, y)))
    assert not np.allclose(new_params["w1"], params["w1"])


# --- pmap -------------------------------------------------------------------------


def per_device(tree):
    """Splits the leading (batch) axis into N_DEVICES equal slices."""
    return jax.tree.map(lambda a: a.reshape(N_DEVICES, -1, *a.shape[1:]), tree)


def replicate(tree):
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (N_DEVICES, *a.shape)), tree)


def assert_replicas_identical_and_take_one(tree):
    for leaf in jax.tree.leaves(tree):
        for replica in range(1, N_DEVICES):
            np.testing.assert_array_equal(leaf[replica], leaf[0])
    return jax.tree.map(lambda a: a[0], tree)


def test_pmap_data_parallel_matches_single_device():
    params, x, y = worker.problem()
    opt = worker.optimizer()

    # The textbook step: local gradients, pmean, then an ordinary update. The
    # gradients are replicated after pmean, so the clip takes no axis_name.
    @functools.partial(jax.pmap, axis_name="batch", donate_argnums=(0, 1))
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(worker.loss_fn)(params, x, y)
        grads, loss = jax.lax.pmean((grads, loss), "batch")
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    # The same with make_train_step's axis_name.
    library_step = jax.pmap(
        jsgd.make_train_step(worker.loss_fn, opt, axis_name="batch"),
        axis_name="batch",
        donate_argnums=(0, 1),
    )
    expected, expected_loss = reference()
    for train in (step, library_step):
        p = replicate(params)
        state = replicate(opt.init(params))
        xs, ys = per_device((x, y))
        for _ in range(STEPS):
            p, state, loss = train(p, state, xs, ys)
        p = assert_replicas_identical_and_take_one(p)
        assert_replicas_identical_and_take_one(state)
        assert_trees_close(p, expected)
        np.testing.assert_allclose(np.asarray(loss), expected_loss, **TOL)


@pytest.mark.parametrize("check_vma", [True, False])
def test_train_step_axis_name_under_shard_map(check_vma):
    # Parameters replicated over "data", the batch split over it. With
    # check_vma=True JAX sums a replicated value's gradient over the axis by
    # itself; make_train_step must still average it exactly once.
    params, x, y = worker.problem()
    opt = worker.optimizer()
    mesh = jax.make_mesh((N_DEVICES,), ("data",), axis_types=(AxisType.Auto,))
    step = jax.jit(
        jax.shard_map(
            jsgd.make_train_step(worker.loss_fn, opt, axis_name="data"),
            mesh=mesh,
            in_specs=(P(), P(), P("data"), P("data")),
            out_specs=(P(), P(), P()),
            check_vma=check_vma,
        )
    )
    state = opt.init(params)
    for _ in range(STEPS):
        params, state, loss = step(params, state, x, y)
    expected, expected_loss = reference()
    assert_trees_close(params, expected)
    np.testing.assert_allclose(float(loss), expected_loss, **TOL)


def test_axis_name_on_replicated_gradients_overcounts_the_norm():
    # After pmean every device holds the whole gradient: summing its squared
    # norm over the axis again would clip by sqrt(8) times the true norm.
    grads = {"w": jnp.full((4,), 3.0)}
    sharded = jsgd.clip_by_global_norm(1.0, axis_name="batch")
    plain = jsgd.clip_by_global_norm(1.0)

    def clip(tx, g):
        return tx.update(g, tx.init(g))[0]

    wrong = jax.pmap(functools.partial(clip, sharded), axis_name="batch")(
        replicate(grads)
    )
    right = clip(plain, grads)
    np.testing.assert_allclose(
        wrong["w"][0] * np.sqrt(N_DEVICES), right["w"], rtol=1e-6
    )


# --- jit with NamedSharding: data x model parallel ---------------------------------


def test_optimizer_state_gets_the_parameters_shardings():
    opt = worker.optimizer()
    mesh = mesh_2x4()
    params, _, _ = sharded_problem(mesh, MODEL_SPECS)
    # Eager init: every velocity leaf is created where its parameter lives.
    velocity = opt.init(params)[-1].velocity
    for name, leaf in velocity.items():
        assert leaf.sharding == params[name].sharding, name
    # A jitted init needs out_shardings on an Auto mesh (the zeros do not
    # depend on the parameters' values, so nothing propagates from them):
    # each parameter's sharding for its state, replicated step counts...
    shardings = optax.tree_map_params(
        opt,
        lambda _, sharding: sharding,
        jax.eval_shape(opt.init, params),
        jax.tree.map(lambda a: a.sharding, params),
        transform_non_params=lambda _: NamedSharding(mesh, P()),
    )
    velocity = jax.jit(opt.init, out_shardings=shardings)(params)[-1].velocity
    for name, leaf in velocity.items():
        assert leaf.sharding == params[name].sharding, name
    # ...and propagates by itself on an Explicit mesh, where shardings are
    # part of the arrays' types.
    explicit = mesh_2x4(AxisType.Explicit)
    params, _, _ = sharded_problem(explicit, MODEL_SPECS)
    with jax.set_mesh(explicit):
        velocity = jax.jit(opt.init)(params)[-1].velocity
    for name, leaf in velocity.items():
        assert leaf.sharding.is_equivalent_to(params[name].sharding, leaf.ndim), name


def test_sharded_step_gathers_nothing_and_updates_in_place():
    opt = worker.optimizer()
    mesh = mesh_2x4()
    params, x, y = sharded_problem(mesh, MODEL_SPECS)
    state = opt.init(params)
    step = jsgd.make_train_step(worker.loss_fn, opt)

    compiled = step.lower(params, state, x, y).compile()
    hlo = compiled.as_text()
    # Data parallel: the gradients are all-reduced over "data"; model parallel:
    # the hidden layer's partial sums over "model". Nothing is gathered.
    assert "all-reduce" in hlo
    assert "all-gather" not in hlo
    # The optimizer update alone, on gradients sharded like the parameters,
    # needs no collective but the global norm's scalar all-reduce.
    update = jax.jit(opt.update).lower(params, state, params).compile().as_text()
    assert "all-gather" not in update
    # Every byte of parameters and state is aliased to an output: in place.
    per_device = sum(
        leaf.addressable_shards[0].data.nbytes
        for leaf in jax.tree.leaves((params, state))
    )
    assert compiled.memory_analysis().alias_size_in_bytes == per_device
    assert "input_output_alias" in hlo

    first_params, first_state = params, state
    for _ in range(STEPS):
        params, state, loss = step(params, state, x, y)
    assert all(a.is_deleted() for a in jax.tree.leaves((first_params, first_state)))
    for name, leaf in params.items():
        assert leaf.sharding == NamedSharding(mesh, MODEL_SPECS[name]), name
        assert state[-1].velocity[name].sharding == leaf.sharding, name
    expected, expected_loss = reference()
    assert_trees_close(params, expected)
    np.testing.assert_allclose(float(loss), expected_loss, **TOL)


# --- ZeRO-1: optimizer state split along the data axis -----------------------------


@pytest.mark.parametrize(
    "mesh_shape, param_specs, b2_fraction",
    [
        # Pure data parallel: b2's 4 floats cannot be split 8 ways, so they
        # stay replicated.
        ((8,), jax.tree.map(lambda _: P(), MODEL_SPECS), 1),
        # Data x model parallel: b2 is split over the 2 data devices.
        ((2, 4), MODEL_SPECS, 1 / 2),
    ],
    ids=["data8", "data2xmodel4"],
)
def test_zero1_state_sharding_matches_unsharded_run(
    mesh_shape, param_specs, b2_fraction
):
    axes = ("data", "model")[: len(mesh_shape)]
    mesh = jax.make_mesh(mesh_shape, axes, axis_types=(AxisType.Auto,) * len(axes))
    opt = worker.optimizer()
    params, x, y = sharded_problem(mesh, param_specs)
    zero = jsgd.zero1_shardings(opt.init(params), mesh, "data")
    state = jax.device_put(opt.init(params), zero)

    # Each device holds 1/8 of every other velocity leaf.
    for name, leaf in state[-1].velocity.items():
        fraction = leaf.addressable_shards[0].data.size / leaf.size
        assert fraction == (b2_fraction if name == "b2" else 1 / N_DEVICES), name
    assert state[-1].count.sharding.is_fully_replicated

    step = jsgd.make_train_step(worker.loss_fn, opt)
    for _ in range(STEPS):
        params, state, loss = step(params, state, x, y)
    # The layouts survive the steps: parameters as given, state split.
    assert jax.tree.map(lambda a: a.sharding, state) == zero
    for name, leaf in params.items():
        assert leaf.sharding == NamedSharding(mesh, param_specs[name]), name
    expected, expected_loss = reference()
    assert_trees_close(params, expected)
    np.testing.assert_allclose(float(loss), expected_loss, **TOL)


def test_zero1_shardings_rules():
    mesh = mesh_2x4()
    tree = {
        "scalar": jnp.zeros(()),
        "odd": jnp.zeros((3, 5)),
        "second_dim": jnp.zeros((3, 4)),
        "model_split": jax.device_put(
            jnp.zeros((4, 8)), NamedSharding(mesh, P(None, "model"))
        ),
        "only_split_dim": jax.device_put(
            jnp.zeros((3, 16)), NamedSharding(mesh, P(None, "model"))
        ),
        "already": jax.ShapeDtypeStruct(
            (4,), jnp.float32, sharding=NamedSharding(mesh, P("data"))
        ),
        "abstract": jax.ShapeDtypeStruct((6,), jnp.float32),
    }
    specs = {k: s.spec for k, s in jsgd.zero1_shardings(tree, mesh).items()}
    assert specs == {
        "scalar": P(),
        "odd": P(None, None),
        "second_dim": P(None, "data"),
        "model_split": P("data", "model"),
        "only_split_dim": P(None, ("model", "data")),
        "already": P("data"),
        "abstract": P("data"),
    }
    with pytest.raises(KeyError, match="axis_name"):
        jsgd.zero1_shardings(tree, mesh, "batch")


# --- shard_map: a full training step on sharded gradients --------------------------


def test_shard_map_training_step_with_sharded_global_norm_clip():
    """Linear regression, weights split over "model", batch over "data".

    Inside shard_map each device sees only its slice of the gradient, so the
    clip must sum the squared norm over "model" (where the gradient is
    split) and not over "data" (where, after the psum, it is replicated).
    """
    rng = np.random.default_rng(1)
    params = {
        "w": rng.normal(size=(8, 16)).astype(np.float32),
        "b": rng.normal(size=(16,)).astype(np.float32),
    }
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = rng.normal(size=(32, 16)).astype(np.float32)

    def loss_fn(p, x, y):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    def make_tx(axis_name):
        return optax.chain(
            jsgd.clip_by_global_norm(1.0, axis_name=axis_name),
            jsgd.sgd(0.1, momentum=0.9, nesterov=True),
        )

    def run_unsharded():
        tx, p = make_tx(None), jax.tree.map(jnp.asarray, params)
        state = tx.init(p)
        for _ in range(STEPS):
            grads = jax.grad(loss_fn)(p, x, y)
            updates, state = tx.update(grads, state, p)
            p = optax.apply_updates(p, updates)
        return p

    def run_sharded(clip_axes, check_vma=True):
        mesh = mesh_2x4()
        tx = make_tx(clip_axes)
        param_specs = {"w": P(None, "model"), "b": P("model")}
        # The state is sharded like the parameters; counts are replicated.
        state_specs = optax.tree_map_params(
            tx,
            lambda _, spec: spec,
            tx.init(params),
            param_specs,
            transform_non_params=lambda _: P(),
        )

        def local_step(p, state, x, y):
            # This device's share of the global mean loss.
            def local_loss(p):
                sq = (x @ p["w"] + p["b"] - y) ** 2
                return jnp.sum(sq) / (y.shape[0] * 2 * y.shape[1] * 4)

            # p is the same on both "data" devices. With check_vma=True (the
            # default) shard_map knows it, and its gradient comes back
            # already summed over "data": this device's slice of the full
            # gradient (a further psum would double it). Without, the sum
            # is written by hand.
            grads = jax.grad(local_loss)(p)
            if not check_vma:
                grads = jax.lax.psum(grads, "data")
            updates, state = tx.update(grads, state, p)
            return optax.apply_updates(p, updates), state

        step = jax.jit(
            jax.shard_map(
                local_step,
                mesh=mesh,
                in_specs=(param_specs, state_specs, P("data"), P("data", "model")),
                out_specs=(param_specs, state_specs),
                check_vma=check_vma,
            )
        )
        p, state = params, tx.init(params)
        for _ in range(STEPS):
            p, state = step(p, state, x, y)
        return p

    assert float(jsgd.global_norm(jax.grad(loss_fn)(params, x, y))) > 1.0
    expected = run_unsharded()
    assert_trees_close(run_sharded("model"), expected)
    assert_trees_close(run_sharded("model", check_vma=False), expected)
    # Summing over "data" too counts each replicated slice twice. shard_map's
    # type check refuses it; unchecked, it silently clips too hard.
    with pytest.raises(ValueError, match="psum"):
        run_sharded(("data", "model"))
    wrong = run_sharded(("data", "model"), check_vma=False)
    assert not np.allclose(wrong["w"], expected["w"], rtol=1e-3)


# --- several processes, gloo collectives ------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Two Python processes starting JAX take about 20 s: the default run leaves
# this to -m oracle (and .ci/run runs examples/multi_process.py too).
@pytest.mark.oracle
def test_two_processes_train_like_one(tmp_path):
    """Two processes, 2 CPU devices each, one global 4-device data mesh."""
    out = tmp_path / "params"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "JAX_PLATFORMS": "cpu",
    }
    port = free_port()
    deadline = time.monotonic() + 50
    procs, logs = [], []
    try:
        for process_id in range(2):
            log = open(tmp_path / f"log.{process_id}", "w+")  # noqa: SIM115
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests._distributed_worker",
                        str(process_id),
                        "2",
                        str(port),
                        str(STEPS),
                        str(out),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        texts = []
        for log in logs:
            log.seek(0)
            texts.append(log.read())
            log.close()
    for process_id, (proc, text) in enumerate(zip(procs, texts, strict=True)):
        assert proc.returncode == 0, f"process {process_id} failed:\n{text[-3000:]}"
        assert f"process {process_id} step {STEPS - 1} loss" in text

    results = [dict(np.load(f"{out}.{i}.npz")) for i in range(2)]
    assert_trees_close(results[0], results[1], rtol=0, atol=0)
    expected, _ = reference()
    assert_trees_close(results[0], expected)
