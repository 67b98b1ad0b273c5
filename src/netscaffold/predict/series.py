"""Per-pair series: a traffic-matrix series flattened to ``values[T, P]`` over its off-diagonal pairs.

Every forecaster reads this one shape. ``segment_start[t]`` is the first step of the contiguous segment
holding step ``t`` (timestamps with a gap split the series), so that no window ever spans a gap.
``time_of_day[t]`` is the fraction of the day at the start of step ``t``: from the timestamps when present,
otherwise ``t x interval_s`` modulo one day (the phase is then unknown).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError
from netscaffold.model.traffic import TrafficMatrixSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Pair = tuple[str, str]
DAY_S = 86_400.0


@dataclass(frozen=True, eq=False)
class PairSeries:
    values: FloatArray
    pairs: tuple[Pair, ...]
    nodes: tuple[str, ...]
    interval_s: float
    unit: str
    time_of_day: FloatArray
    segment_start: IntArray
    bps_factor: float = 1.0
    exog: npt.NDArray[np.floating[Any]] | None = None
    exog_names: tuple[str, ...] = field(default=())
    groups: tuple[str, ...] = field(default=())
    """Per pair, the group it belongs to (pairs of one group are exchangeable: the replicas of one caller
    and one callee application); empty when unknown. The LSTM's activity calibration pools over it."""
    node_totals: FloatArray | None = None
    """``[T, 2N + 1]``: each node's outgoing and incoming total and the network total per step, over every
    pair of the matrix, carried by a series that holds only some of its pairs (a shard of sharded
    inference: its own columns no longer add up to the nodes' totals); None: the series' own columns are
    the whole matrix (the LSTM's network context sums them)."""

    def __post_init__(self) -> None:
        steps, n_pairs = self.values.shape
        if n_pairs != len(self.pairs):
            raise TrafficError(f"{len(self.pairs)} pair names for {n_pairs} columns", field="pairs")
        if self.time_of_day.shape != (steps,) or self.segment_start.shape != (steps,):
            raise TrafficError("time_of_day and segment_start must have one entry per step")
        if self.exog is not None and self.exog.shape[:2] != (steps, n_pairs):
            raise TrafficError(f"exog must be [T, P, F], got {self.exog.shape}", field="exog")
        if self.exog is not None and self.exog.shape[2] != len(self.exog_names):
            raise TrafficError("one exog name per feature", field="exog_names")
        if self.groups and len(self.groups) != n_pairs:
            raise TrafficError(f"{len(self.groups)} groups for {n_pairs} pairs", field="groups")
        if self.node_totals is not None and self.node_totals.shape != (steps, 2 * len(self.nodes) + 1):
            raise TrafficError(
                f"node_totals must be [T, 2 x nodes + 1] = [{steps}, {2 * len(self.nodes) + 1}], got "
                f"{list(self.node_totals.shape)}",
                field="node_totals",
            )

    @classmethod
    def from_tm(cls, series: TrafficMatrixSeries) -> PairSeries:
        n = len(series.nodes)
        rows, cols = np.nonzero(~np.eye(n, dtype=bool))
        values = np.ascontiguousarray(series.tm[:, rows, cols], dtype=np.float64)
        pairs = tuple((series.nodes[i], series.nodes[j]) for i, j in zip(rows, cols, strict=True))
        return cls(
            values=values,
            pairs=pairs,
            nodes=tuple(series.nodes),
            interval_s=float(series.interval_s),
            unit=series.unit,
            time_of_day=_time_of_day(series),
            segment_start=_segment_starts(series.segments(), series.steps),
            bps_factor=series.bps_factor,
        )

    @property
    def steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_pairs(self) -> int:
        return int(self.values.shape[1])

    def slice(self, start: int, stop: int) -> PairSeries:
        """Steps [start, stop); segment starts are clipped to the slice."""
        seg = np.maximum(self.segment_start[start:stop] - start, 0)
        exog = None if self.exog is None else self.exog[start:stop]
        return PairSeries(
            self.values[start:stop],
            self.pairs,
            self.nodes,
            self.interval_s,
            self.unit,
            self.time_of_day[start:stop],
            seg.astype(np.int64),
            self.bps_factor,
            exog,
            self.exog_names,
            self.groups,
            None if self.node_totals is None else self.node_totals[start:stop],
        )

    def first_segment(self) -> PairSeries:
        """The steps before the first gap."""
        later = np.flatnonzero(self.segment_start != 0)
        return self.slice(0, int(later[0]) if later.size else self.steps)

    def group_codes(self) -> IntArray | None:
        """``groups`` as codes ``0..G-1`` in order of first appearance (None when there are none)."""
        if not self.groups:
            return None
        codes: dict[str, int] = {}
        return np.array([codes.setdefault(g, len(codes)) for g in self.groups], dtype=np.int64)

    def live(self) -> npt.NDArray[np.bool_] | None:
        """``[T, P]``: whether both ends of each pair exist at each step, from the endpoint telemetry's
        memory (a serving endpoint holds memory; a dead or not yet started one reads 0); None when the
        series has no ``src_memory`` / ``dst_memory`` features or they are 0 throughout (not reported,
        as in a call trace without app telemetry, where an idle endpoint reads 0 too)."""
        if self.exog is None or not {"src_memory", "dst_memory"} <= set(self.exog_names):
            return None
        src = self.exog[..., self.exog_names.index("src_memory")]
        dst = self.exog[..., self.exog_names.index("dst_memory")]
        if not (np.any(src != 0) and np.any(dst != 0)):
            return None
        return np.asarray((src != 0) & (dst != 0), dtype=bool)

    def origins(self, context: int, horizon: int, start: int = 0, stop: int | None = None) -> IntArray:
        """Forecast origins ``o`` in [start, stop) with ``context`` steps of history before ``o`` and
        all ``horizon`` targets ``o .. o+horizon-1`` inside the segment of ``o - 1``."""
        stop = self.steps if stop is None else stop
        cand = np.arange(max(start, 1), stop - horizon + 1, dtype=np.int64)
        if cand.size == 0:
            return cand
        seg = self.segment_start
        last_target = cand + horizon - 1
        ok = (cand - seg[cand - 1] >= context) & (seg[last_target] == seg[cand - 1])
        return np.asarray(cand[ok], dtype=np.int64)

    def history_length(self) -> int:
        """Steps of contiguous history at the end of the series (the last segment)."""
        return int(self.steps - self.segment_start[-1]) if self.steps else 0

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.values).tobytes())
        digest.update("|".join(self.nodes).encode())
        digest.update(f"{self.interval_s}|{self.unit}".encode())
        return digest.hexdigest()


def _segment_starts(segments: list[tuple[int, int]], steps: int) -> IntArray:
    out = np.zeros(steps, dtype=np.int64)
    for start, stop in segments:
        out[start:stop] = start
    return out


def _time_of_day(series: TrafficMatrixSeries) -> FloatArray:
    if series.timestamps is not None:
        seconds = series.timestamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    else:
        seconds = np.arange(series.steps, dtype=np.float64) * series.interval_s
    return np.asarray(np.mod(seconds, DAY_S) / DAY_S, dtype=np.float64)


def check_context(series: PairSeries, needed: int, model: str) -> None:
    """Refuse a context shorter than what ``model`` needs (in its last contiguous segment)."""
    have = series.history_length()
    if have < needed:
        raise TrafficError(
            f"model {model!r} needs at least {needed} steps of contiguous history, the series has {have}",
            field="tm",
        )
