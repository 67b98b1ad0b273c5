"""What baselines share: empirical residual quantiles and an activity transition model.

Residuals are taken in log1p space (``log1p(actual) - log1p(point)``) per pair and horizon step, on the
chronological validation part, so that an interval scales with the pair's level. The activity model is
``P(active at o+h-1 | active at o-1)`` per pair and horizon step, counted on the history: Laplace-smoothed
(the baselines), or shrunk towards the pooled rate of the pair's group (pairs that are exchangeable, such as
the replicas of one caller and one callee application behind a load balancer), the LSTM's calibration.
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


IDLE, ACTIVE, ABSENT = 0, 1, 2
"""A pair's state at ``o-1``: idle, active, or (with ``absent=True``) one of its ends does not exist."""


class ActivityModel:
    """Transition counts ``[H, P, S (state at o-1), 2 (state at target)]``; active means > threshold.

    ``P(active) = (n_active + strength x prior) / (n + strength)`` per pair, step and state. Without
    ``groups`` the prior is 1/2 at strength 2: Laplace smoothing (the baselines). With ``groups`` (a group
    code per pair: pairs that are exchangeable) the prior is the group's pooled rate, itself
    Laplace-smoothed, so never 0: an empirical-Bayes estimate, in which a pair with little history of its
    own takes its group's rate instead of 1/2 and a pair of a group that never talks stays near 0.
    ``absent=True`` adds a third state (S = 3), read from the series' endpoint telemetry
    (:meth:`PairSeries.live`): a step at which one end of the pair did not exist yet (or any more) is no
    evidence of how often the pair wakes while both ends serve, so it is counted apart.
    """

    def __init__(
        self,
        threshold: float = 0.0,
        *,
        groups: IntArray | None = None,
        strength: float = 2.0,
        absent: bool = False,
    ) -> None:
        if not (np.isfinite(strength) and strength > 0.0):
            raise TrafficError(f"the activity prior's strength must be > 0, got {strength}", field="strength")
        if groups is not None and (groups.ndim != 1 or (groups.size and int(groups.min()) < 0)):
            raise TrafficError("activity groups must be one code >= 0 per pair", field="groups")
        self.threshold = threshold
        self.groups = groups
        self.strength = strength
        self.absent = absent
        self.states = 3 if absent else 2
        self.counts: FloatArray = np.zeros((0, 0, self.states, 2))
        self.prior: FloatArray | None = None
        """``[H, P, S]``: each pair's group rate (None: 1/2, Laplace)."""

    def fit(self, series: PairSeries, horizon: int) -> None:
        self.counts = np.zeros((horizon, series.n_pairs, self.states, 2))
        self.update(series)

    def update(self, series: PairSeries) -> None:
        if self.groups is not None and self.groups.size != series.n_pairs:
            raise TrafficError(
                f"{self.groups.size} activity groups for {series.n_pairs} pairs", field="groups"
            )
        state = self.state(series)
        active = series.values > self.threshold
        for h in range(1, self.counts.shape[0] + 1):
            origins = series.origins(1, h)
            if origins.size == 0:
                continue
            before = state[origins - 1]
            after = active[origins + h - 1]
            for s in range(self.states):
                for a in (0, 1):
                    self.counts[h - 1, :, s, a] += np.sum((before == s) & (after == a), axis=0)
        self.prior = None if self.groups is None else self._pooled_rate()

    def state(self, series: PairSeries) -> npt.NDArray[np.int64]:
        """``[T, P]``: each pair's state at each step (``IDLE``, ``ACTIVE``, ``ABSENT``)."""
        state = (series.values > self.threshold).astype(np.int64)
        if not self.absent:
            return state
        live = series.live()
        if live is None:
            raise TrafficError(
                "this activity model counts absent endpoints apart and needs the endpoint telemetry "
                "(src_memory and dst_memory features, reported) that the series lacks",
                field="exog",
            )
        return np.where(live, state, ABSENT)

    def _pooled_rate(self) -> FloatArray:
        """Per pair, step and state: its group's Laplace-smoothed rate over every pair of the group."""
        assert self.groups is not None
        n_groups = int(self.groups.max()) + 1 if self.groups.size else 0
        pooled = np.zeros((n_groups, *self.counts.shape[:1], self.states, 2))
        np.add.at(pooled, self.groups, np.moveaxis(self.counts, 1, 0))
        rate = (pooled[..., 1] + 1.0) / (pooled[..., 0] + pooled[..., 1] + 2.0)  # [G, H, S]
        return np.asarray(np.moveaxis(rate[self.groups], 0, 1), dtype=np.float64)

    def probability(self) -> FloatArray:
        """``P(active)[Hf, P, S (state at o-1)]``. The two counts are added as two arrays: numpy's sum over
        an axis of length 2 costs ~35 ns a pair (7.5 ms at 10,100 pairs x 10 steps x 2 states, on every
        forecast), the addition a few ns, with the same values."""
        active, total = self.counts[..., 1], self.counts[..., 0] + self.counts[..., 1]
        if self.prior is None:
            return np.asarray((active + 1.0) / (total + 2.0), dtype=np.float64)
        return np.asarray((active + self.strength * self.prior) / (total + self.strength), dtype=np.float64)

    def predict(self, series: PairSeries, origins: IntArray, horizon: int) -> FloatArray:
        """``P(active)[O, H, P]``."""
        return self._from_state(self.state_before(series, origins), horizon)

    def state_before(self, series: PairSeries, origins: IntArray) -> npt.NDArray[np.int64]:
        """``[O, P]``: each pair's state at ``o-1``, read from the steps the windows before ``origins``
        hold (not the whole series)."""
        if not self.absent:
            return (series.values[origins - 1] > self.threshold).astype(np.int64)
        first = int(origins.min()) - 1 if origins.size else 0
        part = series.slice(first, int(origins.max()) if origins.size else 0)
        return self.state(part)[origins - 1 - first]

    def predict_from(self, last_row: FloatArray, horizon: int) -> FloatArray:
        """``P(active)[H, P]`` after a step whose values are ``last_row[P]`` (two-state models)."""
        if self.absent:
            raise TrafficError(
                "a model with the absent state forecasts from a series, not a row", field="row"
            )
        state = (last_row[None, :] > self.threshold).astype(np.int64)
        return np.asarray(self._from_state(state, horizon)[0], dtype=np.float64)

    def _from_state(self, state: npt.NDArray[np.int64], horizon: int) -> FloatArray:
        prob = self.probability()  # [Hf, P, S]
        steps = step_index(horizon, prob.shape[0])
        by_step = prob[steps]  # [H, P, S]
        pair_idx = np.arange(state.shape[1])[None, None, :]
        return np.asarray(by_step[np.arange(horizon)[None, :, None], pair_idx, state[:, None, :]])
