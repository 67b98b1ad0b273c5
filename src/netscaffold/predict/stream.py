"""Running state of a fitted baseline: push one row per step, forecast from the end in O(pairs).

``predict_at`` recomputes a rule from the history it is given (an EWMA over the whole segment); a loop that
forecasts every tick (the engine, the service) keeps a :class:`BaselineStream` instead: each ``push`` folds
one new row into the state (the last rows in a ring, one EWMA level per tuned alpha) and ``forecast`` reads
the state. ``stream.forecast(H)`` after the rows of ``series[:o]`` equals ``model.predict_at(series, [o],
H)`` (tested), at a cost that does not grow with the history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError
from netscaffold.predict.base import Forecast, check_horizon

if TYPE_CHECKING:
    from netscaffold.predict.baselines import HistoricalQuantile, PointBaseline
    from netscaffold.predict.series import PairSeries

FloatArray = npt.NDArray[np.float64]


class RowRing:
    """The last ``capacity`` rows ``[P]`` of a series, newest last; ``ago(d)`` is the row ``d`` steps
    before the newest (``ago(0)`` the newest)."""

    def __init__(self, capacity: int, n_pairs: int) -> None:
        self.rows = np.zeros((max(capacity, 1), n_pairs))
        self.newest = -1
        self.count = 0

    def push(self, row: FloatArray) -> None:
        self.newest = (self.newest + 1) % self.rows.shape[0]
        self.rows[self.newest] = row
        self.count += 1

    def ago(self, back: npt.NDArray[np.int64]) -> FloatArray:
        """Rows ``[len(back), P]``, ``back[i]`` steps before the newest."""
        if back.size and int(back.max()) >= min(self.count, self.rows.shape[0]):
            raise TrafficError(
                f"the stream holds {min(self.count, self.rows.shape[0])} rows, asked for one "
                f"{int(back.max())} steps back",
                field="tm",
            )
        return np.asarray(self.rows[(self.newest - back) % self.rows.shape[0]], dtype=np.float64)

    def mean_last(self, k: int) -> FloatArray:
        return np.asarray(self.ago(np.arange(k, dtype=np.int64)).mean(axis=0), dtype=np.float64)


class BaselineStream:
    """A fitted baseline's running state over one contiguous series (start it with ``model.stream``)."""

    def __init__(self, model: PointBaseline | HistoricalQuantile, history: PairSeries) -> None:
        last_segment = history.slice(int(history.segment_start[-1]), history.steps)
        self.model = model
        self.n_pairs = history.n_pairs
        self.ring = RowRing(model.min_context, history.n_pairs)
        self.alphas = model.stream_alphas()
        self.levels: dict[float, FloatArray] = {}
        for row in last_segment.values[-self.ring.rows.shape[0] :]:
            self.ring.push(row)
        self.ring.count = last_segment.steps
        if self.alphas:
            from netscaffold.predict.baselines import ewma_series

            for alpha in self.alphas:
                self.levels[alpha] = ewma_series(last_segment, alpha)[-1].copy()
        self.steps = history.steps

    def push(self, row: npt.ArrayLike) -> None:
        """Fold in the next step's values (``[P]``, the series unit)."""
        values = np.asarray(row, dtype=np.float64).reshape(-1)
        if values.size != self.n_pairs:
            raise TrafficError(f"a row needs {self.n_pairs} pair values, got {values.size}", field="row")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise TrafficError(f"step {self.steps}: values must be finite and >= 0", field="row")
        for alpha in self.levels:
            self.levels[alpha] = (1.0 - alpha) * self.levels[alpha] + alpha * values
        self.ring.push(values)
        self.steps += 1

    def last_row(self) -> FloatArray:
        return np.asarray(self.ring.ago(np.zeros(1, dtype=np.int64))[0], dtype=np.float64)

    def forecast(self, horizon: int) -> Forecast:
        """The forecast of the ``horizon`` steps after the last pushed row (origin = steps seen)."""
        check_horizon(horizon)
        if self.ring.count < self.model.min_context:
            raise TrafficError(
                f"model {self.model.name!r} needs {self.model.min_context} steps of contiguous history, the "
                f"stream holds {self.ring.count}",
                field="tm",
            )
        quantiles, activity = self.model.stream_forecast(self, horizon)
        return Forecast(
            origins=np.array([self.steps], dtype=np.int64),
            levels=self.model.levels,
            quantiles=quantiles[None],
            activity=activity[None],
        )
