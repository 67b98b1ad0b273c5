"""SNDlib network XML (namespace ``http://sndlib.zib.de/network``): import.

- Capacity: the pre-installed module's capacity, else the smallest additional module's (the least a
  planner could install), else the default capacity with ``capacity_defaulted``. The unit is
  ``<meta><unit>`` when given (BITSPERSEC, KBITPERSEC, MBITPERSEC, GBITPERSEC), otherwise Mbit/s, the
  SNDlib convention.
- Direction: a link whose reverse (target -> source) is also listed is one direction (files such as giul39
  list ``fwd`` and ``bwd`` links); any other link stands for both directions.
- Cost: ``routingCost`` when positive, else 1. Delay: fibre propagation delay between geographical
  coordinates, else 0. Pixel coordinates (``coordinatesType="pixel"``) are not kept: they are not
  longitude/latitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netscaffold.formats.checks import (
    DEFAULT_CAPACITY_BPS,
    Where,
    defaulted_warning,
    parse_float,
    positive,
    propagation_delay_s,
)
from netscaffold.formats.xmltree import XmlElement, parse_xml
from netscaffold.model.topology import Link, Node, Topology

SNDLIB_NS = "http://sndlib.zib.de/network"
UNIT_BPS = {"BITSPERSEC": 1.0, "KBITPERSEC": 1e3, "MBITPERSEC": 1e6, "GBITPERSEC": 1e9}


@dataclass(frozen=True, slots=True)
class _RawLink:
    link_id: str
    src: str
    dst: str
    capacity: float | None  # in the file's unit; None when the file gives no module
    cost: float
    line: int


def _text_of(parent: XmlElement, local: str, where: Where) -> str:
    child = parent.child(local)
    if child is None or not child.text:
        raise where.error(f"missing <{local}>")
    return child.text


def _unit_bps(root: XmlElement, where: Where) -> float:
    meta = root.child("meta")
    unit = meta.child("unit") if meta is not None else None
    if unit is None:
        return UNIT_BPS["MBITPERSEC"]
    try:
        return UNIT_BPS[unit.text.upper()]
    except KeyError:
        known = ", ".join(UNIT_BPS)
        raise Where(where.file, unit.line, "<unit>").error(
            f"unknown unit {unit.text!r} (one of {known})"
        ) from None


def _read_nodes(structure: XmlElement, file: str) -> dict[str, Node]:
    nodes_el = structure.child("nodes")
    if nodes_el is None:
        raise Where(file, structure.line).error("missing <nodes>")
    geographical = nodes_el.attrib.get("coordinatesType", "geographical") == "geographical"
    nodes: dict[str, Node] = {}
    for element in nodes_el.iter_children("node"):
        node_id = element.attrib.get("id", "")
        where = Where(file, element.line, f"node {node_id!r}")
        if not node_id:
            raise where.error("node without an id")
        if node_id in nodes:
            raise where.error("duplicate node id")
        coords = element.child("coordinates")
        lon = lat = None
        if geographical and coords is not None:
            lon = parse_float(_text_of(coords, "x", where), where, "x")
            lat = parse_float(_text_of(coords, "y", where), where, "y")
        nodes[node_id] = Node(id=node_id, longitude=lon, latitude=lat)
    return nodes


def _capacities(modules: list[XmlElement], file: str, link_id: str) -> list[float]:
    """The capacity of each module; each must be present, finite and >= 0."""
    out: list[float] = []
    for module in modules:
        cap_el = module.child("capacity")
        where = Where(file, module.line if cap_el is None else cap_el.line, f"link {link_id!r}")
        if cap_el is None:
            raise where.error("module without <capacity>")
        capacity = parse_float(cap_el.text, where, "capacity")
        if capacity < 0:
            raise where.error(f"negative capacity {capacity:g}", "capacity")
        out.append(capacity)
    return out


def _module_capacity(element: XmlElement, file: str, link_id: str) -> float | None:
    """A positive pre-installed capacity, else the smallest additional module, else None."""
    pre = list(element.iter_children("preInstalledModule"))
    additional = element.child("additionalModules")
    modules = list(additional.iter_children("addModule")) if additional is not None else []
    installed = sum(_capacities(pre, file, link_id))
    candidates = _capacities(modules, file, link_id)
    if installed > 0 or (pre and not candidates):
        return installed
    return min(candidates) if candidates else None


def _read_link(element: XmlElement, nodes: dict[str, Node], file: str) -> _RawLink:
    link_id = element.attrib.get("id", "")
    where = Where(file, element.line, f"link {link_id!r}")
    src, dst = _text_of(element, "source", where), _text_of(element, "target", where)
    for end in (src, dst):
        if end not in nodes:
            raise where.error(f"refers to undeclared node {end!r}")
    cost_el = element.child("routingCost")
    cost = parse_float(cost_el.text, where, "routingCost") if cost_el is not None else 0.0
    capacity = _module_capacity(element, file, link_id)
    if capacity is not None:
        positive(capacity, where, "capacity")
    return _RawLink(link_id, src, dst, capacity, cost if cost > 0 else 1.0, element.line)


def _links(raw: list[_RawLink], nodes: dict[str, Node], unit_bps: float, default_bps: float) -> list[Link]:
    listed = {(r.src, r.dst) for r in raw}
    links: list[Link] = []
    for r in raw:
        a, b = nodes[r.src], nodes[r.dst]
        delay_s = propagation_delay_s((a.longitude, a.latitude), (b.longitude, b.latitude)) or 0.0
        defaulted = r.capacity is None
        capacity_bps = default_bps if r.capacity is None else r.capacity * unit_bps
        links.append(Link(r.src, r.dst, capacity_bps, delay_s, r.cost, defaulted))
        if (r.dst, r.src) not in listed:
            links.append(Link(r.dst, r.src, capacity_bps, delay_s, r.cost, defaulted))
    return links


def read_sndlib(data: bytes, path: Path, *, default_capacity_bps: float = DEFAULT_CAPACITY_BPS) -> Topology:
    """Build a topology from SNDlib network XML bytes (the content of ``path``)."""
    file = str(path)
    root = parse_xml(data, path, skip=frozenset({"demands"}))  # demands are traffic, not topology
    if root.local != "network" or root.namespace not in ("", SNDLIB_NS):
        raise Where(file, root.line).error(f"root element is {root.tag!r}, not SNDlib <network>")
    structure = root.child("networkStructure")
    if structure is None:
        raise Where(file, root.line).error("missing <networkStructure>")
    nodes = _read_nodes(structure, file)
    links_el = structure.child("links")
    raw = (
        [_read_link(el, nodes, file) for el in links_el.iter_children("link")] if links_el is not None else []
    )
    unit_bps = _unit_bps(root, Where(file))
    links = _links(raw, nodes, unit_bps, default_capacity_bps)
    defaulted = sum(1 for r in raw if r.capacity is None)
    warnings = [defaulted_warning(defaulted, default_capacity_bps)] if defaulted else []
    return Topology.build(nodes.values(), links, name=path.stem, warnings=warnings)
