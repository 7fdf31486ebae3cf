"""Small pytree and dtype helpers shared by the transforms."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jsgd._sparse.indexed_slices import (
    TAKES_INDEXED_SLICES,
    IndexedSlices,
    live_values,
)

try:  # One message for "this transform needs params", shared with optax.
    from optax._src.base import NO_PARAMS_MSG
except ImportError:  # pragma: no cover - optax moved it
    NO_PARAMS_MSG = (
        "You are using a transformation that requires the current value of "
        "parameters, but you are not passing `params` when calling `update`."
    )


def is_update_leaf(x: Any) -> bool:
    """The leaves of an update tree: arrays, ``None`` and ``IndexedSlices``."""
    return x is None or isinstance(x, IndexedSlices)


def densify(updates: Any) -> Any:
    """``updates`` with every :class:`IndexedSlices` leaf made a dense array."""
    return jax.tree.map(
        lambda u: u.to_dense() if isinstance(u, IndexedSlices) else u,
        updates,
        is_leaf=is_update_leaf,
    )


def update_leaves(updates: Any) -> list[Any]:
    """The update leaves, an ``IndexedSlices`` counting as one (``None`` skipped)."""
    leaves = jax.tree.leaves(updates, is_leaf=is_update_leaf)
    return [as_leaf_array(leaf) for leaf in leaves if leaf is not None]


def as_leaf_array(u: Any) -> Any:
    """An update leaf as an array: Python and NumPy scalars become arrays.

    optax accepts a Python float as a gradient leaf; jsgd's leaf functions
    read ``.dtype`` and ``.shape``, so numbers become 0-d arrays first.
    """
    if u is None or isinstance(u, IndexedSlices) or hasattr(u, "dtype"):
        return u
    return jnp.asarray(u)


def _describe(x: Any) -> str:
    if x is None:
        return "None"
    if isinstance(x, IndexedSlices):
        return f"IndexedSlices {x.dtype}{list(x.dense_shape)}"
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"an array {x.dtype}{list(x.shape)}"
    return type(x).__name__


def _shape_of(x: Any) -> tuple[int, ...] | None:
    """The dense shape an update or state leaf stands for, if it has one."""
    if isinstance(x, IndexedSlices):
        return tuple(x.dense_shape)
    if isinstance(x, (int, float, complex)):
        return ()
    shape = getattr(x, "shape", None)
    return None if shape is None else tuple(shape)


def _node_at(tree: Any, path: tuple[Any, ...]) -> Any:
    """The subtree at a key path (dict keys, sequence indices, attributes)."""
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            tree = tree[key.key]
        elif isinstance(key, jax.tree_util.SequenceKey):
            tree = tree[key.idx]
        elif isinstance(key, jax.tree_util.GetAttrKey):
            tree = getattr(tree, key.name)
        else:  # a custom node's flattened index: no way down by key
            raise LookupError(key)
    return tree


def _first_container_mismatch(updates: Any, other: Any, paths: list[Any]) -> str:
    """Where two trees with the same key paths differ in a container's type."""
    for path in [(), *paths]:
        for depth in range(len(path) + 1):
            prefix = tuple(path[:depth])
            try:
                ours, theirs = _node_at(updates, prefix), _node_at(other, prefix)
            except (LookupError, TypeError, AttributeError):
                break
            if type(ours) is not type(theirs):
                return (
                    f"at {keystr(prefix)} the updates have a "
                    f"{type(ours).__name__} and the other a {type(theirs).__name__}"
                )
    ours, theirs = jax.tree.structure(updates), jax.tree.structure(other)
    return f"their containers differ ({str(ours)[:200]} vs {str(theirs)[:200]})"


def check_matching(updates: Any, other: Any, what: str) -> None:
    """Raises a ValueError naming the first key path where the trees differ.

    ``other`` may hold anything where ``updates`` holds ``None``. Where
    ``updates`` holds an array or :class:`IndexedSlices`, ``other`` must hold
    something other than ``None``, and an array there must have the update's
    (dense) shape: broadcasting a ``[3, 1]`` gradient against a ``[3]``
    velocity would silently turn both into ``[3, 3]``.
    """
    treedef = jax.tree.structure(updates, is_leaf=is_update_leaf)
    try:
        theirs_up_to = treedef.flatten_up_to(other)
    except (ValueError, TypeError):
        pass
    else:
        paths_and_ours = jax.tree_util.tree_flatten_with_path(
            updates, is_leaf=is_update_leaf
        )[0]
        for (path, ours), theirs in zip(paths_and_ours, theirs_up_to, strict=True):
            if ours is None:
                continue
            if theirs is None:
                raise ValueError(
                    f"jsgd: the {what} has None at {keystr(path)}, where the updates "
                    f"have {_describe(ours)}: a state made for other parameters "
                    "(init(params) with None there), or edited by hand."
                )
            our_shape, their_shape = _shape_of(ours), _shape_of(theirs)
            if their_shape is not None and our_shape != their_shape:
                raise ValueError(
                    f"jsgd: the update at {keystr(path)} has shape "
                    f"{list(our_shape or ())} but the {what} has "
                    f"{_describe(theirs)} there. Gradients, parameters and "
                    "optimizer state must have the same shapes (jsgd does not "
                    "broadcast them)."
                )
        return
    ours_by_path = dict(
        jax.tree_util.tree_flatten_with_path(updates, is_leaf=is_update_leaf)[0]
    )
    theirs_by_path = dict(
        jax.tree_util.tree_flatten_with_path(other, is_leaf=is_update_leaf)[0]
    )
    path = next((p for p in ours_by_path if p not in theirs_by_path), None)
    if path is not None:
        where = (
            f"the updates have {_describe(ours_by_path[path])} at {keystr(path)}, "
            "and the other has nothing there"
        )
    else:
        path = next((p for p in theirs_by_path if p not in ours_by_path), None)
        if path is not None:
            where = (
                f"the {what} has {_describe(theirs_by_path[path])} at "
                f"{keystr(path)}, and the other has nothing there"
            )
        else:  # the same key paths in other containers (a tuple for a list)
            where = _first_container_mismatch(updates, other, list(ours_by_path))
    raise ValueError(
        f"jsgd: the updates and the {what} are not the same tree: {where}. "
        "Gradients, parameters and optimizer state (from init(params)) must share "
        "one structure."
    )


def keystr(path: Any) -> str:
    """A key path as ``['layer']['w']``; the empty path is the root."""
    return jax.tree_util.keystr(path) or "the root"


def require_inexact(path: Any, leaf: Any, what: str) -> None:
    """Raises a TypeError for an integer or bool leaf, naming its key path.

    Optimizer arithmetic on such a leaf would be silently truncated.
    """
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        dtype = jnp.result_type(leaf)
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"jsgd: {what} leaf {keystr(path)} has dtype {dtype}; optimizers need "
            "floating or complex leaves. Leave integer and bool leaves out of the "
            "optimized tree (or give them None updates / optax.masked)."
        )


def _not_sparse_aware(path: Any) -> TypeError:
    return TypeError(
        f"jsgd: the update at {keystr(path)} is an IndexedSlices, which this "
        f"transform does not take. jsgd's {', '.join(TAKES_INDEXED_SLICES)} "
        "do; for others, pass IndexedSlices.to_dense()."
    )


def path_string(path: Sequence[Any]) -> str:
    """A key path as torch-style names joined with ``"/"``: ``"encoder/0/bias"``.

    A last ``.value`` attribute (a ``flax.nnx`` Variable's) is dropped, so that
    a selector sees ``"fc/bias"`` under ``nnx.Optimizer`` too.
    """
    path = list(path)
    if path and getattr(path[-1], "name", None) == "value":  # nnx's GetAttrKey
        path = path[:-1]
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key))
    return "/".join(parts)


def require_dense(updates: Any) -> None:
    """Raises the TypeError of :func:`map_state` for an ``IndexedSlices`` leaf."""
    for path, u in jax.tree_util.tree_flatten_with_path(
        updates, is_leaf=is_update_leaf
    )[0]:
        if isinstance(u, IndexedSlices):
            raise _not_sparse_aware(path)


def map_updates(
    fn: Callable[..., Any],
    updates: Any,
    *rest: Any,
    what: str = "optimizer state",
    sparse: Callable[..., Any] | None = None,
) -> Any:
    """``jax.tree.map`` over ``updates`` that leaves ``None`` update leaves alone.

    A ``None`` update (a frozen or unused parameter) stays ``None`` whatever the
    other trees hold at that position. Structure mismatches and integer
    updates raise errors naming the key path.

    An :class:`IndexedSlices` update goes to ``sparse(u, *r)`` when given.
    Otherwise, with no other trees, ``fn`` maps its values (padding rows
    zeroed), which is right for elementwise and per-leaf steps; with other
    trees it raises a TypeError naming the leaf.
    """
    for other in rest:
        check_matching(updates, other, what)

    def leaf(path, u, *r):
        if u is None:
            return None
        u = as_leaf_array(u)
        require_inexact(path, u, "update")
        if isinstance(u, IndexedSlices):
            if sparse is not None:
                return sparse(u, *r)
            if r:
                raise _not_sparse_aware(path)
            return u.replace_values(fn(live_values(u)))
        return fn(u, *r)

    return jax.tree_util.tree_map_with_path(
        leaf, updates, *rest, is_leaf=is_update_leaf
    )


def map_state(fn: Callable[..., Any], updates: Any, state: Any) -> Any:
    """Maps ``fn(u, s)`` over a per-parameter state tree (dense updates only).

    Where the update is ``None`` (a frozen parameter) the state leaf is kept;
    an :class:`IndexedSlices` update raises a TypeError naming the leaf.
    """
    check_matching(updates, state, "optimizer state")

    def leaf(path, u, s):
        if u is None:
            return s
        if isinstance(u, IndexedSlices):
            raise _not_sparse_aware(path)
        return fn(as_leaf_array(u), s)

    return jax.tree_util.tree_map_with_path(
        leaf, updates, state, is_leaf=is_update_leaf
    )


def map_updates_and_state(
    fn: Callable[[Any, Any], tuple[Any, Any]], updates: Any, state: Any
) -> tuple[Any, Any]:
    """Maps ``fn(u, s) -> (new_u, new_s)`` over updates and a per-parameter state.

    ``fn`` sees dense arrays and :class:`IndexedSlices` alike. ``None``
    updates stay ``None`` and keep their state leaf.
    """

    def one_state(u: Any, s: Any) -> tuple[Any, tuple[Any]]:
        new_u, new_s = fn(u, s)
        return new_u, (new_s,)

    new_updates, (new_state,) = map_updates_and_states(one_state, updates, (state,))
    return new_updates, new_state


def map_updates_and_states(
    fn: Callable[..., tuple[Any, tuple[Any, ...]]],
    updates: Any,
    states: tuple[Any, ...],
) -> tuple[Any, tuple[Any, ...]]:
    """:func:`map_updates_and_state` with several per-parameter state trees.

    ``fn(u, *s) -> (new_u, (new_s, ...))``, the new states in the order of
    ``states``; returns the new updates and the tuple of new state trees.
    """
    for state in states:
        check_matching(updates, state, "optimizer state")
    treedef = jax.tree.structure(updates, is_leaf=is_update_leaf)
    for path, u in jax.tree_util.tree_flatten_with_path(
        updates, is_leaf=is_update_leaf
    )[0]:
        if u is not None:
            require_inexact(path, u, "update")
    columns = [treedef.flatten_up_to(state) for state in states]
    results = [
        (None, leaves) if u is None else fn(as_leaf_array(u), *leaves)
        for u, *leaves in zip(treedef.flatten_up_to(updates), *columns, strict=True)
    ]
    new_updates = treedef.unflatten([r[0] for r in results])
    new_states = tuple(
        treedef.unflatten([r[1][i] for r in results]) for i in range(len(states))
    )
    return new_updates, new_states


def state_like(params: Any, dtype: Any = None, fill: Any = 0) -> Any:
    """Per-parameter state filled with ``fill``: in ``dtype``, or each leaf's.

    Raises:
      TypeError: for an integer or bool parameter, or a real ``dtype`` for a
        complex parameter, naming its key path.
    """

    def check(path: Any, p: Any) -> None:
        require_inexact(path, p, "parameter")
        param_dtype = jnp.result_type(p)
        real_state = dtype is not None and not jnp.issubdtype(
            dtype, jnp.complexfloating
        )
        if real_state and jnp.issubdtype(param_dtype, jnp.complexfloating):
            raise TypeError(
                f"`accumulator_dtype` {jnp.dtype(dtype).name} is real, but the "
                f"parameter at {keystr(path)} is {param_dtype}: its state would "
                "drop the imaginary part. Pass a complex accumulator_dtype "
                "(e.g. complex64) or None."
            )

    jax.tree_util.tree_map_with_path(check, params)
    return optax.tree.full_like(params, fill, dtype=dtype)


def stateless_transform(
    apply: Callable[[Any, Any], Any], owner: str
) -> optax.GradientTransformationExtraArgs:
    """A transform with ``optax.EmptyState``: ``updates = apply(updates, params)``."""

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(state, optax.EmptyState, owner)
        return apply(updates, params), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def check_state(state: Any, expected: type | tuple[type, ...], owner: str) -> None:
    """Raises a TypeError unless ``state`` is the kind ``owner``'s init makes."""
    if not isinstance(state, expected):
        names = (
            " or ".join(t.__name__ for t in expected)
            if isinstance(expected, tuple)
            else expected.__name__
        )
        raise TypeError(
            f"jsgd.{owner} got a state of type {type(state).__name__}, expected "
            f"{names}. Pass the state made by this optimizer's init: a state of "
            "another optimizer, or one restored without its structure (lists in "
            "place of tuples), does not fit."
        )


def compute_dtype(*dtypes: Any) -> jnp.dtype:
    """The dtype to do optimizer arithmetic in: at least float32.

    Low-precision inputs (bfloat16, float16) are upcast so that each result is
    rounded once, when it is stored; float64 and complex inputs keep their
    precision.
    """
    # Spelled out rather than jnp.promote_types, which refuses implicit
    # promotions (bfloat16 with float16) under jax_numpy_dtype_promotion="strict".
    kinds = [jnp.dtype(d) for d in dtypes]
    wide = any(d.itemsize >= (16 if d.kind == "c" else 8) for d in kinds)
    if any(d.kind == "c" for d in kinds):
        return jnp.dtype(jnp.complex128 if wide else jnp.complex64)
    return jnp.dtype(jnp.float64 if wide else jnp.float32)


def hyperparameter_as(value: Any, dtype: Any) -> jax.Array:
    """Casts a scalar hyperparameter (number, array or tracer) to ``dtype``."""
    return jnp.asarray(value).astype(dtype)


def scalar_cache(fn: Callable[[jnp.dtype], jax.Array]) -> Callable[[Any], jax.Array]:
    """``fn(dtype)`` computed once per dtype.

    Make one per ``update`` call: a tree of many leaves then traces each
    hyperparameter's cast once, not once per leaf (tracing time is what a
    3,000-leaf model's compile is mostly made of).
    """
    return functools.cache(lambda dtype: fn(jnp.dtype(dtype)))


def cast(x: jax.Array, dtype: Any) -> jax.Array:
    """``x.astype(dtype)``, or ``x`` itself when it already has that dtype."""
    return x if x.dtype == dtype else x.astype(dtype)


def squared_norm(x: jax.Array | IndexedSlices) -> jax.Array:
    """Sum of ``|x|**2``, accumulated in at least float32 (real result).

    For :class:`IndexedSlices` that is the values' (padding rows skipped), as
    ``tf.norm`` of an ``IndexedSlices``: duplicate rows count separately.
    """
    if isinstance(x, IndexedSlices):
        x = live_values(x)
    x = x.astype(compute_dtype(x.dtype))
    if jnp.iscomplexobj(x):
        return jnp.sum(jnp.real(x) ** 2 + jnp.imag(x) ** 2)
    return jnp.sum(x * x)


def all_finite(updates: Any) -> jax.Array:
    """True when no update leaf holds an inf or a NaN (padding rows aside).

    The check of loss scalers (``jsgd.LossScaleOptimizer``,
    ``jsgd.torch.GradScaler``): ``None`` and integer leaves are skipped, an
    ``IndexedSlices`` counts by its live values.
    """
    finite = jnp.ones([], bool)
    for leaf in update_leaves(updates):
        values = live_values(leaf) if isinstance(leaf, IndexedSlices) else leaf
        if jnp.issubdtype(values.dtype, jnp.inexact):
            finite = finite & jnp.all(jnp.isfinite(values))
    return finite


def zeroed_where(skip: jax.Array, updates: Any) -> Any:
    """``updates`` with every value 0 where ``skip`` (``None`` stays ``None``)."""

    def leaf(u: Any) -> Any:
        if u is None:
            return None
        u = as_leaf_array(u)
        if isinstance(u, IndexedSlices):
            return u.replace_values(
                jnp.where(skip, jnp.zeros((), u.values.dtype), u.values)
            )
        return jnp.where(skip, jnp.zeros((), u.dtype), u)

    return jax.tree.map(leaf, updates, is_leaf=is_update_leaf)


def zero_count() -> jax.Array:
    """A fresh int32 step counter."""
    return jnp.zeros([], jnp.int32)


def increment(count: jax.Array, period: int = 1) -> jax.Array:
    """Adds one to an int32 counter without ever wrapping.

    With ``period = 1`` the counter saturates at the int32 maximum. A counter
    whose phase ``count % period`` matters (every ``period``-th step does
    something) steps back by one period instead of passing the largest
    multiple of ``period`` in range, so that its phase keeps cycling forever.
    """
    top = jnp.iinfo(jnp.int32).max
    last = top // period * period
    return jnp.where(count < last, count + 1, count - (period - 1)).astype(jnp.int32)


def require_params(params: Any) -> None:
    """Raises optax's error for transforms that need ``params``."""
    if params is None:
        raise ValueError(NO_PARAMS_MSG)
