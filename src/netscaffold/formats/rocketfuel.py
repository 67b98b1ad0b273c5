"""Rocketfuel-derived ISP maps as shipped by CFR-RL (``../shared/data/topologies/rocketfuel_cfrrl``).

Layout (tab-separated)::

    Node_num: 23	Edge_num: 76
    Link_index	Source	Destination	Weights	Bandwidth
    0	0	1	4	250

Nodes are the integers ``0 .. Node_num-1``; each row is one directed link; ``Weights`` (the inferred
OSPF weight) becomes the link cost. ``Bandwidth`` has no stated unit: in all three files it equals
``int(1000 / Weights)``, i.e. it is derived from the weights rather than measured. It is read as Mbit/s
by default (``bandwidth_unit_bps``) and the topology carries a warning saying so.
"""

from __future__ import annotations

import re
from pathlib import Path

from netscaffold.formats.checks import Where, format_bps, parse_float, positive
from netscaffold.model.topology import Link, Node, Topology

_HEADER = re.compile(r"^\s*Node_num:\s*(\d+)\s+Edge_num:\s*(\d+)\s*$")
ROCKETFUEL_UNIT_BPS = 1e6
_COLUMNS = 5


def is_rocketfuel(head: str) -> bool:
    """True when ``head`` (the start of a text file) has the Rocketfuel header line."""
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    return bool(_HEADER.match(first))


def _node_index(text: str, node_count: int, where: Where, field: str) -> str:
    if not text.isdigit() or int(text) >= node_count:
        raise where.error(f"node {text!r} is not one of 0..{node_count - 1}", field)
    return str(int(text))


def _read_row(fields: list[str], node_count: int, where: Where, unit_bps: float) -> Link:
    if len(fields) != _COLUMNS:
        raise where.error(f"expected {_COLUMNS} tab-separated columns, got {len(fields)}")
    _, src_text, dst_text, weight_text, bandwidth_text = fields
    src = _node_index(src_text, node_count, where, "Source")
    dst = _node_index(dst_text, node_count, where, "Destination")
    weight = positive(parse_float(weight_text, where, "Weights"), where, "Weights")
    bandwidth = positive(parse_float(bandwidth_text, where, "Bandwidth"), where, "Bandwidth")
    return Link(src, dst, bandwidth * unit_bps, 0.0, weight)


def read_rocketfuel(text: str, path: Path, *, bandwidth_unit_bps: float = ROCKETFUEL_UNIT_BPS) -> Topology:
    """Build a topology from the text of a Rocketfuel (CFR-RL) file."""
    file = str(path)
    lines = text.splitlines()
    header = _HEADER.match(lines[0]) if lines else None
    if header is None:
        raise Where(file, 1).error("expected a header 'Node_num: N<TAB>Edge_num: M'")
    node_count, edge_count = int(header.group(1)), int(header.group(2))
    if node_count < 1:
        raise Where(file, 1).error("Node_num must be at least 1")
    links = [
        _read_row(line.split(), node_count, Where(file, number), bandwidth_unit_bps)
        for number, line in enumerate(lines[2:], start=3)
        if line.strip()
    ]
    if len(links) != edge_count:
        raise Where(file, len(lines)).error(
            f"header declares {edge_count} links but the file has {len(links)} (truncated?)"
        )
    nodes = [Node(id=str(i)) for i in range(node_count)]
    note = (
        "Rocketfuel bandwidth has no stated unit (it equals 1000/weight): "
        f"read as {format_bps(bandwidth_unit_bps)} per unit"
    )
    return Topology.build(nodes, links, name=path.stem, warnings=[note])
