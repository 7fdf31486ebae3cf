"""Long oracle sweeps: a fixed sample by default, the rest behind ``-m oracle``.

A sweep of ``n`` seeded cases (random configurations checked against Keras,
torch, optax or a NumPy reference) is parametrized over all ``n`` seeds; a
fixed sample of ``default`` of them runs in the default ``python -m pytest``
and every other one carries the ``oracle`` marker, which ``addopts`` deselects
(``-m "not oracle"``). ``.ci/run`` runs ``python -m pytest -n 2 -m oracle``
too, so the two runs together are the whole sweep, each case once.

The default run's share of a sweep is fixed (``default``), not a fraction of
``n``: a sweep that grows (more seeds) grows the marked run only. A new sweep
(a new optimizer's oracle, say) parametrizes with ``seeds`` or ``cases`` and a
``covering_sample`` of the options it draws, so it adds ``DEFAULT_CASES``
cases to the default run however long it is under the marker. Everything
here is cheap: it runs at collection, in every pytest-xdist worker.

One marked case runs by its id with the marker filter lifted:
``python -m pytest -m "" "tests/test_keras_parity.py::test_sgd_matches_keras[3]"``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np
import pytest

# What a default run keeps of each sweep (per optimizer where a sweep has several).
DEFAULT_CASES = 10
# The default run's share of a long hypothesis test, as a fraction of its
# ``max_examples`` under the marker.
DEFAULT_EXAMPLES_DIVISOR = 10


def sample(n: int, default: int = DEFAULT_CASES, *, salt: int = 0) -> set[int]:
    """A fixed, seeded sample of ``default`` of the seeds ``range(n)``."""
    rng = np.random.default_rng([20_26, salt])
    return {int(i) for i in rng.choice(n, min(default, n), replace=False)}


def covering_sample(
    n: int,
    features: Callable[[int], Iterable[Hashable]],
    default: int = DEFAULT_CASES,
    *,
    salt: int = 0,
) -> set[int]:
    """``default`` seeds of ``range(n)`` that between them show every feature.

    ``features(seed)`` names what that seed's case exercises (its schedule's
    kind, its clip, its options...). Seeds are taken greedily, in a fixed
    seeded order, while they add a feature not yet seen, then the sample is
    filled up in the same order. If the cover needs more than ``default`` seeds
    the sample is the cover.
    """
    order = [int(i) for i in np.random.default_rng([20_26, salt]).permutation(n)]
    seen: set[Hashable] = set()
    chosen: list[int] = []
    every = {seed: set(features(seed)) for seed in order}
    for seed in order:
        if every[seed] - seen:
            chosen.append(seed)
            seen |= every[seed]
    for seed in order:
        if len(chosen) >= default:
            break
        if seed not in chosen:
            chosen.append(seed)
    return set(chosen)


def fewest_covering(
    n: int, features: Callable[[int], Iterable[Hashable]], *, salt: int = 0
) -> set[int]:
    """Few seeds of ``range(n)`` that between them show every feature.

    ``covering_sample``'s cover, made small: a greedy set cover (each seed
    taken is one that shows the most features not yet seen; ties go to the
    first in the same fixed seeded order). For a sweep whose cases are costly,
    the default run keeps just this cover, usually well under
    ``DEFAULT_CASES``; every other case runs under the marker.
    """
    order = [int(i) for i in np.random.default_rng([20_26, salt]).permutation(n)]
    every = {seed: set(features(seed)) for seed in order}
    unseen = set().union(*every.values())
    chosen: set[int] = set()
    while unseen:
        best = max(order, key=lambda seed: len(every[seed] & unseen))
        chosen.add(best)
        unseen -= every[best]
    return chosen


def seeds(n: int, default: int = DEFAULT_CASES, *, salt: int = 0, chosen=None):
    """``range(n)`` as pytest parameters, those outside the sample marked oracle.

    The ids are the seeds themselves, as with a plain ``range(n)``.
    """
    chosen = sample(n, default, salt=salt) if chosen is None else chosen
    return [
        pytest.param(seed, id=str(seed), marks=() if seed in chosen else oracle)
        for seed in range(n)
    ]


def cases(
    values: Sequence, n: int, choose: Callable[[object], set[int]], *, ids=str
) -> list:
    """``(value, seed)`` parameters over ``values x range(n)``, the seeds outside
    ``choose(value)`` marked oracle; ids are ``"{seed}-{value}"`` as stacked
    ``parametrize("value", ...)`` over ``parametrize("seed", range(n))`` gives."""
    params = []
    for value in values:
        chosen = choose(value)
        params.extend(
            pytest.param(
                value,
                seed,
                id=f"{seed}-{ids(value)}",
                marks=() if seed in chosen else oracle,
            )
            for seed in range(n)
        )
    return params


oracle = pytest.mark.oracle


def hypothesis_twins(examples: int, cases: Callable, **settings) -> Callable:
    """Decorates a property test ``test_x`` with ``cases``, run at two sizes.

    ``cases`` is hypothesis's ``given(...)``. ``test_x`` draws ``examples //
    DEFAULT_EXAMPLES_DIVISOR`` examples in the default run; its twin
    ``test_x_long``, which this defines beside it in the same module and
    marks oracle, draws all ``examples``::

        @_oracle.hypothesis_twins(50, given(c=st.floats(0.1, 10.0)))
        def test_x(c): ...

    ``settings`` go to hypothesis's ``settings`` (``deadline=None`` unless
    given).
    """
    from hypothesis import settings as with_settings

    settings.setdefault("deadline", None)

    def twins(check: Callable) -> Callable:
        name = f"{check.__name__}_long"
        long = with_settings(max_examples=examples, **settings)(cases(check))
        long.__name__, long.__qualname__ = name, name
        setattr(sys.modules[check.__module__], name, oracle(long))
        default = max(1, examples // DEFAULT_EXAMPLES_DIVISOR)
        return with_settings(max_examples=default, **settings)(cases(check))

    return twins


def rotating(names: Sequence[str], *, share: int = 3, salt: int = 0) -> list:
    """``names`` as pytest parameters, all but every ``share``-th marked oracle.

    For a contract test run over every registry entry: each test keeps a
    different third of the entries (``salt`` shifts which), so the default
    run still takes every entry through several of the contract tests, and
    the marked run the rest. Ids are the names.
    """
    return [
        pytest.param(name, id=name, marks=() if (i + salt) % share == 0 else oracle)
        for i, name in enumerate(names)
    ]


def in_default_run(params) -> list[tuple]:
    """The values of the parameter sets (of ``cases`` or ``seeds``) that the
    default run keeps: those without the oracle marker."""
    return [
        param.values
        for param in params
        if not any(mark.name == "oracle" for mark in param.marks)
    ]
