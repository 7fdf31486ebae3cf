"""torch's gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_``.

The transforms follow ``torch.nn.utils`` (torch 2.13) operation by operation,
roundings included: each leaf's norm is rounded to the leaf's (real) dtype,
the norm of those norms to their promoted dtype, and the clip coefficient is
computed in that dtype as torch computes it (``max_norm * reciprocal(total +
1e-6)``). For float32 gradients that is float32 arithmetic throughout; for a
tree of bfloat16 (or float16) gradients only, the total norm and the
coefficient are bfloat16 numbers, as in torch.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.core import Tracer
from jax.experimental import io_callback

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._sparse.indexed_slices import IndexedSlices, takes_indexed_slices
from jsgd._transforms.clipping import _clip_leaf_by_value, _safe_sqrt, _scaled

__all__ = [
    "ClipGradNormState",
    "clip_grad_norm",
    "clip_grad_value",
    "get_total_norm",
]


class ClipGradNormState(NamedTuple):
    """State of :func:`clip_grad_norm`: what torch's ``clip_grad_norm_`` returns.

    Attributes:
      total_norm: the total norm of the gradients of the latest ``update``
        (0 before the first), the value torch's ``clip_grad_norm_`` returns
        for them: log it as you would torch's return value. A 0-d float32
        array (float64 when ``init`` saw a float64 or complex128 parameter);
        a bfloat16 or float16 norm is exact in it.
    """

    total_norm: jax.Array


# --- arguments ---------------------------------------------------------------


def _check_norm_type(norm_type: Any) -> float:
    """``norm_type`` as torch reads it (``float(norm_type)``), or an error.

    Any float but NaN is accepted, as by torch: p > 0, 0 (a count of the
    nonzero entries), p < 0 and -inf (the smallest absolute value) too.
    """
    if isinstance(norm_type, str):  # torch's documented ``'inf'``
        try:
            number = float(norm_type)
        except ValueError:
            raise ValueError(
                "`norm_type` must be a number or a string float() reads, such "
                f"as 'inf'. Received: norm_type={norm_type!r}"
            ) from None
    else:
        if isinstance(norm_type, Tracer):
            raise TypeError(
                "`norm_type` must be a concrete number: it chooses the "
                "reduction, so it shapes the program (under "
                "optax.inject_hyperparams, pass it in `static_args`). "
                f"Received: norm_type={norm_type!r}"
            )
        value = _validation.concrete_scalar("norm_type", norm_type)
        assert value is not None  # a tracer was refused above
        number = value
    if math.isnan(number):
        raise ValueError(
            "`norm_type` must not be NaN: torch's norm of order NaN is NaN, so "
            f"every gradient would become NaN. Received: norm_type={norm_type!r}"
        )
    return number


def _check_foreach(foreach: Any) -> None:
    if foreach is not None:
        _validation.check_bool("foreach", foreach)


def _check_args(norm_type: Any, error_if_nonfinite: Any, foreach: Any) -> float:
    p = _check_norm_type(norm_type)
    _validation.check_bool("error_if_nonfinite", error_if_nonfinite)
    _check_foreach(foreach)
    return p


# --- dtypes and roundings ----------------------------------------------------


def _norm_dtype(dtype: Any) -> jnp.dtype:
    """The dtype of torch's norm of a ``dtype`` tensor: its real counterpart."""
    return jnp.dtype(jnp.finfo(dtype).dtype)


def _promoted(dtypes: list[jnp.dtype]) -> jnp.dtype:
    """The dtype torch promotes floating dtypes to (``torch.stack`` of norms).

    One dtype stays itself; bfloat16 with float16 or float32 gives float32;
    anything with float64 gives float64. Written out because JAX's strict
    promotion mode refuses bfloat16 with float16.
    """
    if len(set(dtypes)) == 1:
        return dtypes[0]
    if any(d.itemsize >= 8 for d in dtypes):
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def _round(x: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """``x`` rounded to ``dtype``'s precision, kept in ``x``'s (wider) dtype.

    The rounding is what torch does when it stores a bfloat16 or float16
    result. The optimization barrier keeps XLA from dropping the round trip
    (GPU compilers may, under ``xla_allow_excess_precision``); it is only
    ever applied to scalars.
    """
    if x.dtype == dtype:
        return x
    return jax.lax.optimization_barrier(x.astype(dtype)).astype(x.dtype)


# --- norms ---------------------------------------------------------------------


def _needs_elements(p: float) -> bool:
    """Whether torch's norm of order ``p`` has no identity (empty raises)."""
    return p < 0 or p == math.inf


def _format_order(p: float) -> str:
    return f"{p:g}"


def _vector_norm(
    x: jax.Array,
    p: float,
    live: jax.Array | None = None,
    implicit_zero: jax.Array | None = None,
) -> jax.Array:
    """``torch.linalg.vector_norm(x, p)`` in ``x``'s precision (a real result).

    Args:
      x: the entries, already in the arithmetic dtype (float32 or wider;
        complex entries count by their absolute value).
      p: the order.
      live: where not None, a mask of the entries that exist (the others are
        padding, with value 0).
      implicit_zero: where not None, whether the tensor also holds zeros that
        are not among ``x`` (the absent rows of a sparse gradient); they
        matter to the orders whose result a zero decides (p < 0, -inf).
    """
    if p == 2:
        return _safe_sqrt(_tree.squared_norm(x))
    a = jnp.abs(x)
    dtype = a.dtype
    if p == math.inf:
        return jnp.max(a, initial=jnp.zeros([], dtype))
    if p == 0:
        return jnp.sum(a != 0, dtype=dtype)
    if p == 1:
        return jnp.sum(a)
    if p > 0:
        return jnp.sum(a**p) ** (1 / p)
    # p < 0 or -inf: a padding entry must count as absent (|inf|**p = 0), and
    # a zero entry decides the result (0**p = inf, so the norm is 0).
    if live is not None:
        a = jnp.where(live, a, jnp.inf)
    if p == -math.inf:
        result = jnp.min(a, initial=jnp.array(jnp.inf, dtype))
    else:
        result = jnp.sum(a**p) ** (1 / p)
    if implicit_zero is not None:
        result = jnp.where(implicit_zero, jnp.zeros([], dtype), result)
    return result


def _empty_error(owner: str, p: float, path: Any, shape: Any) -> ValueError:
    return ValueError(
        f"jsgd.{owner} cannot compute the {_format_order(p)} norm of the update "
        f"at {_tree.keystr(path)}, which is empty (shape {list(shape)}), because "
        "the operation does not have an identity (torch's linalg.vector_norm "
        "raises a RuntimeError here). Leave empty leaves out (None updates) or "
        "use a norm_type > 0."
    )


def _leaf_norm(owner: str, path: Any, u: Any, p: float) -> tuple[jax.Array, Any]:
    """The norm torch takes of one update leaf, and the leaf torch would scale.

    Returns:
      ``(norm, leaf)``: the norm rounded to torch's dtype for it (the leaf's
      real dtype) but held in the arithmetic dtype, and the leaf to scale: the
      dense array itself, or an ``IndexedSlices`` with its duplicate rows
      summed (:meth:`IndexedSlices.coalesce`), which is the dense gradient's
      rows.
    """
    dtype = _norm_dtype(u.dtype)
    wide = _tree.compute_dtype(dtype)
    if isinstance(u, IndexedSlices):
        if _needs_elements(p) and math.prod(u.dense_shape) == 0:
            raise _empty_error(owner, p, path, u.dense_shape)
        leaf = u.coalesce()
        valid = leaf.indices < leaf.num_rows
        live = implicit_zero = None
        if p < 0:
            live = valid.reshape(valid.shape + (1,) * (leaf.values.ndim - 1))
            implicit_zero = jnp.sum(valid) < leaf.num_rows
        values = leaf.values.astype(_tree.compute_dtype(u.dtype))
        norm = _vector_norm(values, p, live, implicit_zero)
    else:
        if _needs_elements(p) and u.size == 0:
            raise _empty_error(owner, p, path, u.shape)
        leaf = u
        norm = _vector_norm(u.astype(_tree.compute_dtype(u.dtype)), p)
    return _round(norm.astype(wide), dtype), leaf


def _prepared_leaves(updates: Any, p: float, owner: str):
    """The update leaves (checked) with torch's norm of each one that is not None.

    Returns:
      ``(treedef, leaves, norms)``: ``leaves`` has ``None`` where the updates
      do, and each other leaf as torch would scale it (see ``_leaf_norm``);
      ``norms`` lists the norms of the non-None leaves, with their dtypes.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        updates, is_leaf=_tree.is_update_leaf
    )
    leaves: list[Any] = []
    norms: list[tuple[jax.Array, jnp.dtype]] = []
    for path, u in flat:
        if u is None:
            leaves.append(None)
            continue
        u = _tree.as_leaf_array(u)
        _tree.require_inexact(path, u, "update")
        norm, leaf = _leaf_norm(owner, path, u, p)
        leaves.append(leaf)
        norms.append((norm, _norm_dtype(u.dtype)))
    return treedef, leaves, norms


def _total_norm(norms: list[tuple[jax.Array, jnp.dtype]], p: float):
    """The norm of the leaves' norms (arithmetic dtype), and torch's dtype for it."""
    if not norms:  # torch: ``torch.tensor(0.0)``
        return jnp.zeros([], jnp.float32), jnp.dtype(jnp.float32)
    dtype = _promoted([d for _, d in norms])
    wide = _tree.compute_dtype(dtype)
    stacked = jnp.stack([n.astype(wide) for n, _ in norms])
    return _round(_vector_norm(stacked, p), dtype), dtype


def _nonfinite_message(p: float) -> str:
    return (
        f"The total norm of order {p} for gradients from `parameters` is "
        "non-finite, so it cannot be clipped. To disable this error and scale "
        "the gradients by the non-finite norm anyway, set "
        "`error_if_nonfinite=False`"
    )


def _check_finite(total: jax.Array, p: float) -> None:
    """Raises torch's RuntimeError for a non-finite total norm.

    A concrete norm raises here. A traced one (under ``jit``, ``vmap``,
    ``scan``...) cannot: a host callback raises it when the computation
    runs, which fails the computation, and JAX re-raises it as a
    ``jax.errors.JaxRuntimeError`` (a ``RuntimeError``) holding this message
    when the results are read.
    """
    message = _nonfinite_message(p)
    if not isinstance(total, Tracer):
        if not bool(jnp.isfinite(total)):
            raise RuntimeError(message)
        return

    def raise_if(nonfinite: np.ndarray) -> None:
        if np.any(nonfinite):
            raise RuntimeError(message)

    io_callback(raise_if, None, ~jnp.isfinite(total), ordered=False)


def _norm_and_leaves(updates: Any, p: float, error_if_nonfinite: bool, owner: str):
    treedef, leaves, norms = _prepared_leaves(updates, p, owner)
    total, dtype = _total_norm(norms, p)
    if error_if_nonfinite:
        _check_finite(total, p)
    return treedef, leaves, bool(norms), total, dtype


def get_total_norm(
    tensors: optax.Updates,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> jax.Array:
    """The total norm of a gradient tree, as ``torch.nn.utils.get_total_norm``.

    ``total = ||(||g_1||_p, ..., ||g_n||_p)||_p`` over the leaves that are not
    None: the p-norm of each leaf (of its absolute values, for complex
    leaves), then the p-norm of those norms, with torch's roundings (see
    :func:`clip_grad_norm`). What :func:`clip_grad_norm` clips by and keeps
    in its state.

    Args:
      tensors: a pytree of gradients; ``None`` leaves are skipped and an
        :class:`jsgd.IndexedSlices` counts as the dense gradient it stands for
        (its duplicate rows summed).
      norm_type: the order ``p``, a number or a string such as ``'inf'``
        (torch reads ``float(norm_type)``): p > 0, ``inf`` (the largest
        absolute value), 0 (the number of nonzero entries), p < 0 or ``-inf``
        (the smallest absolute value), as torch computes them. Not NaN.
      error_if_nonfinite: raise torch's RuntimeError when the total norm is
        NaN or infinite (under ``jit``: when the computation runs, see
        :func:`clip_grad_norm`).
      foreach: accepted for torch's signature and ignored (XLA fuses the
        per-leaf norms whatever the setting).

    Returns:
      A 0-d array in torch's dtype for it: float32 for float32, complex64 or
      mixed low-precision trees (and for an empty tree), bfloat16 or float16
      for a tree of those only, float64 where a leaf is float64 or complex128.

    Raises:
      RuntimeError: with ``error_if_nonfinite``, for a non-finite total norm.
      ValueError: for a NaN ``norm_type``, or an empty leaf with a
        ``norm_type`` that needs elements (``inf``, p < 0, ``-inf``).
      TypeError: for a bad argument type, a traced ``norm_type``, or an
        integer or bool leaf.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> from jsgd.torch import get_total_norm
      >>> get_total_norm({"a": jnp.array([3.0]), "b": jnp.array([4.0])})
      Array(5., dtype=float32)
      >>> get_total_norm({"a": jnp.array([3.0]), "b": jnp.array([-4.0])}, "inf")
      Array(4., dtype=float32)
    """
    p = _check_args(norm_type, error_if_nonfinite, foreach)
    _, _, _, total, dtype = _norm_and_leaves(
        tensors, p, error_if_nonfinite, "torch.get_total_norm"
    )
    return total.astype(dtype)


# --- the transforms ----------------------------------------------------------------


def _state_dtype(params: Any) -> jnp.dtype:
    """float32, or float64 where a parameter is float64 or complex128."""
    dtypes = [
        _norm_dtype(jnp.result_type(p))
        for p in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.result_type(p), jnp.inexact)
    ]
    if any(d.itemsize >= 8 for d in dtypes):
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def _scaled_leaf(leaf: Any, coef: jax.Array) -> Any:
    if leaf is None:
        return None
    if isinstance(leaf, IndexedSlices):
        return leaf.replace_values(_scaled(leaf.values, coef))
    return _scaled(leaf, coef)


def clip_grad_norm(
    max_norm: jax.typing.ArrayLike,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Scales all leaves together by torch's ``clip_grad_norm_`` coefficient.

    ``torch.nn.utils.clip_grad_norm_`` as an optax transform::

        total = ||(||g_1||_p, ..., ||g_n||_p)||_p     (p = norm_type)
        coef  = min(max_norm * (1 / (total + 1e-6)), 1)
        u_i   = g_i * coef                             (for every leaf)

    over the leaves that are not None (``None`` updates stay ``None``, as
    torch skips parameters without a gradient; a tree with none leaves the
    updates unchanged and the norm 0). Every leaf is multiplied, also when
    ``coef`` is 1, as in torch. Orders: p > 0, ``inf`` (largest absolute
    value), 0 (number of nonzero entries), p < 0 and ``-inf`` (smallest
    absolute value), computed as torch does; complex leaves count by their
    absolute values.

    Dtypes and roundings are torch's: each leaf's norm is accumulated in
    float32 (float64 for float64 leaves) and rounded to the leaf's real dtype;
    the total is computed from them in their promoted dtype (float32 if the
    leaves mix bfloat16, float16 and float32; bfloat16 for a bfloat16-only
    tree) and so is ``coef``, each of torch's operations rounded there; each
    product ``g_i * coef`` is computed in float32 (or wider) and rounded once
    to the leaf's dtype. Updates keep their dtype.

    Non-finite norms, as in torch: a NaN anywhere makes ``coef``, hence every
    update, NaN; an infinite total (an inf entry, or a sum of powers that
    overflows float32) makes ``coef`` 0, so finite entries become 0 and
    infinite ones NaN. With ``error_if_nonfinite=True`` torch raises instead;
    here an eager ``update`` raises torch's RuntimeError before clipping, and
    a traced one (``jit``, ``vmap``, ``scan``, ``grad``) cannot raise while
    tracing, so it calls back to the host, which raises the same error when
    the step runs: the computation fails, and reading its results raises a
    ``jax.errors.JaxRuntimeError`` (a ``RuntimeError``) carrying torch's
    message. That callback costs a device-to-host transfer per step, as torch's
    check costs a host synchronization; it cannot be exported
    (``jax.export``).

    ``IndexedSlices`` leaves count as the dense gradient they stand for: the
    norm is that of :meth:`IndexedSlices.coalesce`'s rows (duplicates summed,
    absent rows zero), and the update is the coalesced ``IndexedSlices``
    scaled, so that its ``to_dense()`` is torch's clipped dense gradient.
    (torch 2.13's own ``clip_grad_norm_`` refuses sparse gradients.) That
    costs a sort per sparse leaf.

    State: :class:`ClipGradNormState`, whose ``total_norm`` is the value
    torch's ``clip_grad_norm_`` returns (also :func:`get_total_norm`).

    Args:
      max_norm: the largest allowed total norm, > 0 (``inf``: never clip); may
        be a traced 0-d array (validated only when concrete).
      norm_type: the order ``p`` (a number, or a string float() reads such as
        ``'inf'``); static, not NaN.
      error_if_nonfinite: raise torch's RuntimeError for a NaN or infinite
        total norm (see above for ``jit``).
      foreach: accepted for torch's signature and ignored: it picks torch's
        kernels, and XLA fuses the per-leaf work whatever the setting.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; ``update(updates, state,
      params=None, **extra_args)`` ignores ``params`` and ``extra_args``.

    Raises:
      ValueError: if a concrete ``max_norm`` is not > 0 (or out of float32's
        range), for a NaN ``norm_type``, and (in ``update``) for an empty leaf
        with an order that needs elements (``inf``, p < 0, ``-inf``).
      TypeError: for a bool, complex, string or non-scalar ``max_norm``, a
        traced ``norm_type``, a non-bool ``error_if_nonfinite`` or
        ``foreach``, and (in ``update``) an integer or bool leaf.
      RuntimeError: in ``update``, with ``error_if_nonfinite``, for a
        non-finite total norm (torch's message).

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> from jsgd.torch import clip_grad_norm
      >>> tx = clip_grad_norm(1.0)
      >>> grads = {"a": jnp.array([3.0]), "b": jnp.array([4.0]), "frozen": None}
      >>> clipped, state = tx.update(grads, tx.init(grads))
      >>> clipped["a"], clipped["b"], clipped["frozen"]  # torch's numbers (the 1e-6)
      (Array([0.5999999], dtype=float32), Array([0.79999983], dtype=float32), None)
      >>> state.total_norm  # what torch's clip_grad_norm_ returns
      Array(5., dtype=float32)
    """
    _validation.check_positive("max_norm", max_norm)
    p = _check_args(norm_type, error_if_nonfinite, foreach)
    owner = "torch.clip_grad_norm"

    def init_fn(params: optax.Params) -> ClipGradNormState:
        return ClipGradNormState(total_norm=jnp.zeros([], _state_dtype(params)))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        _tree.check_state(state, ClipGradNormState, owner)
        treedef, leaves, any_leaf, total, dtype = _norm_and_leaves(
            updates, p, error_if_nonfinite, owner
        )
        new_state = ClipGradNormState(total.astype(state.total_norm.dtype))
        if not any_leaf:  # torch returns before multiplying
            return updates, new_state
        wide = total.dtype
        denominator = _round(total + jnp.asarray(1e-6, wide), dtype)
        reciprocal = _round(1 / denominator, dtype)
        coef = _round(reciprocal * _tree.hyperparameter_as(max_norm, wide), dtype)
        coef = jnp.minimum(coef, jnp.ones([], wide))
        new_updates = treedef.unflatten([_scaled_leaf(u, coef) for u in leaves])
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _clip_slices_by_value(u: IndexedSlices, clip_value: Any) -> IndexedSlices:
    leaf = u.coalesce()
    return leaf.replace_values(_clip_leaf_by_value(leaf.values, clip_value))


def _refuse_complex(updates: Any, owner: str) -> None:
    flat, _ = jax.tree_util.tree_flatten_with_path(
        updates, is_leaf=_tree.is_update_leaf
    )
    for path, u in flat:
        dtype = getattr(u, "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating):
            raise TypeError(
                f"jsgd.{owner}: the update at {_tree.keystr(path)} is {dtype}, "
                "and torch's clip_grad_value_ refuses complex gradients "
                "(NotImplementedError: clamp is not supported for complex "
                "types). jsgd.clip_by_value clips their real and imaginary "
                "parts separately."
            )


def clip_grad_value(
    clip_value: jax.typing.ArrayLike,
    foreach: bool | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Clamps each element to ``[-clip_value, clip_value]`` (``clip_grad_value_``).

    ``u = clamp(g, -c, c)`` elementwise, in the leaf's dtype (``c`` rounded to
    it); NaN stays NaN, ``±inf`` becomes ``±c``; ``None`` updates stay
    ``None``. Complex leaves raise a TypeError, as torch refuses them.
    ``IndexedSlices`` leaves count as the dense gradient they stand for: their
    duplicate rows are summed first (:meth:`IndexedSlices.coalesce`) and the
    sums clamped, so that the update's ``to_dense()`` is torch's result on the
    dense gradient (torch 2.13 itself refuses sparse gradients).
    State: ``optax.EmptyState``.

    Args:
      clip_value: the bound ``c > 0`` (may be a traced 0-d array, validated
        only when concrete).
      foreach: accepted for torch's signature and ignored (see
        :func:`clip_grad_norm`).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; updates keep their dtype.

    Raises:
      ValueError: if a concrete ``clip_value`` is not > 0.
      TypeError: if ``clip_value`` is a bool, complex, string or non-scalar,
        ``foreach`` is not None or a bool, and (in ``update``) for a complex,
        integer or bool leaf.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> from jsgd.torch import clip_grad_value
      >>> tx = clip_grad_value(1.0)
      >>> tx.update(jnp.array([-3.0, 0.5, 2.0]), tx.init(None))[0]
      Array([-1. ,  0.5,  1. ], dtype=float32)
    """
    _validation.check_positive("clip_value", clip_value)
    _check_foreach(foreach)
    owner = "torch.clip_grad_value"

    def clip(updates: optax.Updates, params: optax.Params) -> optax.Updates:
        del params
        _refuse_complex(updates, owner)
        return _tree.map_updates(
            lambda g: _clip_leaf_by_value(g, clip_value),
            updates,
            sparse=lambda u: _clip_slices_by_value(u, clip_value),
        )

    return _tree.stateless_transform(clip, owner)


takes_indexed_slices(clip_grad_norm, name="torch.clip_grad_norm")
takes_indexed_slices(clip_grad_value, name="torch.clip_grad_value")
