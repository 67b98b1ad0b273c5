"""The emulator's ECMP table (same paths as PathFinder.ecmp) and packed path table."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from netscaffold.backends.sim import emulate
from netscaffold.backends.sim.routing import EcmpTable, PathTable, flow_uniforms
from netscaffold.errors import TopologyError
from netscaffold.model import Endpoint, Link, Node, NodeKind, Topology
from netscaffold.model.flows import FlowTable
from netscaffold.paths import PathFinder


def fat_tree4() -> Topology:
    nodes = [Node(f"c{c}", NodeKind.SWITCH) for c in range(4)]
    links: list[Link] = []
    for pod in range(4):
        for a in range(2):
            nodes.append(Node(f"p{pod}a{a}", NodeKind.SWITCH))
            links += [Link(f"p{pod}a{a}", f"c{a * 2 + j}", 1e9) for j in range(2)]
        for e in range(2):
            nodes.append(Node(f"p{pod}e{e}", NodeKind.SWITCH))
            links += [Link(f"p{pod}e{e}", f"p{pod}a{a}", 1e9) for a in range(2)]
            for h in range(2):
                nodes.append(Node(f"p{pod}e{e}h{h}", NodeKind.HOST))
                links.append(Link(f"p{pod}e{e}h{h}", f"p{pod}e{e}", 1e9))
    links += [Link(lk.dst, lk.src, lk.capacity_bps) for lk in list(links)]
    return Topology.build(nodes, links)


def test_matches_pathfinder_on_a_fat_tree() -> None:
    topo = fat_tree4()
    table, finder = EcmpTable(topo), PathFinder(topo)
    hosts = topo.hosts()
    for src, dst in itertools.permutations(hosts[:6] + hosts[-2:], 2):
        assert table.paths(src, dst) == finder.ecmp(src, dst)


def test_matches_pathfinder_on_random_weighted_graphs() -> None:
    rng = np.random.default_rng(3)
    for seed in range(5):
        graph = nx.gnm_random_graph(12, 30, seed=seed)
        for u, v in graph.edges:
            graph.edges[u, v]["capacity_bps"] = 1e9
            graph.edges[u, v]["cost"] = float(rng.integers(1, 3))
        topo = Topology.from_networkx(nx.relabel_nodes(graph, str))
        table, finder = EcmpTable(topo), PathFinder(topo)
        for src, dst in itertools.permutations(list(topo.nodes)[:6], 2):
            try:
                want = finder.ecmp(src, dst)
            except TopologyError:
                with pytest.raises(TopologyError):
                    table.paths(src, dst)
                continue
            assert table.paths(src, dst) == want


def test_path_with_missing_link_is_named() -> None:
    with pytest.raises(TopologyError, match="p0e0->c0"):
        PathTable(fat_tree4()).intern(("p0e0h0", "p0e0", "c0"))


def test_flow_hash_is_uniform_and_seeded() -> None:
    u = flow_uniforms(100_000, 1, 1)
    assert u.min() >= 0.0
    assert u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    assert not np.array_equal(u, flow_uniforms(100_000, 2, 1))
    np.testing.assert_array_equal(u, flow_uniforms(100_000, 1, 1))


def test_timed_flows_last_their_duration_at_their_rate() -> None:
    topo = fat_tree4().with_endpoints(
        [Endpoint("a", "p0e0h0", "198.18.0.1"), Endpoint("b", "p3e1h1", "198.18.0.2")]
    )
    flows = FlowTable.build(
        start_s=[0.0], src=[0], dst=[1], duration_s=[4.0], rate_bps=[2e8], endpoints=("a", "b")
    )
    result = emulate(topo, flows, profile="linux-local")
    start = result.setup_delay_s[0]
    assert result.completion_s[0] == pytest.approx(start + 4.0)
    assert result.sent_bytes.sum() == pytest.approx(2e8 * 4.0 / 8)
