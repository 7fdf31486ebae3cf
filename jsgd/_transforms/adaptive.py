"""Adaptive scalers in Keras 3's exact form: Adagrad, RMSprop and Adam.

Each divides the incoming update by a running statistic of squared gradients.
They differ from optax's ``scale_by_*`` in where epsilon sits, the initial
accumulator and the defaults. Each has two forms: ``form="keras"`` (the
default) is Keras 3's arithmetic, ``form="torch"`` torch.optim's (epsilon
outside the square root, ``torch.lerp`` for the running means, Adam's bias
corrections applied to the second moment before epsilon): the optimizers of
:mod:`jsgd.torch` are built on the latter. None applies a learning rate:
chain :func:`jsgd.scale_by_learning_rate` after them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import IndexedSlices, takes_indexed_slices
from jsgd._sparse.rows import row_step, rows_step

Form = Literal["keras", "torch", "torch_sparse"]
"""Whose arithmetic an adaptive scaler follows ("torch_sparse": Adam only)."""


def _check_form(form: Any, *allowed: str) -> None:
    allowed = ("keras", "torch", *allowed)
    if form not in allowed:
        raise ValueError(
            f"`form` must be one of {', '.join(map(repr, allowed))}. "
            f"Received: form={form!r}"
        )


def _lerp(start: jax.Array, end: jax.Array, weight: Any) -> jax.Array:
    """``torch.lerp(start, end, weight)`` for a scalar weight, in ``start``'s dtype.

    torch computes ``start + w * (end - start)`` for ``|w| < 0.5`` and
    ``end - (end - start) * (1 - w)`` otherwise (exact at both ends).
    """
    w = _tree.hyperparameter_as(weight, start.dtype)
    difference = end - start
    near_start = start + w * difference
    near_end = end - difference * (1 - w)
    concrete = _validation.concrete_scalar("weight", weight)
    if concrete is not None:
        return near_start if abs(float(np.float32(concrete))) < 0.5 else near_end
    return jnp.where(jnp.abs(w) < 0.5, near_start, near_end)


def _bias_correction(one_minus_beta: Any, step: jax.Array) -> jax.Array:
    """``1 - beta**step`` as ``-expm1(step * log1p(-(1 - beta)))``.

    With ``1 - beta`` computed before the float32 cast (0.001, not
    ``1 - float32(0.999)``), this keeps float32's relative precision where
    ``1 - beta**t`` is small: what torch's double arithmetic gets.
    """
    gain = _tree.hyperparameter_as(one_minus_beta, step.dtype)
    return -jnp.expm1(step * jnp.log1p(-gain))


def _abs_sq(g: jax.Array) -> jax.Array:
    """``|g|**2`` in ``g``'s dtype (optax's convention for complex ``g``).

    For complex ``g`` the value is real but kept complex (zero imaginary
    part), as the complex state it is added to: the cast is explicit, so it
    holds under ``jax_numpy_dtype_promotion="strict"`` too.
    """
    if jnp.iscomplexobj(g):
        return jnp.real(g * jnp.conj(g)).astype(g.dtype)
    return g * g


def _buffer_dtypes(accumulator_dtype: Any, **buffers: Any) -> list[Any]:
    """Each buffer's dtype: its own ``*_dtype`` argument, else ``accumulator_dtype``.

    Checked in the order given (``accumulator_dtype`` first); ``None`` means
    the parameters' dtype.
    """
    default = _validation.canonical_dtype("accumulator_dtype", accumulator_dtype)
    return [
        default if value is None else _validation.canonical_dtype(name, value)
        for name, value in buffers.items()
    ]


def _map_rows_or_dense(
    fn: Callable[..., tuple[jax.Array, tuple[jax.Array, ...]]],
    updates: Any,
    states: tuple[Any, ...],
    *,
    sparse_rows: bool,
) -> tuple[Any, tuple[Any, ...]]:
    """``fn(g, *states) -> (new_g, new_states)`` over every leaf of ``updates``.

    A dense leaf takes ``fn`` whole; an ``IndexedSlices`` leaf takes it on its
    touched rows (``rows_step``), or, with ``sparse_rows=False``, is the
    TypeError of ``_tree.require_dense``. Returns the new updates and the
    tuple of new state trees, in the order of ``states``.
    """
    if not sparse_rows:
        _tree.require_dense(updates)

    def leaf(g, *leaf_states):
        if isinstance(g, IndexedSlices):
            return rows_step(g, leaf_states, fn)
        return fn(g, *leaf_states)

    return _tree.map_updates_and_states(leaf, updates, states)


class AdagradState(NamedTuple):
    """State of :func:`jsgd.scale_by_adagrad`.

    Attributes:
      accumulator: the running sum of squared updates, started at
        ``initial_accumulator_value``.
    """

    accumulator: optax.Updates


@takes_indexed_slices
def scale_by_adagrad(
    initial_accumulator_value: jax.typing.ArrayLike = 0.1,
    epsilon: jax.typing.ArrayLike = 1e-7,
    *,
    accumulator_dtype: Any | None = None,
    form: Form = "keras",
) -> optax.GradientTransformationExtraArgs:
    """Adagrad's scaling, in Keras 3's form or torch's.

    ::

        a = a + g**2
        u = g / sqrt(a + eps)                     (form="keras": Keras 3)
        u = g / (sqrt(a) + eps)                   (form="torch": torch.optim)

    The accumulator starts at ``initial_accumulator_value`` (optax's
    ``scale_by_rss`` differs). Followed by ``scale_by_learning_rate(lr)``
    this is ``keras.optimizers.Adagrad`` (or, with the torch form and the
    learning rate ``lr / (1 + t * lr_decay)``, ``torch.optim.Adagrad``).
    State: :class:`jsgd.AdagradState`.

    Row-sparse updates (:class:`jsgd.IndexedSlices`): duplicate rows are
    summed, then only the touched rows' accumulator changes and the output
    is an ``IndexedSlices`` of those rows. An untouched row's dense update
    would be 0 and its accumulator unchanged, so this is the dense result,
    at O(k) cost.

    Args:
      initial_accumulator_value: the accumulator's start, >= 0.
      epsilon: added to the accumulator under the square root, >= 0.
      accumulator_dtype: dtype of the accumulator (default: the parameters').
      form: ``"keras"`` or ``"torch"``: where epsilon sits (above).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: for a negative or non-finite concrete hyperparameter, or an
        unknown ``form``.
      TypeError: for bool, complex, string or non-scalar hyperparameters.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.scale_by_adagrad(initial_accumulator_value=0.0, epsilon=0.0)
      >>> u, state = tx.update(jnp.array([3.0]), tx.init(jnp.zeros(1)))
      >>> u, state.accumulator
      (Array([1.], dtype=float32), Array([9.], dtype=float32))
    """
    _validation.check_non_negative(
        "initial_accumulator_value", initial_accumulator_value
    )
    _validation.check_non_negative("epsilon", epsilon)
    accumulator_dtype = _validation.canonical_dtype(
        "accumulator_dtype", accumulator_dtype
    )
    _check_form(form)

    def init_fn(params: optax.Params) -> AdagradState:
        return AdagradState(
            accumulator=_tree.state_like(
                params, accumulator_dtype, initial_accumulator_value
            )
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, AdagradState, "scale_by_adagrad")

        def step(g, a):
            dtype = _tree.compute_dtype(g.dtype, a.dtype)
            wide = g.astype(dtype)
            # Scale by the stored (rounded) accumulator, as Keras does.
            stored = (a.astype(dtype) + _abs_sq(wide)).astype(a.dtype)
            eps = _tree.hyperparameter_as(epsilon, dtype)
            if form == "torch":
                root = jnp.sqrt(stored.astype(dtype)) + eps
            else:
                root = jnp.sqrt(stored.astype(dtype) + eps)
            return (wide / root).astype(g.dtype), stored

        def sparse_or_dense_step(g, a):
            if isinstance(g, IndexedSlices):
                # Untouched rows would get 0 / sqrt(a + eps) = 0 and keep
                # their accumulator: the row step is the dense result exactly.
                return row_step(g, a, step)
            return step(g, a)

        updates, accumulator = _tree.map_updates_and_state(
            sparse_or_dense_step, updates, state.accumulator
        )
        return updates, AdagradState(accumulator=accumulator)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class RMSpropState(NamedTuple):
    """State of :func:`jsgd.scale_by_rmsprop`.

    Attributes:
      velocity: the moving average of squared updates (from 0).
      average_gradient: the moving average of updates (from 0) when
        ``centered``, else ``None``.
    """

    velocity: optax.Updates
    average_gradient: Any  # a tree like the parameters, or None


def scale_by_rmsprop(
    rho: jax.typing.ArrayLike = 0.9,
    epsilon: jax.typing.ArrayLike = 1e-7,
    centered: bool = False,
    *,
    accumulator_dtype: Any | None = None,
    velocity_dtype: Any | None = None,
    average_gradient_dtype: Any | None = None,
    form: Form = "keras",
    sparse_rows: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """RMSprop's scaling, in Keras 3's form or torch's.

    ``form="keras"``::

        v = rho * v + (1 - rho) * g**2
        a = rho * a + (1 - rho) * g               (centered only)
        u = g / sqrt(v - a**2 + eps)              (centered)
        u = g / sqrt(v + eps)                     (otherwise)

    ``form="torch"`` (``torch.optim.RMSprop``, whose ``alpha`` is ``rho``)::

        v = rho * v + (1 - rho) * g**2
        a = lerp(a, g, 1 - rho)                   (centered only)
        u = g / (sqrt(v - a**2) + eps)            (centered)
        u = g / (sqrt(v) + eps)                   (otherwise)

    Both averages start at 0; optax's ``scale_by_rms`` differs from both.
    ``keras.optimizers.RMSprop`` is the Keras form, then
    ``scale_by_learning_rate(lr)``, then (when its momentum is set)
    :func:`jsgd.momentum_trace`: Keras keeps the learning rate inside the
    momentum. torch's puts the momentum before the learning rate.
    State: :class:`jsgd.RMSpropState`.

    Row-sparse updates (:class:`jsgd.IndexedSlices`) with ``sparse_rows=True``:
    duplicate rows are summed, then only the touched rows' averages change
    and the output is an ``IndexedSlices`` of those rows (untouched rows keep
    stale averages, where the dense rule decays them). Followed by
    ``scale_by_learning_rate(lr)`` and a lazy :func:`jsgd.momentum_trace`
    (or nothing, for momentum 0), the Keras form is then legacy tf.keras's
    ``SparseApplyRMSProp`` / ``SparseApplyCenteredRMSProp`` kernel on the
    touched rows ``i``::

        ms[i] = rho * ms[i] + (1 - rho) * g[i]**2
        mg[i] = rho * mg[i] + (1 - rho) * g[i]                   (centered)
        mom[i] = momentum * mom[i] + lr * g[i] / sqrt(ms[i] - mg[i]**2 + eps)
        mom[i] = momentum * mom[i] + lr * g[i] / sqrt(ms[i] + eps)  (otherwise)
        w[i] -= mom[i]

    Without ``sparse_rows`` an ``IndexedSlices`` update is a TypeError.

    Args:
      rho: the averages' decay in [0, 1].
      epsilon: added under the square root, >= 0.
      centered: subtract the squared mean gradient (a variance estimate).
      accumulator_dtype: dtype of the averages (default: the parameters').
      velocity_dtype: dtype of ``velocity`` (default: ``accumulator_dtype``).
      average_gradient_dtype: dtype of ``average_gradient`` (default:
        ``accumulator_dtype``).
      form: ``"keras"`` or ``"torch"`` (above).
      sparse_rows: step only the touched rows of ``IndexedSlices`` updates.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: for ``rho`` outside [0, 1], a negative ``epsilon`` or an
        unknown ``form``.
      TypeError: for bool, complex, string or non-scalar hyperparameters, a
        non-bool ``centered`` or ``sparse_rows``, or (at update time) an
        ``IndexedSlices`` update without ``sparse_rows``.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.scale_by_rmsprop(rho=0.75, epsilon=0.0)
      >>> u, state = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
      >>> u, state.velocity  # v = 0.25 * 4;  u = 2 / sqrt(1)
      (Array([2.], dtype=float32), Array([1.], dtype=float32))
    """
    _validation.check_unit_interval("rho", rho)
    _validation.check_non_negative("epsilon", epsilon)
    _validation.check_bool("centered", centered)
    velocity_dtype, average_gradient_dtype = _buffer_dtypes(
        accumulator_dtype,
        velocity_dtype=velocity_dtype,
        average_gradient_dtype=average_gradient_dtype,
    )
    _check_form(form)
    _validation.check_bool("sparse_rows", sparse_rows)

    def init_fn(params: optax.Params) -> RMSpropState:
        average = _tree.state_like(params, average_gradient_dtype) if centered else None
        return RMSpropState(
            velocity=_tree.state_like(params, velocity_dtype),
            average_gradient=average,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, RMSpropState, "scale_by_rmsprop")

        def leaf(g, v, a=None):
            dtype = _tree.compute_dtype(g.dtype, v.dtype)
            g_ = g.astype(dtype)
            r, gain = (
                _tree.hyperparameter_as(rho, dtype),
                _tree.hyperparameter_as(1 - rho, dtype),
            )
            new_v = (r * v.astype(dtype) + gain * _abs_sq(g_)).astype(v.dtype)
            # Scale by the stored (rounded) averages, as Keras does.
            denominator = new_v.astype(dtype)
            stored: tuple[jax.Array, ...] = (new_v,)
            if a is not None:
                if form == "keras":
                    new_a = r * a.astype(dtype) + gain * g_
                else:
                    new_a = _lerp(a.astype(dtype), g_, 1 - rho)
                new_a = new_a.astype(a.dtype)
                stored = (new_v, new_a)
                denominator = denominator - _abs_sq(new_a.astype(dtype))
            eps = _tree.hyperparameter_as(epsilon, dtype)
            if form == "torch":
                root = jnp.sqrt(denominator) + eps
            else:
                root = jnp.sqrt(denominator + eps)
            return (g_ / root).astype(g.dtype), stored

        states = (state.velocity,)
        if centered:
            states = (*states, state.average_gradient)
        updates, new = _map_rows_or_dense(
            leaf, updates, states, sparse_rows=sparse_rows
        )
        return updates, RMSpropState(
            velocity=new[0], average_gradient=new[1] if centered else None
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AdamState(NamedTuple):
    """State of :func:`jsgd.scale_by_adam`.

    Attributes:
      count: int32 number of steps taken (saturating); step ``t = count + 1``
        sets the bias corrections.
      momentum: first moment ``m`` (from 0).
      velocity: second moment ``v`` (from 0).
      velocity_hat: running maximum of ``v`` when ``amsgrad``, else ``None``.
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    momentum: optax.Updates
    velocity: optax.Updates
    velocity_hat: Any  # a tree like the parameters, or None


def scale_by_adam(
    beta_1: jax.typing.ArrayLike = 0.9,
    beta_2: jax.typing.ArrayLike = 0.999,
    epsilon: jax.typing.ArrayLike = 1e-7,
    amsgrad: bool = False,
    *,
    accumulator_dtype: Any | None = None,
    momentum_dtype: Any | None = None,
    velocity_dtype: Any | None = None,
    form: Form = "keras",
    sparse_rows: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Adam's scaling, in Keras 3's form or torch's.

    With ``t = count + 1``, ``form="keras"`` (Keras 3, and the Adam paper's
    "epsilon hat" form: epsilon is not bias-corrected)::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                     (amsgrad; then v := v_hat)
        u = m * sqrt(1 - beta_2**t) / (1 - beta_1**t) / (sqrt(v) + eps)

    ``form="torch"`` (``torch.optim.Adam``: epsilon added to the corrected
    root, as optax's ``scale_by_adam`` also does)::

        m = lerp(m, g, 1 - beta_1)
        v = beta_2 * v + (1 - beta_2) * g**2
        v_hat = max(v_hat, v)                     (amsgrad; then v := v_hat)
        u = m / (sqrt(v) / sqrt(1 - beta_2**t) + eps) / (1 - beta_1**t)

    The two differ for small ``t`` and small ``v``. ``form="torch_sparse"``
    is ``torch.optim.SparseAdam``'s arithmetic: the Keras form's, with torch's
    bias corrections. Followed by ``scale_by_learning_rate(lr)`` the Keras
    form is ``keras.optimizers.Adam`` and the torch form ``torch.optim.Adam``
    (without weight decay). The torch forms compute ``1 - beta**t`` as
    ``-expm1(t * log1p(-(1 - beta)))``, keeping float32's relative precision
    as torch's double arithmetic does (Keras computes it in float32).

    Row-sparse updates (:class:`jsgd.IndexedSlices`) with ``sparse_rows=True``:
    duplicate rows are summed, then only the touched rows' moments change and
    the output is an ``IndexedSlices`` of those rows: with
    ``form="torch_sparse"`` that is ``torch.optim.SparseAdam``.
    Without ``sparse_rows`` an ``IndexedSlices`` update is a TypeError.

    State: :class:`jsgd.AdamState`.

    Args:
      beta_1: first-moment decay in [0, 1].
      beta_2: second-moment decay in [0, 1].
      epsilon: added to the root, >= 0.
      amsgrad: use the running maximum of ``v`` (Reddi et al. 2018).
      accumulator_dtype: dtype of the moments (default: the parameters').
      momentum_dtype: dtype of ``momentum`` (default: ``accumulator_dtype``).
      velocity_dtype: dtype of ``velocity`` and ``velocity_hat`` (default:
        ``accumulator_dtype``).
      form: ``"keras"``, ``"torch"`` or ``"torch_sparse"`` (above).
      sparse_rows: step only the touched rows of ``IndexedSlices`` updates.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: for betas outside [0, 1], a negative ``epsilon`` or an
        unknown ``form``.
      TypeError: for bool, complex, string or non-scalar hyperparameters, or
        a non-bool ``amsgrad`` or ``sparse_rows``.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> tx = jsgd.scale_by_adam(epsilon=0.0)
      >>> u, state = tx.update(jnp.array([-4.0]), tx.init(jnp.zeros(1)))
      >>> print(f"{float(u[0]):.4f}")  # the first step is sign(g) when eps is 0
      -1.0000
    """
    _validation.check_unit_interval("beta_1", beta_1)
    _validation.check_unit_interval("beta_2", beta_2)
    _validation.check_non_negative("epsilon", epsilon)
    _validation.check_bool("amsgrad", amsgrad)
    momentum_dtype, velocity_dtype = _buffer_dtypes(
        accumulator_dtype, momentum_dtype=momentum_dtype, velocity_dtype=velocity_dtype
    )
    _check_form(form, "torch_sparse")
    _validation.check_bool("sparse_rows", sparse_rows)

    def init_fn(params: optax.Params) -> AdamState:
        return AdamState(
            count=_tree.zero_count(),
            momentum=_tree.state_like(params, momentum_dtype),
            velocity=_tree.state_like(params, velocity_dtype),
            velocity_hat=_tree.state_like(params, velocity_dtype) if amsgrad else None,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, AdamState, "scale_by_adam")
        step = state.count.astype(jnp.float32) + 1  # no int32 wrap at the maximum

        def hyper(value, dtype):
            return _tree.hyperparameter_as(value, dtype)

        def leaf(g, m, v, v_hat=None):
            dtype = _tree.compute_dtype(g.dtype, m.dtype, v.dtype)
            g_, m_, v_ = g.astype(dtype), m.astype(dtype), v.astype(dtype)
            if form == "torch":
                m_ = _lerp(m_, g_, 1 - beta_1)
                v_ = v_ * hyper(beta_2, dtype) + hyper(1 - beta_2, dtype) * _abs_sq(g_)
            else:
                # `1 - beta` before the cast, as Keras computes it: for a
                # Python float that keeps the small gain exact.
                m_ = m_ + (g_ - m_) * hyper(1 - beta_1, dtype)
                v_ = v_ + (_abs_sq(g_) - v_) * hyper(1 - beta_2, dtype)
            new_m, new_v = m_.astype(m.dtype), v_.astype(v.dtype)
            stored = (new_m, new_v)
            root_of = new_v
            if amsgrad:
                assert v_hat is not None
                root_of = jnp.maximum(v_hat, new_v)
                stored = (*stored, root_of)
            t = step.astype(dtype)
            m_, root = new_m.astype(dtype), jnp.sqrt(root_of.astype(dtype))
            eps = hyper(epsilon, dtype)
            if form == "torch":
                correction_2 = jnp.sqrt(_bias_correction(1 - beta_2, step))
                correction_1 = _bias_correction(1 - beta_1, step)
                denominator = root / correction_2.astype(dtype) + eps
                u = m_ / denominator / correction_1.astype(dtype)
            elif form == "torch_sparse":
                correction = jnp.sqrt(_bias_correction(1 - beta_2, step)) / (
                    _bias_correction(1 - beta_1, step)
                )
                u = m_ / (root + eps) * correction.astype(dtype)
            else:
                correction = jnp.sqrt(1 - hyper(beta_2, dtype) ** t) / (
                    1 - hyper(beta_1, dtype) ** t
                )
                u = m_ * correction / (root + eps)
            return u.astype(g.dtype), stored

        states = (state.momentum, state.velocity)
        if amsgrad:
            states = (*states, state.velocity_hat)
        updates, new = _map_rows_or_dense(
            leaf, updates, states, sparse_rows=sparse_rows
        )
        return updates, AdamState(
            count=_tree.increment(state.count),
            momentum=new[0],
            velocity=new[1],
            velocity_hat=new[2] if amsgrad else None,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
