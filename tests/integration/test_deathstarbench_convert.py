"""DeathStarBench spans (../shared/data/app_traces) -> flow-trace CSV -> workload, on both files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netscaffold.errors import TrafficError
from netscaffold.formats.generators import fat_tree
from netscaffold.telemetry import flow_trace, span_calls, write_calls_csv

FILES = {
    "hotel": ("traceweaver_deathstarbench_hotel_spans.npz", 66_000, 30_000, 5),
    "media": ("traceweaver_deathstarbench_media_spans.npz", 175_500, 84_500, 13),
}


@pytest.mark.parametrize("app", sorted(FILES))
def test_every_cross_service_span_becomes_a_call(shared_data: Path, app: str) -> None:
    name, spans, calls_expected, pairs = FILES[app]
    calls = span_calls(shared_data / "app_traces" / name)
    assert calls.spans == spans
    assert len(calls) == calls_expected
    assert len(calls.pairs()) == pairs
    assert calls.time_s[0] >= 0.0
    assert (np.diff(calls.time_s) >= 0).all()
    assert (calls.duration_s > 0).all()
    assert all(src != dst for src, dst in calls.pairs())


def test_hotel_pairs_and_one_group(shared_data: Path) -> None:
    path = shared_data / "app_traces" / FILES["hotel"][0]
    calls = span_calls(path, group=3)
    assert calls.groups == ("data/hotel_reservation/hotel_load100",)
    assert calls.spans == 11_000
    assert calls.pairs() == [
        ("frontend", "profile"),
        ("frontend", "reservation"),
        ("frontend", "search"),
        ("search", "geo"),
        ("search", "rate"),
    ]
    assert 30.0 < calls.time_s[-1] < 40.0  # ~33 s at this load level
    with pytest.raises(TrafficError, match="group 6 outside") as caught:
        span_calls(path, group=6)
    assert caught.value.location.file == str(path)


@pytest.mark.parametrize("app", sorted(FILES))
def test_converted_csv_replays_as_a_flow_trace(shared_data: Path, tmp_path: Path, app: str) -> None:
    calls = span_calls(shared_data / "app_traces" / FILES[app][0], group=5)
    out = tmp_path / f"{app}.csv"
    write_calls_csv(calls, out)
    assert out.read_text().splitlines()[0] == "time_s,src,dst,duration_s"
    workload = flow_trace(fat_tree(4, 10e9), out, seed=0)
    assert len(workload.flows) == len(calls)
    assert set(workload.flows.endpoints) == {s for pair in calls.pairs() for s in pair}
    np.testing.assert_allclose(workload.flows.start_s, np.round(calls.time_s, 6))
    assert np.isfinite(workload.flows.rate_bps).all()  # paced over each call's span duration
    assert workload.telemetry.total_pair_bytes() == pytest.approx(workload.flows.size_bytes.sum(), rel=1e-6)


def test_a_foreign_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, service=np.zeros(3))
    with pytest.raises(TrafficError, match="missing group"):
        span_calls(path)
