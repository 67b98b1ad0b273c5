"""The Abilene links CSV (``../shared/data/abilene/abilene_links.csv``) and files shaped like it.

Columns (header required, order free): ``src``, ``dst``, ``capacity_kbps`` (or ``capacity_bps``),
optional ``ospf_weight`` (the link cost, default 1), optional ``src_index`` / ``dst_index``. Each row is
one directed link. When indices are given, nodes are ordered by index, which is the axis order of the
Abilene traffic matrices.
"""

from __future__ import annotations

import csv
from pathlib import Path

from netscaffold.formats.checks import Where, parse_float, positive
from netscaffold.model.topology import Link, Node, Topology

_CAPACITY_COLUMNS = {"capacity_kbps": 1e3, "capacity_bps": 1.0}


def is_link_csv(head: str) -> bool:
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    columns = {c.strip() for c in first.split(",")}
    return {"src", "dst"} <= columns and bool(columns & set(_CAPACITY_COLUMNS))


def _capacity_column(columns: list[str], file: str) -> tuple[str, float]:
    for name, factor in _CAPACITY_COLUMNS.items():
        if name in columns:
            return name, factor
    raise Where(file, 1).error(f"no capacity column (one of {', '.join(_CAPACITY_COLUMNS)})")


def _row_link(row: dict[str, str], where: Where, capacity: tuple[str, float]) -> Link:
    src, dst = (row.get(k, "").strip() for k in ("src", "dst"))
    if not src or not dst:
        raise where.error("src and dst must not be empty")
    column, factor = capacity
    capacity_bps = positive(parse_float(row.get(column), where, column), where, column) * factor
    weight_text = (row.get("ospf_weight") or "").strip()
    cost = (
        positive(parse_float(weight_text, where, "ospf_weight"), where, "ospf_weight") if weight_text else 1.0
    )
    return Link(src, dst, capacity_bps, 0.0, cost)


def _node_order(row: dict[str, str], order: dict[str, float], where: Where) -> None:
    for name_key, index_key in (("src", "src_index"), ("dst", "dst_index")):
        name = row[name_key].strip()
        index_text = (row.get(index_key) or "").strip()
        if not index_text:
            order.setdefault(name, float(len(order)))
            continue
        index = parse_float(index_text, where, index_key)
        if order.setdefault(name, index) != index:
            raise where.error(f"node {name!r} has two indices: {order[name]:g} and {index:g}", index_key)


def read_link_csv(text: str, path: Path) -> Topology:
    """Build a topology from the text of a links CSV."""
    file = str(path)
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    for needed in ("src", "dst"):
        if needed not in columns:
            raise Where(file, 1).error(f"missing column {needed!r}")
    capacity = _capacity_column(columns, file)
    links: list[Link] = []
    order: dict[str, float] = {}
    for row in reader:
        where = Where(file, reader.line_num)
        if None in row or any(v is None for v in row.values()):
            raise where.error(f"expected {len(columns)} columns")
        links.append(_row_link(row, where, capacity))
        _node_order(row, order, where)
    nodes = [Node(id=name) for name in sorted(order, key=lambda n: order[n])]
    return Topology.build(nodes, links, name=path.stem)
