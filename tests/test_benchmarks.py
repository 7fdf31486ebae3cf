"""Smoke test of benchmarks/run.py's machinery (nothing is timed here).

Runs the benchmark's correctness gate on a tiny tree for every configuration
(jsgd, optax and, when installed, torch's foreach and fused SGD agree after
three steps whose learning rate and momentum change) and checks that the
jitted, donated jsgd step is traced once across those changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import jsgd
from tests._oracle import rotating

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import _bench  # noqa: E402
import _trees  # noqa: E402


@pytest.mark.parametrize("name", list(_bench.CONFIGS))
def test_gate_agrees_and_traces_once(name):
    config = _bench.CONFIGS[name]
    result = _bench.correctness_gate(config, _trees.mixed_small())
    assert result.ok, result
    assert result.traces == {"jsgd": 1, "optax": 1, "jsgd-fused": 1, "jsgd-packed": 1}
    expected = {"jsgd", "optax", "jsgd-fused", "jsgd-packed"}
    if _bench.torch is not None and config.torch_ok:
        expected |= {"torch-foreach", "torch-fused"}
    assert set(result.impls) == expected


@pytest.mark.skipif(not jsgd.fused_available(), reason="no native kernel")
@pytest.mark.parametrize("name", rotating(list(_bench.CONFIGS), share=2))
def test_the_gate_checks_the_kernel_on_a_tree_it_fuses(name):
    # mixed_small is too small for the kernel; these two leaves are not, and
    # 300 leaves of 700 elements are once packed.
    config = _bench.CONFIGS[name]
    shapes = {"w": (140_000,), "b": (300,)}
    many = {f"l{i}": (700,) for i in range(300)}
    params = _trees.random_leaves(shapes, 0)
    assert _bench.is_fused(config, params)
    assert not _bench.is_fused(config, _trees.random_leaves(many, 0))
    assert _bench.is_fused(config, _trees.random_leaves(many, 0), packed=True)
    result = _bench.correctness_gate(config, shapes, with_torch=False)
    assert result.ok, result
    assert result.traces["jsgd-fused"] == result.traces["jsgd-packed"] == 1


def test_tree_shapes():
    assert len(_trees.resnet50()) == 161
    assert _trees.size(_trees.resnet50()) == 25_557_032
    assert len(_trees.gpt2_small()) == 148
    assert _trees.size(_trees.gpt2_small()) == 124_439_808
    assert len(_trees.many_leaves()) == 3000
    assert _trees.size(_trees.many_leaves()) == 10_500_000


def test_cell_runs_on_a_tiny_tree():
    shapes = _trees.mixed_small()
    cell = _bench.bench_cell("tiny", shapes, _bench.CONFIGS["momentum"], repeats=2)
    jsgd = cell["impls"]["jsgd"]
    assert jsgd["samples"] == 2 and jsgd["median_s"] > 0
    assert jsgd["temp_bytes"] is not None
    for impl, r in cell["impls"].items():
        if impl != "jsgd":
            assert r["max_rel_diff_vs_jsgd"] < 1e-4, impl
