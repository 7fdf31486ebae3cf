"""Benchmark: bfloat16 parameters, plain vs Kahan vs stochastic rounding vs master.

Two small real models train from the same initial parameters, on the same
minibatches in the same order, in five ways:

* ``float32``: float32 parameters, forward and backward in float32;
* ``bf16``: bfloat16 parameters, the optimizer's update added by
  ``optax.apply_updates`` in bfloat16 (round to nearest: updates below half
  an ulp are lost);
* ``bf16+kahan``: bfloat16 parameters, ``jsgd.kahan_summation(tx)`` (default
  bfloat16 compensation);
* ``bf16+sr``: bfloat16 parameters, ``jsgd.stochastic_rounding(tx, seed=0)``;
* ``bf16+master``: a float32 master copy updated in float32 and cast to the
  bfloat16 parameters after each step.

The four bfloat16 runs compute the forward and backward pass in bfloat16
(inputs and parameters bfloat16; the softmax cross-entropy in float32, as
mixed-precision training does); ``float32`` computes everything in float32.
In every run the optimizer's own buffers are float32 (``accumulator_dtype``),
so the bfloat16 runs differ only in how the new parameter is formed.

Models (data available offline, deterministic):

* ``digits``: MLP 64-256-256-10 (ReLU) on scikit-learn's bundled digits
  (1437 training images, 360 held out, stratified split), batch 64;
  Keras-rule ``jsgd.SGD`` with momentum 0.9, learning rate 0.02 with cosine
  decay to 0;
* ``charlm``: a character-level language model (embedding 32 of each of the
  32 previous characters, concatenated, MLP 1024-256-V) on the concatenated
  docstrings of jsgd's public objects (``inspect.getdoc``; the last 10% of
  the text held out), batch 64; ``jsgd.Adam`` at learning rate 1e-3 with
  cosine decay to 0.

The cosine decay is what makes the late updates small, where plain bfloat16
stops moving. ``--lr-scale`` multiplies both learning rates (to see the
settings where plain bfloat16 does fine).

Reported per model and method: the held-out loss after the last step (the
primary number; float32 for the float32 run, bfloat16 forward for the
others) and the mean training loss over the last 10% of steps, each with
its difference to the float32 run in %; the bytes of parameters plus
optimizer state per parameter, from the actual arrays; and two step times,
measured after training in interleaved rounds (each round runs every
method ``STEPS_PER_TURN`` steps, in shuffled order; medians over rounds):
the whole jitted training step (forward, backward, update, apply) and the
update-plus-apply part alone (on fixed gradients), with their ratio to
plain bfloat16. Compile time is reported apart. The update alone is also
timed on a larger tree (``--big-params``), where the step moves memory
rather than dispatches, next to a hand-fused Kahan step for reference.

Run: python benchmarks/bf16.py [--quick] [--steps N] [--lr-scale S]
[--rounds R] [--big-params N] [--plot PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsgd

METHODS = ("float32", "bf16", "bf16+kahan", "bf16+sr", "bf16+master")
STEPS_PER_TURN = 10
SR_SEED = 0
# The optimizers' buffers: float32 in every run (see the module docstring).
STATE_DTYPE = jnp.float32
# An optax GradientTransformation, or a jsgd Keras-style optimizer (which is
# one at run time, not to the type checker).
Transformation = Any


# --------------------------------------------------------------------------
# Methods: how the parameters are kept and updated


@dataclasses.dataclass(frozen=True)
class Method:
    """``init(params32) -> (params, state)``; ``update(g, state, p) -> (p, state)``.

    ``dtype``: the parameters' (and the forward pass's) dtype.
    """

    name: str
    dtype: Any
    init: Callable[[Any], tuple[Any, Any]]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]


def cast(tree: Any, dtype: Any) -> Any:
    """``tree`` in ``dtype``, always a copy (the steps donate their inputs)."""
    return jax.tree.map(lambda a: jnp.array(a, dtype, copy=True), tree)


def make_method(name: str, tx: Transformation) -> Method:
    """One of ``METHODS`` around the optimizer ``tx``."""
    if name == "bf16+master":

        def init_master(params32):
            master = cast(params32, jnp.float32)
            return cast(master, jnp.bfloat16), (master, tx.init(master))

        def update_master(grads, state, params):
            del params
            master, inner = state
            updates, inner = tx.update(cast(grads, jnp.float32), inner, master)
            master = optax.apply_updates(master, updates)
            return cast(master, jnp.bfloat16), (master, inner)

        return Method(name, jnp.bfloat16, init_master, update_master)

    if name == "float32":
        wrapped, dtype = tx, jnp.float32
    elif name == "bf16":
        wrapped, dtype = tx, jnp.bfloat16
    elif name == "bf16+kahan":
        wrapped, dtype = jsgd.kahan_summation(tx), jnp.bfloat16
    elif name == "bf16+sr":
        wrapped, dtype = jsgd.stochastic_rounding(tx, seed=SR_SEED), jnp.bfloat16
    else:
        raise ValueError(f"unknown method {name!r}; one of {METHODS}")

    def init(params32):
        params = cast(params32, dtype)
        return params, wrapped.init(params)

    def update(grads, state, params):
        updates, state = wrapped.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return Method(name, dtype, init, update)


def fused_kahan_method(tx: Transformation) -> Method:
    """A reference (not jsgd): Kahan summation written into the step by hand.

    It sets the new parameter directly (no update through ``apply_updates``),
    so it skips the rounding of the update and the recomputation of where
    ``apply_updates`` lands that ``jsgd.kahan_summation`` does. Only timed.
    """

    def init(params32):
        params = cast(params32, jnp.bfloat16)
        comp = jax.tree.map(jnp.zeros_like, params)
        return params, (comp, tx.init(params))

    def leaf(p, u, c):
        y = u.astype(jnp.float32) - c.astype(jnp.float32)
        p32 = p.astype(jnp.float32)
        new = jax.lax.reduce_precision(p32 + y, exponent_bits=8, mantissa_bits=7)
        return new.astype(p.dtype), ((new - p32) - y).astype(c.dtype)

    def update(grads, state, params):
        comp, inner = state
        updates, inner = tx.update(grads, inner, params)
        pairs = jax.tree.map(leaf, params, updates, comp)
        new_params = jax.tree.map(lambda _, t: t[0], params, pairs)
        new_comp = jax.tree.map(lambda _, t: t[1], params, pairs)
        return new_params, (new_comp, inner)

    return Method("kahan, fused by hand (reference)", jnp.bfloat16, init, update)


def n_params(params: Any) -> int:
    return sum(int(np.size(a)) for a in jax.tree.leaves(params))


def bytes_per_param(params: Any, state: Any) -> float:
    """Sum of ``nbytes`` of every parameter and state array / parameter count."""
    total = sum(int(a.nbytes) for a in jax.tree.leaves((params, state)))
    return total / n_params(params)


def analytic_bytes_per_param(
    method: str, n: int, state_per_param: int, state_fixed: int
) -> float:
    """The bytes per parameter that ``docs/bf16.md``'s table promises.

    For an optimizer whose own state is ``state_per_param`` bytes per
    parameter plus ``state_fixed`` bytes (its counters), on ``n`` parameters.
    """
    param = {"float32": 4, "bf16": 2, "bf16+kahan": 2 + 2, "bf16+sr": 2}
    param["bf16+master"] = 2 + 4
    fixed = state_fixed + (8 if method == "bf16+sr" else 0)  # the PRNG key
    return param[method] + state_per_param + fixed / n


# --------------------------------------------------------------------------
# Models and data


@dataclasses.dataclass
class Task:
    """A model, its data and its optimizer.

    ``loss(params, x, y)`` runs in the parameters' dtype (the inputs are cast
    to it; the cross-entropy in float32). ``batches``: one ``(x, y)`` per
    step; ``heldout``: one fixed ``(x, y)``.
    """

    name: str
    params32: dict[str, jax.Array]
    loss: Callable[..., jax.Array]
    batches: list[tuple[jax.Array, jax.Array]]
    heldout: tuple[jax.Array, jax.Array]
    make_tx: Callable[[], Transformation]
    describe: str
    # Bytes of the optimizer's own state: per parameter, and fixed (counters).
    state_per_param: int
    state_fixed: int

    def __post_init__(self) -> None:
        # Shared by the methods (one compile per dtype).
        self.grad = jax.jit(jax.grad(self.loss))
        self.evaluate = jax.jit(self.loss)


def _cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    logits = logits.astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _dense_init(key: jax.Array, n_in: int, n_out: int, gain: float = 2.0):
    w = jax.random.normal(key, (n_in, n_out)) * np.sqrt(gain / n_in)
    return w.astype(jnp.float32), jnp.zeros(n_out, jnp.float32)


def mlp_loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array):
    dtype = params["w1"].dtype
    h = jax.nn.relu(x.astype(dtype) @ params["w1"] + params["b1"])
    h = jax.nn.relu(h @ params["w2"] + params["b2"])
    return _cross_entropy(h @ params["w3"] + params["b3"], y)


def digits_task(
    steps: int, lr: float = 0.02, hidden: int = 256, batch: int = 64, seed: int = 0
) -> Task:
    """The MLP on scikit-learn's digits, SGD with momentum, cosine decay."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        (x / 16.0).astype(np.float32),
        y.astype(np.int32),
        test_size=0.2,
        random_state=0,
        stratify=y,
    )
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch // len(x_train))
    order = np.concatenate([rng.permutation(len(x_train)) for _ in range(epochs)])
    index = order[: steps * batch].reshape(steps, batch)
    batches = [(jnp.asarray(x_train[i]), jnp.asarray(y_train[i])) for i in index]
    keys = jax.random.split(jax.random.key(seed), 3)
    params = {}
    sizes = (64, hidden, hidden, 10)
    for i, (k, n_in, n_out) in enumerate(
        zip(keys, sizes[:-1], sizes[1:], strict=True), start=1
    ):
        gain = 1.0 if i == len(sizes) - 1 else 2.0
        params[f"w{i}"], params[f"b{i}"] = _dense_init(k, n_in, n_out, gain)

    def make_tx():
        schedule = jsgd.schedules.CosineDecay(lr, decay_steps=steps)
        return jsgd.SGD(schedule, momentum=0.9, accumulator_dtype=STATE_DTYPE)

    return Task(
        "digits",
        params,
        mlp_loss,
        batches,
        (jnp.asarray(x_test), jnp.asarray(y_test)),
        make_tx,
        f"MLP 64-{hidden}-{hidden}-10 on digits ({len(x_train)} train / "
        f"{len(x_test)} held out), batch {batch}, {steps} steps; jsgd.SGD "
        f"momentum 0.9, lr {lr:g} cosine-decayed to 0",
        state_per_param=4,  # the float32 velocity
        state_fixed=8,  # int32 counts: MomentumState, ScheduleState
    )


def jsgd_text() -> str:
    """The docstrings of jsgd's public objects, concatenated (ships with jsgd)."""
    docs = [inspect.getdoc(getattr(jsgd, name)) for name in sorted(jsgd.__all__)]
    return "\n\n".join(d for d in docs if d)


def charlm_loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array):
    emb = params["embed"][x]  # [B, context, E]
    h = emb.reshape(emb.shape[0], -1)
    h = jax.nn.relu(h @ params["w1"] + params["b1"])
    return _cross_entropy(h @ params["w2"] + params["b2"], y)


def charlm_task(
    steps: int,
    lr: float = 1e-3,
    context: int = 32,
    embed: int = 32,
    hidden: int = 256,
    batch: int = 64,
    heldout: int = 2048,
    seed: int = 0,
) -> Task:
    """Next-character prediction on jsgd's docstrings, Adam, cosine decay."""
    text = jsgd_text()
    vocab = sorted(set(text))
    codes = np.array([vocab.index(c) for c in text], np.int32)
    split = int(len(codes) * 0.9)
    train, test = codes[:split], codes[split:]

    def windows(data: np.ndarray, starts: np.ndarray):
        x = data[starts[:, None] + np.arange(context)]
        return jnp.asarray(x), jnp.asarray(data[starts + context])

    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(train) - context, size=(steps, batch))
    batches = [windows(train, s) for s in starts]
    test_starts = np.linspace(0, len(test) - context - 1, heldout).astype(np.int64)
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = {"embed": jax.random.normal(k1, (len(vocab), embed)) * 0.5}
    params["w1"], params["b1"] = _dense_init(k2, context * embed, hidden)
    params["w2"], params["b2"] = _dense_init(k3, hidden, len(vocab), 1.0)

    def make_tx():
        schedule = jsgd.schedules.CosineDecay(lr, decay_steps=steps)
        return jsgd.Adam(schedule, accumulator_dtype=STATE_DTYPE)

    return Task(
        "charlm",
        params,
        charlm_loss,
        batches,
        windows(test, test_starts),
        make_tx,
        f"char LM on jsgd's docstrings ({len(text)} chars, {len(vocab)} symbols, "
        f"last 10% held out, {heldout} held-out windows): embedding {embed} x "
        f"{context} previous chars -> MLP {context * embed}-{hidden}-{len(vocab)}, "
        f"batch {batch}, {steps} steps; jsgd.Adam lr {lr:g} cosine-decayed to 0",
        state_per_param=8,  # float32 first and second moments
        state_fixed=8,  # int32 counts: AdamState, ScheduleState
    )


# --------------------------------------------------------------------------
# Training and timing


def make_steps(task: Task, method: Method):
    """``(train_step, update_step)``, jitted, parameters and state donated."""

    def train_step(params, state, x, y):
        loss, grads = jax.value_and_grad(task.loss)(params, x, y)
        params, state = method.update(grads, state, params)
        return params, state, loss

    def update_step(params, state, grads):
        return method.update(grads, state, params)

    train = jax.jit(train_step, donate_argnums=(0, 1))
    return train, jax.jit(update_step, donate_argnums=(0, 1))


@dataclasses.dataclass
class Run:
    """One method's training run on one task."""

    method: str
    losses: np.ndarray  # training loss per step
    eval_steps: list[int]
    eval_losses: list[float]
    params: Any
    state: Any
    bytes_per_param: float
    compile_s: float
    train: Callable[..., Any]
    update: Callable[..., Any]


def train(
    task: Task, name: str, eval_every: int = 100, compile_update: bool = True
) -> Run:
    """Trains ``task`` with method ``name`` over all of ``task.batches``.

    ``compile_update=False`` leaves the update step uncompiled (``jit``
    compiles it if it is called), for the tests.
    """
    method = make_method(name, task.make_tx())
    train_step, update_step = make_steps(task, method)
    params, state = method.init(task.params32)
    x0, y0 = task.batches[0]
    start = time.perf_counter()
    train_c = train_step.lower(params, state, x0, y0).compile()
    update_c = update_step
    if compile_update:
        grads = jax.eval_shape(task.grad, params, x0, y0)
        update_c = update_step.lower(params, state, grads).compile()
    compile_s = time.perf_counter() - start
    size = bytes_per_param(params, state)
    losses, eval_steps, eval_losses = [], [], []
    steps = len(task.batches)
    for t, (x, y) in enumerate(task.batches):
        if t % eval_every == 0:
            eval_steps.append(t)
            eval_losses.append(float(task.evaluate(params, *task.heldout)))
        params, state, loss = train_c(params, state, x, y)
        losses.append(loss)
    eval_steps.append(steps)
    eval_losses.append(float(task.evaluate(params, *task.heldout)))
    return Run(
        name,
        np.asarray(jnp.stack(losses), np.float64),
        eval_steps,
        eval_losses,
        params,
        state,
        size,
        compile_s,
        train_c,
        update_c,
    )


def _copy(tree: Any) -> Any:
    return jax.tree.map(jnp.copy, tree)


def time_steps(task: Task, runs: dict[str, Run], rounds: int) -> dict[str, dict]:
    """Median seconds per step of each run's train step and update step.

    Starts from copies of each run's final parameters and state; the update
    step's gradients are each run's gradients at the first batch. Interleaved
    rounds in shuffled (seeded) order, ``STEPS_PER_TURN`` steps per turn.
    """
    x, y = task.batches[0]
    live = {}
    for name, run in runs.items():
        params, state = _copy(run.params), _copy(run.state)
        grads = task.grad(params, x, y)
        live[name] = [params, state, grads]

    def turn(name: str, kind: str) -> float:
        run, cell = runs[name], live[name]
        start = time.perf_counter()
        for _ in range(STEPS_PER_TURN):
            if kind == "train":
                cell[0], cell[1], _ = run.train(cell[0], cell[1], x, y)
            else:
                cell[0], cell[1] = run.update(cell[0], cell[1], cell[2])
        jax.block_until_ready(cell[:2])
        return (time.perf_counter() - start) / STEPS_PER_TURN

    samples = {(n, k): [] for n in runs for k in ("train", "update")}
    order = list(samples)
    rng = random.Random(0)
    for name, kind in order:  # warm-up turn, untimed
        turn(name, kind)
    for _ in range(rounds):
        rng.shuffle(order)
        for name, kind in order:
            samples[name, kind].append(turn(name, kind))
    return {
        n: {k: statistics.median(samples[n, k]) for k in ("train", "update")}
        for n in runs
    }


def time_big_update(n: int, rounds: int, leaves: int = 4) -> dict[str, float]:
    """Median seconds of the update-plus-apply step alone on ``n`` parameters.

    ``leaves`` equal float32-initialized leaves, N(0, 1) parameters, N(0, 1e-3)
    gradients; SGD with momentum 0.9 (float32 velocity), lr 0.01; the
    methods and the hand-fused Kahan reference (:func:`fused_kahan_method`).
    """
    shape = (leaves, max(n // leaves, 1))
    key_p, key_g = jax.random.split(jax.random.key(1))
    p32 = jax.random.normal(key_p, shape)
    g32 = jax.random.normal(key_g, shape) * 1e-3
    params32 = {f"w{i}": p32[i] for i in range(leaves)}
    grads32 = {f"w{i}": g32[i] for i in range(leaves)}
    live, steps = {}, {}
    for name in (*METHODS, "fused"):
        tx = jsgd.SGD(0.01, momentum=0.9, accumulator_dtype=STATE_DTYPE)
        method = fused_kahan_method(tx) if name == "fused" else make_method(name, tx)
        name = method.name
        params, state = method.init(params32)
        grads = cast(grads32, method.dtype)
        steps[name] = jax.jit(
            lambda p, s, g, m=method: m.update(g, s, p), donate_argnums=(0, 1)
        )
        live[name] = [params, state, grads]

    def turn(name: str) -> float:
        cell = live[name]
        start = time.perf_counter()
        for _ in range(STEPS_PER_TURN):
            cell[0], cell[1] = steps[name](cell[0], cell[1], cell[2])
        jax.block_until_ready(cell[:2])
        return (time.perf_counter() - start) / STEPS_PER_TURN

    order = list(live)
    for name in order:
        turn(name)  # compile and warm up
    samples = {name: [] for name in order}
    rng = random.Random(1)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            samples[name].append(turn(name))
    return {name: statistics.median(s) for name, s in samples.items()}


# --------------------------------------------------------------------------
# Report


def tail_mean(losses: np.ndarray, fraction: float = 0.1) -> float:
    k = max(int(len(losses) * fraction), 1)
    return float(np.mean(losses[-k:]))


def pct(value: float, reference: float) -> str:
    return f"{100 * (value - reference) / reference:+.2f}%"


def table(task: Task, runs: dict[str, Run], times: dict[str, dict]) -> str:
    ref = runs["float32"]
    ref_eval, ref_train = ref.eval_losses[-1], tail_mean(ref.losses)
    plain = times["bf16"]
    n = n_params(task.params32)
    lines = [
        "| method | held-out loss | vs float32 | train loss (last 10%) | vs float32 "
        "| bytes/param | (promised) | train step (ms) | vs bf16 "
        "| update+apply (ms) | vs bf16 | compile (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in runs.items():
        final, tail = run.eval_losses[-1], tail_mean(run.losses)
        promised = analytic_bytes_per_param(
            name, n, task.state_per_param, task.state_fixed
        )
        t = times[name]
        lines.append(
            f"| {name} | {final:.4f} | {pct(final, ref_eval)} | {tail:.4f} "
            f"| {pct(tail, ref_train)} | {run.bytes_per_param:.4f} "
            f"| {promised:.4f} | {1e3 * t['train']:.3f} "
            f"| {t['train'] / plain['train']:.2f}x | {1e3 * t['update']:.3f} "
            f"| {t['update'] / plain['update']:.2f}x | {run.compile_s:.2f} |"
        )
    return "\n".join(lines)


def frozen_fraction(task: Task, runs: dict[str, Run]) -> str:
    """Share of parameters equal to their initial value after training."""
    parts = []
    for name, run in runs.items():
        init = cast(task.params32, run.params[next(iter(run.params))].dtype)
        same = sum(
            int(jnp.sum(a == b))
            for a, b in zip(
                jax.tree.leaves(run.params), jax.tree.leaves(init), strict=True
            )
        )
        parts.append(f"{name} {100 * same / n_params(run.params):.1f}%")
    return ", ".join(parts)


def plot(results: list[tuple[Task, dict[str, Run]]], path: str) -> bool:
    """Held-out loss curves, one panel per model; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2))
    for ax, (task, runs) in zip(np.atleast_1d(axes), results, strict=True):
        for name, run in runs.items():
            style = "--" if name in ("float32", "bf16+master") else "-"
            ax.plot(run.eval_steps, run.eval_losses, style, label=name)
        ax.set_yscale("log")
        ax.set_title(task.name)
        ax.set_xlabel("step")
        ax.set_ylabel("held-out loss")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="100 steps, 3 rounds, no plot"
    )
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr-scale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=30, help="timing rounds")
    parser.add_argument(
        "--big-params", type=int, default=4_000_000, help="0: not timed"
    )
    parser.add_argument(
        "--plot",
        default=None,
        help="where to save the loss curves ('' for none; default "
        "docs/images/bf16_loss.png, none with --quick)",
    )
    args = parser.parse_args()
    if args.quick:
        steps, rounds, big = 100, 3, 100_000
    else:
        steps, rounds, big = args.steps, args.rounds, args.big_params
    if args.plot is None:
        args.plot = "" if args.quick else "docs/images/bf16_loss.png"
    print(
        f"jax {jax.__version__}, optax {optax.__version__} on "
        f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores; "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    tasks = [
        digits_task(steps, lr=0.02 * args.lr_scale),
        charlm_task(steps, lr=1e-3 * args.lr_scale),
    ]
    results = []
    eval_every = max(steps // 40, 1)
    for task in tasks:
        start = time.perf_counter()
        runs = {name: train(task, name, eval_every) for name in METHODS}
        train_s = time.perf_counter() - start
        times = time_steps(task, runs, rounds)
        print(f"## {task.name}: {task.describe}")
        print(f"({n_params(task.params32):,} parameters; training {train_s:.0f} s)\n")
        print(table(task, runs, times))
        print(
            f"\nparameters still at their initial value: {frozen_fraction(task, runs)}"
        )
        print(f"load average {os.getloadavg()[0]:.2f}\n")
        results.append((task, runs))
    if big > 0:
        big_times = time_big_update(big, max(rounds // 3, 3))
        print(
            f"## update+apply alone on {big:,} parameters (4 leaves; SGD "
            "momentum 0.9, float32 velocity), median ms\n"
        )
        print("| method | update+apply (ms) | vs bf16 |\n|---|---:|---:|")
        for name, seconds in big_times.items():
            ratio = seconds / big_times["bf16"]
            print(f"| {name} | {1e3 * seconds:.3f} | {ratio:.2f}x |")
        print(f"\nload average {os.getloadavg()[0]:.2f}")
    if args.plot:
        if plot(results, args.plot):
            print(f"plot: {args.plot}")
        else:
            print("matplotlib not installed: no plot")


if __name__ == "__main__":
    main()
