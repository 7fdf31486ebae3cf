"""Fuzzing: random trees, shapes, dtypes and hyperparameters (1,000 examples).

Each example either raises the documented error for an out-of-range
hyperparameter (naming it) or runs two ``jsgd.sgd`` steps that agree with a
float64 NumPy reference of the rule. The default run draws 100 examples, the
``oracle``-marked run the full 1,000.
"""

import math

import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

import jsgd
from tests import _oracle

FUZZ_EXAMPLES = 1000
DTYPES = {"float32": (jnp.float32, 2e-5), "bfloat16": (jnp.bfloat16, 3e-2)}
shapes = st.sampled_from([(), (0,), (1,), (3,), (2, 3), (4, 0), (2, 1, 2)])


BROKEN = [
    ("learning_rate", -0.01),
    ("learning_rate", float("inf")),
    ("momentum", 1.2),
    ("momentum", -0.2),
    ("clipvalue", 0.0),
    ("clipnorm", -1.0),
    ("global_clipnorm", 0.0),
    ("decay", -0.1),
    ("weight_decay", -0.01),
    ("dampening", 1.5),
]


@st.composite
def problems(draw):
    n = draw(st.integers(1, 3))
    tree_shapes = [draw(shapes) for _ in range(n)]
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    params = [rng.normal(size=s) for s in tree_shapes]
    grads = [[rng.normal(size=s) * scale for s in tree_shapes] for _ in range(2)]
    maybe = lambda low, high: draw(  # noqa: E731
        st.none() | st.floats(low, high, allow_nan=False, allow_infinity=False)
    )
    hyper = dict(
        learning_rate=draw(st.floats(0.0, 0.5)),
        momentum=draw(st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 1.0)),
        nesterov=draw(st.booleans()),
        clipvalue=maybe(0.01, 3.0),
        clipnorm=maybe(0.01, 3.0),
        global_clipnorm=None,
        decay=draw(st.sampled_from([0.0, 0.1])),
        weight_decay=maybe(0.0, 0.2),
        dampening=draw(st.sampled_from([0.0, 0.3, 1.0])),
        lr_in_velocity=draw(st.booleans()),
    )
    if hyper["clipnorm"] is None:
        hyper["global_clipnorm"] = maybe(0.01, 3.0)
    if draw(st.integers(0, 4)) == 0:  # one example in five breaks one argument
        name, bad = draw(st.sampled_from(BROKEN))
        hyper[name] = bad
    return params, grads, dtype, hyper


def invalid_arguments(h):
    """The arguments the documented validation may name (any one of them)."""
    bad = set()
    if not (math.isfinite(h["learning_rate"]) and h["learning_rate"] >= 0):
        bad.add("learning_rate")
    if not 0 <= h["momentum"] <= 1:
        bad.add("momentum")
    for name in ("clipvalue", "clipnorm", "global_clipnorm"):
        if h[name] is not None and not h[name] > 0:
            bad.add(name)
    if h["decay"] < 0:
        bad.add("decay")
    if h["weight_decay"] is not None and h["weight_decay"] < 0:
        bad.add("weight_decay")
    if not 0 <= h["dampening"] <= 1:
        bad.add("dampening")
    return bad


def reference(params, grads, h):
    """Two steps of the documented rule in float64."""
    w = [np.array(p, np.float64) for p in params]
    v = [np.zeros_like(x) for x in w]
    m, d = h["momentum"], h["dampening"]
    for t, g in enumerate(grads):
        g = [np.array(x, np.float64) for x in g]
        if h["clipvalue"] is not None:
            g = [np.clip(x, -h["clipvalue"], h["clipvalue"]) for x in g]
        if h["clipnorm"] is not None:
            c = h["clipnorm"]
            g = [x * c / max(np.linalg.norm(x), c) for x in g]
        if h["global_clipnorm"] is not None:
            c = h["global_clipnorm"]
            norm = math.sqrt(sum(float(np.sum(x * x)) for x in g))
            g = [x * c / max(norm, c) for x in g]
        lr = h["learning_rate"] / (1 + h["decay"] * t)
        # jsgd reads the momentum in float32: one that rounds to 0 is plain SGD.
        gain = 1.0 if t == 0 or np.float32(m) == 0 else 1 - d
        old = [x.copy() for x in w]
        for i, x in enumerate(g):
            if m == 0:
                step = -lr * x
            elif h["lr_in_velocity"]:
                v[i] = m * v[i] + gain * (-lr * x)
                step = m * v[i] - lr * x if h["nesterov"] else v[i]
            else:
                v[i] = m * v[i] + gain * x
                step = -lr * (x + m * v[i] if h["nesterov"] else v[i])
            w[i] = w[i] + step
            if h["weight_decay"] is not None:
                w[i] = w[i] - lr * h["weight_decay"] * old[i]
    return w


# The default run draws 100 examples; the full 1,000 run under -m oracle.
@_oracle.hypothesis_twins(
    FUZZ_EXAMPLES,
    given(problems()),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_sgd_never_crashes_and_agrees_with_numpy(problem):
    params, grads, dtype_name, hyper = problem
    dtype, rtol = DTYPES[dtype_name]
    invalid = invalid_arguments(hyper)
    if invalid:
        try:
            jsgd.sgd(**hyper)
        except ValueError as error:
            named = str(error).split("`")[1]
            assert named in invalid, (str(error), invalid)
            return
        raise AssertionError(f"{invalid} was accepted: {hyper}")
    tx = jsgd.sgd(**hyper)
    w = [jnp.asarray(p, dtype) for p in params]
    state = tx.init(w)
    for g in grads:
        updates, state = tx.update([jnp.asarray(x, dtype) for x in g], state, w)
        assert [u.dtype for u in updates] == [dtype] * len(w)
        w = [(p + u).astype(dtype) for p, u in zip(w, updates, strict=True)]
    expected = reference(
        [np.asarray(jnp.asarray(p, dtype), np.float64) for p in params],
        [[np.asarray(jnp.asarray(x, dtype), np.float64) for x in g] for g in grads],
        hyper,
    )
    for got, want in zip(w, expected, strict=True):
        scale = 1 + float(np.max(np.abs(want), initial=0.0))
        np.testing.assert_allclose(
            np.asarray(got, np.float64), want, rtol=rtol, atol=rtol * scale
        )


def test_a_subnormal_momentum_is_not_zero():
    # Found by the fuzz test: XLA:CPU flushes subnormals to zero, so comparing
    # momentum=1e-45 with 0 there made torch's dampening rule think it was plain
    # SGD. A concrete momentum is now read exactly (as float32, like NumPy).
    hyper = dict(learning_rate=0.5, momentum=1.401298464324817e-45, dampening=0.3)
    tx = jsgd.sgd(**hyper, lr_in_velocity=False)
    w = [jnp.asarray(0.125, jnp.float32)]
    state = tx.init(w)
    for g in (-0.25, 0.625):
        updates, state = tx.update([jnp.asarray(g, jnp.float32)], state, w)
        w = [p + u for p, u in zip(w, updates, strict=True)]
    # Step 1: b = g = -0.25 (undamped); step 2: b = m*b + 0.7 * 0.625 = 0.4375.
    expected = 0.125 + 0.5 * 0.25 - 0.5 * 0.4375
    np.testing.assert_allclose(float(w[0]), expected, rtol=1e-6)
