"""The one test registry: every public transform and optimizer, in the
configurations the contract tests run.

``test_reliability.py`` (the transform contract: jit, vmap, eval_shape, dtypes,
odd trees, non-finite gradients, counters, clear errors) runs every entry;
``test_family.py`` runs the Keras-style class entries through config round
trips, the factory and flax.nnx. Adding a transform or an optimizer here adds
it to all of them; ``test_reliability.test_registry_is_complete`` fails when a
public factory is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import optax

import jsgd

SCHEDULE = jsgd.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
# The family tables' schedule (test_family.py's former FAMILY registry).
FAMILY_SCHEDULE = jsgd.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)


@dataclasses.dataclass(frozen=True)
class Entry:
    make: Callable[..., optax.GradientTransformation]
    decays_weights: bool = False  # zero gradients still move the parameters
    nan_spreads_to: str = "element"  # "element", "leaf" or "all" (see docs)
    takes_accumulator_dtype: bool = False
    deferred: bool = False  # acts only every few steps (accumulation)


REGISTRY = {
    "clip_by_value": Entry(lambda **k: jsgd.clip_by_value(0.5)),
    "clip_by_norm": Entry(lambda **k: jsgd.clip_by_norm(1.0), nan_spreads_to="leaf"),
    "clip_by_global_norm": Entry(
        lambda **k: jsgd.clip_by_global_norm(1.0), nan_spreads_to="all"
    ),
    "scale_by_learning_rate": Entry(lambda **k: jsgd.scale_by_learning_rate(0.1)),
    "scale_by_learning_rate-schedule": Entry(
        lambda **k: jsgd.scale_by_learning_rate(SCHEDULE)
    ),
    "momentum_trace": Entry(
        lambda **k: jsgd.momentum_trace(0.9, dampening=0.1, **k),
        takes_accumulator_dtype=True,
    ),
    "nesterov_trace": Entry(
        lambda **k: jsgd.nesterov_trace(0.9, **k), takes_accumulator_dtype=True
    ),
    "add_decayed_weights": Entry(
        lambda **k: jsgd.add_decayed_weights(0.1), decays_weights=True
    ),
    "decoupled_weight_decay": Entry(
        lambda **k: jsgd.decoupled_weight_decay(0.1, SCHEDULE), decays_weights=True
    ),
    "scale_by_adagrad": Entry(
        lambda **k: jsgd.scale_by_adagrad(**k), takes_accumulator_dtype=True
    ),
    "scale_by_rmsprop": Entry(
        lambda **k: jsgd.scale_by_rmsprop(centered=True, **k),
        takes_accumulator_dtype=True,
    ),
    "scale_by_adam": Entry(
        lambda **k: jsgd.scale_by_adam(amsgrad=True, **k), takes_accumulator_dtype=True
    ),
    "accumulate_gradients": Entry(
        lambda **k: jsgd.accumulate_gradients(jsgd.sgd(0.1, 0.9, **k), 2),
        takes_accumulator_dtype=True,
        deferred=True,
    ),
    # The low-precision wrappers: float32 parameters pass through them, so
    # the contract tests' float32 runs check that they change nothing there.
    "kahan_summation": Entry(
        lambda **k: jsgd.kahan_summation(jsgd.sgd(0.1, 0.9, **k)),
        takes_accumulator_dtype=True,
    ),
    "stochastic_rounding": Entry(
        lambda **k: jsgd.stochastic_rounding(jsgd.adam(0.01, **k), seed=3),
        takes_accumulator_dtype=True,
    ),
    "with_ema": Entry(
        lambda **k: jsgd.with_ema(jsgd.sgd(0.1, 0.9, **k), 0.9, 2),
        takes_accumulator_dtype=True,
    ),
    "sgd": Entry(
        lambda **k: jsgd.sgd(SCHEDULE, 0.9, True, clipvalue=1.0, **k),
        takes_accumulator_dtype=True,
    ),
    # No momentum: the plain step, no velocity (test_composition's "plain").
    "sgd-plain": Entry(lambda **k: jsgd.sgd(0.05, **k)),
    "sgd-every-keyword": Entry(
        lambda **k: jsgd.sgd(
            SCHEDULE,
            0.9,
            clipnorm=1.0,
            decay=0.01,
            weight_decay=0.01,
            use_ema=True,
            loss_scale_factor=2.0,
            **k,
        ),
        decays_weights=True,
        nan_spreads_to="leaf",
        takes_accumulator_dtype=True,
    ),
    # Both value and global-norm clips, decay and weight decay together
    # (test_composition's "everything").
    "sgd-both-clips": Entry(
        lambda **k: jsgd.sgd(
            0.05,
            0.9,
            clipvalue=2.0,
            global_clipnorm=3.0,
            decay=0.1,
            weight_decay=0.01,
            **k,
        ),
        decays_weights=True,
        nan_spreads_to="all",
        takes_accumulator_dtype=True,
    ),
    "sgd-global-clip": Entry(
        lambda **k: jsgd.sgd(0.1, 0.9, global_clipnorm=1.0, lr_in_velocity=False, **k),
        nan_spreads_to="all",
        takes_accumulator_dtype=True,
    ),
    # torch's convention with dampening (test_composition's "torch-dampening").
    "sgd-torch-dampening": Entry(
        lambda **k: jsgd.sgd(
            0.05, momentum=0.8, dampening=0.3, lr_in_velocity=False, **k
        ),
        takes_accumulator_dtype=True,
    ),
    "adagrad": Entry(lambda **k: jsgd.adagrad(0.1, **k), takes_accumulator_dtype=True),
    "rmsprop": Entry(
        lambda **k: jsgd.rmsprop(0.01, momentum=0.5, centered=True, **k),
        takes_accumulator_dtype=True,
    ),
    "adam": Entry(
        lambda **k: jsgd.adam(SCHEDULE, amsgrad=True, **k),
        takes_accumulator_dtype=True,
    ),
    "adam-accumulated": Entry(
        lambda **k: jsgd.adam(0.01, gradient_accumulation_steps=2, **k),
        takes_accumulator_dtype=True,
        deferred=True,
    ),
    "SGD": Entry(
        lambda **k: jsgd.SGD(0.1, momentum=0.9, nesterov=True, **k),
        takes_accumulator_dtype=True,
    ),
    # The classes with the Keras keywords (test_family.py's former FAMILY):
    # a schedule, a clip or weight decay, EMA, accumulation, each option.
    "SGD-keras-keywords": Entry(
        lambda **k: jsgd.SGD(
            FAMILY_SCHEDULE, momentum=0.9, nesterov=True, clipnorm=1.0, **k
        ),
        nan_spreads_to="leaf",
        takes_accumulator_dtype=True,
    ),
    "Adagrad": Entry(lambda **k: jsgd.Adagrad(0.1, **k), takes_accumulator_dtype=True),
    "Adagrad-keras-keywords": Entry(
        lambda **k: jsgd.Adagrad(
            FAMILY_SCHEDULE, weight_decay=0.01, global_clipnorm=1.0, **k
        ),
        decays_weights=True,
        nan_spreads_to="all",
        takes_accumulator_dtype=True,
    ),
    "RMSprop": Entry(
        lambda **k: jsgd.RMSprop(0.01, momentum=0.5, **k), takes_accumulator_dtype=True
    ),
    "RMSprop-keras-keywords": Entry(
        lambda **k: jsgd.RMSprop(0.01, momentum=0.5, centered=True, use_ema=True, **k),
        takes_accumulator_dtype=True,
    ),
    "Adam": Entry(
        lambda **k: jsgd.Adam(0.01, use_ema=True, **k), takes_accumulator_dtype=True
    ),
    "Adam-keras-keywords": Entry(
        lambda **k: jsgd.Adam(
            FAMILY_SCHEDULE, amsgrad=True, gradient_accumulation_steps=2, **k
        ),
        takes_accumulator_dtype=True,
        deferred=True,
    ),
    # jsgd.torch: groups (a regular expression and a callable selector),
    # coupled and decoupled weight decay, maximize, each optimizer's options.
    "torch.SGD": Entry(
        lambda **k: jsgd.torch.SGD(
            0.1,
            momentum=0.9,
            nesterov=True,
            weight_decay=0.01,
            param_groups=[{"params": "b", "lr": 0.05, "weight_decay": 0.0}],
            **k,
        ),
        decays_weights=True,
    ),
    "torch.SGD-plain": Entry(lambda **k: jsgd.torch.SGD(0.05, dampening=0.5, **k)),
    "torch.Adam": Entry(
        lambda **k: jsgd.torch.Adam(0.01, amsgrad=True, maximize=True, **k)
    ),
    "torch.AdamW": Entry(
        lambda **k: jsgd.torch.AdamW(
            0.01,
            param_groups=[
                {"params": lambda path, leaf: leaf.ndim < 2, "weight_decay": 0}
            ],
            **k,
        ),
        decays_weights=True,
    ),
    "torch.RMSprop": Entry(
        lambda **k: jsgd.torch.RMSprop(0.01, momentum=0.5, centered=True, **k)
    ),
    "torch.Adagrad": Entry(
        lambda **k: jsgd.torch.Adagrad(0.1, lr_decay=0.01, weight_decay=0.01, **k),
        decays_weights=True,
    ),
}
NAMES = list(REGISTRY)
# The Keras-style class entries (config round trips, factory equality, nnx).
CLASS_NAMES = [name for name in NAMES if name.split("-")[0][0].isupper()]
