"""Fat-tree topology and the benchmark workload (Poisson arrivals, Pareto sizes, one endpoint per host).

Uses ``netscaffold.formats.generators.fat_tree`` when it exists; otherwise builds the same k-ary fat-tree
(k^3/4 hosts, k^2/4 cores) here.
"""

from __future__ import annotations

import numpy as np

from netscaffold.model.flows import FlowTable
from netscaffold.model.topology import Endpoint, Link, Node, NodeKind, Topology


def fat_tree(k: int, link_bps: float) -> Topology:
    try:
        from netscaffold.formats.generators import fat_tree as generated

        topo: Topology = generated(k, link_bps)
    except ImportError:
        topo = _build(k, link_bps)
    if not topo.endpoints:
        hosts = topo.hosts()
        topo = topo.with_endpoints(
            Endpoint(f"ep{i}", h, f"198.{18 + i // 65536}.{i // 256 % 256}.{i % 256}")
            for i, h in enumerate(hosts)
        )
    return topo


def _build(k: int, link_bps: float) -> Topology:
    half = k // 2
    nodes = [Node(f"core{c}", NodeKind.SWITCH) for c in range(half * half)]
    links: list[Link] = []

    def both(a: str, b: str) -> None:
        links.extend([Link(a, b, link_bps), Link(b, a, link_bps)])

    for pod in range(k):
        for a in range(half):
            agg = f"p{pod}a{a}"
            nodes.append(Node(agg, NodeKind.SWITCH))
            for j in range(half):
                both(agg, f"core{a * half + j}")
        for e in range(half):
            edge = f"p{pod}e{e}"
            nodes.append(Node(edge, NodeKind.SWITCH))
            for a in range(half):
                both(edge, f"p{pod}a{a}")
            for h in range(half):
                host = f"p{pod}e{e}h{h}"
                nodes.append(Node(host, NodeKind.HOST))
                both(host, edge)
    return Topology.build(nodes, links, name=f"fat-tree-k{k}")


def poisson_pareto_flows(
    n_flows: int, n_endpoints: int, rate_per_s: float, mean_bytes: float, seed: int, shape: float = 1.5
) -> FlowTable:
    """Poisson arrivals, Pareto(shape) sizes with the given mean, uniform random distinct endpoints."""
    rng = np.random.default_rng(seed)
    start = np.cumsum(rng.exponential(1.0 / rate_per_s, n_flows))
    scale = mean_bytes * (shape - 1.0) / shape
    size = scale * (1.0 + rng.pareto(shape, n_flows))
    src = rng.integers(0, n_endpoints, n_flows)
    dst = (src + rng.integers(1, n_endpoints, n_flows)) % n_endpoints
    return FlowTable.build(
        start_s=start,
        src=src,
        dst=dst,
        size_bytes=size,
        endpoints=tuple(f"ep{i}" for i in range(n_endpoints)),
    )
