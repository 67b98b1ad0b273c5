"""The apply's third-round paths (fewer Python objects per kernel object): kernel objects as named tuples
(derived ident, equality, pickling, the journal); records written as JSON without ``json`` and keys hashed
from a copied BLAKE2b state, equal to the general forms; routes and firewall rules rendered in one frame,
equal to the general renderers, and the renderer's memo keyed by identity; element attributes and their
signatures encoded once, equal to the reference encodings; route messages with the IPv4 routes they
write (pure). A read-back that matches what an apply wrote by its bytes gives the very objects the full
decoder gives, and decodes whatever does not match (root)."""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import pickle
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.backends.linux import journal, netlink, readback, tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.converge import (
    Step,
    StepError,
    converge,
    execute,
    plan_steps,
    read_all,
    tc_messages,
    written_objects,
    written_scopes,
)
from netscaffold.backends.linux.netlink import htb_class_message, u32_filter_message
from netscaffold.backends.linux.readback import (
    _SET_FIELDS,
    element_write,
    encoded_elements,
    read_node,
    written_signature,
)
from netscaffold.errors import PlanError
from netscaffold.formats.render import desired, nftables, records
from netscaffold.formats.render import tc as tc_render
from netscaffold.formats.render.desired import Allocation, render_config, render_item
from netscaffold.formats.render.iproute2 import kernel_route
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.objects import (
    KernelClass,
    KernelElement,
    KernelFilter,
    KernelObject,
    KernelRoute,
    KernelRule,
    fields_of,
    same,
)
from netscaffold.model import FirewallRule, FlowMatch, NetworkConfig, NextHop, Origin, Plan, Route
from netscaffold.model.events import RouteUpdate

from .test_linux_backend import scaffold
from .test_linux_common import small_lab, small_topology, veth_namespace

_OBJECTS: list[KernelObject] = [
    KernelRoute("r1", 254, "198.18.0.2/32", 202, (("198.19.0.3", 85), ("198.19.0.5", 256))),
    KernelRule("r1", 4, 20001, 0x5C000001, 10001, 202),
    KernelElement("r1", "items", (1, 2, 0), None, '["r"]', 30),
    KernelElement("fw", "permit4", ("198.18.0.1", "198.18.0.0/24", 17, 53), None, "fw|x|s|", None),
    KernelClass("r1", "v1", 0x10, 6_250_000, 125_000_000),
    KernelFilter("r1", "v1", 0x10, 6, "fd00::1/128", "fd00::2/128"),
]


# -- kernel objects ------------------------------------------------------------------------------


@pytest.mark.parametrize("obj", _OBJECTS, ids=lambda o: type(o).__name__)
def test_kernel_objects_derive_their_ident_and_survive_copies(obj: KernelObject) -> None:
    again = type(obj)(**fields_of(obj))
    assert again == obj
    assert hash(again) == hash(obj)
    assert again.ident == obj.ident
    assert obj.ident[1] == obj.node
    assert pickle.loads(pickle.dumps(obj)) == obj
    assert copy.deepcopy(obj) == obj
    assert "ident" not in repr(obj)
    assert repr(obj).startswith(f"{type(obj).__name__}(node=")
    assert journal.decode(json.loads(json.dumps(journal.encode(obj)))) == obj


def test_kernel_objects_of_different_kinds_are_never_equal() -> None:
    """Named tuples compare as tuples: the ident (last member, starting with the kind) keeps kinds
    apart even where every other member agrees."""
    for a in _OBJECTS:
        for b in _OBJECTS:
            assert (a == b) is (a is b)
    rule = KernelRule("r1", 4, 1, 2, 3, 4)
    assert rule != ("r1", 4, 1, 2, 3, 4)  # the ident makes it longer than its fields
    element = KernelElement("r1", "items", (1, 2, 0), None, "x", 30)
    assert same(element, element._replace(timeout_s=5))  # timeouts aside, as before


# -- records -------------------------------------------------------------------------------------

_NAMES = st.text(min_size=1, max_size=12)
_EXPIRY = st.floats(min_value=0, max_value=1e9) | st.integers(0, 10**9)


@st.composite
def _lifetime(draw: st.DrawFn) -> tuple[Origin, float | None]:
    expires_at = draw(st.none() | _EXPIRY)
    if expires_at is None:
        return draw(st.sampled_from([Origin.STATIC, Origin.CONFIRMED])), None
    return draw(st.sampled_from(list(Origin))), expires_at


@st.composite
def _routes(draw: st.DrawFn) -> Route:
    vias = draw(st.lists(_NAMES, min_size=1, max_size=3, unique=True))
    if len(vias) == 1:
        weights: list[float] = [draw(st.sampled_from([1.0, 1]))]
    else:
        raw = [draw(st.floats(min_value=1e-3, max_value=1.0)) for _ in vias]
        weights = [w / sum(raw) for w in raw]
        weights[-1] = 1.0 - sum(weights[:-1])
    hops = tuple(NextHop(via, weight) for via, weight in zip(vias, weights, strict=True))
    address = draw(st.ip_addresses(v=4) | st.ip_addresses(v=6))
    origin, expires_at = draw(_lifetime())
    return Route(draw(_NAMES), str(address), hops, origin, expires_at)


@st.composite
def _rules(draw: st.DrawFn) -> FirewallRule:
    family = draw(st.sampled_from([4, 6]))
    address = st.ip_addresses(v=family).map(str)
    proto = draw(st.sampled_from([None, "tcp", "udp", "icmp"]))
    port = draw(st.integers(1, 65535)) if proto in ("tcp", "udp") and draw(st.booleans()) else None
    match = FlowMatch(draw(st.none() | address), draw(st.none() | address), proto, port)
    action = draw(st.sampled_from(["accept", "drop"]))
    origin, expires_at = draw(_lifetime())
    return FirewallRule(draw(_NAMES), match, action, origin, expires_at)


@given(item=_routes() | _rules())
@settings(max_examples=300, deadline=None)
def test_record_text_is_the_json_encoding(item: Route | FirewallRule) -> None:
    assert records.record_text(item) == records._COMPACT_JSON.encode(records.encode_item(item))
    assert records._decoded(records.record_text(item)) == item


@given(parts=st.lists(st.text(max_size=20), min_size=1, max_size=6))
def test_key_hash_is_the_8_byte_blake2b_of_the_key(parts: list[str]) -> None:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    assert records.key_hash(tuple(parts)) == (
        int.from_bytes(digest[:4], "big"),
        int.from_bytes(digest[4:], "big"),
    )


# -- rendering -----------------------------------------------------------------------------------


def _layout() -> LabLayout:
    return LabLayout.of("lean", small_topology())


def _reference(item: Route | FirewallRule, layout: LabLayout, now_s: float) -> list[KernelObject]:
    """``render_item`` through the general renderers."""
    timeout = nftables.timeout_for(item.expires_at, now_s)
    if isinstance(item, Route):
        gateways = layout.gateways(item.device, 6 if ":" in item.destination else 4)
        objects: list[KernelObject] = [kernel_route(item, gateways)]
    else:
        objects = list(nftables.firewall_elements(item, now_s))
    return [*objects, *records.record_elements(item, timeout)]


@given(
    device=st.sampled_from(["h1", "r1", "r2", "fw"]),
    destination=st.ip_addresses(v=4).map(str) | st.ip_addresses(v=6).map(lambda a: f"{a}/128"),
    hop_count=st.integers(1, 2),
    expires_at=st.none() | st.floats(min_value=0.5, max_value=1e6),
    long_record=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_route_rendered_in_one_frame_equals_the_general_renderers(
    device: str, destination: str, hop_count: int, expires_at: float | None, long_record: bool
) -> None:
    layout = _layout()
    peers = sorted(layout.gateways(device, 4))[:hop_count]
    weights = [1.0] if len(peers) == 1 else [0.3, 0.7]
    hops = tuple(NextHop(peer, weight) for peer, weight in zip(peers, weights, strict=True))
    if long_record:  # a record of two chunks
        hops = tuple(NextHop(hop.via, hop.weight / 3 + 1e-17 * index) for index, hop in enumerate(hops))
    origin = Origin.PREDICTED if expires_at is not None else Origin.STATIC
    try:
        route = Route(device, destination, hops, origin, expires_at)
    except ValueError:
        return  # weights that do not sum to 1 (long_record): not a route
    desired._MEMO.clear()
    assert render_item(route, layout, Allocation(), 0.0) == _reference(route, layout, 0.0)


@given(rule=_rules())
@settings(max_examples=150, deadline=None)
def test_firewall_rule_rendered_in_one_frame_equals_the_general_renderers(rule: FirewallRule) -> None:
    layout = _layout()
    rule = FirewallRule("fw", rule.match, rule.action, rule.origin, rule.expires_at)
    desired._MEMO.clear()
    try:
        expected = _reference(rule, layout, 0.0)
    except ValueError as exc:  # src and dst of different families: both paths refuse
        with pytest.raises(type(exc)):
            render_item(rule, layout, Allocation(), 0.0)
        return
    assert render_item(rule, layout, Allocation(), 0.0) == expected


def test_memo_is_keyed_by_the_item_itself() -> None:
    layout = _layout()
    route = Route("r1", "198.18.0.9/32", (NextHop("r2"),), Origin.PREDICTED, 10.0)
    twin = Route("r1", "198.18.0.9/32", (NextHop("r2"),), Origin.PREDICTED, 10.0)
    desired._MEMO.clear()
    first = render_item(route, layout, Allocation(), 0.0)
    assert all(a is b for a, b in zip(render_item(route, layout, Allocation(), 0.0), first, strict=True))
    assert render_item(twin, layout, Allocation(), 0.0) == first  # equal, rendered again
    later = render_item(route, layout, Allocation(), 5.0)  # another timeout: rendered again
    assert later[1].timeout_s == 5
    assert first[1].timeout_s == 10
    other = LabLayout.of("lean2", small_topology())
    assert render_item(route, other, Allocation(), 0.0) == first  # another layout: rendered again
    moved = Route("r1", "198.18.0.10/32", (NextHop("fw"),), Origin.PREDICTED, 10.0)
    assert render_item(moved, layout, Allocation(), 0.0) != first


# -- encoding ------------------------------------------------------------------------------------


@given(
    key=st.binary(min_size=12, max_size=12),
    comment=st.text(max_size=100),
    timeout_ms=st.none() | st.integers(1, 2**40),
)
@settings(max_examples=200, deadline=None)
def test_record_add_is_the_general_encoding_and_signature(
    key: bytes, comment: str, timeout_ms: int | None
) -> None:
    write = netlink.ElementWrite("add", "items", key, None, None, comment, timeout_ms)
    attributes, signature = netlink.record_add(key, comment, timeout_ms)
    assert attributes == netlink.element_attrs(write) == netlink.record_attrs("add", key, comment, timeout_ms)
    assert signature == netlink.element_signature(key, None, None, comment)


@given(  # 16-byte keys and key ends drawn too: a permit's (addresses, protocol, port), the commonest
    key=st.binary(min_size=16, max_size=16) | st.binary(min_size=1, max_size=40),
    key_end=st.none() | st.binary(min_size=16, max_size=16) | st.binary(min_size=1, max_size=40),
    data=st.none() | st.binary(min_size=4, max_size=4),
    comment=st.text(max_size=100),
    timeout_ms=st.none() | st.integers(1, 2**40),
)
@settings(max_examples=300, deadline=None)
def test_element_add_is_the_general_encoding_and_signature(
    key: bytes, key_end: bytes | None, data: bytes | None, comment: str, timeout_ms: int | None
) -> None:
    write = netlink.ElementWrite("add", "permit4", key, key_end, data, comment, timeout_ms)
    attributes, signature = netlink.element_add(key, key_end, data, comment, timeout_ms)
    assert attributes == netlink.element_attrs(write)
    assert signature == netlink.element_signature(key, key_end, data, comment)


def _as_dumped(attributes: bytes, expires_ms: int | None) -> bytes:
    """What the kernel dumps for an element written with ``attributes``: nests without the NESTED flag,
    and an expiration after the timeout."""
    out, pos = b"", 0
    while pos + 4 <= len(attributes):
        length, kind = struct.unpack_from("=HH", attributes, pos)
        body = attributes[pos + 4 : pos + length]
        out += struct.pack("=HH", length, kind & 0x3FFF) + body + bytes(-length & 3)
        if kind & 0x3FFF == netlink.NFTA_SET_ELEM_TIMEOUT and expires_ms is not None:
            out += netlink._nla(netlink.NFTA_SET_ELEM_EXPIRATION, expires_ms.to_bytes(8, "big"))
        pos += (length + 3) & ~3
    return out


@given(
    key=st.binary(min_size=4, max_size=36),
    key_end=st.none() | st.binary(min_size=4, max_size=36),
    data=st.none() | st.binary(min_size=4, max_size=4),
    comment=st.text(max_size=60),
    timeout_ms=st.none() | st.integers(1000, 2**32),
)
@settings(max_examples=200, deadline=None)
def test_signature_read_from_a_dump_is_the_written_one(
    key: bytes, key_end: bytes | None, data: bytes | None, comment: str, timeout_ms: int | None
) -> None:
    attributes, signature = netlink.element_add(key, key_end, data, comment, timeout_ms)
    dumped = _as_dumped(attributes, None if timeout_ms is None else timeout_ms - 1)
    assert netlink._signature_at(dumped, 0, len(dumped)) == signature
    flagged = dumped + netlink._nla(netlink.NFTA_SET_ELEM_FLAGS, (1).to_bytes(4, "big"))
    assert netlink._signature_at(flagged, 0, len(flagged)) is None  # flags: decoded instead


def test_encoded_elements_match_the_general_encoding() -> None:
    layout = _layout()
    target, _ = render_config(scaffold(), layout, Allocation(), 0.0)
    elements = [obj for obj in target.values() if isinstance(obj, KernelElement)]
    ops = [("add", e) for e in elements] + [("delete", e) for e in elements]
    writes, written = encoded_elements(ops)
    for (action, element), (write_action, set_name, attributes) in zip(ops, writes, strict=True):
        assert (write_action, set_name) == (action, element.set_name)
        assert attributes == netlink.element_attrs(element_write(action, element))
    exact = [e for e in elements if "ip6" not in _SET_FIELDS[e.set_name]]
    matched: set[KernelElement] = set()
    for node in {e.node for e in elements}:  # per node, as a step writes them
        _, by_set = encoded_elements([("add", e) for e in elements if e.node == node])
        matched.update(e for signatures in by_set.values() for e in signatures.values())
    assert matched == set(exact)
    assert all(e in exact for signatures in written.values() for e in signatures.values())
    for element in elements:
        signature = written_signature("add", element)
        assert (signature is not None) is (element in exact)
        assert written_signature("delete", element) is None
    assert any("ip6" in _SET_FIELDS[e.set_name] for e in elements)  # the IPv6 permit: decoded, not matched


def test_route_messages_are_the_single_messages_with_what_they_write() -> None:
    route = KernelRoute("r1", 254, "198.18.0.2/32", 202, (("198.19.0.3", 85), ("198.19.0.5", 256)))
    circuit = KernelRoute("r1", 10001, "198.18.0.2/32", 202, (("198.19.0.3", 1),))  # same address
    other = KernelRoute("r1", 254, "198.18.0.7/32", 201, (("198.19.0.3", 1),))
    six = KernelRoute("r1", 254, "fd00::2/128", 201, (("fd00:1::3", 1),))
    rule = KernelRule("r1", 4, 20001, 0x5C000001, 10001, 202)
    ops = [("delete", other), ("replace", route), ("replace", circuit), ("replace", six), ("add", rule)]
    messages, written = netlink.route_messages(ops)  # type: ignore[arg-type]
    expected = [
        netlink.route_message(a, o.destination, o.next_hops, o.protocol, o.table)
        if isinstance(o, KernelRoute)
        else netlink.rule_message(a, o)
        for a, o in ops
    ]
    assert messages == expected
    assert written == {}  # the deleted route is not written, the clash and IPv6 are left to decode
    messages, written = netlink.route_messages([("replace", route), ("replace", other)])
    assert written == {
        ipaddress.IPv4Address("198.18.0.2").packed: ((254, 202, 32, route.next_hops), route),
        ipaddress.IPv4Address("198.18.0.7").packed: ((254, 201, 32, other.next_hops), other),
    }


# -- against the kernel --------------------------------------------------------------------------


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("ln") as be:
        yield be


@pytest.mark.root
def test_read_back_matched_by_written_bytes_equals_the_full_decoding(backend: LinuxBackend) -> None:
    """The objects a read-back takes from what the steps wrote are the ones the full decoder reads, for
    every kind of item (IPv4 and IPv6 routes and permits, a circuit's route in its own table beside a
    main-table route to the same address, records, circuit marks)."""
    extra = [  # routes to addresses no circuit uses (those the read-back matches)
        Route("r2", "198.18.0.1/32", (NextHop("r1"),)),
        Route("r1", "198.18.5.0/24", (NextHop("r2", 0.5), NextHop("fw", 0.5)), Origin.PREDICTED, 20.0),
    ]
    config = NetworkConfig.of([*scaffold(), *extra])
    backend.apply(Plan.between(NetworkConfig(), config))
    full = backend.kernel_objects()
    target, _ = render_config(
        config, backend.layout, Allocation.from_kernel(backend.layout, full.values()), 0.0
    )
    steps = plan_steps(backend.layout, [], list(target.values()))
    for step in steps:  # as run: what each step would have written
        if step.tool == "nft":
            _, step.written = encoded_elements(step.elements)
        elif step.tool == "netlink":
            _, step.written_routes = netlink.route_messages(step.ops)
        elif step.tool == "tc":
            index = backend.sessions.get(step.netns).netlink.links()
            _, step.written_filters = tc_messages(step.tc_deletes, step.tc_ops, index, ("tc",))
    written = written_objects(steps)
    assert any(w.routes for w in written.values())
    assert any(w.elements for w in written.values())
    assert any(w.filters for w in written.values())
    scopes = written_scopes(steps)
    matched = read_all(backend.layout, backend.sessions, set(scopes), scopes, written)
    decoded = read_all(backend.layout, backend.sessions, set(scopes), scopes)
    assert matched == decoded
    assert {ident: type(obj) for ident, obj in matched.items()} == {
        ident: type(obj) for ident, obj in decoded.items()
    }
    taken = [obj for obj in matched.values() if any(obj is t for t in target.values())]
    assert taken  # some were taken from what was written, not decoded


@pytest.mark.root
def test_read_back_decodes_what_the_kernel_holds_otherwise(backend: LinuxBackend) -> None:
    """An element or route the steps claim to have written but the kernel holds otherwise is decoded
    from the kernel, so the verification sees the difference."""
    config = scaffold()
    backend.apply(Plan.between(NetworkConfig(), config))
    session = backend.sessions.get(backend.layout.namespace("fw"))
    held = [o for o in read_node("fw", session, []) if isinstance(o, KernelElement)]
    record = next(o for o in held if o.set_name == "items")
    claimed = record._replace(comment=record.comment + " ")  # a comment the kernel does not hold
    _, written = encoded_elements([("add", claimed)])
    read = read_node("fw", session, [], written=written)
    assert claimed not in read
    assert record in read
    route = next(
        o
        for o in read_node("r1", backend.sessions.get(backend.layout.namespace("r1")), [])
        if isinstance(o, KernelRoute) and o.table == 254 and o.destination == "198.18.0.2/32"
    )
    wrong = route._replace(next_hops=(("198.19.0.250", 1),))
    _, routes = netlink.route_messages([("replace", wrong)])
    r1 = backend.sessions.get(backend.layout.namespace("r1"))
    read_routes = read_node("r1", r1, [], sets=(), written_routes=routes)
    assert route in read_routes
    assert wrong not in read_routes


@pytest.mark.root
def test_apply_verifies_and_reports_route_updates_as_before(backend: LinuxBackend) -> None:
    config = scaffold()
    backend.apply(Plan.between(NetworkConfig(), config))
    updates = backend.drain_routing_info()
    routes = [item for item in config if isinstance(item, Route)]
    announced = [u for u in updates if isinstance(u, RouteUpdate) and not u.withdrawn]
    assert {(u.device, u.destination) for u in announced} >= {(r.device, r.destination) for r in routes}
    assert backend.drain_routing_info() == []
    backend.apply(Plan.between(config, NetworkConfig(), allow_confirmed_changes=True))
    withdrawn = [u for u in backend.drain_routing_info() if isinstance(u, RouteUpdate) and u.withdrawn]
    assert {(u.device, u.destination) for u in withdrawn} >= {(r.device, r.destination) for r in routes}
    assert backend.snapshot() == NetworkConfig()


@pytest.mark.root
def test_route_changes_nobody_drains_are_folded_to_each_routes_last_state(backend: LinuxBackend) -> None:
    config = scaffold()
    backend.apply(Plan.between(NetworkConfig(), config))
    first = backend.drain_routing_info()  # one announcement per kernel route the config makes
    backend.apply(Plan.between(config, NetworkConfig(), allow_confirmed_changes=True))
    backend.route_fold_at = len(first)  # fold from the next apply on (the default is 200,000)
    for _ in range(3):
        backend.apply(Plan.between(NetworkConfig(), config))
        backend.apply(Plan.between(config, NetworkConfig(), allow_confirmed_changes=True))
    backend.apply(Plan.between(NetworkConfig(), config))
    assert backend._pending_routes == len(first)  # 8 applies' worth without the fold
    # each route once, as it is now: announced again (its last change), none withdrawn
    assert sorted(backend.drain_routing_info(), key=repr) == sorted(first, key=repr)
    assert backend.route_fold_at == 200_000  # draining resets the bound


@given(
    routes=st.lists(
        st.tuples(
            st.sampled_from(["replace", "delete"]),
            st.ip_addresses(v=4).map(str) | st.ip_addresses(v=6).map(str),
            st.sampled_from(["", "/32", "/24", "/128", "/64"]),
            st.sampled_from([254, 10001]),
            st.integers(1, 2),
        ),
        max_size=8,
    )
)
@settings(max_examples=150, deadline=None)
def test_route_messages_equal_route_message_for_any_route(
    routes: list[tuple[str, str, str, int, int]],
) -> None:
    ops: list[tuple[str, KernelRoute | KernelRule]] = []
    for action, address, wanted_suffix, table, hops in routes:
        six = ":" in address
        fits = wanted_suffix in (("", "/128", "/64") if six else ("", "/32", "/24"))
        suffix = wanted_suffix if fits else ""
        gateway = "fd00::9" if ":" in address else "198.19.0.9"
        next_hops = ((gateway, 1),) if hops == 1 else ((gateway, 3), (gateway.replace("9", "8"), 5))
        ops.append((action, KernelRoute("r1", table, f"{address}{suffix}", 202, next_hops)))
    messages, _ = netlink.route_messages(ops)
    assert messages == [
        netlink.route_message(a, o.destination, o.next_hops, o.protocol, o.table)
        for a, o in ops
        if isinstance(o, KernelRoute)
    ]


def _u32_message_reference(ifindex: int, minor: int, priority: int, src: str, dst: str) -> bytes:
    """A u32 filter message built attribute by attribute (``tc``'s keys: the version nibble, then every
    address word)."""
    six = ":" in src
    family = socket.AF_INET6 if six else socket.AF_INET
    keys = [(0xF0000000, (6 if six else 4) << 28, 0)]
    for base, address in ((8 if six else 12, src), (24 if six else 16, dst)):
        packed = socket.inet_pton(family, address.partition("/")[0])
        keys += [
            (0xFFFFFFFF, int.from_bytes(packed[i : i + 4], "big"), base + i) for i in range(0, len(packed), 4)
        ]
    selector = struct.pack("=BBBxHHhhI", 1, 0, len(keys), 0, 0, 0, 0, 0) + b"".join(
        struct.pack("!II", mask, value) + struct.pack("=ii", at, 0) for mask, value, at in keys
    )

    def nla(kind: int, payload: bytes) -> bytes:
        return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)

    options = nla(1, struct.pack("=I", 0x10000 | minor)) + nla(5, selector)
    info = (priority << 16) | socket.htons(3)
    header = struct.pack("=BxxxiIII", 0, ifindex, (0x800 << 20) | minor, 0x10000, info)
    return header + nla(1, b"u32\0") + nla(2, options)


@given(
    st.integers(1, 1 << 20),
    st.integers(1, 0xFFF),
    st.integers(1, 0xFFFF),
    st.ip_addresses(v=4).map(str) | st.ip_addresses(v=6).map(str),
    st.data(),
)
@settings(max_examples=100, deadline=None)
def test_u32_filter_message_is_the_attribute_by_attribute_encoding(
    ifindex: int, minor: int, priority: int, src: str, data: st.DataObject
) -> None:
    dst = data.draw(st.ip_addresses(v=6 if ":" in src else 4).map(str))
    bits = 128 if ":" in src else 32
    kind, flags, payload = u32_filter_message(ifindex, minor, priority, f"{src}/{bits}", f"{dst}/{bits}")
    assert (kind, flags) == (netlink.RTM_NEWTFILTER_MSG, netlink.NLM_F_CREATE)
    assert payload == _u32_message_reference(ifindex, minor, priority, src, dst)


@pytest.mark.root
def test_tc_rows_decode_as_the_message_objects() -> None:
    """HTB classes and u32 filters read as plain rows (and IPv4 filters by their three match words)
    equal what the message objects and the general filter decoder give."""
    addresses = ["address add 198.18.0.1/29 dev h13ln0", "address add fd00::1/64 dev h13ln0 nodad"]
    with veth_namespace("lean", "h13ln0", "h13ln1", addresses) as session:
        ifindex = session.netlink.links()["h13ln0"]
        pairs = [
            ("198.18.0.1/32", "198.18.0.2/32"),
            ("fd00::1/128", "fd00::2/128"),
            ("198.18.0.3/32", "198.18.0.4/32"),
        ]
        messages = []
        for minor, (src, dst) in enumerate(pairs, start=0x20):
            rate = 12_500 * minor
            messages.append(
                htb_class_message(
                    ifindex, minor, rate, 125_000_000, parent_minor=1, quantum=tc_render.quantum(rate)
                )
            )
            messages.append(u32_filter_message(ifindex, minor, tc_render.FILTER_PRIORITY, src, dst))
        assert session.netlink.bulk(messages) == []
        classes = readback._classes(session, "n", "h13ln0", ifindex)
        expected_classes = [
            KernelClass("n", "h13ln0", c.handle & 0xFFFF, c.rate_bytes_s, c.ceil_bytes_s)
            for c in session.netlink.classes(ifindex)
            if c.kind == "htb" and c.handle >> 16 == 1 and c.handle & 0xFFFF != tc_render.ROOT_MINOR
        ]
        assert classes == expected_classes
        assert {c.minor for c in classes} == {0x20, 0x21, 0x22}
        filters = readback._filters(session, "n", "h13ln0", ifindex)
        expected_filters = [
            readback._u32_filter("n", "h13ln0", f.handle & 0xFFF, dict(f.keys))
            for f in session.netlink.u32_filters(ifindex, 0x10000)
        ]
        assert filters == expected_filters
        assert {(f.family, f.src, f.dst) for f in filters} == {
            (4, "198.18.0.1/32", "198.18.0.2/32"),
            (6, "fd00::1/128", "fd00::2/128"),
            (4, "198.18.0.3/32", "198.18.0.4/32"),
        }


@pytest.mark.root
def test_filters_matched_by_written_selectors_are_those_the_kernel_holds() -> None:
    """u32 filters read back against the selectors written: the ones the kernel holds as written are
    the written objects themselves (the first found by a full decoding, the rest by its layout); one the
    kernel holds with another selector, and one pointing at another class, are read as they are."""
    addresses = ["address add 198.18.0.1/29 dev h13ln0", "address add fd00::1/64 dev h13ln0 nodad"]
    with veth_namespace("lean", "h13ln0", "h13ln1", addresses) as session:
        ifindex = session.netlink.links()["h13ln0"]
        v4 = [(f"198.18.1.{i}/32", f"198.18.2.{i}/32") for i in range(1, 7)]
        pairs = [*v4, ("fd00::1/128", "fd00::2/128"), ("fd00::3/128", "fd00::4/128")]
        filters = [
            KernelFilter("n", "h13ln0", minor, 6 if ":" in src else 4, src, dst)
            for minor, (src, dst) in enumerate(pairs, start=0x20)
        ]
        messages = []
        for f in filters:
            rate = 12_500 * f.minor
            quantum = tc_render.quantum(rate)
            messages.append(htb_class_message(ifindex, f.minor, rate, rate, parent_minor=1, quantum=quantum))
            messages.append(u32_filter_message(ifindex, f.minor, tc_render.FILTER_PRIORITY, f.src, f.dst))
        assert session.netlink.bulk(messages) == []
        # the kernel's filter 0x23 matches another source than written (a u32 replace keeps a filter's
        # keys: deleted and added again), 0x24 classifies into 1:25
        moved = filters[3]._replace(src="198.18.9.9/32")
        tools.tc_batch(
            session.netns,
            [
                tc_render.filter_line(moved, "delete"),
                tc_render.filter_line(moved, "replace"),
                tc_render.filter_line(filters[4], "replace").replace("flowid 1:24", "flowid 1:25"),
            ],
        )
        ops = [("replace", f) for f in filters]
        written = tc_messages([], ops, {"h13ln0": ifindex}, ("tc",))[1]["h13ln0"]
        read = readback._filters(session, "n", "h13ln0", ifindex, written)
        decoded = readback._filters(session, "n", "h13ln0", ifindex)
        assert read == decoded
        assert moved in read
        assert filters[3] not in read
        assert all(f.minor != 0x24 for f in read)  # not one of ours any more: not read as ours
        taken = [f for f in read if any(f is w for w in filters)]
        assert {f.minor for f in taken} == {0x20, 0x21, 0x22, 0x25, 0x26, 0x27}


@pytest.mark.root
def test_a_tc_object_on_a_missing_device_is_refused_before_anything_is_sent(backend: LinuxBackend) -> None:
    """The step names the object on a device the namespace lacks, and writes none of the others."""
    device = backend.layout.port("h1", "r1").ifname
    good = [
        KernelClass("h1", device, 0x30, 12_500, 125_000),
        KernelFilter("h1", device, 0x30, 4, "198.18.0.1/32", "198.18.0.2/32"),
    ]
    bad = KernelFilter("h1", "nodev", 0x31, 4, "198.18.0.1/32", "198.18.0.3/32")
    step = Step("h1", backend.layout.namespace("h1"), "tc")
    step.tc_ops = [("replace", o) for o in [*good, bad]]
    step.owners = [o.ident for _, o in step.tc_ops]
    with pytest.raises(StepError) as failure:
        execute([step], sessions=backend.sessions)
    assert failure.value.ident == bad.ident
    assert "no device nodev" in failure.value.reason
    held = backend.kernel_objects()
    assert not any(o.ident in held for o in good)


@pytest.mark.root
def test_a_filter_held_with_other_keys_is_deleted_and_written_again(backend: LinuxBackend) -> None:
    """A u32 replace keeps the filter's keys (only its class and actions change), so converging to a
    filter that the kernel holds with other keys deletes it and adds it again."""
    backend.apply(Plan.between(NetworkConfig(), scaffold()))
    held = backend.kernel_objects()
    wanted = next(o for o in held.values() if isinstance(o, KernelFilter))
    other = wanted._replace(src="198.18.9.9/32")
    lines = [tc_render.filter_line(wanted, "delete"), tc_render.filter_line(other, "replace")]
    tools.tc_batch(backend.layout.namespace(wanted.node), lines)
    assert backend.kernel_objects()[wanted.ident] == other
    assert converge(backend.layout, held, backend.sessions) == 2  # deleted, then written
    assert backend.kernel_objects() == held


@pytest.mark.parametrize("timeout_ms", [None, 30_000])
@pytest.mark.parametrize("comment", ["", '["r","r1","198.18.0.2/32",[["r2",1.0]],"s",null]'])
def test_an_item_record_read_from_a_dump_has_its_written_signature(
    comment: str, timeout_ms: int | None
) -> None:
    key = struct.pack("=III", 0xDEADBEEF, 7, 0)
    attributes, signature = netlink.record_add(key, comment, timeout_ms)
    dumped = _as_dumped(attributes, None if timeout_ms is None else timeout_ms - 5)
    assert dumped.startswith(netlink._RECORD_KEY_DUMPED + key)  # the shortcut's case
    assert netlink._signature_at(dumped, 0, len(dumped)) == signature
    other = netlink.record_add(key, comment + "x", timeout_ms)[1]
    assert netlink._signature_at(dumped, 0, len(dumped)) != other


def test_two_items_needing_one_kernel_object_differently_are_refused() -> None:
    layout = _layout()
    one = Route("r1", "198.18.0.9", (NextHop("r2"),))
    same_route = Route("r1", "198.18.0.9/32", (NextHop("r2"),))  # another item key, the same route
    other_route = Route("r1", "198.18.0.9/32", (NextHop("fw"),))
    objects, owner = render_config(NetworkConfig.of([one, same_route]), layout, Allocation(), 0.0)
    route_ident = ("route", "r1", "254", "198.18.0.9/32")
    assert objects[route_ident] == kernel_route(same_route, layout.gateways("r1", 4))
    assert owner[route_ident] in (one, same_route)
    with pytest.raises(PlanError, match=r"needs the same kernel object as route 198\.18\.0\.9"):
        render_config(NetworkConfig.of([one, other_route]), layout, Allocation(), 0.0)
