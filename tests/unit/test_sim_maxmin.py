"""Max-min kernel against hand-solved allocations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.backends.sim.maxmin import max_min_rates, max_min_solve


def test_classic_two_link_example() -> None:
    # link 0 (10) carries f0, f1; link 1 (4) carries f1, f2: link 1 is the bottleneck of f1 and f2 (2 each),
    # f0 takes what f1 leaves on link 0: 8.
    rates = max_min_rates([[0], [0, 1], [1]], [10.0, 4.0])
    np.testing.assert_allclose(rates, [8.0, 2.0, 2.0])


def test_three_level_chain() -> None:
    # links 0 (cap 3): f0,f1,f2 ; 1 (cap 4): f2,f3 ; 2 (cap 10): f3,f4
    # level 1 on link 0 (f0, f1, f2 = 1); f3 takes 3 on link 1; f4 takes 7 on link 2.
    rates = max_min_rates([[0], [0], [0, 1], [1, 2], [2]], [3.0, 4.0, 10.0])
    np.testing.assert_allclose(rates, [1.0, 1.0, 1.0, 3.0, 7.0])


def test_floor_is_guaranteed_and_the_rest_is_shared() -> None:
    # f1 has a floor of 3 on link 1 (cap 4): f2 gets the remaining 1, f0 the rest of link 0.
    rates = max_min_rates([[0], [0, 1], [1]], [10.0, 4.0], floors_bps=[0.0, 3.0, 0.0])
    np.testing.assert_allclose(rates, [7.0, 3.0, 1.0])


def test_unused_floor_is_lent() -> None:
    # a floor above the fair share changes nothing when the flow's demand is small: 1 used, 9 lent.
    rates = max_min_rates([[0], [0]], [10.0], floors_bps=[5.0, 0.0], demands_bps=[1.0, np.inf])
    np.testing.assert_allclose(rates, [1.0, 9.0])


def test_floor_below_fair_share_changes_nothing() -> None:
    rates = max_min_rates([[0], [0]], [10.0], floors_bps=[2.0, 0.0])
    np.testing.assert_allclose(rates, [5.0, 5.0])


def test_demand_caps_and_no_link() -> None:
    rates = max_min_rates([[0], [0], []], [10.0], demands_bps=[2.0, np.inf, 3.0])
    np.testing.assert_allclose(rates, [2.0, 8.0, 3.0])
    assert max_min_rates([[]], [1.0])[0] == np.inf


@pytest.mark.parametrize("n", [1, 7, 40])
def test_equal_share_on_one_link(n: int) -> None:
    rates = max_min_rates([[0]] * n, [12.0])
    np.testing.assert_allclose(rates, np.full(n, 12.0 / n))


@settings(max_examples=150, deadline=None)
@given(
    caps=st.lists(st.sampled_from([1.0, 2.0, 3.0, 5.0, 8.0]), min_size=1, max_size=6),
    demand=st.sampled_from([0.5, 2.0, 3.0, 4.0, np.inf]),
    floor_share=st.sampled_from([0.0, 0.25, 1.0]),
)
def test_a_flow_alone_is_solved_as_the_general_solve_does(
    caps: list[float], demand: float, floor_share: float
) -> None:
    # one flow takes a shortcut past the heaps; beside a flow that crosses no link it takes the general
    # solve: rate and bottleneck (the first link of the smallest capacity under its demand) must agree
    path = list(range(len(caps)))
    floor = floor_share * min(*caps, demand)
    alone = max_min_solve([path], caps, [floor], [demand])
    general = max_min_solve([path, []], caps, [floor, 0.0], [demand, 1.0])
    assert alone[0][0] == general[0][0]
    assert alone[1][0] == general[1][0]
    assert alone[0][0] == min(*caps, demand)
    expected_bn = caps.index(min(caps)) if min(caps) < demand else -1
    assert alone[1][0] == expected_bn
