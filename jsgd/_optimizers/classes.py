"""The Keras-style optimizer classes: ``SGD``, ``Adagrad``, ``RMSprop``, ``Adam``.

A class such as :class:`jsgd.SGD` holds nothing but its configuration and the
gradient transformation its factory builds from it: no math, no defaults and
no checks live here. ``class SGD(KerasOptimizer, factory=sgd)`` derives the
class's signature (the factory's positional arguments, then ``name``, then
every other argument keyword-only), defaults and ``get_config`` key order
from the factory's spec. Its objects are immutable and hashable (usable as
``jit`` static arguments), and each *is* a gradient transformation (``init``
/ ``update``), so it drops into ``optax.chain``, ``optax.MultiSteps``,
``optax.inject_hyperparams`` or ``flax.nnx.Optimizer``.
"""

from __future__ import annotations

import inspect
import numbers
import re
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.core import Tracer

from jsgd import schedules
from jsgd._common import validation as _validation
from jsgd._optimizers import spec as _spec
from jsgd._optimizers.factories import adagrad, adam, rmsprop, sgd
from jsgd._training.fused import apply_gradients
from jsgd._training.loop import gradient_step


def _serializable(name: str, value: Any) -> Any:
    """A hyperparameter as a JSON value, or a TypeError saying why it isn't one."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, tuple):
        if all(isinstance(v, str) for v in value):
            return list(value)  # weight_decay_exclude's patterns
        raise TypeError(f"`{name}` cannot be serialized. Received: {name}={value!r}")
    if isinstance(value, schedules.LearningRateSchedule):
        return schedules.serialize(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, Tracer):
        raise TypeError(
            f"`{name}` is a traced value and cannot be serialized by get_config(). "
            f"Received: {name}={value!r}"
        )
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        return value.item()
    if callable(value):
        raise TypeError(
            f"`{name}` is a Python callable ({value!r}) and cannot be serialized "
            "by get_config(). Use a number or a jsgd.schedules object, or rebuild "
            "the optimizer in code."
        )
    raise TypeError(f"`{name}` cannot be serialized. Received: {name}={value!r}")


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a hyperparameter, equal for equal configurations."""
    if isinstance(value, Tracer):
        return ("traced", id(value))
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        return ("array", jnp.dtype(value.dtype).name, value.item())
    if isinstance(value, np.dtype):
        return ("dtype", value.name)
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return value


def _plain(value: Any) -> Any:
    """Turns NumPy real scalars into Python numbers.

    NumPy values are never traced, and as numbers they keep
    ``from_config(get_config())`` equal to the original.
    """
    is_numpy_scalar = isinstance(value, np.generic) or (
        isinstance(value, np.ndarray) and value.shape == ()
    )
    if is_numpy_scalar and value.dtype.kind in "iuf":
        return value.item()
    return value


def _with_arguments_docs(doc: str, factory_name: str) -> str:
    """A class docstring with its Args and Raises, which its factory's are."""
    summary, marker, examples = inspect.cleandoc(doc).partition("\nExamples:\n")
    sections = f"""Args:
  name: Keras's optimizer name (kept in the config only). Every other
    argument is :func:`jsgd.{factory_name}`'s: the same names, defaults and
    checks, the positional ones in the same order (``name`` after them).

Raises:
  ValueError, TypeError: as :func:`jsgd.{factory_name}`; TypeError also for an
    unknown keyword (the valid ones are listed) or a non-str ``name``.
"""
    return f"{summary.rstrip()}\n\n{sections}{marker}{examples}"


def _rebuild(cls: type[KerasOptimizer], config: dict[str, Any]) -> KerasOptimizer:
    return cls(**config)


class KerasOptimizer:
    """Shared machinery of the Keras-style optimizer classes.

    A subclass names its factory, ``class SGD(KerasOptimizer, factory=sgd)``,
    and gets from the factory's :class:`~jsgd._optimizers.spec.OptimizerSpec`
    its signature, defaults, properties for every hyperparameter and
    ``get_config``'s keys; ``__init__`` binds the arguments to that signature,
    checks them in its order and builds what ``factory(**hyperparameters)``
    builds.
    """

    __slots__ = ("_config", "_transformation")

    _spec: ClassVar[_spec.OptimizerSpec]
    _defaults: ClassVar[dict[str, Any]] = {}
    __signature__: ClassVar[inspect.Signature]

    @staticmethod
    def _normalize(config: dict[str, Any]) -> dict[str, Any]:
        """Puts equivalent spellings of a dtype into one canonical form."""
        return {
            key: _validation.canonical_dtype(key, value)
            if key.endswith("_dtype") and value is not None
            else value
            for key, value in config.items()
        }

    def __init_subclass__(
        cls,
        *,
        factory: Callable[..., optax.GradientTransformationExtraArgs],
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        spec = _spec.spec_of(factory)
        cls._spec = spec
        cls._defaults = spec.defaults
        name = inspect.Parameter(
            "name",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=spec.class_name,
            annotation=str,
        )
        parameters = list(spec.signature.parameters.values())
        split = len(spec.positional)
        cls.__signature__ = spec.signature.replace(
            parameters=[*parameters[:split], name, *parameters[split:]],
            return_annotation=inspect.Signature.empty,
        )

        # A per-class __init__ carrying the signature, for tools that read
        # __init__ rather than the class (griffe, help()).
        def __init__(self: KerasOptimizer, *args: Any, **kwargs: Any) -> None:
            KerasOptimizer.__init__(self, *args, **kwargs)

        self_parameter = inspect.Parameter(
            "self", inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        __init__.__signature__ = cls.__signature__.replace(  # pyright: ignore[reportFunctionMemberAccess]
            parameters=[self_parameter, *cls.__signature__.parameters.values()]
        )
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__
        cls.__doc__ = _with_arguments_docs(cls.__doc__ or "", factory.__name__)
        for key in cls._defaults:
            if key not in cls.__dict__:
                setattr(cls, key, property(lambda self, key=key: self._config[key]))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls_name = type(self).__name__
        valid = ["name", *self._defaults]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise TypeError(
                f"{cls_name} got unknown keyword argument(s): {unknown}"
                f"{_spec.lr_hint(unknown)}. "
                f"Valid keywords: {valid}"
            )
        try:
            bound = self.__signature__.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{cls_name}() {error}") from None
        bound.apply_defaults()
        arguments = {k: _plain(v) for k, v in bound.arguments.items()}
        for key, check in self._spec.checks.items():
            if check is _spec.switch and isinstance(arguments[key], np.bool_):
                arguments[key] = bool(arguments[key])  # a switch, so a Python bool
        name = arguments.pop("name")
        # In the class's signature order: the positional arguments, `name`,
        # then the rest; then the family builds what the factory would.
        positional = self._spec.positional
        self._spec.validate(arguments, positional)
        if not isinstance(name, str):
            raise TypeError(f"`name` must be a str. Received: name={name!r}")
        rest = tuple(n for n in arguments if n not in positional)
        self._spec.validate(arguments, rest)
        transformation = self._spec.build(arguments)
        object.__setattr__(
            self, "_config", self._normalize({"name": name, **arguments})
        )
        object.__setattr__(self, "_transformation", transformation)

    # --- the gradient-transformation protocol ---------------------------------

    @property
    def transformation(self) -> optax.GradientTransformationExtraArgs:
        """The underlying ``optax.GradientTransformationExtraArgs``."""
        return self._transformation

    def init(self, params: optax.Params) -> optax.OptState:
        """Returns the initial optimizer state for ``params``."""
        return self._transformation.init(params)

    def update(
        self,
        updates: optax.Updates,
        state: optax.OptState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, optax.OptState]:
        """Transforms gradients into updates; returns ``(updates, new_state)``.

        Raises:
          TypeError: if ``state`` was not made by this optimizer's ``init``.
        """
        return self._transformation.update(updates, state, params, **extra_args)

    def apply_gradients(
        self, grads: optax.Updates, state: optax.OptState, params: optax.Params
    ) -> tuple[optax.Params, optax.OptState]:
        """Keras's name for one applied step: see :func:`jsgd.apply_gradients`.

        Returns ``(new_params, new_state)``, fused into one native kernel
        where :func:`jsgd.apply_gradients` covers the configuration.
        """
        return apply_gradients(self._transformation, grads, state, params)

    def minimize(
        self,
        loss_fn: Callable[[optax.Params], jax.Array],
        params: optax.Params,
        state: optax.OptState | None = None,
    ) -> tuple[optax.Params, optax.OptState]:
        """One functional step on ``loss_fn``; returns ``(params, state)``.

        The JAX form of Keras's ``opt.minimize(loss, var_list)``: the gradient
        of ``loss_fn`` at ``params`` is transformed and applied. ``state=None``
        starts from ``init(params)``. Wrap it in ``jax.jit`` for speed.
        """
        if state is None:
            state = self.init(params)
        params, state, _ = gradient_step(loss_fn, self._transformation, params, state)
        return params, state

    # --- configuration ----------------------------------------------------------

    @property
    def name(self) -> str:
        """The optimizer's name (Keras's ``name`` argument)."""
        return self._config["name"]

    def get_config(self) -> dict[str, Any]:
        """A JSON-serializable dict that ``from_config`` turns back into ``self``.

        Numbers, NumPy scalars, bools, ``None`` and dtypes round-trip exactly. A
        concrete JAX array hyperparameter is written as its value (a number),
        so the rebuilt optimizer holds a number: its updates are identical,
        but it compares unequal to the original, and a ``momentum`` of array
        0 (which keeps a velocity) comes back as the number 0 (which keeps
        none).

        Raises:
          TypeError: if a hyperparameter is a Python callable or a traced array.
        """
        config = {"name": self.name}
        for key, default in self._defaults.items():
            value = self._config[key]
            if key in self._spec.config_keys or _frozen(value) != _frozen(default):
                config[key] = _serializable(key, value)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        """Rebuilds an optimizer from ``get_config()``'s output.

        A ``learning_rate`` given as a ``{"class_name": ..., "config": ...}``
        dict (jsgd's or Keras's serialized schedule) becomes a
        ``jsgd.schedules`` object; other Keras keys are accepted by name.
        """
        config = dict(config)
        if isinstance(config.get("weight_decay_exclude"), list):
            config["weight_decay_exclude"] = tuple(config["weight_decay_exclude"])
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def replace(self, **changes: Any):
        """Returns a copy with some hyperparameters changed."""
        return type(self)(**{**self._config, **changes})

    def exclude_from_weight_decay(
        self,
        var_list: Any = None,
        var_names: Any = None,
        *,
        by_path: bool | None = None,
    ):
        """A copy whose decoupled weight decay skips some leaves (Keras 3's).

        Keras's ``exclude_from_weight_decay(var_list, var_names)`` made
        immutable: this returns a new optimizer (the same otherwise) and, as
        in Keras, replaces any earlier exclusion. A leaf is excluded when
        ``re.search("|".join(var_names), name)`` matches its name: the last
        key of its path (``"bias"`` in ``{"dense": {"bias": w}}``), or with
        ``by_path=True`` the path joined with ``"/"`` (``"dense/bias"``).
        Keras variables mean nothing for pytrees: ``var_list`` is a list of
        such "/"-joined paths, each excluded exactly (it implies
        ``by_path=True``). Sets ``weight_decay_exclude`` and
        ``weight_decay_exclude_by_path`` (in ``get_config``).

        Raises:
          TypeError: for a ``var_list`` or ``var_names`` that is not a list
            (or tuple) of str, e.g. Keras variables.
          ValueError: for an invalid regular expression, or ``var_list``
            with ``by_path=False``.
        """
        patterns: list[str] = []
        for argument, value in (("var_list", var_list), ("var_names", var_names)):
            if value is None:
                continue
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(
                    f"`{argument}` must be a list of str"
                    + (
                        " (paths such as 'dense/bias': Keras variables have no "
                        "meaning for JAX pytrees)"
                        if argument == "var_list"
                        else ""
                    )
                    + f". Received: {argument}={value!r}"
                )
        if var_list:
            if by_path is False:
                raise ValueError(
                    "`var_list` holds paths: it needs by_path=True (or None)."
                )
            by_path = True
            patterns += [f"^{re.escape(p)}$" for p in var_list]
        if var_names:
            patterns += list(var_names)
        return self.replace(
            weight_decay_exclude=tuple(patterns) or None,
            weight_decay_exclude_by_path=bool(by_path),
        )

    # --- Keras 3's optimizer variables (jsgd._optimizers.keras_variables) -------

    def keras_variables(
        self, params: optax.Params, state: optax.OptState, **kwargs: Any
    ) -> list[np.ndarray]:
        """Keras 3's ``optimizer.variables`` values from ``state``.

        See :func:`jsgd.keras_variables` (``order=``).
        """
        from jsgd._optimizers import keras_variables as _kv

        return _kv.keras_variables(self, params, state, **kwargs)

    def state_from_keras(
        self, params: optax.Params, variables: Any, **kwargs: Any
    ) -> optax.OptState:
        """A state from Keras 3's ``optimizer.variables`` (Variables or arrays).

        See :func:`jsgd.state_from_keras_variables` (``order=``).
        """
        from jsgd._optimizers import keras_variables as _kv

        return _kv.state_from_keras_variables(self, params, variables, **kwargs)

    def iterations(self, state: optax.OptState) -> jax.Array:
        """Keras's ``optimizer.iterations`` from ``state``.

        See :func:`jsgd.keras_iterations`.
        """
        from jsgd._optimizers import keras_variables as _kv

        return _kv.keras_iterations(self, state)

    # --- value semantics --------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        return (type(self), *((k, _frozen(v)) for k, v in self._config.items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KerasOptimizer):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} objects are immutable; use .replace({name}=...)."
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} objects are immutable.")

    def __reduce__(self):
        return (_rebuild, (type(self), dict(self._config)))

    def __repr__(self) -> str:
        shown = [f"name={self.name!r}"]
        for key, default in self._defaults.items():
            value = self._config[key]
            if _frozen(value) != _frozen(default):
                shown.append(f"{key}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


class SGD(KerasOptimizer, factory=sgd):
    """Keras's ``SGD`` optimizer as an immutable JAX gradient transformation.

    The update rule, its state and every argument are :func:`jsgd.sgd`'s
    (Keras's rule by default, optax's and torch's with
    ``lr_in_velocity=False``).

    An ``SGD`` object *is* a gradient transformation: it has ``init`` and
    ``update`` and drops into ``optax.chain``, ``optax.MultiSteps``,
    ``optax.apply_if_finite`` and ``flax.nnx.Optimizer``. It is immutable and
    hashable (equal configurations compare equal), so it can be a static
    argument of ``jax.jit``; ``replace(**changes)`` gives a modified copy.
    ``get_config()`` / ``SGD.from_config(config)`` round-trip it through JSON
    with Keras's key names.

    Examples:
      The legacy tf.keras (TF 2.x ``OptimizerV2``) doctests, on
      ``loss = var**2 / 2`` from 1.0:

      >>> import jax.numpy as jnp, jsgd
      >>> loss = lambda var: var**2 / 2.0
      >>> opt = jsgd.SGD(learning_rate=0.1)
      >>> var, state = opt.minimize(loss, jnp.array(1.0))
      >>> print(f"{float(var):.1f}")
      0.9
      >>> opt = jsgd.SGD(learning_rate=0.1, momentum=0.9)
      >>> val0 = jnp.array(1.0)
      >>> val1, state = opt.minimize(loss, val0)
      >>> print(f"{float(val0 - val1):.2f}")  # first step is -lr * grad
      0.10
      >>> val2, state = opt.minimize(loss, val1, state)
      >>> print(f"{float(val1 - val2):.2f}")  # later steps grow with momentum
      0.18
      >>> config = opt.get_config()
      >>> config["name"], config["learning_rate"], config["momentum"]
      ('SGD', 0.1, 0.9)
    """

    __slots__ = ()


class Adagrad(KerasOptimizer, factory=adagrad):
    """Keras's ``Adagrad`` as an immutable JAX gradient transformation.

    The update rule, its state and every argument are :func:`jsgd.adagrad`'s.
    Behaves like :class:`jsgd.SGD`: ``init``/``update``, ``minimize``,
    ``get_config``/``from_config``, ``replace``; immutable and hashable.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.Adagrad(learning_rate=0.1, initial_accumulator_value=0.0,
      ...                    epsilon=0.0)
      >>> w, state = opt.minimize(lambda w: w**2 / 2, jnp.array(2.0))
      >>> float(w)  # 2 - 0.1 * 2 / sqrt(4)
      1.899999976158142
    """

    __slots__ = ()


class RMSprop(KerasOptimizer, factory=rmsprop):
    """Keras's ``RMSprop`` as an immutable JAX gradient transformation.

    The update rule, its state and every argument are :func:`jsgd.rmsprop`'s.
    Behaves like :class:`jsgd.SGD`.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.RMSprop(learning_rate=0.01, rho=0.75, epsilon=0.0)
      >>> w, state = opt.minimize(lambda w: w**2 / 2, jnp.array(2.0))
      >>> float(w)  # 2 - 0.01 * 2 / sqrt(0.25 * 4)
      1.9800000190734863
    """

    __slots__ = ()


class Adam(KerasOptimizer, factory=adam):
    """Keras's ``Adam`` as an immutable JAX gradient transformation.

    The update rule, its state and every argument are :func:`jsgd.adam`'s.
    Behaves like :class:`jsgd.SGD`.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.Adam(learning_rate=0.1, epsilon=0.0)
      >>> w, state = opt.minimize(lambda w: w**2 / 2, jnp.array(2.0))
      >>> print(f"{float(w):.4f}")  # the first step is lr * sign(g)
      1.9000
    """

    __slots__ = ()
