"""The package's public surface, README and CI script stay honest."""

import inspect
import pathlib
import re

import jax.numpy as jnp

import jsgd

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_all_is_the_public_surface():
    public = {n for n in dir(jsgd) if not n.startswith("_")}
    private_modules = {
        n
        for n in public
        if inspect.ismodule(getattr(jsgd, n)) and n not in ("schedules", "torch")
    }
    assert set(jsgd.__all__) == public - private_modules - {"annotations"}
    assert len(jsgd.__all__) == len(set(jsgd.__all__))


def test_every_public_symbol_is_documented_with_an_example():
    for name in jsgd.__all__:
        doc = inspect.getdoc(getattr(jsgd, name)) or ""
        assert doc, f"jsgd.{name} has no docstring"
        if callable(getattr(jsgd, name)) and not name.endswith("State"):
            assert "Example" in doc or name == "KerasOptimizer", name
            takes_nothing = inspect.isfunction(getattr(jsgd, name)) and not (
                inspect.signature(getattr(jsgd, name)).parameters
            )
            assert (
                "Args:" in doc
                or "Attributes:" in doc
                or takes_nothing
                or name == "KerasOptimizer"
            ), name


def test_every_readme_code_block_runs():
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", README, re.S)):
        exec(compile(block, f"README.md[{i}]", "exec"), {})


def test_readme_example_runs_and_converges():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    example = next(b for b in blocks if "@jax.jit" in b)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert float(namespace["loss"]) < 1e-10
    assert abs(float(namespace["params"]["w"][0, 0]) - 3.0) < 1e-4
    assert abs(float(namespace["params"]["b"][0]) - 1.0) < 1e-4


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)```", README, re.S)[0].strip().splitlines()
    assert len(commands) == 2, "the README promises exactly two set-up lines"
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_state_dtypes_follow_the_rules():
    params = {"w": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
    state = jsgd.sgd(0.1, 0.9).init(params)
    velocity = state[-1].velocity
    assert velocity["w"].dtype == jnp.bfloat16 and velocity["b"].dtype == jnp.float32
    state = jsgd.sgd(0.1, 0.9, accumulator_dtype="float32").init(params)
    assert state[-1].velocity["w"].dtype == jnp.float32
    grads = {"w": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
    updates, state = jsgd.sgd(0.1, 0.9).update(grads, jsgd.sgd(0.1, 0.9).init(params))
    assert updates["w"].dtype == jnp.bfloat16 and updates["b"].dtype == jnp.float32


def test_docs_code_blocks_run():
    for page in sorted((ROOT / "docs").glob("*.md")):
        for i, block in enumerate(
            re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
        ):
            exec(compile(block, f"{page.name}[{i}]", "exec"), {})


def test_guarantees_page_links_only_to_existing_tests():
    page = (ROOT / "docs" / "guarantees.md").read_text()
    current = None
    checked = 0
    for ref in re.findall(r"`((?:tests/\w+\.py)?(?:::[\w*\[\]-]+)?)`", page):
        path, _, name = ref.partition("::")
        if path:
            current = ROOT / path
            assert current.exists(), ref
        if name:
            assert current is not None, ref
            prefix = name.rstrip("*")
            assert re.search(rf"def {re.escape(prefix)}", current.read_text()), ref
            checked += 1
    assert checked >= 20


def test_every_public_name_is_in_the_api_reference():
    api = (ROOT / "docs" / "api.md").read_text()
    for name in jsgd.__all__:
        if name not in ("schedules", "torch"):
            assert f"::: jsgd.{name}\n" in api, f"jsgd.{name} is not in docs/api.md"
    for name in jsgd.schedules.__all__:
        assert name in api, f"jsgd.schedules.{name} is not in docs/api.md"
    for name in jsgd.torch.__all__:
        if name != "lr_scheduler":
            assert f"::: jsgd.torch.{name}\n" in api, f"jsgd.torch.{name} missing"
    for name in jsgd.torch.lr_scheduler.__all__:
        assert name in api, f"jsgd.torch.lr_scheduler.{name} is not in docs/api.md"


def test_jsgd_torch_is_a_documented_public_surface():
    for module in (jsgd.torch, jsgd.torch.lr_scheduler):
        public = {n for n in dir(module) if not n.startswith("_")}
        submodules = {n for n in public if inspect.ismodule(getattr(module, n))}
        assert set(module.__all__) == public - (submodules - {"lr_scheduler"}) - {
            "annotations"
        }, module.__name__
        for name in module.__all__:
            doc = inspect.getdoc(getattr(module, name)) or ""
            assert doc, f"{module.__name__}.{name} has no docstring"
            abstract = name == "LRScheduler"  # the base class, as KerasOptimizer
            if callable(getattr(module, name)) and not name.endswith("State"):
                assert "Example" in doc or abstract, f"{module.__name__}.{name}"
