"""Backends under the contract suite. Add a backend with one entry in ``BACKENDS``: a factory taking the
contract topology and an injected clock, returning the backend (skip inside it when unavailable)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from netscaffold.backends.protocol import Backend, ManualClock
from netscaffold.model import Endpoint, Link, Node, NodeKind, Topology
from netscaffold.model.flows import FlowTable

Factory = Callable[[Topology, ManualClock], Backend]


def contract_topology() -> Topology:
    """h1, h2 -- s1 -- fw -- h3, 10 Mbit/s links both ways, one endpoint per host."""
    nodes = [Node("h1", NodeKind.HOST), Node("h2", NodeKind.HOST), Node("h3", NodeKind.HOST)]
    nodes += [Node("s1", NodeKind.SWITCH), Node("fw", NodeKind.FIREWALL)]
    links = []
    for a, b in (("h1", "s1"), ("h2", "s1"), ("s1", "fw"), ("fw", "h3")):
        links += [Link(a, b, 10e6), Link(b, a, 10e6)]
    endpoints = [Endpoint(f"e{i}", f"h{i}", f"198.18.0.{i}") for i in (1, 2, 3)]
    return Topology.build(nodes, links, endpoints, name="contract")


def _sim(topology: Topology, clock: ManualClock) -> Backend:
    from netscaffold.backends.sim import SimBackend

    flows = FlowTable.build(
        start_s=[0.5, 1.5, 2.5],
        src=[0, 1, 0],
        dst=[2, 2, 1],
        size_bytes=[1e5, 2e5, 5e4],
        endpoints=("e1", "e2", "e3"),
    )
    return SimBackend(topology, flows, clock=clock)


def _linux(topology: Topology, clock: ManualClock) -> Backend:
    """A lab in network namespaces (root); a unique lab name per test, torn down by ``close()``."""
    import os
    import shutil

    from netscaffold.backends.linux.backend import LinuxBackend

    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nft", "tc")):
        pytest.skip("the linux backend needs root and the ip, nft and tc tools")
    number = next(_LINUX_LABS)
    return LinuxBackend(topology, lab=f"k{os.getpid() % 100000}x{number}", clock=clock)


_LINUX_LABS = itertools.count()
BACKENDS: dict[str, Factory] = {"sim": _sim, "linux": _linux}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    made = BACKENDS[request.param](contract_topology(), ManualClock())
    try:
        yield made
    finally:
        made.close()
