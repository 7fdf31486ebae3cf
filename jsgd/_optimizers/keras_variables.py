"""Keras 3's ``optimizer.variables`` from a jsgd state, and back.

For a Keras-style optimizer (:class:`jsgd.SGD`, :class:`jsgd.Adagrad`,
:class:`jsgd.RMSprop`, :class:`jsgd.Adam`), :func:`keras_variables` lists
the values Keras 3's ``optimizer.variables`` holds after the same steps, in
Keras's order:

1. ``iteration``: the int32 number of micro-steps (``apply`` calls) taken;
2. ``learning_rate``, when it is a number (Keras keeps a schedule as an
   object, not a variable);
3. with ``use_ema``: one ``average`` per parameter;
4. with ``gradient_accumulation_steps``: one ``gradient_accumulator`` per
   parameter;
5. the optimizer's slots: SGD one ``momentum`` per parameter (when it keeps
   a velocity); Adagrad ``accumulator``; RMSprop every ``velocity``, then
   every ``momentum`` (momentum > 0), then every ``average_gradient``
   (centered); Adam ``momentum`` and ``velocity`` per parameter in turn, then
   every ``velocity_hat`` (amsgrad).

:func:`state_from_keras_variables` reads such a list (Keras Variables or
arrays) into a jsgd state. Parameters are in ``jax.tree.leaves(params)``
order unless ``order`` lists their "/"-joined paths in Keras's variable
order.

The step count: a jsgd state keeps one wherever its math needs one (a
schedule, momentum, Adam, EMA, accumulation). A constant-learning-rate SGD
without momentum, Adagrad, and RMSprop without momentum keep none (their
states stay as small as optax's, and checkpoints keep their layout), so
for them :func:`iterations` and :func:`keras_variables` need the count
given as ``iterations=``, and :func:`state_from_keras_variables` has
nowhere to keep Keras's ``iteration`` (it is checked, then dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jsgd._transforms.accumulation import AccumulateGradientsState
from jsgd._transforms.adaptive import AdagradState, AdamState, RMSpropState
from jsgd._transforms.ema import EmaState
from jsgd._transforms.momentum import MomentumState
from jsgd._transforms.step_count import is_counted


def _config(optimizer: Any) -> dict[str, Any]:
    config = getattr(optimizer, "_config", None)
    if not isinstance(config, dict) or not hasattr(optimizer, "_spec"):
        raise TypeError(
            "jsgd: expected a Keras-style optimizer object (jsgd.SGD, "
            f"jsgd.Adagrad, jsgd.RMSprop, jsgd.Adam). Received: {optimizer!r}"
        )
    return config


def _class_name(optimizer: Any) -> str:
    return optimizer._spec.class_name


def _check_keras_rule(optimizer: Any) -> None:
    config = _config(optimizer)
    if _class_name(optimizer) == "SGD":
        if config["lr_in_velocity"] is not True:
            raise ValueError(
                "jsgd: SGD(lr_in_velocity=False) keeps optax's/torch's momentum "
                "buffer, which Keras has no variable for."
            )
        if np.any(np.asarray(config["dampening"]) != 0):
            raise ValueError(
                "jsgd: SGD(dampening=...) is torch's; Keras has no variable for it."
            )
    if not _is_zero(config["decay"]):
        raise ValueError(
            "jsgd: the legacy `decay` is ignored by Keras 3, so its variables "
            "cannot describe this optimizer."
        )


def _is_zero(value: Any) -> bool:
    return not callable(value) and bool(np.all(np.asarray(value) == 0))


# --- the state's layers ----------------------------------------------------------


def _layers(optimizer: Any, state: Any):
    """``(ema, accumulation, chain)``: the EMA and accumulation states or None."""
    config = _config(optimizer)
    if config["loss_scale_factor"] is not None:
        state = state[1]
    ema = accumulation = None
    if config["use_ema"]:
        if not isinstance(state, EmaState):
            raise TypeError(f"jsgd: not this optimizer's state: {type(state)!r}")
        ema, state = state, state.inner_state
    if config["gradient_accumulation_steps"] is not None:
        if not isinstance(state, AccumulateGradientsState):
            raise TypeError(f"jsgd: not this optimizer's state: {type(state)!r}")
        accumulation, state = state, state.inner_state
    if not isinstance(state, tuple) or type(state) is not tuple:
        raise TypeError(f"jsgd: not this optimizer's state: {type(state)!r}")
    return ema, accumulation, state


def _rebuild_layers(optimizer, state, ema, accumulation, chain):
    config = _config(optimizer)
    inner = chain
    if accumulation is not None:
        inner = accumulation._replace(inner_state=inner)
    if ema is not None:
        inner = ema._replace(inner_state=inner)
    if config["loss_scale_factor"] is not None:
        return (state[0], inner)
    return inner


def _find(chain: tuple, kind: type) -> Any:
    for entry in chain:
        if isinstance(entry, kind):
            return entry
    return None


def _micro_steps(optimizer: Any, state: optax.OptState) -> jax.Array:
    """Keras's ``iteration`` variable (the micro-step count) from the state."""
    ema, accumulation, chain = _layers(optimizer, state)
    if ema is not None:
        return jnp.asarray(ema.count)
    if accumulation is not None:
        return jnp.asarray(accumulation.count)
    for entry in chain:
        if is_counted(entry):
            return jnp.asarray(entry.count)
    raise TypeError(
        f"jsgd: this {_class_name(optimizer)} state keeps no step count: a state "
        "of another optimizer, or one saved before jsgd kept a count in every "
        "Keras-style state."
    )


def keras_iterations(optimizer: Any, state: optax.OptState) -> jax.Array:
    """Keras's ``optimizer.iterations`` (real steps) from a jsgd state.

    With ``gradient_accumulation_steps`` this is the micro-step count floor
    divided by it, as Keras's property is (its ``iteration`` variable, in
    :func:`keras_variables`, is the micro-step count). Every Keras-style
    state keeps a count (see :class:`jsgd.StepCountState`).

    Args:
      optimizer: a :class:`jsgd.SGD`, :class:`jsgd.Adagrad`,
        :class:`jsgd.RMSprop` or :class:`jsgd.Adam`.
      state: its state.

    Returns:
      An int32 scalar array.

    Raises:
      TypeError: for another optimizer's state.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.SGD(0.1)  # constant rate, no momentum: a StepCountState
      >>> params = {"w": jnp.ones(2)}
      >>> state = opt.init(params)
      >>> _, state = opt.update({"w": jnp.ones(2)}, state, params)
      >>> int(jsgd.keras_iterations(opt, state))
      1
    """
    micro = _micro_steps(optimizer, state)
    steps = _config(optimizer)["gradient_accumulation_steps"]
    if steps is not None:
        return micro // steps
    return micro.astype(jnp.int32)


# --- parameters in Keras's order --------------------------------------------------


def _key_name(key: Any) -> str:
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _path(path: tuple) -> str:
    return "/".join(_key_name(key) for key in path)


def _permutation(params: optax.Params, order: Sequence[str] | None) -> list[int]:
    """Keras's ``i``-th variable is ``jax.tree.leaves(params)[perm[i]]``."""
    with_paths, _ = jax.tree_util.tree_flatten_with_path(params)
    if order is None:
        return list(range(len(with_paths)))
    paths = [_path(path) for path, _ in with_paths]
    order = list(order)
    if sorted(order) != sorted(paths) or len(set(order)) != len(order):
        raise ValueError(
            f"jsgd: `order` must list every parameter path once. Paths: {paths}. "
            f"Received: order={order}"
        )
    return [paths.index(name) for name in order]


def _leaves(tree: Any, perm: list[int]) -> list[np.ndarray]:
    leaves = jax.tree.leaves(tree)
    return [np.asarray(leaves[i]) for i in perm]


def _unleaves(like: Any, values: list[np.ndarray], perm: list[int]) -> Any:
    leaves, treedef = jax.tree.flatten(like)
    out = list(leaves)
    for value, i in zip(values, perm, strict=True):
        if tuple(value.shape) != tuple(leaves[i].shape):
            raise ValueError(
                f"jsgd: a Keras variable of shape {tuple(value.shape)} for a "
                f"slot of shape {tuple(leaves[i].shape)}."
            )
        out[i] = jnp.asarray(value, leaves[i].dtype)
    return jax.tree.unflatten(treedef, out)


# --- the slots ----------------------------------------------------------------------


def _slots(optimizer: Any, chain: tuple) -> list[tuple[type, str, bool]]:
    """``(state type, field, per-parameter interleaved)`` in Keras's order."""
    name = _class_name(optimizer)
    config = _config(optimizer)
    if name == "SGD":
        return (
            [(MomentumState, "velocity", False)] if _find(chain, MomentumState) else []
        )
    if name == "Adagrad":
        return [(AdagradState, "accumulator", False)]
    if name == "RMSprop":
        slots: list[tuple[type, str, bool]] = [(RMSpropState, "velocity", False)]
        if _find(chain, MomentumState) is not None:
            slots.append((MomentumState, "velocity", False))
        if config["centered"]:
            slots.append((RMSpropState, "average_gradient", False))
        return slots
    slots = [(AdamState, "momentum", True), (AdamState, "velocity", True)]
    if config["amsgrad"]:
        slots.append((AdamState, "velocity_hat", False))
    return slots


def _sign(optimizer: Any, kind: type) -> int:
    # jsgd's RMSprop momentum trace holds -lr*g/sqrt(...) sums; Keras's the +.
    return -1 if _class_name(optimizer) == "RMSprop" and kind is MomentumState else 1


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, (np.ndarray, jax.Array)):
        value = value.numpy()
    return np.asarray(value)


def keras_variables(
    optimizer: Any,
    params: optax.Params,
    state: optax.OptState,
    *,
    order: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """The values of Keras 3's ``optimizer.variables``, from a jsgd state.

    Assign them in turn to a Keras optimizer built on the same variables
    (``keras_opt.build(variables)``; ``v.assign(value)`` for each) and it
    continues where jsgd stopped.

    Args:
      optimizer: a :class:`jsgd.SGD`, :class:`jsgd.Adagrad`,
        :class:`jsgd.RMSprop` or :class:`jsgd.Adam` (Keras's rules:
        ``lr_in_velocity=True``, no ``dampening``, ``decay`` 0).
      params: the parameters (for their order and shapes).
      state: the optimizer's state.
      order: the parameters' "/"-joined paths in Keras's variable order
        (default: ``jax.tree.leaves(params)``'s order).

    Returns:
      A list of NumPy arrays: ``iteration`` (int32), ``learning_rate``
      (float32, when not a schedule), then the slots in Keras's order.

    Raises:
      ValueError: for a non-Keras rule or a bad ``order``.
      TypeError: for another optimizer's state.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> opt = jsgd.SGD(0.1, momentum=0.9)
      >>> params = {"w": jnp.ones(2)}
      >>> state = opt.init(params)
      >>> _, state = opt.update({"w": jnp.ones(2)}, state, params)
      >>> iteration, lr, velocity = jsgd.keras_variables(opt, params, state)
      >>> int(iteration), float(lr), velocity  # Keras's momentum slot: -lr * g
      (1, 0.10000000149011612, array([-0.1, -0.1], dtype=float32))
    """
    config = _config(optimizer)
    _check_keras_rule(optimizer)
    perm = _permutation(params, order)
    ema, accumulation, chain = _layers(optimizer, state)
    micro = _micro_steps(optimizer, state)
    out: list[np.ndarray] = [np.asarray(micro, np.int32)]
    if not callable(config["learning_rate"]):
        out.append(np.asarray(config["learning_rate"], np.float32))
    if ema is not None:
        out += _leaves(ema.average, perm)
    if accumulation is not None:
        out += _leaves(accumulation.accumulated, perm)
    interleaved: list[list[np.ndarray]] = []
    for kind, field, paired in _slots(optimizer, chain):
        values = [
            _sign(optimizer, kind) * v
            for v in _leaves(getattr(_find(chain, kind), field), perm)
        ]
        if paired:
            interleaved.append(values)
            continue
        if interleaved:
            out += [v for pair in zip(*interleaved, strict=True) for v in pair]
            interleaved = []
        out += values
    if interleaved:
        out += [v for pair in zip(*interleaved, strict=True) for v in pair]
    return out


def state_from_keras_variables(
    optimizer: Any,
    params: optax.Params,
    variables: Sequence[Any],
    *,
    order: Sequence[str] | None = None,
) -> optax.OptState:
    """A jsgd state from Keras 3's ``optimizer.variables`` (or their values).

    The inverse of :func:`keras_variables`: jsgd continues where Keras
    stopped, Keras's ``iteration`` included.

    Args:
      optimizer: as in :func:`keras_variables`.
      params: the parameters (for their structure, order and shapes).
      variables: Keras's ``optimizer.variables``: Keras Variables or arrays.
      order: as in :func:`keras_variables`.

    Returns:
      The optimizer's state, ``optimizer.init(params)`` with every value read.

    Raises:
      ValueError: for a non-Keras rule, a list of another length or shapes,
        or a ``learning_rate`` variable that is not the optimizer's.

    Examples:
      >>> import jax.numpy as jnp, numpy as np, jsgd
      >>> opt = jsgd.SGD(0.1, momentum=0.9)
      >>> params = {"w": jnp.ones(2)}
      >>> saved = [np.int64(3), np.float32(0.1), np.array([-0.1, -0.2], np.float32)]
      >>> state = jsgd.state_from_keras_variables(opt, params, saved)
      >>> int(jsgd.keras_iterations(opt, state))
      3
    """
    config = _config(optimizer)
    _check_keras_rule(optimizer)
    perm = _permutation(params, order)
    values = [_as_array(v) for v in variables]
    state = optimizer.init(params)
    ema, accumulation, chain = _layers(optimizer, state)
    slots = _slots(optimizer, chain)
    n = len(perm)
    expected = (
        1
        + (not callable(config["learning_rate"]))
        + n * ((ema is not None) + (accumulation is not None) + len(slots))
    )
    if len(values) != expected:
        raise ValueError(
            f"jsgd: this {_class_name(optimizer)} has {expected} Keras variables; "
            f"received {len(values)}."
        )
    micro = np.asarray(values.pop(0)).astype(np.int32)
    if not callable(config["learning_rate"]):
        lr = values.pop(0)
        if not np.array_equal(
            np.asarray(lr, np.float32), np.asarray(config["learning_rate"], np.float32)
        ):
            raise ValueError(
                f"jsgd: Keras's learning_rate variable is {float(lr)!r}, the "
                f"optimizer's {config['learning_rate']!r}; use "
                ".replace(learning_rate=...)."
            )

    def take() -> list[np.ndarray]:
        taken = values[:n]
        del values[:n]
        return taken

    steps = config["gradient_accumulation_steps"]
    real = micro // steps if steps is not None else micro
    if ema is not None:
        ema = ema._replace(
            count=jnp.asarray(micro, jnp.int32),
            average=_unleaves(ema.average, take(), perm),
        )
    if accumulation is not None:
        accumulation = accumulation._replace(
            count=jnp.asarray(micro, jnp.int32),
            accumulated=_unleaves(accumulation.accumulated, take(), perm),
        )
    read: dict[tuple[type, str], list[np.ndarray]] = {}
    paired = [(kind, field) for kind, field, pair in slots if pair]
    if paired:
        block = values[: n * len(paired)]
        del values[: n * len(paired)]
        for j, key in enumerate(paired):
            read[key] = block[j :: len(paired)]
    for kind, field, pair in slots:
        if not pair:
            read[(kind, field)] = [_sign(optimizer, kind) * v for v in take()]
    new_chain = []
    entry: Any
    for entry in chain:
        fields = {
            field: _unleaves(getattr(entry, field), leaves, perm)
            for (kind, field), leaves in read.items()
            if isinstance(entry, kind)
        }
        if is_counted(entry):
            fields["count"] = jnp.asarray(real, jnp.int32)
        new_chain.append(entry._replace(**fields) if fields else entry)
    return _rebuild_layers(optimizer, state, ema, accumulation, tuple(new_chain))
