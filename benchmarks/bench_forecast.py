"""Forecasting benchmarks: inference latency (10,000 pairs x horizon 10), training throughput, and the
figures behind docs/forecasting.md (Abilene over seeds, the telemetry-features ablation).

    .venv/bin/python benchmarks/bench_forecast.py [--json]                 # speed only (synthetic series)
    .venv/bin/python benchmarks/bench_forecast.py --abilene ../shared/data/abilene/abilene_tm_5min.npz \
        --seeds 0,1,2,3,4 [--jobs 3] [--json]                               # quality over seeds
    .venv/bin/python benchmarks/bench_forecast.py --compare-paths TM_FILE [--json]  # packed vs nn.LSTM
    .venv/bin/python benchmarks/bench_forecast.py --ablation DIR [--json]   # microservices telemetry dir
        [--train-fraction 0.5] [--lstm-options '{"activity_weight": 1.0}']

Speed prints ``{"infer_ms_10k_pairs": .., "infer_ms_10k_pairs_matrix": .., "train_windows_per_s": ..,
"window": .., "baselines": {..}}``: the first on 10,000 unrelated pairs, the second on a 101-node traffic
matrix (10,100 pairs), where the LSTM also reads the network context and the seasonal hints,
with the packed LSTM path that ``predict_at`` runs beside the straightforward ``nn.LSTM`` one measured in
the same process (``infer_ms_10k_pairs_nn_lstm``), by thread count, and split into feature preparation,
LSTM and head. ``--speed-only`` skips the baselines (a shorter run on the shared machine).
The machine is shared (2 cores): the load average is printed with every result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from netscaffold.predict import PairSeries, make_forecaster
from netscaffold.predict.lstm import LstmForecaster
from netscaffold.predict.registry import BASELINE_NAMES

PAIRS, HORIZON = 10_000, 10


MATRIX_NODES, MATRIX_STEPS = 101, 900
"""The traffic-matrix case: 101 nodes (10,100 pairs), 5-min steps. The LSTM there reads the network
context (node and network totals, on by itself for a matrix) and, as on a matrix with eight days of
training or more (Abilene), the seasonal hints averaged over two days (set here: a shorter series keeps
the fit short)."""


def synthetic(pairs: int, steps: int, seed: int = 0, *, nodes: int = 0) -> PairSeries:
    """Diurnal lognormal series of ``pairs`` unrelated pairs, or with ``nodes`` of every ordered pair of
    that many nodes (a traffic matrix)."""
    names = tuple((f"s{i}", f"d{i}") for i in range(pairs))
    node_names = tuple(f"n{i}" for i in range(nodes))
    if nodes:
        names = tuple((a, b) for a in node_names for b in node_names if a != b)
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    level = rng.lognormal(1.0, 1.5, len(names))
    values = level[None, :] * (1.0 + 0.4 * np.sin(2 * np.pi * t / 288))[:, None]
    values = values * rng.lognormal(0.0, 0.1, (steps, len(names)))
    return PairSeries(
        values, names, node_names, 300.0, "Mbit/s", np.mod(t * 300.0, 86_400.0) / 86_400.0,
        np.zeros(steps, dtype=np.int64), 1e6,
    )  # fmt: skip


def matrix_speed() -> dict[str, Any]:
    """``predict_at`` for every pair of a 101-node matrix (10,100 pairs) at its last step, horizon 10, with
    the LSTM's inputs there (network context, two-day seasonal hints), by inference workers."""
    series = synthetic(0, MATRIX_STEPS, nodes=MATRIX_NODES)
    lstm = make_forecaster(
        "lstm", horizon=HORIZON, epochs=1, windows_per_epoch=16_384, device="cpu", seasonal_lag=288,
        seasonal_days=2,
    )  # fmt: skip
    assert isinstance(lstm, LstmForecaster)
    lstm.fit(series)
    end = np.array([series.steps])
    out: dict[str, Any] = {
        "pairs": series.n_pairs,
        "network_context": bool(lstm.spec.network_context),
        "seasonal_lag": lstm.spec.seasonal_lag,
        "seasonal_days": lstm.spec.seasonal_days,
        "input_steps": lstm.min_context,
        "infer_ms": round(best_of(lambda: lstm.predict_at(series, end, HORIZON), 7) * 1e3, 2),
        "infer_ms_by_threads": {},
    }
    for threads in (1, 2):
        lstm.hyper["infer_threads"] = threads
        ms = best_of(lambda: lstm.predict_at(series, end, HORIZON), 7) * 1e3
        out["infer_ms_by_threads"][str(threads)] = round(ms, 2)
    return out


def best_of(fn: Any, repeats: int, clock: Any = time.perf_counter) -> float:
    times: list[float] = []
    for _ in range(repeats):
        start = float(clock())
        fn()
        times.append(float(clock()) - start)
    return min(times)


def cpu_of(fn: Any, repeats: int) -> float:
    """Best process CPU time of ``fn``: with one thread, what it costs on an idle core, whatever the
    load (a loaded machine inflates wall time by the share other processes take)."""
    return best_of(fn, repeats, time.process_time)


def infer_split(lstm: LstmForecaster, series: PairSeries, threads: int) -> dict[str, float]:
    """Best wall ms of the pieces of one packed ``predict_at`` at the series' end (one origin, every
    pair): feature preparation (numpy, plus torch's log1p), the LSTM, the head with the back-transform,
    and the whole call; and the straightforward ``nn.LSTM`` forward on the same inputs."""
    import torch

    from netscaffold.predict import lstm as lstm_module
    from netscaffold.predict.lstm_net import PackedLstm

    end = np.array([series.steps])
    part = series.slice(series.steps - lstm.min_context, series.steps)
    local = np.array([lstm.min_context])
    pair_idx = np.arange(series.n_pairs)

    def features() -> Any:
        scaled = lstm_module._standardise_torch(lstm.scaler, part.values)
        return lstm.spec.build_all_pairs_time_major(part, scaled, lstm.scaler, local)

    sequence, static, last = (torch.from_numpy(a) for a in features())
    batch_major = sequence.transpose(0, 1).contiguous()
    net, runner = lstm._require_net(), PackedLstm(lstm._require_net().lstm)
    with lstm_module.torch_determinism(0, 1), torch.inference_mode():
        hidden = runner.run(sequence, chunk=lstm_module.INFER_PAIR_CHUNK, threads=threads)

        def head() -> None:
            deltas, _ = lstm_module._decode_in_chunks(net, hidden, static)
            lstm.back_transform(last, deltas, pair_idx)

        whole = best_of(lambda: lstm.predict_at(series, end, HORIZON), 7)
        prep = best_of(features, 7)
        packed = best_of(lambda: runner.run(sequence, chunk=lstm_module.INFER_PAIR_CHUNK, threads=threads), 7)
        head_s = best_of(head, 7)
        nn_lstm = best_of(lambda: net.lstm(batch_major), 5)
    return {
        "features_ms": round(prep * 1e3, 2),
        "packed_lstm_ms": round(packed * 1e3, 2),
        "head_ms": round(head_s * 1e3, 2),
        "predict_at_ms": round(whole * 1e3, 2),
        "nn_lstm_forward_ms": round(nn_lstm * 1e3, 2),
    }


def reference_infer_s(lstm: LstmForecaster, series: PairSeries, threads: int) -> float:
    """The straightforward path (``nn.LSTM``, oneDNN, whole batch) that ``predict_at`` ran before."""
    from netscaffold.predict.lstm import torch_determinism

    end = np.array([series.steps])
    with torch_determinism(0, threads):
        return best_of(lambda: lstm._infer(series, end, HORIZON, packed=False), 5)


def speed(epochs: int, lstm_only: bool = False) -> dict[str, Any]:
    from netscaffold.predict import lstm as lstm_module

    series = synthetic(PAIRS, 120)  # short: the validation pass covers every pair
    lstm = make_forecaster("lstm", horizon=HORIZON, epochs=epochs, windows_per_epoch=32_768, device="cpu")
    assert isinstance(lstm, LstmForecaster)
    lstm.fit(series)
    end = np.array([series.steps])
    default_threads = int(lstm.hyper["threads"])
    reference_s = reference_infer_s(lstm, series, default_threads)
    infer_s = best_of(lambda: lstm.predict_at(series, end, HORIZON), 7)
    infer_cpu_s = cpu_of(lambda: lstm.predict_at(series, end, HORIZON), 7)
    by_threads, split = {}, {}
    default_workers = lstm.inference_workers
    for threads in (1, 2):  # inference workers: the same forecasts
        lstm.hyper["infer_threads"] = threads
        by_threads[str(threads)] = round(best_of(lambda: lstm.predict_at(series, end, HORIZON), 7) * 1e3, 2)
        split[str(threads)] = infer_split(lstm, series, threads)
    lstm.hyper["infer_threads"] = -1
    matrix = matrix_speed()
    log = lstm.history_log
    windows_per_s = sum(r["windows"] for r in log) / sum(r["train_s"] for r in log)
    out: dict[str, Any] = {
        "infer_ms_10k_pairs": round(infer_s * 1e3, 2),
        "infer_us_per_series_step": round(infer_s * 1e6 / (PAIRS * HORIZON), 3),
        "infer_cpu_ms_10k_pairs": round(infer_cpu_s * 1e3, 2),
        "infer_ms_10k_pairs_by_threads": by_threads,
        "infer_ms_10k_pairs_nn_lstm": round(reference_s * 1e3, 2),
        "infer_speedup_vs_nn_lstm": round(reference_s / infer_s, 2),
        "infer_split_ms_by_threads": split,
        "infer_ms_10k_pairs_matrix": matrix["infer_ms"],
        "matrix": matrix,
        "infer_pair_chunk": lstm_module.INFER_PAIR_CHUNK,
        "train_windows_per_s": round(windows_per_s),
        "window": lstm.min_context,
        "hidden": lstm.hyper["hidden"],
        "threads": default_threads,
        "infer_threads": default_workers,
        "baselines": {},
    }
    if lstm_only:
        return out
    series = synthetic(PAIRS, 700)  # seasonal naive needs one full day (288 steps) before validation
    end = np.array([series.steps])
    for name in BASELINE_NAMES:
        model = make_forecaster(name, horizon=HORIZON)
        fit_s = best_of(lambda m=model: m.fit(series), 1)
        predict_s = best_of(lambda m=model: m.predict_at(series, end, HORIZON), 5)
        stream = model.stream(series.slice(0, series.steps - 1))  # type: ignore[attr-defined]
        last = series.values[-1]

        def step(s: Any = stream, row: Any = last) -> None:
            s.push(row)
            s.forecast(HORIZON)

        out["baselines"][name] = {
            "fit_s_10k_pairs": round(fit_s, 3),
            "infer_ms_10k_pairs": round(predict_s * 1e3, 2),
            "stream_push_and_forecast_ms_10k_pairs": round(best_of(step, 7) * 1e3, 3),
            "stream_push_and_forecast_cpu_ms_10k_pairs": round(cpu_of(step, 7) * 1e3, 3),
            "infer_cpu_ms_10k_pairs": round(
                cpu_of(lambda m=model: m.predict_at(series, end, HORIZON), 5) * 1e3, 2
            ),
        }
    return out


def _lstm_on_abilene(path: Path, seed: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    from netscaffold.formats.traffic import load_traffic
    from netscaffold.predict.evaluate import evaluate_models

    series = PairSeries.from_tm(load_traffic(path)).first_segment()
    result = evaluate_models(series, ["lstm"], [1, 6], seed=seed, model_kwargs={"lstm": kwargs})
    return {**result["models"]["lstm"], "train_s": result["train_s"]["lstm"]}


def abilene(path: Path, seeds: list[int], epochs: int | None, jobs: int) -> dict[str, Any]:
    """Baselines once, the LSTM once per seed (``jobs`` seeds at a time, one process and one torch
    thread each), and the mean / spread of the LSTM's NMAE ratio and q90 coverage over the seeds."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from netscaffold.formats.traffic import load_traffic
    from netscaffold.predict.evaluate import evaluate_models

    series = PairSeries.from_tm(load_traffic(path)).first_segment()
    kwargs: dict[str, Any] = {"device": "cpu", **({"epochs": epochs} if epochs else {})}
    base = evaluate_models(series, list(BASELINE_NAMES), [1, 6], seed=0)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_lstm_on_abilene, path, seed, kwargs): seed for seed in seeds}
        done = {}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            print(f"seed {futures[future]}: {json.dumps(done[futures[future]])}", file=sys.stderr, flush=True)
        runs = {str(seed): done[seed] for seed in seeds}
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
            "lstm_nmae_min": float(min(runs[s][h]["nmae"] for s in runs)),
            "lstm_nmae_max": float(max(runs[s][h]["nmae"] for s in runs)),
            "lstm_nmae_std": float(np.std([runs[s][h]["nmae"] for s in runs])),
        }  # fmt: skip
    return {"baselines": base["models"], "lstm_by_seed": runs, "summary": summary}


def compare_paths(path: Path, seed: int) -> dict[str, Any]:
    """The LSTM fitted once on the first segment of a matrix file (as ``forecast evaluate`` does), then
    scored over the test origins with the packed CPU path (``predict_at``) and with ``nn.LSTM``
    (``_infer(packed=False)``): both metric sets, the largest differences, and both predict times."""
    from netscaffold.formats.traffic import load_traffic
    from netscaffold.predict.base import Forecast
    from netscaffold.predict.calibration import targets
    from netscaffold.predict.evaluate import score, score_fitted, train_split

    series = PairSeries.from_tm(load_traffic(path)).first_segment()
    split = train_split(series, 0.7)
    start = time.perf_counter()
    model = make_forecaster("lstm", seed=seed, horizon=6, device="cpu").fit(series.slice(0, split))
    assert isinstance(model, LstmForecaster)
    train_s = time.perf_counter() - start
    origins = series.origins(model.min_context, 6, start=split)
    packed = score_fitted(series, {"lstm": model}, {"lstm": train_s}, split=split, horizons=[1, 6])
    fast = model.predict_at(series, origins, 6)
    start = time.perf_counter()
    slow_q, slow_a = model._infer(series, origins, 6, packed=False)
    slow_a = model.calibrated_activity(series, origins, slow_a)  # as predict_at gives it
    straight_s = time.perf_counter() - start
    slow = Forecast(origins=origins, levels=model.levels, quantiles=slow_q, activity=slow_a)
    actual = targets(series, origins, 6)
    return {
        "packed": packed["models"]["lstm"],
        "nn_lstm": {str(h): score(slow, actual, h) for h in (1, 6)},
        "predict_s": {"packed": packed["predict_s"]["lstm"], "nn_lstm": straight_s},
        "max_abs_quantile_diff": float(np.abs(fast.quantiles - slow_q).max()),
        "max_rel_quantile_diff_above_1": float(
            (np.abs(fast.quantiles - slow_q) / np.maximum(slow_q, 1.0)).max()
        ),
        "max_abs_activity_diff": float(np.abs(fast.activity - slow_a).max()),
        "test_origins": int(origins.size),
        "pairs": series.n_pairs,
        "unit": series.unit,
        "train_s": train_s,
    }


def active_pairs(series: PairSeries) -> PairSeries:
    """The pairs that carry traffic at some step (the same subset for both arms of the ablation)."""
    keep = np.flatnonzero((series.values > 0).any(axis=0))
    exog = None if series.exog is None else series.exog[:, keep]
    return PairSeries(
        series.values[:, keep], tuple(series.pairs[i] for i in keep), series.nodes, series.interval_s,
        series.unit, series.time_of_day, series.segment_start, series.bps_factor, exog, series.exog_names,
    )  # fmt: skip


def first_activity_recall(values: Any, prob: Any, origins: Any, pairs: Any, horizon: int) -> dict[str, Any]:
    """For each pair in ``pairs`` whose first active step ``t`` has test origins before it: the share of
    the forecasts made ``h`` steps ahead (origin ``t - h + 1``) that gave it P(active) >= 0.5."""
    hits, total = np.zeros(horizon), np.zeros(horizon)
    position = {int(o): i for i, o in enumerate(origins)}
    for p in pairs:
        active = np.flatnonzero(values[:, p] > 0)
        if active.size == 0:
            continue
        first = int(active[0])
        for h in range(1, horizon + 1):
            i = position.get(first - h + 1)
            if i is not None:
                total[h - 1] += 1
                hits[h - 1] += prob[i, h - 1, p] >= 0.5
    return {
        "recall_by_h": [float(a / b) if b else None for a, b in zip(hits, total, strict=True)],
        "onsets": int(total[0]),
    }


def ablation(
    directory: Path, seed: int, epochs: int | None, train_fraction: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """LSTM with endpoint telemetry (cpu, memory, tx, rx of both ends) against the same LSTM without it,
    on the pairs that carry traffic at some step. Activity recall over the test part on the pairs that
    touch an endpoint created by autoscaling, and on their first activity (the moment a new replica's
    pairs appear: telemetry shows the replica starting before it carries traffic)."""
    from netscaffold.predict import metrics
    from netscaffold.predict.evaluate import train_split
    from netscaffold.predict.telemetry_input import read_telemetry_input

    horizon = 5
    out: dict[str, Any] = {"train_fraction": train_fraction, "lstm_options": extra}
    for label, features in (("with_telemetry", True), ("without_telemetry", False)):
        data = read_telemetry_input(directory, features=features)
        series = active_pairs(data.series)
        created = set(data.scale_out_endpoints)
        scaled = np.flatnonzero([a in created or b in created for a, b in series.pairs])
        split = train_split(series, train_fraction)
        kwargs = {"device": "cpu", "seed": seed, "horizon": horizon, **extra}
        if epochs:
            kwargs["epochs"] = epochs
        model = make_forecaster("lstm", **kwargs)
        start = time.perf_counter()
        model.fit(series.slice(0, split))
        train_s = time.perf_counter() - start
        origins = series.origins(model.min_context, horizon, start=split)
        forecast = model.predict_at(series, origins, horizon)
        actual = series.values[origins[:, None] + np.arange(horizon)[None, :]] > 0
        by_h = {}
        for h in (1, horizon):
            truth, prob = actual[:, h - 1][:, scaled], forecast.activity[:, h - 1][:, scaled]
            by_h[str(h)] = {
                "recall_autoscaled": metrics.recall(truth, prob),
                "precision_autoscaled": metrics.precision(truth, prob),
                "brier_autoscaled": metrics.brier(truth, prob),
                "recall_all": metrics.recall(actual[:, h - 1], forecast.activity[:, h - 1]),
            }
        out[label] = {
            "by_horizon": by_h,
            "first_activity_autoscaled": first_activity_recall(
                series.values, forecast.activity, origins, scaled, horizon
            ),
            "train_s": train_s,
            "pairs": series.n_pairs,
            "autoscaled_pairs": int(scaled.size),
            "test_origins": int(origins.size),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="the LSTM speed figures, no baselines")
    parser.add_argument("--abilene", type=Path)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--jobs", type=int, default=1, help="--abilene: seeds trained at once (processes)")
    parser.add_argument("--ablation", type=Path)
    parser.add_argument("--compare-paths", type=Path, help="a TM file: packed vs nn.LSTM forecasts, scored")
    parser.add_argument(
        "--train-fraction", type=float, default=0.5, help="--ablation: chronological fit share"
    )
    parser.add_argument("--lstm-options", help="--ablation: extra LSTM options as JSON, same for both arms")
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    if args.compare_paths:
        result = compare_paths(args.compare_paths, int(args.seeds.split(",")[0]))
    elif args.abilene:
        result = abilene(args.abilene, [int(s) for s in args.seeds.split(",")], args.epochs, args.jobs)
    elif args.ablation:
        extra = json.loads(args.lstm_options) if args.lstm_options else {}
        result = ablation(
            args.ablation, int(args.seeds.split(",")[0]), args.epochs, args.train_fraction, extra
        )
    else:
        result = speed(args.epochs or 2, lstm_only=args.speed_only)
    result["load_average_1min_at_start"] = load_at_start
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
