"""``pack``: a tree of parameters kept as one flat buffer per dtype.

JAX pays a fixed cost for every array passed to and returned from a jitted
step (about 5 us on the 2-core machine: docs/benchmarks.md), so a model of
3,000 small leaves spends most of an SGD step outside the arithmetic, fused
or not. A :class:`Packed` tree is a pytree whose leaves are its buffers: an
optimizer initialized on it keeps its state packed too, and its step moves a
few large arrays, the shape the fused kernel of :func:`jsgd.apply_gradients`
is fastest on. The model reads its leaves with :meth:`Packed.unpack` inside
the jitted step, where they are slices of the buffers.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsgd._common import tree as _tree


@dataclasses.dataclass(frozen=True)
class _Slot:
    buffer: int  # which buffer (dtype) holds the leaf
    offset: int
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PackedLayout:
    """Where each leaf of a packed tree lies: static, hashable (pytree aux data).

    Attributes:
      treedef: the original tree's structure.
      dtypes: the buffers' dtypes, in order of first appearance.
      slots: per leaf (in ``treedef`` order) its buffer, offset and shape.
    """

    treedef: Any
    dtypes: tuple[np.dtype, ...]
    slots: tuple[_Slot, ...]

    def sizes(self) -> tuple[int, ...]:
        """The buffers' lengths."""
        sizes = [0] * len(self.dtypes)
        for slot in self.slots:
            sizes[slot.buffer] = max(
                sizes[slot.buffer], slot.offset + math.prod(slot.shape)
            )
        return tuple(sizes)


@jax.tree_util.register_pytree_node_class
class Packed:
    """A tree's leaves as one flat buffer per dtype (see :func:`jsgd.pack`).

    Its pytree leaves are the buffers, so ``jit``, donation, ``jax.grad``
    (the gradient of a function of a ``Packed`` is a ``Packed``), optax's
    ``tree`` utilities and every elementwise optimizer work on it as on any
    tree of arrays: the optimizer's state is packed the same way.

    Attributes:
      buffers: the flat buffers, one per dtype.
      layout: the :class:`PackedLayout` (static).

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> flat = jsgd.pack({"a": jnp.arange(3.0), "n": jnp.arange(2)})
      >>> flat.buffers
      (Array([0., 1., 2.], dtype=float32), Array([0, 1], dtype=int32))
      >>> flat.unpack()["n"]
      Array([0, 1], dtype=int32)
    """

    def __init__(self, buffers: tuple[Any, ...], layout: PackedLayout) -> None:
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten(self) -> tuple[tuple[Any, ...], PackedLayout]:
        """The buffers are the children; the layout is static."""
        return self.buffers, self.layout

    @classmethod
    def tree_unflatten(cls, layout: PackedLayout, buffers: Any) -> Packed:
        """Rebuilds a ``Packed`` from its layout and buffers."""
        return cls(tuple(buffers), layout)

    def unpack(self) -> Any:
        """The original tree: each leaf a reshaped slice of its buffer."""
        leaves = []
        for slot in self.layout.slots:
            buffer = self.buffers[slot.buffer]
            if buffer is None or not hasattr(buffer, "shape"):
                leaves.append(buffer)  # None (or an optax mask node) stays itself
                continue
            size = math.prod(slot.shape)
            flat = jax.lax.slice(buffer, (slot.offset,), (slot.offset + size,))
            leaves.append(flat.reshape(slot.shape))
        return self.layout.treedef.unflatten(leaves)

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{np.dtype(d).name}[{n}]"
            for d, n in zip(self.layout.dtypes, self.layout.sizes(), strict=True)
        )
        return f"Packed({len(self.layout.slots)} leaves in {parts})"


def pack(tree: Any) -> Packed:
    """Packs a tree of arrays into one flat buffer per dtype.

    Leaves keep their dtypes (one buffer for each, in order of first
    appearance) and their values exactly; ``pack(t).unpack()`` equals ``t``.
    Use it for a model of many small leaves: keep the parameters packed
    across steps, initialize the optimizer on the packed tree, and unpack in
    the loss. An optimizer that treats each leaf on its own (per-leaf norms,
    weight-decay masks by path, factored second moments) would see one leaf
    per dtype: pack only for elementwise optimizers and global-norm
    clipping, such as the SGD configurations :func:`jsgd.apply_gradients`
    fuses. A packed tree lives on one device (packing gathers the leaves).

    Args:
      tree: a pytree of arrays (numbers are made 0-d arrays).

    Returns:
      A :class:`jsgd.Packed`.

    Raises:
      TypeError: for a leaf that is not an array or a number, named by its
        key path.

    Examples:
      >>> import jax, jax.numpy as jnp, jsgd
      >>> params = {"b": jnp.zeros(2), "w": jnp.ones((2, 3))}
      >>> flat = jsgd.pack(params)
      >>> flat
      Packed(2 leaves in float32[8])
      >>> opt = jsgd.sgd(0.1, momentum=0.9, lr_in_velocity=False)
      >>> state = opt.init(flat)  # the velocity is packed too
      >>> loss = lambda p: jnp.sum(p.unpack()["w"] ** 2)
      >>> flat, state = jsgd.apply_gradients(opt, jax.grad(loss)(flat), state, flat)
      >>> flat.unpack()["w"]
      Array([[0.8, 0.8, 0.8],
             [0.8, 0.8, 0.8]], dtype=float32)
    """
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    dtypes: list[np.dtype] = []
    parts: list[list[Any]] = []
    sizes: list[int] = []
    slots = []
    for path, leaf in paths_and_leaves:
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float)):
            raise TypeError(
                f"jsgd.pack: the leaf at {_tree.keystr(path)} is not an array. "
                f"Received: {type(leaf).__name__}"
            )
        array = jnp.asarray(leaf)
        dtype = np.dtype(array.dtype)
        if dtype not in dtypes:
            dtypes.append(dtype)
            parts.append([])
            sizes.append(0)
        index = dtypes.index(dtype)
        slots.append(_Slot(index, sizes[index], tuple(array.shape)))
        parts[index].append(array.reshape(-1))
        sizes[index] += array.size
    buffers = tuple(
        jnp.concatenate(p) if len(p) > 1 else jnp.array(p[0], copy=True) for p in parts
    )
    return Packed(buffers, PackedLayout(treedef, tuple(dtypes), tuple(slots)))
