"""Candidate paths: the one place where path computation lives (predict, scaffold and the emulator).

Paths are node tuples from a source node to a destination node. Weights are link ``cost`` by default;
a per-link utilisation array can inflate costs so that busy links are avoided.
"""

from __future__ import annotations

import heapq
import itertools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netscaffold.errors import TopologyError
from netscaffold.model.topology import LinkKey, Topology

if TYPE_CHECKING:
    import networkx as nx

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
    _adjacency: dict[str, list[tuple[str, float]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._graph = self.topology.to_networkx()
        self._adjacency = {
            node: [(nxt, attrs.get("cost", 1)) for nxt, attrs in succ.items()]
            for node, succ in self._graph.succ.items()
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
        self._check(src, dst)
        dag = self._dag_from(src)
        if dst not in dag.pred:
            raise TopologyError(f"no path from {src!r} to {dst!r}", element=f"pair {src}->{dst}")
        window = self.max_ecmp * 8
        if dag.count(dst, window + 1) <= window:
            paths = dag.first_paths(dst, self.max_ecmp)
        else:
            paths = self._ecmp_networkx(src, dst, window)
        self._ecmp_cache[key] = paths
        return paths

    def _dag_from(self, src: str) -> _ShortestPathDag:
        """The least-cost predecessor DAG from ``src`` (one Dijkstra serves every destination), kept for
        the most recently used sources."""
        dag = self._dags.pop(src, None)
        if dag is None:
            dag = _ShortestPathDag(src, _dijkstra_predecessors(self._adjacency, src))
            if len(self._dags) >= _DAG_CACHE_SOURCES:
                del self._dags[next(iter(self._dags))]
        self._dags[src] = dag
        return dag

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


def _dijkstra_predecessors(
    adjacency: Mapping[str, list[tuple[str, float]]], src: str
) -> dict[str, list[str]]:
    """``nx.dijkstra_predecessor_and_distance(graph, src, weight="cost")[0]``, step for step (same sums,
    same exact-equality ties, same successor order), without networkx's per-edge call overhead."""
    dist: dict[str, float] = {}
    seen: dict[str, float] = {src: 0.0}
    pred: dict[str, list[str]] = {src: []}
    counter = itertools.count()
    fringe: list[tuple[float, int, str]] = [(0.0, next(counter), src)]
    while fringe:
        d, _, node = heapq.heappop(fringe)
        if node in dist:
            continue
        dist[node] = d
        for nxt, cost in adjacency[node]:
            nxt_dist = d + cost
            if nxt in dist:
                if nxt_dist == dist[nxt]:
                    pred[nxt].append(node)
            elif nxt not in seen or nxt_dist < seen[nxt]:
                seen[nxt] = nxt_dist
                heapq.heappush(fringe, (nxt_dist, next(counter), nxt))
                pred[nxt] = [node]
            elif nxt_dist == seen[nxt]:
                pred[nxt].append(node)
    return pred


@dataclass
class _ShortestPathDag:
    """Least-cost paths from one source: predecessor lists, path counts and the lexicographically first
    paths to each node (memoised: the first ``n`` paths to a node are among the first ``n`` paths to its
    predecessors, each extended by the node)."""

    src: str
    pred: dict[str, list[str]]
    _counts: dict[str, int] = field(default_factory=dict)
    _first: dict[str, list[Path]] = field(default_factory=dict)

    def count(self, node: str, cap: int) -> int:
        """Least-cost paths from the source to ``node``, counted up to ``cap``."""
        found = self._counts.get(node)
        if found is None:
            prevs = self.pred[node]
            found = min(cap, sum(self.count(prev, cap) for prev in prevs)) if prevs else 1
            self._counts[node] = found
        return found

    def first_paths(self, node: str, n: int) -> list[Path]:
        found = self._first.get(node)
        if found is None:
            prevs = self.pred[node]
            if not prevs:
                found = [(node,)]
            else:
                found = sorted((*p, node) for prev in prevs for p in self.first_paths(prev, n))[:n]
            self._first[node] = found
        return found
