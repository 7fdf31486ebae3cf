"""``IndexedSlices``: a row-sparse gradient, and summing its duplicate rows."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Sequence
from typing import TypeVar

import jax
import jax.numpy as jnp
import numpy as np

_F = TypeVar("_F", bound=Callable[..., object])

TAKES_INDEXED_SLICES: list[str] = []
"""The public names of the transforms and optimizers that take ``IndexedSlices``."""


def takes_indexed_slices(factory: _F, *, name: str | None = None) -> _F:
    """Declares that ``factory``'s transformations take ``IndexedSlices`` leaves."""
    TAKES_INDEXED_SLICES.append(name or factory.__name__)
    return factory


@dataclasses.dataclass(frozen=True, eq=False)
class IndexedSlices:
    """A row-sparse array: some rows of a ``dense_shape`` array (TF/Keras naming).

    Row ``j`` of ``values`` belongs at row ``indices[j]`` of the dense array;
    rows that no index names are zero, and a row named several times is the
    sum of its values (duplicates add up, as with ``tf.IndexedSlices``). This
    is the gradient of a loss with respect to an embedding table when the
    forward pass gathers ``table[indices]``: see :func:`jsgd.value_and_row_grad`.

    It is a pytree whose children are ``values`` and ``indices`` and whose
    static metadata is ``dense_shape``, so it passes through ``jit``, ``vmap``,
    ``lax.scan`` and donation with fixed shapes: ``k = len(indices)`` rows per
    step, chosen by the caller, never by the data.

    Padding: an index outside ``[0, dense_shape[0])`` (use ``dense_shape[0]``,
    or ``-1``) marks a padding row. Every jsgd operation ignores it: it
    changes no parameter and no optimizer state, and its values count in no
    norm (the values that transforms output at padding rows are unspecified).
    This is how a variable number of rows fits a static ``k``.

    The jsgd transforms and optimizers that take ``IndexedSlices`` leaves
    (mixed with dense leaves in one tree) declare it where they are defined;
    docs/sparse.md lists them. Apply their result with
    :func:`jsgd.apply_updates`. Other transforms (optax's own among them) do
    not understand it: jsgd's raise a TypeError naming the leaf and listing
    the ones that do; call :meth:`to_dense` first to use them.

    Attributes:
      values: ``[k, *dense_shape[1:]]`` rows, floating point.
      indices: ``[k]`` integer row indices into ``dense_shape[0]``.
      dense_shape: the shape of the dense array (static Python ints): a
        tuple or list of at least one int ``>= 0`` (NumPy ints too). Anything
        else (a string, a float or bool dimension, a negative one) raises a
        TypeError or ValueError when the ``IndexedSlices`` is built;
        ``values`` and ``indices`` are checked where they are used.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> g = jsgd.IndexedSlices(
      ...     values=jnp.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]]),
      ...     indices=jnp.array([2, 0, 2]),
      ...     dense_shape=(3, 2))
      >>> g.to_dense()
      Array([[2., 2.],
             [0., 0.],
             [5., 5.]], dtype=float32)
      >>> c = g.coalesce()  # duplicates summed; padding index 3 at the end
      >>> c.indices, c.values
      (Array([0, 2, 3], dtype=int32), Array([[2., 2.],
             [5., 5.],
             [0., 0.]], dtype=float32))
    """

    values: jax.Array
    indices: jax.Array
    dense_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        # Static metadata must be hashable; an int tuple also compares equal
        # across (3, 2), [3, 2] and numpy integers. Only ``dense_shape`` is
        # checked here: ``tree_unflatten`` (``jax.tree.map``, ``vmap``'s and
        # ``scan``'s stacked outputs) builds instances whose children are not
        # ``[k, ...]`` rows, so ``values`` and ``indices`` are checked where
        # they are used (:func:`check_slices`).
        object.__setattr__(self, "dense_shape", _dense_shape(self.dense_shape))

    @property
    def shape(self) -> tuple[int, ...]:
        """The dense shape."""
        return self.dense_shape

    @property
    def dtype(self) -> jnp.dtype:
        """The values' dtype."""
        return self.values.dtype

    @property
    def num_rows(self) -> int:
        """``dense_shape[0]``, the number of rows of the dense array."""
        return self.dense_shape[0]

    def replace_values(self, values: jax.Array) -> IndexedSlices:
        """The same rows with other values (same leading length ``k``)."""
        return IndexedSlices(values, self.indices, self.dense_shape)

    def to_dense(self) -> jax.Array:
        """The dense array: zeros with the rows scatter-added (padding dropped)."""
        indices = row_indices(self)  # checks self
        dense = jnp.zeros(self.dense_shape, self.values.dtype)
        return dense.at[indices].add(self.values, mode="drop")

    def coalesce(self) -> IndexedSlices:
        """Sums duplicate rows; keeps ``k`` rows (static shape).

        Returns:
          ``IndexedSlices`` whose indices are the distinct valid indices in
          ascending order, followed by padding rows (index ``dense_shape[0]``,
          value 0) up to ``k``. The sums are accumulated in at least float32.
        """
        return coalesce(self)


jax.tree_util.register_dataclass(
    IndexedSlices, data_fields=["values", "indices"], meta_fields=["dense_shape"]
)


def _dense_shape(shape: object) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, or a TypeError/ValueError naming it.

    A sequence (tuple, list, ``range``) of Python or NumPy ints (anything with
    ``__index__`` but a bool), each ``>= 0``, at least one of them. A string, a
    number or a float dimension is refused rather than coerced (``"32"``
    would be ``(3, 2)``, ``3.7`` would be ``3``); so is a negative row count,
    which would make every index padding.
    """
    message = (
        "`dense_shape` must be a sequence of non-negative ints with at least "
        f"one dimension. Received: dense_shape={shape!r}"
    )
    if not isinstance(shape, Sequence) or isinstance(shape, (str, bytes)):
        raise TypeError(message)
    dims = []
    for d in shape:
        if isinstance(d, (bool, np.bool_)):
            raise TypeError(message)
        try:
            dims.append(operator.index(d))
        except TypeError:
            raise TypeError(message) from None
    if not dims or min(dims) < 0:
        raise ValueError(message)
    return tuple(dims)


def check_slices(s: IndexedSlices) -> None:
    """Raises a clear error for inconsistent shapes or non-integer indices."""
    values, indices = s.values, s.indices
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(
            "jsgd.IndexedSlices: `indices` must be integers. Received: "
            f"indices dtype={indices.dtype} (an optax transform that does not "
            "know IndexedSlices may have scaled them; call .to_dense() before it)"
        )
    if (
        indices.ndim != 1
        or values.ndim != len(s.dense_shape)
        or values.shape[0] != indices.shape[0]
        or tuple(values.shape[1:]) != s.dense_shape[1:]
    ):
        raise ValueError(
            "jsgd.IndexedSlices: expected values of shape [k, *dense_shape[1:]] "
            "and indices of shape [k]. Received: values.shape="
            f"{tuple(values.shape)}, indices.shape={tuple(indices.shape)}, "
            f"dense_shape={s.dense_shape}"
        )


def row_indices(s: IndexedSlices) -> jax.Array:
    """The indices with every padding index (outside ``[0, n)``) set to ``n``.

    ``n`` is out of bounds, so gathers with ``mode="fill"`` and scatters with
    ``mode="drop"`` skip it; a raw ``-1`` would wrap to the last row instead.

    Every use of an ``IndexedSlices``'s rows goes through here (coalescing,
    scatters, the norms' and elementwise transforms' :func:`live_values`), so
    this is where :func:`check_slices` runs: float indices (an optax
    transform in front maps them as values) get jsgd's TypeError, not XLA's.
    """
    check_slices(s)
    return padded_indices(s.indices, s.num_rows)


def padded_indices(indices: jax.Array, n: int) -> jax.Array:
    """:func:`row_indices` of raw ``indices`` into ``n`` rows.

    The result's dtype holds ``n``: narrow indices (``uint16`` into a table of
    70,000 rows, say) are widened first, because comparing them with ``n`` or
    storing ``n`` in their own dtype would wrap onto a real row.
    """
    if jnp.iinfo(indices.dtype).max < n:
        wide = jnp.int32 if n <= jnp.iinfo(jnp.int32).max else jnp.int64
        indices = indices.astype(wide)
    return jnp.where((indices >= 0) & (indices < n), indices, n).astype(indices.dtype)


def live_values(s: IndexedSlices) -> jax.Array:
    """The values with padding rows zeroed (so that norms skip them)."""
    valid = row_indices(s) < s.num_rows
    mask = valid.reshape(valid.shape + (1,) * (s.values.ndim - 1))
    return jnp.where(mask, s.values, jnp.zeros((), s.values.dtype))


def _segments(sorted_indices: jax.Array) -> jax.Array:
    """The id of each sorted position's group of equal indices (0, 1, ...)."""
    # Written to hold for k = 0 and k = 1 as well.
    k = sorted_indices.shape[0]
    starts = jnp.ones([k], bool).at[1:].set(sorted_indices[1:] != sorted_indices[:-1])
    return jnp.cumsum(starts, dtype=jnp.int32) - 1


def _segments_by_search(indices: jax.Array):
    """Sorted indices, their group ids, and each entry's group id.

    For the CPU: a sort of the keys alone, then a binary search for each
    entry, is about twice as fast there as a key-value sort.
    """
    sorted_indices = jnp.sort(indices)
    segments = _segments(sorted_indices)
    return sorted_indices, segments, segments[jnp.searchsorted(sorted_indices, indices)]


def _segments_by_pair_sort(indices: jax.Array):
    """As :func:`_segments_by_search`, with one key-value sort.

    For accelerators, where the binary search's while loop would cost a
    device-to-host round trip per iteration.
    """
    positions = jnp.arange(indices.shape[0], dtype=jnp.int32)
    sorted_indices, order = jax.lax.sort((indices, positions), num_keys=1)
    segments = _segments(sorted_indices)
    segment_of_entry = (
        jnp.zeros_like(segments).at[order].set(segments, unique_indices=True)
    )
    return sorted_indices, segments, segment_of_entry


def group_duplicates(s: IndexedSlices) -> tuple[jax.Array, jax.Array]:
    """Where each row of ``s`` goes once its duplicates are summed.

    Returns:
      ``(unique, slot)``: the distinct valid indices in ascending order, padded
      to ``k`` with ``dense_shape[0]``; and for each of the ``k`` entries its
      position in ``unique`` (padding entries share the padding slots).
    """
    indices = row_indices(s)  # checks s
    k, n = indices.shape[0], s.num_rows
    # Sorting groups equal indices (padding, = n, goes last); each group is
    # one row of the result. All shapes stay [k].
    sorted_indices, segments, slot = jax.lax.platform_dependent(
        indices, cpu=_segments_by_search, default=_segments_by_pair_sort
    )
    unique = (
        jnp.full([k], n, indices.dtype)
        .at[segments]
        .min(sorted_indices, indices_are_sorted=True, mode="promise_in_bounds")
    )
    return unique, slot


def coalesce(s: IndexedSlices, *, keep_wide: bool = False) -> IndexedSlices:
    """Sums duplicate rows of ``s``: see :meth:`IndexedSlices.coalesce`.

    With ``keep_wide`` the sums of low-precision rows stay in float32, for a
    row step that rounds once, when it stores its result.
    """
    unique, slot = group_duplicates(s)  # checks s
    k, n = s.indices.shape[0], s.num_rows
    # Sum low-precision rows in float32 (one rounding, when stored).
    wide = s.values.dtype if s.values.dtype.itemsize >= 4 else jnp.float32
    sums = (
        jnp.zeros(s.values.shape, wide)
        .at[slot]
        .add(s.values.astype(wide), mode="promise_in_bounds")
    )
    valid = unique < n
    sums = jnp.where(valid.reshape((k,) + (1,) * (sums.ndim - 1)), sums, 0)
    if not keep_wide:
        sums = sums.astype(s.values.dtype)
    return IndexedSlices(sums, unique, s.dense_shape)
