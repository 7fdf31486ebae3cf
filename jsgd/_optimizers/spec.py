"""One definition per optimizer: its signature plus a declarative spec.

An optimizer is written once, as an explicit factory signature (names, order,
defaults: what ``optax.inject_hyperparams``, :func:`jsgd.sweep`, IDEs and
pyright read) decorated with :func:`optimizer`, which declares the rest: the
check of each argument, the keys ``get_config`` always reports, whether it
takes :class:`jsgd.IndexedSlices`, and the ``core`` that builds its steps.
Everything else is derived from that: the factory's validation (one pass in
signature order, the same for every optimizer), the shared keywords' Args
docs, the Keras-style class (its positional arguments, defaults,
``__init__`` signature and config key order) and the tests' registry
(:data:`REGISTRY`).

The keywords every optimizer of a family shares (Keras 3's base-optimizer
keywords: :data:`KERAS_KEYWORDS`) are defined once, with their checks and
docs, in a :class:`Family`; a family also says how its optimizers wrap their
core (:func:`jsgd._optimizers.keras_keywords.keras_chain` for Keras's).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import optax

from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import takes_indexed_slices

Check = Callable[[str, Any], object]
"""``check(name, value)`` raises for a bad concrete value (its result is unused)."""

_Factory = TypeVar("_Factory", bound=Callable[..., optax.GradientTransformation])


@dataclasses.dataclass(frozen=True)
class NoneOr:
    """``check``, but ``None`` is also accepted (and means "off")."""

    check: Check

    def __call__(self, name: str, value: Any) -> None:
        if value is not None:
            self.check(name, value)


@dataclasses.dataclass(frozen=True)
class Keyword:
    """A keyword shared by every optimizer of a family.

    Attributes:
      name: the argument's name.
      default: its default (each factory's signature must repeat it).
      check: the check of its concrete values.
      doc: its Args entry, written once for every optimizer's docstring.
      excludes: a keyword listed earlier that must not be set together with
        this one; reported when this one is reached.
    """

    name: str
    default: Any
    check: Check
    doc: str
    excludes: str | None = None


@dataclasses.dataclass(frozen=True)
class Family:
    """Optimizers that share keywords and the way their core is wrapped.

    Attributes:
      name: the family's name, as in error messages ("Keras").
      keywords: the shared keywords, in the order every signature lists them
        (right after the positional arguments).
      build: ``build(spec, arguments) -> transformation``: wraps
        ``spec.core`` with the shared keywords.
      rate: the name of the learning-rate argument, every optimizer's first
        (``learning_rate`` in Keras, ``lr`` in torch).
      sparse_switch: the argument sparse optimizers have, and only they
        (Keras's ``lazy``), or ``None``.
      prefix: what :data:`REGISTRY` keys start with (``"torch."``), so that
        two families may both have an ``SGD``.
      checks_in_signature_order: validate in signature order (Keras); if
        False, the own arguments in the order the ``checks`` declaration
        lists them (torch's, which differs from its signatures'), then the
        shared keywords.
    """

    name: str
    keywords: tuple[Keyword, ...]
    build: Callable[[OptimizerSpec, dict[str, Any]], optax.GradientTransformation]
    rate: str = "learning_rate"
    sparse_switch: str | None = "lazy"
    prefix: str = ""
    checks_in_signature_order: bool = True

    @functools.cached_property
    def by_name(self) -> dict[str, Keyword]:
        """The keywords by name."""
        return {k.name: k for k in self.keywords}


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """Everything about one optimizer that is not its math.

    Attributes:
      class_name: the name of its Keras-style class (and its default ``name``).
      family: the :class:`Family` whose keywords it takes.
      signature: the factory's signature: argument names, order and defaults.
      checks: one check per argument of the factory, in signature order.
      config_keys: the keys ``get_config`` reports even at their default.
      sparse: whether it takes :class:`jsgd.IndexedSlices` gradients (it then
        has a ``lazy`` argument).
      core: ``core(lr_t, **own_arguments) -> [steps]``: its math, as jsgd
        transforms, at the learning rate ``lr_t`` the family computes.
      fused: ``fused(arguments) -> rule or None``: the configuration
        :func:`jsgd.apply_gradients` may run as one native kernel (a
        ``FusedSGD``), attached to the transformation's ``init`` as
        ``fused_rule``; ``None`` for optimizers it does not cover.
    """

    class_name: str
    family: Family
    signature: inspect.Signature
    checks: Mapping[str, Check]
    config_keys: tuple[str, ...]
    sparse: bool
    core: Callable[..., list[optax.GradientTransformation]]
    fused: Callable[[dict[str, Any]], Any] | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """Every argument's default, in signature order."""
        return {n: p.default for n, p in self.signature.parameters.items()}

    @property
    def positional(self) -> tuple[str, ...]:
        """The arguments that may be passed by position."""
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return tuple(n for n, p in self.signature.parameters.items() if p.kind is kind)

    @property
    def own_arguments(self) -> tuple[str, ...]:
        """The arguments that are not the family's shared keywords."""
        return tuple(n for n in self.signature.parameters if n not in self.shared)

    @property
    def shared(self) -> dict[str, Keyword]:
        """The family's shared keywords, by name."""
        return self.family.by_name

    def validate(
        self, arguments: Mapping[str, Any], names: tuple[str, ...] | None = None
    ) -> None:
        """Checks the arguments in signature order: the first bad one raises.

        ``names`` limits the check to those arguments (default: all).
        """
        for name, check in self.checks.items():
            if names is not None and name not in names:
                continue
            check(name, arguments[name])
            keyword = self.shared.get(name)
            if keyword is not None and keyword.excludes is not None:
                other = keyword.excludes
                if arguments[other] is not None and arguments[name] is not None:
                    raise ValueError(
                        f"`{other}` and `{name}` cannot both be set. Received: "
                        f"{other}={arguments[other]}, {name}={arguments[name]}"
                    )

    def build(self, arguments: dict[str, Any]) -> optax.GradientTransformation:
        """The transformation of checked arguments (the factory's and the class's).

        With ``fused``, the rule is attached to its ``init`` as ``fused_rule``.
        """
        transformation = self.family.build(self, arguments)
        rule = None if self.fused is None else self.fused(arguments)
        if rule is not None:  # init is this build's own function
            view = getattr(transformation.init, "fused_view", None)
            if view is not None:  # the family's state layout (torch's groups)
                rule = dataclasses.replace(rule, view=view)
            transformation.init.fused_rule = rule  # pyright: ignore
        return transformation

    def bind(self, factory_name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The arguments of one call, defaults filled in, validated."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            hint = lr_hint(kwargs, self.family.rate)
            raise TypeError(f"{factory_name}() {error}{hint}") from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        self.validate(arguments)
        return arguments


def lr_hint(keywords: Any, rate: str = "learning_rate") -> str:
    """A pointer to the family's spelling of the learning rate, if need be.

    When the other family's spelling (torch's ``lr``, Keras's
    ``learning_rate``) was passed.
    """
    other = "lr" if rate == "learning_rate" else "learning_rate"
    return f" (`{other}` is spelled `{rate}`)" if other in keywords else ""


REGISTRY: dict[str, OptimizerSpec] = {}
"""Every optimizer's spec, by family prefix and class name (``"SGD"``,
``"torch.SGD"``): what the tests iterate over."""


def _insert_shared_docs(doc: str, keywords: tuple[Keyword, ...]) -> str:
    """Appends the shared keywords' entries to the end of a docstring's Args."""
    doc = inspect.cleandoc(doc)
    head, marker, tail = doc.partition("\n\nReturns:")
    if not marker:
        raise ValueError("an optimizer's docstring needs Args and Returns sections")
    entries = [
        textwrap.fill(
            f"{k.name}: {k.doc}",
            width=80,
            break_long_words=False,
            break_on_hyphens=False,
            initial_indent="  ",
            subsequent_indent="    ",
        )
        for k in keywords
    ]
    return "\n".join([head, *entries]) + marker + tail


def _check_definition(
    factory: Callable[..., Any], spec: OptimizerSpec, family: Family
) -> None:
    """Rejects, at import time, a definition whose parts disagree."""
    where = f"jsgd.{family.prefix}{factory.__name__}"
    parameters = spec.signature.parameters
    names = list(parameters)
    checked = list(spec.checks)
    if checked != names and (
        family.checks_in_signature_order or set(checked) != set(names)
    ):
        raise AssertionError(f"{where}: checks {checked} != {names}")
    shared_names = [k.name for k in family.keywords]
    start = len(spec.positional)
    if names[start : start + len(shared_names)] != shared_names:
        raise AssertionError(
            f"{where}: the {family.name} keywords must follow the positional "
            f"arguments, in the order {shared_names}"
        )
    for keyword in family.keywords:
        if parameters[keyword.name].default != keyword.default:
            raise AssertionError(f"{where}: default of {keyword.name} differs")
    switch = family.sparse_switch
    if switch is not None and spec.sparse != (switch in parameters):
        raise AssertionError(f"{where}: `{switch}` is for sparse optimizers only")
    core_names = list(inspect.signature(spec.core).parameters)
    expected = [n for n in spec.own_arguments if n != switch]
    if spec.own_arguments[0] != family.rate or core_names != expected:
        raise AssertionError(f"{where}: core takes {core_names}, not {expected}")
    if not set(spec.config_keys) <= set(names):
        raise AssertionError(f"{where}: unknown config keys {spec.config_keys}")


def optimizer(
    *,
    class_name: str,
    family: Family,
    core: Callable[..., list[optax.GradientTransformation]],
    checks: Mapping[str, Check],
    config_keys: tuple[str, ...],
    sparse: bool = False,
    fused: Callable[[dict[str, Any]], Any] | None = None,
) -> Callable[[_Factory], _Factory]:
    """Declares an optimizer: decorates its factory's signature-and-docs stub.

    Args:
      class_name: the Keras-style class's name.
      family: whose shared keywords it takes and how its core is wrapped.
      core: ``core(learning_rate, **own) -> [steps]``, its steps at the
        learning rate ``lr_t`` (own arguments: all but the shared keywords and
        ``lazy``).
      checks: the check of each own argument; the shared keywords' come from
        ``family``.
      config_keys: the keys ``get_config`` always reports.
      sparse: whether it takes :class:`jsgd.IndexedSlices` (with ``lazy``).
      fused: the configurations :func:`jsgd.apply_gradients` fuses (see
        :class:`OptimizerSpec`).

    Returns:
      A decorator turning the stub into the factory: arguments bound and
      checked in signature order, then ``family.build(spec, arguments)``.
    """

    def decorate(stub: _Factory) -> _Factory:
        signature = inspect.signature(stub)
        unknown = [n for n in checks if n not in signature.parameters]
        if unknown:
            raise AssertionError(f"checks for unknown arguments {unknown}")
        order = list(signature.parameters)
        if not family.checks_in_signature_order:
            order = [*checks, *(n for n in order if n not in checks)]
        all_checks = {
            name: checks[name] if name in checks else family.by_name[name].check
            for name in order
        }
        spec = OptimizerSpec(
            class_name=class_name,
            family=family,
            signature=signature,
            checks=all_checks,
            config_keys=config_keys,
            sparse=sparse,
            core=core,
            fused=fused,
        )
        _check_definition(stub, spec, family)

        def factory(*args: Any, **kwargs: Any) -> optax.GradientTransformation:
            return spec.build(spec.bind(stub.__name__, *args, **kwargs))

        # The stub's name and signature, and its docs with the shared keywords'
        # entries; not __wrapped__, so that documentation tools read these.
        for attribute in ("__module__", "__name__", "__qualname__", "__annotations__"):
            setattr(factory, attribute, getattr(stub, attribute))
        factory.__doc__ = _insert_shared_docs(stub.__doc__ or "", family.keywords)
        factory.__signature__ = signature  # pyright: ignore[reportFunctionMemberAccess]
        factory.spec = spec  # pyright: ignore[reportFunctionMemberAccess]
        REGISTRY[family.prefix + class_name] = spec
        if sparse:
            for name in dict.fromkeys((stub.__name__, class_name)):
                takes_indexed_slices(factory, name=family.prefix + name)
        return factory  # pyright: ignore[reportReturnType]

    return decorate


def spec_of(factory: Callable[..., Any]) -> OptimizerSpec:
    """The spec an :func:`optimizer`-decorated factory was declared with."""
    spec = getattr(factory, "spec", None)
    if not isinstance(spec, OptimizerSpec):
        raise TypeError(f"{factory!r} is not a jsgd optimizer factory")
    return spec


# The checks the optimizers' arguments use, by what they require.
learning_rate = _validation.check_learning_rate
unit_interval = _validation.check_unit_interval
non_negative = _validation.check_non_negative
positive = _validation.check_positive
switch = _validation.check_bool
dtype = _validation.canonical_dtype
