"""Conntrack events on a lab (root): real datagrams between two lab namespaces become flow starts on the
sending host, then flow requests between endpoints; an overflowed socket resyncs from the table."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.conntrack import ConntrackMonitor, FlowStart
from netscaffold.model.events import FlowRequest

from .test_linux_common import route_a_b, small_lab

pytestmark = pytest.mark.root


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("ct") as be:
        route_a_b(be)
        yield be


def _send_udp(backend: LinuxBackend, port: int, count: int = 1) -> None:
    """``count`` datagrams from a (198.18.0.1) on h1 to b (198.18.0.2) on h2, each from its own source
    port (40000, 40001, ...), and b receives the first (real packets through the lab)."""
    receiver = (
        "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        f"s.bind(('198.18.0.2',{port}));s.settimeout(5);print(len(s.recv(64)),flush=True)"
    )
    sender = (
        "import socket\n"
        f"for i in range({count}):\n"
        " s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('198.18.0.1',40000+i))\n"
        f" s.sendto(b'hello',('198.18.0.2',{port}));s.close()\n"
    )
    exec_in = ["ip", "netns", "exec"]
    with subprocess.Popen(
        [*exec_in, backend.layout.namespace("h2"), "python3", "-c", receiver],
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        time.sleep(0.3)  # the receiver binds before the first datagram leaves
        subprocess.run([*exec_in, backend.layout.namespace("h1"), "python3", "-c", sender], check=True)
        out, _ = server.communicate(timeout=10)
    assert out.strip() == "5", "the datagram crossed the lab"


def _poll_until(monitor: ConntrackMonitor, wanted: int, now_s: float) -> list[FlowStart]:
    starts: list[FlowStart] = []
    deadline = time.monotonic() + 5
    while len(starts) < wanted and time.monotonic() < deadline:
        starts += monitor.poll(now_s)
        time.sleep(0.02)
    return starts


def test_a_datagram_between_lab_hosts_is_a_flow_start(backend: LinuxBackend) -> None:
    monitor = ConntrackMonitor(backend.layout)
    try:
        assert sorted(m.node for m in monitor.monitors) == ["h1", "h2"]
        _send_udp(backend, 5201)
        starts = [s for s in _poll_until(monitor, 2, 7.0) if s.dst_port == 5201]
        assert {s.node for s in starts} == {"h1", "h2"}, "seen where it left and where it arrived"
        first = starts[0]
        assert (first.family, first.proto, first.src, first.dst, first.time_s) == (
            4,
            socket.IPPROTO_UDP,
            "198.18.0.1",
            "198.18.0.2",
            7.0,
        )
        request = first.as_request(monitor.endpoint_of)
        assert request is not None
        assert (request.src, request.dst, request.dst_port) == ("a", "b", 5201)
        assert monitor.poll(8.0) == [], "each flow once"
    finally:
        monitor.close()


def test_requests_are_deduplicated_across_watched_nodes(backend: LinuxBackend) -> None:
    monitor = ConntrackMonitor(backend.layout, nodes=["h1", "r1", "h2"])
    try:
        _send_udp(backend, 5202)
        time.sleep(0.2)
        requests = [r for r in monitor.requests(1.0) if r.dst_port == 5202]
        assert [(r.src, r.dst) for r in requests] == [("a", "b")]
    finally:
        monitor.close()


def test_an_overflowed_socket_resyncs_from_the_table(backend: LinuxBackend) -> None:
    monitor = ConntrackMonitor(backend.layout, nodes=["h1"])
    try:
        h1 = monitor.monitors[0]
        h1.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum: it overflows
        _send_udp(backend, 5203, count=200)
        starts = [s for s in monitor.poll(2.0) if s.dst_port == 5203]
        assert h1.overflows >= 1
        assert len({s.src_port for s in starts}) == 200, "every flow reported, late but not lost"
        assert monitor.poll(3.0) == [], "announcements queued at the resync are not reported again"
        _send_udp(backend, 5204)
        assert [s.dst_port for s in _poll_until(monitor, 1, 4.0)] == [5204], "then back to announcements"
    finally:
        monitor.close()


def test_the_backend_reports_new_flows_as_routing_information(backend: LinuxBackend) -> None:
    backend.drain_routing_info()  # the route updates of the fixture's apply
    backend.watch_flows()
    backend.watch_flows()  # idempotent
    _send_udp(backend, 5205)
    requests: list[FlowRequest] = []
    deadline = time.monotonic() + 5
    while not requests and time.monotonic() < deadline:
        requests = [r for r in backend.drain_routing_info() if isinstance(r, FlowRequest)]
        time.sleep(0.02)
    assert [(r.src, r.dst, r.dst_port) for r in requests] == [("a", "b", 5205)]
