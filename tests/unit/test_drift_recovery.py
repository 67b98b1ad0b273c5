from __future__ import annotations

import pytest

from netscaffold.scenarios.drift import drift_recoveries, summarise
from netscaffold.telemetry.workload import WorkloadEvent


def timeline(ratios: list[float], flows: int = 100) -> list[tuple[float, int, int, float, float]]:
    """One tick per second ending at t = 1, 2, ...; ``ratios[i]`` of the tick's flows hit."""
    return [(float(i + 1), flows, round(r * flows), 0.0, 0.0) for i, r in enumerate(ratios)]


def test_recovery_time_is_the_first_window_back_within_tolerance() -> None:
    # 40 s at 0.9, a drop to 0.5 for 15 s after the event at t=40, then back to 0.9
    rows = timeline([0.9] * 40 + [0.5] * 15 + [0.9] * 60)
    event = WorkloadEvent(40.0, "scale-out", "api")
    (rec,) = drift_recoveries(rows, [event], measure_from_s=0.0, window_s=5.0)
    assert rec.hit_ratio_before == pytest.approx(0.9)
    assert rec.lowest_window == pytest.approx(0.5)
    assert rec.recovered_after_s == pytest.approx(15.0)
    assert summarise([rec]) == {"events": 1, "recovered": 1, "worst_recovery_s": 15.0, "all_recovered": True}


def test_no_recovery_within_the_limit_and_ignored_events() -> None:
    rows = timeline([0.9] * 40 + [0.3] * 100)
    events = [
        WorkloadEvent(40.0, "deploy", "api"),
        WorkloadEvent(50.0, "burst", "load"),  # not a drift event
        WorkloadEvent(5.0, "deploy", "db"),  # before the measured part
    ]
    recs = drift_recoveries(rows, events, measure_from_s=10.0)
    assert [r.time_s for r in recs] == [40.0]
    assert recs[0].recovered_after_s is None
    assert summarise(recs)["all_recovered"] is False
    assert summarise([])["all_recovered"] is None


def test_a_dip_smaller_than_the_tolerance_counts_as_recovered_at_once() -> None:
    rows = timeline([0.9] * 40 + [0.87] * 80)
    (rec,) = drift_recoveries(rows, [WorkloadEvent(40.0, "deploy", "api")], measure_from_s=0.0)
    assert rec.recovered_after_s == 0.0
