"""What baselines share: empirical residual quantiles and an activity transition model.

Residuals are taken in log1p space (``log1p(actual) - log1p(point)``) per pair and horizon step, on the
chronological validation part, so that an interval scales with the pair's level. The activity model is
``P(active at o+h-1 | active at o-1)`` per pair and horizon step, counted on the history (Laplace-smoothed).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError
from netscaffold.predict.base import monotone
from netscaffold.predict.series import PairSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def targets(series: PairSeries, origins: IntArray, horizon: int) -> FloatArray:
    """``actual[O, H, P]``: the values at ``o .. o+horizon-1``."""
    idx = origins[:, None] + np.arange(horizon)[None, :]
    return np.asarray(series.values[idx], dtype=np.float64)


def step_index(horizon: int, fitted: int) -> IntArray:
    """Horizon steps beyond what was fitted reuse the last fitted step."""
    return np.minimum(np.arange(horizon), fitted - 1).astype(np.int64)


class ResidualQuantiles:
    """Per pair and horizon step: log1p residual quantiles ``r[H, P, Q]`` and how many residuals made them."""

    def __init__(self, levels: tuple[float, ...]) -> None:
        self.levels = levels
        self.table: FloatArray = np.zeros((0, 0, len(levels)))
        self.count = 0

    def fit(self, point: FloatArray, actual: FloatArray) -> None:
        """``point`` and ``actual`` are ``[O, H, P]`` from validation origins."""
        if point.shape[0] == 0:
            raise TrafficError("no validation origins to calibrate quantiles: the history is too short")
        self.table = self._quantiles(point, actual)
        self.count = int(point.shape[0])

    def update(self, point: FloatArray, actual: FloatArray) -> None:
        """Blend in residuals from new origins, weighted by how many each side has."""
        n_new = int(point.shape[0])
        if n_new == 0:
            return
        new = self._quantiles(point, actual)
        fitted = self.table.shape[0]
        keep = min(fitted, new.shape[0])
        weight = n_new / (n_new + self.count)
        self.table[:keep] = (1.0 - weight) * self.table[:keep] + weight * new[:keep]
        self.count += n_new

    def apply(self, point: FloatArray) -> FloatArray:
        """Quantiles ``[O, H, P, Q]`` around ``point[O, H, P]`` (the 0.5 level stays the point)."""
        steps = step_index(point.shape[1], self.table.shape[0])
        shift = self.table[steps][None, :, :, :]
        out = np.expm1(np.log1p(np.maximum(point, 0.0))[..., None] + shift)
        median = [i for i, q in enumerate(self.levels) if abs(q - 0.5) < 1e-9]
        out[..., median] = point[..., None]
        return monotone(out)

    def _quantiles(self, point: FloatArray, actual: FloatArray) -> FloatArray:
        resid = np.log1p(actual) - np.log1p(np.maximum(point, 0.0))
        table = np.quantile(resid, self.levels, axis=0)  # [Q, H, P]
        return np.asarray(np.moveaxis(table, 0, -1), dtype=np.float64)


class ActivityModel:
    """Transition counts ``[H, P, 2 (state at o-1), 2 (state at target)]``; active means > threshold."""

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = threshold
        self.counts: FloatArray = np.zeros((0, 0, 2, 2))

    def fit(self, series: PairSeries, horizon: int) -> None:
        self.counts = np.zeros((horizon, series.n_pairs, 2, 2))
        self.update(series)

    def update(self, series: PairSeries) -> None:
        active = (series.values > self.threshold).astype(np.int64)
        for h in range(1, self.counts.shape[0] + 1):
            origins = series.origins(1, h)
            if origins.size == 0:
                continue
            before = active[origins - 1]
            after = active[origins + h - 1]
            for s in (0, 1):
                for a in (0, 1):
                    self.counts[h - 1, :, s, a] += np.sum((before == s) & (after == a), axis=0)

    def predict(self, series: PairSeries, origins: IntArray, horizon: int) -> FloatArray:
        """``P(active)[O, H, P]``."""
        state = (series.values[origins - 1] > self.threshold).astype(np.int64)  # [O, P]
        return self._from_state(state, horizon)

    def predict_from(self, last_row: FloatArray, horizon: int) -> FloatArray:
        """``P(active)[H, P]`` after a step whose values are ``last_row[P]``."""
        state = (last_row[None, :] > self.threshold).astype(np.int64)
        return np.asarray(self._from_state(state, horizon)[0], dtype=np.float64)

    def _from_state(self, state: npt.NDArray[np.int64], horizon: int) -> FloatArray:
        prob = (self.counts[..., 1] + 1.0) / (self.counts.sum(axis=-1) + 2.0)  # [Hf, P, 2]
        steps = step_index(horizon, prob.shape[0])
        by_step = prob[steps]  # [H, P, 2]
        pair_idx = np.arange(state.shape[1])[None, None, :]
        return np.asarray(by_step[np.arange(horizon)[None, :, None], pair_idx, state[:, None, :]])
