"""Traffic-matrix series: ``tm[T, N, N]`` demand from origin (axis 1) to destination (axis 2)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError

UNIT_TO_BPS = {"bit/s": 1.0, "bps": 1.0, "kbit/s": 1e3, "mbit/s": 1e6, "gbit/s": 1e9, "bytes": 8.0}


@dataclass(frozen=True, eq=False)
class TrafficMatrixSeries:
    tm: npt.NDArray[np.float64]
    nodes: tuple[str, ...]
    interval_s: float
    unit: str = "Mbit/s"
    timestamps: npt.NDArray[np.datetime64] | None = None

    def __post_init__(self) -> None:
        tm = self.tm
        if tm.ndim != 3:
            raise TrafficError(f"tm must have 3 dimensions [T, N, N], got shape {tm.shape}")
        steps, rows, cols = tm.shape
        if rows != cols:
            raise TrafficError(f"matrices are not square: {rows} x {cols}", field="tm")
        if rows != len(self.nodes):
            raise TrafficError(f"{len(self.nodes)} node names for {rows} x {cols} matrices", field="nodes")
        if len(set(self.nodes)) != len(self.nodes):
            raise TrafficError("duplicate node name", field="nodes")
        if steps == 0:
            raise TrafficError("the series has no time steps", field="tm")
        if not (np.isfinite(self.interval_s) and self.interval_s > 0):
            raise TrafficError(f"interval_s must be > 0, got {self.interval_s}", field="interval_s")
        bad = np.argwhere(~np.isfinite(tm))
        if bad.size:
            t, i, j = (int(v) for v in bad[0])
            raise TrafficError(
                f"{len(bad)} missing or infinite value(s), first at step {t}",
                element=f"{self.nodes[i]}->{self.nodes[j]}",
            )
        neg = np.argwhere(tm < 0)
        if neg.size:
            t, i, j = (int(v) for v in neg[0])
            raise TrafficError(
                f"{len(neg)} negative value(s), first {tm[t, i, j]:g} at step {t}",
                element=f"{self.nodes[i]}->{self.nodes[j]}",
            )
        if self.timestamps is not None and self.timestamps.shape != (steps,):
            raise TrafficError(f"{self.timestamps.shape[0]} timestamps for {steps} steps", field="timestamps")

    @property
    def steps(self) -> int:
        return int(self.tm.shape[0])

    @property
    def bps_factor(self) -> float:
        """Multiply values by this to get bit/s."""
        try:
            return UNIT_TO_BPS[self.unit.lower()]
        except KeyError:
            raise TrafficError(f"unknown unit {self.unit!r}", field="unit") from None

    def segments(self) -> list[tuple[int, int]]:
        """Contiguous [start, stop) step ranges: a timestamp gap longer than one interval splits."""
        if self.timestamps is None or self.steps < 2:
            return [(0, self.steps)]
        deltas = np.diff(self.timestamps.astype("datetime64[s]").astype(np.int64))
        breaks = np.flatnonzero(np.abs(deltas.astype(np.float64) - self.interval_s) > 1e-6) + 1
        edges = [0, *breaks.tolist(), self.steps]
        return list(itertools.pairwise(edges))

    def sparsity(self) -> float:
        """Share of off-diagonal entries that are zero."""
        n = len(self.nodes)
        off = self.tm[:, ~np.eye(n, dtype=bool)]
        return float(np.mean(off == 0)) if off.size else 0.0

    def slice(self, start: int, stop: int) -> TrafficMatrixSeries:
        ts = None if self.timestamps is None else self.timestamps[start:stop]
        return TrafficMatrixSeries(self.tm[start:stop], self.nodes, self.interval_s, self.unit, ts)
