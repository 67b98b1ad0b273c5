"""Real IPv6 packets through a lab (root): the reactive controller queues a first packet to fd00::/8 that
has no route, installs the path (/128 routes both ways) and releases it, as it does for IPv4."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.reactive import LAB_RANGE6, ReactiveController
from netscaffold.backends.linux.session import open_in_namespace
from netscaffold.backends.protocol import WallClock
from netscaffold.model import Origin

from .test_linux_common import small_lab

pytestmark = pytest.mark.root


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("q6", WallClock()) as be:
        yield be


def _udp6(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((address, port))
    sock.settimeout(3.0)
    return sock


def _one_datagram6(be: LinuxBackend) -> bool:
    rx = open_in_namespace(be.layout.namespace("h2"), lambda: _udp6("fd00::2", 5001))
    tx = open_in_namespace(be.layout.namespace("h1"), lambda: _udp6("fd00::1", 0))
    try:
        tx.sendto(b"first", ("fd00::2", 5001))
        rx.recvfrom(64)
    except OSError:  # a timeout, or no route at all on h1 (ENETUNREACH)
        return False
    finally:
        rx.close()
        tx.close()
    return True


def _ip6tables_mangle(be: LinuxBackend, node: str) -> str:
    netns = be.layout.namespace(node)
    return tools.run(["ip", "netns", "exec", netns, "ip6tables", "-w", "-t", "mangle", "-S", "PREROUTING"])


def test_reactive_controller_installs_an_ipv6_path_and_releases_the_first_packet(
    backend: LinuxBackend,
) -> None:
    assert not _one_datagram6(backend), "no route yet: the datagram must be lost without the controller"
    with ReactiveController(backend, idle_s=30.0) as controller:
        assert "NFQUEUE" in _ip6tables_mangle(backend, "r1")
        assert _one_datagram6(backend)
        assert _one_datagram6(backend)  # the path is in place: no second miss
        time.sleep(0.2)
        assert len(controller.controller_s) == 1
        assert controller.unknown == 0
        assert [(src, dst) for src, dst, _ in controller.misses] == [("fd00::1", "fd00::2")]
        assert len(controller.held_s) == 1
    snapshot = backend.snapshot()
    routes = {(item.key[1], item.key[2]) for item in snapshot}
    assert {
        ("r1", "fd00::2/128"),
        ("r2", "fd00::2/128"),
        ("r2", "fd00::1/128"),
        ("r1", "fd00::1/128"),
    } <= routes
    assert all(item.origin is Origin.PREDICTED for item in snapshot)
    assert backend.residue() == {}
    # stopped: no queue rule, no host gateway route left behind
    assert "NFQUEUE" not in _ip6tables_mangle(backend, "r1")
    assert tools.ip_json(backend.layout.namespace("h1"), ["-6", "route", "show", LAB_RANGE6]) == []
