"""Shared helpers of the Linux integration tests: a small topology and uniquely named labs."""

from __future__ import annotations

import itertools
import os
import shutil

import pytest

from netscaffold.model import Endpoint, Link, Node, NodeKind, Topology

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


def unique_lab(prefix: str = "t") -> str:
    return f"{prefix}{os.getpid() % 100000}x{next(_COUNTER)}"


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
