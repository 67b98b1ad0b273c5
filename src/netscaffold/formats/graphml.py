"""GraphML: import (Internet Topology Zoo and our own export) and export.

Import reads ``<key>`` declarations (with defaults), the first ``<graph>``, its nodes and edges:

- node: ``kind`` (default router), ``label``, ``Longitude`` / ``Latitude``, ``endpoints`` (JSON list,
  written by our exporter);
- edge: ``capacity_bps``, else the Topology Zoo ``LinkSpeedRaw`` (bit/s), else the default capacity with
  ``capacity_defaulted``; ``delay_s``, else the fibre propagation delay between the two nodes'
  coordinates, else 0; ``cost`` (default 1); an undirected edge stands for both directions.
- self-loops (a link inside one PoP, two in the Zoo's Interoute map) are dropped with a warning.

Export writes one directed edge per link with every value ``import`` needs to rebuild the same topology.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netscaffold.formats.checks import (
    DEFAULT_CAPACITY_BPS,
    Where,
    defaulted_warning,
    non_negative,
    parse_float,
    positive,
    propagation_delay_s,
)
from netscaffold.formats.xmltree import XmlElement, parse_xml
from netscaffold.model.topology import Endpoint, Link, Node, NodeKind, Topology

GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    domain: str
    default: str | None


@dataclass(frozen=True, slots=True)
class _Keys:
    by_id: dict[str, _Key]
    defaults: dict[str, dict[str, str]]  # domain -> attribute name -> default text


def _read_keys(root: XmlElement, where: Where) -> _Keys:
    keys: dict[str, _Key] = {}
    for key in root.iter_children("key"):
        key_id = key.attrib.get("id")
        if not key_id:
            raise Where(where.file, key.line, "<key>").error("key without an id")
        default = key.child("default")
        keys[key_id] = _Key(
            name=key.attrib.get("attr.name", key_id),
            domain=key.attrib.get("for", "all"),
            default=default.text if default is not None else None,
        )
    defaults = {
        domain: {
            k.name: k.default for k in keys.values() if k.domain in (domain, "all") and k.default is not None
        }
        for domain in ("graph", "node", "edge")
    }
    return _Keys(keys, defaults)


def _data(element: XmlElement, keys: _Keys, domain: str, where: Where) -> dict[str, str]:
    """Attribute name -> raw text for one node/edge/graph, key defaults first."""
    out = dict(keys.defaults[domain])
    for data in element.iter_children("data"):
        key_id = data.attrib.get("key", "")
        key = keys.by_id.get(key_id)
        if key is None:
            raise Where(where.file, data.line, where.element).error(f"<data> uses undeclared key {key_id!r}")
        out[key.name] = data.raw_text
    return out


def _optional_float(values: dict[str, str], name: str, where: Where) -> float | None:
    text = values.get(name)
    if text is None or not text.strip():
        return None
    value = parse_float(text, where, name)
    return None if math.isnan(value) else value


def _parse_bool(text: str, where: Where, field: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise where.error(f"expected true or false, got {text!r}", field)


def _node_kind(text: str | None, where: Where) -> NodeKind:
    if text is None or text == "":
        return NodeKind.ROUTER
    try:
        return NodeKind(text.strip().lower())
    except ValueError:
        kinds = ", ".join(k.value for k in NodeKind)
        raise where.error(f"unknown node kind {text!r} (one of {kinds})", "kind") from None


def _endpoints(text: str | None, host: str, where: Where) -> list[Endpoint]:
    if not text:
        return []
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise where.error(f"invalid JSON: {exc.msg}", "endpoints") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise where.error("expected a JSON list of objects", "endpoints")
    out = []
    for item in items:
        if not isinstance(item.get("id"), str) or not isinstance(item.get("address"), str):
            raise where.error("each endpoint needs string 'id' and 'address'", "endpoints")
        out.append(Endpoint(id=item["id"], host=host, address=item["address"], app=str(item.get("app", ""))))
    return out


def _read_node(element: XmlElement, keys: _Keys, file: str) -> tuple[Node, list[Endpoint]]:
    node_id = element.attrib.get("id", "")
    where = Where(file, element.line, f"node {node_id!r}")
    if not node_id:
        raise where.error("node without an id")
    if element.child("graph") is not None:
        raise where.error("nested graphs are not supported")
    values = _data(element, keys, "node", where)
    node = Node(
        id=node_id,
        kind=_node_kind(values.get("kind"), where),
        longitude=_optional_float(values, "Longitude", where),
        latitude=_optional_float(values, "Latitude", where),
        label=values.get("label") or None,
    )
    return node, _endpoints(values.get("endpoints"), node_id, where)


@dataclass
class _EdgeReader:
    file: str
    keys: _Keys
    nodes: dict[str, Node]
    directed_default: bool
    default_capacity_bps: float
    defaulted: int = 0
    self_loops: int = 0

    def read(self, element: XmlElement) -> list[Link]:
        src, dst = element.attrib.get("source", ""), element.attrib.get("target", "")
        where = Where(self.file, element.line, f"edge {src}->{dst}")
        for end in (src, dst):
            if end not in self.nodes:
                raise where.error(f"refers to undeclared node {end!r}")
        if src == dst:
            self.self_loops += 1
            return []
        values = _data(element, self.keys, "edge", where)
        directed_text = element.attrib.get("directed")
        directed = (
            self.directed_default if directed_text is None else _parse_bool(directed_text, where, "directed")
        )
        capacity_bps, defaulted = self._capacity(values, where)
        delay_s = _optional_float(values, "delay_s", where)
        if delay_s is None:
            a, b = self.nodes[src], self.nodes[dst]
            delay_s = propagation_delay_s((a.longitude, a.latitude), (b.longitude, b.latitude)) or 0.0
        cost = _optional_float(values, "cost", where)
        base = Link(
            src=src,
            dst=dst,
            capacity_bps=capacity_bps,
            delay_s=non_negative(delay_s, where, "delay_s"),
            cost=1.0 if cost is None else positive(cost, where, "cost"),
            capacity_defaulted=defaulted,
        )
        if directed:
            return [base]
        return [base, Link(dst, src, base.capacity_bps, base.delay_s, base.cost, defaulted)]

    def _capacity(self, values: dict[str, str], where: Where) -> tuple[float, bool]:
        flagged_text = values.get("capacity_defaulted", "").strip()
        flagged = _parse_bool(flagged_text, where, "capacity_defaulted") if flagged_text else False
        for name in ("capacity_bps", "LinkSpeedRaw"):
            value = _optional_float(values, name, where)
            if value is not None:
                return positive(value, where, name), flagged
        self.defaulted += 1
        return self.default_capacity_bps, True


def _graph_element(root: XmlElement, where: Where) -> XmlElement:
    if root.local != "graphml":
        raise Where(where.file, root.line).error(f"root element is <{root.local}>, not <graphml>")
    graph = root.child("graph")
    if graph is None:
        raise Where(where.file, root.line).error("no <graph> element")
    for hyper in graph.iter_children("hyperedge"):
        raise Where(where.file, hyper.line).error("hyperedges are not supported")
    return graph


def read_graphml(data: bytes, path: Path, *, default_capacity_bps: float = DEFAULT_CAPACITY_BPS) -> Topology:
    """Build a topology from GraphML bytes (the content of ``path``)."""
    file = str(path)
    root = parse_xml(data, path)
    graph = _graph_element(root, Where(file))
    keys = _read_keys(root, Where(file))
    nodes: dict[str, Node] = {}
    endpoints: list[Endpoint] = []
    for element in graph.iter_children("node"):
        node, node_endpoints = _read_node(element, keys, file)
        if node.id in nodes:
            raise Where(file, element.line, f"node {node.id!r}").error("duplicate node id")
        nodes[node.id] = node
        endpoints.extend(node_endpoints)
    edge_default = graph.attrib.get("edgedefault", "directed")
    reader = _EdgeReader(file, keys, nodes, edge_default != "undirected", default_capacity_bps)
    links = [link for element in graph.iter_children("edge") for link in reader.read(element)]
    warnings = []
    if reader.defaulted:
        warnings.append(defaulted_warning(reader.defaulted, default_capacity_bps, "edge(s)"))
    if reader.self_loops:
        warnings.append(f"dropped {reader.self_loops} self-loop edge(s) (a link from a node to itself)")
    graph_values = _data(graph, keys, "graph", Where(file, graph.line, "<graph>"))
    name = graph_values.get("label") or graph_values.get("Network") or path.stem
    return Topology.build(nodes.values(), links, endpoints, name=name, warnings=warnings)


# -- export ---------------------------------------------------------------------------------------

_EXPORT_KEYS = (
    ("g_label", "graph", "label", "string"),
    ("n_label", "node", "label", "string"),
    ("n_kind", "node", "kind", "string"),
    ("n_lon", "node", "Longitude", "double"),
    ("n_lat", "node", "Latitude", "double"),
    ("n_endpoints", "node", "endpoints", "string"),
    ("e_capacity", "edge", "capacity_bps", "double"),
    ("e_delay", "edge", "delay_s", "double"),
    ("e_cost", "edge", "cost", "double"),
    ("e_defaulted", "edge", "capacity_defaulted", "boolean"),
)


def _add_data(parent: ET.Element, key: str, value: Any) -> None:
    if value is None:
        return
    element = ET.SubElement(parent, "data", key=key)
    if isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, float):
        element.text = repr(value)
    else:
        element.text = str(value)


def _endpoint_json(endpoints: Iterable[Endpoint]) -> str | None:
    items = [{"id": e.id, "address": e.address, "app": e.app} for e in endpoints]
    return json.dumps(items, separators=(",", ":")) if items else None


def to_graphml(topology: Topology) -> str:
    """GraphML text (directed edges) from which :func:`read_graphml` rebuilds ``topology``."""
    root = ET.Element("graphml", xmlns=GRAPHML_NS)
    for key_id, domain, name, kind in _EXPORT_KEYS:
        ET.SubElement(root, "key", {"id": key_id, "for": domain, "attr.name": name, "attr.type": kind})
    graph = ET.SubElement(root, "graph", id=topology.name, edgedefault="directed")
    _add_data(graph, "g_label", topology.name)
    by_host: dict[str, list[Endpoint]] = {}
    for endpoint in topology.endpoints.values():
        by_host.setdefault(endpoint.host, []).append(endpoint)
    for node in topology.nodes.values():
        element = ET.SubElement(graph, "node", id=node.id)
        _add_data(element, "n_label", node.label)
        _add_data(element, "n_kind", node.kind.value)
        _add_data(element, "n_lon", node.longitude)
        _add_data(element, "n_lat", node.latitude)
        _add_data(element, "n_endpoints", _endpoint_json(by_host.get(node.id, ())))
    for link in topology.links.values():
        element = ET.SubElement(graph, "edge", source=link.src, target=link.dst)
        _add_data(element, "e_capacity", float(link.capacity_bps))
        _add_data(element, "e_delay", float(link.delay_s))
        _add_data(element, "e_cost", float(link.cost))
        if link.capacity_defaulted:
            _add_data(element, "e_defaulted", True)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
