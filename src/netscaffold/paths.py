"""Candidate paths: the one place where path computation lives (predict, scaffold and the emulator).

Paths are node tuples from a source node to a destination node. Weights are link ``cost`` by default;
a per-link utilisation array can inflate costs so that busy links are avoided.
"""

from __future__ import annotations

import itertools
import math
import zlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from netscaffold.errors import TopologyError
from netscaffold.model.topology import LinkKey, Topology

if TYPE_CHECKING:
    import networkx as nx
    from scipy.sparse import csr_array

Path = tuple[str, ...]


def _weight_fn(utilisation: Mapping[LinkKey, float] | None, alpha: float) -> str | object:
    if not utilisation:
        return "cost"

    def weight(u: str, v: str, attrs: Mapping[str, float]) -> float:
        load = min(max(utilisation.get((u, v), 0.0), 0.0), 0.99)
        return attrs["cost"] * (1.0 + alpha * load / (1.0 - load))

    return weight


@dataclass
class PathFinder:
    """Cached path queries over one topology.

    ``ecmp(src, dst)``: every least-cost path (equal-cost multipath), in a deterministic order;
    ``k_shortest(src, dst, k)``: the k loop-free paths of least cost (Yen, via networkx).
    """

    topology: Topology
    max_ecmp: int = 16
    _graph: nx.DiGraph = field(init=False, repr=False)
    _ecmp_cache: dict[tuple[str, str], list[Path]] = field(default_factory=dict, repr=False)
    _dist_cache: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    _tree_cache: dict[tuple[str, str], Path] = field(default_factory=dict, repr=False)
    _dags: dict[str, _ShortestPathDag] = field(default_factory=dict, repr=False)
    _in_edges: dict[str, list[tuple[str, int, float]]] = field(init=False, repr=False)
    _names: list[str] = field(init=False, repr=False)
    _index: dict[str, int] = field(init=False, repr=False)
    _csgraph: csr_array | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._graph = self.topology.to_networkx()
        self._names = list(self._graph.nodes)
        self._index = {name: i for i, name in enumerate(self._names)}
        self._in_edges = {
            node: [(prev, self._index[prev], attrs.get("cost", 1)) for prev, attrs in pred.items()]
            for node, pred in self._graph.pred.items()
        }

    def _check(self, src: str, dst: str) -> None:
        self.topology.node(src)
        self.topology.node(dst)
        if src == dst:
            raise TopologyError("source and destination are the same node", element=f"node {src!r}")

    def ecmp(self, src: str, dst: str) -> list[Path]:
        key = (src, dst)
        cached = self._ecmp_cache.get(key)
        if cached is not None:
            return cached
        count, paths = self._dag_to(src, dst).head(dst, self.max_ecmp, self._count_cap)
        if count > self.max_ecmp * 8:
            paths = self._ecmp_networkx(src, dst, self.max_ecmp * 8)
        self._ecmp_cache[key] = paths
        return paths

    def ecmp_head(self, src: str, dst: str, k: int) -> tuple[int, list[Path]]:
        """``len(ecmp(src, dst))`` and ``ecmp(src, dst)[:k]``, without listing the paths past the first
        ``k`` (a planner that keeps a pair's first few equal-cost paths needs no more)."""
        if k < 1:
            raise TopologyError(f"k must be >= 1, got {k}")
        cached = self._ecmp_cache.get((src, dst))
        if cached is not None:
            return len(cached), cached[:k]
        count, head = self._dag_to(src, dst).head(dst, min(k, self.max_ecmp), self._count_cap)
        if count > self.max_ecmp * 8:
            paths = self.ecmp(src, dst)
            return len(paths), paths[:k]
        return min(count, self.max_ecmp), head

    @property
    def _count_cap(self) -> int:
        """Paths are counted up to one past the window that :meth:`ecmp` lists from the DAG (beyond it,
        networkx's order decides which are kept)."""
        return self.max_ecmp * 8 + 1

    def _dag_to(self, src: str, dst: str) -> _ShortestPathDag:
        """The DAG from ``src``, checked to reach ``dst``."""
        self._check(src, dst)
        dag = self._dag_from(src)
        if not dag.reaches(dst):
            raise TopologyError(f"no path from {src!r} to {dst!r}", element=f"pair {src}->{dst}")
        return dag

    def _dag_from(self, src: str) -> _ShortestPathDag:
        """The least-cost predecessor DAG from ``src`` (one Dijkstra serves every destination), kept for
        the most recently used sources."""
        dag = self._dags.pop(src, None)
        if dag is None:
            dag = _ShortestPathDag(src, self._distances_from(src), self._index, self._in_edges)
            if len(self._dags) >= max(_DAG_CACHE_SOURCES, _DAG_CACHE_NODES // len(self._names)):
                del self._dags[next(iter(self._dags))]
        self._dags[src] = dag
        return dag

    def _distances_from(self, src: str) -> array[float]:
        """Least-cost distance from ``src`` to every node, by index (inf: unreachable; scipy's Dijkstra,
        in C). Costs are
        positive, so ``x + cost >= x`` in floating point and every Dijkstra yields the same minimum over
        paths of the left-to-right float sums: the distances networkx computes, to the last bit."""
        from scipy.sparse.csgraph import dijkstra

        if self._csgraph is None:
            self._csgraph = _cost_matrix(self._graph, self._index)
        return array("d", dijkstra(self._csgraph, indices=self._index[src]).tobytes())

    def _ecmp_networkx(self, src: str, dst: str, window: int) -> list[Path]:
        """The reference: the first ``window`` paths networkx yields, sorted (used where that order
        matters: more least-cost paths than the window)."""
        import networkx as nx

        try:
            found = itertools.islice(nx.all_shortest_paths(self._graph, src, dst, weight="cost"), window)
            return sorted(tuple(p) for p in found)[: self.max_ecmp]
        except nx.NetworkXNoPath:
            raise TopologyError(f"no path from {src!r} to {dst!r}", element=f"pair {src}->{dst}") from None

    def k_shortest(
        self,
        src: str,
        dst: str,
        k: int,
        utilisation: Mapping[LinkKey, float] | None = None,
        alpha: float = 1.0,
    ) -> list[Path]:
        import networkx as nx

        self._check(src, dst)
        if k < 1:
            raise TopologyError(f"k must be >= 1, got {k}")
        weight = _weight_fn(utilisation, alpha)
        try:
            gen = nx.shortest_simple_paths(self._graph, src, dst, weight=weight)
            return [tuple(p) for p in itertools.islice(gen, k)]
        except nx.NetworkXNoPath:
            raise TopologyError(f"no path from {src!r} to {dst!r}", element=f"pair {src}->{dst}") from None

    def tree_path(self, src: str, dst: str) -> Path:
        """One least-cost path chosen so that every source's path to ``dst`` follows the same next hop at
        each node (a destination-rooted tree): the next hop of ``v`` is, among its least-cost next hops
        toward ``dst``, the one with the smallest crc32 of ``"dst|hop"``. Destination-based routes can then
        pin a pair to one path without another source to the same destination pulling it elsewhere."""
        cached = self._tree_cache.get((src, dst))
        if cached is not None:
            return cached
        self._check(src, dst)
        dist = self._dist_to(dst)
        if src not in dist:
            raise TopologyError(f"no path from {src!r} to {dst!r}", element=f"pair {src}->{dst}")
        path = [src]
        node = src
        while node != dst:
            best = [
                nxt
                for nxt in self._graph.successors(node)
                if nxt in dist
                and abs(self._graph[node][nxt]["cost"] + dist[nxt] - dist[node])
                <= 1e-9 * max(1.0, dist[node])
            ]
            node = min(best, key=lambda hop: (zlib.crc32(f"{dst}|{hop}".encode()), hop))
            path.append(node)
        found = tuple(path)
        self._tree_cache[(src, dst)] = found
        return found

    def _dist_to(self, dst: str) -> dict[str, float]:
        cached = self._dist_cache.get(dst)
        if cached is None:
            import networkx as nx

            cached = nx.single_source_dijkstra_path_length(
                self._graph.reverse(copy=False), dst, weight="cost"
            )
            self._dist_cache[dst] = cached
        return cached

    def path_cost(self, path: Path) -> float:
        return sum(link.cost for link in self.topology.path_links(path))

    def path_delay_s(self, path: Path) -> float:
        return sum(link.delay_s for link in self.topology.path_links(path))


_DAG_CACHE_SOURCES = 64
_DAG_CACHE_NODES = 1 << 19
"""DAGs are kept for the most recent max(64, this / node count) sources: every source of a topology of up
to 8,192 nodes. Measured on a fat-tree k=12 with 10,000 pairs: about 130 bytes per source and node (most of
it the memoised paths; 200 with whole ``ecmp`` lists), so some 65-100 MB at most."""


def _cost_matrix(graph: nx.DiGraph, index: Mapping[str, int]) -> csr_array:
    """The link costs as a sparse matrix, nodes numbered by ``index`` (row: from, column: to)."""
    from scipy.sparse import csr_array

    edges = list(graph.edges(data="cost", default=1))
    rows = np.fromiter((index[u] for u, _, _ in edges), dtype=np.int64, count=len(edges))
    cols = np.fromiter((index[v] for _, v, _ in edges), dtype=np.int64, count=len(edges))
    costs = np.fromiter((float(c) for _, _, c in edges), dtype=np.float64, count=len(edges))
    return csr_array((costs, (rows, cols)), shape=(len(index), len(index)))


@dataclass
class _ShortestPathDag:
    """Least-cost paths from one source: the distances, predecessor lists (found on demand: the
    in-neighbours ``u`` of a node ``v`` with ``dist[u] + cost(u, v) == dist[v]``, the exact-equality ties
    networkx's ``dijkstra_predecessor_and_distance`` keeps), path counts and the lexicographically first
    paths to each node (memoised: the first ``n`` paths to a node are among the first ``n`` paths to its
    predecessors, each extended by the node)."""

    src: str
    dist: array[float]
    """By node index; inf where the source does not reach."""
    index: Mapping[str, int]
    in_edges: Mapping[str, list[tuple[str, int, float]]]
    """Per node, its in-neighbours: (name, index, link cost)."""
    _heads: dict[int, dict[str, tuple[int, list[Path]]]] = field(default_factory=dict)
    """Per ``n``, :meth:`head` of each node."""

    def reaches(self, node: str) -> bool:
        return self.dist[self.index[node]] != math.inf

    def pred(self, node: str) -> list[str]:
        """The predecessors of a node the source reaches (not memoised: the walks below memoise their
        results per node, and each asks once)."""
        if node == self.src:
            return []
        dist = self.dist
        here = dist[self.index[node]]
        return [prev for prev, at, cost in self.in_edges[node] if dist[at] + cost == here]

    def head(self, node: str, n: int, cap: int) -> tuple[int, list[Path]]:
        """The number of least-cost paths from the source to ``node`` (counted up to ``cap``, the same on
        every call) and the lexicographically first ``n`` of them, in one memoised walk."""
        memo = self._heads.get(n)
        if memo is None:
            memo = self._heads[n] = {}
        found = memo.get(node)
        if found is None:
            prevs = self.pred(node)
            if not prevs:
                found = (1, [(node,)])
            elif len(prevs) == 1:  # already in order and no more than n
                count, paths = memo.get(prevs[0]) or self.head(prevs[0], n, cap)
                found = (count, [(*p, node) for p in paths])
            else:
                total = 0
                extended: list[Path] = []
                for prev in prevs:
                    count, paths = memo.get(prev) or self.head(prev, n, cap)
                    total += count
                    extended.extend([(*p, node) for p in paths])
                extended.sort()
                found = (min(cap, total), extended[:n])
            memo[node] = found
        return found
