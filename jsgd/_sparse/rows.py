"""Row-wise steps for ``IndexedSlices`` updates: touch only the rows named."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jsgd._sparse.indexed_slices import IndexedSlices, coalesce, row_indices


def gather_rows(table: jax.Array, indices: jax.Array) -> jax.Array:
    """``table[indices]`` with zero rows for padding indices (``>= len(table)``).

    ``indices`` must be coalesced (ascending, padding last).
    """
    n = table.shape[0]
    if n == 0:  # every index is padding
        return jnp.zeros(indices.shape + table.shape[1:], table.dtype)
    # A clamped in-bounds gather, masked after, is faster on CPU than a
    # bounds-checked one ("fill"); padding reads row n - 1 and is zeroed.
    rows = table.at[jnp.minimum(indices, n - 1)].get(
        mode="promise_in_bounds", indices_are_sorted=True
    )
    padding = (indices >= n).reshape((-1,) + (1,) * (rows.ndim - 1))
    return jnp.where(padding, jnp.zeros((), rows.dtype), rows)


def scatter_rows(table: jax.Array, indices: jax.Array, rows: jax.Array) -> jax.Array:
    """``table`` with ``table[indices] = rows``; padding indices are dropped.

    ``indices`` must be coalesced (sorted, distinct but for padding).
    """
    return table.at[indices].set(
        rows.astype(table.dtype), mode="drop", indices_are_sorted=True
    )


def add_rows(table: jax.Array, update: IndexedSlices) -> jax.Array:
    """``table[indices] += values``: duplicates add up, padding is dropped.

    A float32 (or wider) table takes the values one by one, the legacy
    scatter-add. A narrower table gets each row's float32 sum, added in
    float32 and rounded once, as the dense ``(w + u).astype(w.dtype)``: added
    one by one in bfloat16, a hundred duplicates of 0.003 would move a row of
    ones by 0.39 instead of 0.3.
    """
    if table.dtype.itemsize >= 4 or not jnp.issubdtype(table.dtype, jnp.floating):
        values = update.values.astype(table.dtype)
        return table.at[row_indices(update)].add(values, mode="drop")
    rows = coalesce(update, keep_wide=True)
    current = gather_rows(table, rows.indices).astype(jnp.float32)
    return scatter_rows(table, rows.indices, current + rows.values.astype(jnp.float32))


def row_step(
    update: IndexedSlices,
    state: jax.Array,
    fn: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]],
) -> tuple[IndexedSlices, jax.Array]:
    """The legacy tf.keras sparse rule: sum duplicates, then step touched rows.

    ``fn(rows_of_update, rows_of_state) -> (new_update_rows, new_state_rows)``
    is the dense per-leaf rule applied to the ``k`` touched rows; the other
    rows of ``state`` keep their values. Low-precision duplicates are summed
    in float32 and reach ``fn`` so, which rounds once, when it stores. Returns
    the coalesced update rows (in the update's dtype) and the new state.
    """

    def one_state(g: jax.Array, s: jax.Array) -> tuple[jax.Array, tuple[jax.Array]]:
        u, t = fn(g, s)
        return u, (t,)

    new_update, (new_state,) = rows_step(update, (state,), one_state)
    return new_update, new_state


def rows_step(
    update: IndexedSlices,
    states: tuple[jax.Array, ...],
    fn: Callable[..., tuple[jax.Array, tuple[jax.Array, ...]]],
) -> tuple[IndexedSlices, tuple[jax.Array, ...]]:
    """:func:`row_step` for a leaf with several state arrays (Adam's moments).

    ``fn(rows_of_update, *rows_of_states) -> (new_update_rows,
    new_state_rows)``, the latter a tuple in the order of ``states``.
    """
    rows = coalesce(update, keep_wide=True)
    new_update, new_states = fn(
        rows.values, *(gather_rows(s, rows.indices) for s in states)
    )
    return (
        rows.replace_values(new_update.astype(update.dtype)),
        tuple(
            scatter_rows(s, rows.indices, n)
            for s, n in zip(states, new_states, strict=True)
        ),
    )


def with_param_rows(
    update: IndexedSlices,
    params: jax.Array,
    fn: Callable[[jax.Array, jax.Array], jax.Array],
) -> IndexedSlices:
    """``fn(rows_of_update, rows_of_params)`` on the coalesced touched rows.

    As in :func:`row_step`, low-precision sums reach ``fn`` in float32.
    """
    rows = coalesce(update, keep_wide=True)
    new_update = fn(rows.values, gather_rows(params, rows.indices))
    return rows.replace_values(new_update.astype(update.dtype))
