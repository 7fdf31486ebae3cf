"""``jsgd.zero1_shardings``: optimizer state split across the data-parallel axis."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def _axes(entry: Any) -> tuple[Any, ...]:
    """The mesh axes one ``PartitionSpec`` entry splits a dimension over."""
    if entry is None:
        return ()
    return tuple(entry) if isinstance(entry, (tuple, list)) else (entry,)


def _split_spec(
    shape: tuple[int, ...], spec: list[Any], mesh: Mesh, axis_name: Hashable
) -> list[Any]:
    """``spec`` with ``axis_name`` added to one dimension that it divides evenly.

    Unsplit dimensions are tried first, in order, then already split ones
    (``"model"`` becomes ``("model", axis_name)``); a leaf with no such
    dimension (a scalar step count, an odd-sized bias) keeps ``spec``.
    """
    if any(axis_name in _axes(entry) for entry in spec):
        return spec
    size = mesh.shape[axis_name]
    for already_split in (False, True):
        for dim, length in enumerate(shape):
            axes = _axes(spec[dim])
            if bool(axes) != already_split:
                continue
            parts = size * math.prod(mesh.shape[a] for a in axes)
            if length >= parts and length % parts == 0:
                return [
                    *spec[:dim],
                    (*axes, axis_name) if axes else axis_name,
                    *spec[dim + 1 :],
                ]
    return spec


def zero1_shardings(tree: Any, mesh: Mesh, axis_name: Hashable = "data") -> Any:
    """Shardings that split each leaf of ``tree`` across the mesh axis ``axis_name``.

    ZeRO stage 1 (Rajbhandari et al. 2020): in data-parallel training every
    device keeps a full copy of the parameters, but the optimizer state (the
    momentum velocity, Adam's moments, an EMA) need not be replicated. Laid
    out with these shardings, each of the ``n`` devices along ``axis_name``
    holds ``1/n`` of every large state leaf and updates only that part; XLA
    turns the gradient all-reduce into a reduce-scatter and all-gathers the
    updated parameters. The arithmetic is unchanged: the parameters are
    those of the unsharded run, to float32 rounding.

    Each leaf keeps the partitioning of its own ``NamedSharding`` (so state
    created by ``optimizer.init(params)`` from model-sharded parameters stays
    model-sharded) and ``axis_name`` is added to its first unsplit dimension
    that the axis size divides, else to its first split one that the combined
    size divides (``P(None, "model")`` becomes ``P("data", "model")``). Leaves
    with no such dimension (scalar step counts, small odd-sized biases) are
    left replicated along ``axis_name``.

    Args:
      tree: a pytree of arrays or ``jax.ShapeDtypeStruct`` (e.g. an optimizer
        state, or ``jax.eval_shape(optimizer.init, params)``).
      mesh: the device mesh; ``axis_name`` must be one of its axes.
      axis_name: the data-parallel mesh axis to split the state over.

    Returns:
      A pytree of ``NamedSharding`` on ``mesh`` with the structure of ``tree``:
      use it with ``jax.device_put(state, ...)`` or as ``jax.jit``'s
      ``out_shardings``. :func:`jsgd.make_train_step` keeps a state so laid
      out through every step.

    Raises:
      KeyError: if ``axis_name`` is not an axis of ``mesh``.
      ValueError: if a leaf's ``NamedSharding`` splits it over an axis that
        ``mesh`` lacks (it was laid out on another mesh); the error names the
        leaf's key path and both meshes' axis names. A leaf on another mesh
        whose partitioning uses only axis names of ``mesh`` keeps it.

    Examples:
      >>> import jax, jax.numpy as jnp, jsgd
      >>> mesh = jax.make_mesh((jax.device_count(),), ("data",))
      >>> opt = jsgd.sgd(0.1, momentum=0.9)
      >>> params = {"w": jnp.zeros((8 * jax.device_count(), 3)), "b": jnp.zeros(3)}
      >>> shardings = jsgd.zero1_shardings(opt.init(params), mesh)
      >>> shardings[-1].velocity["w"].spec, shardings[-1].count.spec
      (P('data', None), P())
      >>> opt_state = jax.device_put(opt.init(params), shardings)
    """
    if axis_name not in mesh.shape:
        raise KeyError(
            f"`axis_name` must be an axis of the mesh {dict(mesh.shape)}. "
            f"Received: axis_name={axis_name!r}"
        )

    def leaf_sharding(path: Any, leaf: Any) -> NamedSharding:
        shape = tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)
        own = getattr(leaf, "sharding", None)
        spec = []
        if isinstance(own, NamedSharding):
            spec = list(own.spec)
            missing = [a for e in spec for a in _axes(e) if a not in mesh.shape]
            if missing:
                raise ValueError(
                    "jsgd.zero1_shardings: the leaf at "
                    f"{jax.tree_util.keystr(path)} is sharded on another mesh: "
                    f"its spec {own.spec} names axes {tuple(missing)}, which "
                    "`mesh` does not have. Received: the leaf's mesh axes "
                    f"{tuple(own.mesh.axis_names)}, `mesh` axes "
                    f"{tuple(mesh.axis_names)}. Lay the tree out on `mesh` (or "
                    "a mesh with its axis names) first."
                )
        spec += [None] * (len(shape) - len(spec))
        return NamedSharding(
            mesh, PartitionSpec(*_split_spec(shape, spec, mesh, axis_name))
        )

    return jax.tree_util.tree_map_with_path(leaf_sharding, tree)
