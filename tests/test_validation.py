"""Hyperparameter validation of jsgd.sgd, jsgd.SGD and the transform factories.

Every rule is checked with its exact error type and message. Concrete values
(Python numbers and concrete 0-d NumPy/JAX arrays) are validated; traced values
(under ``jit``, ``vmap`` or ``optax.inject_hyperparams``) pass unchecked but
must still give the right numbers.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsgd

INF = float("inf")
NAN = float("nan")


def _exact(message: str) -> str:
    """A regex matching exactly ``message`` (the whole error text)."""
    return "^" + re.escape(message) + "$"


def _prefix(message: str) -> str:
    """A regex matching an error text that starts with ``message``."""
    return "^" + re.escape(message)


def _non_negative(name: str, shown: str) -> str:
    return _exact(f"`{name}` must be a finite number >= 0. Received: {name}={shown}")


def _unit_interval(name: str, shown: str) -> str:
    return _exact(f"`{name}` must be between [0, 1]. Received: {name}={shown}")


def _positive(name: str, shown: str) -> str:
    return _exact(f"`{name}` must be > 0. Received: {name}={shown}")


_REAL_SCALAR = "must be a real scalar (a Python number or a 0-d real array)"


def _not_scalar(name: str, why: str, shown: str | None = None) -> str:
    """The TypeError for a non-real-scalar value; ``shown=None`` checks a prefix."""
    head = f"`{name}` {_REAL_SCALAR}, {why}. Received: {name}="
    return _prefix(head) if shown is None else _exact(head + shown)


# --------------------------------------------------------------------------- #
# ValueError: out-of-range concrete values.
# --------------------------------------------------------------------------- #

VALUE_ERRORS = [
    # Learning rates: < 0, NaN, +-inf; for every factory that takes one.
    pytest.param(
        lambda: jsgd.sgd(-0.1),
        _non_negative("learning_rate", "-0.1"),
        id="sgd-lr-negative",
    ),
    pytest.param(
        lambda: jsgd.sgd(NAN), _non_negative("learning_rate", "nan"), id="sgd-lr-nan"
    ),
    pytest.param(
        lambda: jsgd.sgd(INF), _non_negative("learning_rate", "inf"), id="sgd-lr-inf"
    ),
    pytest.param(
        lambda: jsgd.sgd(learning_rate=-INF),
        _non_negative("learning_rate", "-inf"),
        id="sgd-lr-minus-inf",
    ),
    pytest.param(
        lambda: jsgd.SGD(-1), _non_negative("learning_rate", "-1"), id="SGD-lr-negative"
    ),
    pytest.param(
        lambda: jsgd.SGD(learning_rate=NAN),
        _non_negative("learning_rate", "nan"),
        id="SGD-lr-nan",
    ),
    pytest.param(
        lambda: jsgd.SGD(learning_rate=INF),
        _non_negative("learning_rate", "inf"),
        id="SGD-lr-inf",
    ),
    pytest.param(
        lambda: jsgd.scale_by_learning_rate(-0.5),
        _non_negative("learning_rate", "-0.5"),
        id="scale_by_learning_rate-negative",
    ),
    pytest.param(
        lambda: jsgd.scale_by_learning_rate(NAN),
        _non_negative("learning_rate", "nan"),
        id="scale_by_learning_rate-nan",
    ),
    pytest.param(
        lambda: jsgd.scale_by_learning_rate(INF),
        _non_negative("learning_rate", "inf"),
        id="scale_by_learning_rate-inf",
    ),
    pytest.param(
        lambda: jsgd.inverse_time_decay(-0.1, 0.5),
        _non_negative("learning_rate", "-0.1"),
        id="inverse_time_decay-lr-negative",
    ),
    pytest.param(
        lambda: jsgd.inverse_time_decay(INF, 0.5),
        _non_negative("learning_rate", "inf"),
        id="inverse_time_decay-lr-inf",
    ),
    pytest.param(
        lambda: jsgd.decoupled_weight_decay(0.01, learning_rate=-0.1),
        _non_negative("learning_rate", "-0.1"),
        id="decoupled_weight_decay-lr-negative",
    ),
    pytest.param(
        lambda: jsgd.decoupled_weight_decay(0.01, learning_rate=NAN),
        _non_negative("learning_rate", "nan"),
        id="decoupled_weight_decay-lr-nan",
    ),
    # Concrete 0-d arrays are validated like numbers and shown as numbers.
    pytest.param(
        lambda: jsgd.sgd(jnp.array(-0.5)),
        _non_negative("learning_rate", "-0.5"),
        id="sgd-lr-jax-0d-negative",
    ),
    pytest.param(
        lambda: jsgd.sgd(np.float32(INF)),
        _non_negative("learning_rate", "inf"),
        id="sgd-lr-np-float32-inf",
    ),
    # Momentum outside [0, 1] or NaN.
    pytest.param(
        lambda: jsgd.sgd(0.1, 1.5), _unit_interval("momentum", "1.5"), id="sgd-m-1.5"
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, momentum=-0.1),
        _unit_interval("momentum", "-0.1"),
        id="sgd-m-negative",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, momentum=NAN),
        _unit_interval("momentum", "nan"),
        id="sgd-m-nan",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, momentum=1.5),
        _unit_interval("momentum", "1.5"),
        id="SGD-m-1.5",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, momentum=2),
        _unit_interval("momentum", "2"),
        id="SGD-m-int-2",
    ),
    pytest.param(
        lambda: jsgd.momentum_trace(1.5),
        _unit_interval("momentum", "1.5"),
        id="momentum-1.5",
    ),
    pytest.param(
        lambda: jsgd.nesterov_trace(-0.5),
        _unit_interval("momentum", "-0.5"),
        id="nesterov-negative",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, jnp.array(1.5)),
        _unit_interval("momentum", "1.5"),
        id="sgd-m-jax-0d-1.5",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, momentum=np.array(1.5)),
        _unit_interval("momentum", "1.5"),
        id="SGD-m-numpy-0d-1.5",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, np.float32(1.5)),
        _unit_interval("momentum", "1.5"),
        id="sgd-m-np-float32-1.5",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, jnp.array(2, jnp.int32)),
        _unit_interval("momentum", "2.0"),
        id="sgd-m-jax-int-0d",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, jnp.array(NAN)),
        _unit_interval("momentum", "nan"),
        id="sgd-m-jax-0d-nan",
    ),
    # Dampening outside [0, 1].
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, dampening=1.5),
        _unit_interval("dampening", "1.5"),
        id="sgd-dampening-1.5",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.0, dampening=-0.5),
        _unit_interval("dampening", "-0.5"),
        id="sgd-dampening-negative-without-momentum",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, 0.9, dampening=NAN),
        _unit_interval("dampening", "nan"),
        id="SGD-dampening-nan",
    ),
    pytest.param(
        lambda: jsgd.momentum_trace(0.9, dampening=2.0),
        _unit_interval("dampening", "2.0"),
        id="momentum-dampening-2",
    ),
    # Clip thresholds <= 0 or NaN.
    pytest.param(
        lambda: jsgd.sgd(0.1, clipvalue=0.0),
        _positive("clipvalue", "0.0"),
        id="sgd-clipvalue-zero",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, clipvalue=-1),
        _positive("clipvalue", "-1"),
        id="sgd-clipvalue-negative",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, clipnorm=0),
        _positive("clipnorm", "0"),
        id="sgd-clipnorm-zero",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, clipnorm=NAN),
        _positive("clipnorm", "nan"),
        id="sgd-clipnorm-nan",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, global_clipnorm=-2.0),
        _positive("global_clipnorm", "-2.0"),
        id="sgd-global_clipnorm-negative",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, global_clipnorm=NAN),
        _positive("global_clipnorm", "nan"),
        id="SGD-global_clipnorm-nan",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, clipvalue=-INF),
        _positive("clipvalue", "-inf"),
        id="SGD-clipvalue-minus-inf",
    ),
    pytest.param(
        lambda: jsgd.clip_by_value(0.0),
        _positive("clipvalue", "0.0"),
        id="clip_by_value-zero",
    ),
    pytest.param(
        lambda: jsgd.clip_by_value(NAN),
        _positive("clipvalue", "nan"),
        id="clip_by_value-nan",
    ),
    pytest.param(
        lambda: jsgd.clip_by_norm(-1.0),
        _positive("clipnorm", "-1.0"),
        id="clip_by_norm-negative",
    ),
    pytest.param(
        lambda: jsgd.clip_by_norm(jnp.array(0.0)),
        _positive("clipnorm", "0.0"),
        id="clip_by_norm-jax-0d-zero",
    ),
    pytest.param(
        lambda: jsgd.clip_by_global_norm(0.0),
        _positive("max_norm", "0.0"),
        id="clip_by_global_norm-zero",
    ),
    pytest.param(
        lambda: jsgd.clip_by_global_norm(max_norm=NAN),
        _positive("max_norm", "nan"),
        id="clip_by_global_norm-nan",
    ),
    # decay < 0 (or not finite).
    pytest.param(
        lambda: jsgd.sgd(0.1, decay=-0.1),
        _non_negative("decay", "-0.1"),
        id="sgd-decay-negative",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, decay=INF),
        _non_negative("decay", "inf"),
        id="SGD-decay-inf",
    ),
    pytest.param(
        lambda: jsgd.inverse_time_decay(0.1, -1.0),
        _non_negative("decay", "-1.0"),
        id="inverse_time_decay-decay-negative",
    ),
    pytest.param(
        lambda: jsgd.inverse_time_decay(0.1, NAN),
        _non_negative("decay", "nan"),
        id="inverse_time_decay-decay-nan",
    ),
    # weight_decay < 0 (or not finite).
    pytest.param(
        lambda: jsgd.sgd(0.1, weight_decay=-0.01),
        _non_negative("weight_decay", "-0.01"),
        id="sgd-weight_decay-negative",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, weight_decay=NAN),
        _non_negative("weight_decay", "nan"),
        id="SGD-weight_decay-nan",
    ),
    pytest.param(
        lambda: jsgd.decoupled_weight_decay(-0.01, 0.1),
        _non_negative("weight_decay", "-0.01"),
        id="decoupled_weight_decay-negative",
    ),
    pytest.param(
        lambda: jsgd.add_decayed_weights(-1e-4),
        _non_negative("weight_decay", "-0.0001"),
        id="add_decayed_weights-negative",
    ),
    # clipnorm together with global_clipnorm.
    pytest.param(
        lambda: jsgd.sgd(0.1, clipnorm=1.0, global_clipnorm=2.0),
        _exact(
            "`clipnorm` and `global_clipnorm` cannot both be set. "
            "Received: clipnorm=1.0, global_clipnorm=2.0"
        ),
        id="sgd-clipnorm-and-global_clipnorm",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, clipnorm=1, global_clipnorm=1),
        _exact(
            "`clipnorm` and `global_clipnorm` cannot both be set. "
            "Received: clipnorm=1, global_clipnorm=1"
        ),
        id="SGD-clipnorm-and-global_clipnorm",
    ),
    # The first bad argument (in signature order) is the one reported.
    pytest.param(
        lambda: jsgd.sgd(-1.0, momentum=2.0, clipvalue=-1.0),
        _non_negative("learning_rate", "-1.0"),
        id="sgd-first-bad-argument-reported",
    ),
    # A concrete out-of-range value given through inject_hyperparams is a
    # concrete 0-d array in init, so it is caught there.
    pytest.param(
        lambda: optax.inject_hyperparams(jsgd.sgd)(
            learning_rate=0.1, momentum=1.5
        ).init(jnp.zeros(2)),
        _unit_interval("momentum", "1.5"),
        id="inject_hyperparams-init-m-1.5",
    ),
]


@pytest.mark.parametrize(("make", "message"), VALUE_ERRORS)
def test_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_momentum_message_has_keras_form():
    """Legacy tf.keras's message: starts and ends as Keras's does."""
    with pytest.raises(ValueError) as info:
        jsgd.SGD(learning_rate=0.1, momentum=1.5)
    text = str(info.value)
    assert text.startswith("`momentum` must be between [0, 1].")
    assert text.endswith("Received: momentum=1.5")


def test_huge_int_learning_rate_is_a_value_error():
    with pytest.raises(ValueError, match=_prefix("`learning_rate` must be a finite")):
        jsgd.sgd(10**400)


# --------------------------------------------------------------------------- #
# TypeError: wrong kinds of values.
# --------------------------------------------------------------------------- #

TYPE_ERRORS = [
    # bool (also NumPy bool), even where its numeric value would be in range.
    pytest.param(
        lambda: jsgd.sgd(True),
        _not_scalar("learning_rate", "not a bool", "True"),
        id="sgd-lr-bool",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, False),
        _not_scalar("momentum", "not a bool", "False"),
        id="sgd-m-bool",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, momentum=np.bool_(True)),
        _not_scalar("momentum", "not a bool", "np.True_"),
        id="SGD-m-numpy-bool",
    ),
    pytest.param(
        lambda: jsgd.clip_by_value(True),
        _not_scalar("clipvalue", "not a bool", "True"),
        id="clip_by_value-bool",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, decay=False),
        _not_scalar("decay", "not a bool", "False"),
        id="sgd-decay-bool",
    ),
    # complex
    pytest.param(
        lambda: jsgd.sgd(0.1 + 0j),
        _not_scalar("learning_rate", "not complex", "(0.1+0j)"),
        id="sgd-lr-complex",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, momentum=0.5 + 0.5j),
        _not_scalar("momentum", "not complex", "(0.5+0.5j)"),
        id="SGD-m-complex",
    ),
    pytest.param(
        lambda: jsgd.clip_by_norm(np.complex64(1.0)),
        _not_scalar("clipnorm", "not complex", "np.complex64(1+0j)"),
        id="clip_by_norm-np-complex64",
    ),
    # str
    pytest.param(
        lambda: jsgd.sgd("0.1"),
        _not_scalar("learning_rate", "not str", "'0.1'"),
        id="sgd-lr-str",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, clipnorm="1.0"),
        _not_scalar("clipnorm", "not str", "'1.0'"),
        id="SGD-clipnorm-str",
    ),
    pytest.param(
        lambda: jsgd.scale_by_learning_rate("fast"),
        _not_scalar("learning_rate", "not str", "'fast'"),
        id="scale_by_learning_rate-str",
    ),
    # None where a number is required.
    pytest.param(
        lambda: jsgd.sgd(None),
        _not_scalar("learning_rate", "not NoneType", "None"),
        id="sgd-lr-None",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, None),
        _not_scalar("momentum", "not NoneType", "None"),
        id="sgd-m-None",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, decay=None),
        _not_scalar("decay", "not NoneType", "None"),
        id="SGD-decay-None",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, dampening=None),
        _not_scalar("dampening", "not NoneType", "None"),
        id="sgd-dampening-None",
    ),
    pytest.param(
        lambda: jsgd.clip_by_value(None),
        _not_scalar("clipvalue", "not NoneType", "None"),
        id="clip_by_value-None",
    ),
    pytest.param(
        lambda: jsgd.clip_by_global_norm(None),
        _not_scalar("max_norm", "not NoneType", "None"),
        id="clip_by_global_norm-None",
    ),
    pytest.param(
        lambda: jsgd.decoupled_weight_decay(None, 0.1),
        _not_scalar("weight_decay", "not NoneType", "None"),
        id="decoupled_weight_decay-None",
    ),
    pytest.param(
        lambda: jsgd.inverse_time_decay(0.1, None),
        _not_scalar("decay", "not NoneType", "None"),
        id="inverse_time_decay-decay-None",
    ),
    # lists and non-scalar arrays
    pytest.param(
        lambda: jsgd.sgd([0.1]),
        _not_scalar("learning_rate", "not list", "[0.1]"),
        id="sgd-lr-list",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, momentum=(0.9,)),
        _not_scalar("momentum", "not tuple", "(0.9,)"),
        id="SGD-m-tuple",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, np.ones(2)),
        _not_scalar("momentum", "not an array of shape (2,)", "array([1., 1.])"),
        id="sgd-m-numpy-ones2",
    ),
    pytest.param(
        lambda: jsgd.sgd(jnp.ones(2)),
        _not_scalar("learning_rate", "not an array of shape (2,)"),
        id="sgd-lr-jax-ones2",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, clipvalue=jnp.ones((1,))),
        _not_scalar("clipvalue", "not an array of shape (1,)"),
        id="SGD-clipvalue-jax-shape1",
    ),
    pytest.param(
        lambda: jsgd.clip_by_global_norm(np.ones((2, 2))),
        _not_scalar("max_norm", "not an array of shape (2, 2)"),
        id="clip_by_global_norm-numpy-2x2",
    ),
    # bool / complex / non-numeric dtype 0-d arrays
    pytest.param(
        lambda: jsgd.sgd(jnp.array(True)),
        _not_scalar("learning_rate", "not a bool array"),
        id="sgd-lr-jax-bool-0d",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, np.array(False)),
        _not_scalar("momentum", "not a bool array", "array(False)"),
        id="sgd-m-numpy-bool-0d",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, jnp.array(0.5 + 0j)),
        _not_scalar("momentum", "not a complex array"),
        id="sgd-m-jax-complex-0d",
    ),
    pytest.param(
        lambda: jsgd.SGD(np.array(0.1 + 0j)),
        _not_scalar("learning_rate", "not a complex array", "array(0.1+0.j)"),
        id="SGD-lr-numpy-complex-0d",
    ),
    pytest.param(
        lambda: jsgd.sgd(np.array("0.1")),
        _not_scalar("learning_rate", "not an array of dtype <U3"),
        id="sgd-lr-numpy-str-0d",
    ),
    # non-bool static switches
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, nesterov=1),
        _exact("`nesterov` must be a bool. Received: nesterov=1"),
        id="sgd-nesterov-int",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, 0.9, nesterov="yes"),
        _exact("`nesterov` must be a bool. Received: nesterov='yes'"),
        id="SGD-nesterov-str",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, nesterov=None),
        _exact("`nesterov` must be a bool. Received: nesterov=None"),
        id="sgd-nesterov-None",
    ),
    pytest.param(
        lambda: jsgd.momentum_trace(0.9, nesterov=jnp.array(True)),
        _prefix("`nesterov` must be a bool. Received: nesterov=Array(True"),
        id="momentum-nesterov-jax-bool-array",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, lr_in_velocity=0),
        _exact("`lr_in_velocity` must be a bool. Received: lr_in_velocity=0"),
        id="sgd-lr_in_velocity-int",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, lr_in_velocity="False"),
        _exact("`lr_in_velocity` must be a bool. Received: lr_in_velocity='False'"),
        id="SGD-lr_in_velocity-str",
    ),
    pytest.param(
        lambda: jsgd.nesterov_trace(0.9, nesterov=True),
        _exact("`nesterov` cannot be passed to jsgd.nesterov_trace (it is True)."),
        id="nesterov-given-nesterov",
    ),
    # accumulator_dtype
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, accumulator_dtype="int32"),
        _exact(
            "`accumulator_dtype` must be a floating or complex dtype. "
            "Received: accumulator_dtype='int32'"
        ),
        id="sgd-accumulator_dtype-int32",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, 0.9, accumulator_dtype="notadtype"),
        _exact(
            "`accumulator_dtype` must be a dtype or None. "
            "Received: accumulator_dtype='notadtype'"
        ),
        id="SGD-accumulator_dtype-notadtype",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.0, accumulator_dtype=jnp.bool_),
        _prefix("`accumulator_dtype` must be a floating or complex dtype. Received: "),
        id="sgd-accumulator_dtype-bool-without-momentum",
    ),
    pytest.param(
        lambda: jsgd.momentum_trace(0.9, accumulator_dtype=np.int8),
        _prefix("`accumulator_dtype` must be a floating or complex dtype. Received: "),
        id="momentum-accumulator_dtype-int8",
    ),
    # jsgd.SGD's own keywords
    pytest.param(
        lambda: jsgd.SGD(foo=1, bar=2),
        _exact(
            "SGD got unknown keyword argument(s): ['bar', 'foo']. Valid keywords: "
            "['name', 'learning_rate', 'momentum', 'nesterov', 'clipvalue', "
            "'clipnorm', 'global_clipnorm', 'decay', 'weight_decay', "
            "'weight_decay_exclude', 'weight_decay_exclude_by_path', 'use_ema', "
            "'ema_momentum', 'ema_overwrite_frequency', 'loss_scale_factor', "
            "'gradient_accumulation_steps', 'dampening', 'lr_in_velocity', "
            "'accumulator_dtype', 'lazy']"
        ),
        id="SGD-unknown-keywords-sorted",
    ),
    pytest.param(
        lambda: jsgd.SGD(lr=0.1),
        _prefix(
            "SGD got unknown keyword argument(s): ['lr'] "
            "(`lr` is spelled `learning_rate`). Valid keywords: ['name', "
        ),
        id="SGD-lr-hint",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, zeta=1, lr=0.1, amsgrad=True),
        _prefix(
            "SGD got unknown keyword argument(s): ['amsgrad', 'lr', 'zeta'] "
            "(`lr` is spelled `learning_rate`)."
        ),
        id="SGD-unknown-with-lr-hint",
    ),
    pytest.param(
        lambda: jsgd.SGD(0.1, name=None),
        _exact("`name` must be a str. Received: name=None"),
        id="SGD-name-None",
    ),
]


@pytest.mark.parametrize(("make", "message"), TYPE_ERRORS)
def test_type_error(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_unknown_keywords_are_checked_before_values():
    # Both errors are present; the unknown keyword is the one reported.
    with pytest.raises(TypeError, match=_prefix("SGD got unknown keyword")):
        jsgd.SGD(momentum=5.0, bogus=1)


# --------------------------------------------------------------------------- #
# Boundary values that must be accepted.
# --------------------------------------------------------------------------- #

ACCEPTED = [
    pytest.param(lambda: jsgd.sgd(0.1, 0), id="sgd-m-int-0"),
    pytest.param(lambda: jsgd.sgd(0.1, 0.0), id="sgd-m-0"),
    pytest.param(lambda: jsgd.sgd(0.1, 1), id="sgd-m-int-1"),
    pytest.param(lambda: jsgd.sgd(0.1, 1.0), id="sgd-m-1"),
    pytest.param(lambda: jsgd.SGD(0.1, momentum=1.0), id="SGD-m-1"),
    pytest.param(lambda: jsgd.momentum_trace(0.0), id="momentum-0"),
    pytest.param(lambda: jsgd.nesterov_trace(1.0), id="nesterov-1"),
    pytest.param(lambda: jsgd.sgd(0.1, 0.9, dampening=0.0), id="sgd-dampening-0"),
    pytest.param(lambda: jsgd.sgd(0.1, 0.9, dampening=1.0), id="sgd-dampening-1"),
    pytest.param(
        lambda: jsgd.momentum_trace(0.9, dampening=1), id="momentum-dampening-1"
    ),
    pytest.param(lambda: jsgd.sgd(0.0), id="sgd-lr-0"),
    pytest.param(lambda: jsgd.sgd(-0.0), id="sgd-lr-negative-zero"),
    pytest.param(lambda: jsgd.sgd(1), id="sgd-lr-int"),
    pytest.param(lambda: jsgd.sgd(np.array(1)), id="sgd-lr-numpy-int-0d"),
    pytest.param(lambda: jsgd.sgd(jnp.array(0.0)), id="sgd-lr-jax-0d-0"),
    pytest.param(lambda: jsgd.sgd(jnp.bfloat16(0.5)), id="sgd-lr-bfloat16-scalar"),
    pytest.param(lambda: jsgd.sgd(lambda count: 0.1), id="sgd-lr-schedule"),
    pytest.param(lambda: jsgd.scale_by_learning_rate(0), id="scale_by_lr-0"),
    pytest.param(lambda: jsgd.sgd(0.1, decay=0), id="sgd-decay-0"),
    pytest.param(lambda: jsgd.sgd(0.1, decay=0.5), id="sgd-decay-positive"),
    pytest.param(lambda: jsgd.sgd(0.1, weight_decay=0.0), id="sgd-weight_decay-0"),
    pytest.param(lambda: jsgd.add_decayed_weights(0), id="add_decayed_weights-0"),
    pytest.param(
        lambda: jsgd.decoupled_weight_decay(0.0, 0.0), id="decoupled_weight_decay-0-0"
    ),
    pytest.param(lambda: jsgd.sgd(0.1, clipvalue=INF), id="sgd-clipvalue-inf"),
    pytest.param(lambda: jsgd.sgd(0.1, clipnorm=INF), id="sgd-clipnorm-inf"),
    pytest.param(
        lambda: jsgd.sgd(0.1, global_clipnorm=INF), id="sgd-global_clipnorm-inf"
    ),
    pytest.param(lambda: jsgd.clip_by_value(INF), id="clip_by_value-inf"),
    pytest.param(lambda: jsgd.clip_by_norm(INF), id="clip_by_norm-inf"),
    pytest.param(lambda: jsgd.clip_by_global_norm(INF), id="clip_by_global_norm-inf"),
    pytest.param(lambda: jsgd.clip_by_value(1e-30), id="clip_by_value-tiny"),
    pytest.param(
        lambda: jsgd.sgd(0.1, clipvalue=1.0, clipnorm=1.0), id="sgd-clipvalue+clipnorm"
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, nesterov=np.bool_(True)), id="sgd-nesterov-np-bool"
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, accumulator_dtype="float32"),
        id="sgd-accumulator_dtype-str",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, accumulator_dtype=jnp.bfloat16),
        id="sgd-accumulator_dtype-bfloat16",
    ),
    pytest.param(
        lambda: jsgd.sgd(0.1, 0.9, accumulator_dtype=np.dtype("float16")),
        id="sgd-accumulator_dtype-np-dtype",
    ),
    pytest.param(lambda: jsgd.SGD(0.0, 0.0, nesterov=True), id="SGD-all-zero"),
]


@pytest.mark.parametrize("make", ACCEPTED)
def test_boundary_value_is_accepted_and_steps(make):
    tx = make()
    params = {"w": jnp.array([1.0, -2.0, 0.5])}
    grads = {"w": jnp.array([0.3, -0.4, 2.0])}
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(grads, state, params)
    assert updates["w"].shape == (3,)
    assert updates["w"].dtype == jnp.float32


NEVER_CLIP = [
    pytest.param(lambda: jsgd.clip_by_value(INF), id="clip_by_value"),
    pytest.param(lambda: jsgd.clip_by_norm(INF), id="clip_by_norm"),
    pytest.param(
        lambda: jsgd.clip_by_global_norm(INF),
        id="clip_by_global_norm",
    ),
    pytest.param(
        lambda: jsgd.clip_by_norm(jnp.array(INF)),
        id="clip_by_norm-jax-0d",
    ),
]


@pytest.mark.parametrize("make", NEVER_CLIP)
def test_infinite_clip_threshold_never_clips(make):
    tx = make()
    grads = {"a": jnp.array([3e4, -4e4]), "b": jnp.array(0.5)}
    clipped, _ = tx.update(grads, tx.init(grads))
    jax.tree.map(np.testing.assert_array_equal, clipped, grads)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"clipvalue": INF}, id="clipvalue"),
        pytest.param({"clipnorm": INF}, id="clipnorm"),
        pytest.param({"global_clipnorm": INF}, id="global_clipnorm"),
        pytest.param({"decay": 0}, id="decay"),
        pytest.param({"weight_decay": 0.0}, id="weight_decay"),
        pytest.param({"dampening": 0}, id="dampening"),
    ],
)
def test_neutral_boundary_values_change_nothing(kwargs):
    """inf clip thresholds and zero decays give the unmodified optimizer's numbers."""
    params = jnp.array([1.0, -2.0, 0.5])
    grads = jnp.array([30.0, -40.0, 2.0])
    plain = jsgd.sgd(0.1, 0.9)
    other = jsgd.sgd(0.1, 0.9, **kwargs)
    s_plain, s_other = plain.init(params), other.init(params)
    for _ in range(3):
        u_plain, s_plain = plain.update(grads, s_plain, params)
        u_other, s_other = other.update(grads, s_other, params)
        np.testing.assert_array_equal(u_other, u_plain)


def test_zero_learning_rate_gives_zero_updates():
    tx = jsgd.sgd(0.0, momentum=0.9, nesterov=True)
    params = jnp.array([1.0, 2.0])
    state = tx.init(params)
    updates, state = tx.update(jnp.array([3.0, -4.0]), state, params)
    np.testing.assert_array_equal(updates, jnp.zeros(2))


def test_momentum_one_accumulates_every_gradient():
    # m = 1: the velocity is the running sum of -lr * g (Keras rule).
    tx = jsgd.sgd(0.5, momentum=1)
    state = tx.init(jnp.zeros(()))
    outputs = []
    for _ in range(3):
        updates, state = tx.update(jnp.array(1.0), state)
        outputs.append(float(updates))
    assert outputs == [-0.5, -1.0, -1.5]


def test_dampening_one_keeps_only_the_first_gradient():
    # d = 1 (torch's rule): the first step stores g undamped, later ones add 0.
    tx = jsgd.momentum_trace(0.5, dampening=1.0)
    state = tx.init(jnp.zeros(()))
    outputs = []
    for _ in range(3):
        updates, state = tx.update(jnp.array(1.0), state)
        outputs.append(float(updates))
    assert outputs == [1.0, 0.5, 0.25]


@pytest.mark.parametrize("zero", [0, 0.0], ids=["int", "float"])
@pytest.mark.parametrize("via", ["sgd", "SGD"])
def test_nesterov_with_zero_momentum_is_plain_sgd(zero, via):
    make = jsgd.sgd if via == "sgd" else jsgd.SGD
    nesterov = make(0.1, zero, nesterov=True)
    plain = make(0.1)
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
    s_nesterov, s_plain = nesterov.init(params), plain.init(params)
    assert jax.tree.structure(s_nesterov) == jax.tree.structure(s_plain)
    for step in range(4):
        grads = jax.tree.map(lambda w, step=step: w * (step + 1) - 0.5, params)
        u_nesterov, s_nesterov = nesterov.update(grads, s_nesterov, params)
        u_plain, s_plain = plain.update(grads, s_plain, params)
        jax.tree.map(np.testing.assert_array_equal, u_nesterov, u_plain)
        expected = jax.tree.map(lambda g: -0.1 * g, grads)
        jax.tree.map(np.testing.assert_allclose, u_nesterov, expected)
        params = optax.apply_updates(params, u_nesterov)


# --------------------------------------------------------------------------- #
# Traced hyperparameters pass unchecked and still give the right numbers.
# --------------------------------------------------------------------------- #

_P = jnp.array(1.0)
_G = jnp.array(1.0)


def _state_after_one_keras_step():
    tx = jsgd.sgd(0.1, 0.9)
    _, state = tx.update(_G, tx.init(_P), _P)
    return state  # velocity = -0.1


def test_jit_traced_momentum_works():
    state = _state_after_one_keras_step()
    step = jax.jit(lambda m: jsgd.sgd(0.1, m).update(_G, state, _P))
    updates, new_state = step(jnp.array(0.5))
    # v = m * v - lr * g = 0.5 * -0.1 - 0.1
    np.testing.assert_allclose(updates, -0.15, rtol=1e-6)
    np.testing.assert_allclose(new_state[1].velocity, -0.15, rtol=1e-6)
    updates, _ = step(jnp.array(0.0))
    np.testing.assert_allclose(updates, -0.1, rtol=1e-6)


def test_jit_traced_out_of_range_value_passes_unchecked():
    # The value is unknown while tracing, so no ValueError is raised.
    state = _state_after_one_keras_step()
    step = jax.jit(lambda m: jsgd.sgd(0.1, m).update(_G, state, _P)[0])
    np.testing.assert_allclose(step(jnp.array(1.5)), 1.5 * -0.1 - 0.1, rtol=1e-6)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param(
            jnp.ones(2),
            _not_scalar("learning_rate", "not an array of shape (2,)"),
            id="shape",
        ),
        pytest.param(
            jnp.array(True),
            _not_scalar("learning_rate", "not a bool array"),
            id="bool-dtype",
        ),
        pytest.param(
            jnp.array(0.1 + 0j),
            _not_scalar("learning_rate", "not a complex array"),
            id="complex-dtype",
        ),
    ],
)
def test_jit_traced_shape_and_dtype_are_still_checked(bad, message):
    step = jax.jit(lambda lr: jsgd.sgd(lr).update(_G, optax.EmptyState(), _P)[0])
    with pytest.raises(TypeError, match=message):
        step(bad)


def test_vmap_over_learning_rates():
    tx = jsgd.sgd(0.1)
    state = tx.init(_P)
    updates = jax.vmap(lambda lr: jsgd.sgd(lr).update(_G, state, _P)[0])(
        jnp.array([0.1, 0.2])
    )
    np.testing.assert_allclose(updates, [-0.1, -0.2], rtol=1e-6)


def test_vmap_over_clip_thresholds():
    def clipped(c):
        tx = jsgd.clip_by_value(c)
        return tx.update(jnp.array([-3.0, 0.5, 2.0]), tx.init(None))[0]

    out = jax.vmap(clipped)(jnp.array([1.0, 2.5]))
    np.testing.assert_allclose(out, [[-1.0, 0.5, 1.0], [-2.5, 0.5, 2.0]])


def test_inject_hyperparams_sgd():
    tx = optax.inject_hyperparams(jsgd.sgd)(learning_rate=0.1, momentum=0.9)
    params = jnp.array(1.0)
    state = tx.init(params)
    update = jax.jit(tx.update)
    u1, state = update(_G, state, params)
    u2, state = update(_G, state, params)
    np.testing.assert_allclose(u1, -0.1, rtol=1e-6)
    np.testing.assert_allclose(u2, -0.19, rtol=1e-6)
    # The hyperparameter can be changed between steps without rebuilding.
    state.hyperparams["learning_rate"] = jnp.array(0.0)
    u3, _ = update(_G, state, params)
    np.testing.assert_allclose(u3, 0.9 * -0.19, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"gradient_accumulation_steps": 2}, "gradient_accumulation_steps"),
        ({"use_ema": True, "ema_overwrite_frequency": 3}, "ema_overwrite_frequency"),
    ],
)
def test_inject_hyperparams_points_structural_ints_to_static_args(kwargs, name):
    # inject_hyperparams turns numbers into arrays; these fix the program's
    # structure, so the error says how to keep them Python ints.
    tx = optax.inject_hyperparams(jsgd.sgd)(learning_rate=0.1, **kwargs)
    with pytest.raises(ValueError, match=rf"`{name}` must be an integer.*static_args"):
        tx.init(jnp.zeros(2))
    tx = optax.inject_hyperparams(jsgd.sgd, static_args=tuple(kwargs))(
        learning_rate=0.1, **kwargs
    )
    updates, _ = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), jnp.zeros(2))
    assert updates.shape == (2,)


def test_inject_hyperparams_matches_plain_sgd():
    kwargs = {"learning_rate": 0.05, "momentum": 0.8, "dampening": 0.1, "decay": 0.1}
    injected = optax.inject_hyperparams(jsgd.sgd, static_args=("nesterov",))(
        nesterov=True, **kwargs
    )
    plain = jsgd.sgd(nesterov=True, **kwargs)
    params = jnp.array([1.0, -1.0])
    s_injected, s_plain = injected.init(params), plain.init(params)
    for _ in range(4):
        grads = 2 * params
        u_injected, s_injected = injected.update(grads, s_injected, params)
        u_plain, s_plain = plain.update(grads, s_plain, params)
        np.testing.assert_allclose(u_injected, u_plain, rtol=1e-6)
        params = optax.apply_updates(params, u_plain)
