"""torch's convention for complex parameters: step their real view."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jsgd._common import tree as _tree
from jsgd._sparse.indexed_slices import IndexedSlices


def _to_real(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, IndexedSlices):
        if not jnp.iscomplexobj(x.values):
            return x
        return IndexedSlices(_to_real(x.values), x.indices, (*x.dense_shape, 2))
    x = _tree.as_leaf_array(x)
    if not jnp.iscomplexobj(x):
        return x
    return jnp.stack([jnp.real(x), jnp.imag(x)], axis=-1)


def _to_complex(u: Any, like: Any) -> Any:
    if u is None or like is None:
        return u
    if isinstance(u, IndexedSlices):
        if not isinstance(like, IndexedSlices) or not jnp.iscomplexobj(like.values):
            return u
        return IndexedSlices(
            _to_complex(u.values, like.values), u.indices, like.dense_shape
        )
    if not jnp.iscomplexobj(like):
        return u
    return jax.lax.complex(u[..., 0], u[..., 1]).astype(jnp.result_type(like))


def as_real_view(
    inner: optax.GradientTransformation,
) -> optax.GradientTransformationExtraArgs:
    """Runs ``inner`` on the real view of complex leaves (``torch.view_as_real``).

    A complex leaf of shape ``s`` is seen by ``inner`` as a real array of
    shape ``s + (2,)`` (real and imaginary parts), in its parameters, its
    updates and its state; its update comes back complex. This is how
    ``torch.optim``'s Adam, AdamW, RMSprop and Adagrad treat complex
    parameters: their second moments are per real component (``re**2`` and
    ``im**2``), not ``|g|**2`` as optax's and Keras's. Real leaves pass
    through unchanged. State: ``inner``'s, over the real views.

    Args:
      inner: the transformation to run.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.
    """
    inner = optax.with_extra_args_support(inner)

    def real(tree: Any) -> Any:
        return jax.tree.map(_to_real, tree, is_leaf=_tree.is_update_leaf)

    def init_fn(params: optax.Params) -> Any:
        return inner.init(real(params))

    def update_fn(updates, state, params=None, **extra_args):
        new, state = inner.update(
            real(updates), state, None if params is None else real(params), **extra_args
        )
        back = jax.tree.map(_to_complex, new, updates, is_leaf=_tree.is_update_leaf)
        return back, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
