"""Keras 3's ``LossScaleOptimizer`` (dynamic loss scaling) as a gradient transformation.

The JAX form of ``keras.optimizers.LossScaleOptimizer``: the loss is scaled by
the state's ``dynamic_scale`` before differentiating, and one ``update``
unscales the gradients, skips a step with an inf or a NaN in them (halving
the scale) and doubles the scale after ``dynamic_growth_steps`` finite steps,
as Keras's ``stateless_apply`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._optimizers import multi_optimizer as _multi
from jsgd._optimizers.classes import KerasOptimizer

__all__ = ["LossScaleOptimizer", "LossScaleOptimizerState"]

_OWNER = "LossScaleOptimizer"


class LossScaleOptimizerState(NamedTuple):
    """State of a :class:`LossScaleOptimizer`.

    Attributes:
      step_counter: int32 0-d, Keras's ``step_counter``: the consecutive
        finite steps since the scale last changed.
      dynamic_scale: float32 0-d, Keras's ``dynamic_scale``: multiply the
        loss by it (:meth:`LossScaleOptimizer.scale_loss`).
      inner_state: the inner optimizer's state (its step count is Keras's
        ``LossScaleOptimizer.iterations``).
    """

    step_counter: jax.Array
    dynamic_scale: jax.Array
    inner_state: Any


def _unscaled(g: jax.Array, scale: jax.Array) -> jax.Array:
    """Keras's ``ops.divide(g, scale)``, kept in the gradient's dtype."""
    if not jnp.issubdtype(g.dtype, jnp.inexact):
        return g
    wide = jnp.promote_types(g.dtype, jnp.float32)
    return (g.astype(wide) / scale.astype(wide)).astype(g.dtype)


def _find_states(tree: Any) -> list[LossScaleOptimizerState]:
    def is_state(x: Any) -> bool:
        return isinstance(x, LossScaleOptimizerState)

    if is_state(tree):
        return [tree]
    return [x for x in jax.tree.leaves(tree, is_leaf=is_state) if is_state(x)]


def _classes() -> dict[str, Any]:
    return {
        **_multi._KERAS_CLASSES,  # pyright: ignore[reportPrivateUsage]
        "MultiOptimizer": _multi.MultiOptimizer,
    }


class LossScaleOptimizer:
    """Keras 3's ``LossScaleOptimizer``: dynamic loss scaling around an optimizer.

    The loop, side by side with Keras's::

        # Keras                            # jsgd
        opt = LossScaleOptimizer(SGD())    opt = LossScaleOptimizer(jsgd.SGD())
                                           state = opt.init(params)
        loss = opt.scale_loss(loss)        scaled = lambda p: opt.scale_loss(
        grads = gradient of loss               loss_fn(p), state)
                                           grads = jax.grad(scaled)(params)
        opt.apply(grads, variables)        updates, state = opt.update(
                                               grads, state, params)
                                           params = optax.apply_updates(
                                               params, updates)

    One ``update`` from the scaled gradients ``g``, as Keras's
    ``stateless_apply``:

    * ``finite``: no entry of any gradient leaf is inf or NaN (``None`` leaves
      skipped; a ``jsgd.IndexedSlices`` by its values, padding rows aside).
    * If finite: the inner optimizer steps on ``g / dynamic_scale`` (the
      scale before this step's change; in the gradient's dtype), and
      ``step_counter`` becomes 0 with the scale doubled if it was
      ``dynamic_growth_steps - 1``, else it grows by one.
    * Else the step is skipped: the updates are zeros (``None`` stays None),
      the inner state is left exactly as it was (its step count, Keras's
      ``iterations``, too: Keras does not count a skipped step),
      ``step_counter`` becomes 0 and the scale is halved.

    The choice is ``jnp.where`` (the inner update is computed either way), no
    Python branch on traced values: jit-safe. Doubling and halving are
    float32 products, as Keras's, so the scale, ``step_counter`` and the
    inner step count are Keras's exactly; the parameters are Keras's up to
    how XLA fuses the inner optimizer's arithmetic (Keras's runs compiled
    inside ``lax.cond``): bit for bit in the matching mode, else within a few
    units in the last place.

    State: :class:`LossScaleOptimizerState` (``step_counter``,
    ``dynamic_scale``, ``inner_state``).

    Args:
      inner_optimizer: the optimizer to wrap: a jsgd optimizer class's object
        (its ``loss_scale_factor`` is set to None, as Keras does), a
        :class:`~jsgd._optimizers.multi_optimizer.MultiOptimizer`, or any
        optax gradient transformation (not serializable).
      initial_scale: the initial loss scale, a finite number > 0 (stored as
        float32). Default ``2.0**15``.
      dynamic_growth_steps: the finite steps between doublings, an int >= 1.
        Default 2000.
      name: Keras's name, kept in the config. Default ``"loss_scale_optimizer"``.

    The object is an immutable, hashable gradient transformation (``init`` /
    ``update``).

    Raises:
      TypeError: for an inner optimizer without ``init``/``update``, a
        non-number scale, a non-str name; in ``update``, for a state of
        another kind.
      ValueError: for a LossScaleOptimizer inside, a non-finite or
        non-positive ``initial_scale``, a ``dynamic_growth_steps`` that is
        not an int >= 1 (Keras accepts 0 and below: it never grows then).

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jsgd
      >>> from jsgd import LossScaleOptimizer
      >>> opt = LossScaleOptimizer(jsgd.SGD(learning_rate=0.1),
      ...                          initial_scale=8.0, dynamic_growth_steps=2)
      >>> params = jnp.array([1.0, 2.0])
      >>> state = opt.init(params)
      >>> loss = lambda p: jnp.sum(p ** 2) / 2
      >>> for step in range(4):
      ...     grads = jax.grad(lambda p: opt.scale_loss(loss(p), state))(params)
      ...     if step == 1:
      ...         grads = grads.at[0].set(jnp.nan)  # an overflow: skipped
      ...     updates, state = opt.update(grads, state, params)
      ...     params = optax.apply_updates(params, updates)
      ...     print(float(state.dynamic_scale), int(state.step_counter), params)
      8.0 1 [0.9 1.8]
      4.0 0 [0.9 1.8]
      4.0 1 [0.81 1.62]
      8.0 0 [0.729 1.458]
      >>> LossScaleOptimizer.from_config(opt.get_config()) == opt
      True
    """

    __slots__ = ("_growth_steps", "_initial_scale", "_inner", "_name")

    def __init__(
        self,
        inner_optimizer: Any,
        initial_scale: float = 2.0**15,
        dynamic_growth_steps: int = 2000,
        name: str = "loss_scale_optimizer",
    ) -> None:
        _multi.check_transformation("inner_optimizer", inner_optimizer)
        if isinstance(inner_optimizer, LossScaleOptimizer):
            raise ValueError("inner_optimizer cannot be a LossScaleOptimizer.")
        if (
            isinstance(inner_optimizer, KerasOptimizer)
            and inner_optimizer.loss_scale_factor is not None  # pyright: ignore[reportAttributeAccessIssue]
        ):
            inner_optimizer = inner_optimizer.replace(loss_scale_factor=None)
        scale = _validation.concrete_scalar("initial_scale", initial_scale)
        if scale is None or isinstance(initial_scale, bool):
            raise TypeError(
                "`initial_scale` must be a concrete number. "
                f"Received: initial_scale={initial_scale!r}"
            )
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(
                "`initial_scale` must be a finite number > 0. "
                f"Received: initial_scale={initial_scale!r}"
            )
        _validation.check_positive("initial_scale", scale)  # float32's range
        steps = _validation.check_integer(
            "dynamic_growth_steps", dynamic_growth_steps, 1
        )
        if not isinstance(name, str):
            raise TypeError(f"`name` must be a str. Received: name={name!r}")
        set_ = object.__setattr__
        set_(self, "_inner", inner_optimizer)
        set_(self, "_initial_scale", float(scale))
        set_(self, "_growth_steps", int(steps))
        set_(self, "_name", name)

    @property
    def inner_optimizer(self) -> Any:
        """The wrapped optimizer."""
        return self._inner

    @property
    def initial_scale(self) -> float:
        """The initial loss scale."""
        return self._initial_scale

    @property
    def dynamic_growth_steps(self) -> int:
        """The finite steps between doublings of the scale."""
        return self._growth_steps

    @property
    def name(self) -> str:
        """Keras's name."""
        return self._name

    # --- the state ----------------------------------------------------------------

    @staticmethod
    def state_of(state: Any) -> LossScaleOptimizerState:
        """The one :class:`LossScaleOptimizerState` in ``state`` (any pytree).

        Raises:
          ValueError: if ``state`` holds none, or several.
        """
        found = _find_states(state)
        if len(found) != 1:
            raise ValueError(
                f"jsgd.{_OWNER}: expected one LossScaleOptimizerState in the state, "
                f"found {len(found)}."
            )
        return found[0]

    @staticmethod
    def scale_of(state: Any) -> jax.Array:
        """The current ``dynamic_scale`` (float32 0-d) of ``state``; jit-safe."""
        return LossScaleOptimizer.state_of(state).dynamic_scale

    def scale_loss(self, loss: Any, state: Any) -> Any:
        """``loss`` (an array or a pytree of them) times the current scale.

        Keras's ``scale_loss(loss)``; the state is where the scale lives.
        """
        scale = self.scale_of(state)
        return jax.tree.map(lambda x: x * scale, loss)

    # --- the gradient-transformation protocol ---------------------------------

    def init(self, params: optax.Params) -> LossScaleOptimizerState:
        """``step_counter`` 0, ``dynamic_scale`` ``initial_scale``, the inner state."""
        return LossScaleOptimizerState(
            step_counter=jnp.zeros([], jnp.int32),
            dynamic_scale=jnp.asarray(self._initial_scale, jnp.float32),
            inner_state=self._inner.init(params),
        )

    def update(
        self,
        updates: optax.Updates,
        state: LossScaleOptimizerState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, LossScaleOptimizerState]:
        """One Keras step (see the class docstring); returns ``(updates, state)``.

        Raises:
          TypeError: if ``state`` is not a :class:`LossScaleOptimizerState`.
        """
        _tree.check_state(state, LossScaleOptimizerState, _OWNER)
        inner = optax.with_extra_args_support(self._inner)
        scale = state.dynamic_scale
        finite = _tree.all_finite(updates)
        unscaled = _tree.map_updates(lambda g: _unscaled(g, scale), updates)
        new_updates, inner_state = inner.update(
            unscaled, state.inner_state, params, **extra_args
        )
        skip = jnp.logical_not(finite)
        new_updates = _tree.zeroed_where(skip, new_updates)
        inner_state = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), inner_state, state.inner_state
        )
        grows = state.step_counter == self._growth_steps - 1
        counter = jnp.where(finite & ~grows, state.step_counter + 1, 0)
        factor = jnp.where(finite, jnp.where(grows, 2.0, 1.0), 0.5)
        return new_updates, LossScaleOptimizerState(
            step_counter=counter.astype(jnp.int32),
            dynamic_scale=scale * factor.astype(jnp.float32),
            inner_state=inner_state,
        )

    # --- configuration ------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Keras's config: name, the serialized inner optimizer, the two settings.

        Raises:
          TypeError: if the inner optimizer cannot be serialized.
        """
        return {
            "name": self._name,
            "inner_optimizer": _multi.serialize(self._inner),
            "initial_scale": self._initial_scale,
            "dynamic_growth_steps": self._growth_steps,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LossScaleOptimizer:
        """Rebuilds one from ``get_config()`` output, or Keras's."""
        config = dict(config)
        config.pop("dynamic", None)
        inner = _multi.deserialize(config.pop("inner_optimizer"), _classes())
        return cls(inner, **config)

    # --- value semantics ----------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        return (
            type(self),
            self._inner,
            self._initial_scale,
            self._growth_steps,
            self._name,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LossScaleOptimizer):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("LossScaleOptimizer objects are immutable.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("LossScaleOptimizer objects are immutable.")

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (
            LossScaleOptimizer,
            (self._inner, self._initial_scale, self._growth_steps, self._name),
        )

    def __repr__(self) -> str:
        return (
            f"LossScaleOptimizer({self._inner!r}, "
            f"initial_scale={self._initial_scale!r}, "
            f"dynamic_growth_steps={self._growth_steps!r}, name={self._name!r})"
        )
