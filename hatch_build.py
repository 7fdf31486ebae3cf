"""Build hook: compiles jsgd's optional native kernel (jsgd/_native/fused_sgd.cc).

With a C++ compiler (``$CXX``, ``c++``, ``g++`` or ``clang++``) the XLA FFI
kernel of ``jsgd.apply_gradients`` is built into ``jsgd/_native/_fused_sgd.so``
and shipped in the wheel. Without one, or if the build fails, the package
installs all the same and ``jsgd.fused_available()`` says that the XLA path
is used. ``JSGD_NATIVE=0`` skips the build; ``JSGD_NATIVE_FLAGS`` adds compiler
flags (``-march=native`` for a machine-specific build).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("jsgd/_native/fused_sgd.cc")
LIBRARY = Path("jsgd/_native/_fused_sgd.so")


def _compiler() -> str | None:
    for candidate in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


class NativeBuildHook(BuildHookInterface):
    """Compiles the native kernel when it can; never fails the build."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Builds the library into the wheel (editable installs included)."""
        if self.target_name != "wheel" or os.environ.get("JSGD_NATIVE") == "0":
            return
        root = Path(self.root)
        compiler = _compiler()
        if compiler is None:
            self._say("no C++ compiler found: jsgd installs without its native kernel")
            return
        command = [
            compiler,
            "-O3",
            "-std=c++17",
            "-shared",
            "-fPIC",
            "-ffp-contract=off",  # no FMAs: each operation rounds as XLA's op by op
            "-I",
            str(root / "jsgd/_native/include"),
            *shlex.split(os.environ.get("JSGD_NATIVE_FLAGS", "")),
            "-o",
            str(root / LIBRARY),
            str(root / SOURCE),
            "-lpthread",
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            self._say(f"the native kernel did not build ({detail.strip()[:500]})")
            return
        build_data["artifacts"].append(str(LIBRARY))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        self._say(f"built {LIBRARY} with {compiler}")

    def _say(self, message: str) -> None:
        print(f"jsgd build: {message}", file=sys.stderr)
