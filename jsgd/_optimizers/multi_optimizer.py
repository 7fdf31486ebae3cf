"""Keras 3's ``MultiOptimizer`` / ``OptimizerMap``: one optimizer per parameter path.

:class:`MultiOptimizer` maps every leaf of the parameter tree to one of its
optimizers by the leaf's path (the keys from the root joined with ``"/"``,
:func:`jsgd._common.tree.path_string`'s spelling) with Keras's
``OptimizerMap`` rule, and steps each optimizer on its own leaves through
``optax.multi_transform``. It also holds the serialization helpers shared with
:class:`jsgd._optimizers.loss_scale_optimizer.LossScaleOptimizer`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common.tree import path_string
from jsgd._optimizers.classes import SGD, Adagrad, Adam, KerasOptimizer, RMSprop

__all__ = ["MultiOptimizer", "MultiOptimizerState"]

_KERAS_CLASSES: dict[str, type[KerasOptimizer]] = {
    cls.__name__: cls for cls in (SGD, Adagrad, RMSprop, Adam)
}


def check_transformation(name: str, value: Any) -> None:
    """Raises a TypeError unless ``value`` has callable ``init`` and ``update``."""
    if not (
        callable(getattr(value, "init", None))
        and callable(getattr(value, "update", None))
    ):
        raise TypeError(
            f"`{name}` must be a jsgd optimizer or an optax gradient "
            f"transformation (with `init` and `update`). Received: {name}={value!r}"
        )


def serialize(optimizer: Any) -> dict[str, Any]:
    """``optimizer`` as Keras's ``serialize_keras_object`` writes an optimizer.

    Raises:
      TypeError: for an optimizer without ``get_config`` (a plain optax
        transformation), or one whose configuration cannot be serialized.
    """
    get_config = getattr(optimizer, "get_config", None)
    if get_config is None:
        raise TypeError(
            f"{optimizer!r} has no get_config() and cannot be serialized: use "
            "jsgd's optimizer classes (SGD, Adagrad, RMSprop, Adam, MultiOptimizer, "
            "LossScaleOptimizer), or rebuild the optimizer in code."
        )
    return {
        "module": "jsgd",
        "class_name": type(optimizer).__name__,
        "config": get_config(),
        "registered_name": None,
    }


def deserialize(config: Mapping[str, Any], classes: Mapping[str, Any]) -> Any:
    """The optimizer ``serialize`` (or Keras's ``serialize_keras_object``) wrote.

    Raises:
      ValueError: for a class name not in ``classes``.
      TypeError: for something other than a ``{"class_name", "config"}`` dict.
    """
    if not (isinstance(config, Mapping) and "class_name" in config):
        raise TypeError(
            "A serialized optimizer is a dict with 'class_name' and 'config'. "
            f"Received: {config!r}"
        )
    name = config["class_name"]
    if name not in classes:
        raise ValueError(
            f"Unknown optimizer class {name!r} here; expected one of {sorted(classes)}."
        )
    return classes[name].from_config(dict(config.get("config", {})))


class MultiOptimizerState(NamedTuple):
    """State of a :class:`MultiOptimizer`.

    Attributes:
      iterations: int32 0-d, Keras's ``MultiOptimizer.iterations``: the number
        of ``update`` calls.
      inner_state: ``optax.multi_transform``'s state; its ``inner_states``
        maps each optimizer's position in :attr:`MultiOptimizer.optimizers`
        to its state.
    """

    iterations: jax.Array
    inner_state: Any


def _with_factor(optimizer: Any, factor: float | None) -> Any:
    if isinstance(optimizer, KerasOptimizer):
        if optimizer.loss_scale_factor != factor:  # pyright: ignore[reportAttributeAccessIssue]
            return optimizer.replace(loss_scale_factor=factor)
        return optimizer
    if factor is not None:
        raise ValueError(
            "`loss_scale_factor` is set on a jsgd Keras-style optimizer only; "
            f"{optimizer!r} is not one (set the factor on it instead)."
        )
    return optimizer


class MultiOptimizer:
    """Keras 3's ``MultiOptimizer(OptimizerMap(...))``: an optimizer per parameter path.

    Each leaf of the parameter tree has a path, its keys from the root joined
    with ``"/"`` (dict keys, attribute names, sequence indices:
    ``"encoder/layers/0/kernel"``; a ``flax.nnx`` Variable's trailing
    ``.value`` is dropped), which Keras's ``variable.path`` is for a layer's
    weight. Keras's ``OptimizerMap.__getitem__`` picks its optimizer:

    1. a key of ``optimizer_map`` equal to the path;
    2. else the one key ``re.fullmatch``-ing the path (a ValueError naming
       both when two keys match: Keras's "Multiple optimizers assigned to
       variable");
    3. else ``default_optimizer`` (a ValueError naming the path when there is
       none: Keras requires a default, jsgd lets it be omitted).

    Optimizers that compare equal are one optimizer over the union of their
    leaves (Keras: one *instance* under several keys), in the order Keras
    lists them in ``optimizers``: ``optimizer_map``'s values, then the
    default. One ``update`` steps each of them once on its own leaves
    (``optax.multi_transform``; an optimizer with no leaves keeps an empty
    state) and counts ``iterations``; gradient clipping by global norm inside
    an optimizer sees only its leaves, as in Keras.

    ``loss_scale_factor`` is Keras's: it replaces the ``loss_scale_factor``
    of every inner jsgd optimizer (``None`` included, as Keras does), and
    :meth:`scale_loss` multiplies a loss by it.

    State: :class:`MultiOptimizerState` (``iterations``, ``inner_state``).

    Args:
      optimizer_map: a mapping from a path or a regular expression (a str)
        to an optimizer: a jsgd optimizer class's object, or any optax
        gradient transformation (which ``get_config`` cannot serialize).
        ``LossScaleOptimizer`` and ``MultiOptimizer`` objects are refused,
        as Keras refuses them.
      default_optimizer: the optimizer of every leaf no key matches, or None.
      loss_scale_factor: None or a number, as Keras's.
      name: Keras's name, kept in the config. Default ``"multi_optimizer"``.

    The object is an immutable, hashable gradient transformation
    (``init``/``update``), usable in ``optax.chain``, ``jax.jit`` (as a
    static argument) and ``flax.nnx.Optimizer``.

    Raises:
      TypeError: for a non-str key, a non-mapping ``optimizer_map`` or a value
        that is not an optimizer; in ``init``/``update``, see ValueError.
      ValueError: for a LossScaleOptimizer or MultiOptimizer inside, a
        ``loss_scale_factor`` with a non-jsgd inner optimizer; in ``init`` /
        ``update``, for a path two patterns match, or that nothing matches
        without a default.

    Examples:
      >>> import jax, jax.numpy as jnp, jsgd
      >>> from jsgd import MultiOptimizer
      >>> opt = MultiOptimizer(
      ...     {"encoder/.*": jsgd.Adam(learning_rate=0.1), "head/bias": jsgd.SGD(1.0)},
      ...     default_optimizer=jsgd.SGD(learning_rate=0.5),
      ... )
      >>> params = {"encoder": {"kernel": jnp.array(2.0)},
      ...           "head": {"bias": jnp.array(1.0), "kernel": jnp.array(1.0)}}
      >>> paths = ("encoder/kernel", "head/bias", "head/kernel")
      >>> [opt.optimizer_for(p).name for p in paths]
      ['Adam', 'SGD', 'SGD']
      >>> state = opt.init(params)
      >>> grads = {"encoder": {"kernel": jnp.array(4.0)},
      ...          "head": {"bias": jnp.array(1.0), "kernel": jnp.array(1.0)}}
      >>> updates, state = opt.update(grads, state, params)
      >>> [round(float(u), 4) for u in jax.tree.leaves(updates)]  # Adam, SGD, SGD
      [-0.1, -1.0, -0.5]
      >>> int(state.iterations)
      1
      >>> MultiOptimizer.from_config(opt.get_config()) == opt
      True
    """

    __slots__ = ("_default", "_factor", "_map", "_name", "_optimizers", "_tx")

    def __init__(
        self,
        optimizer_map: Mapping[str, Any],
        default_optimizer: Any = None,
        loss_scale_factor: float | None = None,
        name: str = "multi_optimizer",
    ) -> None:
        from jsgd._optimizers.loss_scale_optimizer import LossScaleOptimizer

        if not isinstance(optimizer_map, Mapping):
            raise TypeError(
                f"`optimizer_map` must be a mapping. Received: {optimizer_map!r}"
            )
        if not isinstance(name, str):
            raise TypeError(f"`name` must be a str. Received: name={name!r}")
        if loss_scale_factor is not None:
            loss_scale_factor = float(loss_scale_factor)
        entries: list[tuple[str, Any]] = []
        named: list[tuple[str, Any, Any]] = [
            (f"optimizer_map[{k!r}]", k, v) for k, v in optimizer_map.items()
        ]
        if default_optimizer is not None:
            named.append(("default_optimizer", None, default_optimizer))
        for where, key, value in named:
            if key is not None and not isinstance(key, str):
                raise TypeError(f"key must be a string. Received: {key!r}")
            check_transformation(where, value)
            if isinstance(value, LossScaleOptimizer):
                raise ValueError(f"{where}: optimizer cannot be LossScaleOptimizer.")
            if isinstance(value, MultiOptimizer):
                raise ValueError(f"{where}: optimizer cannot be MultiOptimizer.")
            if key is not None:
                re.compile(key)  # a bad pattern fails here, not at init
                entries.append((key, _with_factor(value, loss_scale_factor)))
        default = (
            None
            if default_optimizer is None
            else _with_factor(default_optimizer, loss_scale_factor)
        )
        optimizers: list[Any] = []
        for candidate in [*(v for _, v in entries), default]:
            if candidate is not None and candidate not in optimizers:
                optimizers.append(candidate)
        set_ = object.__setattr__
        set_(self, "_map", tuple(entries))
        set_(self, "_default", default)
        set_(self, "_factor", loss_scale_factor)
        set_(self, "_name", name)
        set_(self, "_optimizers", tuple(optimizers))
        set_(
            self,
            "_tx",
            optax.multi_transform(dict(enumerate(optimizers)), self._labels),
        )

    # --- the map ------------------------------------------------------------------

    @property
    def optimizer_map(self) -> dict[str, Any]:
        """The keys (paths or patterns) and their optimizers."""
        return dict(self._map)

    @property
    def default_optimizer(self) -> Any:
        """The optimizer of the leaves no key matches (or None)."""
        return self._default

    @property
    def optimizers(self) -> tuple[Any, ...]:
        """The distinct optimizers, in Keras's ``optimizers`` order."""
        return self._optimizers

    @property
    def loss_scale_factor(self) -> float | None:
        """Keras's ``loss_scale_factor``."""
        return self._factor

    @property
    def name(self) -> str:
        """Keras's name."""
        return self._name

    def optimizer_for(self, path: str) -> Any:
        """The optimizer of the leaf at ``path`` (Keras's ``OptimizerMap[path]``).

        Raises:
          ValueError: if two patterns match ``path``, or none does and there
            is no default.
        """
        table = dict(self._map)
        if path in table:
            return table[path]
        matching = [k for k, _ in self._map if re.fullmatch(k, path)]
        if len(matching) > 1:
            raise ValueError(
                f"Multiple optimizers assigned to variable {path}: the patterns "
                f"{matching[0]!r} and {matching[1]!r} both match it."
            )
        if matching:
            return table[matching[0]]
        if self._default is None:
            raise ValueError(
                f"No optimizer for the parameter {path!r}: no key of optimizer_map "
                f"({[k for k, _ in self._map]}) matches it and there is no "
                "default_optimizer."
            )
        return self._default

    def _labels(self, tree: Any) -> Any:
        def label(path: Any, leaf: Any) -> int:
            del leaf
            return self._optimizers.index(self.optimizer_for(path_string(path)))

        return jax.tree_util.tree_map_with_path(
            label, tree, is_leaf=_tree.is_update_leaf
        )

    # --- the gradient-transformation protocol ---------------------------------

    def init(self, params: optax.Params) -> MultiOptimizerState:
        """The initial state: ``iterations`` 0 and each optimizer's state."""
        return MultiOptimizerState(
            iterations=jnp.zeros([], jnp.int32), inner_state=self._tx.init(params)
        )

    def update(
        self,
        updates: optax.Updates,
        state: MultiOptimizerState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, MultiOptimizerState]:
        """Each optimizer's updates on its leaves; ``iterations`` + 1.

        Raises:
          TypeError: if ``state`` is not a :class:`MultiOptimizerState`.
        """
        _tree.check_state(state, MultiOptimizerState, "MultiOptimizer")
        new_updates, inner = self._tx.update(
            updates, state.inner_state, params, **extra_args
        )
        return new_updates, MultiOptimizerState(state.iterations + 1, inner)

    def scale_loss(self, loss: Any) -> Any:
        """``loss * loss_scale_factor`` (``loss`` if it is None), as Keras's."""
        return loss if self._factor is None else loss * self._factor

    # --- configuration ------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Keras's ``MultiOptimizer.get_config()`` layout (inner optimizers serialized).

        Raises:
          TypeError: if an inner optimizer cannot be serialized.
        """
        map_config = {
            "default_optimizer": None
            if self._default is None
            else serialize(self._default),
            "optimizer_map": {k: serialize(v) for k, v in self._map},
        }
        return {
            "optimizer_map": {
                "module": "jsgd",
                "class_name": "OptimizerMap",
                "config": map_config,
                "registered_name": None,
            },
            "loss_scale_factor": self._factor,
            "name": self._name,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MultiOptimizer:
        """Rebuilds a MultiOptimizer from ``get_config()`` (or Keras's) output."""
        config = dict(config)
        serialized = config.pop("optimizer_map")
        inner = serialized.get("config", serialized)
        default = inner.get("default_optimizer")
        return cls(
            {
                k: deserialize(v, _KERAS_CLASSES)
                for k, v in inner["optimizer_map"].items()
            },
            default_optimizer=None
            if default is None
            else deserialize(default, _KERAS_CLASSES),
            **config,
        )

    # --- value semantics ----------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        return (type(self), self._map, self._default, self._factor, self._name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultiOptimizer):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("MultiOptimizer objects are immutable.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("MultiOptimizer objects are immutable.")

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (
            _rebuild,
            (dict(self._map), self._default, self._factor, self._name),
        )

    def __repr__(self) -> str:
        return (
            f"MultiOptimizer({dict(self._map)!r}, default_optimizer="
            f"{self._default!r}, name={self._name!r})"
        )


def _rebuild(*args: Any) -> MultiOptimizer:
    return MultiOptimizer(*args)
