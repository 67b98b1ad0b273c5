"""Emulator speed against a straightforward SimPy implementation of the same model (issue 4).

Fat-tree k=8 (128 hosts, 1 Gbit/s links), Poisson arrivals, Pareto(1.5) sizes (mean 1 MB), hash-chosen
ECMP paths, exact max-min at every start and completion, reactive setup (sdn-lan profile), three loads
with about 30, 100 and 400 flows sending at once. Both run in this process; netscaffold through
``emulate`` (the entry point of ``netscaffold emulate``). Completion times must agree within 1e-6
relative. ``--scaling`` adds flow-count (10k, 100k, 1M) and topology-size (k = 4, 8, 16) series;
``--cold-start`` times fresh processes (JIT cache on disk): the import alone, and the import plus a first
small ``emulate`` (fat-tree k=4, 100 flows), median of 5. ``--repeats N`` runs each point's timed flows N
times in this process and reports the median rate beside the min and max (the rate varies run to run on a
shared machine far more than the load average shows).

    .venv/bin/python benchmarks/bench_emulator.py [--json] [--scaling] [--cold-start] [--repeats N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fattree import fat_tree, poisson_pareto_flows
from _simpy_reference import ReferenceEmulator, setup_costs
from netscaffold.backends.sim import PROFILES, EmulationResult, emulate
from netscaffold.backends.sim.routing import EcmpTable, flow_uniforms
from netscaffold.model.flows import FlowTable
from netscaffold.model.topology import Topology

LINK_BPS = 1e9
MEAN_BYTES = 1e6
SEED = 1
# (target active flows, arrivals per second, flows for SimPy, flows for netscaffold's timing run)
LOADS = ((30, 2_300.0, 12_000, 200_000), (100, 5_000.0, 4_000, 100_000), (400, 10_000.0, 1_500, 30_000))


def mean_active(result: EmulationResult) -> float:
    """Time-average of flows sending at once over the arrival window."""
    begin = result.start_s + result.setup_delay_s
    t0, t1 = float(result.start_s[0]), float(result.start_s[-1])
    busy = np.clip(result.completion_s, t0, t1) - np.clip(begin, t0, t1)
    return float(busy.sum() / (t1 - t0))


def run_reference(topo: Topology, flows: FlowTable, seed: int) -> tuple[np.ndarray, float, int]:
    """SimPy: the same flows, ECMP paths chosen by the same hash, the same setup costs."""
    ecmp = EcmpTable(topo)
    link_keys = sorted(topo.links)
    index = {k: i for i, k in enumerate(link_keys)}
    pick = flow_uniforms(len(flows), seed, 2)
    paths: list[list[int]] = []
    for i in range(len(flows)):
        src = topo.endpoints[flows.endpoints[int(flows.src[i])]].host
        dst = topo.endpoints[flows.endpoints[int(flows.dst[i])]].host
        options = ecmp.paths(src, dst)
        chosen = options[min(int(pick[i] * len(options)), len(options) - 1)]
        paths.append([index[(a, b)] for a, b in itertools.pairwise(chosen)])
    n_endpoints = len(flows.endpoints)
    pairs = flows.src * n_endpoints + flows.dst
    costs = setup_costs(PROFILES["sdn-lan"], np.array([len(p) for p in paths]))
    ref = ReferenceEmulator(
        flows.start_s,
        pairs,
        flows.size_bytes * 8.0,
        paths,
        [topo.links[k].capacity_bps for k in link_keys],
        costs,
        idle_timeout_s=10.0,
    )
    started = time.perf_counter()
    completion = ref.run()
    return completion, time.perf_counter() - started, ref.events


def load_point(
    topo: Topology, target: int, rate: float, n_simpy: int, n_timed: int, repeats: int = 1
) -> dict[str, float | list[int]]:
    shared = poisson_pareto_flows(n_simpy, len(topo.endpoints), rate, MEAN_BYTES, SEED)
    ours = emulate(topo, shared, seed=SEED)
    ref_done, ref_wall_s, ref_events = run_reference(topo, shared, SEED)
    rel = np.abs(ours.completion_s - ref_done) / np.maximum(np.abs(ref_done - shared.start_s), 1e-12)
    timed_flows = poisson_pareto_flows(n_timed, len(topo.endpoints), rate, MEAN_BYTES, SEED + 1)
    runs = [emulate(topo, timed_flows, seed=SEED) for _ in range(repeats)]
    timed = runs[0]
    per_run = [round(run.events_per_s) for run in runs]
    events_per_s = statistics.median(per_run)
    simpy_rate = ref_events / ref_wall_s
    same_finished = np.array_equal(np.isnan(ours.completion_s), np.isnan(ref_done))
    repeated: dict[str, float | list[int]] = {}
    if repeats > 1:
        repeated = {"events_per_s_min": min(per_run), "events_per_s_max": max(per_run), "runs": per_run}
    return {
        "target_active_flows": target,
        "active_flows": round(mean_active(timed), 1),
        "events_per_s": round(events_per_s),
        **repeated,
        "simpy_events_per_s": round(simpy_rate),
        "ratio_vs_simpy": round(events_per_s / simpy_rate, 1),
        "flows": n_timed,
        "simpy_flows": n_simpy,
        "completion_max_rel_diff": float(np.nanmax(rel)),
        "agree": bool(np.nanmax(rel) <= 1e-6 and same_finished),
    }


def scaling(topo8: Topology) -> dict[str, list[dict[str, float]]]:
    """Time against flow count (at the ~30-active load) and against fat-tree size (same per-host load)."""
    _, rate, _, _ = LOADS[0]
    by_flows = []
    for n in (10_000, 100_000, 1_000_000):
        result = emulate(topo8, poisson_pareto_flows(n, 128, rate, MEAN_BYTES, SEED), seed=SEED)
        by_flows.append(
            {"flows": n, "wall_s": round(result.wall_s, 3), "events_per_s": round(result.events_per_s)}
        )
    by_k = []
    for k in (4, 8, 16):
        topo = topo8 if k == 8 else fat_tree(k, LINK_BPS)
        hosts = len(topo.endpoints)
        result = emulate(
            topo, poisson_pareto_flows(50_000, hosts, rate * hosts / 128, MEAN_BYTES, SEED), seed=SEED
        )
        by_k.append(
            {
                "k": k,
                "hosts": hosts,
                "flows": 50_000,
                "active_flows": round(mean_active(result), 1),
                "wall_s": round(result.wall_s, 3),
                "events_per_s": round(result.events_per_s),
            }
        )
    return {"by_flows": by_flows, "by_k": by_k}


_READY = "netscaffold-ready"
_IMPORT_ONLY = f"import netscaffold.backends.sim\nprint({_READY!r}, flush=True)"
_FIRST_CALL = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from _fattree import fat_tree, poisson_pareto_flows
from netscaffold.backends.sim import emulate
emulate(fat_tree(4, 1e9), poisson_pareto_flows(100, 16, 1000.0, 1e6, 1))
print({_READY!r}, flush=True)
"""


def _start_up(code: str) -> tuple[float, float]:
    """(seconds until the child reports it is done, seconds until it has exited): the first is the start-up
    (launch, imports, kernel from the disk cache, a first run); the second adds the interpreter's exit."""
    started = time.perf_counter()
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        ready = time.perf_counter() - started
        if child.wait() != 0 or line != _READY:
            raise SystemExit(f"the start-up probe failed (exit {child.returncode}, output {line!r})")
    return ready, time.perf_counter() - started


def cold_start(repeats: int = 5) -> dict[str, float]:
    """Median wall time of fresh interpreters until they report back: importing the emulator, and importing
    it plus a first small ``emulate`` (numba loads the compiled kernel from its disk cache on that call);
    beside it the same until the process has exited."""
    subprocess.run([sys.executable, "-c", _FIRST_CALL], stdout=subprocess.DEVNULL, check=True)  # warm cache

    imports = [_start_up(_IMPORT_ONLY) for _ in range(repeats)]
    firsts = [_start_up(_FIRST_CALL) for _ in range(repeats)]
    return {
        "import_s": round(statistics.median(ready for ready, _ in imports), 3),
        "import_and_first_emulate_s": round(statistics.median(ready for ready, _ in firsts), 3),
        "best_import_and_first_emulate_s": round(min(ready for ready, _ in firsts), 3),
        "import_and_first_emulate_with_exit_s": round(statistics.median(done for _, done in firsts), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--scaling", action="store_true", help="add flow-count and topology-size series")
    parser.add_argument("--cold-start", action="store_true", help="add fresh-process start-up times")
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed runs per point (the median is reported)"
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    topo = fat_tree(8, LINK_BPS)
    warm = time.perf_counter()
    emulate(topo, poisson_pareto_flows(100, 128, 1000.0, MEAN_BYTES, SEED))  # loads the JIT cache
    out: dict[str, object] = {"jit_load_s": round(time.perf_counter() - warm, 2)}
    points = [load_point(topo, *load, repeats=args.repeats) for load in LOADS]
    out = {"points": points, "flows": sum(n_timed for *_, n_timed in LOADS), **out}
    if args.scaling:
        out["scaling"] = scaling(topo)
    if args.cold_start:
        out["cold_start"] = cold_start()
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for p in points:
        print(
            f"~{p['active_flows']:>6} active: netscaffold {p['events_per_s']:>10,} ev/s  SimPy "
            f"{p['simpy_events_per_s']:>7,} ev/s  x{p['ratio_vs_simpy']:<7} agree={p['agree']} "
            f"(max rel diff {p['completion_max_rel_diff']:.1e})"
            + (f"  runs {p['events_per_s_min']:,}..{p['events_per_s_max']:,}" if "runs" in p else "")
        )
    for extra in ("scaling", "cold_start"):
        if extra in out:
            print(json.dumps(out[extra], indent=2))
    print(f"load average (1 min) at the end: {out['load_average_1min']}")


if __name__ == "__main__":
    main()
