"""Keras 3's base-optimizer keywords, defined once for all its optimizers.

:data:`KERAS` is the family every Keras-style optimizer (``sgd``, ``adagrad``,
``rmsprop``, ``adam`` and their classes) belongs to: the keywords
``clipvalue``, ``clipnorm``, ``global_clipnorm``, the legacy ``decay``,
``weight_decay`` (with ``weight_decay_exclude`` and
``weight_decay_exclude_by_path``), ``use_ema``, ``ema_momentum``,
``ema_overwrite_frequency``, ``loss_scale_factor`` and
``gradient_accumulation_steps`` with their defaults, checks and docs, and
:func:`keras_chain`, which wraps an optimizer's core with them in Keras's
order.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._optimizers import spec as _spec
from jsgd._transforms.accumulation import accumulate_gradients
from jsgd._transforms.clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from jsgd._transforms.ema import with_ema
from jsgd._transforms.learning_rate import inverse_time_decay
from jsgd._transforms.step_count import count_steps, keeps_count
from jsgd._transforms.weight_decay import (
    check_patterns,
    decoupled_weight_decay,
    weight_decay_mask,
)


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
        return (g.astype(dtype) / _tree.hyperparameter_as(factor, dtype)).astype(
            g.dtype
        )

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


def _learning_rate_at_step(
    learning_rate: optax.ScalarOrSchedule,
    decay: Any,
    gradient_accumulation_steps: int | None,
) -> optax.ScalarOrSchedule:
    """``lr_t``: the legacy ``decay`` applied, then counted in micro-steps."""
    if not _validation.is_static_zero(decay):
        learning_rate = inverse_time_decay(learning_rate, decay)
    if gradient_accumulation_steps is not None and callable(learning_rate):
        learning_rate = _at_last_micro_step(learning_rate, gradient_accumulation_steps)
    return learning_rate


def keras_chain(
    spec: _spec.OptimizerSpec, arguments: dict[str, Any]
) -> optax.GradientTransformationExtraArgs:
    """A Keras optimizer from its checked arguments, in Keras's order.

    Per step: divide by ``loss_scale_factor``; accumulate (when
    ``gradient_accumulation_steps``), and on real steps: clip (value, norm,
    global norm), make :class:`jsgd.IndexedSlices` dense unless ``lazy``, run
    ``spec.core`` at the learning rate ``lr_t`` (``decay`` and the
    accumulation shift applied), add decoupled weight decay, count the step
    (a :class:`jsgd.StepCountState`, only when no other part of the state
    keeps a count); then
    update the parameters' EMA (when ``use_ema``). ``lazy`` is decided here only: after
    the densifying step every later step sees dense arrays, and with
    ``lazy=True`` each step applies its own row rule.
    """
    kw = {name: arguments[name] for name in spec.shared}
    own = {name: arguments[name] for name in spec.own_arguments}
    lazy = own.pop("lazy", True)
    lr_t = _learning_rate_at_step(
        own.pop("learning_rate"), kw["decay"], kw["gradient_accumulation_steps"]
    )
    core = spec.core(lr_t, **own)
    if not lazy:
        core = [_densifying(core[0]), *core[1:]]

    steps: list[optax.GradientTransformation] = []
    if kw["clipvalue"] is not None:
        steps.append(clip_by_value(kw["clipvalue"]))
    if kw["clipnorm"] is not None:
        steps.append(clip_by_norm(kw["clipnorm"]))
    if kw["global_clipnorm"] is not None:
        steps.append(clip_by_global_norm(kw["global_clipnorm"]))
    steps += core
    weight_decay = kw["weight_decay"]
    if weight_decay is not None and not _validation.is_static_zero(weight_decay):
        patterns = kw["weight_decay_exclude"]
        mask = None
        if patterns:
            mask = weight_decay_mask(
                patterns, by_path=kw["weight_decay_exclude_by_path"]
            )
        steps.append(decoupled_weight_decay(weight_decay, lr_t, mask=mask))
    counted_outside = kw["use_ema"] or kw["gradient_accumulation_steps"] is not None
    if not counted_outside and not keeps_count(tuple(steps)):
        steps.append(count_steps())  # Keras's `iterations`, kept by every state
    transformation = checked_chain(*steps)

    accumulation = kw["gradient_accumulation_steps"]
    if accumulation is not None:
        transformation = accumulate_gradients(transformation, accumulation)
    if kw["use_ema"]:
        transformation = with_ema(
            transformation,
            kw["ema_momentum"],
            kw["ema_overwrite_frequency"],
            steps_per_update=accumulation or 1,
        )
    if kw["loss_scale_factor"] is not None:
        transformation = checked_chain(
            _divide_by(kw["loss_scale_factor"]), transformation
        )
    return transformation


KERAS = _spec.Family(
    name="Keras",
    keywords=(
        _spec.Keyword(
            "clipvalue",
            None,
            _spec.NoneOr(_spec.positive),
            "clip each element to ``[-clipvalue, clipvalue]`` (``None``: off).",
        ),
        _spec.Keyword(
            "clipnorm",
            None,
            _spec.NoneOr(_spec.positive),
            "clip each leaf by its own L2 norm, ``g * c / max(||g||, c)``.",
        ),
        _spec.Keyword(
            "global_clipnorm",
            None,
            _spec.NoneOr(_spec.positive),
            "clip all leaves by their global L2 norm (accumulated in float32; "
            "a non-finite norm makes every update NaN, as in Keras 3).",
            excludes="clipnorm",
        ),
        _spec.Keyword(
            "decay",
            0.0,
            _spec.non_negative,
            "legacy tf.keras (TF 2.x ``OptimizerV2``) decay: "
            "``lr_t = lr / (1 + decay * t)``, ``t`` from 0.",
        ),
        _spec.Keyword(
            "weight_decay",
            None,
            _spec.NoneOr(_spec.non_negative),
            "Keras 3's decoupled weight decay, ``w -= lr_t * weight_decay * w`` "
            "before the update, outside clipping and momentum.",
        ),
        _spec.Keyword(
            "weight_decay_exclude",
            None,
            _spec.NoneOr(check_patterns),
            "a tuple of regular expressions: ``weight_decay`` skips every leaf "
            "whose name they match (``re.search`` of the patterns joined by "
            '``"|"``, as Keras 3\'s ``exclude_from_weight_decay(var_names=...)``). '
            'A leaf\'s name is the last key of its path (``"bias"`` in '
            '``{"dense": {"bias": w}}``; a ``flax.nnx`` trailing ``.value`` '
            "dropped).",
        ),
        _spec.Keyword(
            "weight_decay_exclude_by_path",
            False,
            _spec.switch,
            "match ``weight_decay_exclude`` against the whole path joined with "
            '``"/"`` (``"dense/bias"``) instead of the last key.',
        ),
        _spec.Keyword(
            "use_ema",
            False,
            _spec.switch,
            "keep an exponential moving average of the parameters (read it "
            "with :func:`jsgd.averaged_params`).",
        ),
        _spec.Keyword(
            "ema_momentum", 0.99, _spec.unit_interval, "the EMA's decay in [0, 1]."
        ),
        _spec.Keyword(
            "ema_overwrite_frequency",
            None,
            functools.partial(_validation.check_integer, minimum=1, optional=True),
            "overwrite the parameters with their average every this many steps "
            "(``None``: never).",
        ),
        _spec.Keyword(
            "loss_scale_factor",
            None,
            _spec.NoneOr(_spec.positive),
            "divide the gradients by this (> 0) first.",
        ),
        _spec.Keyword(
            "gradient_accumulation_steps",
            None,
            _spec.NoneOr(functools.partial(_validation.check_integer, minimum=2)),
            "apply the mean gradient of this many (int >= 2) micro-steps once "
            "every that many steps.",
        ),
    ),
    build=keras_chain,
)
"""Keras 3's base-optimizer keywords and how they wrap an optimizer's core."""
