"""Keras-style optimizer classes: thin immutable objects over the factories.

No math lives here: each class names its hyperparameters and defaults and
builds its transformation with the matching factory (``SGD`` -> ``sgd``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import optax

from jsgd._adaptive_optimizers import adagrad, adam, rmsprop
from jsgd._keras_keywords import KERAS_KEYWORD_DEFAULTS
from jsgd._keras_optimizer import KerasOptimizer
from jsgd._sgd import sgd


class SGD(KerasOptimizer):
    """Keras's ``SGD`` optimizer as an immutable JAX gradient transformation.

    The update rule is Keras's (``lr_in_velocity=True``, the default), with
    ``g`` the clipped gradient and ``lr_t`` the learning rate at step ``t``::

        momentum == 0:  w = w - lr_t * g
        momentum > 0:   v = m * v - lr_t * g;  w = w + v
        nesterov=True:  v = m * v - lr_t * g;  w = w + m * v - lr_t * g

    and optax's / torch's with ``lr_in_velocity=False`` (see :func:`jsgd.sgd`,
    which builds the transformation and documents every keyword). State: that
    of :func:`jsgd.sgd`; the velocity exists only when ``momentum`` is not the
    Python number 0.

    An ``SGD`` object *is* a gradient transformation: it has ``init`` and
    ``update`` and drops into ``optax.chain``, ``optax.MultiSteps``,
    ``optax.apply_if_finite`` and ``flax.nnx.Optimizer``. It is immutable and
    hashable (equal configurations compare equal), so it can be a static
    argument of ``jax.jit``; ``replace(**changes)`` gives a modified copy.
    ``get_config()`` / ``SGD.from_config(config)`` round-trip it through JSON
    with Keras's key names.

    Args:
      learning_rate: a finite number >= 0, a 0-d array, or a schedule.
      momentum: ``m`` in [0, 1].
      nesterov: use Nesterov momentum.
      name: Keras's optimizer name (kept in the config only).
      **kwargs: ``dampening``, ``lr_in_velocity``, ``accumulator_dtype``,
        ``lazy`` (sparse rows, see :func:`jsgd.sgd`) and the Keras keywords
        (``clipvalue``, ``clipnorm``, ``global_clipnorm``, ``decay``,
        ``weight_decay``, ``use_ema``, ``ema_momentum``,
        ``ema_overwrite_frequency``, ``loss_scale_factor``,
        ``gradient_accumulation_steps``), as in :func:`jsgd.sgd`.

    Raises:
      ValueError: for out-of-range hyperparameters (see :func:`jsgd.sgd`),
        e.g. ``"`momentum` must be between [0, 1]. Received: momentum=1.5"``.
      TypeError: for unknown keywords (all are listed) and for bool, complex,
        string or non-scalar hyperparameters.

    Examples:
      The origin document's doctests, on ``loss = var**2 / 2`` from 1.0:

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

    _defaults: ClassVar[dict[str, Any]] = {
        "learning_rate": 0.01,
        "momentum": 0.0,
        "nesterov": False,
        **KERAS_KEYWORD_DEFAULTS,
        "dampening": 0.0,
        "lr_in_velocity": True,
        "accumulator_dtype": None,
        "lazy": True,
    }
    _always_in_config = ("learning_rate", "decay", "momentum", "nesterov")

    def __init__(
        self,
        learning_rate: optax.ScalarOrSchedule = 0.01,
        momentum: jax.typing.ArrayLike = 0.0,
        nesterov: bool = False,
        name: str = "SGD",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name,
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
            **kwargs,
        )

    _build = staticmethod(sgd)


class Adagrad(KerasOptimizer):
    """Keras's ``Adagrad`` as an immutable JAX gradient transformation.

    ``a = a + g**2;  w -= lr_t * g / sqrt(a + eps)`` (see :func:`jsgd.adagrad`,
    which builds it). Behaves like :class:`jsgd.SGD`: ``init``/``update``,
    ``minimize``, ``get_config``/``from_config``, ``replace``; immutable and
    hashable.

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      initial_accumulator_value: the accumulator's start, >= 0.
      epsilon: added under the square root, >= 0.
      name: Keras's optimizer name.
      **kwargs: ``accumulator_dtype``, ``lazy`` and the Keras keywords, as
        for :class:`jsgd.SGD`.

    Raises:
      ValueError, TypeError: as :func:`jsgd.adagrad`.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.Adagrad(learning_rate=0.1, initial_accumulator_value=0.0,
      ...                    epsilon=0.0)
      >>> w, state = opt.minimize(lambda w: w**2 / 2, jnp.array(2.0))
      >>> float(w)  # 2 - 0.1 * 2 / sqrt(4)
      1.899999976158142
    """

    __slots__ = ()

    _defaults: ClassVar[dict[str, Any]] = {
        "learning_rate": 0.001,
        "initial_accumulator_value": 0.1,
        "epsilon": 1e-7,
        **KERAS_KEYWORD_DEFAULTS,
        "accumulator_dtype": None,
        "lazy": True,
    }
    _always_in_config = ("learning_rate", "initial_accumulator_value", "epsilon")

    def __init__(
        self,
        learning_rate: optax.ScalarOrSchedule = 0.001,
        initial_accumulator_value: jax.typing.ArrayLike = 0.1,
        epsilon: jax.typing.ArrayLike = 1e-7,
        name: str = "Adagrad",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name,
            learning_rate=learning_rate,
            initial_accumulator_value=initial_accumulator_value,
            epsilon=epsilon,
            **kwargs,
        )

    _build = staticmethod(adagrad)


class RMSprop(KerasOptimizer):
    """Keras's ``RMSprop`` as an immutable JAX gradient transformation.

    ``v = rho*v + (1-rho)*g**2``; ``w -= lr_t * g / sqrt(v + eps)`` (centered:
    ``v - a**2``), with Keras's momentum holding the learning rate (see
    :func:`jsgd.rmsprop`). Behaves like :class:`jsgd.SGD`.

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      rho: the averages' decay in [0, 1].
      momentum: momentum in [0, 1].
      epsilon: added under the square root, >= 0.
      centered: normalize by the variance.
      name: Keras's optimizer name.
      **kwargs: ``accumulator_dtype`` and the Keras keywords, as for
        :class:`jsgd.SGD`.

    Raises:
      ValueError, TypeError: as :func:`jsgd.rmsprop`.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.RMSprop(learning_rate=0.01, rho=0.75, epsilon=0.0)
      >>> w, state = opt.minimize(lambda w: w**2 / 2, jnp.array(2.0))
      >>> float(w)  # 2 - 0.01 * 2 / sqrt(0.25 * 4)
      1.9800000190734863
    """

    __slots__ = ()

    _defaults: ClassVar[dict[str, Any]] = {
        "learning_rate": 0.001,
        "rho": 0.9,
        "momentum": 0.0,
        "epsilon": 1e-7,
        "centered": False,
        **KERAS_KEYWORD_DEFAULTS,
        "accumulator_dtype": None,
    }
    _always_in_config = ("learning_rate", "rho", "momentum", "epsilon", "centered")

    def __init__(
        self,
        learning_rate: optax.ScalarOrSchedule = 0.001,
        rho: jax.typing.ArrayLike = 0.9,
        momentum: jax.typing.ArrayLike = 0.0,
        epsilon: jax.typing.ArrayLike = 1e-7,
        centered: bool = False,
        name: str = "RMSprop",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name,
            learning_rate=learning_rate,
            rho=rho,
            momentum=momentum,
            epsilon=epsilon,
            centered=centered,
            **kwargs,
        )

    _build = staticmethod(rmsprop)


class Adam(KerasOptimizer):
    """Keras's ``Adam`` as an immutable JAX gradient transformation.

    ``w -= lr_t * sqrt(1-beta_2**t)/(1-beta_1**t) * m / (sqrt(v) + eps)``
    (see :func:`jsgd.adam`). Behaves like :class:`jsgd.SGD`.

    Args:
      learning_rate: a finite number >= 0, a 0-d array or a schedule.
      beta_1: first-moment decay in [0, 1].
      beta_2: second-moment decay in [0, 1].
      epsilon: added to ``sqrt(v)``, >= 0.
      amsgrad: use the running maximum of ``v``.
      name: Keras's optimizer name.
      **kwargs: ``accumulator_dtype`` and the Keras keywords, as for
        :class:`jsgd.SGD`.

    Raises:
      ValueError, TypeError: as :func:`jsgd.adam`.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.Adam(learning_rate=0.1, epsilon=0.0)
      >>> w, state = opt.minimize(lambda w: w**2 / 2, jnp.array(2.0))
      >>> print(f"{float(w):.4f}")  # the first step is lr * sign(g)
      1.9000
    """

    __slots__ = ()

    _defaults: ClassVar[dict[str, Any]] = {
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
        **KERAS_KEYWORD_DEFAULTS,
        "accumulator_dtype": None,
    }
    _always_in_config = ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(
        self,
        learning_rate: optax.ScalarOrSchedule = 0.001,
        beta_1: jax.typing.ArrayLike = 0.9,
        beta_2: jax.typing.ArrayLike = 0.999,
        epsilon: jax.typing.ArrayLike = 1e-7,
        amsgrad: bool = False,
        name: str = "Adam",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name,
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            **kwargs,
        )

    _build = staticmethod(adam)
