"""Shared workload pieces: bytes spread over ticks, the lag filter, endpoint attachment."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.errors import TopologyError
from netscaffold.formats.generators import leaf_spine
from netscaffold.telemetry.workload import attach, bytes_per_tick, lag_filter


def test_bytes_are_spread_by_overlap_with_each_tick() -> None:
    # 300 bytes over [0.5, 3.5): 50 in tick 0, 100 in ticks 1 and 2, 50 in tick 3.
    tick, key, sent = bytes_per_tick(
        np.array([0.5]), np.array([3.5]), np.array([300.0]), np.array([7]), origin_s=0.0, tick_s=1.0, ticks=5
    )
    np.testing.assert_array_equal(tick, [0, 1, 2, 3])
    np.testing.assert_array_equal(key, [7, 7, 7, 7])
    np.testing.assert_allclose(sent, [50.0, 100.0, 100.0, 50.0])


def test_bytes_outside_the_grid_are_dropped_and_negative_origins_work() -> None:
    tick, _, sent = bytes_per_tick(
        np.array([-3.0, 9.0]),
        np.array([-1.0, 11.0]),
        np.array([20.0, 20.0]),
        np.array([0, 1]),
        origin_s=-2.0,
        tick_s=2.0,
        ticks=5,  # grid [-2, 8)
    )
    np.testing.assert_array_equal(tick, [0])
    np.testing.assert_allclose(sent, [10.0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 50.0), st.floats(1e-3, 30.0), st.floats(1.0, 1e9), st.integers(0, 4)),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([0.1, 1.0, 2.5]),
)
def test_spreading_conserves_bytes_per_key(
    items: list[tuple[float, float, float, int]], tick_s: float
) -> None:
    start = np.array([i[0] for i in items])
    end = start + np.array([i[1] for i in items])
    size = np.array([i[2] for i in items])
    keys = np.array([i[3] for i in items])
    ticks = int(np.ceil(end.max() / tick_s)) + 1  # the grid covers every item
    tick, key, sent = bytes_per_tick(start, end, size, keys, origin_s=0.0, tick_s=tick_s, ticks=ticks)
    assert (sent > 0).all()
    assert (tick >= 0).all()
    assert (tick < ticks).all()
    for k in np.unique(keys):
        assert sent[key == k].sum() == pytest.approx(size[keys == k].sum(), rel=1e-6)


def test_lag_filter_approaches_a_step_with_the_time_constant() -> None:
    target = np.zeros((40, 2))
    target[10:] = [1.0, 2.0]
    out = lag_filter(target, 1.0, 5.0)
    assert out[9].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(out[10 + 4], np.array([1.0, 2.0]) * (1 - np.exp(-5 / 5.0)), rtol=1e-12)
    assert (np.diff(out[10:, 0]) > 0).all()
    np.testing.assert_allclose(lag_filter(target, 1.0, 0.0), target)


def test_attach_gives_benchmark_range_addresses_and_refuses_clashes() -> None:
    topology = leaf_spine(1, 1, 2, 1e9)
    placed = attach(topology, [("a-0", "h000", "a"), ("b-0", "h001", "b")])
    assert placed.endpoints["a-0"].address == "198.18.0.1"
    assert placed.endpoints["b-0"].app == "b"
    with pytest.raises(TopologyError, match="clashes"):
        attach(placed, [("a-0", "h000", "a")])
    with pytest.raises(TopologyError, match="unknown node"):
        attach(topology, [("a-0", "nowhere", "a")])
