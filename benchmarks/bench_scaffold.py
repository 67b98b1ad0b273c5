"""Planning speed of the scaffolder: 10,000 pairs over a ~500-node topology.

Cold plan: a fresh Scaffolder (no path cache, no tick memo) from an empty configuration. Steady tick: the
same forecast with 5% of the pairs changed (half newly predicted, half no longer; with --redraw-only their
forecast values are only redrawn, which here changes no decision), planned one second later
against the config the cold plan produced, by the same Scaffolder, as the engine does every tick. Each
repeat starts again from a fresh Scaffolder. The same steady tick planned from scratch (``incremental=False``,
path cache warm) is timed beside it and must give the same plan. Wall-clock medians, and process CPU time
beside them (less sensitive to other jobs on a shared machine). Targets (issue 6): steady tick under 100 ms.
Usage: python benchmarks/bench_scaffold.py [--pairs N] [--k K] [--repeat R] [--redraw-only] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from netscaffold.formats.generators import attach_endpoints, fat_tree
from netscaffold.model import NetworkConfig, PredictedGraph, ProvisionalBudget
from netscaffold.scaffold import Scaffolder, ScaffoldPolicy


def forecast(pairs: list[tuple[str, str]], rng: np.random.Generator, horizon: int = 5) -> PredictedGraph:
    activity = rng.random((horizon, len(pairs))) * 0.5
    base = rng.random((horizon, len(pairs), 1)) * 1e6
    return PredictedGraph(
        0.0,
        1.0,
        tuple(pairs),
        (0.5, 0.9, 0.99),
        activity,
        np.concatenate([base, base * 1.5, base * 2], axis=2),
        np.full(len(pairs), np.nan),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=12, help="fat-tree k (12: 180 switches + 432 hosts)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--redraw-only",
        action="store_true",
        help="the 5%% only get new forecast values (no pair starts or stops being predicted)",
    )
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    rng = np.random.default_rng(0)
    topology = attach_endpoints(fat_tree(opts.k, 10e9))
    endpoints = sorted(topology.endpoints)
    chosen: set[tuple[str, str]] = set()
    while len(chosen) < opts.pairs:
        a, b = rng.choice(len(endpoints), 2, replace=False)
        chosen.add((endpoints[a], endpoints[b]))
    pairs = sorted(chosen)
    policy = ScaffoldPolicy(budget=ProvisionalBudget(rule_slots_per_device=100_000, link_fraction=0.5))
    graph = forecast(pairs, rng)
    changed = rng.choice(len(pairs), len(pairs) // 20, replace=False)
    arriving, leaving = changed[: changed.size // 2], changed[changed.size // 2 :]
    if not opts.redraw_only:
        graph.activity[:, arriving] = 0.0  # not predicted at first: they arrive in the steady tick
    tick = forecast(pairs, rng)
    activity, bandwidth = graph.activity.copy(), graph.bandwidth_bps.copy()
    activity[:, changed] = tick.activity[:, changed]
    bandwidth[:, changed] = tick.bandwidth_bps[:, changed]
    if not opts.redraw_only:
        activity[:, leaving] = 0.0  # no longer predicted: their entries go
    steady_graph = PredictedGraph(
        1.0, 1.0, graph.pairs, graph.quantile_levels, activity, bandwidth, graph.latency_bound_s
    )
    cold_ms, cold_cpu_ms, steady_ms, steady_cpu_ms = [], [], [], []
    for _ in range(opts.repeat):
        scaffolder = Scaffolder(topology, policy=policy)
        start, start_cpu = time.perf_counter(), time.process_time()
        cold = scaffolder.plan(graph, NetworkConfig(), 0.0)
        cold_ms.append((time.perf_counter() - start) * 1e3)
        cold_cpu_ms.append((time.process_time() - start_cpu) * 1e3)
        current = cold.plan.apply_to(NetworkConfig())
        start, start_cpu = time.perf_counter(), time.process_time()
        steady = scaffolder.plan(steady_graph, current, 1.0)
        steady_ms.append((time.perf_counter() - start) * 1e3)
        steady_cpu_ms.append((time.process_time() - start_cpu) * 1e3)
        if scaffolder.incremental_ticks != 1:
            raise SystemExit("the steady tick was not answered by the tick memo")
    reference = Scaffolder(topology, policy=policy, path_finder=scaffolder.paths, incremental=False)
    start, start_cpu = time.perf_counter(), time.process_time()
    from_scratch = reference.plan(steady_graph, current, 1.0)
    scratch_ms = (time.perf_counter() - start) * 1e3
    scratch_cpu_ms = (time.process_time() - start_cpu) * 1e3
    if from_scratch.plan != steady.plan or from_scratch.desired.items != steady.desired.items:
        raise SystemExit("the steady tick differs from the same tick planned from scratch")
    result = {
        "plan_ms_10k_pairs": round(statistics.median(steady_ms), 1),
        "cold_plan_ms_10k_pairs": round(statistics.median(cold_ms), 1),
        "plan_cpu_ms_10k_pairs": round(statistics.median(steady_cpu_ms), 1),
        "cold_plan_cpu_ms_10k_pairs": round(statistics.median(cold_cpu_ms), 1),
        "steady_from_scratch_ms": round(scratch_ms, 1),
        "steady_from_scratch_cpu_ms": round(scratch_cpu_ms, 1),
        "pairs": len(pairs),
        "nodes": len(topology.nodes),
        "cold_plan_ops": len(cold.plan),
        "steady_plan_ops": len(steady.plan),
        "admitted_pairs": steady.admitted_pairs,
    }
    print(json.dumps(result) if opts.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
