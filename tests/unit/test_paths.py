from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


def _reference_ecmp(finder: PathFinder, src: str, dst: str) -> list[tuple[str, ...]] | str:
    """What ``ecmp`` returned before it walked one Dijkstra DAG per source: networkx per pair."""
    try:
        return finder._ecmp_networkx(src, dst, finder.max_ecmp * 8)
    except TopologyError as exc:
        return str(exc)


def _ecmp_or_error(finder: PathFinder, src: str, dst: str) -> list[tuple[str, ...]] | str:
    try:
        return finder.ecmp(src, dst)
    except TopologyError as exc:
        return str(exc)


def test_ecmp_matches_networkx_on_a_fat_tree() -> None:
    topo = fat_tree(4, 1e9)
    finder, reference = PathFinder(topo), PathFinder(topo)
    hosts = topo.hosts()
    for src, dst in itertools.permutations(hosts, 2):
        assert finder.ecmp(src, dst) == _reference_ecmp(reference, src, dst)
    # more least-cost paths than the window: the networkx order decides which are kept, as before
    small = PathFinder(topo, max_ecmp=1)
    assert small.ecmp(hosts[0], hosts[-1]) == _reference_ecmp(
        PathFinder(topo, max_ecmp=1), hosts[0], hosts[-1]
    )


@settings(max_examples=80, deadline=None)
@given(
    st.integers(3, 8).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(
                st.tuples(
                    st.integers(0, n - 1),
                    st.integers(0, n - 1),
                    st.sampled_from([1.0, 2.0, 0.1, 0.2, 0.3, 0.7, 3.0]),
                ),
                min_size=1,
                max_size=3 * n,
            ),
            st.integers(1, 3),
        )
    )
)
def test_ecmp_matches_networkx_on_random_graphs(case: tuple[int, list[tuple[int, int, float]], int]) -> None:
    n, edges, max_ecmp = case
    nodes = [Node(f"n{i}") for i in range(n)]
    links = {(f"n{a}", f"n{b}"): Link(f"n{a}", f"n{b}", 1e9, cost=c) for a, b, c in edges if a != b}
    topo = Topology.build(nodes, list(links.values()))
    finder, reference = PathFinder(topo, max_ecmp=max_ecmp), PathFinder(topo, max_ecmp=max_ecmp)
    heads = PathFinder(topo, max_ecmp=max_ecmp)
    for src, dst in itertools.permutations([node.id for node in nodes], 2):
        want = _reference_ecmp(reference, src, dst)
        assert _ecmp_or_error(finder, src, dst) == want
        for k in (1, 2, 5):
            assert _head_or_error(heads, src, dst, k) == (
                want if isinstance(want, str) else (len(want), want[:k])
            )


def _head_or_error(finder: PathFinder, src: str, dst: str, k: int) -> tuple[int, list[tuple[str, ...]]] | str:
    try:
        return finder.ecmp_head(src, dst, k)
    except TopologyError as exc:
        return str(exc)


def test_ecmp_head_counts_and_lists_the_first_paths_only() -> None:
    topo = fat_tree(4, 1e9)
    hosts = topo.hosts()
    heads, full = PathFinder(topo), PathFinder(topo)
    for src, dst in itertools.permutations(hosts, 2):
        paths = full.ecmp(src, dst)
        assert heads.ecmp_head(src, dst, 2) == (len(paths), paths[:2])
    assert not heads._ecmp_cache  # nothing past the head was listed
    assert heads.ecmp_head(hosts[0], hosts[-1], 100) == (4, full.ecmp(hosts[0], hosts[-1]))
    with pytest.raises(TopologyError, match="k must be >= 1"):
        heads.ecmp_head(hosts[0], hosts[-1], 0)
    # more least-cost paths than the window: the head of networkx's choice, as ecmp gives
    small, reference = PathFinder(topo, max_ecmp=1), PathFinder(topo, max_ecmp=1)
    assert small.ecmp_head(hosts[0], hosts[-1], 1) == (1, reference.ecmp(hosts[0], hosts[-1]))


def test_ecmp_matches_networkx_after_the_dag_cache_turns_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """DAGs evicted and rebuilt (here: two kept) give the same paths as those kept all along."""
    import netscaffold.paths as paths_module

    monkeypatch.setattr(paths_module, "_DAG_CACHE_SOURCES", 2)
    monkeypatch.setattr(paths_module, "_DAG_CACHE_NODES", 0)
    topo = fat_tree(4, 1e9)
    hosts = topo.hosts()
    finder, reference = PathFinder(topo), PathFinder(topo)
    for dst, src in itertools.permutations(hosts, 2):  # a new source every query
        assert finder.ecmp_head(src, dst, 3) == (len(reference.ecmp(src, dst)), reference.ecmp(src, dst)[:3])
        assert len(finder._dags) <= 2
