"""``summarize(topology)``: the counts and figures ``netscaffold topology validate`` reports."""

from __future__ import annotations

import statistics
from typing import Any

from netscaffold.model.topology import NodeKind, Topology


def weak_components(topology: Topology) -> int:
    """Number of weakly connected components (link direction ignored); isolated nodes count."""
    parent = {node_id: node_id for node_id in topology.nodes}

    def find(node_id: str) -> str:
        while parent[node_id] != node_id:
            parent[node_id] = parent[parent[node_id]]
            node_id = parent[node_id]
        return node_id

    for src, dst in topology.links:
        root_a, root_b = find(src), find(dst)
        if root_a != root_b:
            parent[root_a] = root_b
    return len({find(node_id) for node_id in parent})


def summarize(topology: Topology) -> dict[str, Any]:
    """Plain, JSON-ready figures: integer counts, capacities in bit/s (None without links), warnings."""
    capacities = [link.capacity_bps for link in topology.links.values()]
    kinds = {kind.value: 0 for kind in NodeKind}
    for node in topology.nodes.values():
        kinds[node.kind.value] += 1
    return {
        "name": topology.name,
        "nodes": len(topology.nodes),
        "links": len(topology.links),
        "hosts": kinds[NodeKind.HOST.value],
        "kinds": kinds,
        "endpoints": len(topology.endpoints),
        "capacity_bps": {
            "min": min(capacities) if capacities else None,
            "median": statistics.median(capacities) if capacities else None,
            "max": max(capacities) if capacities else None,
        },
        "components": weak_components(topology),
        "defaulted_capacities": sum(1 for link in topology.links.values() if link.capacity_defaulted),
        "merged_parallel_links": topology.merged_parallel_links,
        "warnings": list(topology.warnings),
    }
