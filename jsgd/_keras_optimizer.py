"""The base of jsgd's Keras-style optimizer classes.

A class such as :class:`jsgd.SGD` holds nothing but its configuration and the
gradient transformation built from it: no math lives here. Its objects are
immutable and hashable (usable as ``jit`` static arguments), and each *is* a
gradient transformation (``init`` / ``update``), so it drops into
``optax.chain``, ``optax.MultiSteps`` or ``flax.nnx.Optimizer``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.core import Tracer

from jsgd import _validation, schedules


def _serializable(name: str, value: Any) -> Any:
    """A hyperparameter as a JSON value, or a TypeError saying why it isn't one."""
    if value is None or isinstance(value, (bool, str)):
        return value
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


def _rebuild(cls: type[KerasOptimizer], config: dict[str, Any]) -> KerasOptimizer:
    return cls(**config)


class KerasOptimizer:
    """Shared machinery of the Keras-style optimizer classes.

    Subclasses declare their keywords and defaults in ``_defaults`` (in
    signature order), the keys ``get_config`` always reports in
    ``_always_in_config`` (the others appear only when not at their default),
    and build their transformation in ``_build``.
    """

    __slots__ = ("_config", "_transformation")

    _defaults: ClassVar[dict[str, Any]] = {}
    _always_in_config: ClassVar[tuple[str, ...]] = ()

    # The factory that turns the hyperparameters into the transformation.
    _build: ClassVar[Callable[..., optax.GradientTransformationExtraArgs]]

    @staticmethod
    def _normalize(config: dict[str, Any]) -> dict[str, Any]:
        """Puts equivalent spellings of a dtype into one canonical form."""
        if config.get("accumulator_dtype") is None:
            return config
        dtype = _validation.canonical_dtype(
            "accumulator_dtype", config["accumulator_dtype"]
        )
        return {**config, "accumulator_dtype": dtype}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for key in cls._defaults:
            if key not in cls.__dict__:
                setattr(cls, key, property(lambda self, key=key: self._config[key]))

    def __init__(self, *, name: str, **arguments: Any) -> None:
        cls_name = type(self).__name__
        unknown = sorted(set(arguments) - set(self._defaults))
        if unknown:
            hint = " (`lr` is spelled `learning_rate`)" if "lr" in unknown else ""
            raise TypeError(
                f"{cls_name} got unknown keyword argument(s): {unknown}{hint}. "
                f"Valid keywords: {['name', *self._defaults]}"
            )
        if not isinstance(name, str):
            raise TypeError(f"`name` must be a str. Received: name={name!r}")
        arguments = {k: _plain(v) for k, v in arguments.items()}
        config = self._normalize({"name": name, **self._defaults, **arguments})
        hyperparameters = {k: v for k, v in config.items() if k != "name"}
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_transformation", self._build(**hyperparameters))

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
        grads = jax.grad(loss_fn)(params)
        updates, state = self.update(grads, state, params)
        return optax.apply_updates(params, updates), state

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
            if key in self._always_in_config or _frozen(value) != _frozen(default):
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
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def replace(self, **changes: Any):
        """Returns a copy with some hyperparameters changed."""
        return type(self)(**{**self._config, **changes})

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
