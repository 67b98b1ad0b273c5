"""The live run's conntrack feed (root): connections that some other process opens between a lab's
endpoints reach the engine as flow requests, measured by the reactive controller; the traffic child's own
connections are counted, not reported twice."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest

from netscaffold.backends.linux.live import LiveLab
from netscaffold.backends.linux.traffic import PROBE_PORT
from netscaffold.model.events import FlowRequest
from netscaffold.model.flows import FlowTable

from .test_linux_common import skip_without_facilities, small_topology, unique_lab

pytestmark = pytest.mark.root


@pytest.fixture
def live() -> Iterator[LiveLab]:
    skip_without_facilities()
    quiet = FlowTable.build(start_s=np.zeros(0), src=[], dst=[], size_bytes=[], endpoints=("a", "b"))
    lab = LiveLab(small_topology(), quiet, lab=unique_lab("lf"), duration_s=30.0, idle_s=10.0)
    try:
        yield lab
    finally:
        lab.close()


def _send(live: LiveLab, src_port: int, dst_port: int) -> None:
    """One UDP datagram from endpoint a (198.18.0.1 on h1) to b (198.18.0.2 on h2)."""
    sender = (
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        f"s.bind(('198.18.0.1',{src_port}));s.sendto(b'x',('198.18.0.2',{dst_port}))"
    )
    namespace = live.lab.layout.namespace("h1")
    subprocess.run(["ip", "netns", "exec", namespace, "python3", "-c", sender], check=True)


def _flows_until(live: LiveLab, dst_port: int) -> list[FlowRequest]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [
            r for r in live.drain_routing_info() if isinstance(r, FlowRequest) and r.dst_port == dst_port
        ]
        if found:
            return found
        time.sleep(0.05)
    return []


def test_foreign_connections_are_flow_requests_measured_by_the_controller(live: LiveLab) -> None:
    _send(live, 41000, 5301)  # no path yet: the controller installs it while holding the packet
    (first,) = _flows_until(live, 5301)
    assert (first.src, first.dst, first.scaffolded) == ("a", "b", False)
    assert 0.0 < first.setup_delay_s < 1.0
    time.sleep(live.tick_s + 0.2)  # the controller's record leaves the window of the next flow
    _send(live, 41001, 5302)  # a new connection of the pair while its path is in place
    (second,) = _flows_until(live, 5302)
    assert (second.src, second.dst, second.scaffolded, second.setup_delay_s) == ("a", "b", True, 0.0)


def test_the_traffic_childs_connections_are_counted_not_reported(live: LiveLab) -> None:
    _send(live, 41002, 5303)
    assert _flows_until(live, 5303)
    before = live.kernel_flows
    _send(live, 41003, PROBE_PORT)  # what the traffic child's probes look like to conntrack
    deadline = time.monotonic() + 5
    reported: list[FlowRequest] = []
    while live.kernel_flows == before and time.monotonic() < deadline:
        reported += [r for r in live.drain_routing_info() if isinstance(r, FlowRequest)]
        time.sleep(0.05)
    assert live.kernel_flows == before + 1
    assert reported == []


def _carried(live: LiveLab) -> dict[tuple[str, str], float]:
    sample = live.performance()
    return dict(zip(sample.pair_keys, sample.pair_bytes.tolist(), strict=True))


def test_foreign_connections_bytes_are_the_pairs_telemetry(live: LiveLab) -> None:
    _carried(live)  # what the lab's set-up left behind
    _send(live, 41004, 5304)  # one datagram of 1 byte: 29 bytes at the IP layer
    assert _flows_until(live, 5304)
    assert _carried(live).get(("a", "b")) == 29.0
    _send(live, 41005, PROBE_PORT)  # the traffic child's port: the child counts its own bytes
    assert _carried(live).get(("a", "b")) is None
