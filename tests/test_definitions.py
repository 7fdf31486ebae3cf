"""One definition per optimizer: what the spec derives, checked for every optimizer.

``jsgd._optimizers.spec.REGISTRY`` holds every optimizer's spec; every test
here iterates over it, so an optimizer added by a later issue is covered
without a new line here. The bad values per kind of check are the table
below: each argument gets every bad value of its kind, for the factory and
the class alike, and with two bad arguments the first in signature order is
the one reported.
"""

import functools
import inspect
import itertools
import math
import re

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd
from jsgd._optimizers import spec as _spec
from jsgd._optimizers.classes import KerasOptimizer
from jsgd._optimizers.keras_keywords import KERAS
from jsgd._sparse.indexed_slices import TAKES_INDEXED_SLICES
from jsgd._transforms.weight_decay import check_patterns

# The Keras family's specs (tests/test_torch_definitions.py checks torch's).
SPECS = {n: s for n, s in _spec.REGISTRY.items() if s.family is KERAS}
CLASSES = {cls.__name__: cls for cls in KerasOptimizer.__subclasses__()}
FACTORIES = {name: getattr(jsgd, name.lower()) for name in SPECS}


def _unit(name, shown):
    return ValueError, f"`{name}` must be between [0, 1]. Received: {name}={shown}"


def _non_negative(name, shown):
    return (
        ValueError,
        f"`{name}` must be a finite number >= 0. Received: {name}={shown}",
    )


def _positive(name, shown):
    return ValueError, f"`{name}` must be > 0. Received: {name}={shown}"


def _not_real(why):
    def expected(name, shown):
        return TypeError, (
            f"`{name}` must be a real scalar (a Python number or a 0-d real array), "
            f"{why}. Received: {name}={shown}"
        )

    return expected


def _not_bool(name, shown):
    return TypeError, f"`{name}` must be a bool. Received: {name}={shown}"


def _integer(minimum, optional):
    allowed = f"an integer >= {minimum}" + (" or None" if optional else "")

    def expected(name, shown):
        return ValueError, f"`{name}` must be {allowed}. Received: {name}={shown}"

    return expected


_SCALAR_TYPE_ERRORS = [
    (True, "True", _not_real("not a bool")),
    (1j, "1j", _not_real("not complex")),
    ("0.1", "'0.1'", _not_real("not str")),
    (jnp.ones(2), None, _not_real("not an array of shape (2,)")),
]

# Bad values by kind of check: (value, how the message shows it, expected).
BAD_VALUES = {
    "unit_interval": [
        (-0.1, "-0.1", _unit),
        (1.5, "1.5", _unit),
        (math.nan, "nan", _unit),
        (np.float32(2.0), "2.0", _unit),
        *_SCALAR_TYPE_ERRORS,
    ],
    "non_negative": [
        (-1.0, "-1.0", _non_negative),
        (math.inf, "inf", _non_negative),
        (math.nan, "nan", _non_negative),
        *_SCALAR_TYPE_ERRORS,
    ],
    "learning_rate": [
        (-1.0, "-1.0", _non_negative),
        (math.inf, "inf", _non_negative),
        *_SCALAR_TYPE_ERRORS,
    ],
    "positive": [
        (0.0, "0.0", _positive),
        (-1.0, "-1.0", _positive),
        *_SCALAR_TYPE_ERRORS,
    ],
    "switch": [
        (1, "1", _not_bool),
        ("yes", "'yes'", _not_bool),
        (jnp.array(True), None, _not_bool),
    ],
    "dtype": [
        (
            "int8",
            "'int8'",
            lambda name, shown: (
                TypeError,
                f"`{name}` must be a floating or complex dtype. Received: {name}={shown}",
            ),
        ),
        (
            object(),
            None,
            lambda name, shown: (
                TypeError,
                f"`{name}` must be a dtype or None. Received: {name}={shown}",
            ),
        ),
    ],
    "integer>=1|None": [
        (0, "0", _integer(1, True)),
        (2.5, "2.5", _integer(1, True)),
        (True, "True", _integer(1, True)),
    ],
    "patterns": [
        (
            "bias",
            "'bias'",
            lambda name, shown: (
                TypeError,
                f"`{name}` must be None or a tuple of str (regular expressions). "
                f"Received: {name}={shown}",
            ),
        ),
        (
            ("(",),
            None,
            lambda name, shown: (ValueError, f"`{name}` must hold valid regular"),
        ),
    ],
    "integer>=2": [
        (1, "1", _integer(2, False)),
        (2.5, "2.5", _integer(2, False)),
    ],
}

_NAMED_CHECKS = {
    _spec.unit_interval: "unit_interval",
    _spec.non_negative: "non_negative",
    _spec.learning_rate: "learning_rate",
    _spec.positive: "positive",
    _spec.switch: "switch",
    _spec.dtype: "dtype",
    check_patterns: "patterns",
}


def kind_of(check):
    """The BAD_VALUES key of a spec's check."""
    if isinstance(check, _spec.NoneOr):
        return kind_of(check.check)
    if isinstance(check, functools.partial):
        minimum = check.keywords["minimum"]
        return f"integer>={minimum}" + (
            "|None" if check.keywords.get("optional") else ""
        )
    return _NAMED_CHECKS[check]


def _bad_cases():
    for cls_name, spec in SPECS.items():
        for name, check in spec.checks.items():
            for i, (value, shown, expected) in enumerate(BAD_VALUES[kind_of(check)]):
                yield pytest.param(
                    cls_name, name, value, shown, expected, id=f"{cls_name}-{name}-{i}"
                )


@pytest.mark.parametrize(
    ("cls_name", "name", "value", "shown", "expected"), list(_bad_cases())
)
def test_every_argument_of_every_optimizer_is_checked(
    cls_name, name, value, shown, expected
):
    # An array's or object's repr is not spelled out: the message is matched
    # up to "Received: name=".
    error, text = expected(name, "" if shown is None else shown)
    match = "^" + re.escape(text) + ("" if shown is None else "$")
    with pytest.raises(error, match=match):
        FACTORIES[cls_name](**{name: value})
    with pytest.raises(error, match=match):
        CLASSES[cls_name](**{name: value})


def _first_bad(check):
    value, _shown, _expected = BAD_VALUES[kind_of(check)][0]
    return value


@pytest.mark.parametrize("cls_name", SPECS)
def test_the_first_bad_argument_in_signature_order_is_reported(cls_name):
    spec = SPECS[cls_name]
    names = list(spec.checks)
    for first, second in itertools.combinations(range(len(names)), 2):
        a, b = names[first], names[second]
        arguments = {a: _first_bad(spec.checks[a]), b: _first_bad(spec.checks[b])}
        for make in (FACTORIES[cls_name], CLASSES[cls_name]):
            with pytest.raises((TypeError, ValueError), match=f"^`{a}` must"):
                make(**arguments)


@pytest.mark.parametrize("cls_name", SPECS)
def test_clipnorm_and_global_clipnorm_exclude_each_other(cls_name):
    with pytest.raises(
        ValueError, match=r"^`clipnorm` and `global_clipnorm` cannot both be set"
    ):
        FACTORIES[cls_name](clipnorm=1.0, global_clipnorm=1.0)


@pytest.mark.parametrize("cls_name", SPECS)
def test_class_and_factory_agree(cls_name):
    spec, cls, factory = SPECS[cls_name], CLASSES[cls_name], FACTORIES[cls_name]
    assert _spec.spec_of(factory) is spec
    factory_parameters = inspect.signature(factory).parameters
    class_parameters = dict(inspect.signature(cls).parameters)
    name = class_parameters.pop("name")
    assert name.default == cls_name
    assert list(class_parameters) == list(factory_parameters)
    for key, parameter in factory_parameters.items():
        assert class_parameters[key].default == parameter.default, key
        assert class_parameters[key].kind == parameter.kind, key
    # Positional arguments work the same way for both.
    positional = [
        p.default
        for p in factory_parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    assert cls(*positional).get_config() == cls().get_config()
    # get_config's keys: name first, then signature order.
    config = cls(**{k: v for k, v in _changed_values(spec).items()}).get_config()
    assert list(config) == ["name", *(k for k in factory_parameters if k in config)]
    assert set(spec.config_keys) <= set(cls().get_config())


def _changed_values(spec):
    """A valid non-default value for every argument that has an easy one."""
    changed = {}
    for name, check in spec.checks.items():
        kind = kind_of(check)
        if kind in ("unit_interval", "non_negative", "learning_rate", "positive"):
            changed[name] = 0.5
        elif kind == "switch":
            changed[name] = not spec.defaults[name]
    changed.pop("clipnorm", None)  # excludes global_clipnorm
    return changed


@pytest.mark.parametrize("cls_name", SPECS)
def test_the_shared_keywords_are_documented_once_and_appear_in_every_docstring(
    cls_name,
):
    doc = FACTORIES[cls_name].__doc__
    args = doc[doc.index("Args:") : doc.index("Returns:")]
    for name in SPECS[cls_name].checks:
        assert re.search(rf"^  {name}: ", args, re.M), name
    assert "Args:" in CLASSES[cls_name].__doc__


def test_every_optimizer_takes_the_keras_keywords_in_one_order():
    for spec in SPECS.values():
        assert spec.family is KERAS
        names = list(spec.signature.parameters)
        start = len(spec.positional)
        assert names[start : start + len(KERAS.keywords)] == [
            k.name for k in KERAS.keywords
        ]


@pytest.mark.parametrize("cls_name", SPECS)
def test_classes_are_injectable(cls_name):
    """optax.inject_hyperparams reads the class's (derived) signature."""
    cls = CLASSES[cls_name]
    injected = optax.inject_hyperparams(cls)(learning_rate=0.1)
    params = jnp.ones(3)
    state = injected.init(params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
    updates, _ = injected.update(jnp.ones(3), state, params)
    plain, _ = cls(learning_rate=0.1).update(
        jnp.ones(3), cls(learning_rate=0.1).init(params), params
    )
    # Injected hyperparameters are float32 arrays: Adam's bias correction
    # then rounds differently (6.8e-7 on the first step).
    np.testing.assert_allclose(updates, plain, rtol=2e-5)


@pytest.mark.parametrize("switch", ["nesterov", "amsgrad", "use_ema"])
def test_numpy_bool_switches_round_trip(switch):
    cls = {"nesterov": jsgd.SGD, "amsgrad": jsgd.Adam, "use_ema": jsgd.RMSprop}[switch]
    opt = cls(**{switch: np.True_})
    assert getattr(opt, switch) is True
    again = cls.from_config(opt.get_config())
    assert again == opt and hash(again) == hash(opt)


def test_sparse_support_is_declared_once_and_listed_in_the_docs():
    sparse_specs = {name for name, spec in SPECS.items() if spec.sparse}
    assert sparse_specs == {"SGD", "Adagrad", "RMSprop", "Adam"}
    for name in sparse_specs:
        assert name in TAKES_INDEXED_SLICES and name.lower() in TAKES_INDEXED_SLICES
    with open("docs/sparse.md") as f:
        docs = f.read()
    for name in TAKES_INDEXED_SLICES:
        assert f"`{name}`" in docs, f"docs/sparse.md does not list {name}"
    g = jsgd.IndexedSlices(jnp.ones((1, 2)), jnp.array([0]), (3, 2))
    tx = jsgd.scale_by_adam()  # without sparse_rows
    with pytest.raises(
        TypeError, match="IndexedSlices.*" + re.escape(", ".join(TAKES_INDEXED_SLICES))
    ):
        tx.update({"t": g}, tx.init({"t": jnp.zeros((3, 2))}))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("momentum", "momentum_trace"),
        ("nesterov", "nesterov_trace"),
        ("average_params", "with_ema"),
        ("AverageParamsState", "EmaState"),
    ],
)
def test_renamed_names_warn_and_still_work(old, new):
    with pytest.warns(
        DeprecationWarning, match=f"jsgd.{old} is deprecated.*jsgd.{new}"
    ):
        assert getattr(jsgd, old) is getattr(jsgd, new)
    assert old not in jsgd.__all__ and new in jsgd.__all__


def test_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        jsgd.nonexistent  # noqa: B018


def test_unknown_factory_keyword_names_the_factory():
    with pytest.raises(
        TypeError,
        match=r"^sgd\(\) got an unexpected keyword argument 'lr' \(`lr` is spelled `learning_rate`\)$",
    ):
        jsgd.sgd(lr=0.1)


@pytest.mark.parametrize("cls_name", SPECS)
def test_a_bad_name_is_reported_at_its_place_in_the_class_signature(cls_name):
    spec, cls = SPECS[cls_name], CLASSES[cls_name]
    for name, check in spec.checks.items():
        bad = {name: _first_bad(check), "name": 3}
        expected = (
            f"^`{name}` must" if name in spec.positional else "^`name` must be a str"
        )
        with pytest.raises((TypeError, ValueError), match=expected):
            cls(**bad)
