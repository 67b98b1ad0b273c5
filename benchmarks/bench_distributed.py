"""Scale-out on Ray (issue 9): a 20-run sweep and inference over 100,000 pairs, one process vs Ray.

Sweep: ``netscaffold run --seeds 0..19`` on the shipped ``small`` scenario, shortened (each run: reactive,
scaffold:naive, scaffold:ewma, oracle on the emulator), first in this process, then with every strategy as
a Ray task on a local Ray with 2 CPUs (2 workers). The two sweep documents must be equal (checked). Ray's
start and the workers' first spawn are outside the timing (warm-up tasks).

Inference: an LSTM fitted on 100,000 pairs forecasts the next horizon, in this process and sharded over 2
Ray actors (:mod:`netscaffold.distributed.inference`); both forecasts must be equal (checked).

Overhead: the wall time per empty task over a batch of empty tasks on the warm cluster.

One thread per worker in both modes: BLAS/OpenMP threads are pinned to 1 here (Ray does the same in its
workers) and the LSTM runs with ``threads=1``. Target: sweep speedup >= 1.7 on 2 cores.
Usage: python benchmarks/bench_distributed.py [--runs 20] [--duration 120] [--pairs 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netscaffold.distributed.connection import RaySession

# Before numpy loads (it is imported inside the functions): one thread per worker, here as in Ray's workers.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

STRATEGIES = ["reactive", "scaffold:naive", "scaffold:ewma", "oracle"]
EMPTY_TASKS = 400


def _noop() -> None:
    return None


def overhead_ms_per_task(session: RaySession, count: int = EMPTY_TASKS) -> float:
    ray = session.ray
    noop = ray.remote(num_cpus=1)(_noop)
    ray.get([noop.remote() for _ in range(8)])  # spawn and warm the workers
    started = time.perf_counter()
    ray.get([noop.remote() for _ in range(count)])
    return (time.perf_counter() - started) * 1000.0 / count


class _Agent:
    """A stand-in for a host agent: answers prepare and commit at once (messaging cost only)."""

    def prepare(self, txn: str) -> str:
        return txn

    def commit(self, txn: str) -> str:
        return txn


def agent_costs(session: RaySession, counts: tuple[int, ...] = (2, 8), rounds: int = 30) -> dict[str, Any]:
    """Actor round trip, and one two-phase round (prepare on all, then commit on all) over K agents."""
    ray = session.ray
    agent_class = ray.remote(num_cpus=0)(_Agent)
    out: dict[str, Any] = {}
    agents = [agent_class.remote() for _ in range(max(counts))]
    ray.get([a.prepare.remote("warm") for a in agents])
    started = time.perf_counter()
    for i in range(rounds * 4):
        ray.get(agents[0].prepare.remote(str(i)))
    out["actor_rtt_ms"] = (time.perf_counter() - started) * 1000.0 / (rounds * 4)
    for count in counts:
        group = agents[:count]
        started = time.perf_counter()
        for i in range(rounds):
            ray.get([a.prepare.remote(str(i)) for a in group])
            ray.get([a.commit.remote(str(i)) for a in group])
        out[f"two_phase_ms_{count}_agents"] = (time.perf_counter() - started) * 1000.0 / rounds
    for agent in agents:
        ray.kill(agent)
    return out


def ledger_cost(items: int = 2000, hops: int = 4) -> dict[str, Any]:
    """The capacity ledger alone (no Ray): prepare + commit of ``items`` reservations of ``hops`` links."""
    from netscaffold.distributed.ledger import CapacityLedger

    links = [(f"n{i}", f"n{i + 1}") for i in range(items + hops)]
    ledger = CapacityLedger(dict.fromkeys(links, 1e12))
    changes: dict[tuple[str, ...], Any] = {
        ("reservation", f"p{i}"): tuple((links[i + h], 1e6) for h in range(hops)) for i in range(items)
    }
    started = time.perf_counter()
    ledger.prepare("t1", changes)
    ledger.commit("t1", changes)
    return {"ledger_us_per_item": (time.perf_counter() - started) * 1e6 / items}


def sweep(runs: int, duration_s: float, session: RaySession) -> dict[str, Any]:
    from netscaffold.distributed.sweep import run_sweep

    overrides = {"duration_s": duration_s, "strategies": STRATEGIES}
    seeds = tuple(range(runs))
    started = time.perf_counter()
    single = run_sweep(["small"], overrides, seeds)
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    spread = run_sweep(["small"], overrides, seeds, ray_spec=session.address)
    ray_s = time.perf_counter() - started
    if single != spread:
        raise SystemExit("the Ray sweep differs from the single-process sweep")
    return {"sweep_single_s": single_s, "sweep_ray_s": ray_s, "sweep_speedup": single_s / ray_s}


def synthetic_series(pairs: int, steps: int, seed: int = 0) -> Any:
    import numpy as np

    from netscaffold.predict.series import PairSeries

    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    level = rng.uniform(1.0, 50.0, pairs)
    values = np.abs(level * (1 + 0.3 * np.sin(t / 12.0))[:, None] + rng.normal(0, 2.0, (steps, pairs)))
    values *= rng.random((steps, pairs)) > 0.15
    names = tuple((f"a{i}", f"b{i % 97}") for i in range(pairs))
    nodes = tuple(sorted({n for p in names for n in p}))
    return PairSeries(
        values, names, nodes, 60.0, "bytes", np.mod(t * 60.0 / 86_400.0, 1.0), np.zeros(steps, np.int64)
    )


def inference(pairs: int, horizon: int = 5, steps: int = 48) -> dict[str, Any]:
    import numpy as np

    from netscaffold.distributed.inference import ShardedForecaster
    from netscaffold.predict.registry import make_forecaster

    series = synthetic_series(pairs, steps)
    model = make_forecaster(
        "lstm", horizon=horizon, epochs=1, hidden=16, windows_per_epoch=2048, threads=1, device="cpu"
    ).fit(series)
    started = time.perf_counter()
    single = model.predict(series, horizon)
    single_s = time.perf_counter() - started
    with ShardedForecaster.start(model, shards=2, threads=1) as sharded:
        started = time.perf_counter()  # the call ships the series to each shard: part of the cost
        spread = sharded.predict(series, horizon)
        ray_s = time.perf_counter() - started
    if not (  # to float32 rounding: the LSTM's BLAS may round a last bit differently in a worker
        np.allclose(single.quantiles, spread.quantiles, rtol=1e-5, atol=1e-6)
        and np.allclose(single.activity, spread.activity, rtol=1e-5, atol=1e-6)
    ):
        raise SystemExit("the sharded forecast differs from the single-process one")
    return {
        "infer_pairs": pairs,
        "infer_single_s": single_s,
        "infer_ray_s": ray_s,
        "infer_speedup": single_s / ray_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="seeds in the sweep (one comparison each)")
    parser.add_argument("--duration", type=float, default=120.0, help="simulated seconds per run")
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs for the inference part (0: skip)")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    from netscaffold.distributed.connection import connect

    load_1m = os.getloadavg()[0]
    result: dict[str, Any] = {}
    with connect("local", num_cpus=2) as session:
        result["overhead_ms_per_task"] = overhead_ms_per_task(session)
        result.update(agent_costs(session))
        result.update(ledger_cost())
        result.update(sweep(opts.runs, opts.duration, session))
        if opts.pairs > 0:
            result.update(inference(opts.pairs))
    result["load_1m_at_start"] = load_1m
    result["load_1m_at_end"] = os.getloadavg()[0]
    ordered = {key: result.get(key) for key in ("sweep_speedup", "infer_speedup", "overhead_ms_per_task")}
    ordered.update({key: value for key, value in result.items() if key not in ordered})
    if opts.json:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in ordered.items()}))
        return
    for key, value in ordered.items():
        print(f"{key:>22}: {value:.3f}" if isinstance(value, float) else f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
