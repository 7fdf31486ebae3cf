"""Sparse rows (IndexedSlices) through Keras's RMSprop and Adam.

``lazy=False`` must be Keras 3 on the dense gradient: the real
``keras.optimizers.RMSprop`` / ``Adam`` (JAX backend) are the reference.
``lazy=True`` is the legacy tf.keras sparse rule: RMSprop's
``SparseApplyRMSProp`` / ``SparseApplyCenteredRMSProp`` kernels (what its
``_resource_apply_sparse`` calls; momentum 0 is the same kernel at momentum
0) and, for Adam, the lazy-Adam rule (touched rows' moments only, bias
correction from the global step). TensorFlow is not installed here, so the
kernels' documented formulas, in float64 NumPy, are the reference.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsgd
from tests import _oracle

keras = pytest.importorskip("keras")

N, D, K, STEPS = 12, 3, 6, 20
# A changing learning rate: tells a learning rate inside the momentum from
# one outside it.
LRS = [0.01, 0.005, 0.02, 0.001, 0.008] * 4


def jsgd_schedule():
    return jsgd.schedules.PiecewiseConstantDecay(list(range(STEPS - 1)), LRS)


def keras_schedule():
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        list(range(STEPS - 1)), LRS
    )


def random_slices(seed, steps=STEPS):
    """Steps of (values, indices) with duplicates and a padding row."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        indices = rng.integers(0, N // 2, size=K)  # few rows: many duplicates
        indices[-1] = N  # padding: must change nothing
        values = rng.normal(size=(K, D)).astype(np.float32)
        out.append((values, indices.astype(np.int32)))
    return out


def initial_table(seed=0):
    return np.random.default_rng(seed).normal(size=(N, D)).astype(np.float32)


def run_jsgd(tx, w, grads, *, sparse=True, jit=True):
    """The table after each step, and the final state."""
    params = {"table": jnp.asarray(w)}
    state = tx.init(params)

    def step(params, state, values, indices):
        g = jsgd.IndexedSlices(values, indices, (N, D))
        updates, state = tx.update(
            {"table": g if sparse else g.to_dense()}, state, params
        )
        return jsgd.apply_updates(params, updates), state

    if jit:
        step = jax.jit(step)
    trajectory = []
    for values, indices in grads:
        params, state = step(params, state, jnp.asarray(values), jnp.asarray(indices))
        trajectory.append(np.asarray(params["table"]))
    return trajectory, state


def run_keras(name, config, w, grads):
    """Keras 3's table after each step, on the dense gradients (eager apply)."""
    reference = getattr(keras.optimizers, name)(**config)
    variable = keras.Variable(w)
    trajectory = []
    for values, indices in grads:
        dense = jsgd.IndexedSlices(
            jnp.asarray(values), jnp.asarray(indices), (N, D)
        ).to_dense()
        reference.apply([dense], [variable])
        trajectory.append(np.asarray(variable.value))
    return trajectory


# --- float64 references of the legacy kernels -----------------------------------


def _dedupe(values, indices, clipnorm=None):
    """Padding dropped, the values clipped (tf.clip_by_norm), duplicates summed."""
    values = np.asarray(values, np.float64)
    valid = (indices >= 0) & (indices < N)
    values, indices = values[valid], indices[valid]
    if clipnorm is not None:
        norm = np.sqrt(np.sum(values**2))
        values = values * clipnorm / max(norm, clipnorm)
    unique, inverse = np.unique(indices, return_inverse=True)
    summed = np.zeros((len(unique), D))
    np.add.at(summed, inverse, values)
    return unique, summed


def legacy_sparse_rmsprop(
    w, grads, lrs, rho, momentum, epsilon, centered, clipnorm=None, weight_decay=None
):
    """SparseApply(Centered)RMSProp on the touched rows, in float64."""
    w = np.array(w, np.float64)
    ms, mg, mom = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    trajectory = []
    for (values, indices), lr in zip(grads, lrs, strict=True):
        for i, g in zip(*_dedupe(values, indices, clipnorm), strict=True):
            if weight_decay is not None:  # Keras 3: w -= lr * wd * w first
                w[i] -= lr * weight_decay * w[i]
            ms[i] = rho * ms[i] + (1 - rho) * g**2
            if centered:
                mg[i] = rho * mg[i] + (1 - rho) * g
                denominator = ms[i] - mg[i] ** 2 + epsilon
            else:
                denominator = ms[i] + epsilon
            mom[i] = momentum * mom[i] + lr * g / np.sqrt(denominator)
            w[i] -= mom[i]
        trajectory.append(w.copy())
    return trajectory, dict(ms=ms, mg=mg, mom=mom)


def lazy_adam(
    w, grads, lrs, beta_1, beta_2, epsilon, amsgrad, clipnorm=None, weight_decay=None
):
    """The lazy-Adam rule (Keras's epsilon), in float64."""
    w = np.array(w, np.float64)
    m, v, v_hat = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    trajectory = []
    for t, ((values, indices), lr) in enumerate(zip(grads, lrs, strict=True), 1):
        correction = np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, g in zip(*_dedupe(values, indices, clipnorm), strict=True):
            if weight_decay is not None:
                w[i] -= lr * weight_decay * w[i]
            m[i] = m[i] + (g - m[i]) * (1 - beta_1)
            v[i] = v[i] + (g**2 - v[i]) * (1 - beta_2)
            root = v[i]
            if amsgrad:
                v_hat[i] = np.maximum(v_hat[i], v[i])
                root = v_hat[i]
            w[i] -= lr * correction * m[i] / (np.sqrt(root) + epsilon)
        trajectory.append(w.copy())
    return trajectory, dict(m=m, v=v, v_hat=v_hat)


OWN = {
    "RMSprop": [
        dict(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
        dict(rho=0.8, momentum=0.0, epsilon=1e-7, centered=True),
        dict(rho=0.9, momentum=0.9, epsilon=1e-7, centered=False),
        dict(rho=0.7, momentum=0.5, epsilon=1e-3, centered=True),
    ],
    "Adam": [
        dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
        dict(beta_1=0.8, beta_2=0.99, epsilon=1e-3, amsgrad=True),
    ],
}
OWN_CASES = [
    pytest.param(name, own, id=f"{name}-{'-'.join(f'{k}={v}' for k, v in own.items())}")
    for name, cases in OWN.items()
    for own in cases
]
# Keras's eager steps are slow: its comparisons run these by default, the
# others under ``-m oracle``.
KERAS_DEFAULT = {("RMSprop", 3), ("Adam", 1)}
KERAS_CASES = [
    pytest.param(
        name,
        own,
        id=f"{name}-{'-'.join(f'{k}={v}' for k, v in own.items())}",
        marks=() if (name, i) in KERAS_DEFAULT else _oracle.oracle,
    )
    for name, cases in OWN.items()
    for i, own in enumerate(cases)
]
KEYWORDS = [
    {},
    dict(clipnorm=0.7),
    dict(weight_decay=0.05),
]


def reference(name, own, w, grads, **keywords):
    rule = legacy_sparse_rmsprop if name == "RMSprop" else lazy_adam
    return rule(w, grads, LRS, **own, **keywords)


# --- lazy=False: Keras 3 -------------------------------------------------------


def assert_keras_equal(got, want, message):
    # Keras computes ``(lr * g) / sqrt(...)`` (RMSprop) and ``m * (lr * c) /
    # (sqrt(v) + eps)`` (Adam), jsgd's chain the scaler's quotient, then the
    # learning rate: the same rule, one float32 rounding apart per step.
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=message)


@pytest.mark.parametrize("keywords", [dict(weight_decay=0.05)], ids=str)
@pytest.mark.parametrize(("name", "own"), KERAS_CASES)
def test_lazy_false_is_keras_on_the_dense_gradient(name, own, keywords):
    w0, grads = initial_table(), random_slices(1)
    expected = run_keras(
        name, dict(learning_rate=keras_schedule(), **own, **keywords), w0, grads
    )
    opt = getattr(jsgd, name)(learning_rate=jsgd_schedule(), **own, **keywords)
    dense, _ = run_jsgd(opt, w0, grads, sparse=False)
    sparse, _ = run_jsgd(opt.replace(lazy=False), w0, grads)
    for step, (got, dense_step, want) in enumerate(
        zip(sparse, dense, expected, strict=True)
    ):
        # lazy=False is the dense jsgd step bit for bit, and Keras 3's.
        np.testing.assert_array_equal(got, dense_step, err_msg=f"step {step}")
        assert_keras_equal(got, want, f"step {step}")


@pytest.mark.parametrize(
    "name", ["RMSprop", pytest.param("Adam", marks=_oracle.oracle)]
)
def test_lazy_false_clipnorm_is_keras_without_duplicates(name):
    # The clips see the values (tf.clip_by_norm on IndexedSlices): without
    # duplicates their norm is the dense gradient's, which Keras 3 clips here.
    rng = np.random.default_rng(6)
    grads = [
        (
            rng.normal(size=(K, D)).astype(np.float32),
            np.r_[rng.choice(N, K - 1, replace=False), N].astype(np.int32),
        )
        for _ in range(STEPS)
    ]
    w0, own = initial_table(), OWN[name][-1]
    expected = run_keras(
        name, dict(learning_rate=keras_schedule(), **own, clipnorm=0.7), w0, grads
    )
    opt = getattr(jsgd, name)(jsgd_schedule(), **own, clipnorm=0.7, lazy=False)
    got, _ = run_jsgd(opt, w0, grads)
    for step, (w, want) in enumerate(zip(got, expected, strict=True)):
        assert_keras_equal(w, want, f"step {step}")


# --- lazy=True: the legacy kernels ------------------------------------------------


LEGACY_MODES = [({}, False), *((k, True) for k in KEYWORDS)]
# Every configuration and every mode (eager, and each keyword set under jit)
# by default: a covering sample of the grid; the rest under ``-m oracle``.
_LEGACY_DEFAULT = _oracle.covering_sample(
    len(OWN_CASES) * len(LEGACY_MODES),
    lambda i: [("own", i // len(LEGACY_MODES)), ("mode", i % len(LEGACY_MODES))],
    default=len(OWN_CASES),
    salt=17,
)
LEGACY_CASES = [
    pytest.param(
        *case.values,
        keywords,
        jit,
        id=f"{case.id}-{keywords}-{jit}",
        marks=() if oi * len(LEGACY_MODES) + mi in _LEGACY_DEFAULT else _oracle.oracle,
    )
    for oi, case in enumerate(OWN_CASES)
    for mi, (keywords, jit) in enumerate(LEGACY_MODES)
]


@pytest.mark.parametrize(("name", "own", "keywords", "jit"), LEGACY_CASES)
def test_lazy_true_is_the_legacy_sparse_kernel(name, own, keywords, jit):
    w0, grads = initial_table(), random_slices(2)
    expected, _ = reference(name, own, w0, grads, **keywords)
    factory = getattr(jsgd, name.lower())
    tx = factory(jsgd_schedule(), **own, **keywords)  # lazy=True is the default
    got, _ = run_jsgd(tx, w0, grads, jit=jit)
    for step, (w, want) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(
            w, want, rtol=1e-5, atol=1e-6, err_msg=f"step {step}"
        )


def _states_of(state, kind):
    return [
        s
        for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, kind))
        if isinstance(s, kind)
    ]


def test_untouched_rows_keep_stale_statistics_and_do_not_move():
    w0 = initial_table()
    first = [(np.ones((2, D), np.float32), np.array([0, 1], np.int32))]
    later = [(np.ones((2, D), np.float32), np.array([2, 3], np.int32))] * 3
    for tx, kind in [
        (jsgd.rmsprop(0.01, momentum=0.9, centered=True), jsgd.RMSpropState),
        (jsgd.adam(0.01), jsgd.AdamState),
    ]:
        trajectory, state = run_jsgd(tx, w0, first + later)
        after_first = trajectory[0]
        np.testing.assert_array_equal(trajectory[-1][:2], after_first[:2])
        np.testing.assert_array_equal(trajectory[-1][4:], w0[4:])
        (scaler,) = _states_of(state, kind)
        stale = scaler.velocity["table"][:2]
        one_step, _ = run_jsgd(tx, w0, first)
        assert np.all(np.asarray(stale) > 0)
        np.testing.assert_array_equal(one_step[0], after_first)


def test_rmsprop_lazy_state_is_the_kernels():
    w0, grads = initial_table(), random_slices(3)
    own = dict(rho=0.8, momentum=0.9, epsilon=1e-7, centered=True)
    _, expected = legacy_sparse_rmsprop(w0, grads, LRS, **own)
    _, state = run_jsgd(jsgd.rmsprop(jsgd_schedule(), **own), w0, grads)
    (scaler,) = _states_of(state, jsgd.RMSpropState)
    (momentum,) = _states_of(state, jsgd.MomentumState)
    np.testing.assert_allclose(scaler.velocity["table"], expected["ms"], rtol=1e-5)
    np.testing.assert_allclose(
        scaler.average_gradient["table"], expected["mg"], rtol=1e-5, atol=1e-7
    )
    # jsgd's velocity holds the update (``-mom``): the learning rate inside.
    np.testing.assert_allclose(
        momentum.velocity["table"], -expected["mom"], rtol=1e-5, atol=1e-7
    )


# The configurations themselves are covered above: by default one of each
# optimizer (those of KERAS_DEFAULT), the others under ``-m oracle``.
@pytest.mark.parametrize(("name", "own"), KERAS_CASES)
def test_lazy_true_with_ema_averages_the_lazy_trajectory(name, own):
    w0, grads = initial_table(), random_slices(4)
    expected, _ = reference(name, own, w0, grads)
    ema_momentum = 0.9
    tx = getattr(jsgd, name.lower())(
        jsgd_schedule(), **own, use_ema=True, ema_momentum=ema_momentum
    )
    got, state = run_jsgd(tx, w0, grads)
    np.testing.assert_allclose(got[-1], expected[-1], rtol=1e-5, atol=1e-6)
    # Keras's EMA: the first step copies the parameters, then
    # ``a = m * a + (1 - m) * w``.
    average = expected[0]
    for w in expected[1:]:
        average = ema_momentum * average + (1 - ema_momentum) * w
    np.testing.assert_allclose(
        jsgd.averaged_params(state)["table"], average, rtol=1e-5, atol=1e-6
    )


# Keras's accumulated steps are the slowest of its runs: by default Adam's
# configuration of KERAS_DEFAULT only; RMSprop's runs under ``-m oracle`` with
# the others (it keeps its default-run comparisons with Keras above).
ACCUMULATION_CASES = [
    pytest.param(
        name,
        own,
        id=f"{name}-{'-'.join(f'{k}={v}' for k, v in own.items())}",
        marks=() if (name, i) == ("Adam", 1) else _oracle.oracle,
    )
    for name, cases in OWN.items()
    for i, own in enumerate(cases)
]


@pytest.mark.parametrize(("name", "own"), ACCUMULATION_CASES)
def test_gradient_accumulation_steps_the_dense_mean_as_keras(name, own):
    # The accumulator is dense: each real step sees the dense mean, so
    # lazy=True and lazy=False both give Keras's accumulated step.
    w0, grads = initial_table(), random_slices(5)
    expected = run_keras(
        name,
        dict(learning_rate=0.01, **own, gradient_accumulation_steps=2),
        w0,
        grads,
    )
    for lazy in (True, False):
        tx = getattr(jsgd, name.lower())(
            0.01, **own, gradient_accumulation_steps=2, lazy=lazy
        )
        got, _ = run_jsgd(tx, w0, grads)
        for step, (w, want) in enumerate(zip(got, expected, strict=True)):
            # Keras divides the sum by the steps in another order of
            # operations (float32 rounding, not the rule).
            np.testing.assert_allclose(
                w, want, rtol=1e-6, atol=1e-7, err_msg=f"lazy={lazy} step {step}"
            )


def test_lazy_must_be_a_bool_and_round_trips():
    for cls in (jsgd.RMSprop, jsgd.Adam):
        with pytest.raises(TypeError, match=r"^`lazy` must be a bool"):
            cls(lazy=1)
        opt = cls(lazy=False)
        assert opt.get_config()["lazy"] is False
        assert cls.from_config(opt.get_config()) == opt
        assert "lazy" not in cls().get_config()


# --- a longer sweep (-m oracle) ------------------------------------------------


def _sweep_case(seed):
    rng = np.random.default_rng([seed, 16])
    name = ["RMSprop", "Adam"][seed % 2]
    if name == "RMSprop":
        own = dict(
            rho=float(rng.uniform(0.5, 0.99)),
            momentum=float(rng.choice([0.0, rng.uniform(0, 0.95)])),
            epsilon=float(rng.choice([1e-7, 1e-3])),
            centered=bool(rng.integers(2)),
        )
    else:
        own = dict(
            beta_1=float(rng.uniform(0.5, 0.95)),
            beta_2=float(rng.uniform(0.9, 0.9999)),
            epsilon=float(rng.choice([1e-7, 1e-3])),
            amsgrad=bool(rng.integers(2)),
        )
    keywords = {}
    if rng.integers(2):
        keywords["clipnorm"] = float(rng.uniform(0.1, 2.0))
    if rng.integers(2):
        keywords["weight_decay"] = float(rng.uniform(0.0, 0.1))
    return name, own, keywords


@pytest.mark.parametrize("seed", _oracle.seeds(60, default=1, salt=16))
def test_sweep_lazy_true_and_false(seed):
    name, own, keywords = _sweep_case(seed)
    w0, grads = initial_table(seed), random_slices(100 + seed)
    expected, _ = reference(name, own, w0, grads, **keywords)
    tx = getattr(jsgd, name.lower())(jsgd_schedule(), **own, **keywords)
    got, _ = run_jsgd(tx, w0, grads, jit=True)
    np.testing.assert_allclose(got[-1], expected[-1], rtol=1e-5, atol=1e-6)
    keywords.pop("clipnorm", None)  # Keras clips the dense gradient's norm
    keras_expected = run_keras(
        name, dict(learning_rate=keras_schedule(), **own, **keywords), w0, grads
    )
    tx = getattr(jsgd, name.lower())(jsgd_schedule(), **own, **keywords, lazy=False)
    got, _ = run_jsgd(tx, w0, grads)
    assert_keras_equal(got[-1], keras_expected[-1], f"seed {seed}")
