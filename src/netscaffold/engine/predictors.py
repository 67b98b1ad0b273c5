"""Predictors: what turns observed traffic into a PredictedGraph each tick.

A predictor sees each tick's performance sample and new flows, and forecasts the next ``horizon`` ticks.
:class:`OraclePredictor` knows the future (the limit any forecaster can reach); the forecasting predictor
wraps a :mod:`netscaffold.predict` forecaster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from netscaffold.model.events import FlowRequest
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.predicted import PredictedGraph

FloatArray = npt.NDArray[np.float64]
Pair = tuple[str, str]
LEVELS = (0.5, 0.9, 0.99)


class Predictor(Protocol):
    def observe(self, sample: PerformanceSample, requests: list[FlowRequest]) -> None: ...

    def predict(self, now_s: float) -> PredictedGraph | None: ...

    def retrain(self) -> None: ...


@dataclass
class PairIndex:
    """A fixed order of pairs, so per-tick observations become rows of a ``[T, P]`` array."""

    pairs: tuple[Pair, ...]
    position: dict[Pair, int] = field(init=False)

    def __post_init__(self) -> None:
        self.position = {pair: i for i, pair in enumerate(self.pairs)}

    def __len__(self) -> int:
        return len(self.pairs)

    def bps_row(self, sample: PerformanceSample) -> FloatArray:
        row = np.zeros(len(self.pairs))
        scale = 8.0 / sample.interval_s if sample.interval_s > 0 else 0.0
        for pair, value in zip(sample.pair_keys, sample.pair_bytes, strict=True):
            index = self.position.get(pair)
            if index is not None:
                row[index] = value * scale
        return row

    def starts_row(self, requests: list[FlowRequest]) -> FloatArray:
        row = np.zeros(len(self.pairs))
        for req in requests:
            index = self.position.get((req.src, req.dst))
            if index is not None:
                row[index] += 1.0
        return row


class OraclePredictor:
    """Perfect foresight of the next horizon, from a reference run's per-tick observations.

    ``future_bps[t, p]`` and ``future_starts[t, p]``: bit/s carried and flows started by pair ``p`` in tick
    ``t`` (tick ``t`` spans ``[t x tick_s, (t + 1) x tick_s)``). Activity is 1 exactly where a flow starts;
    every quantile is the carried rate.
    """

    def __init__(
        self,
        index: PairIndex,
        future_bps: FloatArray,
        future_starts: FloatArray,
        *,
        tick_s: float,
        horizon: int,
    ) -> None:
        if future_bps.shape != future_starts.shape or future_bps.shape[1] != len(index):
            raise ValueError("future arrays must be [T, P] over the pair index")
        self.index = index
        self.future_bps = future_bps
        self.future_starts = future_starts
        self.tick_s = tick_s
        self.horizon = horizon

    def observe(self, sample: PerformanceSample, requests: list[FlowRequest]) -> None:
        del sample, requests  # the oracle already knows

    def retrain(self) -> None:
        return None

    def predict(self, now_s: float) -> PredictedGraph | None:
        first = round(now_s / self.tick_s)
        steps = self.future_bps.shape[0]
        if first >= steps:
            return None
        rows = np.arange(first, first + self.horizon).clip(max=steps - 1)
        valid = (np.arange(first, first + self.horizon) < steps)[:, None]
        starts = self.future_starts[rows] * valid
        carried = self.future_bps[rows] * valid
        keep = np.flatnonzero(starts.sum(axis=0) > 0)
        activity = (starts[:, keep] > 0).astype(np.float64)
        bandwidth = np.repeat(carried[:, keep, None], len(LEVELS), axis=2)
        return PredictedGraph(
            t0_s=now_s,
            step_s=self.tick_s,
            pairs=tuple(self.index.pairs[i] for i in keep),
            quantile_levels=LEVELS,
            activity=activity,
            bandwidth_bps=bandwidth,
            latency_bound_s=np.full(keep.size, np.nan),
        )
