"""Honest baselines: last value, EWMA (alpha tuned), mean of the last k (k tuned), seasonal naive, and a
per-pair historical quantile. Each tunes its parameter per horizon step on the chronological validation
part (lowest NMAE) and gets its quantiles from empirical residuals there."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from netscaffold.errors import CheckpointError, TrafficError
from netscaffold.predict.base import Forecast, Forecaster, monotone
from netscaffold.predict.calibration import ActivityModel, ResidualQuantiles, step_index, targets
from netscaffold.predict.series import DAY_S, PairSeries
from netscaffold.predict.stream import BaselineStream

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class PointBaseline(Forecaster):
    """A point rule with one tuned parameter, plus residual quantiles and the activity model."""

    default_candidates: ClassVar[tuple[float, ...]] = (0.0,)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.candidates: tuple[float, ...] = self.default_candidates
        self.params_by_step: FloatArray = np.zeros(0)
        self.residuals = ResidualQuantiles(self.levels)
        self.activity = ActivityModel()

    @abstractmethod
    def _points(self, series: PairSeries, origins: IntArray, horizon: int, param: float) -> FloatArray:
        """Point forecasts ``[O, H, P]`` with one parameter value."""

    def _stream_points(self, stream: BaselineStream, horizon: int, param: float) -> FloatArray:
        """Point forecasts ``[H, P]`` from a stream's running state (the same rule as ``_points``)."""
        del param
        return np.repeat(stream.last_row()[None, :], horizon, axis=0)

    def _context_for(self, param: float) -> int:  # noqa: ARG002 (most rules need one step whatever the param)
        return 1

    def stream(self, history: PairSeries) -> BaselineStream:
        """Running state after ``history``: ``push(row)`` each new step, ``forecast(H)`` in O(pairs)."""
        self._check_ready(history)
        return BaselineStream(self, history)

    def stream_alphas(self) -> tuple[float, ...]:
        """EWMA levels the stream must keep (none but for the EWMA)."""
        return ()

    def stream_forecast(self, stream: BaselineStream, horizon: int) -> tuple[FloatArray, FloatArray]:
        params = self.params_by_step[step_index(horizon, self.params_by_step.size)]
        point = np.empty((horizon, stream.n_pairs))
        for value in np.unique(params):
            steps = np.flatnonzero(params == value)
            point[steps] = self._stream_points(stream, horizon, float(value))[steps]
        quantiles = self.residuals.apply(point[None])[0]
        return quantiles, self.activity.predict_from(stream.last_row(), horizon)

    @property
    def min_context(self) -> int:
        params = self.params_by_step if self.params_by_step.size else np.asarray(self.candidates)
        return max(self._context_for(float(p)) for p in params)

    def _fit(self, history: PairSeries, split: int) -> None:
        context = max(self._context_for(c) for c in self.candidates)
        origins = history.origins(context, self.horizon, start=split)
        if origins.size == 0:
            raise TrafficError(
                f"model {self.name!r}: no validation origin with {context} steps of history and "
                f"{self.horizon} targets after step {split}; give a longer history",
                field="tm",
            )
        actual = targets(history, origins, self.horizon)
        scores = np.stack(
            [_nmae_by_step(self._points(history, origins, self.horizon, c), actual) for c in self.candidates]
        )  # [C, H]
        self.params_by_step = np.asarray(self.candidates, dtype=np.float64)[np.argmin(scores, axis=0)]
        self.residuals.fit(self._tuned_points(history, origins, self.horizon), actual)
        self.activity.fit(history, self.horizon)

    def _tuned_points(self, series: PairSeries, origins: IntArray, horizon: int) -> FloatArray:
        params = self.params_by_step[step_index(horizon, self.params_by_step.size)]
        out = np.empty((origins.size, horizon, series.n_pairs))
        for value in np.unique(params):
            steps = np.flatnonzero(params == value)
            out[:, steps] = self._points(series, origins, horizon, float(value))[:, steps]
        return out

    def _predict_at(self, series: PairSeries, origins: IntArray, horizon: int) -> Forecast:
        point = self._tuned_points(series, origins, horizon)
        return Forecast(
            origins=origins,
            levels=self.levels,
            quantiles=self.residuals.apply(point),
            activity=self.activity.predict(series, origins, horizon),
        )

    def _partial_fit(self, recent: PairSeries) -> None:
        origins = recent.origins(self.min_context, self.horizon)
        if origins.size:
            point = self._tuned_points(recent, origins, self.horizon)
            self.residuals.update(point, targets(recent, origins, self.horizon))
        self.activity.update(recent)

    def config(self) -> dict[str, Any]:
        return {**self.base_config(), "residual_count": self.residuals.count}

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {
            "params_by_step": self.params_by_step,
            "residual_quantiles": self.residuals.table,
            "activity_counts": self.activity.counts,
        }

    def restore(self, config: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.params_by_step = np.asarray(arrays["params_by_step"], dtype=np.float64)
        self.residuals.table = np.asarray(arrays["residual_quantiles"], dtype=np.float64)
        self.residuals.count = int(config.get("residual_count", 0))
        self.activity.counts = np.asarray(arrays["activity_counts"], dtype=np.float64)
        shapes_ok = (
            self.params_by_step.ndim == 1
            and self.residuals.table.shape[-1] == len(self.levels)
            and self.activity.counts.shape[1:] == (len(self.pairs), 2, 2)
        )
        if not shapes_ok:
            raise CheckpointError("arrays do not match the model's pairs or levels", element=self.name)


def _nmae_by_step(point: FloatArray, actual: FloatArray) -> FloatArray:
    return np.asarray(
        np.abs(point - actual).sum(axis=(0, 2)) / np.maximum(actual.sum(axis=(0, 2)), 1e-12),
        dtype=np.float64,
    )


def _repeat(last: FloatArray, horizon: int) -> FloatArray:
    return np.asarray(np.repeat(last[:, None, :], horizon, axis=1), dtype=np.float64)


class LastValue(PointBaseline):
    name = "naive"

    def _points(
        self,
        series: PairSeries,
        origins: IntArray,
        horizon: int,
        param: float,  # noqa: ARG002 (the rule has no parameter; the signature is shared)
    ) -> FloatArray:
        return _repeat(series.values[origins - 1], horizon)


class Ewma(PointBaseline):
    """Exponentially weighted mean, restarted at each segment; alpha tuned per horizon step."""

    name = "ewma"
    default_candidates = (
        0.05,
        0.1,
        0.15,
        0.2,
        0.25,
        0.3,
        0.35,
        0.4,
        0.45,
        0.5,
        0.55,
        0.6,
        0.7,
        0.8,
        0.9,
        1.0,
    )

    def _points(self, series: PairSeries, origins: IntArray, horizon: int, param: float) -> FloatArray:
        return _repeat(ewma_series(series, param)[origins - 1], horizon)

    def stream_alphas(self) -> tuple[float, ...]:
        return tuple(float(a) for a in np.unique(self.params_by_step))

    def _stream_points(self, stream: BaselineStream, horizon: int, param: float) -> FloatArray:
        return np.repeat(stream.levels[param][None, :], horizon, axis=0)


def ewma_series(series: PairSeries, alpha: float) -> FloatArray:
    from scipy.signal import lfilter

    out = np.empty_like(series.values)
    starts = np.unique(series.segment_start)
    stops = [*starts[1:].tolist(), series.steps]
    for start, stop in zip(starts.tolist(), stops, strict=True):
        chunk = series.values[start:stop]
        initial = (1.0 - alpha) * chunk[:1]
        out[start:stop], _ = lfilter([alpha], [1.0, alpha - 1.0], chunk, axis=0, zi=initial)
    return out


class MeanK(PointBaseline):
    """Mean of the last k steps; k tuned per horizon step."""

    name = "meank"
    default_candidates = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0)

    def _context_for(self, param: float) -> int:
        return int(param)

    def _points(self, series: PairSeries, origins: IntArray, horizon: int, param: float) -> FloatArray:
        k = int(param)
        cumulative = np.concatenate([np.zeros((1, series.n_pairs)), np.cumsum(series.values, axis=0)])
        return _repeat((cumulative[origins] - cumulative[origins - k]) / k, horizon)

    def _stream_points(self, stream: BaselineStream, horizon: int, param: float) -> FloatArray:
        return np.repeat(stream.ring.mean_last(int(param))[None, :], horizon, axis=0)


class SeasonalNaive(PointBaseline):
    """The value one period earlier; the period comes from the data (autocorrelation of the total)."""

    name = "seasonal"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.period = 0

    def _fit(self, history: PairSeries, split: int) -> None:
        self.period = detect_period(history.slice(0, split))
        self.candidates = (float(self.period),)
        super()._fit(history, split)

    def _context_for(self, param: float) -> int:
        return int(param)

    def _points(self, series: PairSeries, origins: IntArray, horizon: int, param: float) -> FloatArray:
        period = int(param)
        h = np.arange(horizon)
        lag = period * (h // period + 1)
        return np.asarray(series.values[origins[:, None] + h[None, :] - lag[None, :]], dtype=np.float64)

    def _stream_points(self, stream: BaselineStream, horizon: int, param: float) -> FloatArray:
        period = int(param)
        h = np.arange(horizon, dtype=np.int64)
        return stream.ring.ago(period * (h // period + 1) - h - 1)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "period": self.period}

    def restore(self, config: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
        super().restore(config, arrays)
        self.period = int(config["period"])
        self.candidates = (float(self.period),)


def detect_period(series: PairSeries) -> int:
    """The lag of highest autocorrelation of the total traffic past the first dip of its (smoothed)
    autocorrelation, in the longest segment; a fraction of it that is nearly as high wins (a day rather
    than two), and a lag within 10% of one day or one week snaps to it. One day of steps when the segment
    is too short to tell. Needs one full period of history."""
    starts = series.segment_start
    lengths = np.bincount(starts, minlength=series.steps)
    start = int(np.argmax(lengths))
    total = series.values[start : start + int(lengths[start])].sum(axis=1)
    day_steps = max(2, round(DAY_S / series.interval_s))
    period = _acf_peak(total) if total.size >= 16 else None
    if period is None:
        period = day_steps
    for calendar in (day_steps, 7 * day_steps):
        if abs(period - calendar) <= 0.1 * calendar:
            period = calendar
    if total.size <= period:
        raise TrafficError(
            f"seasonal naive needs at least one full period ({period} steps) of history, got {total.size}",
            field="tm",
        )
    return period


def _acf_peak(total: FloatArray) -> int | None:
    centred = total - total.mean()
    n = centred.size
    spectrum = np.fft.rfft(centred, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: n // 2]
    if acf[0] <= 0:
        return None
    width = max(3, n // 200)
    acf = np.convolve(acf / acf[0], np.ones(width) / width, mode="same")
    rising = np.flatnonzero(np.diff(acf[width:]) > 0)
    if rising.size == 0:
        return None
    first = width + int(rising[0])
    peak = first + int(np.argmax(acf[first:]))
    if acf[peak] <= 0.1:
        return None
    for divisor in (5, 4, 3, 2):
        lag = round(peak / divisor)
        if lag >= first + 2 and acf[lag - 2 : lag + 3].max() >= 0.8 * acf[peak]:
            return int(lag - 2 + int(np.argmax(acf[lag - 2 : lag + 3])))
    return int(peak)


class HistoricalQuantile(Forecaster):
    """Per pair, the empirical quantiles of its whole history (ignores the recent window)."""

    name = "quantile"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table: FloatArray = np.zeros((0, len(self.levels)))
        self.count = 0
        self.activity = ActivityModel()

    @property
    def min_context(self) -> int:
        return 1

    def _fit(self, history: PairSeries, split: int) -> None:  # noqa: ARG002 (nothing to tune)
        self.table = np.asarray(np.quantile(history.values, self.levels, axis=0).T, dtype=np.float64)
        self.count = history.steps
        self.activity.fit(history, self.horizon)

    def _predict_at(self, series: PairSeries, origins: IntArray, horizon: int) -> Forecast:
        quantiles = np.broadcast_to(self.table, (origins.size, horizon, *self.table.shape))
        return Forecast(
            origins=origins,
            levels=self.levels,
            quantiles=monotone(np.array(quantiles)),
            activity=self.activity.predict(series, origins, horizon),
        )

    def stream(self, history: PairSeries) -> BaselineStream:
        """Running state after ``history`` (only the last row matters: the activity state)."""
        self._check_ready(history)
        return BaselineStream(self, history)

    def stream_alphas(self) -> tuple[float, ...]:
        return ()

    def stream_forecast(self, stream: BaselineStream, horizon: int) -> tuple[FloatArray, FloatArray]:
        quantiles = monotone(np.array(np.broadcast_to(self.table, (horizon, *self.table.shape))))
        return quantiles, self.activity.predict_from(stream.last_row(), horizon)

    def _partial_fit(self, recent: PairSeries) -> None:
        new = np.quantile(recent.values, self.levels, axis=0).T
        weight = recent.steps / (recent.steps + self.count)
        self.table = (1.0 - weight) * self.table + weight * new
        self.count += recent.steps
        self.activity.update(recent)

    def config(self) -> dict[str, Any]:
        return {**self.base_config(), "count": self.count}

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {"table": self.table, "activity_counts": self.activity.counts}

    def restore(self, config: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.table = np.asarray(arrays["table"], dtype=np.float64)
        self.activity.counts = np.asarray(arrays["activity_counts"], dtype=np.float64)
        self.count = int(config.get("count", 0))
        if self.table.shape != (len(self.pairs), len(self.levels)):
            raise CheckpointError("arrays do not match the model's pairs or levels", element=self.name)
