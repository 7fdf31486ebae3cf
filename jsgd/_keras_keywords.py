"""Keras's base-optimizer keywords, written once for every optimizer.

``clipvalue``, ``clipnorm``, ``global_clipnorm``, the legacy ``decay``,
``weight_decay``, ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``,
``loss_scale_factor`` and ``gradient_accumulation_steps`` mean the same for
``sgd``, ``adagrad``, ``rmsprop`` and ``adam``: :func:`keras_chain` wraps an
optimizer's core (its scaling and learning-rate steps) with them, in Keras's
order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jsgd import _tree, _validation
from jsgd._accumulation import accumulate_gradients, check_steps
from jsgd._clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from jsgd._ema import average_params, check_overwrite_frequency
from jsgd._learning_rate import inverse_time_decay
from jsgd._weight_decay import decoupled_weight_decay

KERAS_KEYWORD_DEFAULTS: dict[str, Any] = {
    "clipvalue": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "decay": 0.0,
    "weight_decay": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def keras_keywords_in(arguments: dict[str, Any]) -> dict[str, Any]:
    """The Keras keywords among a factory's arguments (pass ``locals()``)."""
    return {name: arguments[name] for name in KERAS_KEYWORD_DEFAULTS}


def validate_keras_keywords(
    *,
    clipvalue: Any,
    clipnorm: Any,
    global_clipnorm: Any,
    decay: Any,
    weight_decay: Any,
    use_ema: Any,
    ema_momentum: Any,
    ema_overwrite_frequency: Any,
    loss_scale_factor: Any,
    gradient_accumulation_steps: Any,
) -> None:
    """Checks the shared keywords, naming each as the caller spelled it."""
    for name, value in (
        ("clipvalue", clipvalue),
        ("clipnorm", clipnorm),
        ("global_clipnorm", global_clipnorm),
        ("loss_scale_factor", loss_scale_factor),
    ):
        if value is not None:
            _validation.check_positive(name, value)
    if clipnorm is not None and global_clipnorm is not None:
        raise ValueError(
            "`clipnorm` and `global_clipnorm` cannot both be set. "
            f"Received: clipnorm={clipnorm}, global_clipnorm={global_clipnorm}"
        )
    _validation.check_non_negative("decay", decay)
    if weight_decay is not None:
        _validation.check_non_negative("weight_decay", weight_decay)
    _validation.check_bool("use_ema", use_ema)
    _validation.check_unit_interval("ema_momentum", ema_momentum)
    check_overwrite_frequency("ema_overwrite_frequency", ema_overwrite_frequency)
    if gradient_accumulation_steps is not None:
        check_steps("gradient_accumulation_steps", gradient_accumulation_steps)


def _at_last_micro_step(schedule: optax.Schedule, steps: int) -> optax.Schedule:
    """Returns ``n -> schedule(steps * n + steps - 1)``.

    Keras evaluates a schedule at the micro-step count, and real step ``n``
    happens on micro-step ``steps * n + steps - 1``.
    """
    top = (jnp.iinfo(jnp.int32).max - (steps - 1)) // steps

    def shifted(count: jax.typing.ArrayLike) -> jax.Array:
        n = jnp.minimum(jnp.asarray(count, jnp.int32), top)  # no int32 wrap
        return jnp.asarray(schedule(n * steps + (steps - 1)))

    return shifted


def _divide_by(factor: Any) -> optax.GradientTransformationExtraArgs:
    def divide(g: jax.Array) -> jax.Array:
        dtype = _tree.compute_dtype(g.dtype)
        return (g.astype(dtype) / _tree.as_dtype(factor, dtype)).astype(g.dtype)

    return _tree.stateless_transform(
        lambda updates, _: _tree.map_updates(divide, updates), "loss_scale_factor"
    )


def _densifying(
    transformation: optax.GradientTransformation,
) -> optax.GradientTransformationExtraArgs:
    """``transformation`` fed dense arrays for its ``IndexedSlices`` updates.

    ``lazy=False``: Keras 3 densifies a sparse gradient at its first
    arithmetic, after the clips (which act on the values, as tf.clip_by_norm
    does), so everything from the learning-rate step on is the dense rule.
    The state is ``transformation``'s own.
    """
    inner = optax.with_extra_args_support(transformation)

    def update_fn(updates, state, params=None, **extra_args):
        return inner.update(_tree.densify(updates), state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def checked_chain(
    *steps: optax.GradientTransformation,
) -> optax.GradientTransformationExtraArgs:
    """``optax.chain`` that rejects a state of another shape with a TypeError."""
    chain = optax.chain(*steps)

    def update_fn(updates, state, params=None, **extra_args):
        _tree.check_state(state, tuple, "optimizer")
        if len(state) != len(steps):
            raise TypeError(
                f"jsgd: the optimizer has {len(steps)} steps but its state has "
                f"{len(state)}: a state of another optimizer or configuration."
            )
        return chain.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(chain.init, update_fn)


def keras_chain(
    core: Callable[[optax.ScalarOrSchedule], list[optax.GradientTransformation]],
    learning_rate: optax.ScalarOrSchedule,
    *,
    clipvalue: Any = None,
    clipnorm: Any = None,
    global_clipnorm: Any = None,
    decay: Any = 0.0,
    weight_decay: Any = None,
    use_ema: bool = False,
    ema_momentum: Any = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: Any = None,
    gradient_accumulation_steps: int | None = None,
    lazy: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """Wraps the steps ``core(lr_t)`` with the Keras keywords, in Keras's order.

    Per step: divide by ``loss_scale_factor``; accumulate (when
    ``gradient_accumulation_steps``), and on real steps: clip (value, norm,
    global norm), run ``core`` at the learning rate ``lr_t`` (``decay`` and the
    accumulation shift applied; ``IndexedSlices`` made dense first unless
    ``lazy``), add decoupled weight decay (only to the touched rows of
    ``IndexedSlices`` when ``lazy``); then update the parameters' EMA (when
    ``use_ema``).
    """
    validate_keras_keywords(
        clipvalue=clipvalue,
        clipnorm=clipnorm,
        global_clipnorm=global_clipnorm,
        decay=decay,
        weight_decay=weight_decay,
        use_ema=use_ema,
        ema_momentum=ema_momentum,
        ema_overwrite_frequency=ema_overwrite_frequency,
        loss_scale_factor=loss_scale_factor,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
    _validation.check_learning_rate("learning_rate", learning_rate)
    if not _validation.is_static_zero(decay):
        learning_rate = inverse_time_decay(learning_rate, decay)
    if gradient_accumulation_steps is not None and callable(learning_rate):
        learning_rate = _at_last_micro_step(learning_rate, gradient_accumulation_steps)

    steps: list[optax.GradientTransformation] = []
    if clipvalue is not None:
        steps.append(clip_by_value(clipvalue))
    if clipnorm is not None:
        steps.append(clip_by_norm(clipnorm))
    if global_clipnorm is not None:
        steps.append(clip_by_global_norm(global_clipnorm))
    core_steps = core(learning_rate)
    if not lazy:
        core_steps = [_densifying(core_steps[0]), *core_steps[1:]]
    steps += core_steps
    if weight_decay is not None and not _validation.is_static_zero(weight_decay):
        steps.append(decoupled_weight_decay(weight_decay, learning_rate, lazy=lazy))
    transformation = checked_chain(*steps)

    if gradient_accumulation_steps is not None:
        transformation = accumulate_gradients(
            transformation, gradient_accumulation_steps
        )
    if use_ema:
        transformation = average_params(
            transformation,
            ema_momentum,
            ema_overwrite_frequency,
            steps_per_update=gradient_accumulation_steps or 1,
        )
    if loss_scale_factor is not None:
        transformation = checked_chain(_divide_by(loss_scale_factor), transformation)
    return transformation
