"""Weight decay, coupled (L2 in the gradient) and decoupled (Keras 3)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._common.tree import path_string
from jsgd._sparse.indexed_slices import IndexedSlices, takes_indexed_slices
from jsgd._sparse.rows import with_param_rows
from jsgd._transforms import learning_rate as _learning_rate


def _decay_leaf(u: jax.Array, w: jax.Array, coefficient) -> jax.Array:
    """``u + w * coefficient`` in at least float32, in ``u``'s dtype."""
    dtype = _tree.compute_dtype(u.dtype, w.dtype)
    decayed = _tree.cast(w, dtype) * coefficient(dtype)
    return _tree.cast(_tree.cast(u, dtype) + decayed, u.dtype)


def _decay(updates, params, coefficient, lazy: bool, mask: Any = None):
    """``u + w * coefficient`` per leaf; rows only, for lazy ``IndexedSlices``.

    Leaves whose ``mask`` flag is False are left as they are.
    """
    _tree.require_params(params)
    coefficient = _tree.scalar_cache(coefficient)

    def dense(u, w):
        return _decay_leaf(u, w, coefficient)

    def sparse(u: IndexedSlices, w):
        if lazy:
            return with_param_rows(u, w, dense)
        return dense(u.to_dense(), w)

    if mask is None:
        return _tree.map_updates(dense, updates, params, what="params", sparse=sparse)
    _tree.check_matching(updates, params, "params")
    treedef = jax.tree.structure(updates, is_leaf=_tree.is_update_leaf)
    tree = mask(params) if callable(mask) else mask
    try:
        flags = treedef.flatten_up_to(tree)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"jsgd: the weight-decay mask must be a tree like the parameters: {error}"
        ) from None
    for flag in flags:
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(
                "jsgd: a weight-decay mask's leaves must be Python bools. "
                f"Received: {flag!r}"
            )
    leaves = [
        _tree.map_updates(dense, u, w, what="params", sparse=sparse) if flag else u
        for u, w, flag in zip(
            treedef.flatten_up_to(updates),
            treedef.flatten_up_to(params),
            flags,
            strict=True,
        )
    ]
    return treedef.unflatten(leaves)


@takes_indexed_slices
def add_decayed_weights(
    weight_decay: jax.typing.ArrayLike, *, lazy: bool = True, mask: Any = None
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
      mask: which leaves decay: a tree like the parameters of Python bools
        (False: no decay), or a callable ``params -> such a tree`` (as
        ``optax.masked``'s); ``None``: every leaf. The Keras optimizers'
        ``weight_decay_exclude`` builds one from name patterns
        (:func:`jsgd.weight_decay_mask`).

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
            updates,
            params,
            lambda d: _tree.hyperparameter_as(weight_decay, d),
            lazy,
            mask,
        )

    return _tree.stateless_transform(decay, "add_decayed_weights")


@takes_indexed_slices
def decoupled_weight_decay(
    weight_decay: jax.typing.ArrayLike,
    learning_rate: optax.ScalarOrSchedule,
    *,
    lazy: bool = True,
    mask: Any = None,
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
      mask: which leaves decay: a tree like the parameters of Python bools
        (False: no decay), or a callable ``params -> such a tree`` (as
        ``optax.masked``'s); ``None``: every leaf. The Keras optimizers'
        ``weight_decay_exclude`` builds one from name patterns
        (:func:`jsgd.weight_decay_mask`).

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

        return _decay(updates, params, minus_lr_wd, lazy, mask)

    return _learning_rate.learning_rate_transform(
        learning_rate, apply, "decoupled_weight_decay"
    )


def check_patterns(name: str, patterns: Any) -> None:
    """Raises unless ``patterns`` is a tuple of valid regular expressions."""
    if not isinstance(patterns, tuple) or not all(isinstance(p, str) for p in patterns):
        raise TypeError(
            f"`{name}` must be None or a tuple of str (regular expressions). "
            f"Received: {name}={patterns!r}"
        )
    try:
        re.compile("|".join(patterns))
    except re.error as error:
        raise ValueError(
            f"`{name}` must hold valid regular expressions ({error}). "
            f"Received: {name}={patterns!r}"
        ) from None


def weight_decay_mask(
    patterns: tuple[str, ...], *, by_path: bool = False
) -> Callable[[Any], Any]:
    """A weight-decay mask excluding the leaves whose name matches a pattern.

    Keras 3's ``exclude_from_weight_decay(var_names=...)``: a leaf is excluded
    when ``re.search("|".join(patterns), name)`` finds a match. A leaf's name
    is the last key of its path (``{"dense": {"bias": w}}``: ``"bias"``; a
    ``flax.nnx`` Variable's trailing ``.value`` dropped), or with
    ``by_path=True`` the whole path joined with ``"/"`` (``"dense/bias"``).

    Args:
      patterns: regular expressions (``re.search`` semantics).
      by_path: match the "/"-joined path instead of the last key.

    Returns:
      ``params -> tree of bools`` (True: decays), for the ``mask`` argument
      of :func:`jsgd.decoupled_weight_decay` or :func:`jsgd.add_decayed_weights`.

    Raises:
      TypeError: if ``patterns`` is not a tuple of str or ``by_path`` not a bool.
      ValueError: for an invalid regular expression.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> from jsgd import weight_decay_mask
      >>> params = {"dense": {"kernel": jnp.ones(2), "bias": jnp.ones(2)}}
      >>> weight_decay_mask(("bias",))(params)
      {'dense': {'bias': False, 'kernel': True}}
    """
    check_patterns("patterns", patterns)
    _validation.check_bool("by_path", by_path)
    pattern = re.compile("|".join(patterns)) if patterns else None

    def mask(params: Any) -> Any:
        def decays(path: Any, _leaf: Any) -> bool:
            if pattern is None:
                return True
            name = path_string(path)
            if not by_path:
                name = name.rsplit("/", 1)[-1]
            return pattern.search(name) is None

        return jax.tree_util.tree_map_with_path(decays, params)

    return mask
