"""torch's gradient clipping (``clip_grad_norm_``, ``clip_grad_value_``) as optax.

Every number is torch's: computed live by the real torch when it is
importable (and checked against tests/golden/test_torch_clipping.npz), or read
from that file (JSGD_TORCH=golden). Outputs are compared at rtol 1e-6, which
for bfloat16 and float16 leaves means bit for bit: torch's roundings of the
per-leaf norms, the total norm and the coefficient are reproduced.
"""

import functools
import math
import re
import zlib

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest

import jsgd
from jsgd._transforms.torch_clipping import (
    ClipGradNormState,
    clip_grad_norm,
    clip_grad_value,
    get_total_norm,
)
from tests import _golden, _oracle

golden = _golden.Golden(__name__)

INF = math.inf
BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = {
    "float32": [np.float32],
    "bfloat16": [BF16],
    "float16": [np.float16],
    "complex64": [np.complex64],
    # torch stacks the per-leaf norms in their promoted dtype (float32 here)
    "mixed": [np.float32, BF16, np.float16, np.complex64, BF16],
}
SHAPES = [(), (7,), (3, 4), (0,), (2, 1, 5)]


# --- torch, and the problems ---------------------------------------------------


def to_torch(a):
    torch = _golden.torch
    a = np.asarray(a)
    if a.dtype == BF16:
        return torch.tensor(a.astype(np.float32)).to(torch.bfloat16)
    return torch.tensor(a)


def from_torch(t):
    torch = _golden.torch
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


def torch_params(grads):
    torch = _golden.torch
    params = []
    for g in grads:
        if g is None:
            params.append(torch.zeros(1, requires_grad=True))
        else:
            grad = to_torch(g)
            params.append(torch.zeros_like(grad, requires_grad=True))
            params[-1].grad = grad
    return params


def torch_clip_grad_norm(grads, max_norm, norm_type=2.0, **kwargs):
    """torch's clipped gradients (``"0"``, ``"1"``...) and returned ``"total"``."""
    params = torch_params(grads)
    total = _golden.torch.nn.utils.clip_grad_norm_(
        params, max_norm, norm_type, **kwargs
    )
    out = {
        str(i): from_torch(p.grad) for i, p in enumerate(params) if grads[i] is not None
    }
    return {"total": from_torch(total), **out}


def torch_clip_grad_value(grads, clip_value):
    params = torch_params(grads)
    _golden.torch.nn.utils.clip_grad_value_(params, clip_value)
    return {
        str(i): from_torch(p.grad) for i, p in enumerate(params) if grads[i] is not None
    }


def seed_of(*parts):
    return zlib.crc32(repr(parts).encode())


def random_leaves(seed, dtypes, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    leaves = []
    for i, shape in enumerate(shapes):
        dtype = np.dtype(dtypes[i % len(dtypes)])
        scale = 10 ** rng.uniform(-1, 1)
        values = rng.standard_normal(shape) * scale
        if dtype.kind == "c":
            values = values + 1j * rng.standard_normal(shape) * scale
        leaves.append(values.astype(dtype))
    return leaves


def reference_norm(leaves, p):
    """A float64 estimate of the total norm (to place max_norm around it)."""
    norms = []
    for g in leaves:
        g = np.asarray(g)
        wide = g.astype(np.complex128 if g.dtype.kind == "c" else np.float64)
        norms.append(np.linalg.norm(np.abs(wide).ravel(), p))
    return float(np.linalg.norm(np.array(norms), p))


def as_tree(leaves):
    return {
        f"g{i}": None if g is None else jnp.asarray(g) for i, g in enumerate(leaves)
    }


def apply(tx, tree, params=None):
    return tx.update(tree, tx.init(tree if params is None else params), params)


@functools.partial(jax.jit, static_argnames="norm_type")
def clip_norm(tree, max_norm, norm_type=2.0):
    """``clip_grad_norm(max_norm, norm_type)`` on ``tree``, jitted: one compile
    per tree and order (eager dispatch compiles each op, many times slower);
    test_jit_equals_eager_and_a_traced_max_norm_compiles_once checks it against
    the eager update."""
    return apply(clip_grad_norm(max_norm, norm_type), tree)


@functools.partial(jax.jit, static_argnames="norm_type")
def clip_norm_and_total(tree, max_norm, norm_type):
    """``clip_norm`` and ``get_total_norm``, in one compile."""
    return *clip_norm(tree, max_norm, norm_type), get_total_norm(tree, norm_type)


@jax.jit
def value_clip(tree, clip_value):
    return apply(clip_grad_value(clip_value), tree)


def assert_matches(ours, expected, dtype=None):
    ours = np.asarray(ours)
    if dtype is not None:
        assert ours.dtype == dtype, (ours.dtype, dtype)
    if ours.dtype in (BF16, np.float16):
        ours = ours.astype(np.float32)
    expected = np.asarray(expected)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected.astype(ours.dtype), rtol=1e-6, atol=0)


def assert_tree_matches(tree, expected, leaves):
    for i, g in enumerate(leaves):
        if g is None:
            assert tree[f"g{i}"] is None
        else:
            assert_matches(tree[f"g{i}"], expected[str(i)], g.dtype)


# --- clip_grad_norm against torch ------------------------------------------------


ORDERS = [1.0, 2.0, 3.5, INF]
MATRIX = [(kind, norm_type) for kind in DTYPES for norm_type in ORDERS]


def matrix_features(case):
    kind, norm_type = MATRIX[case]
    return {kind, f"norm_type={norm_type}"}


# The fewest cases that between them take every dtype kind and every order run
# by default, the rest under -m oracle (tests/_oracle.py).
_DEFAULT = _oracle.fewest_covering(len(MATRIX), matrix_features)
MATRIX_CASES = [
    pytest.param(
        kind,
        norm_type,
        id=f"{kind}-{norm_type}",
        marks=() if i in _DEFAULT else _oracle.oracle,
    )
    for i, (kind, norm_type) in enumerate(MATRIX)
]


@pytest.mark.parametrize(("kind", "norm_type"), MATRIX_CASES)
def test_clip_grad_norm_matches_torch(kind, norm_type):
    shapes = SHAPES if norm_type != INF else [s for s in SHAPES if math.prod(s)]
    leaves = random_leaves(seed_of(kind, norm_type), DTYPES[kind], shapes)
    reference = reference_norm(leaves, norm_type)
    torch_dtype = {"bfloat16": BF16, "float16": np.float16}.get(kind, np.float32)
    for regime, factor in [("clips", 0.3), ("passes", 3.0)]:
        max_norm = factor * reference
        expected = golden(
            f"norm/{kind}/{norm_type}/{regime}",
            lambda m=max_norm: torch_clip_grad_norm(leaves, m, norm_type),
        )
        updates, state, total = clip_norm_and_total(
            as_tree(leaves), max_norm, norm_type
        )
        assert_tree_matches(updates, expected, leaves)
        assert isinstance(state, ClipGradNormState)
        assert state.total_norm.dtype == jnp.float32
        assert_matches(state.total_norm, expected["total"])
        # get_total_norm is torch's value in torch's dtype
        assert_matches(total, expected["total"], torch_dtype)


def test_the_default_sample_covers_every_kind_and_order():
    assert _DEFAULT
    every = set().union(*(matrix_features(i) for i in range(len(MATRIX))))
    assert set().union(*(matrix_features(i) for i in _DEFAULT)) == every


@pytest.mark.parametrize(
    "norm_type", [0.0, pytest.param(0.5, marks=_oracle.oracle), -1.0, -INF]
)
def test_unusual_orders_match_torch(norm_type):
    # torch computes them all: 0 counts nonzero entries (then nonzero leaves),
    # p < 0 and -inf are decided by the smallest absolute values.
    leaves = random_leaves(seed_of("unusual", norm_type), [np.float32], SHAPES[:3])
    leaves.append(np.array([0.0, 2.0, 0.0], np.float32))  # zeros matter to p <= 0
    leaves.append(np.zeros((2, 2), np.float32))
    for max_norm in (0.01, 1.0, 100.0):
        key = f"unusual/{norm_type}/{max_norm}"
        expected = golden(
            key, lambda m=max_norm: torch_clip_grad_norm(leaves, m, norm_type)
        )
        updates, state = clip_norm(as_tree(leaves), max_norm, norm_type)
        assert_tree_matches(updates, expected, leaves)
        assert_matches(state.total_norm, expected["total"])
    # without the zero leaves a negative order has something to measure
    expected = golden(
        f"unusual/{norm_type}/nonzero",
        lambda: torch_clip_grad_norm(leaves[:3], 0.01, norm_type),
    )
    updates, state = clip_norm(as_tree(leaves[:3]), 0.01, norm_type)
    assert_tree_matches(updates, expected, leaves[:3])
    assert_matches(state.total_norm, expected["total"])
    assert float(state.total_norm) > 0


def test_bfloat16_coefficient_is_rounded_as_in_torch():
    # A bfloat16-only tree: torch's total norm and coefficient are bfloat16
    # numbers; a float32 coefficient gives other bfloat16 products.
    rng = np.random.default_rng(7)
    leaves = [rng.standard_normal(n).astype(BF16) for n in (50, 13, 1)]
    wide = [np.asarray(g, np.float32) for g in leaves]
    wide_total = np.linalg.norm([np.linalg.norm(g) for g in wide]).astype(np.float32)
    differs = []
    for max_norm in (0.37, 1.3, 2.9, 4.1):
        expected = golden(
            f"bf16/{max_norm}", lambda m=max_norm: torch_clip_grad_norm(leaves, m)
        )
        updates, state = clip_norm(as_tree(leaves), max_norm)
        assert_tree_matches(updates, expected, leaves)
        assert_matches(state.total_norm, expected["total"])
        # a float32 total and coefficient would round some products otherwise
        coef = min(np.float32(max_norm) / (wide_total + np.float32(1e-6)), 1)
        naive = (wide[0] * np.float32(coef)).astype(BF16)
        differs.append(not np.array_equal(naive, np.asarray(updates["g0"])))
    assert any(differs)


def test_non_finite_norms_follow_torch():
    # inf: the coefficient is 0 (finite entries 0, infinite ones NaN); NaN:
    # everything NaN.
    for name, bad in [("inf", INF), ("nan", math.nan)]:
        leaves = [
            np.array([1.0, bad, -2.0], np.float32),
            np.array([0.5, 0.25], np.float32),
        ]
        expected = golden(
            f"nonfinite/{name}", lambda lv=leaves: torch_clip_grad_norm(lv, 1.0)
        )
        updates, state = apply(clip_grad_norm(1.0), as_tree(leaves))
        assert_tree_matches(updates, expected, leaves)
        assert_matches(state.total_norm, expected["total"])
    # float32 overflow of the sum of squares: an inf norm from finite entries
    leaves = [np.array([1e20, 3.0], np.float32), np.array([2.0], BF16)]
    expected = golden("nonfinite/overflow", lambda: torch_clip_grad_norm(leaves, 1.0))
    updates, state = apply(clip_grad_norm(1.0), as_tree(leaves))
    assert_tree_matches(updates, expected, leaves)
    assert math.isinf(float(state.total_norm))


def test_none_leaves_survive_and_an_empty_tree_is_left_alone():
    leaves = [np.array([3.0], np.float32), None, np.array([4.0], np.float32)]
    expected = golden("none", lambda: torch_clip_grad_norm(leaves, 1.0))
    updates, state = apply(clip_grad_norm(1.0), as_tree(leaves))
    assert updates["g1"] is None
    assert_tree_matches(updates, expected, leaves)
    assert_matches(state.total_norm, expected["total"])
    for tree in ({"a": None}, {}, None):
        updates, state = apply(clip_grad_norm(1.0), tree)
        assert updates == tree and float(state.total_norm) == 0.0
    if _golden.LIVE:  # torch: no gradients, a norm of 0 and nothing clipped
        assert float(torch_clip_grad_norm([None], 1.0)["total"]) == 0.0


def test_python_number_leaves_and_params_are_ignored():
    tx = clip_grad_norm(1.0)
    updates, state = tx.update(
        {"a": 3.0, "b": jnp.array([4.0])}, tx.init(None), params={"x": 1}, extra=2
    )
    np.testing.assert_allclose(updates["a"], 0.5999999, rtol=1e-6)
    assert float(state.total_norm) == 5.0


# --- sparse gradients ----------------------------------------------------------


def sparse_problem(seed, *, cover_every_row=False, dtype=np.float32):
    """An IndexedSlices with duplicate rows and padding, and its dense value."""
    rng = np.random.default_rng(seed)
    n, k = 6, 9
    indices = rng.integers(0, n, size=k)
    if cover_every_row:
        indices[:n] = np.arange(n)
    indices[-2:] = [n, -1]  # padding rows
    values = (rng.standard_normal((k, 3)) * 2).astype(np.float32)
    dense = np.zeros((n, 3), np.float32)
    live = (indices >= 0) & (indices < n)
    np.add.at(dense, indices[live], values[live])
    slices = jsgd.IndexedSlices(
        jnp.asarray(values.astype(dtype)), jnp.asarray(indices, jnp.int32), (n, 3)
    )
    if dtype != np.float32:  # the dense gradient of rounded rows, summed in float32
        dense = np.asarray(slices.coalesce().to_dense())
    return slices, dense.astype(dtype)


@pytest.mark.parametrize(
    "norm_type", [pytest.param(1.0, marks=_oracle.oracle), 2.0, INF, 0.0, -1.0, -INF]
)
def test_indexed_slices_count_as_their_dense_gradient(norm_type):
    # torch 2.13 refuses sparse gradients (test_torch_refuses_sparse_gradients);
    # jsgd clips an IndexedSlices as torch clips the dense gradient it stands for.
    for cover in (False, True):
        slices, dense = sparse_problem(
            seed_of("sparse", norm_type), cover_every_row=cover
        )
        other = np.array([0.5, -1.5], np.float32)
        expected = golden(
            f"sparse/{norm_type}/{cover}",
            lambda d=dense, o=other: torch_clip_grad_norm([d, o], 0.7, norm_type),
        )
        tree = {"g0": slices, "g1": jnp.asarray(other)}
        updates, state = apply(clip_grad_norm(0.7, norm_type), tree)
        assert isinstance(updates["g0"], jsgd.IndexedSlices)
        assert_matches(updates["g0"].to_dense(), expected["0"], np.float32)
        assert_matches(updates["g1"], expected["1"], np.float32)
        assert_matches(state.total_norm, expected["total"])
        assert_matches(get_total_norm(tree, norm_type), expected["total"])
        if norm_type < 0 and not cover:
            assert float(state.total_norm) == 0.0  # the absent rows are zeros


def test_bfloat16_indexed_slices():
    slices, dense = sparse_problem(3, dtype=BF16)
    expected = golden("sparse/bf16", lambda: torch_clip_grad_norm([dense], 0.7))
    updates, state = apply(clip_grad_norm(0.7), {"g0": slices})
    assert_matches(updates["g0"].to_dense(), expected["0"], BF16)
    assert_matches(state.total_norm, expected["total"])


def test_an_empty_indexed_slices():
    empty = jsgd.IndexedSlices(jnp.zeros((0, 3)), jnp.zeros([0], jnp.int32), (4, 3))
    tree = {"e": empty, "d": jnp.array([3.0, 4.0])}
    updates, state = apply(clip_grad_norm(1.0), tree)
    assert float(state.total_norm) == 5.0
    assert updates["e"].to_dense().shape == (4, 3)
    updates, state = apply(clip_grad_norm(1.0, INF), tree)
    assert float(state.total_norm) == 4.0
    updates, state = apply(clip_grad_norm(1.0, -INF), tree)
    assert float(state.total_norm) == 0.0  # the dense gradient is all zeros


@pytest.mark.skipif(not _golden.LIVE, reason="needs torch")
def test_torch_refuses_sparse_gradients():
    torch = _golden.torch
    p = torch.zeros(4, 2, requires_grad=True)
    p.grad = torch.sparse_coo_tensor(
        torch.tensor([[0, 2]]), torch.ones(2, 2), (4, 2), check_invariants=True
    )
    with pytest.raises(NotImplementedError, match="SparseCPU"):
        torch.nn.utils.clip_grad_norm_([p], 1.0)
    with pytest.raises(NotImplementedError, match="SparseCPU"):
        torch.nn.utils.clip_grad_value_([p], 1.0)


# --- jit, tracing, composition -----------------------------------------------------


def test_jit_equals_eager_and_a_traced_max_norm_compiles_once():
    leaves = random_leaves(seed_of("jit"), DTYPES["mixed"])
    tree = as_tree(leaves)
    traces = []

    @jax.jit
    def step(grads, max_norm):
        traces.append(1)
        tx = clip_grad_norm(max_norm)
        return tx.update(grads, tx.init(grads))

    total = reference_norm(leaves, 2.0)
    for factor in (0.2, 0.5, 5.0):
        max_norm = factor * total
        expected = golden(
            f"jit/{factor}", lambda m=max_norm: torch_clip_grad_norm(leaves, m)
        )
        jitted, state = step(tree, jnp.float32(max_norm))
        assert_tree_matches(jitted, expected, leaves)
        assert_matches(state.total_norm, expected["total"])
        eager, _ = apply(clip_grad_norm(max_norm), tree)
        jax.tree.map(np.testing.assert_array_equal, jitted, eager)
    assert len(traces) == 1


def test_inject_hyperparams_with_a_static_norm_type():
    tx = optax.inject_hyperparams(clip_grad_norm, static_args=("norm_type",))(
        max_norm=1.0, norm_type="inf"
    )
    grads = {"a": jnp.array([3.0, -4.0])}
    state = tx.init(grads)
    updates, state = jax.jit(tx.update)(grads, state)
    np.testing.assert_allclose(updates["a"], [0.75, -1.0], rtol=1e-6)
    assert float(state.inner_state.total_norm) == 4.0
    # injected (not static), norm_type is a traced array in a jitted update
    injected = optax.inject_hyperparams(clip_grad_norm)(max_norm=1.0, norm_type=2.0)
    with pytest.raises(TypeError, match="static_args"):
        jax.jit(injected.update)(grads, injected.init(grads))


def test_vmap_and_a_chain_with_sgd():
    grads = {"a": jnp.array([[3.0, 4.0], [0.3, 0.4]])}
    tx = clip_grad_norm(1.0)
    updates, states = jax.jit(jax.vmap(lambda g: tx.update(g, tx.init(g))))(grads)
    np.testing.assert_allclose(updates["a"], [[0.6, 0.8], [0.3, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(states.total_norm, [5.0, 0.5], rtol=1e-6)
    opt = optax.chain(clip_grad_norm(1.0), jsgd.sgd(0.1))
    params = {"a": jnp.zeros(2)}
    updates, _ = jax.jit(opt.update)({"a": grads["a"][0]}, opt.init(params), params)
    np.testing.assert_allclose(updates["a"], [-0.06, -0.08], rtol=1e-6)


def test_differentiable_at_zero():
    def clipped_sum(g):
        return jnp.sum(clip_norm(g, 1.0)[0])

    np.testing.assert_array_equal(jax.jit(jax.grad(clipped_sum))(jnp.zeros(3)), 1.0)


def test_state_dtype_follows_float64_params():
    with jax.enable_x64(True):
        tx = clip_grad_norm(1.0)
        grads = {"a": jnp.array([3.0, 4.0], jnp.float64)}
        state = tx.init(grads)
        assert state.total_norm.dtype == jnp.float64
        updates, state = tx.update(grads, state)
        assert updates["a"].dtype == jnp.float64
        np.testing.assert_allclose(updates["a"], np.array([3.0, 4.0]) / (5 + 1e-6))
        assert float(state.total_norm) == 5.0


# --- error_if_nonfinite ------------------------------------------------------


def nonfinite_message(order):
    return (
        f"The total norm of order {order} for gradients from `parameters` is "
        "non-finite, so it cannot be clipped. To disable this error and scale "
        "the gradients by the non-finite norm anyway, set "
        "`error_if_nonfinite=False`"
    )


@pytest.mark.parametrize(
    ("norm_type", "order"), [(2, "2.0"), ("inf", "inf"), (3.5, "3.5")]
)
def test_error_if_nonfinite_raises_torchs_error(norm_type, order):
    message = nonfinite_message(order)
    bad = {"a": jnp.array([1.0, jnp.nan]), "b": jnp.ones(2)}
    tx = clip_grad_norm(1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as eager:
        tx.update(bad, tx.init(bad))
    assert str(eager.value) == message
    with pytest.raises(RuntimeError, match=re.escape(message)):
        jax.block_until_ready(jax.jit(tx.update)(bad, tx.init(bad)))
    with pytest.raises(RuntimeError, match=re.escape(message)):
        get_total_norm(bad, norm_type, error_if_nonfinite=True)
    good = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}
    _, state = jax.jit(tx.update)(good, tx.init(good))
    expected = {2: 5.0, "inf": 4.0, 3.5: (3.0**3.5 + 4.0**3.5) ** (1 / 3.5)}
    np.testing.assert_allclose(state.total_norm, expected[norm_type], rtol=1e-6)
    if _golden.LIVE:
        torch = _golden.torch
        p = torch.zeros(2, requires_grad=True)
        p.grad = torch.tensor([1.0, math.nan])
        with pytest.raises(RuntimeError) as theirs:
            torch.nn.utils.clip_grad_norm_([p], 1.0, norm_type, error_if_nonfinite=True)
        assert str(theirs.value) == message


def test_error_if_nonfinite_under_vmap_and_scan():
    message = re.escape(nonfinite_message("2.0"))
    tx = clip_grad_norm(10.0, error_if_nonfinite=True)
    grads = jnp.array([[1.0, 2.0], [jnp.inf, 0.0]])
    with pytest.raises(RuntimeError, match=message):
        jax.block_until_ready(jax.vmap(lambda g: tx.update(g, tx.init(g))[0])(grads))

    def body(state, g):
        updates, state = tx.update(g, state)
        return state, updates

    with pytest.raises(RuntimeError, match=message):
        jax.block_until_ready(jax.lax.scan(body, tx.init(grads[0]), grads))
    _, updates = jax.lax.scan(body, tx.init(grads[0]), grads[:1])
    np.testing.assert_allclose(updates, [[1.0, 2.0]], rtol=1e-6)


# --- clip_grad_value -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["float32", "bfloat16", "float16"])
def test_clip_grad_value_matches_torch(kind):
    leaves = random_leaves(seed_of("value", kind), DTYPES[kind])
    leaves.append(np.array([INF, -INF, math.nan, 0.3], DTYPES[kind][0]))
    for clip_value in (0.37, 2.0):
        expected = golden(
            f"value/{kind}/{clip_value}",
            lambda c=clip_value: torch_clip_grad_value(leaves, c),
        )
        updates, state = value_clip(as_tree(leaves), clip_value)
        assert state == optax.EmptyState()
        assert_tree_matches(updates, expected, leaves)


def test_clip_grad_value_of_indexed_slices_clamps_the_summed_rows():
    slices, dense = sparse_problem(11)
    expected = golden("value/sparse", lambda: torch_clip_grad_value([dense], 1.0))
    updates, _ = apply(clip_grad_value(1.0), {"g0": slices, "g1": None})
    assert updates["g1"] is None
    assert_matches(updates["g0"].to_dense(), expected["0"], np.float32)


def test_clip_grad_value_refuses_complex_as_torch_does():
    tx = clip_grad_value(1.0)
    with pytest.raises(
        TypeError, match=r"\['z'\] is complex64.*not supported for complex"
    ):
        tx.update({"z": jnp.ones(2, jnp.complex64)}, tx.init(None))
    if _golden.LIVE:
        p = _golden.torch.zeros(2, dtype=_golden.torch.complex64, requires_grad=True)
        p.grad = _golden.torch.ones(2, dtype=_golden.torch.complex64)
        with pytest.raises(NotImplementedError, match="not supported for complex"):
            _golden.torch.nn.utils.clip_grad_value_([p], 1.0)


# --- arguments and errors -------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: clip_grad_norm(0.0),
            ValueError,
            "`max_norm` must be > 0. Received: max_norm=0.0",
        ),
        (
            lambda: clip_grad_norm(-1),
            ValueError,
            "`max_norm` must be > 0. Received: max_norm=-1",
        ),
        (lambda: clip_grad_norm(True), TypeError, "`max_norm` must be a real scalar"),
        (lambda: clip_grad_norm(jnp.ones(2)), TypeError, "not an array of shape (2,)"),
        (
            lambda: clip_grad_norm(1.0, math.nan),
            ValueError,
            "`norm_type` must not be NaN",
        ),
        (lambda: clip_grad_norm(1.0, "two"), ValueError, "Received: norm_type='two'"),
        (
            lambda: clip_grad_norm(1.0, True),
            TypeError,
            "`norm_type` must be a real scalar",
        ),
        (
            lambda: clip_grad_norm(1.0, error_if_nonfinite=1),
            TypeError,
            "`error_if_nonfinite` must be a bool",
        ),
        (
            lambda: clip_grad_norm(1.0, foreach="yes"),
            TypeError,
            "`foreach` must be a bool",
        ),
        (
            lambda: clip_grad_value(0),
            ValueError,
            "`clip_value` must be > 0. Received: clip_value=0",
        ),
        (
            lambda: clip_grad_value(1.0, foreach=0),
            TypeError,
            "`foreach` must be a bool",
        ),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


def test_foreach_and_string_orders_are_accepted():
    grads = {"a": jnp.array([3.0, -4.0])}
    for foreach in (None, True, False):
        tx = clip_grad_norm(1.0, "inf", foreach=foreach)
        assert float(apply(tx, grads)[1].total_norm) == 4.0
        assert (
            float(apply(clip_grad_norm(1.0, np.float32(1)), grads)[1].total_norm) == 7.0
        )
        apply(clip_grad_value(1.0, foreach=foreach), grads)


def test_update_errors():
    tx = clip_grad_norm(1.0, INF)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "cannot compute the inf norm of the update at ['b'], which is empty (shape [0])"
        ),
    ):
        tx.update({"a": jnp.ones(2), "b": jnp.ones((0,))}, tx.init(None))
    with pytest.raises(ValueError, match="the -1 norm of the update at the root"):
        apply(clip_grad_norm(1.0, -1), jnp.ones((2, 0)))
    empty = jsgd.IndexedSlices(jnp.zeros((0, 3)), jnp.zeros([0], jnp.int32), (0, 3))
    with pytest.raises(ValueError, match=r"-inf norm of the update at \['e'\]"):
        apply(clip_grad_norm(1.0, -INF), {"e": empty})
    # an empty leaf is fine for p > 0 and 0 (torch: a norm of 0)
    assert float(apply(clip_grad_norm(1.0, 1), jnp.ones((0,)))[1].total_norm) == 0.0
    with pytest.raises(TypeError, match=r"leaf \['i'\] has dtype int32"):
        apply(clip_grad_norm(1.0), {"i": jnp.ones(2, jnp.int32)})
    with pytest.raises(TypeError, match=r"leaf \['i'\] has dtype int32"):
        apply(clip_grad_value(1.0), {"i": jnp.ones(2, jnp.int32)})
    with pytest.raises(TypeError, match="expected ClipGradNormState"):
        tx.update({"a": jnp.ones(2)}, optax.EmptyState())
    with pytest.raises(TypeError, match="`norm_type` must be a concrete number"):
        jax.jit(lambda p: clip_grad_norm(1.0, p))(2.0)
    if _golden.LIVE:
        torch = _golden.torch
        p = torch.zeros(0, requires_grad=True)
        p.grad = torch.zeros(0)
        with pytest.raises(RuntimeError, match="does not have an identity"):
            torch.nn.utils.clip_grad_norm_([p], 1.0, INF)


def test_declared_as_taking_indexed_slices():
    from jsgd._sparse.indexed_slices import TAKES_INDEXED_SLICES

    assert {"torch.clip_grad_norm", "torch.clip_grad_value"} <= set(
        TAKES_INDEXED_SLICES
    )
