"""What a NetworkConfig puts in the kernel: each item rendered to kernel objects on the lab's nodes.

Reservations and circuits need the flow's addresses (their flow key names two endpoints of the topology)
and a number: an HTB minor per reservation, a mark/table per circuit. Numbers already in the kernel are
kept (read back: a filter's addresses, a circuit element's comment); new ones are the first free after a
hash of the key, so allocation is deterministic.
"""

from __future__ import annotations

import itertools
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netscaffold.errors import PlanError
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render import records
from netscaffold.formats.render import tc as tc_render
from netscaffold.formats.render.iproute2 import kernel_route
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.objects import (
    MAIN_TABLE,
    ROUTE_PROTOCOLS,
    KernelClass,
    KernelElement,
    KernelFilter,
    KernelObject,
    KernelRoute,
    KernelRule,
    canonical_prefix,
    family_of,
)
from netscaffold.model.config import (
    ConfigItem,
    FirewallRule,
    NetworkConfig,
    Reservation,
    Route,
    VirtualCircuit,
    split_flow_key,
)

MARK_BASE = 0x5C000000
CIRCUIT_TABLE_BASE = 10000
CIRCUIT_RULE_PRIORITY_BASE = 20000
MAX_CIRCUITS = 0xFFFF

ObjectMap = dict[tuple[str, ...], KernelObject]


@dataclass
class Allocation:
    """Reservation flow key -> HTB minor; circuit id -> circuit number (mark, table, rule priority)."""

    minors: dict[str, int] = field(default_factory=dict)
    circuits: dict[str, int] = field(default_factory=dict)
    _used: dict[int, tuple[int, set[int]]] = field(default_factory=dict, repr=False, compare=False)
    """Per table (by id): (its size when last synced, the numbers it holds), so that assigning n numbers
    is not O(n^2)."""

    @classmethod
    def from_kernel(cls, layout: LabLayout, objects: Iterable[KernelObject]) -> Allocation:
        endpoint_at = layout.endpoint_at
        alloc = cls()
        for obj in objects:
            if isinstance(obj, KernelFilter):
                src, dst = endpoint_at.get(obj.src.split("/")[0]), endpoint_at.get(obj.dst.split("/")[0])
                if src is not None and dst is not None and src.id != dst.id:
                    alloc.minors.setdefault(f"{src.id}->{dst.id}", obj.minor)
            elif isinstance(obj, KernelElement) and obj.value is not None:
                parts = obj.comment.split("|")
                if len(parts) == 4 and parts[0] == "vc":
                    alloc.circuits.setdefault(parts[1], obj.value - MARK_BASE)
        return alloc

    def minor_for(self, flow_key: str) -> int:
        return self._assign(
            self.minors, flow_key, tc_render.FIRST_RESERVATION_MINOR, tc_render.LAST_RESERVATION_MINOR
        )

    def circuit_for(self, circuit_id: str) -> int:
        return self._assign(self.circuits, circuit_id, 1, MAX_CIRCUITS)

    def _assign(self, table: dict[str, int], key: str, low: int, high: int) -> int:
        if key in table:
            return table[key]
        synced, used = self._used.get(id(table), (-1, set()))
        if synced != len(table):  # filled from elsewhere (read from the kernel): take it again
            used = set(table.values())
        span = high - low + 1
        start = zlib.crc32(key.encode()) % span
        for step in range(span):
            candidate = low + (start + step) % span
            if candidate not in used:
                table[key] = candidate
                used.add(candidate)
                self._used[id(table)] = (len(table), used)
                return candidate
        raise PlanError(f"no free number left in {low}..{high}", element=key)


def flow_addresses(layout: LabLayout, item: Reservation | VirtualCircuit) -> tuple[str, str]:
    src_id, dst_id = split_flow_key(item.flow_key)
    endpoints = layout.topology.endpoints
    if src_id not in endpoints or dst_id not in endpoints:
        raise PlanError(
            f"flow key {item.flow_key!r} must be 'src->dst' naming two endpoints of the topology "
            "(the kernel classifies the flow by their addresses)",
            element=item.describe(),
        )
    src, dst = endpoints[src_id].address, endpoints[dst_id].address
    if family_of(src) != family_of(dst):  # addresses the topology has validated
        raise PlanError("endpoints of different address families", element=item.describe())
    return src, dst


def render_item(
    item: ConfigItem,
    layout: LabLayout,
    alloc: Allocation,
    now_s: float,
    shapes: dict[tuple[object, ...], _Shape] | None = None,
    *,
    hops: dict[tuple[str, ...], _Hops] | None = None,
) -> list[KernelObject]:
    """The item's kernel objects and, on its first device, the elements holding its record.

    Routes and firewall rules do not depend on the allocation, and everything else they depend on is the
    item, the element timeout and the layout, so their renderings are memoised: an engine re-applies
    mostly the same config (the same item objects) every tick. The memo is keyed by the item's identity
    (the entry holds the item, so the id stays its own): hashing an item hashes every field of it and of
    its next hops, twice per new item, which cost more than a route's kernel object. ``shapes``: what
    routes' next hops render to, ``hops``: the egress ports of reservations' paths, both kept by the
    caller across the items of one config (see ``_route`` and ``_reservation``)."""
    expires_at = item.expires_at
    timeout_s = None if expires_at is None else nft_render.timeout_for(expires_at, now_s)
    memoised = type(item) is Route or type(item) is FirewallRule
    if memoised:
        cached = _MEMO.get(id(item))
        if cached is not None and cached[0] is item and cached[1] is layout and cached[2] == timeout_s:
            return list(cached[3:])  # type: ignore[arg-type]  # the rest are its objects
    if type(item) is Route:
        rendered = _route(item, layout, timeout_s, shapes)
    elif type(item) is FirewallRule:
        rendered = _firewall(item, layout, timeout_s, now_s)
    else:
        rendered = [
            *_render_objects(item, layout, alloc, now_s, hops),
            *records.record_elements(item, timeout_s),
        ]
    if memoised:
        if len(_MEMO) >= MEMO_ITEMS:
            _MEMO.clear()
        _MEMO[id(item)] = (item, layout, timeout_s, *rendered)
    return rendered


MEMO_ITEMS = 200_000
_MEMO: dict[int, tuple[object, ...]] = {}
"""id(item) -> (item, layout, element timeout, its objects...): one tuple per item (the collector scans
every one an apply leaves behind)."""


def _route(
    route: Route,
    layout: LabLayout,
    timeout_s: int | None,
    shapes: dict[tuple[object, ...], _Shape] | None = None,
) -> list[KernelObject]:
    """``render_item`` of a route: its kernel route and record (the commonest item, rendered in one frame:
    an apply of 5,000 new routes renders 5,000). What depends on the next hops alone (the kernel's
    next hops, their part of the record) is worked out once per device and set of next hops in
    ``shapes`` (one render's: a node's routes share a few sets); the two objects are built as the
    named tuples they are, their idents given (what ``KernelRoute`` / ``KernelElement`` derive)."""
    device, destination = route.device, route.destination
    family = 6 if ":" in destination else 4
    hops = route.next_hops
    if len(hops) == 1:
        hop = hops[0]
        weight = hop.weight
        shape_key: tuple[object, ...] = (device, family, hop.via, weight, weight.__class__)
    else:
        parts: list[object] = [device, family]
        for hop in hops:
            weight = hop.weight
            parts += (hop.via, weight, weight.__class__)
        shape_key = tuple(parts)
    if shapes is None:
        shapes = {}
    shape = shapes.get(shape_key)
    if shape is None:
        shape = shapes[shape_key] = _route_shape(route, layout, family)
    kernel_hops, hops_text = shape
    origin = route.origin
    protocol = ROUTE_PROTOCOLS[origin]
    prefix = canonical_prefix(destination)
    kernel = _new_tuple(
        KernelRoute, (device, MAIN_TABLE, prefix, protocol, kernel_hops, ("route", device, _MAIN, prefix))
    )
    expires_at = route.expires_at
    expires = "null" if expires_at is None else records.number_text(expires_at)
    plain = type(destination) is str and type(device) is str
    if hops_text is None or expires is None or not plain:
        text = records.record_text(route)  # a value json writes otherwise: through json itself
    else:
        text = (
            f'["r",{_json_string(device)},{_json_string(destination)},[{hops_text}],'
            f'"{records.ORIGIN_CODES[origin]}",{expires}]'
        )
    if len(text) > records.CHUNK_CHARS:
        return [kernel, *records.record_elements(route, timeout_s)]
    high, low = records.key_hash(("route", device, destination))  # route.key, without the property
    ident = ("element", device, records.SET_NAME, str(high), str(low), "0")
    fields = (device, records.SET_NAME, (high, low, 0), None, text, timeout_s, ident)
    element = _new_tuple(KernelElement, fields)
    return [kernel, element]


_Shape = tuple[tuple[tuple[str, int], ...], str | None]
"""(kernel next hops, the next hops' part of the record's JSON or None where json must write it)."""
_new_tuple = tuple.__new__
_MAIN = str(MAIN_TABLE)
_json_string = records.json_string


def _route_shape(route: Route, layout: LabLayout, family: int) -> _Shape:
    """The next-hop part of ``_route`` (refusing, naming them, next hops the device has no link to)."""
    if route.device not in layout.namespaces:
        layout.namespace(route.device)  # raises, naming the node
    kernel_hops = kernel_route(route, layout.gateways(route.device, family)).next_hops
    texts = [records.hop_text(hop.via, hop.weight) for hop in route.next_hops]
    return kernel_hops, None if None in texts else ",".join(texts)  # type: ignore[arg-type]


def _firewall(
    rule: FirewallRule, layout: LabLayout, timeout_s: int | None, now_s: float
) -> list[KernelObject]:
    """``render_item`` of a firewall rule: its set elements and record (its key built once)."""
    if rule.device not in layout.namespaces:
        layout.namespace(rule.device)  # raises, naming the node
    key = rule.key
    return [
        *nft_render.firewall_elements(rule, now_s, item_key=key),
        *records.record_elements(rule, timeout_s, key),
    ]


def _render_objects(
    item: ConfigItem,
    layout: LabLayout,
    alloc: Allocation,
    now_s: float,
    hops: dict[tuple[str, ...], _Hops] | None = None,
) -> list[KernelObject]:
    if isinstance(item, Route):
        layout.namespace(item.device)
        gateways = layout.gateways(item.device, family_of(item.destination))
        return [kernel_route(item, gateways)]
    if isinstance(item, FirewallRule):
        layout.namespace(item.device)
        return list(nft_render.firewall_elements(item, now_s))
    if isinstance(item, Reservation):
        return _reservation(item, layout, alloc, hops)
    return list(_circuit(item, layout, alloc, now_s))


def _reservation(
    item: Reservation, layout: LabLayout, alloc: Allocation, hops: dict[tuple[str, ...], _Hops] | None
) -> list[KernelObject]:
    """A class and a filter on the egress port of every link of the path; the ports and capacities of a
    path worked out once in ``hops``."""
    src, dst = flow_addresses(layout, item)
    minor = alloc.minor_for(item.flow_key)
    family = family_of(src)
    rate = tc_render.bytes_per_s(item.rate_bps)
    src_prefix, dst_prefix = tc_render.host_prefix(src), tc_render.host_prefix(dst)
    path = item.path
    ports = None if hops is None else hops.get(path)
    if ports is None:
        ports = _egress_ports(layout, path)
        if hops is not None:
            hops[path] = ports
    out: list[KernelObject] = []
    for node, ifname, capacity in ports:
        out.append(KernelClass(node, ifname, minor, rate, capacity))
        out.append(KernelFilter(node, ifname, minor, family, src_prefix, dst_prefix))
    return out


_Hops = tuple[tuple[str, str, int], ...]
"""(node, egress interface, link capacity in bytes/s) of each link of a path."""


def _egress_ports(layout: LabLayout, path: tuple[str, ...]) -> _Hops:
    """The egress port and capacity of every link of ``path`` (refusing, naming it, a missing link)."""
    out = []
    for a, b in itertools.pairwise(path):
        port = layout.port(a, b)
        out.append((a, port.ifname, tc_render.bytes_per_s(layout.topology.link(a, b).capacity_bps)))
    return tuple(out)


def _circuit(
    item: VirtualCircuit, layout: LabLayout, alloc: Allocation, now_s: float
) -> Iterable[KernelObject]:
    src, dst = flow_addresses(layout, item)
    number = alloc.circuit_for(item.circuit_id)
    family = family_of(src)
    protocol = ROUTE_PROTOCOLS[item.origin]
    comment = nft_render.item_comment("vc", item.circuit_id, item.origin, item.expires_at)
    timeout = nft_render.timeout_for(item.expires_at, now_s)
    table = CIRCUIT_TABLE_BASE + number
    for a, b in item.link_keys():
        layout.namespace(a)
        gateway = layout.gateways(a, family)[b]
        yield nft_render.circuit_element(
            a, src, dst, mark=MARK_BASE + number, comment=comment, timeout_s=timeout
        )
        yield KernelRule(a, family, CIRCUIT_RULE_PRIORITY_BASE + number, MARK_BASE + number, table, protocol)
        yield KernelRoute(a, table, tc_render.host_prefix(dst), protocol, ((gateway, 1),))


def default_classes(layout: LabLayout, config: NetworkConfig) -> list[KernelClass]:
    """Per link egress, the class of unreserved traffic: the capacity left by reservations."""
    reserved: dict[tuple[str, str], int] = defaultdict(int)
    for item in config:
        if isinstance(item, Reservation):
            rate, path = tc_render.bytes_per_s(item.rate_bps), item.path
            for link_key in itertools.pairwise(path):  # item.link_keys(), without the list
                reserved[link_key] += rate
    out = []
    for (node, peer), port in sorted(layout.ports.items()):
        if (node, peer) not in layout.topology.links:
            continue
        capacity = tc_render.bytes_per_s(layout.topology.link(node, peer).capacity_bps)
        rate = max(tc_render.MIN_RATE_BYTES_S, capacity - reserved[(node, peer)])
        out.append(KernelClass(node, port.ifname, tc_render.DEFAULT_MINOR, rate, capacity))
    return out


def render_config(
    config: NetworkConfig, layout: LabLayout, alloc: Allocation, now_s: float
) -> tuple[ObjectMap, dict[tuple[str, ...], ConfigItem]]:
    """All objects of ``config`` (plus default classes) by ident, and which item owns each ident."""
    objects: ObjectMap = {}
    owner: dict[tuple[str, ...], ConfigItem] = {}
    put = objects.setdefault
    shapes: dict[tuple[object, ...], _Shape] = {}
    hops: dict[tuple[str, ...], _Hops] = {}
    for item in config.sorted_items():
        for obj in render_item(item, layout, alloc, now_s, shapes, hops=hops):
            ident = obj.ident
            have = put(ident, obj)  # one lookup: the object now held there, ours unless one was
            if have is not obj and have != obj:
                raise PlanError(
                    f"needs the same kernel object as {owner[ident].describe()}", element=item.describe()
                )
            owner[ident] = item
    for kc in default_classes(layout, config):
        objects[kc.ident] = kc
    return objects, owner


def explained(objects: Mapping[tuple[str, ...], KernelObject], wanted: Iterable[KernelObject]) -> bool:
    from netscaffold.formats.render.objects import same

    return all(obj.ident in objects and same(objects[obj.ident], obj) for obj in wanted)
