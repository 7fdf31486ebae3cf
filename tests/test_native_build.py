"""The build hook (hatch_build.py): a missing compiler or a failed build never
fails the install; it leaves the kernel out, and jsgd takes the XLA path.

The hook runs inside pip's isolated build, where hatchling is installed; here
its one import from hatchling is stood in for, so these tests need neither
hatchling nor a network.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hook_module(monkeypatch):
    """hatch_build.py, imported with a stand-in for hatchling's interface."""

    class BuildHookInterface:
        def __init__(self, root: str, target_name: str = "wheel"):
            self.root = root
            self.target_name = target_name

    interface = types.ModuleType("hatchling.builders.hooks.plugin.interface")
    interface.BuildHookInterface = BuildHookInterface  # type: ignore[attr-defined]
    for name in ("hatchling", "hatchling.builders", "hatchling.builders.hooks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(
        sys.modules, "hatchling.builders.hooks.plugin", types.ModuleType("p")
    )
    monkeypatch.setitem(sys.modules, interface.__name__, interface)
    spec = importlib.util.spec_from_file_location(
        "hatch_build", ROOT / "hatch_build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_data() -> dict:
    return {"artifacts": [], "pure_python": True, "infer_tag": False}


def test_without_a_compiler_the_install_goes_on_without_the_kernel(
    hook_module, monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.delenv("JSGD_NATIVE", raising=False)
    monkeypatch.setattr(hook_module.shutil, "which", lambda name: None)
    data = _build_data()
    hook_module.NativeBuildHook(str(tmp_path)).initialize("0", data)
    assert data == _build_data()  # nothing shipped, still a pure-Python wheel
    assert "no C++ compiler found" in capsys.readouterr().err


def test_a_failed_build_goes_on_without_the_kernel(
    hook_module, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("CXX", "c++")
    monkeypatch.delenv("JSGD_NATIVE", raising=False)
    monkeypatch.setattr(hook_module.shutil, "which", lambda name: "/usr/bin/c++")

    def fails(command, **kwargs):
        raise subprocess.CalledProcessError(1, command, stderr="error: no such header")

    monkeypatch.setattr(hook_module.subprocess, "run", fails)
    data = _build_data()
    hook_module.NativeBuildHook(str(tmp_path)).initialize("0", data)
    assert data == _build_data()
    err = capsys.readouterr().err
    assert "did not build" in err and "no such header" in err


def test_jsgd_native_0_skips_the_build(hook_module, monkeypatch, tmp_path):
    monkeypatch.setenv("JSGD_NATIVE", "0")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the build ran")

    monkeypatch.setattr(hook_module.subprocess, "run", must_not_run)
    data = _build_data()
    hook_module.NativeBuildHook(str(tmp_path)).initialize("0", data)
    assert data == _build_data()


def test_the_fused_step_says_why_when_the_library_is_missing(monkeypatch, tmp_path):
    from jsgd._native import library

    monkeypatch.setattr(library, "LIBRARY", tmp_path / "_fused_sgd.so")
    library._load.cache_clear()
    try:
        status = library.status()
        assert not status
        assert "was not built" in status.reason and "XLA path" in status.reason
    finally:
        library._load.cache_clear()
