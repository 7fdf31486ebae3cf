"""Property tests: every public transform against a float64 NumPy reference.

Each reference below is written from the math in jsgd's docstrings, in plain
float64 NumPy, and shares no code with jsgd. Hypothesis draws pytrees of 1-3
float32 leaves of small shapes (0-d leaves and exact zeros included, |x| <= 10)
and random hyperparameters; the tests check the updates' values, their dtype
and tree structure, and the transforms' states (structure, step counts and
velocities). The costliest draw a tenth of their examples in the default run
and all of them under ``-m oracle`` (their ``_long`` twins, tests/_oracle.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jsgd
from tests import _oracle

RTOL = 2e-5
ATOL = 1e-6
F32_EPS = float(np.finfo(np.float32).eps)

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

_FLOATS = st.floats(-10.0, 10.0, width=32, allow_subnormal=False)
_SHAPES = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)
_KINDS = ("dict", "tuple", "nested")


def _mix(common: st.SearchStrategy, *special):
    """Mostly ``common``; each value in ``special`` about one draw in ten."""
    return st.integers(0, 9).flatmap(
        lambda k: st.just(special[k]) if k < len(special) else common
    )


# Hyperparameters in (0, 1), all exact in float32: round fractions and
# arbitrary float32 mantissas.
_FRACTIONS = st.one_of(
    st.integers(1, 1023).map(lambda k: k / 1024),
    st.floats(2.0**-10, 1.0, width=32, exclude_max=True),
)
_UNIT = _mix(_FRACTIONS, 0.0, 1.0)  # momentum, dampening
_LEARNING_RATES = _mix(_FRACTIONS, 0.0)
_COEFFICIENTS = _mix(_FRACTIONS, 0.0)  # weight decay, decay
_THRESHOLDS = st.one_of(
    st.integers(1, 320).map(lambda k: k / 16),
    st.floats(2.0**-4, 20.0, width=32),
)
# Leaf elements: mostly nonzero, with exact zeros about one in ten.
_ELEMENTS = _mix(_FLOATS, 0.0)


def _build(leaves: Sequence[np.ndarray], kind: str):
    if kind == "dict":
        return {name: leaf for name, leaf in zip("abc", leaves, strict=False)}
    if kind == "tuple":
        return tuple(leaves)
    return {"w": leaves[0], "sub": tuple(leaves[1:])}


@st.composite
def tree_sequences(draw, length: int):
    """``length`` float32 NumPy pytrees sharing one structure and leaf shapes."""
    shapes = draw(st.lists(_SHAPES, min_size=1, max_size=3))
    kind = draw(st.sampled_from(_KINDS))
    return [
        _build(
            [
                draw(hnp.arrays(np.float32, s, elements=_ELEMENTS, fill=st.nothing()))
                for s in shapes
            ],
            kind,
        )
        for _ in range(length)
    ]


def trees() -> st.SearchStrategy:
    return tree_sequences(1).map(lambda seq: seq[0])


def sequences(min_len: int, max_len: int) -> st.SearchStrategy:
    return st.integers(min_len, max_len).flatmap(tree_sequences)


@st.composite
def scheduled_sequences(draw, min_len: int, max_len: int, extra: int = 0):
    """Per-step learning rates, then as many trees (plus ``extra`` more)."""
    steps = draw(st.integers(min_len, max_len))
    rates = draw(st.lists(_LEARNING_RATES, min_size=steps, max_size=steps))
    return rates, draw(tree_sequences(steps + extra))


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _jax(tree):
    return jax.tree.map(jnp.asarray, tree)


def _f64(tree) -> list[np.ndarray]:
    """The leaves of a tree as float64 NumPy arrays (the reference's input)."""
    return [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(tree)]


def _scale_of(*groups: Sequence[np.ndarray]) -> float:
    """The largest magnitude among some float64 leaves (for absolute tolerances)."""
    return max(
        (float(np.max(np.abs(x), initial=0.0)) for g in groups for x in g),
        default=0.0,
    )


def assert_tree_close(
    actual, like, expected: Sequence[np.ndarray], *, scale: float = 0.0
) -> None:
    """``actual`` has ``like``'s structure, float32 leaves and ``expected``'s values.

    ``scale`` is the size of the intermediate quantities the result was
    computed from: float32 rounding of those is allowed on top of ``ATOL``, so
    a result that cancels to near zero is not held to a relative tolerance.
    """
    assert jax.tree.structure(actual) == jax.tree.structure(like)
    leaves = jax.tree.leaves(actual)
    assert len(leaves) == len(expected)
    for got, want in zip(leaves, expected, strict=True):
        assert got.dtype == jnp.float32
        assert got.shape == want.shape
        np.testing.assert_allclose(
            np.asarray(got, np.float64),
            want,
            rtol=RTOL,
            atol=ATOL + 4 * F32_EPS * scale,
        )


def _schedule(rates: Sequence[float]) -> Callable[[jax.Array], jax.Array]:
    table = jnp.asarray(rates, jnp.float32)
    return lambda count: table[count]


# ---------------------------------------------------------------------------
# NumPy references (float64, on lists of leaves)
# ---------------------------------------------------------------------------


def ref_clip_by_value(gs, c):
    return [np.clip(g, -c, c) for g in gs]


def ref_clip_by_norm(gs, c):
    out = []
    for g in gs:
        norm = np.sqrt(np.sum(g * g))
        out.append(g * (c / max(norm, c)))
    return out


def ref_global_norm(gs):
    return float(np.sqrt(sum(float(np.sum(g * g)) for g in gs)))


def ref_clip_by_global_norm(gs, c):
    norm = ref_global_norm(gs)
    return [g * (c / max(norm, c)) for g in gs]


def ref_momentum(us_seq, m, d, nesterov):
    """Outputs per step and the final velocity of the momentum trace."""
    outputs, v = [], None
    for t, us in enumerate(us_seq):
        if t == 0:
            v = [u.copy() for u in us]
        else:
            v = [
                m * vi + (1 - d if m else 1.0) * u for vi, u in zip(v, us, strict=True)
            ]
        outputs.append(
            [m * vi + u for vi, u in zip(v, us, strict=True)] if nesterov else list(v)
        )
    return outputs, v


def ref_sgd(w0, grads_seq, cfg):
    """The full jsgd.sgd rule; returns (updates per step, final w, velocity, scale)."""
    m, d = cfg["momentum"], cfg["dampening"]
    w = [x.copy() for x in w0]
    v = [np.zeros_like(x) for x in w0]
    updates, seen = [], [w0]
    for t, g in enumerate(grads_seq):
        if cfg["clipvalue"] is not None:
            g = ref_clip_by_value(g, cfg["clipvalue"])
        if cfg["clipnorm"] is not None:
            g = ref_clip_by_norm(g, cfg["clipnorm"])
        if cfg["global_clipnorm"] is not None:
            g = ref_clip_by_global_norm(g, cfg["global_clipnorm"])
        lr_t = cfg["rates"][t] / (1 + cfg["decay"] * t)
        if m == 0:  # Python 0: plain SGD, no velocity.
            step = [-lr_t * gi for gi in g]
        elif cfg["lr_in_velocity"]:  # Keras: the learning rate is in v.
            u = [-lr_t * gi for gi in g]
            if t == 0:
                v = [ui.copy() for ui in u]
            else:
                v = [
                    m * vi + (1 - d if m else 1.0) * ui
                    for vi, ui in zip(v, u, strict=True)
                ]
            if cfg["nesterov"]:
                step = [m * vi + ui for vi, ui in zip(v, u, strict=True)]
            else:
                step = [vi.copy() for vi in v]
        else:  # optax / torch: b = m*b + (1-d)*g, w -= lr_t * b.
            if t == 0:
                v = [gi.copy() for gi in g]
            else:
                v = [
                    m * bi + (1 - d if m else 1.0) * gi
                    for bi, gi in zip(v, g, strict=True)
                ]
            if cfg["nesterov"]:
                step = [-lr_t * (gi + m * bi) for gi, bi in zip(g, v, strict=True)]
            else:
                step = [-lr_t * bi for bi in v]
        if cfg["weight_decay"] is not None:
            step = [
                s - lr_t * cfg["weight_decay"] * wi
                for s, wi in zip(step, w, strict=True)
            ]
        seen += [g, v, step, [lr_t * gi for gi in g]]
        w = [wi + s for wi, s in zip(w, step, strict=True)]
        seen.append(w)
        updates.append(step)
    return updates, w, v, _scale_of(*seen)


# ---------------------------------------------------------------------------
# Clipping
# ---------------------------------------------------------------------------


@_oracle.hypothesis_twins(50, given(c=_THRESHOLDS, grads=trees()))
def test_clip_by_value_matches_np_clip(c, grads):
    tx = jsgd.clip_by_value(c)
    state = tx.init(_jax(grads))
    assert state == optax.EmptyState()
    out, new_state = tx.update(_jax(grads), state)
    assert new_state == optax.EmptyState()
    assert_tree_close(out, grads, ref_clip_by_value(_f64(grads), c))
    for leaf in jax.tree.leaves(out):
        assert float(jnp.max(jnp.abs(leaf), initial=0.0)) <= c


@_oracle.hypothesis_twins(50, given(c=_THRESHOLDS, grads=trees()))
def test_clip_by_norm_scales_each_leaf(c, grads):
    tx = jsgd.clip_by_norm(c)
    state = tx.init(_jax(grads))
    assert state == optax.EmptyState()
    out, _ = tx.update(_jax(grads), state)
    assert_tree_close(out, grads, ref_clip_by_norm(_f64(grads), c))
    for leaf in jax.tree.leaves(out):
        assert float(jnp.linalg.norm(leaf.ravel())) <= c * (1 + 1e-5)


@settings(max_examples=50, deadline=None)
@given(c=_THRESHOLDS, grads=trees())
def test_clip_by_global_norm_scales_all_leaves(c, grads):
    tx = jsgd.clip_by_global_norm(c)
    state = tx.init(_jax(grads))
    assert state == optax.EmptyState()
    out, _ = tx.update(_jax(grads), state)
    assert_tree_close(out, grads, ref_clip_by_global_norm(_f64(grads), c))
    assert float(jsgd.global_norm(out)) <= c * (1 + 1e-5)


@settings(max_examples=50, deadline=None)
@given(grads=trees())
def test_global_norm_is_l2_norm_of_all_leaves(grads):
    norm = jsgd.global_norm(_jax(grads))
    assert norm.shape == ()
    assert norm.dtype == jnp.float32
    np.testing.assert_allclose(
        float(norm), ref_global_norm(_f64(grads)), rtol=RTOL, atol=ATOL
    )


# ---------------------------------------------------------------------------
# Learning rate
# ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(lr=_LEARNING_RATES, grads=trees())
def test_scale_by_constant_learning_rate(lr, grads):
    tx = jsgd.scale_by_learning_rate(lr)
    state = tx.init(_jax(grads))
    assert state == optax.EmptyState()
    out, new_state = tx.update(_jax(grads), state)
    assert new_state == optax.EmptyState()
    assert_tree_close(out, grads, [-lr * g for g in _f64(grads)])


@_oracle.hypothesis_twins(40, given(problem=scheduled_sequences(1, 6)))
def test_scale_by_scheduled_learning_rate(problem):
    rates, seq = problem
    tx = jsgd.scale_by_learning_rate(_schedule(rates))
    state = tx.init(_jax(seq[0]))
    assert isinstance(state, jsgd.ScheduleState)
    assert state.count.dtype == jnp.int32
    assert int(state.count) == 0
    for t, grads in enumerate(seq):
        out, state = tx.update(_jax(grads), state)
        assert_tree_close(out, grads, [-rates[t] * g for g in _f64(grads)])
        assert int(state.count) == t + 1
        assert state.count.dtype == jnp.int32


# ---------------------------------------------------------------------------
# Momentum
# ---------------------------------------------------------------------------


def _check_momentum(tx, seq, m, d, nesterov):
    state = tx.init(_jax(seq[0]))
    assert isinstance(state, jsgd.MomentumState)
    assert state.count.dtype == jnp.int32
    assert int(state.count) == 0
    zeros = [np.zeros(np.shape(x)) for x in jax.tree.leaves(seq[0])]
    assert_tree_close(state.velocity, seq[0], zeros)

    us_seq = [_f64(u) for u in seq]
    outputs, velocity = ref_momentum(us_seq, m, d, nesterov)
    scale = _scale_of(*us_seq, *outputs)
    for t, updates in enumerate(seq):
        out, state = tx.update(_jax(updates), state)
        assert_tree_close(out, updates, outputs[t], scale=scale)
        assert int(state.count) == t + 1
    assert_tree_close(state.velocity, seq[0], velocity, scale=scale)


@_oracle.hypothesis_twins(
    60, given(m=_UNIT, d=_UNIT, nesterov=st.booleans(), seq=sequences(1, 6))
)
def test_momentum_trace(m, d, nesterov, seq):
    tx = jsgd.momentum_trace(m, nesterov=nesterov, dampening=d)
    _check_momentum(tx, seq, m, d, nesterov)


@settings(max_examples=40, deadline=None)
@given(m=_UNIT, d=_mix(_UNIT, None, None), seq=sequences(1, 6))
def test_nesterov_is_momentum_with_look_ahead(m, d, seq):
    tx = jsgd.nesterov_trace(m) if d is None else jsgd.nesterov_trace(m, dampening=d)
    _check_momentum(tx, seq, m, 0.0 if d is None else d, nesterov=True)


# ---------------------------------------------------------------------------
# Weight decay
# ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(wd=_COEFFICIENTS, pair=sequences(2, 2))
def test_add_decayed_weights(wd, pair):
    grads, params = pair
    tx = jsgd.add_decayed_weights(wd)
    state = tx.init(_jax(params))
    assert state == optax.EmptyState()
    out, new_state = tx.update(_jax(grads), state, _jax(params))
    assert new_state == optax.EmptyState()
    expected = [g + wd * w for g, w in zip(_f64(grads), _f64(params), strict=True)]
    assert_tree_close(out, grads, expected, scale=_scale_of(_f64(grads), expected))
    with pytest.raises(ValueError):
        tx.update(_jax(grads), state)


@settings(max_examples=50, deadline=None)
@given(wd=_COEFFICIENTS, lr=_LEARNING_RATES, pair=sequences(2, 2))
def test_decoupled_weight_decay_constant_lr(wd, lr, pair):
    updates, params = pair
    tx = jsgd.decoupled_weight_decay(wd, lr)
    state = tx.init(_jax(params))
    assert state == optax.EmptyState()
    out, new_state = tx.update(_jax(updates), state, _jax(params))
    assert new_state == optax.EmptyState()
    expected = [
        u - lr * wd * w for u, w in zip(_f64(updates), _f64(params), strict=True)
    ]
    assert_tree_close(out, updates, expected, scale=_scale_of(_f64(updates)))


@_oracle.hypothesis_twins(
    40, given(wd=_COEFFICIENTS, problem=scheduled_sequences(1, 6, extra=1))
)
def test_decoupled_weight_decay_scheduled_lr(wd, problem):
    rates, seq = problem
    params, steps = seq[0], seq[1:]
    tx = jsgd.decoupled_weight_decay(wd, _schedule(rates))
    state = tx.init(_jax(params))
    assert isinstance(state, jsgd.ScheduleState)
    assert int(state.count) == 0
    for t, updates in enumerate(steps):
        out, state = tx.update(_jax(updates), state, _jax(params))
        expected = [
            u - rates[t] * wd * w
            for u, w in zip(_f64(updates), _f64(params), strict=True)
        ]
        assert_tree_close(out, updates, expected, scale=_scale_of(_f64(updates)))
        assert int(state.count) == t + 1


# ---------------------------------------------------------------------------
# sgd end to end
# ---------------------------------------------------------------------------


@st.composite
def sgd_configs(draw, steps: int):
    clip_kind = draw(st.sampled_from(["none", "clipnorm", "global_clipnorm"]))
    constant_lr = draw(st.booleans())
    if constant_lr:
        rates = [draw(_LEARNING_RATES)] * steps
    else:
        rates = draw(st.lists(_LEARNING_RATES, min_size=steps, max_size=steps))
    return {
        "constant_lr": constant_lr,
        "rates": rates,
        "momentum": draw(_mix(_UNIT, 0.0)),
        "nesterov": draw(st.booleans()),
        "dampening": draw(_UNIT),
        "lr_in_velocity": draw(st.booleans()),
        "clipvalue": draw(_mix(_THRESHOLDS, *[None] * 5)),
        "clipnorm": draw(_THRESHOLDS) if clip_kind == "clipnorm" else None,
        "global_clipnorm": (
            draw(_THRESHOLDS) if clip_kind == "global_clipnorm" else None
        ),
        "decay": draw(_mix(_COEFFICIENTS, 0.0, 0.0)),
        "weight_decay": draw(_mix(_COEFFICIENTS, None, None)),
    }


@st.composite
def sgd_problems(draw):
    # The configuration is drawn first: Hypothesis then varies it as freely
    # as the (much longer) arrays drawn after it.
    steps = draw(st.integers(1, 6))
    cfg = draw(sgd_configs(steps))
    seq = draw(tree_sequences(steps + 1))
    return seq[0], seq[1:], cfg


def _expected_sgd_state_types(cfg) -> list[type]:
    scheduled = not cfg["constant_lr"] or cfg["decay"] != 0
    lr_state = jsgd.ScheduleState if scheduled else optax.EmptyState
    types: list[type] = [
        optax.EmptyState
        for key in ("clipvalue", "clipnorm", "global_clipnorm")
        if cfg[key] is not None
    ]
    if cfg["momentum"] == 0:
        types.append(lr_state)
    elif cfg["lr_in_velocity"]:
        types += [lr_state, jsgd.MomentumState]
    else:
        types += [jsgd.MomentumState, lr_state]
    if cfg["weight_decay"] is not None and cfg["weight_decay"] != 0:
        types.append(lr_state)
    if not scheduled and cfg["momentum"] == 0:
        types.append(jsgd.StepCountState)  # Keras's `iterations`
    return types


@_oracle.hypothesis_twins(60, given(problem=sgd_problems()))
def test_sgd_matches_reference_rule(problem):
    params0, grads_seq, cfg = problem
    learning_rate = cfg["rates"][0] if cfg["constant_lr"] else _schedule(cfg["rates"])
    tx = jsgd.sgd(
        learning_rate,
        cfg["momentum"],
        cfg["nesterov"],
        clipvalue=cfg["clipvalue"],
        clipnorm=cfg["clipnorm"],
        global_clipnorm=cfg["global_clipnorm"],
        decay=cfg["decay"],
        weight_decay=cfg["weight_decay"],
        dampening=cfg["dampening"],
        lr_in_velocity=cfg["lr_in_velocity"],
    )

    params = _jax(params0)
    state = tx.init(params)
    assert isinstance(state, tuple)
    assert [type(s) for s in state] == _expected_sgd_state_types(cfg)
    for s in state:
        if isinstance(s, (jsgd.ScheduleState, jsgd.MomentumState, jsgd.StepCountState)):
            assert int(s.count) == 0
        if isinstance(s, jsgd.MomentumState):
            zeros = [np.zeros(np.shape(x)) for x in jax.tree.leaves(params0)]
            assert_tree_close(s.velocity, params0, zeros)

    ref_updates, ref_w, ref_v, scale = ref_sgd(
        _f64(params0), [_f64(g) for g in grads_seq], cfg
    )
    for t, grads in enumerate(grads_seq):
        updates, state = tx.update(_jax(grads), state, params)
        assert_tree_close(updates, params0, ref_updates[t], scale=scale)
        params = optax.apply_updates(params, updates)

    assert_tree_close(params, params0, ref_w, scale=scale)
    for s in state:
        if isinstance(s, (jsgd.ScheduleState, jsgd.MomentumState, jsgd.StepCountState)):
            assert int(s.count) == len(grads_seq)
        if isinstance(s, jsgd.MomentumState):
            assert_tree_close(s.velocity, params0, ref_v, scale=scale)
