"""No module of jsgd reaches up a layer (docs/index.md, "How jsgd is built")."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jsgd"
LAYERS = [
    "_native",  # the optional native kernels' loader: imports no jsgd module
    "_sparse",
    "_common",
    "_transforms",
    "_schedules",
    "_lr_scheduler",
    "_training",
    "_optimizers",
    "torch",  # the public face of jsgd.torch: its optimizers and schedulers
]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "jsgd":
        return None
    name = parts[1]
    if name == "schedules":  # the public face of _schedules
        name = "_schedules"
    return LAYERS.index(name) if name in LAYERS else None


def _imports(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "jsgd":
                for alias in node.names:
                    yield f"jsgd.{alias.name}"
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


MODULES = sorted(
    p for p in ROOT.rglob("*.py") if p.parent != ROOT or p.stem == "_schedules"
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_go_down(path):
    own = _layer("jsgd." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
    assert own is not None
    for module in _imports(path):
        layer = _layer(module)
        if layer is not None:
            assert layer <= own, (
                f"{path.relative_to(ROOT)} imports {module} (a layer up)"
            )


def test_every_module_belongs_to_a_layer():
    flat = {p.stem for p in ROOT.glob("*.py")}
    assert flat == {"__init__", "schedules", "_schedules"}
