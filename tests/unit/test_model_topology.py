from __future__ import annotations

import pytest

from netscaffold.errors import TopologyError
from netscaffold.model import Endpoint, Link, Node, NodeKind, Topology


def _nodes(*ids: str) -> list[Node]:
    return [Node(i) for i in ids]


def test_build_and_query() -> None:
    topo = Topology.build(
        [Node("a", NodeKind.HOST), Node("s"), Node("b", NodeKind.HOST)],
        [Link("a", "s", 1e9), Link("s", "b", 1e9, delay_s=0.001, cost=2)],
        [Endpoint("web-0", "a", "198.18.0.1", app="web")],
    )
    assert topo.hosts() == ["a", "b"]
    assert topo.attachment_nodes() == ["a", "b"]
    assert topo.link("s", "b").cost == 2
    assert [lk.key for lk in topo.path_links(("a", "s", "b"))] == [("a", "s"), ("s", "b")]
    assert topo.endpoint("web-0").app_name == "web"


def test_backbone_without_hosts_attaches_to_every_node() -> None:
    topo = Topology.build(_nodes("r1", "r2"), [Link("r1", "r2", 1e9)])
    assert topo.attachment_nodes() == ["r1", "r2"]


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ([Link("a", "zz", 1e9)], "unknown node 'zz'"),
        ([Link("a", "a", 1e9)], "self-loop"),
        ([Link("a", "b", 0)], "capacity_bps must be a positive number"),
        ([Link("a", "b", -5)], "capacity_bps must be a positive number"),
        ([Link("a", "b", float("nan"))], "capacity_bps must be a positive number"),
        ([Link("a", "b", 1e9, delay_s=-1)], "delay_s must be >= 0"),
        ([Link("a", "b", 1e9, cost=0)], "cost must be a positive number"),
    ],
)
def test_bad_links_are_refused_naming_the_link(links: list[Link], message: str) -> None:
    with pytest.raises(TopologyError, match=message) as info:
        Topology.build(_nodes("a", "b"), links)
    assert "link a->" in str(info.value)


def test_duplicate_node_named() -> None:
    with pytest.raises(TopologyError, match="node 'a': duplicate node id"):
        Topology.build(_nodes("a", "a"), [])


def test_parallel_links_merge_with_summed_capacity_and_lowest_cost() -> None:
    topo = Topology.build(
        _nodes("a", "b"),
        [Link("a", "b", 1e9, delay_s=0.002, cost=5), Link("a", "b", 2e9, delay_s=0.001, cost=3)],
    )
    link = topo.link("a", "b")
    assert link.capacity_bps == 3e9
    assert link.cost == 3
    assert link.delay_s == 0.001
    assert topo.merged_parallel_links == 1
    assert any("merged 1 parallel" in w for w in topo.warnings)


def test_endpoint_errors() -> None:
    with pytest.raises(TopologyError, match="endpoint 'e': attached to unknown node 'x'"):
        Topology.build(_nodes("a"), [], [Endpoint("e", "x", "198.18.0.1")])
    with pytest.raises(TopologyError, match="invalid address"):
        Topology.build(_nodes("a"), [], [Endpoint("e", "a", "not-an-ip")])


def test_networkx_round_trip() -> None:
    topo = Topology.build(
        [Node("a", NodeKind.HOST, 1.0, 2.0), Node("b", NodeKind.FIREWALL)],
        [Link("a", "b", 1e9, 0.001, 2.0), Link("b", "a", 5e8)],
        name="t",
    )
    again = Topology.from_networkx(topo.to_networkx())
    assert again.fingerprint_data() == topo.fingerprint_data()


def test_unknown_lookups_name_the_element() -> None:
    topo = Topology.build(_nodes("a", "b"), [Link("a", "b", 1e9)])
    with pytest.raises(TopologyError, match="node 'q'"):
        topo.node("q")
    with pytest.raises(TopologyError, match="link b->a"):
        topo.link("b", "a")
    with pytest.raises(TopologyError, match="endpoint 'z'"):
        topo.endpoint("z")
