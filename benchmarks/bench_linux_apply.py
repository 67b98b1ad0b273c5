"""Apply rate of the Linux backend against the raw tools on the same objects, and a mixed plan.

Needs root. Brings up two uniquely named labs (removed at the end, also on failure):

- ``ratio`` lab, h1 - r1 - r2 - h2 with many endpoints: for routes, firewall permits (nft set elements)
  and HTB reservations, netscaffold's ``apply`` of N items (read, validate, render, diff, write, read back,
  verify) against the raw tool writing the very objects those items render to: ``ip -batch`` lines,
  the ``nft -j -f`` JSON document (the format netscaffold uses), ``tc -batch`` lines, one run per
  namespace. ratio = raw seconds / netscaffold seconds (1 = as fast as the tool; median of repeats;
  before each netscaffold apply every memo of the apply path is emptied, so that applying the same
  items again is measured as a first apply; ``--warm`` keeps them, as an engine re-applying a config does;
  each side's input is built before its clock starts: the raw tool's lines, netscaffold's ``Plan``);
  ``phases_ms`` splits the median netscaffold apply into its phases (``write``: encoding and the kernel's
  work; ``read_back``: the kernel's dump and decoding it).
- ``mixed`` lab, a k=4 fat-tree (36 namespaces): a 1,000-item mixed plan (routes with weighted multipath,
  permits, reservations, circuits) applied from empty (``mixed_apply_ms``), then the same plan with a
  fault at its last step: ``rollback_ms`` is the rollback alone (read back the touched nodes, converge
  them to the pre-plan objects), ``failed_apply_ms`` the whole failing call; then the veth pool on the
  same lab: parking every link and building them again from parked pairs, against deleting the pairs
  and creating new ones (``veth_park_ms_per_pair``, ``veth_delete_ms_per_pair``, ...).

Prints ``{"routes_ratio", "nft_ratio", "tc_ratio", "mixed_apply_ms", "rollback_ms", ...}`` with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

from netscaffold.backends.linux import backend as linux_backend
from netscaffold.backends.linux import lab as lab_ops
from netscaffold.backends.linux import netlink, readback, tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.converge import Step
from netscaffold.backends.linux.faults import fault_at
from netscaffold.backends.linux.plans import ROUTE_BASE, mixed_config
from netscaffold.backends.protocol import ManualClock
from netscaffold.errors import BackendError
from netscaffold.formats.generators import attach_endpoints, fat_tree
from netscaffold.formats.render import desired, objects, records
from netscaffold.formats.render import iproute2 as ip_render
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render import tc as tc_render
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.objects import KernelClass, KernelFilter, KernelRoute
from netscaffold.model import (
    Endpoint,
    FirewallRule,
    FlowMatch,
    Link,
    NetworkConfig,
    NextHop,
    Node,
    NodeKind,
    Plan,
    Reservation,
    Route,
    Topology,
)
from netscaffold.model.config import ConfigItem


def ratio_topology(endpoints_per_host: int) -> Topology:
    nodes = [Node("h1", NodeKind.HOST), Node("r1"), Node("r2"), Node("h2", NodeKind.HOST)]
    pairs = [("h1", "r1"), ("r1", "r2"), ("r2", "h2")]
    links = [Link(a, b, 10e9) for x, y in pairs for a, b in ((x, y), (y, x))]
    eps = [Endpoint(f"a{i}", "h1", f"198.18.1.{i + 1}") for i in range(endpoints_per_host)]
    eps += [Endpoint(f"b{i}", "h2", f"198.18.2.{i + 1}") for i in range(endpoints_per_host)]
    return Topology.build(nodes, links, eps, name="bench-ratio")


def route_items(n: int) -> list[ConfigItem]:
    devices = [("r1", ("r2", "h1")), ("r2", ("r1", "h2"))]
    out: list[ConfigItem] = []
    for i in range(n):
        device, (a, b) = devices[i % 2]
        hops = (NextHop(a, 0.25), NextHop(b, 0.75)) if i % 3 else (NextHop(a),)
        out.append(Route(device, f"{ROUTE_BASE + i}/32", hops))
    return out


def permit_items(n: int) -> list[ConfigItem]:
    return [
        FirewallRule(
            ("r1", "r2")[i % 2],
            FlowMatch(f"198.18.1.{i % 200 + 1}", f"{ROUTE_BASE + i}", "udp", 1024 + i % 60000),
        )
        for i in range(n)
    ]


def reservation_items(n: int, per_host: int) -> list[ConfigItem]:
    path = ("h1", "r1", "r2", "h2")
    return [Reservation(f"a{i % per_host}->b{i // per_host}", path, 1e5) for i in range(n)]


def raw_steps(backend: LinuxBackend, items: list[ConfigItem], kind: str) -> list[Step]:
    """The steps netscaffold would run for ``items`` restricted to the tool under test (so the raw tool
    writes exactly the kernel objects of the items); netscaffold's route and tc steps (netlink messages,
    in-process) become the ``ip -batch`` / ``tc -batch`` lines of the same routes, classes and filters."""
    steps = backend.dry_run(Plan.between(NetworkConfig(), NetworkConfig.of(items)))
    out = []
    for step in steps:
        if kind == "nft" and step.tool == "nft":
            out.append(step)
        elif kind == "ip" and step.tool == "netlink":
            routes = [(a, o) for a, o in step.ops if isinstance(o, KernelRoute) and a != "add"]
            lines = [ip_render.route_line(route, action) for action, route in routes]
            out.append(Step(step.node, step.netns, "ip", lines=lines))
        elif kind == "tc" and step.tool == "tc":
            lines = [tc_line(obj, "delete") for obj in step.tc_deletes]
            lines += [tc_line(obj, action) for action, obj in step.tc_ops]
            out.append(Step(step.node, step.netns, "tc", lines=lines))
    return out


def tc_line(obj: KernelClass | KernelFilter, action: Literal["replace", "delete"]) -> str:
    if isinstance(obj, KernelClass):
        return tc_render.class_line(obj, action)
    return tc_render.filter_line(obj, action)


def nft_document(step: Step) -> dict[str, Any]:
    """The step's elements as the ``nft -j -f`` document of the exporters (deletes, then adds)."""
    deletes = [element for action, element in step.elements if action == "delete"]
    adds = [element for action, element in step.elements if action == "add"]
    commands = nft_render.element_commands("delete", deletes) + nft_render.element_commands("add", adds)
    return nft_render.document(commands)


def run_raw(steps: list[Step]) -> float:
    started = time.perf_counter()
    for step in steps:
        if step.tool == "nft":
            tools.nft_json(step.netns, nft_document(step))
        elif step.tool == "ip":
            tools.ip_batch(step.netns, step.lines)
        else:
            tools.tc_batch(step.netns, step.lines)
    return time.perf_counter() - started


def clear(backend: LinuxBackend) -> None:
    """Remove every object of ours (also those the raw tools wrote: they are tagged the same way)."""
    from netscaffold.backends.linux.converge import diff, execute, plan_steps
    from netscaffold.formats.render.desired import Allocation, render_config

    target, _ = render_config(NetworkConfig(), backend.layout, Allocation(), 0.0)
    execute(plan_steps(backend.layout, *diff(backend.kernel_objects(), target)), None, backend.sessions)


def cold_caches() -> None:
    """Empty every memo of the apply path (renderings, encodings, decodings: pure functions cached by
    their inputs), so that a measured apply of the same items again costs what a first apply costs."""
    modules = (netlink, readback, linux_backend, desired, records, objects, ip_render, nft_render, tc_render)
    for module in modules:
        for value in vars(module).values():
            clear_cache = getattr(value, "cache_clear", None)
            if callable(clear_cache):
                clear_cache()
    desired._MEMO.clear()


def measure_ratio(
    backend: LinuxBackend, items: list[ConfigItem], tool: str, repeats: int, *, warm: bool = False
) -> dict[str, Any]:
    """Raw tool and netscaffold alternately, ``repeats`` times each, netscaffold with empty memos unless
    ``warm``; ``phases_ms``: where the median netscaffold apply spent its time (read, validate, render,
    diff, write = encode + kernel, read_back = kernel dump + decode, verify, realized)."""
    raw_s, ours_s, phases = [], [], []
    for _ in range(repeats):
        clear(backend)
        steps = raw_steps(backend, items, tool)
        raw_s.append(run_raw(steps))
        clear(backend)
        if not warm:
            cold_caches()
        plan = Plan.between(NetworkConfig(), NetworkConfig.of(items))  # the input, as the raw tool's lines
        started = time.perf_counter()
        backend.apply(plan)
        ours_s.append(time.perf_counter() - started)
        phases.append({phase: round(s * 1e3, 1) for phase, s in backend.last_phases_s.items()})
    clear(backend)
    raw, ours = statistics.median(raw_s), statistics.median(ours_s)
    median_run = sorted(range(repeats), key=ours_s.__getitem__)[repeats // 2]
    return {
        "items": len(items),
        "raw_s": raw,
        "netscaffold_s": ours,
        "ratio": raw / ours,
        "phases_ms": phases[median_run],
    }


def measure_mixed(n_items: int, seed: int) -> dict[str, Any]:
    topology = attach_endpoints(fat_tree(4, 1e9))
    backend = LinuxBackend(topology, lab=f"bm{os.getpid() % 100000}", clock=ManualClock())
    try:
        desired = mixed_config(topology, n_items, seed)
        plan = Plan.between(NetworkConfig(), desired)
        started = time.perf_counter()
        backend.apply(plan)
        apply_s = time.perf_counter() - started
        kernel_ops = backend.last_kernel_ops
        assert backend.snapshot() == desired, "mixed plan not read back as applied"
        backend.apply(Plan.between(desired, NetworkConfig(), allow_confirmed_changes=True))
        steps = backend.dry_run(plan)
        backend.before_step = fault_at(len(steps) - 1, "raise")
        started = time.perf_counter()
        with contextlib.suppress(BackendError):
            backend.apply(plan)
        failed_s = time.perf_counter() - started
        backend.before_step = None
        veth = measure_veth(backend.layout)
        return {
            **veth,
            "namespaces": len(backend.layout.namespaces),
            "items": len(desired),
            "kernel_ops": kernel_ops,
            "steps": len(steps),
            "mixed_apply_ms": apply_s * 1e3,
            "rollback_ms": (backend.last_rollback_s or 0.0) * 1e3,
            "failed_apply_ms": failed_s * 1e3,
            "residue_after_rollback": len(backend.residue()),
        }
    finally:
        backend.close()


def measure_veth(layout: LabLayout) -> dict[str, Any]:
    """Per veth pair: parking the lab's links and building them again from the parked pairs, against
    deleting the pairs and creating new ones (``ip -batch``, one process per namespace either way)."""
    links = list(layout.pairs)
    started = time.perf_counter()
    lab_ops.park_links(layout, links)
    park_s = time.perf_counter() - started
    started = time.perf_counter()
    lab_ops.build(layout)
    unpark_build_s = time.perf_counter() - started
    by_namespace: dict[str, list[str]] = {}
    for a, b in links:
        by_namespace.setdefault(layout.namespace(a), []).append(f"link delete dev {layout.port(a, b).ifname}")
    started = time.perf_counter()
    for netns, lines in sorted(by_namespace.items()):
        tools.ip_batch(netns, lines)
    delete_s = time.perf_counter() - started
    started = time.perf_counter()
    lab_ops.build(layout)
    create_build_s = time.perf_counter() - started
    return {
        "veth_pairs": len(links),
        "veth_park_ms_per_pair": park_s * 1e3 / len(links),
        "veth_delete_ms_per_pair": delete_s * 1e3 / len(links),
        "build_from_parked_ms": unpark_build_s * 1e3,
        "build_from_new_ms": create_build_s * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--routes", type=int, default=5000)
    parser.add_argument("--permits", type=int, default=3000)
    parser.add_argument("--reservations", type=int, default=1000)
    parser.add_argument("--mixed", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--warm", action="store_true", help="keep the apply path's memos between repeats (default: empty)"
    )
    args = parser.parse_args(argv)
    tools.require_facilities()
    per_host = 40
    backend = LinuxBackend(ratio_topology(per_host), lab=f"br{os.getpid() % 100000}", clock=ManualClock())
    cases: dict[str, Callable[[], list[ConfigItem]]] = {
        "ip": lambda: route_items(args.routes),
        "nft": lambda: permit_items(args.permits),
        "tc": lambda: reservation_items(args.reservations, per_host),
    }
    try:
        detail = {
            tool: measure_ratio(backend, make(), tool, args.repeats, warm=args.warm)
            for tool, make in cases.items()
        }
    finally:
        backend.close()
    mixed = measure_mixed(args.mixed, args.seed)
    result = {
        "routes_ratio": detail["ip"]["ratio"],
        "nft_ratio": detail["nft"]["ratio"],
        "tc_ratio": detail["tc"]["ratio"],
        "mixed_apply_ms": mixed["mixed_apply_ms"],
        "rollback_ms": mixed["rollback_ms"],
        "memos": "warm" if args.warm else "cold",
        "detail": {**detail, "mixed": mixed},
        "cpus": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
