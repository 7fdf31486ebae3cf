"""``jsgd.sweep``: K hyperparameter configurations trained as one jitted program."""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.core import Tracer

from jsgd._training.loop import check_row_tables, gradient_step


class SweepResult(NamedTuple):
    """What :func:`jsgd.sweep` returns: one row per configuration.

    Row ``k`` of every field belongs to configuration ``k``, the ``k``-th
    entry of each hyperparameter array.

    Attributes:
      losses: ``[K, steps]`` array; ``losses[k, t]`` is configuration ``k``'s
        loss on batch ``t``, evaluated at the parameters *before* step ``t``'s
        update (as a training loop logs it).
      params: the parameters after the last step, the tree of ``params``
        with a leading ``K`` axis on every leaf.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> result = jsgd.SweepResult(losses=jnp.zeros((2, 3)), params=jnp.ones(2))
      >>> result.losses.shape
      (2, 3)
    """

    losses: jax.Array
    params: Any


def _check_names(
    factory: Callable[..., Any], names: list[str], static: Mapping[str, Any]
) -> None:
    """Rejects keywords the factory cannot take, before anything is traced."""
    both = sorted(set(names) & set(static))
    if both:
        raise ValueError(
            f"jsgd.sweep: {', '.join(map(repr, both))} given both as a swept "
            "hyperparameter and in `static`; give each name once."
        )
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: let the call say
        return
    parameters = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    keywords = [
        p.name
        for p in parameters
        if p.kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = [name for name in [*names, *static] if name not in keywords]
    if unknown:
        owner = getattr(factory, "__qualname__", repr(factory))
        raise TypeError(
            f"jsgd.sweep: {owner}() takes no keyword "
            f"{', '.join(map(repr, unknown))}; it takes {', '.join(keywords)}."
        )


def _stack_hyperparameters(
    hyperparameters: Mapping[str, Any],
) -> tuple[dict[str, Any], int]:
    """Returns the hyperparameters as ``[K]`` arrays, and ``K``."""
    if not isinstance(hyperparameters, Mapping) or not hyperparameters:
        error = ValueError if isinstance(hyperparameters, Mapping) else TypeError
        raise error(
            "jsgd.sweep: `hyperparameters` must be a non-empty mapping from a "
            "factory keyword to its K values, e.g. "
            "{'learning_rate': [0.01, 0.1]}. "
            f"Received: hyperparameters={hyperparameters!r}"
        )
    arrays: dict[str, Any] = {}
    for name, values in hyperparameters.items():
        if not isinstance(name, str):
            raise TypeError(
                f"jsgd.sweep: hyperparameter names must be strings. Received: {name!r}"
            )
        # JAX arrays stay as they are: traced (sweep inside jit) or placed
        # (sharded over devices, which the compiled sweep then follows). Lists
        # become NumPy arrays, which keep Python floats exact for validation.
        array = values if isinstance(values, jax.Array) else np.asarray(values)
        if array.ndim != 1 or array.shape[0] < 1:
            raise ValueError(
                f"jsgd.sweep: hyperparameter {name!r} must be a 1-d array of K >= 1 "
                f"values, one per configuration. Received shape {tuple(array.shape)}"
            )
        if not (
            jnp.issubdtype(array.dtype, jnp.floating)
            or jnp.issubdtype(array.dtype, jnp.integer)
        ):
            raise TypeError(
                f"jsgd.sweep: hyperparameter {name!r} must hold real numbers, not "
                f"{array.dtype}; switches such as `nesterov` cannot be traced, put "
                "them in `static`."
            )
        arrays[name] = array
    lengths = {name: int(array.shape[0]) for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            "jsgd.sweep: every hyperparameter needs the same number K of values "
            f"(one per configuration). Received lengths {lengths}"
        )
    return arrays, next(iter(lengths.values()))


def _validate_each(
    factory: Callable[..., Any],
    arrays: Mapping[str, Any],
    static: Mapping[str, Any],
    k: int,
) -> None:
    """Builds every configuration eagerly, so the factory's checks run.

    Inside the sweep the hyperparameters are traced, which the factory's
    checks let through: a momentum of 1.5 would train silently.
    """
    if any(isinstance(array, Tracer) for array in arrays.values()):
        return
    host = {name: np.asarray(array) for name, array in arrays.items()}
    for i in range(k):
        hyper = {name: array[i].item() for name, array in host.items()}
        try:
            factory(**static, **hyper)
        except (TypeError, ValueError) as error:
            kind = TypeError if isinstance(error, TypeError) else ValueError
            raise kind(f"jsgd.sweep: configuration {i} {hyper}: {error}") from error


def _steps(batches: tuple[Any, ...], steps: int | None) -> int:
    """The scan length: the leading axis every batch leaf shares."""
    leaves = jax.tree.leaves(batches)
    if any(np.ndim(leaf) == 0 for leaf in leaves):
        raise ValueError(
            "jsgd.sweep: every leaf of `batches` needs a leading steps axis; "
            "found a 0-d leaf."
        )
    lengths = {int(np.shape(leaf)[0]) for leaf in leaves}
    if len(lengths) > 1:
        raise ValueError(
            "jsgd.sweep: every leaf of `batches` needs the same leading steps axis. "
            f"Received lengths {sorted(lengths)}"
        )
    if not lengths:
        if steps is None:
            raise ValueError(
                "jsgd.sweep: `batches` is empty, so give `steps` (the number of "
                "training steps)."
            )
        length = steps
        if isinstance(length, bool) or not isinstance(length, numbers.Integral):
            raise TypeError(f"jsgd.sweep: `steps` must be an int. Received {length!r}")
        length = int(length)
    else:
        length = lengths.pop()
        if steps is not None and steps != length:
            raise ValueError(
                f"jsgd.sweep: steps={steps} but `batches` has {length} steps."
            )
    if length < 1:
        raise ValueError(f"jsgd.sweep: `steps` must be >= 1. Received {length}")
    return length


def _per_configuration(leaf: Any, like: jax.Array) -> jax.Array:
    """``leaf`` repeated along a leading K axis laid out as ``like`` is.

    The scan carry is then batched from its first step, and under an
    explicit-sharding mesh (``jax.make_mesh``'s default) its K axis is
    sharded as the hyperparameters are, as ``vmap`` and ``scan`` require.
    """
    leaf = jnp.broadcast_to(leaf, (like.shape[0], *jnp.shape(leaf)))
    typeof = getattr(jax, "typeof", None)  # older JAX has no sharded types
    sharding = getattr(typeof(like), "sharding", None) if typeof else None
    spec = getattr(sharding, "spec", None)
    if sharding is None or not spec or spec[0] is None:
        # Unsharded, or sharded by the compiler (not part of the type).
        return leaf
    spec = jax.sharding.PartitionSpec(spec[0], *[None] * (leaf.ndim - 1))
    return jax.sharding.reshard(leaf, sharding.update(spec=spec))


@functools.partial(
    jax.jit,
    static_argnames=(
        "factory",
        "loss_fn",
        "static",
        "per_config_params",
        "steps",
        "row_tables",
    ),
)
def _sweep(
    hyperparameters: dict[str, jax.Array],
    params: Any,
    batches: tuple[Any, ...],
    *,
    factory: Callable[..., optax.GradientTransformation],
    loss_fn: Callable[..., Any],
    static: tuple[tuple[str, Hashable], ...],
    per_config_params: bool,
    steps: int,
    row_tables: tuple[tuple[str, int], ...],
) -> SweepResult:
    def train(hyper: dict[str, jax.Array], params: Any) -> tuple[Any, jax.Array]:
        optimizer = factory(**dict(static), **hyper)

        def step(carry: tuple[Any, Any], batch: tuple[Any, ...]) -> tuple[Any, Any]:
            params, opt_state, loss = gradient_step(
                loss_fn, optimizer, *carry, *batch, row_tables=row_tables
            )
            return (params, opt_state), loss

        carry = (params, optimizer.init(params))
        (params, _), losses = jax.lax.scan(step, carry, batches, length=steps)
        return params, losses

    if not per_config_params:
        params = jax.tree.map(
            functools.partial(
                _per_configuration, like=next(iter(hyperparameters.values()))
            ),
            params,
        )
    params, losses = jax.vmap(train)(hyperparameters, params)
    return SweepResult(losses=losses, params=params)


def sweep(
    factory: Callable[..., optax.GradientTransformation],
    hyperparameters: Mapping[str, jax.typing.ArrayLike | Sequence[float]],
    loss_fn: Callable[..., jax.typing.ArrayLike],
    params: Any,
    batches: tuple[Any, ...] = (),
    *,
    static: Mapping[str, Hashable] | None = None,
    steps: int | None = None,
    per_config_params: bool = False,
    row_tables: Mapping[str, int] | None = None,
) -> SweepResult:
    """Trains K hyperparameter configurations at once, as one compiled program.

    Configuration ``k`` is the optimizer ``factory(**static, **{name:
    values[k] for name, values in hyperparameters.items()})`` trained from
    ``params`` on the same batches: step ``t`` takes the gradient of
    ``loss_fn(params, *batch_t)``, where ``batch_t`` is row ``t`` of every
    array in ``batches``, then ``optimizer.update`` (given the parameters, for
    weight decay) and :func:`jsgd.apply_updates`. The steps are a
    ``jax.lax.scan``, the configurations a ``jax.vmap`` over it, the whole
    sweep one ``jax.jit``: one compile and one dispatch for all K runs, whose
    results equal K separate runs to float32 rounding. Calling it again with
    other values of the same K (and the same ``factory``, ``loss_fn``,
    ``static`` and shapes) reuses the compiled program.

    Any keyword the factory takes as a number or 0-d array can be swept
    (every jsgd factory traces its hyperparameters: learning rate, momentum,
    weight decay, betas, clip thresholds, ...). Switches the optimizer's
    structure depends on (``nesterov``, ``lr_in_velocity``, schedules,
    ``gradient_accumulation_steps``) go in ``static``. For a grid, flatten it:
    ``lr, m = np.meshgrid(lrs, ms, indexing="ij")`` then
    ``{"learning_rate": lr.ravel(), "momentum": m.ravel()}``. To sweep a
    schedule's parameters, pass a factory of your own such as
    ``lambda peak: jsgd.sgd(optax.cosine_decay_schedule(peak, 1000))``.

    Memory grows with K: the sweep holds K copies of the parameters, the
    optimizer state and the activations of one step.

    Across devices: the compiled sweep follows its inputs' placement, so
    hyperparameter arrays sharded along K
    (``jax.device_put(values, NamedSharding(mesh, PartitionSpec("k")))``,
    every swept array alike, and the parameters too with
    ``per_config_params``) split the configurations over the mesh's devices
    with no communication between them; results are sharded the same way.
    On a CPU, ``jax.config.update("jax_num_cpu_devices", n)`` (before JAX
    starts) gives one device per core.

    Args:
      factory: builds an optimizer from keywords, e.g. :func:`jsgd.sgd`,
        :func:`jsgd.adam` or ``optax.inject_hyperparams(jsgd.sgd)``.
      hyperparameters: keyword name -> K values (a 1-d array or list), the
        swept hyperparameters; every entry has the same length K >= 1.
      loss_fn: ``loss_fn(params, *batch)`` returning a scalar loss, as for
        :func:`jsgd.make_train_step`.
      params: the initial parameters, shared by every configuration (or, with
        ``per_config_params=True``, a tree whose leaves have a leading K
        axis: one start per configuration).
      batches: a tuple of arrays (or pytrees of arrays) with a leading steps
        axis; step ``t`` calls ``loss_fn(params, *[b[t] for b in batches])``.
        Empty (the default) for a loss that closes over its data; then give
        ``steps``.
      static: keywords passed unchanged to every configuration; their values
        must be hashable (Python numbers, bools, strings, callables), since
        they are part of what is compiled.
      steps: the number of steps; needed only when ``batches`` is empty,
        checked against it otherwise.
      per_config_params: ``params`` holds one start per configuration along
        a leading K axis.
      row_tables: embedding tables trained by rows, as for
        :func:`jsgd.make_train_step` (``{key: position of its indices in a
        step's batch}``).

    Returns:
      A :class:`jsgd.SweepResult`: ``losses`` ``[K, steps]`` (the loss of each
      step, before its update) and the final ``params`` with leaves
      ``[K, ...]``.

    Raises:
      ValueError: for empty hyperparameters, arrays that are not 1-d or of
        different lengths, a name given both swept and in ``static``,
        batches without a common leading steps axis (or zero steps), or
        ``per_config_params`` leaves whose leading axis is not K.
      TypeError: for hyperparameters that are not a mapping, a keyword the
        factory does not take, a non-numeric hyperparameter array,
        unhashable ``static`` values, ``batches`` that is not a tuple, a
        non-int ``steps`` or a non-callable ``factory``/``loss_fn``. The
        factory's own ValueError or TypeError for a configuration it rejects
        (e.g. a momentum of 1.5) is raised again naming the configuration.

    Examples:
      >>> import jax.numpy as jnp, jsgd
      >>> def loss_fn(w, x):  # the minimum is w = 2
      ...     return jnp.mean((x * (w - 2.0)) ** 2)
      >>> xs = jnp.ones((50, 8))  # 50 steps, a batch of 8 each
      >>> result = jsgd.sweep(
      ...     jsgd.sgd,
      ...     {"learning_rate": [0.01, 0.1, 0.1], "momentum": [0.0, 0.0, 0.5]},
      ...     loss_fn,
      ...     jnp.zeros(()),
      ...     (xs,),
      ... )
      >>> result.losses.shape
      (3, 50)
      >>> print(" ".join(f"{float(w):.3f}" for w in result.params))  # final w
      1.272 2.000 2.000
    """
    if not callable(factory) or not callable(loss_fn):
        raise TypeError(
            "jsgd.sweep: `factory` and `loss_fn` must be callables. Received: "
            f"factory={factory!r}, loss_fn={loss_fn!r}"
        )
    static = dict(static or {})
    arrays, k = _stack_hyperparameters(hyperparameters)
    _check_names(factory, list(arrays), static)
    static_items = tuple(sorted(static.items()))
    try:
        hash(static_items)
    except TypeError as error:
        raise TypeError(
            "jsgd.sweep: `static` values must be hashable (Python numbers, bools, "
            "strings, callables); give an array value as a swept hyperparameter "
            f"instead (the same value K times). Received: static={static!r}"
        ) from error
    if not isinstance(batches, tuple):
        raise TypeError(
            "jsgd.sweep: `batches` must be a tuple, the arguments of "
            "loss_fn(params, *batch) with a leading steps axis; for a single "
            f"array pass (array,). Received {type(batches).__name__}"
        )
    length = _steps(batches, steps)
    if per_config_params:
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            if np.ndim(leaf) == 0 or np.shape(leaf)[0] != k:
                raise ValueError(
                    "jsgd.sweep: with per_config_params=True every leaf of "
                    f"`params` needs a leading axis of K={k}; the leaf "
                    f"{jax.tree_util.keystr(path) or 'at the root'} has shape "
                    f"{tuple(np.shape(leaf))}."
                )
    _validate_each(factory, arrays, static, k)
    return _sweep(
        {name: jnp.asarray(array) for name, array in arrays.items()},
        params,
        batches,
        factory=factory,
        loss_fn=loss_fn,
        static=static_items,
        per_config_params=per_config_params,
        steps=length,
        row_tables=check_row_tables(row_tables),
    )
