"""Data-centre topology generators (leaf-spine, fat-tree) and endpoint attachment.

Every cable is two directed links. Hosts are nodes of kind host named ``h000``, ``h001``, ...;
switches are of kind switch (``spine00``, ``leaf00``; ``core00``, ``agg00``, ``edge00``). Zero-padded
names sort in build order.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterator

from netscaffold.errors import TopologyError
from netscaffold.formats.checks import natural_key
from netscaffold.model.topology import Endpoint, Link, Node, NodeKind, Topology

DEFAULT_DC_DELAY_S = 1e-6
"""One data-centre hop: about 200 m of fibre at 2e8 m/s (serialisation and queueing not included)."""
ENDPOINT_PREFIX = "198.18.0.0/15"
"""RFC 2544 benchmarking range: generated addresses never collide with routable ones."""


def _names(stem: str, count: int, min_width: int = 2) -> list[str]:
    width = max(min_width, len(str(max(count - 1, 0))))
    return [f"{stem}{i:0{width}d}" for i in range(count)]


def _cable(a: str, b: str, capacity_bps: float, delay_s: float) -> Iterator[Link]:
    yield Link(a, b, capacity_bps, delay_s)
    yield Link(b, a, capacity_bps, delay_s)


def _check_count(value: int, field: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TopologyError(f"must be an integer >= {minimum}, got {value!r}", field=field)


def _check_rate(value: float, field: str) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise TopologyError(f"must be a positive number of bit/s, got {value!r}", field=field)


def leaf_spine(
    spines: int,
    leaves: int,
    hosts_per_leaf: int,
    link_bps: float,
    *,
    host_link_bps: float | None = None,
    delay_s: float = DEFAULT_DC_DELAY_S,
    name: str | None = None,
) -> Topology:
    """Every leaf wired to every spine at ``link_bps``; ``hosts_per_leaf`` hosts under each leaf."""
    _check_count(spines, "spines", 1)
    _check_count(leaves, "leaves", 1)
    _check_count(hosts_per_leaf, "hosts_per_leaf", 0)
    _check_rate(link_bps, "link_bps")
    host_bps = link_bps if host_link_bps is None else host_link_bps
    _check_rate(host_bps, "host_link_bps")
    spine_ids, leaf_ids = _names("spine", spines), _names("leaf", leaves)
    host_ids = _names("h", leaves * hosts_per_leaf, 3)
    nodes = [Node(n, NodeKind.SWITCH) for n in (*spine_ids, *leaf_ids)]
    nodes += [Node(h, NodeKind.HOST) for h in host_ids]
    links = [
        link for leaf in leaf_ids for spine in spine_ids for link in _cable(leaf, spine, link_bps, delay_s)
    ]
    for index, host in enumerate(host_ids):
        links.extend(_cable(host, leaf_ids[index // hosts_per_leaf], host_bps, delay_s))
    label = name or f"leaf-spine-{spines}x{leaves}x{hosts_per_leaf}"
    return Topology.build(nodes, links, name=label)


def fat_tree(
    k: int, link_bps: float, *, delay_s: float = DEFAULT_DC_DELAY_S, name: str | None = None
) -> Topology:
    """The k-ary fat-tree (Al-Fares et al., SIGCOMM 2008): (k/2)^2 core, k pods of k/2 aggregation and
    k/2 edge switches, k/2 hosts per edge switch; k=4 gives 20 switches and 16 hosts."""
    _check_count(k, "k", 2)
    if k % 2:
        raise TopologyError(f"must be even, got {k}", field="k")
    _check_rate(link_bps, "link_bps")
    half = k // 2
    core, agg, edge = _names("core", half * half), _names("agg", k * half), _names("edge", k * half)
    hosts = _names("h", k * half * half, 3)
    nodes = [Node(n, NodeKind.SWITCH) for n in (*core, *agg, *edge)] + [Node(h, NodeKind.HOST) for h in hosts]
    links: list[Link] = []
    for pod in range(k):
        pod_aggs = agg[pod * half : (pod + 1) * half]
        pod_edges = edge[pod * half : (pod + 1) * half]
        for j, agg_id in enumerate(pod_aggs):
            for core_id in core[j * half : (j + 1) * half]:
                links.extend(_cable(agg_id, core_id, link_bps, delay_s))
            for edge_id in pod_edges:
                links.extend(_cable(edge_id, agg_id, link_bps, delay_s))
    for index, host in enumerate(hosts):
        links.extend(_cable(host, edge[index // half], link_bps, delay_s))
    return Topology.build(nodes, links, name=name or f"fat-tree-k{k}")


def attach_endpoints(
    topology: Topology, per_host: int = 1, prefix: str = ENDPOINT_PREFIX, *, app: str = "app"
) -> Topology:
    """Give every attachment node (the hosts, or every node of a map without hosts) ``per_host``
    endpoints ``"<node>/<app><i>"`` with consecutive addresses from ``prefix`` (IPv4 or IPv6), nodes
    taken in natural order: the same topology always gets the same addresses."""
    _check_count(per_host, "per_host", 1)
    try:
        network = ipaddress.ip_network(prefix)
    except ValueError:
        raise TopologyError(f"not an address prefix: {prefix!r}", field="prefix") from None
    attach = sorted(topology.attachment_nodes(), key=natural_key)
    needed = len(attach) * per_host
    if needed > network.num_addresses - 2:
        raise TopologyError(f"{needed} endpoints do not fit in {prefix}", field="prefix")
    endpoints = []
    for index in range(needed):
        node = attach[index // per_host]
        endpoint_id = f"{node}/{app}{index % per_host}"
        if endpoint_id in topology.endpoints:
            raise TopologyError("endpoint already exists", element=f"endpoint {endpoint_id!r}")
        address = str(network.network_address + 1 + index)
        endpoints.append(Endpoint(endpoint_id, node, address, f"{app}{index % per_host}"))
    return topology.with_endpoints(endpoints)
