"""Forecasting in the service: stored telemetry -> per-step bit/s per pair -> the engine's
ForecastPredictor -> PredictedGraph (and the Scaffolder's plan from it); retrain fits the configured
forecaster, checks it on the last horizon it did not see, and saves a checkpoint."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from netscaffold.errors import TrafficError
from netscaffold.model.config import NetworkConfig
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import Plan
from netscaffold.model.predicted import PredictedGraph
from netscaffold.service.core import ConflictError, ServiceCore
from netscaffold.service.store import audit


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


def _predictor(core: ServiceCore, pairs: list[tuple[str, str]], values: np.ndarray) -> Any:
    from netscaffold.engine.forecasting import ForecastPredictor
    from netscaffold.engine.predictors import PairIndex

    s = core.settings
    index = PairIndex(tuple(pairs))
    predictor = ForecastPredictor(
        s.forecaster,
        index,
        core.require_topology(),
        _qos(),
        tick_s=s.step_s,
        horizon=s.horizon,
        train_ticks=2,
        min_activity=s.min_activity,
    )
    empty = np.zeros(0)
    for row in values:
        bytes_row = row * s.step_s / 8.0
        predictor.observe(
            PerformanceSample(0.0, s.step_s, (), empty, empty, empty, tuple(pairs), bytes_row), []
        )
    return predictor


def _qos() -> Any:
    from netscaffold.model.qos import QosPolicy

    return QosPolicy()


def predicted_graph(core: ServiceCore) -> PredictedGraph | None:
    pairs, values, start_s = _history(core)
    if values.shape[0] < 2:
        raise ConflictError(f"need telemetry over at least 2 steps of {core.settings.step_s} s")
    predictor = _predictor(core, pairs, values)
    try:
        graph: PredictedGraph | None = predictor.predict(start_s + values.shape[0] * core.settings.step_s)
    except TrafficError as exc:  # too little history for the forecaster: the state, not the request
        raise ConflictError(f"not enough telemetry to forecast yet: {exc.reason}") from None
    return graph


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


def _series(pairs: list[tuple[str, str]], values: np.ndarray, step_s: float) -> Any:
    from netscaffold.predict.series import PairSeries

    ticks = np.arange(values.shape[0], dtype=np.float64)
    return PairSeries(
        values=np.ascontiguousarray(values),
        pairs=tuple(pairs),
        nodes=tuple(dict.fromkeys(p for pair in pairs for p in pair)),
        interval_s=step_s,
        unit="bit/s",
        time_of_day=(ticks * step_s % 86_400.0) / 86_400.0,
        segment_start=np.zeros(values.shape[0], dtype=np.int64),
    )


def _fit(core: ServiceCore, pairs: list[tuple[str, str]], values: np.ndarray) -> Any:
    from netscaffold.predict import make_forecaster

    s = core.settings
    forecaster = make_forecaster(s.forecaster, horizon=s.horizon, seed=0)
    try:
        return forecaster.fit(_series(pairs, values, s.step_s))
    except TrafficError as exc:
        raise ConflictError(f"not enough telemetry to train yet: {exc.reason}") from None


def _held_out_nmae(core: ServiceCore, pairs: list[tuple[str, str]], values: np.ndarray) -> float:
    """NMAE of the median forecast of the last horizon by a model fitted on everything before it."""
    horizon = core.settings.horizon
    if values.shape[0] <= 2 * horizon + 2:
        return float("nan")
    seen = values[:-horizon]
    try:
        model = _fit(core, pairs, seen)
    except ConflictError:
        return float("nan")
    point = model.predict(_series(pairs, seen, core.settings.step_s), horizon).point[0]
    actual = values[-horizon:]
    total = float(np.abs(actual).sum())
    return float(np.abs(point - actual).sum() / total) if total > 0 else float("nan")


def retrain(core: ServiceCore, actor: str) -> dict[str, Any]:
    """Score the forecaster on the last horizon it did not see, then fit on everything and checkpoint."""
    pairs, values, _ = _history(core)
    started = time.perf_counter()
    nmae = _held_out_nmae(core, pairs, values)
    full = _fit(core, pairs, values)
    models_dir = core.state_dir / "models"
    models_dir.mkdir(exist_ok=True)
    now = core.now()
    checkpoint = models_dir / f"{core.settings.forecaster}.ckpt"
    full.save(checkpoint)
    with core.store.transaction() as conn:
        conn.execute(
            "INSERT INTO models (name, checkpoint, trained_at, steps, retrains) VALUES (?,?,?,?,1) "
            "ON CONFLICT(name) DO UPDATE SET checkpoint = excluded.checkpoint, "
            "trained_at = excluded.trained_at, steps = excluded.steps, retrains = retrains + 1",
            (core.settings.forecaster, str(checkpoint), now, int(values.shape[0])),
        )
        audit(conn, now, actor, "model.retrain", target=core.settings.forecaster, detail=f"nmae={nmae:.4g}")
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
