"""Weight decay, coupled (L2 in the gradient) and decoupled (Keras 3)."""

from __future__ import annotations

import jax
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import IndexedSlices, takes_indexed_slices
from jsgd._sparse.rows import with_param_rows
from jsgd._transforms import learning_rate as _learning_rate


def _decay_leaf(u: jax.Array, w: jax.Array, coefficient) -> jax.Array:
    """``u + w * coefficient`` in at least float32, in ``u``'s dtype."""
    dtype = _tree.compute_dtype(u.dtype, w.dtype)
    decayed = _tree.cast(w, dtype) * coefficient(dtype)
    return _tree.cast(_tree.cast(u, dtype) + decayed, u.dtype)


def _decay(updates, params, coefficient, lazy: bool):
    """``u + w * coefficient`` per leaf; rows only, for lazy ``IndexedSlices``."""
    _tree.require_params(params)
    coefficient = _tree.scalar_cache(coefficient)

    def dense(u, w):
        return _decay_leaf(u, w, coefficient)

    def sparse(u: IndexedSlices, w):
        if lazy:
            return with_param_rows(u, w, dense)
        return dense(u.to_dense(), w)

    return _tree.map_updates(dense, updates, params, what="params", sparse=sparse)


@takes_indexed_slices
def add_decayed_weights(
    weight_decay: jax.typing.ArrayLike, *, lazy: bool = True
) -> optax.GradientTransformationExtraArgs:
    """Coupled weight decay: adds ``wd * w`` to the gradient (L2 regularization).

    ``u = g + wd * w``. Placed before momentum, the decay flows through the
    velocity and is scaled by the learning rate: ``torch.optim.SGD``'s
    ``weight_decay`` and optax's ``add_decayed_weights``. For Keras 3's
    ``weight_decay`` use :func:`jsgd.decoupled_weight_decay`.
    State: ``optax.EmptyState``.

    Row-sparse updates (:class:`jsgd.IndexedSlices`): with ``lazy=True`` only
    the rows the step touches get ``wd * w[i]``, each once (duplicates summed
    first), and the output stays an ``IndexedSlices``; ``lazy=False``
    densifies it (every row decays: the dense result).

    Args:
      weight_decay: the coefficient ``wd``, a finite number >= 0 (may be traced).
      lazy: for ``IndexedSlices`` updates, decay only touched rows (True) or
        every row (False).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs
      ``params``; updates keep their dtype.

    Raises:
      ValueError: if a concrete ``weight_decay`` is negative or not finite, or
        (at update time) if ``params`` is not given.
      TypeError: if ``weight_decay`` is a bool, complex, string or non-scalar.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.add_decayed_weights(0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> tx.update(jnp.zeros(2), tx.init(params), params)[0]
      Array([ 0.1, -0.2], dtype=float32)
    """
    _validation.check_non_negative("weight_decay", weight_decay)
    _validation.check_bool("lazy", lazy)

    def decay(updates: optax.Updates, params: optax.Params) -> optax.Updates:
        return _decay(
            updates, params, lambda d: _tree.hyperparameter_as(weight_decay, d), lazy
        )

    return _tree.stateless_transform(decay, "add_decayed_weights")


@takes_indexed_slices
def decoupled_weight_decay(
    weight_decay: jax.typing.ArrayLike,
    learning_rate: optax.ScalarOrSchedule,
    *,
    lazy: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """Decoupled weight decay, Keras 3's ``weight_decay``.

    ``u = u - lr_t * wd * w``: the step shrinks each weight by ``lr_t * wd``
    of itself, outside clipping and momentum (Keras 3 applies
    ``w -= w * wd * lr_t`` before the optimizer's own step). Place it last in
    a chain, after the learning-rate and momentum steps. With a schedule the
    transform counts steps itself, so it must see every step the learning-rate
    step sees. State: ``optax.EmptyState``, or :class:`jsgd.ScheduleState`
    when ``learning_rate`` is a schedule.

    Row-sparse updates (:class:`jsgd.IndexedSlices`): with ``lazy=True`` only
    the rows the step touches decay, each once (duplicates summed first;
    TensorFlow Addons' ``SGDW`` sparse rule), and the output stays an
    ``IndexedSlices``; ``lazy=False`` densifies it and decays every row (the
    dense result, Keras 3's).

    Args:
      weight_decay: the coefficient ``wd``, a finite number >= 0.
      learning_rate: the same learning rate (number, 0-d array or schedule)
        as the optimizer's.
      lazy: for ``IndexedSlices`` updates, decay only touched rows (True) or
        every row (False).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs
      ``params``; updates keep their dtype.

    Raises:
      ValueError: if a concrete ``weight_decay`` or ``learning_rate`` is
        negative or not finite, or (at update time) if ``params`` is missing.
      TypeError: if either is a bool, complex, string or non-scalar.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.decoupled_weight_decay(0.5, learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> tx.update(jnp.zeros(2), tx.init(params), params)[0]
      Array([-0.05,  0.1 ], dtype=float32)
    """
    _validation.check_non_negative("weight_decay", weight_decay)
    _validation.check_learning_rate("learning_rate", learning_rate)
    _validation.check_bool("lazy", lazy)

    def apply(updates, params, lr):
        def minus_lr_wd(dtype):
            return -(
                _tree.hyperparameter_as(weight_decay, dtype)
                * _tree.hyperparameter_as(lr, dtype)
            )

        return _decay(updates, params, minus_lr_wd, lazy)

    return _learning_rate.learning_rate_transform(
        learning_rate, apply, "decoupled_weight_decay"
    )
