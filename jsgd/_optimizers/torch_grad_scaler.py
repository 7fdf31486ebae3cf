"""torch's ``GradScaler`` (dynamic loss scaling) as an optax wrapper.

:class:`GradScaler` wraps any optax transformation so that one ``update``
does what torch's ``scaler.step(opt); scaler.update()`` pair does: unscale the
gradients, check them for infs and NaNs, step the wrapped optimizer or skip
the step, and grow or back off the scale, bit for bit as torch's CPU and CUDA
kernels (``_amp_foreach_non_finite_check_and_unscale_``,
``_amp_update_scale_``) compute them. Nothing here imports torch.

torch computes two things in double precision, which jsgd reproduces exactly
with int32 arithmetic: the reciprocal ``inv_scale = float(1 / double(scale))``
and the new scale ``float(double(scale) * factor)``, the factor a Python
double. float32 arithmetic would round the second differently in about half
the updates for a factor such as 0.3 (and now and then even rounding the
exact product once, where torch rounds twice), and XLA flushes float32's
subnormal numbers, which an ``inv_scale`` for a scale above 2**126 is.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jsgd._common import tree as _tree
from jsgd._common import validation as _validation
from jsgd._optimizers.torch_family import OptimizerState

__all__ = ["GradScaler", "GradScalerState"]

_OWNER = "torch.GradScaler"
_INT32_MAX = int(np.iinfo(np.int32).max)


class GradScalerState(NamedTuple):
    """State of a transformation made by :meth:`GradScaler.wrap`.

    Attributes:
      scale: the current loss scale, a float32 0-d array: what torch's
        ``scaler._scale`` holds (``scaler.get_scale()`` as an array); multiply
        the loss by it before differentiating. 1.0 when the scaler is
        disabled.
      growth_tracker: int32 0-d, torch's ``scaler._growth_tracker``: the
        number of consecutive finite steps since the scale last changed.
      found_inf: bool 0-d, whether the gradients of the latest ``update``
        held an inf or a NaN (so that its step was skipped); False after
        ``init``. torch's ``found_inf``, for logging.
      inner_state: the wrapped transformation's state.
    """

    scale: jax.Array
    growth_tracker: jax.Array
    found_inf: jax.Array
    inner_state: Any


# --- torch's double-precision roundings, exactly, in int32 -------------------
#
# A positive finite float32 x is M * 2**e with M an int32 in [2**23, 2**24)
# (subnormals normalized). Each result is rounded once to float32 (nearest,
# ties to even, with gradual underflow) from its exact value, given as
# (m + sticky) * 2**e with m in [2**25, 2**26): 26 bits, the 24 kept, a guard
# bit, one more, and whether any bit below them is set.

_INF_BITS = 0x7F800000


def _decompose(x: jax.Array):
    """``(negative, M, e, finite_nonzero)`` with ``|x| = M * 2**e``."""
    bits = lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    negative = bits < 0
    field = (bits >> 23) & 0xFF
    fraction = bits & 0x7FFFFF
    shift = lax.clz(fraction) - 8  # a subnormal's leading bit to bit 23
    subnormal = field == 0
    mantissa = jnp.where(subnormal, fraction << shift, fraction | 0x800000)
    exponent = jnp.where(subnormal, -149 - shift, field - 150)
    finite_nonzero = (field != 0xFF) & ((field != 0) | (fraction != 0))
    return negative, mantissa, exponent, finite_nonzero


def _to_float32(negative, m, e, sticky) -> jax.Array:
    """float32 nearest to ``(m + sticky) * 2**e``, m in [2**25, 2**26)."""
    biased = jnp.clip(e + 152, -200, 255)  # float32's biased exponent, if normal
    drop = 2 + jnp.clip(1 - biased, 0, 25)  # bits below the last kept one
    kept = m >> drop
    rest = m & ((1 << drop) - 1)
    half = 1 << (drop - 1)
    up = (rest > half) | ((rest == half) & (sticky | ((kept & 1) == 1)))
    # The implicit bit of ``kept`` carries into the exponent field (and a
    # subnormal rounding up to 2**23 is float32's smallest normal number).
    bits = (jnp.maximum(biased - 1, 0) << 23) + kept + up.astype(jnp.int32)
    bits = jnp.where(biased >= 255, _INF_BITS, jnp.minimum(bits, _INF_BITS))
    unsigned = bits.astype(jnp.uint32) | (negative.astype(jnp.uint32) << 31)
    return lax.bitcast_convert_type(unsigned, jnp.float32)


def _carry(limbs: list[jax.Array]) -> list[jax.Array]:
    """Base-2**12 limbs with the carries moved up (the top limb unbounded)."""
    out = list(limbs)
    for k in range(len(out) - 1):
        out[k + 1] = out[k + 1] + (out[k] >> 12)
        out[k] = out[k] & 0xFFF
    return out


@functools.partial(jax.jit, static_argnums=1)
def _times(x: jax.Array, factor: float) -> jax.Array:
    """``float(double(x) * factor)``: torch's scale update, exactly.

    ``factor`` is a positive Python double (or ``inf``). The product of x's 24
    significant bits and the factor's 53 is exact in seven base-2**12 limbs;
    it is rounded to 53 bits (the double torch computes), then to float32.
    """
    x = x.astype(jnp.float32)
    if math.isinf(factor):
        return x * jnp.float32(factor)  # inf, or NaN for 0 (as in double)
    fraction, exponent = math.frexp(factor)
    m_f = int(fraction * 2**53)  # in [2**52, 2**53): exact
    e_f = exponent - 53
    f = [(m_f >> (12 * j)) & 0xFFF for j in range(5)]
    negative, m_x, e_x, finite = _decompose(x)
    x0, x1 = m_x & 0xFFF, m_x >> 12
    zero = jnp.zeros([], jnp.int32)
    p = [zero] * 7
    for j in range(5):
        p[j] = p[j] + x0 * f[j]
        p[j + 1] = p[j + 1] + x1 * f[j]
    p = _carry(p)  # the product, in [2**75, 2**77)
    short = (p[6] < 16).astype(jnp.int32)  # below 2**76: shift it up one bit
    p = _carry([limb << short for limb in p])
    e_p = e_x + e_f - short
    # Round to the 53 bits of a double: drop limbs 0 and 1 (24 bits).
    dropped = p[0] | (p[1] << 12)
    up = (dropped > 2**23) | ((dropped == 2**23) & ((p[2] & 1) == 1))
    q = _carry([p[2] + up.astype(jnp.int32), p[3], p[4], p[5], p[6]])
    carried = q[4] >= 32  # rounded up to 2**53
    m = (q[2] >> 3) | (q[3] << 9) | (q[4] << 21)  # the top 26 of the 53 bits
    sticky = (q[0] | q[1] | (q[2] & 7)) != 0
    m = jnp.where(carried, 2**25, m)
    e = e_p + 24 + 27 + carried.astype(jnp.int32)
    return jnp.where(finite, _to_float32(negative, m, e, sticky), x)


@jax.jit
def _reciprocal(x: jax.Array) -> jax.Array:
    """``float(1 / double(x))``: torch's ``inv_scale``, exactly.

    Rounding the double reciprocal of a float32 to float32 equals rounding
    the exact reciprocal once, which long division gives: 26 quotient bits
    of ``2**49 / M`` and whether a remainder is left.
    """
    x = x.astype(jnp.float32)
    negative, m_x, e_x, finite = _decompose(x)
    remainder = jnp.full([], 2**24, jnp.int32)
    quotient = jnp.zeros([], jnp.int32)
    for _ in range(26):
        bit = remainder >= m_x
        quotient = 2 * quotient + bit.astype(jnp.int32)
        remainder = 2 * (remainder - jnp.where(bit, m_x, 0))
    exact_power = quotient == 2**26  # M = 2**23: x is a power of two
    m = jnp.where(exact_power, 2**25, quotient)
    e = -49 - e_x + exact_power.astype(jnp.int32)
    result = _to_float32(negative, m, e, remainder != 0)
    special = jnp.where(
        jnp.isnan(x), x, jnp.where(x == 0, jnp.float32(jnp.inf), jnp.float32(0))
    )
    special = jnp.where(negative, -special, special)
    return jnp.where(finite, result, special)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _update_scale(
    scale: jax.Array,
    growth_tracker: jax.Array,
    found_inf: jax.Array,
    growth_factor: float,
    backoff_factor: float,
    growth_interval: int,
) -> tuple[jax.Array, jax.Array]:
    """The new scale and growth tracker, as torch's ``_amp_update_scale_``."""
    successful = growth_tracker + 1
    grows = successful == growth_interval
    grown = _times(scale, growth_factor)
    # torch: "Do not grow the scale past fp32 bounds to inf."
    kept_or_grown = jnp.where(grows & jnp.isfinite(grown), grown, scale)
    new_scale = jnp.where(found_inf, _times(scale, backoff_factor), kept_or_grown)
    new_tracker = jnp.where(found_inf | grows, 0, successful).astype(jnp.int32)
    return new_scale, new_tracker


# --- unscaling ---------------------------------------------------------------

_TWO_TO_64 = 2.0**64


def _multiplier(scale: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The ``inv_scale`` of torch as ``(big, small)``: ``inv_scale = big * small``.

    ``big`` is ``inv_scale`` itself, or for a subnormal one (a scale above
    2**126) ``inv_scale * 2**64``, with ``small = 2**-64``: a gradient times
    ``big`` (rounded), times ``small`` (exact), is torch's product wherever
    that is a normal number, although XLA flushes subnormal operands to 0.
    """
    inv = _reciprocal(scale)
    bits = lax.bitcast_convert_type(inv, jnp.int32)
    tiny = (bits & 0x7F800000) == 0
    fraction = (bits & 0x7FFFFF).astype(jnp.float32)
    sign = jnp.where(bits < 0, jnp.float32(-1), jnp.float32(1))
    scaled = sign * fraction * jnp.float32(2.0**-149 * _TWO_TO_64)  # exact
    big = jnp.where(tiny & (fraction != 0), scaled, inv)
    small = jnp.where(tiny & (fraction != 0), jnp.float32(1 / _TWO_TO_64), 1.0)
    return big, small.astype(jnp.float32)


def _unscaled(values: jax.Array, big: jax.Array, small: jax.Array) -> jax.Array:
    """``values * inv_scale`` as torch computes it for the values' dtype.

    float32: a float32 product; bfloat16: in float32, rounded back (torch's
    opmath); float64: in double. Complex values: their parts, each so.
    """
    dtype = values.dtype
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return lax.complex(
            _unscaled(jnp.real(values), big, small),
            _unscaled(jnp.imag(values), big, small),
        ).astype(dtype)
    wide = jnp.promote_types(dtype, jnp.float32)
    if wide == jnp.float32:
        return ((values.astype(wide) * big) * small).astype(dtype)
    return values * (big.astype(wide) * small.astype(wide))


def _refuse_float16(updates: Any) -> None:
    """Raises torch's ValueError for float16 gradients (``allow_fp16=False``)."""
    for path, u in jax.tree_util.tree_flatten_with_path(
        updates, is_leaf=_tree.is_update_leaf
    )[0]:
        if u is None:
            continue
        dtype = getattr(u, "dtype", None)
        if dtype is not None and jnp.dtype(dtype) == jnp.float16:
            raise ValueError(
                "Attempting to unscale FP16 gradients. (the gradient at "
                f"{_tree.keystr(path)} is float16: torch's GradScaler expects "
                "float32 parameters, or bfloat16, with float16 only in the "
                "forward pass)"
            )


# --- skipping a step ---------------------------------------------------------


def _is_optimizer_state(x: Any) -> bool:
    return isinstance(x, OptimizerState)


def _skipped_state(found_inf: jax.Array, new: Any, old: Any) -> Any:
    """The wrapped state after a step: ``new``, or after a skipped one, ``old``.

    A skipped step keeps the old state everywhere except in each
    :class:`~jsgd.torch.OptimizerState` (found through ``optax.chain`` and
    any other container), whose ``step`` and ``scheduler`` advance as in
    torch's loop, where ``scheduler.step()`` runs after a skipped step too.
    """

    def select(n: Any, o: Any) -> Any:
        return jnp.where(found_inf, o, n)

    def node(n: Any, o: Any) -> Any:
        if isinstance(n, OptimizerState):
            return n._replace(groups=jax.tree.map(select, n.groups, o.groups))
        return select(n, o)

    return jax.tree.map(node, new, old, is_leaf=_is_optimizer_state)


# --- arguments ---------------------------------------------------------------


def _number(name: str, value: Any) -> float:
    number = _validation.concrete_scalar(name, value)
    if number is None:
        raise TypeError(
            f"`{name}` must be a concrete number: it is a constant of the "
            f"program (torch keeps it as a Python float). Received: {name}={value!r}"
        )
    return number


def _check_init_scale(value: Any) -> float:
    number = _number("init_scale", value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(
            f"`init_scale` must be a finite number > 0. Received: init_scale={value!r}"
        )
    _validation.check_positive("init_scale", value)  # float32's range
    return number


def _check_growth_factor(value: Any) -> float:
    number = _number("growth_factor", value)
    if not number > 1.0:  # NaN too (torch lets NaN through: no growth ever)
        raise ValueError(
            f"The growth factor must be > 1.0. Received: growth_factor={value!r}"
        )
    return number


def _check_backoff_factor(value: Any) -> float:
    number = _number("backoff_factor", value)
    if not number < 1.0 or math.isnan(number):
        raise ValueError(
            f"The backoff factor must be < 1.0. Received: backoff_factor={value!r}"
        )
    if not number > 0:
        raise ValueError(
            f"`backoff_factor` must be > 0. Received: backoff_factor={value!r} "
            "(torch accepts it, but a scale of 0 or below would skip every "
            "step, or flip the gradients' sign, from the first overflow on)"
        )
    return number


def _check_growth_interval(value: Any) -> int:
    interval = _validation.check_integer("growth_interval", value, 1)
    if interval > _INT32_MAX:
        raise ValueError(
            f"`growth_interval` must be at most {_INT32_MAX} (the growth tracker "
            f"is an int32, as in torch). Received: growth_interval={value!r}"
        )
    return interval


# --- the scaler --------------------------------------------------------------


def _find_states(tree: Any) -> list[GradScalerState]:
    if isinstance(tree, GradScalerState):
        return [tree]
    return [
        x
        for x in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, GradScalerState))
        if isinstance(x, GradScalerState)
    ]


@dataclasses.dataclass(frozen=True, init=False)
class GradScaler:
    """torch's ``torch.amp.GradScaler``: dynamic loss scaling, as an optax wrapper.

    ``scaler.wrap(tx)`` is an optax transformation whose ``update`` does
    torch's ``scaler.step(optimizer); scaler.update()`` (and the optional
    ``scaler.unscale_(optimizer)`` before them: the wrapped ``tx`` sees
    unscaled gradients, so clipping goes inside it). The loop, side by side::

        # torch                              # jsgd
        scaler = GradScaler("cuda")          scaler = jsgd.torch.GradScaler()
                                             tx = scaler.wrap(optax.chain(
        opt = Adam(model.parameters())           clip_grad_norm(1.0),
        sched = StepLR(opt, 10)                  Adam(scheduler=StepLR(10))))
                                             state = tx.init(params)
        for x, y in data:                    for x, y in data:
            opt.zero_grad()                      s = GradScaler.scale_of(state)
            loss = loss_fn(model(x), y)          grads = jax.grad(lambda p:
            scaler.scale(loss).backward()            loss_fn(p, x, y) * s)(params)
            scaler.unscale_(opt)                 updates, state = tx.update(
            clip_grad_norm_(params, 1.0)             grads, state, params)
            scaler.step(opt)                     params = optax.apply_updates(
            scaler.update()                          params, updates)
            sched.step()

    One ``update`` from the scaled gradients ``g`` (torch's rule exactly):

    1. ``inv_scale = float32(1 / float64(scale))``; each gradient entry is
       ``g * inv_scale``, computed in float32 (bfloat16 gradients in float32,
       rounded back; float64 in double; complex ones part by part, which
       torch 2.13's kernels refuse).
    2. ``found_inf``: whether any entry of any gradient leaf (before
       unscaling) is inf or NaN. ``None`` leaves are skipped;
       ``jsgd.IndexedSlices`` leaves count by their values (padding rows
       aside).
    3. The wrapped transformation's ``update`` on the unscaled gradients.
       With ``found_inf`` its result is discarded (torch skips
       ``optimizer.step()``): the updates are zeros (``None`` stays ``None``,
       an ``IndexedSlices`` gets zero values) and the wrapped state stays as
       it was (Adam's moments and step count too), except that every
       :class:`~jsgd.torch.OptimizerState` in it (through ``optax.chain`` or
       any other container) takes its new ``step`` and ``scheduler``: torch's
       ``scheduler.step()`` runs after a skipped step as after any other.
       The selection is ``jnp.where``, no Python branch: jit-safe.
    4. torch's ``_amp_update_scale_``: if ``found_inf``, ``scale =
       float32(float64(scale) * backoff_factor)`` and ``growth_tracker =
       0``; else ``growth_tracker + 1``, and when that reaches
       ``growth_interval``, ``growth_tracker = 0`` and ``scale =
       float32(float64(scale) * growth_factor)`` unless that is inf (the
       scale then stays; torch: "Do not grow the scale past fp32 bounds").
       The double-precision products and reciprocal are reproduced exactly
       (in int32 arithmetic), so the scale sequence is torch's bit for bit,
       also for factors such as 0.3 that float32 arithmetic would round
       differently.

    ``enabled=False`` makes ``wrap(tx)`` a pass-through (no unscaling, no
    checks, no skipping) whose scale is 1.0, as torch's disabled scaler.

    XLA flushes subnormal float32 numbers to zero in arithmetic: an unscaled
    gradient entry below float32's smallest normal number (1.2e-38), which
    torch keeps, is 0 here. A scale above 2**126 (a subnormal ``inv_scale``,
    which torch reaches by growing from 2**16 unchecked) is handled exactly.
    A scale below 1.2e-38 (about 140 consecutive skipped steps at the
    defaults) is stored exactly but multiplies a loss as 0.

    One scaler, one optimizer: torch can share a scaler between optimizers,
    skipping each one's step by its own gradients and backing off by all of
    them; here wrap the optimizers together (``optax.multi_transform``) to
    share a scale, and then a non-finite gradient anywhere skips them all.

    State: :class:`GradScalerState` (``scale``, ``growth_tracker``,
    ``found_inf`` of the latest step, ``inner_state``); read the scale with
    :meth:`scale_of` (an array, jit-safe) or :meth:`get_scale` (a Python
    float, as torch's).

    Args:
      init_scale: the initial scale (stored as float32, as torch does), a
        finite number > 0 within float32's normal range. Default ``2.**16``.
      growth_factor: multiplies the scale after ``growth_interval``
        consecutive finite steps; > 1 (``inf``: never grow). Default 2.0.
      backoff_factor: multiplies the scale after a step with non-finite
        gradients; in (0, 1). Default 0.5.
      growth_interval: the number of consecutive finite steps between
        growths, an int in [1, 2**31 - 1]. Default 2000.
      enabled: False for a pass-through with scale 1 (the other arguments
        are then not checked, as in torch). Default True.

    Raises:
      ValueError: with torch's message for ``growth_factor <= 1`` ("The
        growth factor must be > 1.0.") and ``backoff_factor >= 1`` ("The
        backoff factor must be < 1.0."; torch raises AssertionErrors), and
        for what torch accepts but would corrupt a run: a non-finite,
        non-positive or float32-overflowing ``init_scale``, a NaN factor, a
        ``backoff_factor <= 0``, a ``growth_interval`` below 1 or above the
        int32 range.
      TypeError: for a non-number (or traced) factor or scale, a non-int
        ``growth_interval`` and a non-bool ``enabled``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jsgd.torch
      >>> from jsgd.torch import GradScaler
      >>> scaler = GradScaler(init_scale=2.0**16, growth_interval=2)
      >>> tx = scaler.wrap(jsgd.torch.SGD(lr=0.1))
      >>> params = {"w": jnp.array([1.0, 2.0])}
      >>> state = tx.init(params)
      >>> def loss(p):
      ...     return jnp.sum(p["w"] ** 2)
      >>> for step in range(3):
      ...     scale = GradScaler.scale_of(state)
      ...     grads = jax.grad(lambda p: loss(p) * scale)(params)
      ...     if step == 1:  # an overflow in the backward pass
      ...         grads = {"w": grads["w"].at[0].set(jnp.inf)}
      ...     updates, state = tx.update(grads, state, params)
      ...     params = optax.apply_updates(params, updates)
      ...     print(bool(state.found_inf), scaler.get_scale(state), params["w"])
      False 65536.0 [0.8 1.6]
      True 32768.0 [0.8 1.6]
      False 32768.0 [0.64 1.28]
    """

    init_scale: float
    growth_factor: float
    backoff_factor: float
    growth_interval: int
    enabled: bool

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        _validation.check_bool("enabled", enabled)
        if enabled:
            init_scale = _check_init_scale(init_scale)
            growth_factor = _check_growth_factor(growth_factor)
            backoff_factor = _check_backoff_factor(backoff_factor)
            growth_interval = _check_growth_interval(growth_interval)
        for name, value in (
            ("init_scale", init_scale),
            ("growth_factor", growth_factor),
            ("backoff_factor", backoff_factor),
            ("growth_interval", growth_interval),
            ("enabled", bool(enabled)),
        ):
            object.__setattr__(self, name, value)

    # torch's getters.
    def get_growth_factor(self) -> float:
        """The growth factor (torch's ``get_growth_factor()``)."""
        return self.growth_factor

    def get_backoff_factor(self) -> float:
        """The backoff factor (torch's ``get_backoff_factor()``)."""
        return self.backoff_factor

    def get_growth_interval(self) -> int:
        """The growth interval (torch's ``get_growth_interval()``)."""
        return self.growth_interval

    def is_enabled(self) -> bool:
        """Whether scaling is enabled (torch's ``is_enabled()``)."""
        return self.enabled

    @staticmethod
    def state_of(state: Any) -> GradScalerState:
        """The :class:`GradScalerState` in ``state``.

        Args:
          state: a :class:`GradScalerState`, or any pytree holding exactly one
            (an ``optax.chain``'s state, ``flax.nnx.Optimizer``'s
            ``opt_state``...).

        Returns:
          That state.

        Raises:
          ValueError: if ``state`` holds none, or several.
        """
        found = _find_states(state)
        if len(found) != 1:
            raise ValueError(
                f"jsgd.{_OWNER}: expected one GradScalerState in the state, found "
                f"{len(found)}. Pass the state of a GradScaler.wrap(...) "
                "transformation (or a tree holding one)."
            )
        return found[0]

    @staticmethod
    def scale_of(state: Any) -> jax.Array:
        """The current scale (float32 0-d array) of a wrapped state; jit-safe.

        Args:
          state: as for :meth:`state_of`.

        Returns:
          ``state_of(state).scale``: 1.0 for a disabled scaler.
        """
        return GradScaler.state_of(state).scale

    def get_scale(self, state: Any) -> float:
        """The current scale as a Python float (torch's ``get_scale()``).

        Args:
          state: as for :meth:`state_of` (not traced: this reads the value).

        Returns:
          The scale, or 1.0 if the scaler is disabled.
        """
        if not self.enabled:
            return 1.0
        return float(self.scale_of(state))

    def scale(self, outputs: Any, state: Any) -> Any:
        """``outputs`` times the scale (torch's ``scaler.scale(outputs)``).

        Args:
          outputs: an array (the loss) or a pytree of them.
          state: as for :meth:`state_of`.

        Returns:
          Each array times the current scale, or ``outputs`` unchanged if the
          scaler is disabled (as torch's).
        """
        if not self.enabled:
            return outputs
        scale = self.scale_of(state)
        return jax.tree.map(lambda x: x * scale, outputs)

    def wrap(
        self, inner: optax.GradientTransformation
    ) -> optax.GradientTransformationExtraArgs:
        """``inner`` stepped through this scaler (see the class docstring).

        Args:
          inner: any optax transformation (a :mod:`jsgd.torch` optimizer, an
            ``optax.chain`` with clipping first, ``optax.adam``...). Its
            ``update`` gets the unscaled gradients, ``params`` and the extra
            arguments (a ReduceLROnPlateau scheduler's ``value``).

        Returns:
          An ``optax.GradientTransformationExtraArgs`` with state
          :class:`GradScalerState`.

        Raises:
          TypeError: if ``inner`` is not an optax transformation; in
            ``update``, for a state of another kind, and for integer or bool
            gradient leaves.
          ValueError: in ``update``, for float16 gradients (torch's
            "Attempting to unscale FP16 gradients.").
        """
        if not isinstance(inner, optax.GradientTransformation):
            raise TypeError(
                f"jsgd.{_OWNER}.wrap takes an optax transformation. Received: {inner!r}"
            )
        inner = optax.with_extra_args_support(inner)
        enabled = self.enabled
        init_scale = np.float32(self.init_scale if enabled else 1.0)
        factors = (self.growth_factor, self.backoff_factor, self.growth_interval)

        def init_fn(params: optax.Params) -> GradScalerState:
            return GradScalerState(
                scale=jnp.asarray(init_scale, jnp.float32),
                growth_tracker=_tree.zero_count(),
                found_inf=jnp.zeros([], bool),
                inner_state=inner.init(params),
            )

        def update_fn(updates, state, params=None, **extra_args):
            _tree.check_state(state, GradScalerState, _OWNER)
            if not enabled:
                new_updates, inner_state = inner.update(
                    updates, state.inner_state, params, **extra_args
                )
                return new_updates, state._replace(inner_state=inner_state)
            _refuse_float16(updates)
            big, small = _multiplier(state.scale)
            unscaled = _tree.map_updates(lambda g: _unscaled(g, big, small), updates)
            found_inf = jnp.logical_not(_tree.all_finite(updates))
            new_updates, inner_state = inner.update(
                unscaled, state.inner_state, params, **extra_args
            )
            new_updates = _tree.zeroed_where(found_inf, new_updates)
            inner_state = _skipped_state(found_inf, inner_state, state.inner_state)
            scale, growth_tracker = _update_scale(
                state.scale, state.growth_tracker, found_inf, *factors
            )
            return new_updates, GradScalerState(
                scale=scale,
                growth_tracker=growth_tracker,
                found_inf=found_inf,
                inner_state=inner_state,
            )

        return optax.GradientTransformationExtraArgs(init_fn, update_fn)
