"""What an emulation produced, as columns: per flow, per tick x link, and run counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.model.topology import LinkKey

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class EmulationResult:
    """Per flow (row order of the FlowTable): ``start_s`` (arrival of the first packet),
    ``setup_delay_s`` (NaN: not arrived yet), ``completion_s`` (NaN: not finished), ``hit`` (path fully
    scaffolded at arrival), ``reactive`` (paid the reactive setup), ``path`` (index into ``paths``; -1 not
    arrived). Per tick (rows, ending at ``tick_end_s``) x link (columns, ``link_keys``): average
    ``load_bps``, ``reserved_bps`` and ``reserved_unused_bps``; ``sent_bytes`` per tick. ``events``
    counts flow arrivals and completions; ``wall_s`` is the time spent emulating.

    Reservation usage is judged per tick by volume, as a token bucket of one tick would: a reservation
    group (the flows of one pair on one reserved path) used ``min(reserved_rate x tick_s, bits its flows
    carried in the tick)``, so short flows that together carry the reserved volume leave nothing unused.
    ``reserved_unused_bps`` is reserved minus used, per link, divided by ``tick_s`` (the backend's
    ``PerformanceSample.reserved_used_bps`` is reserved minus unused). A tick split by a config change is
    judged in its two parts."""

    start_s: FloatArray
    setup_delay_s: FloatArray
    completion_s: FloatArray
    hit: BoolArray
    reactive: BoolArray
    path: IntArray
    paths: tuple[tuple[str, ...], ...]
    tick_s: float
    tick_end_s: FloatArray
    link_keys: tuple[LinkKey, ...]
    capacity_bps: FloatArray
    load_bps: FloatArray
    reserved_bps: FloatArray
    reserved_unused_bps: FloatArray
    sent_bytes: FloatArray
    events: int
    wall_s: float
    profile: str
    seed: int

    @property
    def flows(self) -> int:
        return int(self.start_s.shape[0])

    @property
    def arrived(self) -> BoolArray:
        return ~np.isnan(self.setup_delay_s)

    @property
    def finished(self) -> BoolArray:
        return ~np.isnan(self.completion_s)

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """Deterministic figures (everything but ``wall_s`` / ``events_per_s`` repeats with the seed)."""
        arrived = self.arrived
        delays = self.setup_delay_s[arrived]
        busy = self.load_bps / self.capacity_bps if self.load_bps.size else np.zeros((0, 0))
        return {
            "flows": self.flows,
            "arrived": int(arrived.sum()),
            "finished": int(self.finished.sum()),
            "hit_ratio": float(self.hit[arrived].mean()) if delays.size else 0.0,
            "reactive_setups": int(self.reactive.sum()),
            "setup_delay_s": {
                "mean": float(delays.mean()) if delays.size else 0.0,
                "p50": float(np.percentile(delays, 50)) if delays.size else 0.0,
                "p99": float(np.percentile(delays, 99)) if delays.size else 0.0,
            },
            "link_utilisation": {
                "mean": float(busy.mean()) if busy.size else 0.0,
                "p99": float(np.percentile(busy, 99)) if busy.size else 0.0,
                "max": float(busy.max()) if busy.size else 0.0,
            },
            "ticks": int(self.tick_end_s.shape[0]),
            "events": self.events,
        }
