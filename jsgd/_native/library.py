"""Loads the optional native library and registers its XLA FFI targets.

The package's build hook (``hatch_build.py``) compiles ``fused_sgd.cc`` into
``_fused_sgd.so`` beside this file when a C++ compiler is present; without
one the package installs all the same and :func:`status` says why the fused
step is unavailable. ``JSGD_FUSED=0`` in the environment turns it off.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
from pathlib import Path

import jax

LIBRARY = Path(__file__).with_name("_fused_sgd.so")
TARGET = "jsgd_fused_sgd"


@dataclasses.dataclass(frozen=True)
class FusedStatus:
    """Whether the fused native step is available, and why (not).

    Attributes:
      available: True when the native library is loaded and its FFI target
        registered for the CPU.
      reason: what was found: the library's path, or why it is unavailable.
    """

    available: bool
    reason: str

    def __bool__(self) -> bool:
        return self.available


@functools.cache
def _load() -> FusedStatus:
    if not LIBRARY.exists():
        return FusedStatus(
            False,
            f"the native library {LIBRARY} was not built (it is compiled when "
            "jsgd is installed with a C++ compiler present); the XLA path is used",
        )
    try:
        library = ctypes.cdll.LoadLibrary(str(LIBRARY))
        jax.ffi.register_ffi_target(
            TARGET, jax.ffi.pycapsule(library.JsgdFusedSgd), platform="cpu"
        )
    except (OSError, AttributeError, RuntimeError, ValueError) as error:
        return FusedStatus(
            False, f"the native library {LIBRARY} failed to load: {error}"
        )
    return FusedStatus(True, f"native CPU kernel {LIBRARY}")


def status() -> FusedStatus:
    """The fused step's availability (``JSGD_FUSED=0`` disables it)."""
    if os.environ.get("JSGD_FUSED", "1") == "0":
        return FusedStatus(False, "disabled by JSGD_FUSED=0; the XLA path is used")
    return _load()
