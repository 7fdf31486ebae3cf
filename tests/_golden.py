"""torch's numbers for the oracle tests: live from torch, or from golden files.

A test asks ``golden(key, compute)`` for an oracle value, where
``compute()`` runs the real torch and returns a NumPy array (or a dict of
them). What happens depends on ``JSGD_TORCH``:

* unset or ``auto``: live when torch is importable (and then also checked
  against the committed golden file, so a stale file fails), else the golden
  file's value: the README's test line needs no torch.
* ``golden``: never import torch; the golden files only (``.ci/run`` runs the
  torch tests so too, to prove they pass without torch).
* ``record``: compute live and (re)write the golden files at the end of the
  session. Regenerate them all with::

      JSGD_TORCH=record python -m pytest -p no:xdist -m "oracle or not oracle" tests docs

Each test module has its own file, ``tests/golden/<module>.npz``, whose
``__header__`` entry records torch's version and that command.
"""

from __future__ import annotations

import atexit
import datetime
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

MODE = os.environ.get("JSGD_TORCH", "auto")
if MODE not in ("auto", "golden", "record"):
    raise RuntimeError(f"JSGD_TORCH must be auto, golden or record, not {MODE!r}")

torch: Any = None
if MODE != "golden":
    try:
        import torch
    except ImportError:  # the light install: golden files only
        if MODE == "record":
            raise
LIVE = torch is not None

DIRECTORY = pathlib.Path(__file__).parent / "golden"
COMMAND = 'JSGD_TORCH=record python -m pytest -p no:xdist -m "oracle or not oracle" tests docs'
_RECORDED: dict[str, dict[str, np.ndarray]] = {}


def _flatten(key: str, value: Any) -> dict[str, np.ndarray]:
    if isinstance(value, dict):
        out: dict[str, np.ndarray] = {}
        for k, v in value.items():
            out.update(_flatten(f"{key}/{k}", v))
        return out
    return {key: np.asarray(value)}


def _unflatten(key: str, stored: dict[str, np.ndarray]) -> Any:
    if key in stored:
        return stored[key]
    prefix = key + "/"
    items = {k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)}
    if not items:
        return None
    out: dict[str, Any] = {}
    for k in {k.split("/")[0] for k in items}:
        out[k] = _unflatten(k, items)
    return out


class Golden:
    """The golden file of one test module (``Golden(__name__)``)."""

    def __init__(self, module: str):
        self.name = module.rsplit(".", 1)[-1]
        self.path = DIRECTORY / f"{self.name}.npz"
        self._stored: dict[str, np.ndarray] | None = None

    @property
    def stored(self) -> dict[str, np.ndarray]:
        if self._stored is None:
            self._stored = {}
            if self.path.exists():
                with np.load(self.path, allow_pickle=False) as data:
                    self._stored = {k: data[k] for k in data.files}
        return self._stored

    def __call__(self, key: str, compute: Callable[[], Any]) -> Any:
        """torch's value for ``key``: live, or from the golden file."""
        if LIVE:
            value = compute()
            flat = _flatten(key, value)
            if MODE == "record":
                _RECORDED.setdefault(self.name, {}).update(flat)
                _register_writer()
            else:
                for k, live in flat.items():
                    if k not in self.stored:
                        pytest.fail(f"{self.path.name} lacks {k!r}: run {COMMAND}")
                    np.testing.assert_allclose(
                        live,
                        self.stored[k],
                        rtol=1e-6,
                        atol=1e-12,
                        err_msg=f"{self.path.name}[{k!r}] is stale: run {COMMAND}",
                    )
            return _unflatten(key, flat)
        value = _unflatten(key, self.stored)
        if value is None:
            pytest.fail(f"{self.path.name} lacks {key!r}: run {COMMAND} with torch")
        return value


_WRITER_REGISTERED = False


def _register_writer() -> None:
    global _WRITER_REGISTERED
    if not _WRITER_REGISTERED:
        atexit.register(_write_all)
        _WRITER_REGISTERED = True


def _write_all() -> None:
    header = (
        f"torch {torch.__version__}, numpy {np.__version__}; written "
        f"{datetime.date.today().isoformat()} by: {COMMAND}"
    )
    DIRECTORY.mkdir(exist_ok=True)
    for name, entries in _RECORDED.items():
        golden = Golden(name)
        merged = {k: v for k, v in golden.stored.items() if k != "__header__"}
        merged.update(entries)
        np.savez_compressed(
            golden.path, __header__=np.array(header), **dict(sorted(merged.items()))
        )
