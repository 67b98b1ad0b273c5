"""Max-min kernel against a linear-programming reference (progressive filling by LP) on random cases."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from netscaffold.backends.sim.maxmin import max_min_rates


def _lp_max_min(
    paths: list[list[int]], cap: np.ndarray, floors: np.ndarray, demands: np.ndarray
) -> np.ndarray:
    """Lexicographic max-min on {floor <= x <= demand, A x <= cap}: raise the minimum of the unfrozen
    flows by LP, freeze those that cannot exceed it, repeat."""
    n, m = len(paths), cap.shape[0]
    a_cap = np.zeros((m, n + 1))
    for j, links in enumerate(paths):
        for link in links:
            a_cap[link, j] = 1.0
    frozen = np.full(n, np.nan)
    bounds = [(floors[j], demands[j]) for j in range(n)] + [(0, None)]
    while np.isnan(frozen).any():
        live = np.flatnonzero(np.isnan(frozen))
        rows = [a_cap]
        rhs = [cap]
        for j in live.tolist():  # t - x_j <= 0
            row = np.zeros((1, n + 1))
            row[0, j], row[0, n] = -1.0, 1.0
            rows.append(row)
            rhs.append(np.zeros(1))
        fixed = [(v, v) for v in frozen]
        bnds = [fixed[j] if not np.isnan(frozen[j]) else bounds[j] for j in range(n)] + [(0, None)]
        c = np.zeros(n + 1)
        c[n] = -1.0
        top = linprog(c, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), bounds=bnds, method="highs")
        level = top.x[n]
        for j in live.tolist():  # can x_j exceed max(level, floor), every live flow at least at the level?
            c_j = np.zeros(n + 1)
            c_j[j] = -1.0
            b2 = list(bnds)
            b2[n] = (level, level)
            best = linprog(c_j, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), bounds=b2, method="highs")
            target = max(level, floors[j])
            if -best.fun <= target + 1e-7 * max(1.0, target):
                frozen[j] = target
    return frozen


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[list[int]], np.ndarray, np.ndarray, np.ndarray]:
    m = draw(st.integers(1, 5))
    n = draw(st.integers(1, 6))
    cap = np.array(draw(st.lists(st.integers(1, 20), min_size=m, max_size=m)), dtype=float)
    paths = [sorted(draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=m))) for _ in range(n)]
    demands = np.array([draw(st.one_of(st.just(np.inf), st.integers(1, 15).map(float))) for _ in range(n)])
    floors = np.zeros(n)
    spare = cap.copy()
    for j in range(n):  # feasible floors: never more than what is left on the flow's links
        if draw(st.booleans()):
            room = min(spare[link] for link in paths[j])
            floors[j] = min(room * draw(st.floats(0.0, 1.0)), demands[j])
            for link in paths[j]:
                spare[link] -= floors[j]
    return paths, cap, floors, demands


@settings(max_examples=60, deadline=None)
@given(cases())
def test_matches_lp_reference(case: tuple[list[list[int]], np.ndarray, np.ndarray, np.ndarray]) -> None:
    paths, cap, floors, demands = case
    got = max_min_rates(paths, cap, floors, demands)
    want = _lp_max_min(paths, cap, floors, demands)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_feasible_floors_honoured_and_links_not_overloaded(
    case: tuple[list[list[int]], np.ndarray, np.ndarray, np.ndarray],
) -> None:
    paths, cap, floors, demands = case
    rates = max_min_rates(paths, cap, floors, demands)
    assert np.all(rates >= floors - 1e-9)
    assert np.all(rates <= demands + 1e-9)
    load = np.zeros_like(cap)
    for j, links in enumerate(paths):
        load[links] += rates[j]
    assert np.all(load <= cap * (1 + 1e-9))
