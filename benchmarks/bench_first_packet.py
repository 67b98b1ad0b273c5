"""First-packet latency with real packets: scaffolded paths vs the reactive controller (NFQUEUE).

Needs root. Brings up a uniquely named lab (h1 - r1 - {r2 | fw} - r2 - h2, removed at the end, also on
failure) with ``--flows`` sender endpoints on h1 and as many receivers on h2. Scaffolded flows get their
path applied beforehand through ``LinuxBackend.apply`` (routes on h1, r1, r2); reactive flows have no
route, so their first packet misses at r1, is queued to the controller, which installs the path both
ways in-process and releases it. The reactive controller runs in this process; the traffic runs in a
child process (sockets made inside the namespaces, receivers bound to lab addresses), which sends one UDP
datagram per flow and measures its one-way latency on one monotonic clock (send call to receive). One
warm-up flow per mode fills the neighbour caches of the links first.

Prints ``{"first_packet_ms_reactive_p50", "first_packet_ms_scaffolded_p50", ...}`` with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.reactive import ReactiveController
from netscaffold.backends.protocol import WallClock
from netscaffold.model import (
    Endpoint,
    Link,
    NetworkConfig,
    NextHop,
    Node,
    NodeKind,
    Origin,
    Plan,
    Route,
    Topology,
)

PORT = 5001

TRAFFIC = """
    import json, socket, sys, time
    from netscaffold.backends.linux.session import open_in_namespace
    spec = json.loads(sys.argv[1])
    def udp(address, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((address, port))
        s.settimeout(2.0)
        return s
    out = []
    for src, dst in spec["flows"]:
        rx = open_in_namespace(spec["rx_ns"], lambda: udp(dst, spec["port"]))
        tx = open_in_namespace(spec["tx_ns"], lambda: udp(src, 0))
        sent = time.perf_counter()
        tx.sendto(b"first", (dst, spec["port"]))
        try:
            rx.recvfrom(64)
            out.append((time.perf_counter() - sent) * 1e3)
        except TimeoutError:
            out.append(None)
        rx.close(); tx.close()
    print(json.dumps(out))
"""


def topology(flows: int) -> Topology:
    nodes = [
        Node("h1", NodeKind.HOST),
        Node("h2", NodeKind.HOST),
        Node("r1"),
        Node("r2"),
        Node("fw", NodeKind.FIREWALL),
    ]
    pairs = [("h1", "r1"), ("r1", "r2"), ("r1", "fw"), ("fw", "r2"), ("r2", "h2")]
    links = [Link(a, b, 1e9) for x, y in pairs for a, b in ((x, y), (y, x))]
    eps = [Endpoint(f"a{i}", "h1", f"198.18.1.{i + 1}") for i in range(2 * flows + 2)]
    eps += [Endpoint(f"b{i}", "h2", f"198.18.2.{i + 1}") for i in range(2 * flows + 2)]
    return Topology.build(nodes, links, eps, name="first-packet")


def scaffold(pairs: list[tuple[str, str]], expires_at: float) -> NetworkConfig:
    life: dict[str, Any] = {"origin": Origin.PREDICTED, "expires_at": expires_at}
    items = []
    for _, dst in pairs:
        for here, there in (("h1", "r1"), ("r1", "r2"), ("r2", "h2")):
            items.append(Route(here, f"{dst}/32", (NextHop(there),), **life))
    return NetworkConfig.of(items)


def send(backend: LinuxBackend, pairs: list[tuple[str, str]]) -> list[float | None]:
    spec = {
        "flows": pairs,
        "port": PORT,
        "tx_ns": backend.layout.namespace("h1"),
        "rx_ns": backend.layout.namespace("h2"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TRAFFIC), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: list[float | None] = json.loads(proc.stdout)
    return result


def percentiles(values: list[float | None]) -> dict[str, float | int]:
    got = np.array([v for v in values if v is not None])
    return {
        "p50": float(np.percentile(got, 50)) if got.size else float("nan"),
        "p99": float(np.percentile(got, 99)) if got.size else float("nan"),
        "lost": sum(v is None for v in values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--flows", type=int, default=30, help="flows per mode (at most 120)")
    args = parser.parse_args(argv)
    tools.require_facilities()
    n = min(args.flows, 120)
    topo = topology(n)
    addr = {ep.id: ep.address for ep in topo.endpoints.values()}
    scaffolded = [(addr[f"a{i}"], addr[f"b{i}"]) for i in range(n + 1)]
    reactive = [(addr[f"a{i}"], addr[f"b{i}"]) for i in range(n + 1, 2 * n + 2)]
    backend = LinuxBackend(topo, lab=f"fp{os.getpid() % 100000}", clock=WallClock())
    try:
        with ReactiveController(backend) as controller:
            backend.apply(Plan.between(backend.snapshot(), scaffold(scaffolded, 3600.0)))
            fast = send(backend, scaffolded)[1:]  # the first flow warms the neighbour caches
            slow = send(backend, reactive)[1:]
            controller_ms = [s * 1e3 for s in controller.controller_s[1:]]
            unknown = controller.unknown
    finally:
        backend.close()
    fast_p, slow_p = percentiles(fast), percentiles(slow)
    result = {
        "first_packet_ms_reactive_p50": slow_p["p50"],
        "first_packet_ms_scaffolded_p50": fast_p["p50"],
        "first_packet_ms_reactive_p99": slow_p["p99"],
        "first_packet_ms_scaffolded_p99": fast_p["p99"],
        "scaffolded_over_reactive": fast_p["p50"] / slow_p["p50"],
        "controller_ms_p50": float(np.median(controller_ms)) if controller_ms else float("nan"),
        "flows_per_mode": n,
        "lost": {"reactive": slow_p["lost"], "scaffolded": fast_p["lost"]},
        "controller_errors": unknown,
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
