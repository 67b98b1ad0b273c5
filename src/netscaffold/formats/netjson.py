"""NetJSON NetworkGraph: import and export.

- ``"directed": true`` makes each link one direction; otherwise (the NetJSON default) a link stands for
  both directions.
- node: ``id``, optional ``label``, ``properties.kind`` (host / switch / router / firewall, default
  router), ``properties.longitude`` / ``properties.latitude``.
- link: ``source``, ``target``, ``cost`` (default 1), ``properties.capacity_bps`` (missing: the default
  capacity, marked ``capacity_defaulted``), ``properties.delay_s`` (default 0),
  ``properties.capacity_defaulted``.
- netscaffold extension (ignored by other NetJSON tools): a top-level object ``"netscaffold"`` with
  ``"endpoints": [{"id", "host", "address", "app"}]``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from netscaffold.formats.checks import (
    DEFAULT_CAPACITY_BPS,
    Where,
    defaulted_warning,
    non_negative,
    parse_float,
    positive,
)
from netscaffold.model.topology import Endpoint, Link, Node, NodeKind, Topology


def _object(value: Any, where: Where, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _string(obj: dict[str, Any], key: str, where: Where, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise where.error(f"must be a non-empty string, got {value!r}", key)
    return value


def _list(doc: dict[str, Any], key: str, where: Where) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise where.error(f"must be a JSON list, got {type(value).__name__}", key)
    return value


def _optional_number(props: dict[str, Any], key: str, where: Where) -> float | None:
    value = props.get(key)
    return None if value is None else parse_float(value, where, key)


def _read_node(item: Any, where: Where) -> Node:
    obj = _object(item, where, "a node")
    node_id = _string(obj, "id", where)
    props = _object(obj.get("properties") or {}, where, "properties")
    kind_text = props.get("kind", NodeKind.ROUTER.value)
    try:
        kind = NodeKind(kind_text)
    except ValueError:
        kinds = ", ".join(k.value for k in NodeKind)
        raise where.error(f"unknown node kind {kind_text!r} (one of {kinds})", "properties.kind") from None
    return Node(
        id=node_id,
        kind=kind,
        longitude=_optional_number(props, "longitude", where),
        latitude=_optional_number(props, "latitude", where),
        label=_string(obj, "label", where, required=False) or None,
    )


def _read_nodes(items: list[Any], file: str) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        node = _read_node(item, Where(file, element=f"nodes[{index}]"))
        if node.id in nodes:
            raise Where(file, element=f"nodes[{index}]").error(
                f"duplicate node id {node.id!r} (first at nodes[{first_index[node.id]}])"
            )
        nodes[node.id] = node
        first_index[node.id] = index
    return nodes


def _read_link(item: Any, where: Where, nodes: dict[str, Node], default_bps: float) -> tuple[Link, bool]:
    """The link and whether its capacity was missing (and so defaulted)."""
    obj = _object(item, where, "a link")
    src, dst = _string(obj, "source", where), _string(obj, "target", where)
    for end in (src, dst):
        if end not in nodes:
            raise where.error(f"refers to undeclared node {end!r}")
    props = _object(obj.get("properties") or {}, where, "properties")
    capacity = _optional_number(props, "capacity_bps", where)
    flagged = props.get("capacity_defaulted", False)
    if not isinstance(flagged, bool):
        raise where.error(f"must be true or false, got {flagged!r}", "properties.capacity_defaulted")
    delay = _optional_number(props, "delay_s", where)
    cost = _optional_number(obj, "cost", where)
    link = Link(
        src=src,
        dst=dst,
        capacity_bps=default_bps if capacity is None else positive(capacity, where, "capacity_bps"),
        delay_s=0.0 if delay is None else non_negative(delay, where, "delay_s"),
        cost=1.0 if cost is None else positive(cost, where, "cost"),
        capacity_defaulted=flagged or capacity is None,
    )
    return link, capacity is None


def _read_endpoints(doc: dict[str, Any], file: str) -> list[Endpoint]:
    extension = _object(doc.get("netscaffold") or {}, Where(file, element="netscaffold"), "netscaffold")
    items = extension.get("endpoints") or []
    if not isinstance(items, list):
        raise Where(file, element="netscaffold").error("must be a JSON list", "endpoints")
    out = []
    for index, item in enumerate(items):
        where = Where(file, element=f"netscaffold.endpoints[{index}]")
        obj = _object(item, where, "an endpoint")
        out.append(
            Endpoint(
                id=_string(obj, "id", where),
                host=_string(obj, "host", where),
                address=_string(obj, "address", where),
                app=_string(obj, "app", where, required=False),
            )
        )
    return out


def _parse(text: str, file: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Where(file, exc.lineno).error(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    doc = _object(doc, Where(file), "the document")
    if doc.get("type") != "NetworkGraph":
        raise Where(file, element="type").error(f'expected "NetworkGraph", got {doc.get("type")!r}')
    return doc


def read_netjson(text: str, path: Path, *, default_capacity_bps: float = DEFAULT_CAPACITY_BPS) -> Topology:
    """Build a topology from NetJSON NetworkGraph text (the content of ``path``)."""
    file = str(path)
    doc = _parse(text, file)
    nodes = _read_nodes(_list(doc, "nodes", Where(file)), file)
    directed = doc.get("directed", False)
    if not isinstance(directed, bool):
        raise Where(file).error(f"must be true or false, got {directed!r}", "directed")
    links: list[Link] = []
    defaulted = 0
    for index, item in enumerate(_list(doc, "links", Where(file))):
        link, missing = _read_link(item, Where(file, element=f"links[{index}]"), nodes, default_capacity_bps)
        defaulted += missing
        links.append(link)
        if not directed:
            links.append(replace(link, src=link.dst, dst=link.src))
    warnings = [defaulted_warning(defaulted, default_capacity_bps)] if defaulted else []
    label = doc.get("label")
    name = label if isinstance(label, str) and label else path.stem
    return Topology.build(nodes.values(), links, _read_endpoints(doc, file), name=name, warnings=warnings)


def netjson_document(topology: Topology) -> dict[str, Any]:
    """The NetJSON NetworkGraph (``directed``) that :func:`read_netjson` turns back into ``topology``."""
    nodes = []
    for node in topology.nodes.values():
        props: dict[str, Any] = {"kind": node.kind.value}
        if node.longitude is not None:
            props["longitude"] = node.longitude
        if node.latitude is not None:
            props["latitude"] = node.latitude
        entry: dict[str, Any] = {"id": node.id}
        if node.label:
            entry["label"] = node.label
        nodes.append({**entry, "properties": props})
    links = []
    for link in topology.links.values():
        link_props: dict[str, Any] = {
            "capacity_bps": float(link.capacity_bps),
            "delay_s": float(link.delay_s),
        }
        if link.capacity_defaulted:
            link_props["capacity_defaulted"] = True
        links.append(
            {"source": link.src, "target": link.dst, "cost": float(link.cost), "properties": link_props}
        )
    doc: dict[str, Any] = {
        "type": "NetworkGraph",
        "protocol": "static",
        "version": None,
        "metric": None,
        "label": topology.name,
        "directed": True,
        "nodes": nodes,
        "links": links,
    }
    if topology.endpoints:
        doc["netscaffold"] = {
            "endpoints": [
                {"id": e.id, "host": e.host, "address": e.address, "app": e.app}
                for e in topology.endpoints.values()
            ]
        }
    return doc


def to_netjson(topology: Topology) -> str:
    return json.dumps(netjson_document(topology), indent=2) + "\n"
