"""``value_and_row_grad``: an embedding table's gradient as ``IndexedSlices``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jsgd._sparse.indexed_slices import IndexedSlices, padded_indices


def value_and_row_grad(
    fun: Callable[..., Any], *, has_aux: bool = False
) -> Callable[..., tuple[Any, IndexedSlices]]:
    """Differentiates ``fun(table[indices], ...)`` with respect to the rows.

    ``jax.grad`` of a loss that gathers rows of a table returns a dense
    gradient the size of the table (mostly zeros). Written as a function of
    the gathered rows instead, the gradient is ``k`` rows, which this pairs
    with their indices into an :class:`jsgd.IndexedSlices`:

        value, grad = value_and_row_grad(fun)(table, indices, *args)
        # value = fun(table[indices], *args)
        # grad  = IndexedSlices(d value / d rows, indices, table.shape)

    ``grad.to_dense()`` equals ``jax.grad(lambda t: fun(t[indices], *args))``
    (duplicate indices add up). ``indices`` may have any shape (e.g.
    ``[batch, bag]``); they are flattened to ``k = indices.size`` rows. To
    differentiate other parameters too, pass them in ``args`` and use
    ``jax.value_and_grad(fun, argnums=(0, 1))`` on the rows the same way (see
    ``examples/embedding.py``).

    Args:
      fun: ``fun(rows, *args)`` returning a scalar (or ``(scalar, aux)`` with
        ``has_aux``), where ``rows = table[indices]`` has shape
        ``indices.shape + table.shape[1:]``; a padding index (outside
        ``[0, len(table))``) reads a row of zeros.
      has_aux: whether ``fun`` returns ``(value, aux)``.

    Returns:
      A function ``(table, indices, *args) -> (value, grad)``, or
      ``((value, aux), grad)`` with ``has_aux``; it can be jitted. It raises
      a TypeError for non-integer ``indices``.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> table = jnp.arange(8.0).reshape(4, 2)
      >>> loss = lambda rows: jnp.sum(rows**2) / 2
      >>> value, grad = jsgd.value_and_row_grad(loss)(table, jnp.array([3, 1]))
      >>> value, grad.indices, grad.values
      (Array(49., dtype=float32), Array([3, 1], dtype=int32), Array([[6., 7.],
             [2., 3.]], dtype=float32))
    """

    def value_and_grad(table: jax.Array, indices: jax.Array, *args: Any):
        indices = jnp.asarray(indices)
        if not jnp.issubdtype(indices.dtype, jnp.integer):
            raise TypeError(
                "jsgd.value_and_row_grad: `indices` must be integers. "
                f"Received: indices dtype={indices.dtype}"
            )
        n = table.shape[0]
        # Padding indices (outside [0, n)) read zero rows rather than being
        # clamped or wrapped onto a real row.
        rows = table.at[padded_indices(indices, n)].get(mode="fill", fill_value=0)
        value, rows_grad = jax.value_and_grad(fun, has_aux=has_aux)(rows, *args)
        row_shape = table.shape[1:]
        grad = IndexedSlices(
            rows_grad.reshape((-1, *row_shape)),
            indices.reshape(-1),
            table.shape,
        )
        return value, grad

    return value_and_grad
