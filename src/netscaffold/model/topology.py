"""The topology: nodes, directed links and the endpoints (application instances) attached to hosts.

Pure data and validation. Importers in :mod:`netscaffold.formats` build a :class:`Topology` through
:meth:`Topology.build`, which refuses duplicates, unknown nodes, self-loops and bad capacities (naming the
element) and merges parallel links.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from netscaffold.errors import TopologyError

if TYPE_CHECKING:
    import networkx as nx

LinkKey = tuple[str, str]


class NodeKind(StrEnum):
    HOST = "host"
    SWITCH = "switch"
    ROUTER = "router"
    FIREWALL = "firewall"


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: NodeKind = NodeKind.ROUTER
    longitude: float | None = None
    latitude: float | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """A directed link. ``capacity_defaulted`` marks a capacity the importer had to assume."""

    src: str
    dst: str
    capacity_bps: float
    delay_s: float = 0.0
    cost: float = 1.0
    capacity_defaulted: bool = False

    @property
    def key(self) -> LinkKey:
        return (self.src, self.dst)

    def __str__(self) -> str:
        return f"link {self.src}->{self.dst}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An application instance reachable at ``address`` on node ``host``."""

    id: str
    host: str
    address: str
    app: str = ""

    @property
    def app_name(self) -> str:
        return self.app or self.id


def _check_link(link: Link) -> None:
    where = str(link)
    if not link.src or not link.dst:
        raise TopologyError("link endpoint ids must not be empty", element=where)
    if link.src == link.dst:
        raise TopologyError("self-loop: a link must join two different nodes", element=where)
    if not (math.isfinite(link.capacity_bps) and link.capacity_bps > 0):
        raise TopologyError(
            f"capacity_bps must be a positive number, got {link.capacity_bps!r}", element=where
        )
    if not (math.isfinite(link.delay_s) and link.delay_s >= 0):
        raise TopologyError(f"delay_s must be >= 0, got {link.delay_s!r}", element=where)
    if not (math.isfinite(link.cost) and link.cost > 0):
        raise TopologyError(f"cost must be a positive number, got {link.cost!r}", element=where)


def _merge_parallel(links: Iterable[Link]) -> tuple[dict[LinkKey, Link], int]:
    """Merge links with the same (src, dst): summed capacity, lowest cost (its delay goes with it)."""
    merged: dict[LinkKey, Link] = {}
    extra = 0
    for link in links:
        _check_link(link)
        seen = merged.get(link.key)
        if seen is None:
            merged[link.key] = link
            continue
        extra += 1
        best = link if link.cost < seen.cost else seen
        merged[link.key] = replace(
            best,
            capacity_bps=seen.capacity_bps + link.capacity_bps,
            capacity_defaulted=seen.capacity_defaulted or link.capacity_defaulted,
        )
    return merged, extra


@dataclass(frozen=True)
class Topology:
    """A validated topology. Build it with :meth:`build`; treat it as immutable."""

    name: str
    nodes: Mapping[str, Node]
    links: Mapping[LinkKey, Link]
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    merged_parallel_links: int = 0
    warnings: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        nodes: Iterable[Node],
        links: Iterable[Link],
        endpoints: Iterable[Endpoint] = (),
        *,
        name: str = "topology",
        warnings: Iterable[str] = (),
    ) -> Topology:
        node_map: dict[str, Node] = {}
        for node in nodes:
            if not node.id:
                raise TopologyError("node id must not be empty")
            if node.id in node_map:
                raise TopologyError("duplicate node id", element=f"node {node.id!r}")
            node_map[node.id] = node
        link_list = list(links)
        for link in link_list:
            for end in (link.src, link.dst):
                if end not in node_map:
                    raise TopologyError(f"refers to unknown node {end!r}", element=str(link))
        link_map, extra = _merge_parallel(link_list)
        all_warnings = list(warnings)
        if extra:
            all_warnings.append(f"merged {extra} parallel link(s) into single links (capacity summed)")
        endpoint_map = _check_endpoints(endpoints, node_map)
        return cls(
            name=name,
            nodes=node_map,
            links=link_map,
            endpoints=endpoint_map,
            merged_parallel_links=extra,
            warnings=tuple(all_warnings),
        )

    # -- queries -------------------------------------------------------------------------------
    def node(self, node_id: str) -> Node:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise TopologyError("unknown node", element=f"node {node_id!r}") from None

    def link(self, src: str, dst: str) -> Link:
        try:
            return self.links[(src, dst)]
        except KeyError:
            raise TopologyError("no such link", element=f"link {src}->{dst}") from None

    def endpoint(self, endpoint_id: str) -> Endpoint:
        try:
            return self.endpoints[endpoint_id]
        except KeyError:
            raise TopologyError("unknown endpoint", element=f"endpoint {endpoint_id!r}") from None

    def hosts(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.kind is NodeKind.HOST]

    def attachment_nodes(self) -> list[str]:
        """Nodes that carry endpoints: the hosts, or every node of a backbone map without hosts."""
        hosts = self.hosts()
        return hosts if hosts else list(self.nodes)

    def neighbours(self, node_id: str) -> Iterator[str]:
        for src, dst in self.links:
            if src == node_id:
                yield dst

    def path_links(self, path: tuple[str, ...]) -> list[Link]:
        """The links along a node path; a missing hop raises :class:`TopologyError` naming it."""
        if len(path) < 2:
            raise TopologyError(f"a path needs at least two nodes, got {list(path)}")
        return [self.link(a, b) for a, b in itertools.pairwise(path)]

    def with_endpoints(self, endpoints: Iterable[Endpoint]) -> Topology:
        merged = dict(self.endpoints)
        for ep in endpoints:
            merged[ep.id] = ep
        return replace(self, endpoints=_check_endpoints(merged.values(), self.nodes))

    def fingerprint_data(self) -> dict[str, Any]:
        """A plain, ordered description (used for hashing and equality in round-trip tests)."""
        return {
            "nodes": sorted((n.id, n.kind.value, n.longitude, n.latitude) for n in self.nodes.values()),
            "links": sorted(
                (k[0], k[1], lk.capacity_bps, lk.delay_s, lk.cost) for k, lk in self.links.items()
            ),
            "endpoints": sorted((e.id, e.host, e.address, e.app) for e in self.endpoints.values()),
        }

    # -- networkx --------------------------------------------------------------------------------
    def to_networkx(self) -> nx.DiGraph:
        import networkx as nx

        graph = nx.DiGraph(name=self.name)
        for node in self.nodes.values():
            graph.add_node(
                node.id,
                kind=node.kind.value,
                longitude=node.longitude,
                latitude=node.latitude,
                label=node.label,
            )
        for link in self.links.values():
            graph.add_edge(
                link.src,
                link.dst,
                capacity_bps=link.capacity_bps,
                delay_s=link.delay_s,
                cost=link.cost,
                capacity_defaulted=link.capacity_defaulted,
            )
        return graph

    @classmethod
    def from_networkx(cls, graph: nx.Graph, *, name: str | None = None) -> Topology:
        """From a networkx graph; an undirected graph gives both directions of every edge."""
        nodes = [
            Node(
                id=str(n),
                kind=NodeKind(attrs.get("kind", NodeKind.ROUTER.value)),
                longitude=attrs.get("longitude"),
                latitude=attrs.get("latitude"),
                label=attrs.get("label"),
            )
            for n, attrs in graph.nodes(data=True)
        ]
        links: list[Link] = []
        for u, v, attrs in graph.edges(data=True):
            if "capacity_bps" not in attrs:
                raise TopologyError("edge has no capacity_bps attribute", element=f"link {u}->{v}")
            pairs = [(u, v)] if graph.is_directed() else [(u, v), (v, u)]
            links.extend(
                Link(
                    src=str(a),
                    dst=str(b),
                    capacity_bps=float(attrs["capacity_bps"]),
                    delay_s=float(attrs.get("delay_s", 0.0)),
                    cost=float(attrs.get("cost", 1.0)),
                    capacity_defaulted=bool(attrs.get("capacity_defaulted", False)),
                )
                for a, b in pairs
            )
        return cls.build(nodes, links, name=name or str(graph.graph.get("name") or "topology"))


def _check_endpoints(endpoints: Iterable[Endpoint], nodes: Mapping[str, Node]) -> dict[str, Endpoint]:
    out: dict[str, Endpoint] = {}
    for ep in endpoints:
        where = f"endpoint {ep.id!r}"
        if not ep.id:
            raise TopologyError("endpoint id must not be empty")
        if ep.id in out:
            raise TopologyError("duplicate endpoint id", element=where)
        if ep.host not in nodes:
            raise TopologyError(f"attached to unknown node {ep.host!r}", element=where)
        try:
            ipaddress.ip_address(ep.address)
        except ValueError:
            raise TopologyError(f"invalid address {ep.address!r}", element=where) from None
        out[ep.id] = ep
    return out
