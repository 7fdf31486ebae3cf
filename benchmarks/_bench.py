"""Optimizer-step benchmark: configurations, implementations, gate, timing.

Importable (``tests/test_benchmarks.py`` runs the correctness gate and the
trace count on a tiny tree); ``benchmarks/run.py`` is the entry point.

Implementations of one configuration, all with the same math (optax's and
torch's rule, the learning rate outside the velocity):

* ``jsgd``: jsgd's transforms, update and apply in one ``jax.jit`` with the
  parameters and the optimizer state donated; the gradients are fixed,
  non-donated arguments.
* ``optax``: ``optax.sgd`` (and ``optax.chain`` for clipping / weight decay),
  the same jit and donation.
* ``jsgd-fused``: ``jsgd.apply_gradients`` (the native kernel where it covers
  the configuration), the same jit and donation; ``jsgd-packed`` the same on
  ``jsgd.pack`` of the trees (one buffer per dtype, packed outside the step).
* ``torch-foreach`` / ``torch-fused``: ``torch.optim.SGD`` with
  ``foreach=True`` / ``fused=True`` (clipping with
  ``torch.nn.utils.clip_grad_norm_(foreach=True)`` before the step); absent
  for configurations torch cannot express (a bfloat16 velocity).
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _trees import random_leaves, size

import jsgd

try:  # torch is optional: the benchmark and its test run without it.
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

JAX_IMPLS = ("jsgd", "optax", "jsgd-fused", "jsgd-packed")
# jsgd.apply_gradients on the tree, and on the tree packed by jsgd.pack (the
# parameters, state and gradients kept as one buffer, as a model of many
# small leaves would keep them across steps).
FUSED_IMPLS = ("jsgd-fused", "jsgd-packed")
TORCH_IMPLS = ("torch-foreach", "torch-fused")

# Hyperparameters of the timed step (constants, as most training loops use).
LEARNING_RATE = 0.01
MOMENTUM = 0.9
CLIP = 1.0
WEIGHT_DECAY = 1e-4

# The correctness gate's three steps: the learning rate changes every step,
# and so does the momentum of the momentum configurations.
GATE_LEARNING_RATES = (0.1, 0.05, 0.02)
GATE_MOMENTA = (0.9, 0.8, 0.95)


@dataclasses.dataclass(frozen=True)
class Config:
    """One optimizer configuration.

    ``bytes_per_param``: the bytes a perfectly fused step must move per float32
    parameter: read params, grads (and velocity), write params (and velocity).
    """

    name: str
    momentum: bool
    bytes_per_param: int
    nesterov: bool = False
    clip: float | None = None
    weight_decay: float | None = None
    bf16_velocity: bool = False
    torch_ok: bool = True
    description: str = ""


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("sgd", False, 12, description="no momentum: read p, g; write p"),
        Config("momentum", True, 20, description="read p, g, v; write p, v"),
        Config("nesterov", True, 20, nesterov=True, description="as momentum"),
        Config(
            "momentum+clip",
            True,
            24,
            clip=CLIP,
            description="global-norm clip: one more read of g",
        ),
        Config(
            "momentum+wd",
            True,
            20,
            weight_decay=WEIGHT_DECAY,
            description="coupled (torch-style) weight decay: p is read anyway",
        ),
        Config(
            "momentum-bf16",
            True,
            16,
            bf16_velocity=True,
            torch_ok=False,
            description="bfloat16 velocity: v is 2 bytes",
        ),
    )
}


def impls_for(config: Config, with_torch: bool = True) -> tuple[str, ...]:
    """The implementations that can run ``config``."""
    torch_impls = TORCH_IMPLS if (with_torch and torch and config.torch_ok) else ()
    return JAX_IMPLS + torch_impls


# --------------------------------------------------------------------------
# JAX transforms


def apply_updates_for(impl: str) -> Callable[[Any, Any], Any]:
    """The ``apply_updates`` of each: jsgd's (when it has one) or optax's."""
    if impl == "jsgd":
        return getattr(jsgd, "apply_updates", optax.apply_updates)
    return optax.apply_updates


def jax_factory(impl: str, config: Config) -> Callable[..., Any]:
    """``factory(learning_rate, momentum) -> GradientTransformation``.

    ``momentum`` is ignored by the configuration without momentum. The
    factory can be wrapped in ``optax.inject_hyperparams``.
    """
    accumulator = jnp.bfloat16 if config.bf16_velocity else None

    if impl in FUSED_IMPLS:  # the same steps, in the forms the kernel covers

        def factory(learning_rate, momentum):
            m = momentum if config.momentum else 0.0
            if config.weight_decay is not None:  # torch's coupled weight decay
                return jsgd.torch.SGD(
                    learning_rate,
                    momentum=m,
                    weight_decay=config.weight_decay,
                    nesterov=config.nesterov,
                )
            return jsgd.sgd(
                learning_rate,
                m,
                config.nesterov,
                global_clipnorm=config.clip,
                lr_in_velocity=False,
                accumulator_dtype=accumulator,
            )

    elif impl == "jsgd":

        def factory(learning_rate, momentum):
            core = jsgd.sgd(
                learning_rate,
                momentum if config.momentum else 0.0,
                config.nesterov,
                lr_in_velocity=False,
                accumulator_dtype=accumulator,
            )
            if config.clip is not None:
                return optax.chain(jsgd.clip_by_global_norm(config.clip), core)
            if config.weight_decay is not None:
                return optax.chain(jsgd.add_decayed_weights(config.weight_decay), core)
            return core

    elif impl == "optax":

        def factory(learning_rate, momentum):
            core = optax.sgd(
                learning_rate,
                momentum if config.momentum else None,
                nesterov=config.nesterov,
                accumulator_dtype=accumulator,
            )
            if config.clip is not None:
                return optax.chain(optax.clip_by_global_norm(config.clip), core)
            if config.weight_decay is not None:
                return optax.chain(optax.add_decayed_weights(config.weight_decay), core)
            return core

    else:
        raise ValueError(f"not a JAX implementation: {impl}")
    return factory


def make_jax_step(
    tx: optax.GradientTransformation,
    counter: list[int] | None = None,
    apply: Callable[[Any, Any], Any] = optax.apply_updates,
    fused: bool = False,
) -> Callable[..., Any]:
    """``jit(step, donate_argnums=(0, 1))``; ``counter[0]`` counts traces.

    With ``fused``, the step is ``jsgd.apply_gradients`` (one native kernel
    where it covers the configuration, ``update`` + apply elsewhere).
    """

    def step(params, state, grads):
        if counter is not None:
            counter[0] += 1
        if fused:
            return jsgd.apply_gradients(tx, grads, state, params)
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def _to_jax(leaves: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    # np.array(copy) first: a donated buffer must be one JAX owns alone.
    return {k: jnp.asarray(np.array(v, copy=True)) for k, v in leaves.items()}


# --------------------------------------------------------------------------
# torch


def _torch_optimizer(impl: str, config: Config, params: list[Any], lr: float, m):
    kind = {"torch-foreach": {"foreach": True}, "torch-fused": {"fused": True}}[impl]
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=m if config.momentum else 0.0,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay or 0.0,
        **kind,
    )


def _to_torch(leaves: dict[str, np.ndarray]) -> list[Any]:
    return [torch.from_numpy(np.array(v, copy=True)) for v in leaves.values()]


# --------------------------------------------------------------------------
# The correctness gate and the trace count


@dataclasses.dataclass
class GateResult:
    config: str
    impls: tuple[str, ...]
    max_rel_diff: dict[str, float]  # vs jsgd, over all leaves
    traces: dict[str, int]  # JAX implementations, over the three steps
    rtol: float
    atol: float
    ok: bool


def gate_tolerance(config: Config) -> tuple[float, float]:
    """(rtol, atol) on the parameters after the gate's steps."""
    if config.bf16_velocity:
        # optax outputs the float32 trace and stores it rounded; jsgd outputs
        # the rounded velocity (rounded once, where it is stored).
        return 1e-2, 2e-3
    return 1e-5, 1e-6


def run_jax_gate(
    impl: str, config: Config, params: dict[str, np.ndarray], grads: dict[str, Any]
) -> tuple[dict[str, np.ndarray], int]:
    """Three jitted, donated steps under ``optax.inject_hyperparams``.

    The learning rate (and the momentum) change between steps by writing the
    state's ``hyperparams``; returns the parameters and the number of traces.
    """
    if impl in FUSED_IMPLS:
        return run_fused_gate(config, params, grads, packed=impl == "jsgd-packed")
    counter = [0]
    tx = optax.inject_hyperparams(jax_factory(impl, config))(
        learning_rate=GATE_LEARNING_RATES[0], momentum=GATE_MOMENTA[0]
    )
    p = _to_jax(params)
    g = {k: jnp.asarray(v) for k, v in grads.items()}
    state = tx.init(p)
    step = make_jax_step(tx, counter, apply_updates_for(impl))
    for lr, m in zip(GATE_LEARNING_RATES, GATE_MOMENTA, strict=True):
        state.hyperparams["learning_rate"] = jnp.asarray(lr)
        state.hyperparams["momentum"] = jnp.asarray(m)
        p, state = step(p, state, g)
    return {k: np.asarray(v) for k, v in p.items()}, counter[0]


def run_fused_gate(
    config: Config,
    params: dict[str, np.ndarray],
    grads: dict[str, Any],
    packed: bool = False,
) -> tuple[dict[str, np.ndarray], int]:
    """The gate's three steps through ``jsgd.apply_gradients``.

    The rate and momentum are arguments of one jitted step, the optimizer
    built from them inside it: the fused kernel's scalars are traced, so it
    compiles once, as the ``inject_hyperparams`` gate of the others. With
    ``packed``, on ``jsgd.pack`` of the trees.
    """
    counter = [0]
    factory = jax_factory("jsgd-fused", config)

    def step(p, state, g, lr, m):
        counter[0] += 1
        return jsgd.apply_gradients(factory(lr, m), g, state, p)

    jitted = jax.jit(step, donate_argnums=(0, 1))
    p: Any = _to_jax(params)
    g: Any = {k: jnp.asarray(v) for k, v in grads.items()}
    if packed:
        p, g = jsgd.pack(p), jsgd.pack(g)
    state = factory(GATE_LEARNING_RATES[0], GATE_MOMENTA[0]).init(p)
    for lr, m in zip(GATE_LEARNING_RATES, GATE_MOMENTA, strict=True):
        p, state = jitted(p, state, g, jnp.float32(lr), jnp.float32(m))
    if packed:
        p = p.unpack()
    return {k: np.asarray(v) for k, v in p.items()}, counter[0]


def is_fused(config: Config, params: dict[str, Any], packed: bool = False) -> bool:
    """Whether ``jsgd-fused`` (``packed``: ``jsgd-packed``) runs the kernel here."""
    tx = jax_factory("jsgd-fused", config)(LEARNING_RATE, MOMENTUM)
    shapes: Any = {
        k: jax.ShapeDtypeStruct(np.shape(v), jnp.float32) for k, v in params.items()
    }
    if packed:
        shapes = jax.eval_shape(jsgd.pack, shapes)
    state = jax.eval_shape(tx.init, shapes)
    step = jax.jit(lambda p, s, g: jsgd.apply_gradients(tx, g, s, p))
    return "jsgd_fused_sgd" in step.lower(shapes, state, shapes).as_text()


def run_torch_gate(
    impl: str, config: Config, params: dict[str, np.ndarray], grads: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The same three steps with ``torch.optim.SGD`` (``param_groups`` lr)."""
    p = _to_torch(params)
    opt = _torch_optimizer(impl, config, p, GATE_LEARNING_RATES[0], GATE_MOMENTA[0])
    for lr, m in zip(GATE_LEARNING_RATES, GATE_MOMENTA, strict=True):
        for t, g in zip(p, grads.values(), strict=True):
            t.grad = torch.from_numpy(np.array(g, copy=True))
        if config.clip is not None:
            torch.nn.utils.clip_grad_norm_(p, config.clip, foreach=True)
        for group in opt.param_groups:
            group["lr"] = lr
            if config.momentum:
                group["momentum"] = m
        opt.step()
    return {k: t.detach().numpy().copy() for k, t in zip(params, p, strict=True)}


def correctness_gate(
    config: Config,
    shapes: dict[str, tuple[int, ...]],
    with_torch: bool = True,
    seed: int = 0,
) -> GateResult:
    """Runs every implementation of ``config`` three steps from the same start.

    Gradients are N(0, 1) (so the clip at 1.0 is active); parameters N(0, 1).
    """
    params = random_leaves(shapes, seed)
    grads = random_leaves(shapes, seed + 1)
    impls = impls_for(config, with_torch)
    finals, traces = {}, {}
    for impl in impls:
        if impl in JAX_IMPLS:
            finals[impl], traces[impl] = run_jax_gate(impl, config, params, grads)
        else:
            finals[impl] = run_torch_gate(impl, config, params, grads)
    rtol, atol = gate_tolerance(config)
    ref = finals["jsgd"]
    diffs, ok = {}, True
    for impl in impls[1:]:
        worst = 0.0
        for k, want in ref.items():
            got = finals[impl][k]
            ok &= bool(np.allclose(got, want, rtol=rtol, atol=atol))
            denom = np.maximum(np.abs(want), atol)
            worst = max(worst, float(np.max(np.abs(got - want) / denom, initial=0.0)))
        diffs[impl] = worst
    return GateResult(config.name, impls, diffs, traces, rtol, atol, ok)


# --------------------------------------------------------------------------
# Timed runners


class JaxRunner:
    """One JAX implementation holding its own params and state."""

    def __init__(self, impl, config, params, grads):
        self.name = impl
        self.tx = jax_factory(impl, config)(LEARNING_RATE, MOMENTUM)
        self.packed = impl == "jsgd-packed"
        self.params: Any = _to_jax(params)
        self.grads: Any = grads
        if self.packed:  # once, outside the timed step
            self.params, self.grads = jsgd.pack(self.params), jsgd.pack(grads)
        self.state = self.tx.init(self.params)
        jitted = make_jax_step(
            self.tx, apply=apply_updates_for(impl), fused=impl in FUSED_IMPLS
        )
        t0 = time.perf_counter()
        self.compiled = jitted.lower(self.params, self.state, self.grads).compile()
        self.compile_s = time.perf_counter() - t0
        memory = self.compiled.memory_analysis()
        self.temp_bytes = None if memory is None else int(memory.temp_size_in_bytes)

    def step(self) -> None:
        self.params, self.state = self.compiled(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))

    def result(self) -> dict[str, np.ndarray]:
        params = self.params.unpack() if self.packed else self.params
        return {k: np.asarray(v) for k, v in params.items()}


class TorchRunner:
    """One torch implementation holding its own params, grads and state."""

    compile_s = None
    temp_bytes = None

    def __init__(self, impl, config, params, grads_np):
        self.name = impl
        self.keys = list(params)
        self.params = _to_torch(params)
        for t, g in zip(self.params, _to_torch(grads_np), strict=True):
            t.grad = g
        self.clip = config.clip
        self.opt = _torch_optimizer(impl, config, self.params, LEARNING_RATE, MOMENTUM)

    def step(self) -> None:
        with torch.no_grad():
            if self.clip is not None:
                torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
            self.opt.step()

    def result(self) -> dict[str, np.ndarray]:
        pairs = zip(self.keys, self.params, strict=True)
        return {k: t.detach().numpy() for k, t in pairs}


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    s = sorted(samples)
    q = statistics.quantiles(s, n=10, method="inclusive") if len(s) > 1 else s * 9
    return {"median": statistics.median(s), "p10": q[0], "p90": q[-1]}


# How long each implementation runs untimed before each timed step. After a
# switch of framework both sides run slower for a while, as the other
# framework's threads give the two cores back: measured on the 2-core VM, a 10M
# momentum step took 6.3 ms right after a torch step and 4.6-4.8 ms 20-50 ms
# later (torch's 5.2 ms after a jsgd step, 4.4-4.6 ms later); at 1M the slowdown
# was gone after about 2 ms.
SETTLE_S = 0.05
# At most this many settling steps (trees of a few elements step in microseconds).
MAX_SETTLE_STEPS = 200


def time_round_robin(
    runners: Sequence[Any], repeats: int, warmup: int = 2, settle_s: float = SETTLE_S
) -> dict[str, list[float]]:
    """Interleaved timing: each round runs every implementation once.

    The order is shuffled every round (seeded), so slow drifts of the machine
    (another process, frequency) hit every implementation alike. Before each
    timed step the same implementation takes ``k`` untimed steps, ``k`` the
    same for all (so all end after the same number of steps, and their
    parameters can be compared): about ``settle_s`` seconds of the median
    implementation's steps, at least one and at most ``MAX_SETTLE_STEPS``.
    So every implementation is timed in the state a training loop's
    consecutive steps see:

    * its own buffers are as warm in the caches as they can be. Where the
      tree fits in the last-level cache this decides the time: on the
      2-core machine (32 MiB L3) a 1M-element momentum step took 0.60-0.64 ms
      after 64 MB of other memory traffic and 0.16-0.28 ms right after its
      own, for ``torch.optim.SGD(fused=True)`` and the fused kernel alike.
    * no other framework's threads hold the cores (``SETTLE_S``): torch's
      OpenMP threads keep spinning after a torch op (libgomp's default wait
      policy). (``OMP_WAIT_POLICY=PASSIVE`` instead makes ``fused=True`` on
      3,000 small tensors 10x slower, and sleeping lets this VM's cores idle
      down, which slows every next step.)

    docs/benchmarks.md says what the earlier, lighter settling got wrong.
    """
    steps = {r.name: 0 for r in runners}

    def step(r) -> float:
        t0 = time.perf_counter()
        r.step()
        steps[r.name] += 1
        return time.perf_counter() - t0

    warm = {}
    for _ in range(warmup):
        for r in runners:
            warm[r.name] = step(r)
    settle = max(
        1, min(MAX_SETTLE_STEPS, math.ceil(settle_s / statistics.median(warm.values())))
    )
    samples: dict[str, list[float]] = {r.name: [] for r in runners}
    order = list(runners)
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for r in order:
            for _ in range(settle):  # not timed
                step(r)
            samples[r.name].append(step(r))
    # Every implementation ends after the same number of steps, so that their
    # parameters can be compared.
    for r in runners:
        while steps[r.name] < max(steps.values()):
            step(r)
    return samples


# --------------------------------------------------------------------------
# Memory bandwidth


def measure_bandwidth(n: int, repeats: int, with_torch: bool = True) -> dict:
    """Triad-like ``x <- x + 0.5*y`` over ``n`` float32 (12 bytes/element).

    JAX: jitted with ``x`` donated (in place). torch: ``x.add_(y, alpha=0.5)``.
    Interleaved; the reference bandwidth is the larger of the two medians.
    """
    rng = np.random.default_rng(0)
    y_np = rng.standard_normal(n, dtype=np.float32)
    runners = []

    class _Jax:
        name = "jax"

        def __init__(self):
            self.x = jnp.asarray(y_np.copy())
            self.y = jnp.asarray(y_np.copy())
            self.f = jax.jit(lambda x, y: x + 0.5 * y, donate_argnums=0)

        def step(self):
            self.x = self.f(self.x, self.y)
            self.x.block_until_ready()

    runners.append(_Jax())
    if with_torch and torch is not None:

        class _Torch:
            name = "torch"

            def __init__(self):
                self.x = torch.from_numpy(y_np.copy())
                self.y = torch.from_numpy(y_np.copy())

            def step(self):
                self.x.add_(self.y, alpha=0.5)

        runners.append(_Torch())
    samples = time_round_robin(runners, repeats)
    out = {"elements": n, "bytes_per_element": 12, "kernels": {}}
    for name, s in samples.items():
        med = statistics.median(s)
        out["kernels"][name] = {"median_s": med, "GBps": 12 * n / med / 1e9}
    best = max(out["kernels"], key=lambda k: out["kernels"][k]["GBps"])
    out["reference"] = best
    out["GBps"] = out["kernels"][best]["GBps"]
    del runners
    return out


# --------------------------------------------------------------------------
# One (tree, configuration) cell


def bench_cell(
    tree: str,
    shapes: dict[str, tuple[int, ...]],
    config: Config,
    repeats: int,
    with_torch: bool = True,
    data: tuple[dict, dict] | None = None,
    skip: dict[str, str] | None = None,
    on_compile: Callable[[str, float | None], None] | None = None,
) -> dict:
    """Times every implementation of ``config`` on ``shapes``.

    ``skip`` maps implementations to leave out to the reason (recorded);
    ``on_compile(impl, None)`` is called before a JAX compile and
    ``on_compile(impl, seconds)`` after it.
    """
    skip = skip or {}
    if data is None:
        data = (random_leaves(shapes, 1), random_leaves(shapes, 2))
    params, grads_np = data
    grads = {k: jnp.asarray(v) for k, v in grads_np.items()}
    runners: list[Any] = []
    for impl in impls_for(config, with_torch):
        if impl in skip:
            continue
        if impl in JAX_IMPLS:
            if on_compile:
                on_compile(impl, None)
            runners.append(JaxRunner(impl, config, params, grads))
            if on_compile:
                on_compile(impl, runners[-1].compile_s)
        else:
            runners.append(TorchRunner(impl, config, params, grads_np))
    samples = time_round_robin(runners, repeats)
    n = size(shapes)
    out: dict[str, Any] = {
        "tree": tree,
        "config": config.name,
        "params": n,
        "leaves": len(shapes),
        "bytes_per_step": config.bytes_per_param * n,
        "impls": {},
        "skipped": dict(skip),
        "fused": is_fused(config, params),
        "packed_fused": is_fused(config, params, packed=True),
    }
    for r in runners:
        stats = percentiles(samples[r.name])
        out["impls"][r.name] = {
            **{f"{k}_s": v for k, v in stats.items()},
            "GBps": config.bytes_per_param * n / stats["median"] / 1e9,
            "samples": len(samples[r.name]),
            "compile_s": r.compile_s,
            "temp_bytes": r.temp_bytes,
        }
    # Every implementation took the same number of steps from the same start.
    if len(runners) < 2:
        return out
    ref = runners[0].result()
    for r in runners[1:]:
        got = r.result()
        worst = max(
            float(np.max(np.abs(got[k] - v) / np.maximum(np.abs(v), 1e-3), initial=0))
            for k, v in ref.items()
        )
        out["impls"][r.name][f"max_rel_diff_vs_{runners[0].name}"] = worst
    del runners
    return out


# --------------------------------------------------------------------------
# One tree in a child process, with a compile timeout


def tree_worker(tree, config_names, repeats, with_torch, skips, messages) -> None:
    """Runs the cells of one tree; reports progress on the ``messages`` queue."""
    from _trees import TREES

    if with_torch and torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    shapes = TREES[tree]()
    data = (random_leaves(shapes, 1), random_leaves(shapes, 2))
    for name in config_names:

        def report(impl, seconds, name=name):
            messages.put(("compile", name, impl, seconds))

        cell = bench_cell(
            tree,
            shapes,
            CONFIGS[name],
            repeats,
            with_torch,
            data,
            skips.get(name),
            report,
        )
        messages.put(("cell", name, cell))
    messages.put(("done",))


def run_tree(
    tree: str,
    config_names: Sequence[str],
    repeats: int,
    with_torch: bool,
    compile_timeout: float,
    log: Callable[[str], None] = print,
    on_cell: Callable[[dict], None] | None = None,
) -> list[dict]:
    """The cells of one tree, in a spawned child process.

    A JAX compile that takes longer than ``compile_timeout`` seconds kills the
    child; the cell is then run again without that implementation (recorded
    under the cell's ``skipped``), and the tree goes on.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    remaining, skips, cells = list(config_names), {}, []
    while remaining:
        messages = ctx.Queue()
        child = ctx.Process(
            target=tree_worker,
            args=(tree, remaining, repeats, with_torch, skips, messages),
        )
        child.start()
        compiling = None
        while True:
            try:
                msg = messages.get(timeout=2)
            except queue.Empty:
                if compiling and time.perf_counter() - compiling[2] > compile_timeout:
                    name, impl = compiling[:2]
                    child.kill()
                    child.join()
                    reason = f"compile > {compile_timeout:.0f} s (killed)"
                    skips.setdefault(name, {})[impl] = reason
                    log(f"  {name:14s} {impl}: {reason}; again without it")
                    break
                if not child.is_alive():
                    raise RuntimeError(f"benchmark child for {tree} died") from None
                continue
            if msg[0] == "compile":
                _, name, impl, seconds = msg
                compiling = (
                    (name, impl, time.perf_counter()) if seconds is None else None
                )
            elif msg[0] == "cell":
                cells.append(msg[2])
                remaining.remove(msg[1])
                if on_cell:
                    on_cell(msg[2])
            else:
                child.join()
                break
    return cells
