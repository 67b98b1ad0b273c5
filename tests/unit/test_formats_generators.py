"""Leaf-spine and fat-tree generators, endpoint attachment, and summaries."""

from __future__ import annotations

import ipaddress

import pytest

from netscaffold.errors import TopologyError
from netscaffold.formats.generators import attach_endpoints, fat_tree, leaf_spine
from netscaffold.formats.summary import summarize, weak_components
from netscaffold.model.topology import Link, Node, NodeKind, Topology


@pytest.mark.parametrize(("k", "switches", "hosts"), [(2, 5, 2), (4, 20, 16), (6, 45, 54), (8, 80, 128)])
def test_fat_tree_counts_and_degrees(k: int, switches: int, hosts: int) -> None:
    topo = fat_tree(k, 1e9)
    kinds = summarize(topo)["kinds"]
    assert (kinds["switch"], kinds["host"]) == (switches, hosts)
    # Every switch has k ports in use (core: k pods; agg: k/2 up + k/2 down; edge: k/2 up + k/2 hosts).
    for node in topo.nodes.values():
        degree = sum(1 for _ in topo.neighbours(node.id))
        assert degree == (1 if node.kind is NodeKind.HOST else k)
    assert len(topo.links) == 2 * (k**3 // 4) * 3  # three layers of k^3/4 cables, two directions each


def test_fat_tree_k4_is_36_nodes() -> None:
    assert len(fat_tree(4, 10e9).nodes) == 36


def test_leaf_spine_shape_names_and_rates() -> None:
    topo = leaf_spine(spines=4, leaves=8, hosts_per_leaf=4, link_bps=10e9, host_link_bps=25e9, delay_s=2e-6)
    summary = summarize(topo)
    assert (summary["nodes"], summary["hosts"], summary["links"]) == (44, 32, 2 * (4 * 8 + 32))
    assert topo.hosts() == sorted(topo.hosts()) == [f"h{i:03d}" for i in range(32)]
    assert topo.link("leaf00", "spine03").capacity_bps == 10e9
    assert topo.link("h000", "leaf00").capacity_bps == 25e9
    assert topo.link("leaf07", "h031").delay_s == 2e-6
    assert summary["components"] == 1


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: leaf_spine(0, 1, 1, 1e9), "spines"),
        (lambda: leaf_spine(1, 1, -1, 1e9), "hosts_per_leaf"),
        (lambda: leaf_spine(1, 1, 1, float("nan")), "link_bps"),
        (lambda: leaf_spine(1, 1, 1, 1e9, host_link_bps=0), "host_link_bps"),
        (lambda: fat_tree(3, 1e9), "k"),
        (lambda: fat_tree(0, 1e9), "k"),
    ],
)
def test_generator_arguments_are_checked(call: object, field: str) -> None:
    with pytest.raises(TopologyError) as info:
        call()  # type: ignore[operator]
    assert info.value.location.field == field


def test_attach_endpoints_is_deterministic_and_uses_the_benchmark_range() -> None:
    topo = attach_endpoints(leaf_spine(2, 2, 3, 1e9), per_host=2)
    again = attach_endpoints(leaf_spine(2, 2, 3, 1e9), per_host=2)
    assert topo.fingerprint_data() == again.fingerprint_data()
    assert len(topo.endpoints) == 12
    network = ipaddress.ip_network("198.18.0.0/15")
    addresses = [ipaddress.ip_address(e.address) for e in topo.endpoints.values()]
    assert len(set(addresses)) == 12
    assert all(a in network for a in addresses)
    first = topo.endpoint("h000/app0")
    assert (first.host, first.address, first.app) == ("h000", "198.18.0.1", "app0")


def test_backbone_routers_carry_endpoints_in_natural_order() -> None:
    nodes = [Node(str(i)) for i in (10, 2, 1)]
    links = [Link("10", "2", 1e9), Link("2", "1", 1e9)]
    topo = attach_endpoints(Topology.build(nodes, links), prefix="fd00::/64")
    assert [e.host for e in topo.endpoints.values()] == ["1", "2", "10"]
    assert topo.endpoint("10/app0").address == "fd00::3"


def test_attach_endpoints_refuses_a_small_prefix_and_duplicates() -> None:
    topo = leaf_spine(1, 1, 4, 1e9)
    with pytest.raises(TopologyError, match="do not fit"):
        attach_endpoints(topo, prefix="10.0.0.0/30")
    with pytest.raises(TopologyError, match="not an address prefix"):
        attach_endpoints(topo, prefix="banana")
    with pytest.raises(TopologyError, match="already exists"):
        attach_endpoints(attach_endpoints(topo), prefix="10.0.0.0/24")


def test_summary_of_a_disconnected_map_with_defaults() -> None:
    nodes = [Node(n) for n in "abcde"]
    links = [
        Link("a", "b", 1e9),
        Link("a", "b", 2e9),
        Link("c", "d", 4e9, capacity_defaulted=True),
    ]
    topo = Topology.build(nodes, links)
    summary = summarize(topo)
    assert weak_components(topo) == summary["components"] == 3
    assert summary["capacity_bps"] == {"min": 3e9, "median": 3.5e9, "max": 4e9}
    assert summary["merged_parallel_links"] == 1
    assert summary["defaulted_capacities"] == 1
    assert summary["links"] == 2
    empty = summarize(Topology.build([Node("x")], []))
    assert empty["capacity_bps"]["min"] is None
