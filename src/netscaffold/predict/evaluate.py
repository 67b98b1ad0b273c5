"""Fair comparisons: every model is fitted on the same chronological first part and scored rolling-origin
on the same test origins of the rest (each origin sees only the steps before it)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError, ValidationError
from netscaffold.predict import metrics
from netscaffold.predict.base import Forecast, Forecaster, check_horizon
from netscaffold.predict.calibration import targets
from netscaffold.predict.registry import BASELINE_NAMES, make_forecaster
from netscaffold.predict.series import PairSeries

FloatArray = npt.NDArray[np.float64]


def train_split(series: PairSeries, train_fraction: float) -> int:
    if not 0.1 <= train_fraction <= 0.95:
        raise ValidationError(
            f"train fraction must be in [0.1, 0.95], got {train_fraction}", field="train-fraction"
        )
    return round(series.steps * train_fraction)


def score(forecast: Forecast, actual: FloatArray, step: int) -> dict[str, float]:
    """Metrics of horizon step ``step`` (1-based) over every origin and pair."""
    truth = actual[:, step - 1]
    quantiles = forecast.quantiles[:, step - 1]
    out = {
        "nmae": metrics.nmae(truth, forecast.point[:, step - 1]),
        "mae": metrics.mae(truth, forecast.point[:, step - 1]),
        "rmse": metrics.rmse(truth, forecast.point[:, step - 1]),
        "pinball": float(
            np.mean([metrics.pinball(truth, quantiles[..., i], q) for i, q in enumerate(forecast.levels)])
        ),
    }
    for level in (0.9, 0.99):
        if any(abs(level - q) < 1e-9 for q in forecast.levels):
            name = f"coverage_q{round(level * 100)}"
            out[name] = metrics.coverage(truth, quantiles[..., forecast.level_index(level)])
    active, prob = truth > 0, forecast.activity[:, step - 1]
    out["activity_precision"] = metrics.precision(active, prob)
    out["activity_recall"] = metrics.recall(active, prob)
    out["activity_brier"] = metrics.brier(active, prob)
    return out


def evaluate_models(
    series: PairSeries,
    names: Sequence[str],
    horizons: Sequence[int],
    *,
    train_fraction: float = 0.7,
    seed: int = 0,
    model_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"models": {name: {"H": metrics}}, "best_baseline": {"H": name}, "train_s", "predict_s", ...}``."""
    if not names:
        raise ValidationError("no model to evaluate", field="models")
    for h in horizons:
        check_horizon(h)
    max_h = max(horizons)
    split = train_split(series, train_fraction)
    train = series.slice(0, split)
    fitted: dict[str, Forecaster] = {}
    train_s: dict[str, float] = {}
    for name in names:
        kwargs = {"seed": seed, "horizon": max(max_h, 1), **dict((model_kwargs or {}).get(name, {}))}
        model = make_forecaster(name, **kwargs)
        start = time.perf_counter()
        fitted[name] = model.fit(train)
        train_s[name] = time.perf_counter() - start
    return score_fitted(series, fitted, train_s, split=split, horizons=horizons)


def score_fitted(
    series: PairSeries,
    fitted: Mapping[str, Forecaster],
    train_s: Mapping[str, float],
    *,
    split: int,
    horizons: Sequence[int],
) -> dict[str, Any]:
    """Rolling-origin scores of models fitted on ``series[:split]``, over every origin after it (the
    document `forecast evaluate --json` prints; in one process or after fits on Ray)."""
    max_h = max(horizons)
    context = max(m.min_context for m in fitted.values())
    origins = series.origins(context, max_h, start=split)
    if origins.size == 0:
        raise TrafficError(
            f"no test origin after step {split} with {context} steps of history and {max_h} targets",
            field="tm",
        )
    actual = targets(series, origins, max_h)
    results: dict[str, dict[str, dict[str, float]]] = {}
    predict_s: dict[str, float] = {}
    for name, model in fitted.items():
        start = time.perf_counter()
        forecast = model.predict_at(series, origins, max_h)
        predict_s[name] = time.perf_counter() - start
        results[name] = {str(h): score(forecast, actual, h) for h in horizons}
    return {
        "models": results,
        "best_baseline": best_baselines(results, horizons),
        "train_s": dict(train_s),
        "predict_s": predict_s,
        "split": {"train_steps": split, "test_origins": int(origins.size), "pairs": series.n_pairs},
    }


def best_baselines(
    results: Mapping[str, Mapping[str, Mapping[str, float]]], horizons: Sequence[int]
) -> dict[str, str]:
    out: dict[str, str] = {}
    baselines = [n for n in results if n in BASELINE_NAMES]
    for h in horizons:
        if baselines:
            out[str(h)] = min(baselines, key=lambda n: results[n][str(h)]["nmae"])
    return out
