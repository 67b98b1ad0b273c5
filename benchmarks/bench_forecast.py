"""Forecasting benchmarks: inference latency (10,000 pairs x horizon 10), training throughput, and the
figures behind docs/forecasting.md (Abilene over seeds, the telemetry-features ablation).

    .venv/bin/python benchmarks/bench_forecast.py [--json]                 # speed only (synthetic series)
    .venv/bin/python benchmarks/bench_forecast.py --abilene ../shared/data/abilene/abilene_tm_5min.npz \
        --seeds 0,1,2,3,4 [--json]                                          # quality over seeds
    .venv/bin/python benchmarks/bench_forecast.py --ablation DIR [--json]   # microservices telemetry dir

Speed prints ``{"infer_ms_10k_pairs": .., "train_windows_per_s": .., "window": .., "baselines": {..}}``.
The machine is shared (2 cores): the load average is printed with every result.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from netscaffold.predict import PairSeries, make_forecaster
from netscaffold.predict.registry import BASELINE_NAMES

PAIRS, HORIZON = 10_000, 10


def synthetic(pairs: int, steps: int, seed: int = 0) -> PairSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    level = rng.lognormal(1.0, 1.5, pairs)
    values = level[None, :] * (1.0 + 0.4 * np.sin(2 * np.pi * t / 288))[:, None]
    values = values * rng.lognormal(0.0, 0.1, (steps, pairs))
    names = tuple((f"s{i}", f"d{i}") for i in range(pairs))
    return PairSeries(
        values, names, (), 300.0, "Mbit/s", np.mod(t * 300.0, 86_400.0) / 86_400.0,
        np.zeros(steps, dtype=np.int64), 1e6,
    )  # fmt: skip


def best_of(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def speed() -> dict[str, Any]:
    series = synthetic(PAIRS, 120)  # short: the validation pass covers every pair
    lstm = make_forecaster("lstm", horizon=HORIZON, epochs=2, windows_per_epoch=32_768, device="cpu")
    lstm.fit(series)
    end = np.array([series.steps])
    infer_s = best_of(lambda: lstm.predict_at(series, end, HORIZON), 5)
    log = lstm.history_log  # type: ignore[attr-defined]
    windows_per_s = sum(r["windows"] for r in log) / sum(r["train_s"] for r in log)
    out: dict[str, Any] = {
        "infer_ms_10k_pairs": round(infer_s * 1e3, 2),
        "infer_us_per_series_step": round(infer_s * 1e6 / (PAIRS * HORIZON), 3),
        "train_windows_per_s": round(windows_per_s),
        "window": lstm.min_context,
        "hidden": lstm.hyper["hidden"],  # type: ignore[attr-defined]
        "baselines": {},
    }
    series = synthetic(PAIRS, 700)  # seasonal naive needs one full day (288 steps) before validation
    end = np.array([series.steps])
    for name in BASELINE_NAMES:
        model = make_forecaster(name, horizon=HORIZON)
        fit_s = best_of(lambda m=model: m.fit(series), 1)
        predict_s = best_of(lambda m=model: m.predict_at(series, end, HORIZON), 5)
        out["baselines"][name] = {
            "fit_s_10k_pairs": round(fit_s, 3),
            "infer_ms_10k_pairs": round(predict_s * 1e3, 2),
        }
    return out


def abilene(path: Path, seeds: list[int], epochs: int | None) -> dict[str, Any]:
    from netscaffold.formats.traffic import load_traffic
    from netscaffold.predict.evaluate import evaluate_models

    series = PairSeries.from_tm(load_traffic(path)).first_segment()
    runs: dict[str, Any] = {}
    kwargs = {"device": "cpu", **({"epochs": epochs} if epochs else {})}
    base = evaluate_models(series, list(BASELINE_NAMES), [1, 6], seed=0)
    for seed in seeds:
        result = evaluate_models(series, ["lstm"], [1, 6], seed=seed, model_kwargs={"lstm": kwargs})
        runs[str(seed)] = {**result["models"]["lstm"], "train_s": result["train_s"]["lstm"]}
    summary: dict[str, Any] = {}
    for h in ("1", "6"):
        best = base["best_baseline"][h]
        ratios = np.array([runs[s][h]["nmae"] / base["models"][best][h]["nmae"] for s in runs])
        cov = np.array([runs[s][h]["coverage_q90"] for s in runs])
        summary[h] = {
            "best_baseline": best, "baseline_nmae": base["models"][best][h]["nmae"],
            "lstm_nmae_mean": float(np.mean([runs[s][h]["nmae"] for s in runs])),
            "ratio_mean": float(ratios.mean()), "ratio_min": float(ratios.min()),
            "ratio_max": float(ratios.max()),
            "coverage_q90_mean": float(cov.mean()), "coverage_q90_min": float(cov.min()),
            "coverage_q90_max": float(cov.max()),
        }  # fmt: skip
    return {"baselines": base["models"], "lstm_by_seed": runs, "summary": summary}


def ablation(directory: Path, seed: int, epochs: int | None) -> dict[str, Any]:
    """LSTM with endpoint telemetry (cpu, memory, tx, rx) against the same LSTM without it: activity
    recall on the pairs that touch an endpoint created by autoscaling, over the test part."""
    from netscaffold.predict import metrics
    from netscaffold.predict.evaluate import train_split
    from netscaffold.predict.telemetry_input import read_telemetry_input

    out: dict[str, Any] = {}
    for label, features in (("with_telemetry", True), ("without_telemetry", False)):
        data = read_telemetry_input(directory, features=features)
        series = data.series
        created = set(data.scale_out_endpoints)
        scaled = np.array([a in created or b in created for a, b in series.pairs])
        split = train_split(series, 0.7)
        kwargs = {"device": "cpu", "seed": seed, "horizon": 5, **({"epochs": epochs} if epochs else {})}
        model = make_forecaster("lstm", **kwargs)
        start = time.perf_counter()
        model.fit(series.slice(0, split))
        train_s = time.perf_counter() - start
        origins = series.origins(model.min_context, 5, start=split)
        forecast = model.predict_at(series, origins, 5)
        actual = series.values[origins[:, None] + np.arange(5)[None, :]] > 0
        by_h = {}
        for h in (1, 5):
            truth, prob = actual[:, h - 1][:, scaled], forecast.activity[:, h - 1][:, scaled]
            by_h[str(h)] = {
                "recall_autoscaled": metrics.recall(truth, prob),
                "precision_autoscaled": metrics.precision(truth, prob),
                "brier_autoscaled": metrics.brier(truth, prob),
                "recall_all": metrics.recall(actual[:, h - 1], forecast.activity[:, h - 1]),
            }
        out[label] = {"by_horizon": by_h, "train_s": train_s, "autoscaled_pairs": int(scaled.sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--abilene", type=Path)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--ablation", type=Path)
    args = parser.parse_args()
    if args.abilene:
        result = abilene(args.abilene, [int(s) for s in args.seeds.split(",")], args.epochs)
    elif args.ablation:
        result = ablation(args.ablation, int(args.seeds.split(",")[0]), args.epochs)
    else:
        result = speed()
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
