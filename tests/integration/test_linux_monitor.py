"""The route monitor on a lab (root): announcements become RouteUpdates, and an overflowed socket
resyncs from a dump so that the final state is right even when announcements were dropped."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.monitor import RouteMonitor
from netscaffold.backends.linux.netlink import RTM_NEWROUTE, route_at, route_message
from netscaffold.model import NetworkConfig, NextHop, Plan, Route

from .test_linux_common import small_lab


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("m") as be:
        yield be


def _routes(count: int) -> NetworkConfig:
    return NetworkConfig.of(
        [Route("r1", f"198.18.{100 + i // 250}.{i % 250 + 1}/32", (NextHop("r2"),)) for i in range(count)]
    )


@pytest.mark.root
def test_announcements_become_route_updates(backend: LinuxBackend) -> None:
    monitor = RouteMonitor(backend.layout)
    try:
        config = NetworkConfig.of([Route("r1", "198.18.0.2/32", (NextHop("r2", 0.25), NextHop("fw", 0.75)))])
        backend.apply(Plan.between(NetworkConfig(), config))
        added = monitor.poll(1.0)
        assert [(u.device, u.destination, u.withdrawn) for u in added] == [("r1", "198.18.0.2/32", False)]
        assert len(added[0].next_hops) == 2
        backend.apply(Plan.between(config, NetworkConfig(), allow_confirmed_changes=True))
        removed = monitor.poll(2.0)
        assert [(u.device, u.destination, u.withdrawn, u.time_s) for u in removed] == [
            ("r1", "198.18.0.2/32", True, 2.0)
        ]
        assert monitor.poll(3.0) == []
    finally:
        monitor.close()


@pytest.mark.root
def test_an_overflowed_monitor_resyncs_to_the_kernel_state(backend: LinuxBackend) -> None:
    monitor = RouteMonitor(backend.layout)
    try:
        r1 = next(m for m in monitor.monitors if m.node == "r1")
        r1.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum: it overflows
        config = _routes(1500)
        backend.apply(Plan.between(NetworkConfig(), config))
        updates = monitor.poll(1.0)
        assert monitor.overflows >= 1
        assert {u.destination for u in updates if u.device == "r1"} == {
            item.destination for item in config if isinstance(item, Route)
        }
        assert len(r1.known) == 1500
        backend.apply(Plan.between(config, NetworkConfig(), allow_confirmed_changes=True))
        monitor.poll(2.0)
        assert r1.known == {}
    finally:
        monitor.close()


@pytest.mark.parametrize(
    ("destination", "hops", "table"),
    [
        ("198.18.0.2/32", (("198.19.0.1", 1),), 254),
        ("198.18.4.0/24", (("198.19.0.1", 64), ("198.19.0.3", 256)), 10_001),
        ("fd00::2/128", (("fd5c:af::1", 3), ("fd5c:af::5", 1)), 254),
    ],
)
def test_route_messages_decode_to_what_was_encoded(
    destination: str, hops: tuple[tuple[str, int], ...], table: int
) -> None:
    """The one-pass decoder of read-backs and the monitor against the encoder of writes (no root)."""
    kind, _, payload = route_message("replace", destination, hops, 202, table)
    assert kind == RTM_NEWROUTE
    decoded = route_at(payload, 0)
    assert decoded is not None
    assert (f"{decoded.dst}/{decoded.dst_len}", decoded.next_hops) == (destination, tuple(sorted(hops)))
    assert (decoded.table, decoded.protocol, decoded.family) == (table, 202, 6 if ":" in destination else 4)
