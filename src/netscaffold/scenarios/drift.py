"""How fast scaffolding recovers after the application changes under it (a deployment, a scale-out).

For each drift event in the measured part of a run, the hit ratio just before the event is compared with
the hit ratio in sliding windows after it: the recovery time is the first offset at which a window's hit
ratio is back within ``tolerance`` (relative) of the pre-event value. The target of the run issue is a
recovery within 60 simulated seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from netscaffold.telemetry.workload import WorkloadEvent

DRIFT_KINDS = ("deploy", "scale-out", "replace")
"""Workload events that change who talks to whom (new endpoints, new call patterns)."""


@dataclass(frozen=True)
class Recovery:
    time_s: float
    kind: str
    subject: str
    hit_ratio_before: float
    lowest_window: float
    """The lowest windowed hit ratio in the ``limit_s`` after the event."""
    recovered_after_s: float | None
    """Seconds after the event at which a window is back within the tolerance (None: not within limit)."""

    def as_dict(self) -> dict[str, float | str | None]:
        return dict(vars(self))


def drift_recoveries(
    timeline: Sequence[tuple[float, int, int, float, float]],
    events: Iterable[WorkloadEvent],
    *,
    measure_from_s: float,
    before_s: float = 30.0,
    window_s: float = 10.0,
    tolerance: float = 0.05,
    limit_s: float = 60.0,
) -> list[Recovery]:
    """``timeline``: per tick (end time, new flows, hits, ...) as :class:`RunTally` records it."""
    if not timeline:
        return []
    ends = np.array([row[0] for row in timeline])
    flows = np.array([row[1] for row in timeline], dtype=np.float64)
    hits = np.array([row[2] for row in timeline], dtype=np.float64)
    tick_s = float(np.median(np.diff(ends))) if ends.size > 1 else 1.0

    def ratio(start: float, stop: float) -> float | None:
        """Hit ratio of the flows in ticks ending in (start, stop]."""
        rows = (ends > start + 1e-9) & (ends <= stop + 1e-9)
        total = flows[rows].sum()
        return float(hits[rows].sum() / total) if total > 0 else None

    out = []
    for event in events:
        if event.kind not in DRIFT_KINDS or event.time_s < measure_from_s:
            continue
        before = ratio(max(measure_from_s, event.time_s - before_s), event.time_s)
        if before is None or event.time_s + window_s > ends[-1] + 1e-9:
            continue
        lowest = 1.0
        recovered: float | None = None
        offset = 0.0
        while offset <= limit_s + 1e-9 and event.time_s + offset + window_s <= ends[-1] + 1e-9:
            value = ratio(event.time_s + offset, event.time_s + offset + window_s)
            if value is not None:
                lowest = min(lowest, value)
                if recovered is None and value >= before * (1.0 - tolerance):
                    recovered = offset
            offset += tick_s
        out.append(Recovery(event.time_s, event.kind, event.subject, before, lowest, recovered))
    return out


def summarise(recoveries: Sequence[Recovery]) -> dict[str, float | int | bool | None]:
    """How many events recovered within the limit, and the worst recovery time (None: one never did, or
    there was no event)."""
    done = [r.recovered_after_s for r in recoveries if r.recovered_after_s is not None]
    all_done = bool(recoveries) and len(done) == len(recoveries)
    return {
        "events": len(recoveries),
        "recovered": len(done),
        "worst_recovery_s": max(done) if all_done else None,
        "all_recovered": all_done if recoveries else None,
    }
