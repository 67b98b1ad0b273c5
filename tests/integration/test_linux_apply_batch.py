"""The apply's fourth-round paths (per-batch work done once, H14), each against the general form it
replaces: routes rendered with their next hops worked out once per device and set of next hops and
built as the named tuples they are; item records encoded inline; route messages with their head and
next hops per shape; the record signature read from a dump without the attribute loop; the diff of a
first apply; a route read back by the bytes seen for its shape (pure). A route the kernel holds
otherwise than written is still decoded after another route of the same shape matched (root)."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.backends.linux import netlink
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.converge import diff
from netscaffold.backends.linux.readback import encoded_elements, read_node
from netscaffold.errors import NetscaffoldError
from netscaffold.formats.render import desired, nftables, records
from netscaffold.formats.render.desired import Allocation, render_config, render_item
from netscaffold.formats.render.iproute2 import kernel_route
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.objects import KernelElement, KernelObject, KernelRoute, fields_of
from netscaffold.model import NetworkConfig, NextHop, Origin, Plan, Route

from .test_linux_common import small_lab, small_topology

# -- rendering -----------------------------------------------------------------------------------


def _layout() -> LabLayout:
    return LabLayout.of("batch", small_topology())


def _reference(route: Route, layout: LabLayout, now_s: float) -> list[KernelObject]:
    """A route's objects through the general renderers (each object built by its constructor)."""
    timeout = nftables.timeout_for(route.expires_at, now_s)
    gateways = layout.gateways(route.device, 6 if ":" in route.destination else 4)
    return [kernel_route(route, gateways), *records.record_elements(route, timeout)]


_WEIGHTS = st.sampled_from([1.0, 1, True])  # equal as numbers, written otherwise in a record
_DESTINATIONS = st.sampled_from(
    ["198.18.0.9", "198.18.0.9/32", "10.1.2.3/8", "10.1.2.3/32", "fd00::9/128", "fd00:0::9", "10.0.0.0/8"]
)


@st.composite
def _routes(draw: st.DrawFn) -> Route:
    device = draw(st.sampled_from(["h1", "r1", "r2", "fw"]))
    peers = sorted(_layout().gateways(device, 4))
    destination = draw(_DESTINATIONS)
    origin = draw(st.sampled_from(list(Origin)))
    expires = draw(st.sampled_from([12.5, 30, 1e6]))
    if origin is not Origin.PREDICTED and draw(st.booleans()):
        expires = None
    if len(peers) > 1 and draw(st.booleans()):
        a, b = draw(st.permutations(peers))[:2]
        share = draw(st.sampled_from([0.5, 0.25, 1 / 3]))
        hops = (NextHop(a, share), NextHop(b, 1 - share))
    else:
        hops = (NextHop(draw(st.sampled_from(peers)), draw(_WEIGHTS)),)
    return Route(device, destination, hops, origin, expires)


def _idents_derived(objects: list[KernelObject]) -> bool:
    """Each object equals (ident included) what its constructor derives from its fields."""
    return all(type(obj)(**fields_of(obj)) == obj for obj in objects)


@given(routes=st.lists(_routes(), min_size=1, max_size=12))
@settings(max_examples=200, deadline=None)
def test_routes_rendered_with_shared_shapes_equal_the_general_renderers(routes: list[Route]) -> None:
    layout = _layout()
    desired._MEMO.clear()
    shapes: dict[tuple[object, ...], desired._Shape] = {}  # shared by every route, as in render_config
    for route in routes:
        rendered = render_item(route, layout, Allocation(), 0.0, shapes)
        assert rendered == _reference(route, layout, 0.0)
        assert [o.ident for o in rendered] == [o.ident for o in _reference(route, layout, 0.0)]
        assert _idents_derived(rendered)
        assert [type(o) for o in rendered][:1] == [KernelRoute]


def test_a_weight_written_otherwise_is_not_taken_from_another_routes_shape() -> None:
    layout = _layout()
    as_float = Route("r1", "198.18.0.9/32", (NextHop("r2", 1.0),))
    as_int = Route("r1", "198.18.0.10/32", (NextHop("r2", 1),))
    desired._MEMO.clear()
    objects, _ = render_config(NetworkConfig.of([as_float, as_int]), layout, Allocation(), 0.0)
    texts = {o.comment for o in objects.values() if isinstance(o, KernelElement)}
    assert '["r","r1","198.18.0.9/32",[["r2",1.0]],"s",null]' in texts
    assert '["r","r1","198.18.0.10/32",[["r2",1]],"s",null]' in texts


def _checked_reference(route: Route, layout: LabLayout) -> list[KernelObject]:
    layout.namespace(route.device)  # the node first, as the renderers refuse
    return _reference(route, layout, 0.0)


@pytest.mark.parametrize(
    "route",
    [
        Route("nowhere", "198.18.0.9/32", (NextHop("r2"),)),
        Route("r1", "198.18.0.9/32", (NextHop("h2"),)),
        Route("r1", "198.18.0.9/32", (NextHop("r2", 0.5), NextHop("h2", 0.5))),
    ],
)
def test_a_route_the_lab_cannot_hold_is_refused_as_before(route: Route) -> None:
    layout = _layout()
    desired._MEMO.clear()
    with pytest.raises(NetscaffoldError) as expected:
        _checked_reference(route, layout)
    ok = Route("r1", "198.18.0.8/32", (NextHop("r2"),))  # rendered first, its shape fine
    with pytest.raises(type(expected.value), match=re.escape(str(expected.value))):
        render_config(NetworkConfig.of([ok, route]), layout, Allocation(), 0.0)


# -- encoding ------------------------------------------------------------------------------------


@given(
    records_=st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.text(max_size=110),
            st.none() | st.integers(1, 10**6),
            st.sampled_from(["add", "delete"]),
        ),
        max_size=8,
    )
)
@settings(max_examples=200, deadline=None)
def test_records_encoded_inline_equal_the_general_encoding(
    records_: list[tuple[int, str, int | None, str]],
) -> None:
    ops = [
        (action, KernelElement("r1", records.SET_NAME, (high, index, 0), None, comment, timeout))
        for index, (high, comment, timeout, action) in enumerate(records_)
    ]
    writes, written = encoded_elements(ops)
    expected_signatures: dict[bytes, KernelElement] = {}
    for (action, element), (write_action, set_name, attributes) in zip(ops, writes, strict=True):
        key = struct.pack("=III", *element.key)
        timeout_ms = None if element.timeout_s is None else element.timeout_s * 1000
        assert (write_action, set_name) == (action, records.SET_NAME)
        assert attributes == netlink.record_attrs(action, key, element.comment, timeout_ms)
        if action == "add" and "\0" not in element.comment:
            expected_signatures[netlink.record_add(key, element.comment, timeout_ms)[1]] = element
    assert written.get(records.SET_NAME, {}) == expected_signatures


def test_route_messages_per_shape_equal_the_single_messages() -> None:
    shared = (("198.19.0.3", 85), ("198.19.0.5", 256))
    twin = (("198.19.0.3", 85), ("198.19.0.5", 256))  # equal, another object
    routes = [
        KernelRoute("r1", 254, f"198.18.0.{i}/32", 202 if i % 3 else 201, shared if i % 2 else twin)
        for i in range(1, 9)
    ]
    routes.append(KernelRoute("r1", 10001, "198.18.1.1/32", 202, shared))
    ops = [("replace", route) for route in routes]
    messages, written = netlink.route_messages(ops)  # type: ignore[arg-type]
    assert messages == [
        netlink.route_message("replace", r.destination, r.next_hops, r.protocol, r.table) for r in routes
    ]
    for route in routes:
        address = bytes(int(part) for part in route.destination.split("/")[0].split("."))
        assert written[address] == ((route.table, route.protocol, 32, route.next_hops), route)


def _dumped_elements(elements: list[bytes]) -> bytes:
    """A NEWSETELEM dump message's payload holding ``elements`` (each its attributes as dumped)."""
    nested = b"".join(netlink._nla(netlink.NFTA_LIST_ELEM, body) for body in elements)
    return bytes(4) + netlink._nla(netlink.NFTA_SET_ELEM_LIST_ELEMENTS, nested)


class _Dump(netlink.NftReader):
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def dump_spans(self, msg_type: int, payload: bytes) -> list[tuple[int, bytes, int, int]]:
        return [(0, self.payload, 0, len(self.payload))]


def _as_dumped(attributes: bytes, pad_last: bool) -> bytes:
    """The attributes as the kernel dumps them: nests without the NESTED flag (and, with ``pad_last``,
    the last attribute's padding inside the element)."""
    out, pos = b"", 0
    while pos + 4 <= len(attributes):
        length, kind = struct.unpack_from("=HH", attributes, pos)
        out += struct.pack("=HH", length, kind & 0x3FFF) + attributes[pos + 4 : pos + length]
        pad = -length & 3
        if pad_last or pos + ((length + 3) & ~3) < len(attributes):
            out += bytes(pad)
        pos += (length + 3) & ~3
    return out


@given(
    comments=st.lists(st.text(min_size=1, max_size=100).filter(lambda c: "\0" not in c), max_size=6),
    timeout=st.booleans(),
    pad_last=st.booleans(),
    claimed=st.sets(st.integers(0, 5)),
)
@settings(max_examples=200, deadline=None)
def test_record_signatures_read_inline_equal_the_attribute_loop(
    comments: list[str], timeout: bool, pad_last: bool, claimed: set[int]
) -> None:
    bodies, known = [], {}
    for index, comment in enumerate(comments):
        key = struct.pack("=III", 7, index, 0)
        attributes, signature = netlink.record_add(key, comment, 30_000 if timeout else None)
        body = _as_dumped(attributes, pad_last)
        bodies.append(body)
        assert netlink._signature_at(body, 0, len(body)) == signature
        if index in claimed:
            known[signature if index % 2 else signature + b"?"] = index  # odd: the kernel holds it
    found, rows = _Dump(_dumped_elements(bodies)).known_elements("t", "items", known)
    assert found == [i for i in range(len(comments)) if i in claimed and i % 2]
    assert len(rows) == len(comments) - len(found)


def test_the_diff_of_a_first_apply_puts_what_is_not_held_as_it_is() -> None:
    layout = _layout()
    routes = [Route("r1", f"198.18.0.{i}/32", (NextHop("r2"),)) for i in range(1, 30)]
    target, _ = render_config(NetworkConfig.of(routes), layout, Allocation(), 0.0)
    values = list(target.values())
    classes = {o.ident: o for o in values if not isinstance(o, KernelRoute | KernelElement)}
    assert classes  # the lab's default classes: held before any plan
    assert diff(classes, target) == ([], [o for o in values if o.ident not in classes])
    stray = KernelRoute("r1", 254, "198.18.9.9/32", 202, (("198.19.0.3", 1),))
    held = {**classes, values[0].ident: values[0], stray.ident: stray}
    assert diff(held, target) == ([stray], [o for o in values if o.ident not in held])
    changed = values[1]._replace(comment="x") if isinstance(values[1], KernelElement) else None
    assert changed is not None
    held = {**classes, changed.ident: changed}
    remove, put = diff(held, target)
    assert remove == [changed]
    assert put == [o for o in values if o.ident not in classes]


# -- against the kernel --------------------------------------------------------------------------


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("lb") as be:
        yield be


@pytest.mark.root
def test_a_route_held_otherwise_is_decoded_after_one_of_its_shape_matched(backend: LinuxBackend) -> None:
    """The read-back takes a route by the bytes seen for its written shape; a later route claimed with
    that shape whose bytes differ (the kernel holds other next hops) is decoded, so the verification
    sees it."""
    hops = (NextHop("r2", 0.25), NextHop("fw", 0.75))
    routes = [Route("r1", f"198.18.7.{i}/32", hops) for i in range(1, 6)]
    backend.apply(Plan.between(NetworkConfig(), NetworkConfig.of(routes)))
    r1 = backend.sessions.get(backend.layout.namespace("r1"))
    held = sorted(
        (o for o in read_node("r1", r1, [], sets=()) if isinstance(o, KernelRoute) and o.table == 254),
        key=lambda o: o.destination,
    )
    assert len(held) == 5
    shared = held[0].next_hops
    claimed = [KernelRoute(o.node, o.table, o.destination, o.protocol, shared) for o in held]
    assert len(shared) == 2
    # the kernel now holds the fourth with other weights: a message of the same length, other bytes
    other_weights = tuple((gateway, 256) for gateway, _ in shared)
    assert other_weights != shared
    tampered = claimed[3]
    message = netlink.route_message("replace", tampered.destination, other_weights, tampered.protocol, 254)
    assert not r1.netlink.bulk([message])
    _, written = netlink.route_messages([("replace", route) for route in claimed])
    read = [o for o in read_node("r1", r1, [], sets=(), written_routes=written) if o.table == 254]
    by_destination = {o.destination: o for o in read}
    for index, route in enumerate(claimed):
        if index == 3:
            assert by_destination[route.destination] != route  # decoded: the weights it holds
            assert sorted(by_destination[route.destination].next_hops) == sorted(other_weights)
        else:
            assert by_destination[route.destination] is route  # taken from what was written
