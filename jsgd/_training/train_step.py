"""``jsgd.make_train_step``: a jitted, donated training step, on one device or many."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import jax
import optax
from jax.core import Tracer

from jsgd._training.loop import check_row_tables, gradient_step


def _pinned_sharding(leaf: Any) -> jax.sharding.Sharding | None:
    """The sharding an output must keep to stay where ``leaf`` is, or ``None``.

    Only committed concrete arrays pin their placement; uncommitted ones
    (``jnp.zeros(3)``), host values and tracers let the compiler choose, as a
    plain ``jax.jit`` would.
    """
    if isinstance(leaf, jax.Array) and not isinstance(leaf, Tracer) and leaf.committed:
        return leaf.sharding
    return None


def _on_one_device(leaves: list[Any]) -> bool:
    """Whether every leaf is a concrete array on a single device.

    Only then may the step take the fused kernel: XLA cannot partition a
    custom call over a sharded layout (it would gather the whole model).
    """
    return all(
        isinstance(x, jax.Array)
        and not isinstance(x, Tracer)
        and len(x.sharding.device_set) == 1
        for x in leaves
    )


class _TrainStep:
    """The callable :func:`make_train_step` returns (see its docstring)."""

    def __init__(self, step: Callable[..., Any], donate: bool) -> None:
        self._step = step
        self._donate_argnums = (0, 1) if donate else ()
        # One jitted function per layout of (params, opt_state): the layout
        # decides out_shardings, which jax.jit takes when it is built.
        self._jitted: dict[Any, Any] = {}
        self.__doc__ = "step(params, opt_state, *batch) -> (params, opt_state, loss)"

    def _jit_for(self, params: Any, opt_state: Any) -> Any:
        param_leaves, param_tree = jax.tree.flatten(params)
        state_leaves, state_tree = jax.tree.flatten(opt_state)
        param_shardings = tuple(map(_pinned_sharding, param_leaves))
        state_shardings = tuple(map(_pinned_sharding, state_leaves))
        fuse = _on_one_device(param_leaves + state_leaves)
        key = (param_tree, param_shardings, state_tree, state_shardings, fuse)
        jitted = self._jitted.get(key)
        if jitted is None:
            # Outputs keep their inputs' shardings: XLA's propagation alone may
            # pick another layout for an output (e.g. shard the parameters the
            # way a ZeRO-sharded velocity is), which would both move data
            # every step and stop the donated buffers from being reused.
            out_shardings = (
                param_tree.unflatten(param_shardings),
                state_tree.unflatten(state_shardings),
                None,
            )
            jitted = jax.jit(
                functools.partial(self._step, fuse=fuse),
                out_shardings=out_shardings,
                donate_argnums=self._donate_argnums,
            )
            self._jitted[key] = jitted
        return jitted

    def __call__(self, params: Any, opt_state: Any, *batch: Any) -> Any:
        return self._jit_for(params, opt_state)(params, opt_state, *batch)

    def lower(self, params: Any, opt_state: Any, *batch: Any) -> jax.stages.Lowered:
        """Lowers the step for these arguments (inspect HLO, memory, aliasing)."""
        return self._jit_for(params, opt_state).lower(params, opt_state, *batch)


def make_train_step(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    *,
    has_aux: bool = False,
    donate: bool = True,
    axis_name: Hashable | Sequence[Hashable] | None = None,
    row_tables: Mapping[str, int] | None = None,
) -> Callable[..., tuple[Any, Any, Any]]:
    """Builds ``step(params, opt_state, *batch) -> (params, opt_state, loss)``.

    One training step: the gradient of ``loss_fn(params, *batch)``, then
    ``optimizer.update`` (given the parameters, for weight decay) and
    :func:`jsgd.apply_updates`, compiled with ``jax.jit``. On one device
    (no ``axis_name``) the last two are :func:`jsgd.apply_gradients`: one
    fused native kernel for the SGD configurations it covers.

    * In place: ``params`` and ``opt_state`` are donated (``donate=True``), so
      the new ones are written into their buffers instead of beside them, and
      the arrays passed in are deleted. Keep no other reference to them (copy
      first what you want to keep, e.g. ``jax.tree.map(jnp.copy, params)``).
    * Sharded: no shardings are given to ``jit``; the step runs wherever its
      inputs are. Shard ``params`` (and the batch) with ``NamedSharding`` and
      the step is model- and data-parallel; initialize the optimizer state
      eagerly, ``optimizer.init(params)``, and it is sharded like the
      parameters (like each committed, not weakly typed one: JAX puts the
      zeros of a weakly typed ``jnp.full(shape, 0.1)`` on the default
      device). Every committed array in ``params`` and ``opt_state`` comes
      back with exactly the sharding it went in with (so a state laid out by
      :func:`jsgd.zero1_shardings` stays so, and donation can reuse every
      buffer); multi-process (``jax.distributed``) global arrays work the
      same way.
    * Under ``jax.pmap`` or ``jax.shard_map`` (the batch split over a named
      axis, the parameters replicated over it), pass ``axis_name``: each
      device's gradient is then averaged over the axis with ``lax.pmean``
      before the update, and so is the loss. This holds with
      ``shard_map``'s ``check_vma`` on or off (with it on, JAX would
      otherwise hand back gradients already summed over the axis). Not for
      ``jit`` over a sharded batch, where the compiler already averages
      across devices.

    Args:
      loss_fn: ``loss_fn(params, *batch)`` returning a scalar loss, or
        ``(loss, aux)`` with ``has_aux=True``.
      optimizer: any optax gradient transformation: a jsgd factory's result,
        an ``optax.chain`` or a Keras-style class such as :class:`jsgd.SGD`.
      has_aux: ``loss_fn`` returns ``(loss, aux)``; the step then returns
        ``(loss, aux)`` where it would return ``loss``.
      donate: donate ``params`` and ``opt_state`` to the step.
      axis_name: the ``pmap``/``shard_map`` axis (or axes) the batch is split
        over; ``None`` (default) outside them.
      row_tables: embedding tables to train by rows: ``{key: position}``
        names a table ``params[key]`` (``params`` a dict) and the position of
        its integer indices in the batch. ``loss_fn`` then sees
        ``params[key]`` as the gathered rows ``table[indices]`` (shape
        ``indices.shape + table.shape[1:]``; a padding index reads zeros),
        and the table's gradient is a :class:`jsgd.IndexedSlices`, so that a
        sparse-aware optimizer steps O(rows) (see
        :func:`jsgd.value_and_row_grad`). Not with ``axis_name``.

    Returns:
      ``step(params, opt_state, *batch) -> (params, opt_state, loss)``; also
      ``step.lower(params, opt_state, *batch)``, the ``jax.stages.Lowered``
      step for these arguments (``.compile().as_text()``,
      ``.compile().memory_analysis()``).

    Raises:
      TypeError, KeyError, IndexError: for a bad ``row_tables`` (when the
        step is called, for keys and positions).
      ValueError: for ``row_tables`` with ``axis_name``.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> def loss_fn(params, x, y):
      ...     return jnp.mean((x * params["w"] + params["b"] - y) ** 2)
      >>> opt = jsgd.sgd(0.1, momentum=0.9, nesterov=True)
      >>> step = jsgd.make_train_step(loss_fn, opt)
      >>> params = {"w": jnp.zeros(()), "b": jnp.zeros(())}
      >>> opt_state = opt.init(params)
      >>> x = jnp.linspace(-1.0, 1.0, 16)
      >>> for _ in range(100):
      ...     params, opt_state, loss = step(params, opt_state, x, 3 * x + 1)
      >>> print(f"w={float(params['w']):.3f} b={float(params['b']):.3f}")
      w=3.000 b=1.000
    """
    tables = check_row_tables(row_tables, axis_name)

    def step(
        params: Any, opt_state: Any, *batch: Any, fuse: bool = False
    ) -> tuple[Any, Any, Any]:
        return gradient_step(
            loss_fn,
            optimizer,
            params,
            opt_state,
            *batch,
            has_aux=has_aux,
            axis_name=axis_name,
            row_tables=tables,
            fuse=fuse and axis_name is None,
        )

    return _TrainStep(step, donate)
