from __future__ import annotations

import itertools

import pytest
from tests.helpers.topologies import two_tier

from netscaffold.errors import TopologyError
from netscaffold.formats.generators import fat_tree
from netscaffold.model import Link, Node, Topology
from netscaffold.paths import PathFinder


def test_ecmp_and_k_shortest() -> None:
    finder = PathFinder(two_tier())
    assert finder.ecmp("h1", "h3") == [("h1", "l1", "s1", "l2", "h3"), ("h1", "l1", "s2", "l2", "h3")]
    assert len(finder.k_shortest("h1", "h3", 3)) == 2  # only two loop-free paths exist
    busy = {("l1", "s1"): 0.95}
    assert finder.k_shortest("h1", "h3", 1, utilisation=busy) == [("h1", "l1", "s2", "l2", "h3")]


def test_tree_paths_never_diverge_after_meeting() -> None:
    topo = fat_tree(4, 1e9)
    finder = PathFinder(topo)
    hosts = topo.hosts()
    dst = hosts[-1]
    next_hop: dict[str, str] = {}
    for src in hosts[:-1]:
        path = finder.tree_path(src, dst)
        assert path in finder.ecmp(src, dst)
        for here, there in itertools.pairwise(path):
            assert next_hop.setdefault(here, there) == there


def test_unreachable_and_unknown() -> None:
    topo = Topology.build([Node("a"), Node("b"), Node("c")], [Link("a", "b", 1e9)])
    finder = PathFinder(topo)
    with pytest.raises(TopologyError, match="no path from 'a' to 'c'"):
        finder.tree_path("a", "c")
    with pytest.raises(TopologyError, match="no path"):
        finder.ecmp("a", "c")
    with pytest.raises(TopologyError, match="unknown node"):
        finder.ecmp("a", "zz")
