"""Out-of-period check on a real matrix series: fit every model on one contiguous segment, score it
rolling-origin on a later segment that it never saw (Abilene: fit on 2004-03-01..14, test on
2004-04-02..04, after a 2.5-week gap).

    .venv/bin/python benchmarks/forecast_holdout.py ../shared/data/abilene/abilene_tm_5min.npz [--json]
        [--seed N | --seeds 0,1,2,3,4]

Prints ``{"models": {NAME: {"H": metrics}}, "best_baseline": {"H": NAME}, "lstm_ratio": {"H": ..}, ...}``
(``models`` and ``lstm_ratio`` of the first seed). With ``--seeds`` the baselines are fitted once and the
LSTM once per seed, one after another; ``lstm_by_seed`` holds each seed's LSTM metrics and ratios, and
``seeds_summary`` per horizon the mean, min and max of the ratio and of the q90 coverage.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from netscaffold.errors import TrafficError
from netscaffold.formats.traffic import load_traffic
from netscaffold.predict import PairSeries, make_forecaster
from netscaffold.predict.base import Forecaster
from netscaffold.predict.calibration import targets
from netscaffold.predict.evaluate import best_baselines, score
from netscaffold.predict.registry import MODEL_NAMES

HORIZONS = (1, 6)


def holdout(path: Path, seeds: list[int]) -> dict[str, Any]:
    series = PairSeries.from_tm(load_traffic(path))
    fit_part = series.first_segment()
    if fit_part.steps == series.steps:
        raise TrafficError(f"{path}: one contiguous segment, nothing held out after a gap", field="tm")
    horizon = max(HORIZONS)

    def fitted(name: str, seed: int) -> tuple[Forecaster, float]:
        kwargs: dict[str, Any] = {"seed": seed, "horizon": horizon}
        if name == "lstm":
            kwargs["device"] = "cpu"
        start = time.perf_counter()
        model = make_forecaster(name, **kwargs).fit(fit_part)
        return model, time.perf_counter() - start

    models, train_s = {}, {}
    for name in MODEL_NAMES:
        models[name], train_s[name] = fitted(name, seeds[0])
    context = max(m.min_context for m in models.values())
    origins = series.origins(context, horizon, start=fit_part.steps)
    actual = targets(series, origins, horizon)

    def scored(model: Forecaster) -> dict[str, dict[str, float]]:
        forecast = model.predict_at(series, origins, horizon)
        return {str(h): score(forecast, actual, h) for h in HORIZONS}

    results = {name: scored(model) for name, model in models.items()}
    best = best_baselines(results, HORIZONS)

    def ratios(lstm: dict[str, dict[str, float]]) -> dict[str, float]:
        return {h: lstm[h]["nmae"] / results[b][h]["nmae"] for h, b in best.items()}

    out: dict[str, Any] = {
        "models": results,
        "best_baseline": best,
        "lstm_ratio": ratios(results["lstm"]),
        "train_s": train_s,
        "split": {"fit_steps": fit_part.steps, "test_origins": int(origins.size), "pairs": series.n_pairs},
    }
    if len(seeds) > 1:
        by_seed = {
            str(seeds[0]): {"metrics": results["lstm"], "ratio": out["lstm_ratio"], "fit_s": train_s["lstm"]}
        }
        for seed in seeds[1:]:
            model, fit_s = fitted("lstm", seed)
            metrics = scored(model)
            by_seed[str(seed)] = {"metrics": metrics, "ratio": ratios(metrics), "fit_s": fit_s}
        out["lstm_by_seed"] = by_seed
        out["seeds_summary"] = {h: _spread(by_seed, h) for h in best}
    return out


def _spread(by_seed: dict[str, dict[str, Any]], h: str) -> dict[str, float]:
    ratio = [run["ratio"][h] for run in by_seed.values()]
    coverage = [run["metrics"][h]["coverage_q90"] for run in by_seed.values()]
    return {
        "ratio_mean": statistics.fmean(ratio),
        "ratio_min": min(ratio),
        "ratio_max": max(ratio),
        "coverage_q90_mean": statistics.fmean(coverage),
        "coverage_q90_min": min(coverage),
        "coverage_q90_max": max(coverage),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tm", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", help="comma-separated seeds of the LSTM (overrides --seed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    result = holdout(args.tm, seeds)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
