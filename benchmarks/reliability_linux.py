"""Reliability of the Linux backend: random plans with a fault injected at a random step.

Needs root. On one uniquely named lab (a k=4 fat-tree, 36 namespaces; removed at the end, also on
failure), for each of ``--plans`` rounds: a random base config is converged, a random plan towards another
random config is made, one of its steps (uniformly chosen) is broken (``raise``: a refused step;
``bad-line``: a line the tool rejects, half-way through a batch; ``kill-nft``: nft dies before
committing), and the apply must fail, naming an item or step, and leave the kernel objects equal to those
read before the plan (set elements but for the time left on their timeouts), the snapshot equal to the
pre-plan snapshot, and nothing of ours unexplained (zero residue). Rollback time is the backend's own
measurement of the rollback (read back the touched nodes, converge them).

Prints ``{"plans", "failed_as_injected", "state_equal", "residue_objects", "rollback_ms_p50", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.faults import FAULT_MODES, fault_at
from netscaffold.backends.linux.plans import mixed_config
from netscaffold.backends.protocol import ManualClock
from netscaffold.errors import BackendError
from netscaffold.formats.generators import attach_endpoints, fat_tree
from netscaffold.formats.render.objects import same
from netscaffold.model import Plan


def one_round(backend: LinuxBackend, rng: np.random.Generator, items: int) -> dict[str, object]:
    base = mixed_config(backend.topology, items, int(rng.integers(1 << 30)))
    backend.apply(Plan.between(backend.snapshot(), base, allow_confirmed_changes=True))
    before_objects, before_config = backend.kernel_objects(), backend.snapshot()
    goal = mixed_config(backend.topology, items, int(rng.integers(1 << 30)))
    plan = Plan.between(before_config, goal, allow_confirmed_changes=True)
    steps = backend.dry_run(plan)
    target = int(rng.integers(len(steps)))
    mode = FAULT_MODES[int(rng.integers(len(FAULT_MODES)))]
    backend.before_step = fault_at(target, mode)
    backend.last_rollback_s = None
    failed = False
    try:
        backend.apply(plan)
    except BackendError:
        failed = True
    finally:
        backend.before_step = None
    after = backend.kernel_objects()
    equal = after.keys() == before_objects.keys() and all(same(after[k], before_objects[k]) for k in after)
    return {
        "steps": len(steps),
        "fault_step": target,
        "mode": mode,
        "failed": failed,
        "state_equal": equal and backend.snapshot() == before_config,
        "residue": len(backend.residue()),
        "rollback_s": backend.last_rollback_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plans", type=int, default=200)
    parser.add_argument("--items", type=int, default=100, help="items of each random config")
    parser.add_argument("--k", type=int, default=4, help="fat-tree arity of the lab")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tools.require_facilities()
    rng = np.random.default_rng(args.seed)
    topology = attach_endpoints(fat_tree(args.k, 1e9))
    started = time.perf_counter()
    backend = LinuxBackend(topology, lab=f"rl{os.getpid() % 100000}", clock=ManualClock())
    try:
        rounds = [one_round(backend, rng, args.items) for _ in range(args.plans)]
    finally:
        backend.close()
    rollback_ms = np.array([float(r["rollback_s"] or 0.0) * 1e3 for r in rounds])  # type: ignore[arg-type]
    result = {
        "plans": len(rounds),
        "namespaces": len(topology.nodes),
        "items_per_config": args.items,
        "failed_as_injected": sum(bool(r["failed"]) for r in rounds),
        "state_equal": sum(bool(r["state_equal"]) for r in rounds),
        "residue_objects": sum(int(r["residue"]) for r in rounds),  # type: ignore[call-overload]
        "rollback_ms_p50": float(np.percentile(rollback_ms, 50)),
        "rollback_ms_p99": float(np.percentile(rollback_ms, 99)),
        "rollback_ms_max": float(rollback_ms.max()),
        "rollbacks_over_500ms": int((rollback_ms > 500).sum()),
        "by_mode": {mode: sum(r["mode"] == mode for r in rounds) for mode in FAULT_MODES},
        "wall_s": time.perf_counter() - started,
        "cpus": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if result["state_equal"] == result["plans"] and result["residue_objects"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
