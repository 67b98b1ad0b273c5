"""TelemetryStore: per-tick appends, windows, growing endpoints, Parquet round trip, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.errors import TrafficError
from netscaffold.model.metrics import PerformanceSample
from netscaffold.telemetry.store import TelemetryStore


def _two_tick_store() -> TelemetryStore:
    store = TelemetryStore(tick_s=2.0, start_s=-4.0)
    store.add_endpoints(["a-0", "b-0"], ["a", "b"])
    store.append_tick(cpu=[0.5, 0.25], memory=[1e6, 2e6], pair_src=[0], pair_dst=[1], pair_bytes=[100.0])
    store.add_endpoints(["c-0"], ["c"])  # autoscaling: an endpoint appears
    store.append_tick(cpu=[0.6, 0.2, 0.1], pair_src=[2, 0], pair_dst=[0, 1], pair_bytes=[7.0, 3.0])
    return store


def test_windows_read_what_was_appended() -> None:
    store = _two_tick_store()
    assert store.ticks == 2
    assert store.endpoints == ("a-0", "b-0", "c-0")
    assert store.apps_of_endpoints == ("a", "b", "c")
    np.testing.assert_array_equal(store.tick_times_s(), [-4.0, -2.0])
    apps = store.apps()
    np.testing.assert_array_equal(apps.cpu, [[0.5, 0.25, 0.0], [0.6, 0.2, 0.1]])  # c-0 absent in tick 0
    np.testing.assert_array_equal(apps.memory[:, 1], [2e6, 0.0])
    matrix = store.pair_matrix()
    assert matrix.shape == (2, 3, 3)
    assert matrix[0, 0, 1] == 100.0
    assert matrix[1, 2, 0] == 7.0
    assert matrix[1, 0, 1] == 3.0
    pairs, series = store.pair_series()
    assert pairs == [("a-0", "b-0"), ("c-0", "a-0")]
    np.testing.assert_array_equal(series, [[100.0, 0.0], [3.0, 7.0]])
    assert store.pair_matrix(1, 2).sum() == 10.0
    assert store.last(1) == (1, 2)
    assert store.tick_of(-3.0) == 0
    tms = store.traffic_matrix_series()
    assert tms.unit == "bytes"
    assert tms.interval_s == 2.0


def test_append_sample_maps_pair_keys_and_sums_tx_rx() -> None:
    store = TelemetryStore()
    store.add_endpoints(["x", "y", "z"])
    sample = PerformanceSample(
        time_s=1.0,
        interval_s=1.0,
        link_keys=(),
        load_bps=np.zeros(0),
        reserved_bps=np.zeros(0),
        reserved_used_bps=np.zeros(0),
        pair_keys=(("x", "y"), ("x", "z")),
        pair_bytes=np.array([10.0, 5.0]),
    )
    store.append_sample(sample)
    apps = store.apps()
    np.testing.assert_array_equal(apps.tx_bytes, [[15.0, 0.0, 0.0]])
    np.testing.assert_array_equal(apps.rx_bytes, [[0.0, 10.0, 5.0]])
    wrong = PerformanceSample.empty(1.0, 5.0)
    with pytest.raises(TrafficError, match="interval"):
        store.append_sample(wrong)


def test_parquet_round_trip(tmp_path: Path) -> None:
    store = _two_tick_store()
    store.save(tmp_path / "t")
    loaded = TelemetryStore.load(tmp_path / "t")
    assert loaded.endpoints == store.endpoints
    assert loaded.apps_of_endpoints == store.apps_of_endpoints
    assert (loaded.tick_s, loaded.start_s, loaded.ticks) == (2.0, -4.0, 2)
    np.testing.assert_array_equal(loaded.pair_matrix(), store.pair_matrix())
    for name in ("cpu", "memory", "tx_bytes", "rx_bytes"):
        np.testing.assert_array_equal(getattr(loaded.apps(), name), getattr(store.apps(), name))


def test_load_refuses_foreign_or_missing_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pytest.raises(TrafficError, match="cannot read Parquet") as missing:
        TelemetryStore.load(tmp_path)
    assert "apps.parquet" in str(missing.value)
    pq.write_table(pa.table({"tick": [0]}), tmp_path / "apps.parquet")
    with pytest.raises(TrafficError, match="no netscaffold telemetry metadata"):
        TelemetryStore.load(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cpu": [1.0]}, "shape"),
        ({"cpu": [1.0, -1.0]}, "negative"),
        ({"memory": [np.nan, 1.0]}, "non-finite"),
        ({"pair_src": [0], "pair_dst": [5], "pair_bytes": [1.0]}, "endpoint index"),
        ({"pair_src": [0], "pair_dst": [1], "pair_bytes": [-1.0]}, ">= 0"),
        ({"pair_src": [0, 1], "pair_dst": [1], "pair_bytes": [1.0]}, "differ in length"),
    ],
)
def test_bad_appends_are_refused_and_leave_the_store_unchanged(kwargs: dict[str, object], match: str) -> None:
    store = TelemetryStore()
    store.add_endpoints(["a", "b"])
    with pytest.raises(TrafficError, match=match):
        store.append_tick(**kwargs)  # type: ignore[arg-type]
    assert store.ticks == 0


def test_bad_construction_and_windows() -> None:
    with pytest.raises(TrafficError, match="tick_s"):
        TelemetryStore(tick_s=0.0)
    store = _two_tick_store()
    with pytest.raises(TrafficError, match="outside the stored ticks"):
        store.pair_matrix(1, 3)
    with pytest.raises(TrafficError, match="added twice"):
        store.add_endpoints(["a-0"])
    with pytest.raises(TrafficError, match="unknown endpoint"):
        store.index_of("nope")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.floats(0.0, 1e9)), max_size=6),
        min_size=1,
        max_size=8,
    )
)
def test_pair_reads_conserve_appended_bytes(ticks: list[list[tuple[int, int, float]]]) -> None:
    store = TelemetryStore()
    store.add_endpoints(["a", "b", "c", "d"])
    for rows in ticks:
        store.append_tick(
            pair_src=[r[0] for r in rows], pair_dst=[r[1] for r in rows], pair_bytes=[r[2] for r in rows]
        )
    total = sum(r[2] for rows in ticks for r in rows)
    matrix = store.pair_matrix()
    assert matrix.sum() == pytest.approx(total, rel=1e-12, abs=1e-6)
    _, series = store.pair_series()
    assert series.sum() == pytest.approx(total, rel=1e-12, abs=1e-6)
    for k, rows in enumerate(ticks):
        assert matrix[k].sum() == pytest.approx(sum(r[2] for r in rows), rel=1e-12, abs=1e-6)
