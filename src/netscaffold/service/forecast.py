"""Forecasting in the service: stored telemetry -> per-step bit/s per pair -> the configured forecaster's
forecast of the next horizon -> PredictedGraph (and the Scaffolder's plan from it); retrain fits the
configured forecaster, checks it on the last horizon it did not see, and saves a checkpoint.

The heavy part (fitting, forecasting) is an :class:`AnalyticsJob` handed to the core's analytics runner:
:class:`InProcessAnalytics` (default) runs it in the route's worker thread; ``serve --ray`` installs
``netscaffold.distributed.service.RayAnalytics``, which runs the same functions as Ray tasks and forecasts
through the sharded inference path, with the same numbers. Reading telemetry, building the graph, writing
the checkpoint and the database stay in the server process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from netscaffold.errors import BackendUnavailableError, NetscaffoldError, TrafficError
from netscaffold.model.config import NetworkConfig
from netscaffold.model.plan import Plan
from netscaffold.model.predicted import PredictedGraph
from netscaffold.predict.base import Forecast
from netscaffold.predict.lifecycle import ReplicaLifecycle
from netscaffold.service.core import ConflictError, ServiceCore
from netscaffold.service.store import audit

if TYPE_CHECKING:
    from netscaffold.predict.base import Forecaster
    from netscaffold.predict.series import PairSeries


def _history(core: ServiceCore) -> tuple[list[tuple[str, str]], np.ndarray, float]:
    """(pairs, bit/s [T, P] per step, start of the first step) over the last ``history_steps`` steps."""
    step_s = core.settings.step_s
    with core.store.reading() as conn:
        newest = conn.execute("SELECT max(time_s) FROM telemetry").fetchone()[0]
        if newest is None:
            raise ConflictError("no telemetry yet: POST /v1/telemetry first")
        last_step = int(newest // step_s)
        first_step = last_step - core.settings.history_steps + 1
        rows = conn.execute(
            "SELECT CAST(time_s / ? AS INTEGER) AS step, src, dst, sum(bytes) FROM telemetry "
            "WHERE time_s >= ? GROUP BY step, src, dst",
            (step_s, first_step * step_s),
        ).fetchall()
    pairs = sorted({(src, dst) for _, src, dst, _ in rows})
    column = {pair: i for i, pair in enumerate(pairs)}
    first = min(step for step, *_ in rows)
    values = np.zeros((last_step - first + 1, len(pairs)))
    for step, src, dst, total in rows:
        values[step - first, column[(src, dst)]] += total * 8.0 / step_s
    return pairs, values, first * step_s


def _job(core: ServiceCore, pairs: list[tuple[str, str]], values: np.ndarray) -> AnalyticsJob:
    s = core.settings
    return AnalyticsJob(s.forecaster, s.horizon, s.step_s, tuple(pairs), values)


def _qos() -> Any:
    from netscaffold.model.qos import QosPolicy

    return QosPolicy()


def predicted_graph(core: ServiceCore) -> PredictedGraph | None:
    """The forecast of the next horizon after the newest telemetry step, as a PredictedGraph (None when
    there is too little history for the forecaster or no pair is likely active)."""
    pairs, values, start_s = _history(core)
    if values.shape[0] < 2:
        raise ConflictError(f"need telemetry over at least 2 steps of {core.settings.step_s} s")
    t0_s = start_s + values.shape[0] * core.settings.step_s
    pairs, values, lifecycle = _replica_lifecycle(core, pairs, values, t0_s)
    job = _job(core, pairs, values)
    forecast = run_job(core, "forecast", lambda: core.analytics.forecast(job))
    if forecast is None:
        return None
    if lifecycle is not None:
        forecast = lifecycle.adjust(forecast, t0_s, job.step_s, known_s=core.now())
    return _graph(core, job, forecast, t0_s)


def _replica_lifecycle(
    core: ServiceCore, pairs: list[tuple[str, str]], values: np.ndarray, t0_s: float
) -> tuple[list[tuple[str, str]], np.ndarray, ReplicaLifecycle | None]:
    """With orchestrator events ingested: the pairs that young replicas will form join the history (empty),
    and the lifecycle that adjusts the forecast for young and gone replicas (None without events)."""
    from netscaffold.service.ingest import orchestrator_events

    events = orchestrator_events(core)
    if not events:
        return pairs, values, None
    topology = core.require_topology()
    lifecycle = ReplicaLifecycle(topology, pairs, events)
    lifecycle.observe(values.max(axis=0))
    extra = lifecycle.new_pairs(max(t0_s, core.now()))
    if extra:
        pairs = pairs + extra
        values = np.hstack([values, np.zeros((values.shape[0], len(extra)))])
        lifecycle = ReplicaLifecycle(topology, pairs, events)
        lifecycle.observe(values.max(axis=0))
    return pairs, values, lifecycle


def _graph(core: ServiceCore, job: AnalyticsJob, forecast: Forecast, t0_s: float) -> PredictedGraph | None:
    """The pairs likely active within the horizon, with their ECMP paths (as the engine builds its graph)."""
    from netscaffold.paths import PathFinder
    from netscaffold.predict.graph import likely_pairs_graph

    topology = core.require_topology()
    return likely_pairs_graph(
        forecast,
        job.pairs,
        min_activity=core.settings.min_activity,
        topology=topology,
        finder=PathFinder(topology),
        qos=_qos(),
        t0_s=t0_s,
        step_s=job.step_s,
    )


def graph_json(graph: PredictedGraph | None) -> dict[str, Any]:
    if graph is None:
        return {"pairs": [], "horizon": 0}
    paths = [
        {"pair": list(graph.pairs[int(p)]), "path": list(path), "probability": float(prob)}
        for path, p, prob in zip(
            graph.paths,
            graph.path_pair if graph.path_pair is not None else [],
            graph.path_prob if graph.path_prob is not None else [],
            strict=False,
        )
    ]
    return {
        "t0_s": graph.t0_s,
        "step_s": graph.step_s,
        "horizon": graph.horizon,
        "pairs": [f"{a}->{b}" for a, b in graph.pairs],
        "quantile_levels": list(graph.quantile_levels),
        "activity": graph.activity.tolist(),
        "bandwidth_bps": graph.bandwidth_bps.tolist(),
        "latency_bound_s": [None if np.isnan(v) else float(v) for v in graph.latency_bound_s],
        "paths": paths,
    }


def scaffold_plan(core: ServiceCore, current: NetworkConfig, now_s: float) -> Plan:
    from netscaffold.scaffold.planner import Scaffolder
    from netscaffold.scaffold.policy import ScaffoldPolicy

    graph = predicted_graph(core)
    if graph is None:
        return Plan()
    policy = ScaffoldPolicy(budget=core.budget, ttl_margin_s=core.settings.ttl_margin_s)
    shifted = PredictedGraph(
        now_s,
        graph.step_s,
        graph.pairs,
        graph.quantile_levels,
        graph.activity,
        graph.bandwidth_bps,
        graph.latency_bound_s,
        graph.paths,
        graph.path_pair,
        graph.path_prob,
    )
    return Scaffolder(core.require_topology(), _qos(), policy).plan(shifted, current, now_s).plan


def _series(pairs: tuple[tuple[str, str], ...], values: np.ndarray, step_s: float) -> PairSeries:
    from netscaffold.predict.series import PairSeries

    ticks = np.arange(values.shape[0], dtype=np.float64)
    return PairSeries(
        values=np.array(values, dtype=np.float64, order="C"),  # a writable copy (Ray hands out read-only)
        pairs=pairs,
        nodes=tuple(dict.fromkeys(p for pair in pairs for p in pair)),
        interval_s=step_s,
        unit="bit/s",
        time_of_day=(ticks * step_s % 86_400.0) / 86_400.0,
        segment_start=np.zeros(values.shape[0], dtype=np.int64),
    )


# -- the analytics: pure functions of an AnalyticsJob, run by an AnalyticsRunner ----------------------
@dataclass(frozen=True, eq=False)
class AnalyticsJob:
    """What the heavy analytics need (picklable: a Ray task gets it whole): the configured forecaster,
    horizon and step, and bit/s ``values[T, P]`` of ``pairs`` per step, oldest first."""

    forecaster: str
    horizon: int
    step_s: float
    pairs: tuple[tuple[str, str], ...]
    values: np.ndarray

    def series(self, stop: int | None = None) -> PairSeries:
        """The steps before ``stop`` (all by default) as a PairSeries."""
        return _series(self.pairs, self.values[:stop], self.step_s)


@dataclass(frozen=True, eq=False)
class RetrainResult:
    model: Forecaster
    """Fitted on every step of the job."""
    nmae: float
    """Of the median forecast of the last horizon by a model fitted on the steps before it (NaN when the
    history is too short to hold one out)."""


def fit_model(job: AnalyticsJob, stop: int | None = None, *, purpose: str = "train") -> Forecaster:
    """The job's forecaster fitted (seed 0) on the steps before ``stop``; too little history -> 409."""
    from netscaffold.predict import make_forecaster

    forecaster = make_forecaster(job.forecaster, horizon=job.horizon, seed=0)
    try:
        return forecaster.fit(job.series(stop))
    except TrafficError as exc:  # the state, not the request
        raise ConflictError(f"not enough telemetry to {purpose} yet: {exc.reason}") from None


def fit_for_forecast(job: AnalyticsJob) -> Forecaster | None:
    """The forecaster fitted on the whole job, or None while the history is shorter than its context."""
    from netscaffold.predict import make_forecaster

    steps = job.values.shape[0]
    if steps < 2 or steps < make_forecaster(job.forecaster, horizon=job.horizon, seed=0).min_context:
        return None
    return fit_model(job, purpose="forecast")


def forecast_next(model: Forecaster, job: AnalyticsJob) -> Forecast:
    """The forecast of the horizon after the job's last step: a baseline from its running state over the
    whole history, the LSTM from its window (what the engine's ForecastPredictor does)."""
    series = job.series()
    try:
        stream = getattr(model, "stream", None)
        if stream is not None:
            forecast: Forecast = stream(series).forecast(job.horizon)
            return forecast
        return model.predict(series, job.horizon)
    except TrafficError as exc:
        raise ConflictError(f"not enough telemetry to forecast yet: {exc.reason}") from None


def train_and_score(job: AnalyticsJob) -> RetrainResult:
    """Score the forecaster on the last horizon it did not see, then fit it on everything."""
    nmae = _held_out_nmae(job)
    return RetrainResult(fit_model(job), nmae)


def _held_out_nmae(job: AnalyticsJob) -> float:
    """NMAE of the median forecast of the last horizon by a model fitted on everything before it."""
    horizon = job.horizon
    steps = job.values.shape[0]
    if steps <= 2 * horizon + 2:
        return float("nan")
    try:
        model = fit_model(job, stop=steps - horizon)
    except ConflictError:
        return float("nan")
    point = model.predict(job.series(steps - horizon), horizon).point[0]
    actual = job.values[-horizon:]
    total = float(np.abs(actual).sum())
    return float(np.abs(point - actual).sum() / total) if total > 0 else float("nan")


class InProcessAnalytics:
    """The default runner: the analytics in the server process (a route's worker thread)."""

    remote = False

    def forecast(self, job: AnalyticsJob) -> Forecast | None:
        model = fit_for_forecast(job)
        return None if model is None else forecast_next(model, job)

    def retrain(self, job: AnalyticsJob) -> RetrainResult:
        return train_and_score(job)

    def status(self) -> dict[str, Any]:
        return {"ray": False, "address": None}

    def close(self) -> None:
        return None


T = TypeVar("T")


def run_job(core: ServiceCore, kind: str, job: Callable[[], T]) -> T:
    """``job()`` on the core's runner; a remote runner's jobs are counted by kind and outcome."""
    if not core.analytics.remote:
        return job()
    try:
        result = job()
    except BackendUnavailableError:
        core.metrics.ray_jobs.labels(kind=kind, outcome="unavailable").inc()
        raise
    except NetscaffoldError:
        core.metrics.ray_jobs.labels(kind=kind, outcome="refused").inc()
        raise
    except Exception:
        core.metrics.ray_jobs.labels(kind=kind, outcome="failed").inc()
        raise
    core.metrics.ray_jobs.labels(kind=kind, outcome="ok").inc()
    return result


def retrain(core: ServiceCore, actor: str) -> dict[str, Any]:
    """Score the forecaster on the last horizon it did not see, then fit on everything and checkpoint
    (the fitting on the core's analytics runner; the checkpoint and the database here)."""
    pairs, values, _ = _history(core)
    started = time.perf_counter()
    job = _job(core, pairs, values)
    result = run_job(core, "retrain", lambda: core.analytics.retrain(job))
    nmae = result.nmae
    models_dir = core.state_dir / "models"
    models_dir.mkdir(exist_ok=True)
    now = core.now()
    checkpoint = models_dir / f"{job.forecaster}.ckpt"
    result.model.save(checkpoint)
    with core.store.transaction() as conn:
        conn.execute(
            "INSERT INTO models (name, checkpoint, trained_at, steps, retrains) VALUES (?,?,?,?,1) "
            "ON CONFLICT(name) DO UPDATE SET checkpoint = excluded.checkpoint, "
            "trained_at = excluded.trained_at, steps = excluded.steps, retrains = retrains + 1",
            (job.forecaster, str(checkpoint), now, int(values.shape[0])),
        )
        audit(conn, now, actor, "model.retrain", target=job.forecaster, detail=f"nmae={nmae:.4g}")
    core.metrics.retrains.inc()
    if np.isfinite(nmae):
        core.metrics.forecast_error.set(nmae)
    return {
        **model_status(core),
        "nmae": None if not np.isfinite(nmae) else nmae,
        "fit_s": time.perf_counter() - started,
    }


def model_status(core: ServiceCore) -> dict[str, Any]:
    with core.store.reading() as conn:
        rows = conn.execute(
            "SELECT name, checkpoint, trained_at, steps, retrains FROM models ORDER BY name"
        ).fetchall()
        # max and min in separate subqueries: each is one rowid lookup (together they scan the table)
        samples = conn.execute(
            "SELECT coalesce((SELECT max(seq) FROM telemetry) - (SELECT min(seq) FROM telemetry) + 1, 0)"
        ).fetchone()[0]
    models = [
        {"name": n, "checkpoint": c, "trained_at": t, "steps": s, "retrains": r} for n, c, t, s, r in rows
    ]
    return {"forecaster": core.settings.forecaster, "telemetry_samples": samples, "models": models}
