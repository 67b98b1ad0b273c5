"""The forecasting predictor: a :mod:`netscaffold.predict` forecaster learning online from the run.

It records each tick's carried bit/s per pair, fits the forecaster once ``train_ticks`` ticks have been
seen, then forecasts the next horizon every tick and builds the PredictedGraph for the pairs whose activity
is worth considering. ``retrain`` (the refiner's drift verdict) fine-tunes on the recent window.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.engine.predictors import FloatArray, PairIndex
from netscaffold.model.events import FlowRequest
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.predicted import PredictedGraph
from netscaffold.model.qos import QosPolicy
from netscaffold.model.topology import Topology
from netscaffold.paths import PathFinder
from netscaffold.predict.lifecycle import ReplicaLifecycle

log = logging.getLogger(__name__)
DAY_S = 86_400.0


class ForecastPredictor:
    def __init__(
        self,
        model: str,
        index: PairIndex,
        topology: Topology,
        qos: QosPolicy,
        *,
        tick_s: float,
        horizon: int,
        train_ticks: int,
        seed: int = 0,
        model_options: dict[str, Any] | None = None,
        min_activity: float = 0.02,
        finder: PathFinder | None = None,
        endpoint_features: npt.NDArray[np.float32] | None = None,
        endpoint_names: tuple[str, ...] = (),
        lifecycle: ReplicaLifecycle | None = None,
    ) -> None:
        """``endpoint_features[T, E, F]``: per tick and endpoint, the telemetry the model may see (row ``t``
        only once tick ``t`` is over); each pair gets its source's then its destination's features.
        ``lifecycle``: orchestrator events, read as they become known, that adjust each forecast for the
        replicas too young to have a history and those gone (:mod:`netscaffold.predict.lifecycle`)."""
        from netscaffold.predict import make_forecaster

        self.name = model
        self.index = index
        self.topology = topology
        self.qos = qos
        self.tick_s = tick_s
        self.horizon = horizon
        self.train_ticks = train_ticks
        self.min_activity = min_activity
        self.finder = finder or PathFinder(topology)
        self.lifecycle = lifecycle
        self._learned_s = -np.inf
        """Where the forecaster's fit data ends, in run seconds. Retrains do not move it: they fine-tune on
        the recent window but the LSTM keeps its per-pair statistics (a pair unseen at fit stays unknown)."""
        self.forecaster = make_forecaster(model, horizon=horizon, seed=seed, **(model_options or {}))
        self._rows: list[FloatArray] = []
        self._errors_abs = 0.0
        self._actual_abs = 0.0
        self._last_point: FloatArray | None = None
        self.point_history: dict[int, FloatArray] = {}
        """Tick index -> the one-step-ahead median forecast made for it (for plots)."""
        self.fit_s = 0.0
        self.retrains = 0
        self._stream: Any = None
        """A baseline's running state (``model.stream``), pushed one row per tick; None for the LSTM."""
        self._groups = _app_groups(topology, index.pairs)
        """Per pair, caller application -> callee application: replicas of one application pair are
        exchangeable, which the LSTM's activity calibration pools over."""
        self._pair_features: npt.NDArray[np.float32] | None = None
        if endpoint_features is not None:
            from netscaffold.predict.telemetry_input import pair_features

            self._pair_features = pair_features(endpoint_features, endpoint_names, index.pairs)

    # -- the Predictor protocol ------------------------------------------------------------------
    def observe(self, sample: PerformanceSample, requests: list[FlowRequest]) -> None:
        del requests
        row = self.index.bps_row(sample)
        if self._last_point is not None:
            self._errors_abs += float(np.abs(self._last_point - row).sum())
            self._actual_abs += float(np.abs(row).sum())
        self._rows.append(row)
        if self.lifecycle is not None:
            self.lifecycle.observe(row)
        if self._stream is not None:
            self._stream.push(row)

    def predict(self, now_s: float) -> PredictedGraph | None:
        from netscaffold.predict.graph import likely_pairs_graph

        steps = len(self._rows)
        if steps < self.train_ticks or steps < self.forecaster.min_context:
            return None
        if not self.forecaster.fitted:
            self._fit()
        if self._stream is not None:
            forecast = self._stream.forecast(self.horizon)
        else:
            context = self._series(max(0, steps - max(self.forecaster.min_context, 1)), steps)
            forecast = self.forecaster.predict(context, self.horizon)
        if self.lifecycle is not None:
            forecast = self.lifecycle.adjust(forecast, now_s, self.tick_s, self._learned_s)
        self._last_point = np.asarray(forecast.point[0, 0], dtype=np.float64)
        self.point_history[steps] = self._last_point
        return likely_pairs_graph(
            forecast,
            self.index.pairs,
            min_activity=self.min_activity,
            topology=self.topology,
            finder=self.finder,
            qos=self.qos,
            t0_s=now_s,
            step_s=self.tick_s,
        )

    def retrain(self) -> None:
        if not self.forecaster.fitted:
            return
        steps = len(self._rows)
        window = max(self.forecaster.min_context + self.horizon + 1, self.train_ticks // 2)
        self.forecaster.partial_fit(self._series(max(0, steps - window), steps))
        self._start_stream()
        self.retrains += 1
        log.info("%s: partial_fit on the last %d ticks (drift)", self.name, min(window, steps))

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def nmae(self) -> float:
        """NMAE of the one-step-ahead median forecast over the ticks forecast so far."""
        return self._errors_abs / self._actual_abs if self._actual_abs > 0 else float("nan")

    def _fit(self) -> None:
        import time

        start = time.perf_counter()
        self.forecaster.fit(self._series(0, len(self._rows)))
        self._start_stream()
        self._learned_s = len(self._rows) * self.tick_s
        self.fit_s = time.perf_counter() - start
        log.info(
            "%s: fitted on %d ticks x %d pairs in %.2f s",
            self.name,
            len(self._rows),
            len(self.index),
            self.fit_s,
        )

    def _start_stream(self) -> None:
        """Baselines forecast from running state over the whole run so far (an EWMA keeps its level
        across ticks instead of restarting from a short context); the LSTM reads its window."""
        stream = getattr(self.forecaster, "stream", None)
        if stream is not None:
            self._stream = stream(self._series(0, len(self._rows)))

    def _series(self, start: int, stop: int) -> Any:
        from netscaffold.predict.series import PairSeries
        from netscaffold.predict.telemetry_input import EXOG_NAMES

        values = np.ascontiguousarray(np.vstack(self._rows[start:stop]))
        ticks = np.arange(start, stop, dtype=np.float64)
        # never a row past the ticks observed
        exog = None if self._pair_features is None else self._pair_features[start:stop]
        return PairSeries(
            values=values,
            pairs=self.index.pairs,
            nodes=tuple(dict.fromkeys(p for pair in self.index.pairs for p in pair)),
            interval_s=self.tick_s,
            unit="bit/s",
            time_of_day=(ticks * self.tick_s % DAY_S) / DAY_S,
            segment_start=np.zeros(stop - start, dtype=np.int64),
            exog=exog,
            exog_names=EXOG_NAMES if exog is not None else (),
            groups=self._groups,
        )


def _app_groups(topology: Topology, pairs: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """``"caller app->callee app"`` per pair (a node standing for itself is its own application)."""
    from netscaffold.predict.graph import attachment

    app = {name: attachment(topology, name)[1] for name in dict.fromkeys(p for pair in pairs for p in pair)}
    return tuple(f"{app[src]}->{app[dst]}" for src, dst in pairs)
