"""jsgd.torch's optimizers: arguments, errors and signatures against torch 2.13.

* Every value torch.optim refuses with a ValueError is refused by jsgd with
  torch's exact message (torch's messages come live, or from
  ``tests/golden/test_torch_definitions.npz`` as UTF-8 bytes; tests/_golden.py).
* jsgd's extra refusals (what torch accepts but would corrupt a float32 run:
  NaN for SGD, infinities, float32 overflow, ``momentum``/``dampening``/
  ``alpha`` above 1, a negative ``dampening``), each with its message, and a
  live check that torch does accept them.
* TypeErrors for bools, strings, arrays and other non-numbers where numbers
  go, and for non-bool switches.
* ``param_groups``: its shape, unknown keys, per-group values (prefixed with
  the group's place), a leaf two groups select, list selectors naming a
  missing path, callable selectors without ``params``.
* torch's sparse-gradient errors.
* The signatures: torch's names, order and defaults (less ``params`` and the
  performance switches), from a table that a live-torch test checks.
* Two bad values: torch's check order (not its signatures'), so the same
  one is named first.

jsgd raises TypeError where torch raises RuntimeError for a refused sparse
gradient (torch raises at ``step()``; jsgd at ``update``, as a type error of
the gradient).
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

import jsgd
import jsgd.torch
from jsgd.torch import lr_scheduler
from tests import _golden
from tests._golden import Golden

golden = Golden(__name__)

NAMES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "SparseAdam")

# Each optimizer's numeric arguments (torch checks their lower bound).
NUMERIC = {
    "SGD": ("lr", "momentum", "weight_decay"),
    "Adam": ("lr", "eps", "weight_decay"),
    "AdamW": ("lr", "eps", "weight_decay"),
    "RMSprop": ("lr", "alpha", "eps", "weight_decay", "momentum"),
    "Adagrad": ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
    "SparseAdam": ("lr", "eps"),
}
SWITCHES = {
    "SGD": ("nesterov", "maximize"),
    "Adam": ("amsgrad", "maximize"),
    "AdamW": ("amsgrad", "maximize"),
    "RMSprop": ("centered", "maximize"),
    "Adagrad": ("maximize",),
    "SparseAdam": ("maximize",),
}
WITH_BETAS = ("Adam", "AdamW", "SparseAdam")

# torch 2.13's signatures less ``params`` and the performance switches
# (foreach, capturable, differentiable, fused, decoupled_weight_decay): names,
# order and defaults. test_the_signature_table_is_torchs checks it live.
PERFORMANCE = (
    "foreach",
    "capturable",
    "differentiable",
    "fused",
    "decoupled_weight_decay",
)
TORCH_SIGNATURES = {
    "SGD": (
        ("lr", 1e-3),
        ("momentum", 0),
        ("dampening", 0),
        ("weight_decay", 0),
        ("nesterov", False),
        ("maximize", False),
    ),
    "Adam": (
        ("lr", 1e-3),
        ("betas", (0.9, 0.999)),
        ("eps", 1e-8),
        ("weight_decay", 0),
        ("amsgrad", False),
        ("maximize", False),
    ),
    "AdamW": (
        ("lr", 1e-3),
        ("betas", (0.9, 0.999)),
        ("eps", 1e-8),
        ("weight_decay", 1e-2),
        ("amsgrad", False),
        ("maximize", False),
    ),
    "RMSprop": (
        ("lr", 1e-2),
        ("alpha", 0.99),
        ("eps", 1e-8),
        ("weight_decay", 0),
        ("momentum", 0),
        ("centered", False),
        ("maximize", False),
    ),
    "Adagrad": (
        ("lr", 1e-2),
        ("lr_decay", 0),
        ("weight_decay", 0),
        ("initial_accumulator_value", 0),
        ("eps", 1e-10),
        ("maximize", False),
    ),
    "SparseAdam": (
        ("lr", 1e-3),
        ("betas", (0.9, 0.999)),
        ("eps", 1e-8),
        ("maximize", False),
    ),
}
JSGD_KEYWORDS = ("param_groups", "scheduler", "steps_per_epoch")


def _signature(parameters) -> tuple:
    return tuple((p.name, p.default) for p in parameters)


def _typed(items) -> tuple:
    """Names and defaults with the defaults' types (0 is not 0.0)."""
    return tuple((name, default, type(default).__name__) for name, default in items)


# ------------------------------------------------------------- torch's values


def _torch_error(name: str, kwargs: dict[str, Any]) -> str | None:
    """torch's ValueError message for ``torch.optim.<name>(params, **kwargs)``,
    or None when torch accepts."""
    torch = _golden.torch
    try:
        getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)], **kwargs)
    except ValueError as error:
        return str(error)
    return None


def _encode(message: str | None) -> np.ndarray:
    """A message as UTF-8 bytes (golden files hold numbers); None as [-1]."""
    if message is None:
        return np.array([-1], np.int16)
    return np.frombuffer(message.encode(), np.uint8).astype(np.int16)


def _decode(stored: np.ndarray) -> str | None:
    stored = np.asarray(stored)
    if stored.shape == (1,) and stored[0] == -1:
        return None
    return bytes(stored.astype(np.uint8).tolist()).decode()


def torch_message(key: str, name: str, kwargs: dict[str, Any]) -> str | None:
    return _decode(golden(key, lambda: _encode(_torch_error(name, kwargs))))


def _case_id(name: str, kwargs: dict[str, Any]) -> str:
    return name + "-" + ",".join(f"{k}={v!r}" for k, v in kwargs.items())


# ----------------------------------------------- torch's refusals, its messages


def _torch_refusals() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for name, arguments in NUMERIC.items():
        for argument in arguments:
            values: list[Any] = [-1.0, -1, -0.5, np.float32(-0.1), np.float64(-2.0)]
            if name != "SGD":  # SGD's ``lr < 0.0`` lets NaN through
                values.append(math.nan)
            if name == "SparseAdam":  # strict: lr > 0, eps > 0
                values += [0.0, 0]
            cases += [(name, {argument: v}) for v in values]
    for name in WITH_BETAS:
        for betas in [
            (1.0, 0.999),
            (-0.1, 0.999),
            (math.nan, 0.999),
            (0.9, 1.0),
            (0.9, -0.5),
            (0.9, math.nan),
            (0.9, 1.5),
            (1.0, 1.0),
            (np.float32(0.9), np.float32(1.0)),
        ]:
            cases.append((name, {"betas": betas}))
    cases += [
        ("SGD", {"nesterov": True}),
        ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.5}),
        ("SGD", {"nesterov": True, "momentum": -0.1}),  # the value first
        # Two bad values where torch's check order is the signature's.
        ("SGD", {"lr": -1.0, "momentum": -1.0}),
        ("SGD", {"momentum": -1.0, "weight_decay": -1.0}),
        ("Adam", {"lr": -1.0, "eps": -1.0}),
        ("Adam", {"betas": (2.0, 2.0), "weight_decay": -1.0}),
        ("Adagrad", {"lr_decay": -1.0, "eps": -1.0}),
    ]
    return cases


TORCH_REFUSALS = _torch_refusals()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    TORCH_REFUSALS,
    ids=[_case_id(*c) for c in TORCH_REFUSALS],
)
def test_torchs_refusals_with_torchs_messages(name, kwargs):
    expected = torch_message(f"refuses/{_case_id(name, kwargs)}", name, kwargs)
    assert expected is not None, "torch accepts this: not a refusal case"
    with pytest.raises(ValueError) as error:
        getattr(jsgd.torch, name)(**kwargs)
    assert str(error.value) == expected


def test_torchs_refusals_hold_for_jax_arrays_too():
    with pytest.raises(ValueError, match=r"^Invalid learning rate: -0\.5$"):
        jsgd.torch.SGD(lr=jnp.float32(-0.5))
    with pytest.raises(ValueError, match=r"^Invalid beta parameter at index 1: 1\.0$"):
        jsgd.torch.Adam(betas=(0.9, jnp.float32(1.0)))


# ------------------------------------------------------- jsgd's own refusals

_F32 = "(jsgd.torch computes in float32, whose largest number is 3.4028235e+38)"


def _above_one(argument):
    return (
        f"(jsgd.torch needs {argument} <= 1; torch accepts it, but every step would "
        "grow the buffer)"
    )


LABELS = {
    "lr": "learning rate",
    "momentum": "momentum value",
    "dampening": "dampening value",
    "weight_decay": "weight_decay value",
    "eps": "epsilon value",
    "alpha": "alpha value",
    "lr_decay": "lr_decay value",
    "initial_accumulator_value": "initial_accumulator_value value",
}


def _jsgd_refusals() -> list[tuple[str, dict[str, Any], str]]:
    """(optimizer, kwargs, jsgd's message) for values torch accepts."""
    cases = []
    for name, arguments in NUMERIC.items():
        for argument in arguments:
            label = LABELS[argument]
            cases.append((name, {argument: math.inf}, f"Invalid {label}: inf {_F32}"))
            if not (name == "Adagrad" and argument == "initial_accumulator_value"):
                # (torch fails at torch.full_like: "value cannot be converted
                # to type float without overflow")
                cases.append((name, {argument: 1e39}, f"Invalid {label}: 1e+39 {_F32}"))
    for name, argument in [("SGD", "momentum"), ("RMSprop", "momentum")]:
        cases.append(
            (
                name,
                {argument: 1.5},
                f"Invalid momentum value: 1.5 {_above_one(argument)}",
            )
        )
    cases += [
        (
            "SGD",
            {"dampening": 1.5},
            f"Invalid dampening value: 1.5 {_above_one('dampening')}",
        ),
        ("RMSprop", {"alpha": 1.5}, f"Invalid alpha value: 1.5 {_above_one('alpha')}"),
        ("RMSprop", {"alpha": 2}, f"Invalid alpha value: 2 {_above_one('alpha')}"),
        # torch's SGD checks ``lr < 0.0``: NaN passes there, not here.
        ("SGD", {"lr": math.nan}, "Invalid learning rate: nan"),
        ("SGD", {"momentum": math.nan}, "Invalid momentum value: nan"),
        ("SGD", {"weight_decay": math.nan}, "Invalid weight_decay value: nan"),
        ("SGD", {"dampening": math.nan}, "Invalid dampening value: nan"),
        # torch does not check dampening at all.
        ("SGD", {"dampening": -0.5}, "Invalid dampening value: -0.5"),
        ("SGD", {"lr": 10**400}, f"Invalid learning rate: {10**400} {_F32}"),
        ("Adam", {"betas": (0.9, 1.0 - 1e-9)}, None),  # accepted by both
    ]
    return cases


JSGD_REFUSALS = _jsgd_refusals()


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    JSGD_REFUSALS,
    ids=[_case_id(n, k) for n, k, _ in JSGD_REFUSALS],
)
def test_jsgds_extra_refusals(name, kwargs, message):
    if message is None:
        getattr(jsgd.torch, name)(**kwargs)
    else:
        with pytest.raises(ValueError) as error:
            getattr(jsgd.torch, name)(**kwargs)
        assert str(error.value) == message
    if _golden.LIVE:  # what torch does with it: it accepts
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert _torch_error(name, kwargs) is None


# ------------------------------------------------------------- type errors


def _real_scalar(argument, value, what):
    return (
        f"`{argument}` must be a real scalar (a Python number or a 0-d real array), "
        f"not {what}. Received: {argument}={value!r}"
    )


BAD_TYPES = [
    (True, "a bool"),
    (np.bool_(False), "a bool"),
    ("0.1", "str"),
    (None, "NoneType"),
    ([0.1], "list"),
    (1 + 2j, "complex"),
    (jnp.ones(2), "an array of shape (2,)"),
    (np.ones((1, 1)), "an array of shape (1, 1)"),
    (jnp.asarray(True), "a bool array"),
    (jnp.asarray(1 + 1j, jnp.complex64), "a complex array"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("value", "what"), BAD_TYPES, ids=[w for _, w in BAD_TYPES])
def test_numbers_refuse_other_types(name, value, what):
    for argument in NUMERIC[name] + (("dampening",) if name == "SGD" else ()):
        with pytest.raises(TypeError) as error:
            getattr(jsgd.torch, name)(**{argument: value})
        assert str(error.value) == _real_scalar(argument, value, what)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [1, 0, None, "yes", np.ones(2)], ids=repr)
def test_switches_must_be_bools(name, value):
    for argument in SWITCHES[name]:
        with pytest.raises(TypeError) as error:
            getattr(jsgd.torch, name)(**{argument: value})
        assert (
            str(error.value)
            == f"`{argument}` must be a bool. Received: {argument}={value!r}"
        )


@pytest.mark.parametrize("name", NAMES)
def test_switches_take_numpy_and_python_bools(name):
    for argument in SWITCHES[name]:
        if argument == "nesterov":
            getattr(jsgd.torch, name)(nesterov=True, momentum=0.9)
        else:
            getattr(jsgd.torch, name)(**{argument: True})


@pytest.mark.parametrize("name", WITH_BETAS)
def test_betas_must_be_a_pair_of_numbers(name):
    make = getattr(jsgd.torch, name)
    for betas in [(0.9,), 0.9, (0.9, 0.99, 0.999), None, "ab"]:
        with pytest.raises(TypeError) as error:
            make(betas=betas)
        assert str(error.value) == (
            f"`betas` must be a pair (beta1, beta2). Received: betas={betas!r}"
        )
    with pytest.raises(TypeError) as error:
        make(betas=(0.9, "a"))
    assert str(error.value) == _real_scalar("betas[1]", "a", "str")
    with pytest.raises(TypeError) as error:
        make(betas=(True, 0.9))
    assert str(error.value) == _real_scalar("betas[0]", True, "a bool")
    make(betas=[0.8, 0.9])  # a list, as torch takes
    make(betas=(jnp.float32(0.8), np.float64(0.9)))


@pytest.mark.parametrize("name", NAMES)
def test_the_shared_keywords_refuse_bad_values(name):
    make = getattr(jsgd.torch, name)
    for value in [{"params": "b"}, "b", 3]:
        with pytest.raises(TypeError) as error:
            make(param_groups=value)
        assert str(error.value) == (
            f"`param_groups` must be a list of dicts or None. Received: "
            f"param_groups={value!r}"
        )
    with pytest.raises(TypeError) as error:
        make(scheduler="StepLR")
    assert str(error.value) == (
        "`scheduler` must be a jsgd.torch.lr_scheduler scheduler or None. "
        "Received: scheduler='StepLR'"
    )
    for value in [0, -1, 2.0, True]:
        with pytest.raises(ValueError) as error:
            make(steps_per_epoch=value)
        assert str(error.value) == (
            f"`steps_per_epoch` must be an integer >= 1. Received: "
            f"steps_per_epoch={value!r}"
        )


# ------------------------------------------------------------ param_groups

PARAMS = {"enc": {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}, "head": jnp.ones(3)}
PATHS_SHOWN = "'enc/b', 'enc/w', 'head'"


def _step(tx, with_params=True):
    state = tx.init(PARAMS)
    return tx.update(PARAMS, state, PARAMS if with_params else None)


def test_param_groups_entries_must_be_dicts_with_params():
    with pytest.raises(
        TypeError, match=r"^param_groups\[0\] must be a dict\. Received: 'b'$"
    ):
        jsgd.torch.SGD(param_groups=["b"])
    with pytest.raises(ValueError) as error:
        jsgd.torch.Adam(param_groups=[{"params": "b"}, {"lr": 0.1}])
    assert str(error.value) == (
        "param_groups[1] has no 'params': a regular expression, a list of paths or a "
        "callable (path, leaf) -> bool selecting its leaves"
    )
    jsgd.torch.SGD(param_groups=({"params": "b"},))  # a tuple is a list
    jsgd.torch.SGD(param_groups=[])


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_refuse_unknown_keys(name):
    dtypes = [  # jsgd's per-group state dtypes
        n
        for n in inspect.signature(getattr(jsgd.torch, name)).parameters
        if n.endswith("_dtype")
    ]
    own = [n for n, _ in TORCH_SIGNATURES[name]]
    own = [*own[:-1], *dtypes, own[-1]] if own[-1] == "maximize" else [*own, *dtypes]
    allowed = ", ".join(["params", "name", *own])
    for key in [
        "weight_deacy",
        "scheduler",
        "steps_per_epoch",
        "param_groups",
        "foreach",
    ]:
        with pytest.raises(ValueError) as error:
            getattr(jsgd.torch, name)(
                param_groups=[{"params": "b"}, {"params": "w", key: 0.1}]
            )
        assert str(error.value) == (
            f"param_groups[1] has the unknown key {key!r}; a group may set {allowed}"
        )


GROUP_REFUSALS = [
    *[c for c in TORCH_REFUSALS if "nesterov" not in c[1]][::3],
    ("SGD", {"nesterov": True}),
    ("SGD", {"momentum": 0.9, "dampening": 0.5, "nesterov": True}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"), GROUP_REFUSALS, ids=[_case_id(*c) for c in GROUP_REFUSALS]
)
def test_a_groups_bad_value_names_the_group(name, kwargs):
    """torch's message, prefixed ``param_groups[1]: `` (torch itself does not
    check a group's values)."""
    expected = torch_message(f"refuses/{_case_id(name, kwargs)}", name, kwargs)
    assert expected is not None
    with pytest.raises(ValueError) as error:
        getattr(jsgd.torch, name)(
            param_groups=[{"params": "b"}, {"params": "w", **kwargs}]
        )
    assert str(error.value) == f"param_groups[1]: {expected}"


def test_adagrad_refuses_a_groups_initial_accumulator_value():
    """torch ignores it (every sum starts at the constructor's value;
    test_torch_optimizers checks that against torch)."""
    with pytest.raises(ValueError) as error:
        jsgd.torch.Adagrad(
            param_groups=[{"params": "b", "initial_accumulator_value": 2.0}]
        )
    assert str(error.value) == (
        "param_groups[0]: torch's Adagrad ignores a group's initial_accumulator_value "
        "(every group starts from the constructor's, 0); jsgd.torch refuses it rather "
        "than ignore it. Received: initial_accumulator_value=2.0"
    )
    jsgd.torch.Adagrad(
        initial_accumulator_value=0.5,
        param_groups=[{"params": "b", "initial_accumulator_value": 0.5}],
    )


def test_a_groups_type_errors_name_the_group():
    with pytest.raises(TypeError) as error:
        jsgd.torch.RMSprop(param_groups=[{"params": "b", "centered": 1}])
    assert (
        str(error.value)
        == "param_groups[0]: `centered` must be a bool. Received: centered=1"
    )
    with pytest.raises(TypeError) as error:
        jsgd.torch.Adagrad(param_groups=[{"params": "b", "lr": "x"}])
    assert str(error.value) == "param_groups[0]: " + _real_scalar("lr", "x", "str")
    with pytest.raises(ValueError) as error:
        jsgd.torch.SGD(param_groups=[{"params": "b", "momentum": 2.0}])
    assert str(error.value) == (
        f"param_groups[0]: Invalid momentum value: 2.0 {_above_one('momentum')}"
    )
    with pytest.raises(TypeError) as error:
        jsgd.torch.Adam(param_groups=[{"params": "b", "betas": (0.9,)}])
    assert str(error.value) == (
        "param_groups[0]: `betas` must be a pair (beta1, beta2). Received: betas=(0.9,)"
    )
    with pytest.raises(
        TypeError, match=r"^param_groups\[0\]\['name'\] must be a str\. Received: 3$"
    ):
        jsgd.torch.SGD(param_groups=[{"params": "b", "name": 3}])
    jsgd.torch.SGD(param_groups=[{"params": "b", "name": "biases"}])


def test_a_leaf_in_two_groups_names_both():
    tx = jsgd.torch.SGD(param_groups=[{"params": "enc"}, {"params": ["enc/b"]}])
    with pytest.raises(ValueError) as error:
        tx.init(PARAMS)
    assert str(error.value) == (
        "The parameter 'enc/b' is selected by param_groups[0] and param_groups[1]; "
        'torch refuses a parameter in two groups ("some parameters appear in more '
        'than one parameter group").'
    )


def test_torch_refuses_a_parameter_in_two_groups_too():
    """The message jsgd quotes is torch's."""
    expected = "some parameters appear in more than one parameter group"

    def refuse():
        torch = _golden.torch
        p = torch.zeros(1, requires_grad=True)
        try:
            torch.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
        except ValueError as error:
            return _encode(str(error))
        return _encode(None)

    assert _decode(golden("two-groups", refuse)) == expected


def test_a_list_selector_naming_a_missing_path():
    tx = jsgd.torch.Adam(param_groups=[{"params": ["enc/b", "dec/x"]}])
    with pytest.raises(ValueError) as error:
        tx.init(PARAMS)
    assert str(error.value) == (
        "param_groups[0]['params'] names ['dec/x'], which are not parameter paths; "
        f"the paths are {PATHS_SHOWN}"
    )


def test_selectors_of_the_wrong_kind():
    for selector in [3, ["enc/b", 3], None]:
        with pytest.raises(TypeError) as error:
            jsgd.torch.SGD(param_groups=[{"params": selector}])
        assert str(error.value) == (
            "param_groups[0]['params'] must be a regular expression, a list of path "
            f"strings or a callable (path, leaf) -> bool. Received: {selector!r}"
        )
    with pytest.raises(re.error) as reason:
        re.compile("((")
    with pytest.raises(ValueError) as error:
        jsgd.torch.SGD(param_groups=[{"params": "(("}])
    assert str(error.value) == (
        f"param_groups[0]['params'] is not a valid regular expression ({reason.value}). "
        "Received: '(('"
    )
    tx = jsgd.torch.SGD(param_groups=[{"params": lambda path, leaf: 1}])
    with pytest.raises(TypeError) as error:
        tx.init(PARAMS)
    assert str(error.value) == (
        "param_groups[0]['params'] must return a bool for ('enc/b', leaf). Received: 1"
    )


@pytest.mark.parametrize("name", [n for n in NAMES if n != "SparseAdam"])
def test_a_callable_selector_needs_params_in_update(name):
    tx = getattr(jsgd.torch, name)(
        param_groups=[{"params": lambda path, leaf: leaf.ndim == 1, "lr": 0.5}]
    )
    with pytest.raises(ValueError) as error:
        _step(tx, with_params=False)
    assert str(error.value) == (
        f"jsgd.torch.{name}: a callable param_groups selector is called with each "
        "parameter, so update() needs `params`."
    )
    _step(tx)
    # Regular expressions and lists select by path alone: no params needed
    # (but AdamW's default decoupled decay needs them).
    no_decay = {"weight_decay": 0.0} if name == "AdamW" else {}
    tx = getattr(jsgd.torch, name)(
        **no_decay, param_groups=[{"params": "b$"}, {"params": ["head"]}]
    )
    _step(tx, with_params=False)


def test_an_empty_group_is_allowed_as_in_torch():
    """A selector that selects nothing makes an empty group (torch takes
    ``{"params": []}``): it still counts for a per-group scheduler."""
    tx = jsgd.torch.SGD(
        lr=0.1,
        param_groups=[{"params": "nothing"}, {"params": []}],
        scheduler=lr_scheduler.OneCycleLR(max_lr=[0.1, 0.2, 0.3], total_steps=10),
    )
    _step(tx)
    tx = jsgd.torch.SGD(
        param_groups=[{"params": "nothing"}],
        scheduler=lr_scheduler.OneCycleLR(max_lr=[0.1, 0.2, 0.3], total_steps=10),
    )
    with pytest.raises(ValueError) as error:
        tx.init(PARAMS)
    assert str(error.value) == (
        "max_lr must have the same length as optimizer.param_groups. max_lr has 3 "
        "values, param_groups has 2."
    )


def test_cycle_momentum_needs_momentum_or_betas():
    with pytest.raises(ValueError) as error:
        jsgd.torch.Adagrad(
            scheduler=lr_scheduler.OneCycleLR(max_lr=0.1, total_steps=10)
        )
    assert str(error.value) == (
        "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
    )


# ------------------------------------------------------ sparse gradients

TABLE = jnp.zeros((5, 3))
SPARSE = jsgd.IndexedSlices(jnp.ones((2, 3)), jnp.array([1, 1]), (5, 3))


def _torch_sparse_error(name: str, kwargs: dict[str, Any], dense: bool = False):
    torch = _golden.torch
    p = torch.zeros(5, 3, requires_grad=True)
    opt = getattr(torch.optim, name)([p], **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grad = torch.sparse_coo_tensor(torch.tensor([[1, 1]]), torch.ones(2, 3), (5, 3))
        p.grad = grad.to_dense() if dense else grad
        try:
            opt.step()
        except RuntimeError as error:
            return _encode(str(error))
    return _encode(None)


SPARSE_ERRORS = [
    ("Adam", {}, False),
    # torch's AdamW is Adam's subclass: "Adam does not support ...".
    ("AdamW", {}, False),
    ("Adam", {"weight_decay": 0.1, "amsgrad": True}, False),
    ("RMSprop", {}, False),
    ("RMSprop", {"momentum": 0.9, "centered": True}, False),
    ("Adagrad", {"weight_decay": 0.1}, False),
    ("SparseAdam", {}, True),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "dense"),
    SPARSE_ERRORS,
    ids=[_case_id(n, k) for n, k, _ in SPARSE_ERRORS],
)
def test_torchs_sparse_errors(name, kwargs, dense):
    """torch's message, then where: "(the update at the root is ...)". torch
    raises RuntimeError at ``step()``; jsgd a TypeError at ``update``."""
    key = f"sparse/{_case_id(name, kwargs)}"
    expected = _decode(golden(key, lambda: _torch_sparse_error(name, kwargs, dense)))
    assert expected is not None
    tx = getattr(jsgd.torch, name)(**kwargs)
    kind = "dense" if dense else "an IndexedSlices"
    with pytest.raises(TypeError) as error:
        tx.update(jnp.ones((5, 3)) if dense else SPARSE, tx.init(TABLE), TABLE)
    assert str(error.value) == f"{expected} (the update at the root is {kind})"


def test_sparse_errors_name_the_leaf_and_follow_the_groups():
    params = {"emb": TABLE, "head": jnp.ones(3)}
    grads = {"emb": SPARSE, "head": jnp.ones(3)}
    tx = jsgd.torch.Adam()
    with pytest.raises(
        TypeError, match=r"\(the update at \['emb'\] is an IndexedSlices\)$"
    ):
        tx.update(grads, tx.init(params), params)
    tx = jsgd.torch.SparseAdam()
    with pytest.raises(TypeError, match=r"\(the update at \['head'\] is dense\)$"):
        tx.update(grads, tx.init(params), params)
    # Adagrad: weight decay only in the dense leaf's group is fine (torch
    # checks per group too); in the sparse leaf's group it is refused.
    tx = jsgd.torch.Adagrad(param_groups=[{"params": "head", "weight_decay": 0.1}])
    tx.update(grads, tx.init(params), params)
    tx = jsgd.torch.Adagrad(param_groups=[{"params": "emb", "weight_decay": 0.1}])
    with pytest.raises(TypeError) as error:
        tx.update(grads, tx.init(params), params)
    assert str(error.value) == (
        "weight_decay option is not compatible with sparse gradients (the update at "
        "['emb'] is an IndexedSlices)"
    )


def test_sparse_adam_refuses_complex_parameters():
    def torch_refusal():
        torch = _golden.torch
        try:
            torch.optim.SparseAdam(
                [torch.zeros(2, dtype=torch.complex64, requires_grad=True)]
            )
        except ValueError as error:
            return _encode(str(error))
        return _encode(None)

    expected = _decode(golden("sparse-adam-complex", torch_refusal))
    assert expected == (
        "Complex params at indices [[0, 0]]: SparseAdam does not support complex "
        "parameters"
    )
    tx = jsgd.torch.SparseAdam()
    with pytest.raises(ValueError) as error:
        tx.init({"a": jnp.zeros(2), "z": jnp.zeros(2, jnp.complex64)})
    # jsgd names the leaves by path where torch gives group and list indices.
    assert str(error.value) == (
        "Complex params at ['z']: SparseAdam does not support complex parameters"
    )


# ------------------------------------------------------------- signatures


@pytest.mark.parametrize("name", NAMES)
def test_the_signatures_are_torchs(name):
    parameters = inspect.signature(getattr(jsgd.torch, name)).parameters.values()
    dtypes = [p for p in parameters if p.name.endswith("_dtype")]  # jsgd's
    parameters = [p for p in parameters if p not in dtypes]
    own = [p for p in parameters if p.name not in JSGD_KEYWORDS]
    assert _typed(_signature(own)) == _typed(TORCH_SIGNATURES[name])
    extra = [p for p in parameters if p.name in JSGD_KEYWORDS]
    assert [(p.name, p.default, p.kind) for p in extra] == [
        (k, None, inspect.Parameter.KEYWORD_ONLY) for k in JSGD_KEYWORDS
    ]
    # The state dtypes, last: every buffer's, then each one's by torch's name.
    assert dtypes[0].name == "accumulator_dtype"
    for p in dtypes:
        assert (p.default, p.kind) == (None, inspect.Parameter.KEYWORD_ONLY)
    # Positional as torch's are, but maximize: keyword-only in jsgd (torch's
    # RMSprop and SparseAdam also take it by position).
    for p in own:
        expected = (
            inspect.Parameter.KEYWORD_ONLY
            if p.name == "maximize"
            else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        assert p.kind == expected, p.name


@pytest.mark.parametrize("name", NAMES)
def test_the_signature_table_is_torchs(name):
    if not _golden.LIVE:
        pytest.skip("needs torch (JSGD_TORCH=golden or torch not installed)")
    init = getattr(_golden.torch.optim, name).__init__
    parameters = [
        p
        for p in inspect.signature(init).parameters.values()
        if p.name not in ("self", "params", *PERFORMANCE)
    ]
    assert _typed(_signature(parameters)) == _typed(TORCH_SIGNATURES[name])


@pytest.mark.parametrize("name", NAMES)
def test_the_defaults_build_and_step(name):
    tx = getattr(jsgd.torch, name)()
    grads = SPARSE if name == "SparseAdam" else jnp.ones((5, 3))
    updates, _ = tx.update(grads, tx.init(TABLE), TABLE)
    assert np.all(np.isfinite(np.asarray(jsgd.apply_updates(TABLE, updates))))


def test_nesterov_is_checked_per_group_after_the_values():
    """torch checks nesterov against the constructor's values; jsgd checks each
    group's merged values too (a group may not break it)."""
    with pytest.raises(ValueError) as error:
        jsgd.torch.SGD(
            momentum=0.9,
            nesterov=True,
            param_groups=[{"params": "b", "dampening": 0.1}],
        )
    assert str(error.value) == (
        "param_groups[0]: Nesterov momentum requires a momentum and zero dampening"
    )
    jsgd.torch.SGD(
        momentum=0.9,
        nesterov=True,
        param_groups=[{"params": "b", "dampening": 0.1, "nesterov": False}],
    )


def test_messages_show_the_value_as_torch_does():
    """An int stays an int, a float32 shows its double (as torch's f-string)."""
    for value, shown in [
        (-1, "-1"),
        (-1.0, "-1.0"),
        (np.float32(-0.1), "-0.10000000149011612"),
    ]:
        with pytest.raises(
            ValueError, match="^" + re.escape(f"Invalid learning rate: {shown}") + "$"
        ):
            jsgd.torch.Adagrad(lr=value)


# torch checks in its own order, not the signature's: Adam and AdamW lr, eps,
# betas, weight_decay; SparseAdam lr, eps, betas; RMSprop lr, eps, momentum,
# weight_decay, alpha; SGD lr, momentum, weight_decay (and jsgd's dampening
# after them). With two bad values jsgd names torch's first.
CHECK_ORDER = [
    ("SGD", {"dampening": -1.0, "weight_decay": -1.0}),
    ("Adam", {"betas": (2.0, 0.9), "eps": -1.0}),
    ("AdamW", {"betas": (0.9, 1.0), "eps": -1.0}),
    ("SparseAdam", {"betas": (2.0, 0.9), "eps": 0.0}),
    ("RMSprop", {"alpha": -1.0, "eps": -1.0}),
    ("RMSprop", {"weight_decay": -1.0, "momentum": -1.0}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"), CHECK_ORDER, ids=[_case_id(*c) for c in CHECK_ORDER]
)
def test_two_bad_values_name_torchs_first(name, kwargs):
    expected = torch_message(f"refuses/{_case_id(name, kwargs)}", name, kwargs)
    with pytest.raises(ValueError) as error:
        getattr(jsgd.torch, name)(**kwargs)
    assert str(error.value) == expected
