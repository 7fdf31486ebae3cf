"""``jsgd.SGD``: the origin document's Keras ``SGD`` class, over ``jsgd.sgd``."""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import optax

from jsgd import _validation
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
      **kwargs: ``clipvalue``, ``clipnorm``, ``global_clipnorm``, ``decay``,
        ``weight_decay``, ``dampening``, ``lr_in_velocity``,
        ``accumulator_dtype``, as in :func:`jsgd.sgd`.

    Raises:
      ValueError: for out-of-range hyperparameters (see :func:`jsgd.sgd`),
        e.g. ``"`momentum` must be between [0, 1]. Received: momentum=1.5"``.
      TypeError: for unknown keywords (all are listed) and for bool, complex,
        string or non-scalar hyperparameters.

    Example:
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
        "clipvalue": None,
        "clipnorm": None,
        "global_clipnorm": None,
        "decay": 0.0,
        "weight_decay": None,
        "dampening": 0.0,
        "lr_in_velocity": True,
        "accumulator_dtype": None,
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

    @staticmethod
    def _normalize(config: dict[str, Any]) -> dict[str, Any]:
        dtype = _validation.canonical_dtype(
            "accumulator_dtype", config["accumulator_dtype"]
        )
        return {**config, "accumulator_dtype": dtype}

    _build = staticmethod(sgd)
