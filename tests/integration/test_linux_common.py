"""Shared helpers of the Linux integration tests: a small topology, uniquely named labs (and a lab of the
small topology, torn down afterwards), and a bare namespace with one veth pair for tests that talk netlink
directly."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.session import NamespaceSession
from netscaffold.backends.protocol import Clock, ManualClock
from netscaffold.formats.render import tc as tc_render
from netscaffold.model import Endpoint, Link, NetworkConfig, NextHop, Node, NodeKind, Plan, Route, Topology

_COUNTER = itertools.count()


def facilities_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not os.path.isdir("/run") or shutil.which("ip") is None:
        return "no `ip` tool (iproute2)"
    if shutil.which("nft") is None or shutil.which("tc") is None:
        return "no nft or tc binary"
    return None


def skip_without_facilities() -> None:
    reason = facilities_missing()
    if reason:
        pytest.skip(reason)


@contextmanager
def veth_namespace(
    prefix: str, device: str, peer: str, ip_lines: Sequence[str] = ()
) -> Iterator[NamespaceSession]:
    """A fresh namespace holding the veth pair ``device`` / ``peer`` (both up), then ``ip_lines`` (``ip
    -batch`` lines: addresses, say) and an HTB root on ``device``, with a netlink session into it; the
    namespace is deleted afterwards, also on failure."""
    skip_without_facilities()
    netns = f"ns-{unique_lab(prefix)}"
    tools.add_namespace(netns)
    session = None
    try:
        link = [
            f"link add {device} type veth peer name {peer}",
            f"link set {device} up",
            f"link set {peer} up",
        ]
        tools.ip_batch(netns, [*link, *ip_lines])
        tools.tc_batch(netns, tc_render.root_lines(device, 10e9))
        session = NamespaceSession(netns)
        yield session
    finally:
        if session is not None:
            session.close()
        tools.delete_namespace(netns)


def unique_lab(prefix: str = "t") -> str:
    return f"{prefix}{os.getpid() % 100000}x{next(_COUNTER)}"


@contextmanager
def small_lab(prefix: str, clock: Clock | None = None) -> Iterator[LinuxBackend]:
    """A lab of :func:`small_topology` named from ``prefix`` (skipped where the facilities are absent),
    torn down afterwards, also on failure."""
    skip_without_facilities()
    backend = LinuxBackend(small_topology(), lab=unique_lab(prefix), clock=clock or ManualClock())
    try:
        yield backend
    finally:
        backend.close()


def small_topology() -> Topology:
    """h1 - r1 - {r2 | fw} - r2 - h2: two paths from r1 to r2, one through a firewall."""
    nodes = [
        Node("h1", NodeKind.HOST),
        Node("h2", NodeKind.HOST),
        Node("r1"),
        Node("r2"),
        Node("fw", NodeKind.FIREWALL),
    ]
    pairs = [("h1", "r1"), ("r1", "r2"), ("r1", "fw"), ("fw", "r2"), ("r2", "h2")]
    links = [Link(a, b, 1e9) for x, y in pairs for a, b in ((x, y), (y, x))]
    endpoints = [
        Endpoint("a", "h1", "198.18.0.1"),
        Endpoint("b", "h2", "198.18.0.2"),
        Endpoint("a6", "h1", "fd00::1"),
        Endpoint("b6", "h2", "fd00::2"),
    ]
    return Topology.build(nodes, links, endpoints, name="small")


def route_a_b(backend: LinuxBackend) -> None:
    """Static routes both ways between endpoints a (198.18.0.1 on h1) and b (198.18.0.2 on h2) of a lab
    of :func:`small_topology`, over h1 - r1 - r2 - h2."""
    path = ("h1", "r1", "r2", "h2")
    routes = [Route(here, "198.18.0.2/32", (NextHop(there),)) for here, there in itertools.pairwise(path)]
    back = path[::-1]
    routes += [Route(here, "198.18.0.1/32", (NextHop(there),)) for here, there in itertools.pairwise(back)]
    backend.apply(Plan.between(NetworkConfig(), NetworkConfig.of(routes)))
