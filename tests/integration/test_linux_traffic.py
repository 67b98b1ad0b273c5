"""Real packets through a lab (root): the reactive controller releases a queued first packet (IPv4 and
IPv6) after installing its path, and an HTB reservation holds its rate against a saturating iperf3 flow."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.reactive import LAB_RANGE, LAB_RANGE6, MISS_CHAIN, ReactiveController
from netscaffold.backends.linux.session import open_in_namespace
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
    Reservation,
    Route,
    Topology,
)

from .test_linux_common import skip_without_facilities, small_lab, unique_lab

pytestmark = pytest.mark.root


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("q", WallClock()) as be:
        yield be


def _udp(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))
    sock.settimeout(3.0)
    return sock


def _one_datagram(be: LinuxBackend, src: str, dst: str) -> bool:
    rx = open_in_namespace(be.layout.namespace("h2"), lambda: _udp(dst, 5001))
    tx = open_in_namespace(be.layout.namespace("h1"), lambda: _udp(src, 0))
    try:
        tx.sendto(b"first", (dst, 5001))
        rx.recvfrom(64)
    except OSError:  # a timeout, or no route at all on h1 (ENETUNREACH)
        return False
    finally:
        rx.close()
        tx.close()
    return True


def _mangle_rules(be: LinuxBackend, node: str, tool: str) -> str:
    netns = be.layout.namespace(node)
    return tools.run(["ip", "netns", "exec", netns, tool, "-w", "-t", "mangle", "-S", "PREROUTING"])


@pytest.mark.parametrize(
    ("src", "dst", "length", "tool", "lab_range"),
    [
        ("198.18.0.1", "198.18.0.2", 32, "iptables", LAB_RANGE),
        ("fd00::1", "fd00::2", 128, "ip6tables", LAB_RANGE6),
    ],
    ids=["ipv4", "ipv6"],
)
def test_reactive_controller_installs_the_path_and_releases_the_first_packet(
    backend: LinuxBackend, src: str, dst: str, length: int, tool: str, lab_range: str
) -> None:
    assert not _one_datagram(backend, src, dst), (
        "no route yet: the datagram must be lost without the controller"
    )
    with ReactiveController(backend, idle_s=30.0) as controller:
        assert "NFQUEUE" in _mangle_rules(backend, "r1", tool)
        assert _one_datagram(backend, src, dst)
        assert _one_datagram(backend, src, dst)  # the path is in place: no second miss
        time.sleep(0.2)
        assert len(controller.controller_s) == 1
        assert controller.unknown == 0
        assert [(a, b) for a, b, _ in controller.misses] == [(src, dst)]
        assert len(controller.held_s) == 1
    snapshot = backend.snapshot()
    routes = {(item.key[1], item.key[2]) for item in snapshot}
    assert {("r1", f"{dst}/{length}"), ("r2", f"{dst}/{length}"), ("r1", f"{src}/{length}")} <= routes
    assert all(item.origin is Origin.PREDICTED for item in snapshot)
    assert backend.residue() == {}
    assert "NFQUEUE" not in _mangle_rules(backend, "r1", tool)
    family = "-6" if length == 128 else "-4"
    assert tools.ip_json(backend.layout.namespace("h1"), [family, "route", "show", lab_range]) == []
    assert (
        backend.sessions.get(backend.layout.namespace("r1")).nft_list(f"chain inet netscaffold {MISS_CHAIN}")
        is None
    )


def bottleneck_topology() -> Topology:
    nodes = [Node("h1", NodeKind.HOST), Node("r1"), Node("h2", NodeKind.HOST)]
    links = [Link("h1", "r1", 1e9), Link("r1", "h1", 1e9), Link("r1", "h2", 100e6), Link("h2", "r1", 100e6)]
    endpoints = [
        Endpoint("a", "h1", "198.18.0.1"),
        Endpoint("c", "h1", "198.18.0.3"),
        Endpoint("b", "h2", "198.18.0.2"),
        Endpoint("d", "h2", "198.18.0.4"),
    ]
    return Topology.build(nodes, links, endpoints, name="bottleneck")


def _routes() -> list[Route]:
    out = []
    for host, router, far, addresses in (("h1", "r1", "h2", ("2", "4")), ("h2", "r1", "h1", ("1", "3"))):
        for last in addresses:
            out.append(Route(host, f"198.18.0.{last}/32", (NextHop(router),)))
            out.append(Route(router, f"198.18.0.{last}/32", (NextHop(far),)))
    return out


def _iperf(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, "iperf3", *args]


@pytest.mark.slow
def test_htb_reservation_keeps_its_rate_against_a_saturating_flow() -> None:
    skip_without_facilities()
    if shutil.which("iperf3") is None:
        pytest.skip("no iperf3 binary")
    be = LinuxBackend(bottleneck_topology(), lab=unique_lab("c"), clock=WallClock())
    started: list[subprocess.Popen[str]] = []
    try:
        reservation = Reservation("a->b", ("h1", "r1", "h2"), 50e6)
        be.apply(Plan.between(NetworkConfig(), NetworkConfig.of([*_routes(), reservation])))
        h1, h2 = be.layout.namespace("h1"), be.layout.namespace("h2")
        for address, port in (("198.18.0.2", "5201"), ("198.18.0.4", "5202")):
            started.append(subprocess.Popen(_iperf(h2, "-s", "-1", "-B", address, "-p", port), text=True))
        time.sleep(0.5)
        competing = _iperf(h1, "-c", "198.18.0.4", "-B", "198.18.0.3", "-p", "5202", "-t", "5", "-J")
        started.append(subprocess.Popen(competing, stdout=subprocess.PIPE, text=True))
        time.sleep(1.0)
        reserved = _iperf(h1, "-c", "198.18.0.2", "-B", "198.18.0.1", "-p", "5201", "-u", "-b", "50M")
        be.performance()
        out = subprocess.run(
            [*reserved, "-t", "3", "-J"], capture_output=True, text=True, timeout=30, check=True
        )
        sample = be.performance()
        link = sample.link_keys.index(("r1", "h2"))
        summary = json.loads(out.stdout)["end"]["sum"]
        received_bps = summary["bits_per_second"] * (1 - summary["lost_percent"] / 100)
        competing_out, _ = started[-1].communicate(timeout=30)
        competing_bps = json.loads(competing_out)["end"]["sum_received"]["bits_per_second"]
        assert competing_bps > 20e6, "the competing flow did not load the link: no contention to test"
        assert received_bps >= 0.9 * 50e6, f"reserved flow got {received_bps / 1e6:.1f} Mbit/s"
        assert sample.reserved_bps[link] == 50e6
        assert sample.reserved_used_bps[link] >= 0.8 * 50e6  # HTB class counters, over the 3 s run
        assert sample.load_bps[link] >= sample.reserved_used_bps[link]
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        be.close()
