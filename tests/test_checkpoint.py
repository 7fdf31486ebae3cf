"""Optimizer states survive an orbax checkpoint and a restart, bit for bit.

The test process trains a small model for ``K`` jitted steps, saves
``{"params", "opt_state"}`` with ``orbax.checkpoint.StandardCheckpointer``
and goes on for ``M`` more steps: the uninterrupted reference. One child
process (this file run as a script, JAX on CPU) rebuilds each optimizer from
``json.dumps(opt.get_config())`` with ``from_config``, restores the
checkpoint against ``jax.eval_shape(opt.init, params)`` (so the NamedTuples
and tuples of the state come back as they were), checks that the jitted step
traced on a fresh state is not traced again for the restored one, runs the
``M`` steps and writes its final parameters and state back. They must equal
the reference exactly.

A checkpoint restored *without* a target comes back as plain dicts and lists
(``optax.EmptyState`` as ``None``); ``update`` must then raise a TypeError
that says the state does not fit (or work identically).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd

ocp = pytest.importorskip("orbax.checkpoint")

K = 5  # steps before the checkpoint (odd: it falls mid gradient accumulation)
M = 4  # steps after it
CHILD_TIMEOUT_S = 180


def _optimizers():
    return {
        "sgd_nesterov_schedule": jsgd.SGD(
            jsgd.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5),
            momentum=0.9,
            nesterov=True,
        ),
        "adam_amsgrad_ema_accumulation": jsgd.Adam(
            3e-2,
            amsgrad=True,
            use_ema=True,
            ema_overwrite_frequency=3,
            gradient_accumulation_steps=2,
        ),
        "rmsprop_centered_momentum": jsgd.RMSprop(1e-2, centered=True, momentum=0.9),
    }


CASES = list(_optimizers())


def _data():
    """Deterministic synthetic batches, one per step: ``(x[i], y[i])``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(K + M, 16, 4)).astype(np.float32)
    w_true = rng.normal(size=(4, 1)).astype(np.float32)
    return x, np.sin(x @ w_true).astype(np.float32)


def _init_params():
    rng = np.random.default_rng(1)
    return {
        "hidden": {
            "w": jnp.asarray(rng.normal(size=(4, 8)).astype(np.float32) * 0.5),
            "b": jnp.zeros(8, jnp.float32),
        },
        "out": {
            "w": jnp.asarray(rng.normal(size=(8, 1)).astype(np.float32) * 0.5),
            "b": jnp.zeros(1, jnp.float32),
        },
    }


def _make_step(opt):
    """A jitted training step and a list whose item counts its traces."""
    traces = [0]

    @jax.jit
    def step(params, state, x, y):
        traces[0] += 1  # runs only while tracing

        def loss_fn(p):
            h = jnp.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"])
            return jnp.mean((h @ p["out"]["w"] + p["out"]["b"] - y) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step, traces


def _named_leaves(tree):
    return {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def _save(path, tree):
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, tree)
        checkpointer.wait_until_finished()


def _restore(path, target=None):
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(path, target)


# --- the child process ----------------------------------------------------------


def _child_main(manifest_path):
    """Restores each checkpoint, resumes training and writes the results."""
    jax.config.update("jax_platforms", "cpu")
    manifest = json.loads(pathlib.Path(manifest_path).read_text())
    k, m = manifest["k"], manifest["m"]
    out = pathlib.Path(manifest["out"])
    x, y = _data()
    report = {}
    for case in manifest["cases"]:
        opt = getattr(jsgd, case["class"]).from_config(json.loads(case["config"]))
        params = _init_params()
        step, traces = _make_step(opt)
        step(params, opt.init(params), x[0], y[0])  # compiles on a fresh state
        traces_fresh = traces[0]

        target = {
            "params": jax.eval_shape(lambda p: p, params),
            "opt_state": jax.eval_shape(opt.init, params),
        }
        restored = _restore(case["checkpoint"], target)
        structure_matches = jax.tree.structure(restored) == jax.tree.structure(target)
        params, state = restored["params"], restored["opt_state"]
        for i in range(k, k + m):
            params, state, _ = step(params, state, x[i], y[i])
        np.savez(out / f"{case['id']}_params.npz", **_named_leaves(params))
        np.savez(out / f"{case['id']}_state.npz", **_named_leaves(state))
        report[case["id"]] = {
            "traces_after_fresh_state": traces_fresh,
            "traces_after_restored_state": traces[0],
            "structure_matches": structure_matches,
            "state_structure": str(jax.tree.structure(state)),
            "platform": jax.devices()[0].platform,
        }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    for case_id, entry in report.items():
        assert entry["structure_matches"], (case_id, entry)
        assert entry["traces_after_fresh_state"] == 1, (case_id, entry)
        assert entry["traces_after_restored_state"] == 1, (case_id, entry)


# --- the test process -------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Reference runs, checkpoints after ``K`` steps, and one child's results."""
    workdir = tmp_path_factory.mktemp("checkpoint")
    x, y = _data()
    references, cases = {}, []
    with jax.default_device(jax.devices("cpu")[0]):
        for case_id, opt in _optimizers().items():
            step, traces = _make_step(opt)
            params = _init_params()
            state = opt.init(params)
            for i in range(K):
                params, state, _ = step(params, state, x[i], y[i])
            checkpoint = workdir / case_id
            _save(checkpoint, {"params": params, "opt_state": state})
            for i in range(K, K + M):
                params, state, _ = step(params, state, x[i], y[i])
            assert traces[0] == 1
            references[case_id] = (params, state)
            cases.append(
                {
                    "id": case_id,
                    "class": type(opt).__name__,
                    "config": json.dumps(opt.get_config()),
                    "checkpoint": str(checkpoint),
                }
            )
    manifest = workdir / "manifest.json"
    manifest.write_text(
        json.dumps({"k": K, "m": M, "out": str(workdir), "cases": cases})
    )

    env = dict(os.environ, JAX_PLATFORMS="cpu")
    package_root = str(pathlib.Path(jsgd.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, env.get("PYTHONPATH")) if p
    )
    child = subprocess.run(
        [sys.executable, __file__, str(manifest)],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    return {"workdir": workdir, "references": references, "child": child}


@pytest.mark.parametrize("case_id", CASES)
def test_config_survives_json(case_id):
    opt = _optimizers()[case_id]
    rebuilt = type(opt).from_config(json.loads(json.dumps(opt.get_config())))
    assert rebuilt == opt


@pytest.mark.parametrize("case_id", CASES)
def test_resume_in_fresh_process_is_bit_identical(run, case_id):
    child = run["child"]
    assert child.returncode == 0, (
        f"child failed ({child.returncode}):\n{child.stdout[-3000:]}\n"
        f"{child.stderr[-6000:]}"
    )
    report = json.loads((run["workdir"] / "report.json").read_text())[case_id]
    assert report["platform"] == "cpu"
    assert report["structure_matches"]
    # Traced once on a fresh state, never again for the restored one.
    assert report["traces_after_fresh_state"] == 1
    assert report["traces_after_restored_state"] == 1

    params, state = run["references"][case_id]
    assert report["state_structure"] == str(jax.tree.structure(state))
    for name, reference in (("params", params), ("state", state)):
        expected = _named_leaves(reference)
        with np.load(run["workdir"] / f"{case_id}_{name}.npz") as got:
            assert sorted(got.files) == sorted(expected)
            for key, value in expected.items():
                assert got[key].dtype == value.dtype, (name, key)
                np.testing.assert_array_equal(got[key], value, err_msg=f"{name}{key}")


@pytest.mark.parametrize("case_id", CASES)
def test_restore_without_target_is_rejected_clearly(run, case_id):
    opt = _optimizers()[case_id]
    checkpoint = run["workdir"] / case_id
    plain = _restore(checkpoint)["opt_state"]
    typed = _restore(
        checkpoint,
        {
            "params": jax.eval_shape(_init_params),
            "opt_state": jax.eval_shape(opt.init, _init_params()),
        },
    )
    params, state = typed["params"], typed["opt_state"]

    # Without a target orbax gives dicts and lists, no NamedTuple survives.
    def is_namedtuple(node):
        return isinstance(node, tuple) and hasattr(node, "_fields")

    nodes = jax.tree.leaves(
        plain, is_leaf=lambda n: is_namedtuple(n) or isinstance(n, tuple)
    )
    assert not any(isinstance(n, tuple) for n in nodes)
    assert isinstance(plain, (dict, list))

    grads = jax.tree.map(jnp.ones_like, params)
    step, _ = _make_step(opt)
    x, y = _data()
    for update in (
        lambda s: opt.update(grads, s, params),
        lambda s: step(params, s, x[K], y[K])[:2],
    ):
        try:
            got = update(plain)
        except TypeError as error:
            assert "state" in str(error), str(error)
        else:  # accepted: then it must be exactly the typed state's result
            want = update(state)
            jax.tree.map(np.testing.assert_array_equal, got[0], want[0])


if __name__ == "__main__":
    _child_main(sys.argv[1])
