"""Out-of-period check on a real matrix series: fit every model on one contiguous segment, score it
rolling-origin on a later segment that it never saw (Abilene: fit on 2004-03-01..14, test on
2004-04-02..04, after a 2.5-week gap).

    .venv/bin/python benchmarks/forecast_holdout.py ../shared/data/abilene/abilene_tm_5min.npz [--json]

Prints ``{"models": {NAME: {"H": metrics}}, "best_baseline": {"H": NAME}, "lstm_ratio": {"H": ..}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from netscaffold.errors import TrafficError
from netscaffold.formats.traffic import load_traffic
from netscaffold.predict import PairSeries, make_forecaster
from netscaffold.predict.calibration import targets
from netscaffold.predict.evaluate import best_baselines, score
from netscaffold.predict.registry import MODEL_NAMES

HORIZONS = (1, 6)


def holdout(path: Path, seed: int) -> dict[str, Any]:
    series = PairSeries.from_tm(load_traffic(path))
    fit_part = series.first_segment()
    if fit_part.steps == series.steps:
        raise TrafficError(f"{path}: one contiguous segment, nothing held out after a gap", field="tm")
    models, train_s = {}, {}
    for name in MODEL_NAMES:
        kwargs: dict[str, Any] = {"seed": seed, "horizon": max(HORIZONS)}
        if name == "lstm":
            kwargs["device"] = "cpu"
        start = time.perf_counter()
        models[name] = make_forecaster(name, **kwargs).fit(fit_part)
        train_s[name] = time.perf_counter() - start
    context = max(m.min_context for m in models.values())
    origins = series.origins(context, max(HORIZONS), start=fit_part.steps)
    actual = targets(series, origins, max(HORIZONS))
    results = {
        name: {str(h): score(m.predict_at(series, origins, max(HORIZONS)), actual, h) for h in HORIZONS}
        for name, m in models.items()
    }
    best = best_baselines(results, HORIZONS)
    return {
        "models": results,
        "best_baseline": best,
        "lstm_ratio": {h: results["lstm"][h]["nmae"] / results[b][h]["nmae"] for h, b in best.items()},
        "train_s": train_s,
        "split": {"fit_steps": fit_part.steps, "test_origins": int(origins.size), "pairs": series.n_pairs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tm", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = holdout(args.tm, args.seed)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
