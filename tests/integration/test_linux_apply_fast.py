"""The apply's second-round fast paths: a bulk of netlink messages asks for one acknowledgement per
``send`` and still reports every refused message, in chunks of any size (root); IPv4 routes decoded by
their shape equal the full decoder's, for single, weighted and other-table routes (root); HTB classes and
u32 filters decoded without their statistics equal the full decoding (root); the renderers' shortcuts
(IPv4 host prefixes, single next hops, memoised weighted next hops) equal the general forms (pure)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.backends.linux import netlink, readback
from netscaffold.backends.linux.netlink import htb_class_message, route_message, u32_filter_message
from netscaffold.backends.linux.readback import _OUR_PROTOCOLS
from netscaffold.backends.linux.session import NamespaceSession
from netscaffold.errors import BackendError, PlanError
from netscaffold.formats.render import tc as tc_render
from netscaffold.formats.render.iproute2 import kernel_route
from netscaffold.formats.render.objects import (
    MAIN_TABLE,
    ROUTE_PROTOCOLS,
    KernelRoute,
    canonical_prefix,
    quantize_weights,
)
from netscaffold.model import NextHop, Route
from netscaffold.model.config import Origin

from .test_linux_common import veth_namespace

_DEVICE, _PEER = "h11fa0", "h11fa1"
_GATEWAYS = ("198.18.0.2", "198.18.0.3")
_UNREACHABLE = "198.19.250.1"


@pytest.fixture
def route_namespace() -> Iterator[NamespaceSession]:
    """A namespace with a veth pair up, 198.18.0.1/29 and fd00::1/64 on one end, HTB root on it."""
    addresses = [f"address add 198.18.0.1/29 dev {_DEVICE}", f"address add fd00::1/64 dev {_DEVICE} nodad"]
    with veth_namespace("fast", _DEVICE, _PEER, addresses) as session:
        yield session


def _route(index: int, gateway: str, protocol: int = 202) -> tuple[int, int, bytes]:
    destination = f"{ipaddress.IPv4Address('198.18.64.0') + index}/32"
    return route_message("replace", destination, ((gateway, 1),), protocol, MAIN_TABLE)


@pytest.mark.root
@pytest.mark.parametrize("per_chunk", [1, 10, 0])
def test_bulk_reports_every_refusal_with_one_acknowledgement_per_send(
    route_namespace: NamespaceSession, monkeypatch: pytest.MonkeyPatch, per_chunk: int
) -> None:
    """Refusals at the first and last message of chunks, and at the very last message (whose answer
    ends the wait), are all reported; every other message is written. ``per_chunk`` 0: the default."""
    count = 205
    refused = {0, 9, 10, 19, 55, 99, 100, count - 1}
    messages = [_route(i, _UNREACHABLE if i in refused else _GATEWAYS[i % 2]) for i in range(count)]
    if per_chunk:
        size = netlink._HDR.size + len(messages[0][2])
        assert all(len(payload) == len(messages[0][2]) for _, _, payload in messages)
        monkeypatch.setattr(netlink, "BULK_CHUNK_BYTES", per_chunk * size)
    failures = route_namespace.netlink.bulk(messages)
    assert [index for index, _ in failures] == sorted(refused)
    assert {errno for _, errno in failures} == {101}  # ENETUNREACH
    written = route_namespace.netlink.kernel_routes("n", _OUR_PROTOCOLS)
    assert len(written) == count - len(refused)
    assert route_namespace.netlink.bulk([_route(0, _GATEWAYS[0])]) == []  # the socket is in step


@pytest.mark.root
def test_routes_decoded_by_shape_equal_the_full_decoder(route_namespace: NamespaceSession) -> None:
    session = route_namespace
    hops = ((_GATEWAYS[0], 64), (_GATEWAYS[1], 192))
    messages = [
        route_message("replace", "198.18.64.0/32", ((_GATEWAYS[0], 1),), 201, MAIN_TABLE),
        route_message("replace", "198.18.64.1/32", hops, 202, MAIN_TABLE),
        route_message("replace", "198.18.65.0/24", hops, 203, MAIN_TABLE),
        route_message("replace", "198.18.64.2/32", ((_GATEWAYS[1], 1),), 202, 1234),
        route_message("replace", "198.18.66.0/24", ((_GATEWAYS[1], 1),), 202, 70000),
        route_message("replace", "fd00:1::/64", (("fd00::2", 1),), 202, MAIN_TABLE),
        route_message("replace", "198.18.64.3/32", ((_GATEWAYS[0], 1),), 99, MAIN_TABLE),  # not ours
    ]
    messages += [_route(10 + i, _GATEWAYS[i % 2]) for i in range(50)]
    assert session.netlink.bulk(messages) == []
    fast = session.netlink.kernel_routes("n", _OUR_PROTOCOLS)
    full = [
        KernelRoute("n", m.table, f"{m.dst}/{m.dst_len}", m.protocol, m.next_hops)
        for m in session.netlink.routes(_OUR_PROTOCOLS)
    ]
    assert sorted(fast, key=repr) == sorted(full, key=repr)
    by_destination = {route.destination: route for route in fast}
    assert by_destination["198.18.64.1/32"].next_hops == hops
    assert by_destination["198.18.65.0/24"].protocol == 203
    assert by_destination["198.18.64.2/32"].table == 1234
    assert by_destination["198.18.66.0/24"].table == 70000
    assert "fd00:1::/64" in by_destination
    assert "198.18.64.3/32" not in by_destination
    assert len(fast) == 6 + 50


@pytest.mark.root
def test_tc_decoding_without_statistics_equals_the_full_decoding(route_namespace: NamespaceSession) -> None:
    session = route_namespace
    ifindex = session.netlink.links()[_DEVICE]
    messages = []
    for minor, (rate, src, dst) in enumerate(
        [(12_500, "198.18.0.1/32", "198.18.0.2/32"), (6_000_000_000, "fd00::1/128", "fd00::2/128")],
        start=0x20,
    ):
        quantum = tc_render.quantum(rate)
        messages.append(
            htb_class_message(ifindex, minor, rate, 6_000_000_000, parent_minor=1, quantum=quantum)
        )
        messages.append(u32_filter_message(ifindex, minor, tc_render.FILTER_PRIORITY, src, dst))
    assert session.netlink.bulk(messages) == []
    lean = session.netlink.classes(ifindex, counters=False)
    full = session.netlink.classes(ifindex)
    assert [(c.handle, c.kind, c.rate_bytes_s, c.ceil_bytes_s) for c in lean] == [
        (c.handle, c.kind, c.rate_bytes_s, c.ceil_bytes_s) for c in full
    ]
    rates = {c.handle & 0xFFFF: (c.rate_bytes_s, c.ceil_bytes_s) for c in lean}
    assert rates[0x20] == (12_500, 6_000_000_000)
    assert rates[0x21] == (6_000_000_000, 6_000_000_000)
    filters = {f.classid & 0xFFFF: f for f in session.netlink.u32_filters(ifindex, 0x10000)}
    words = dict(filters[0x20].keys)
    assert words[12] == int.from_bytes(socket.inet_aton("198.18.0.1"), "big")
    assert words[16] == int.from_bytes(socket.inet_aton("198.18.0.2"), "big")
    assert len(filters[0x21].keys) > len(filters[0x20].keys)  # IPv6: four words an address


# -- pure: the renderers' shortcuts -----------------------------------------------------------------


def _reference_prefix(prefix: str) -> str:
    return str(ipaddress.ip_network(prefix, strict=False))


@settings(max_examples=300, deadline=None)
@given(
    address=st.ip_addresses(v=4),
    suffix=st.sampled_from(["", "/32", "/032", "/31", "/24", "/0"]),
)
def test_ipv4_prefix_shortcut_equals_ipaddress(address: ipaddress.IPv4Address, suffix: str) -> None:
    prefix = f"{address}{suffix}"
    assert canonical_prefix(prefix) == _reference_prefix(prefix)


@pytest.mark.parametrize("prefix", ["01.2.3.4", "1.2.3", "1.2.3.4/33", "256.1.1.1/32", "1.2.3.4 "])
def test_ipv4_prefix_shortcut_refuses_what_ipaddress_refuses(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        _reference_prefix(prefix)
    with pytest.raises(ValueError, match=r"."):
        canonical_prefix(prefix)


def _reference_route(route: Route, gateways: dict[str, str]) -> KernelRoute:
    """The general form (before the shortcuts): every hop through quantize_weights, then sorted."""
    weights = quantize_weights([hop.weight for hop in route.next_hops])
    if len(route.next_hops) == 1:
        weights = (1,)
    hops = tuple(sorted((gateways[hop.via], w) for hop, w in zip(route.next_hops, weights, strict=True)))
    return KernelRoute(
        route.device, MAIN_TABLE, _reference_prefix(route.destination), ROUTE_PROTOCOLS[route.origin], hops
    )


_NODE_GATEWAYS = {"a": "198.18.0.2", "b": "198.18.0.3", "c": "198.18.0.4", "d": "198.18.0.5"}


@settings(max_examples=300, deadline=None)
@given(
    vias=st.lists(st.sampled_from(sorted(_NODE_GATEWAYS)), min_size=1, max_size=4, unique=True),
    raw_weights=st.lists(st.integers(1, 1000), min_size=4, max_size=4),
    host=st.integers(0, 2**16 - 1),
    origin=st.sampled_from(list(Origin)),
)
def test_kernel_route_shortcuts_equal_the_general_form(
    vias: list[str], raw_weights: list[int], host: int, origin: Origin
) -> None:
    total = sum(raw_weights[: len(vias)])
    hops = tuple(NextHop(via, weight / total) for via, weight in zip(vias, raw_weights, strict=False))
    if len(hops) > 1:
        hops = (*hops[:-1], NextHop(hops[-1].via, 1.0 - sum(hop.weight for hop in hops[:-1])))
    else:
        hops = (NextHop(vias[0]),)
    expires_at = 100.0 if origin is Origin.PREDICTED else None
    destination = f"{ipaddress.IPv4Address('198.18.0.0') + host}"
    route = Route("n", destination, hops, origin=origin, expires_at=expires_at)
    assert kernel_route(route, _NODE_GATEWAYS) == _reference_route(route, _NODE_GATEWAYS)


def test_kernel_route_names_a_next_hop_without_a_link() -> None:
    for hops in ((NextHop("x"),), (NextHop("a", 0.5), NextHop("x", 0.5))):
        with pytest.raises(PlanError, match="'x'"):
            kernel_route(Route("n", "198.18.0.9/32", hops), _NODE_GATEWAYS)


@settings(max_examples=300, deadline=None)
@given(
    network=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).flatmap(
        lambda address: st.tuples(st.just(address), st.integers(0, address.max_prefixlen))
    ),
    form=st.sampled_from(["address", "prefix", "range"]),
)
def test_element_key_bytes_equal_what_ipaddress_makes(
    network: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int], form: str
) -> None:
    address, length = network
    kind = f"ip{address.version}"
    if form == "address":
        text, expected = str(address), (address.packed, address.packed)
    elif form == "prefix":
        reference = ipaddress.ip_network(f"{address}/{length}", strict=False)
        text = f"{address}/{length}"
        expected = (reference.network_address.packed, reference.broadcast_address.packed)
    else:
        last = address + (
            2**length - 1 if int(address) + 2**length - 1 <= 2**address.max_prefixlen - 1 else 0
        )
        text, expected = f"{address}-{last}", (address.packed, last.packed)
    assert readback._field_bytes.__wrapped__(kind, text) == expected


@pytest.mark.parametrize(
    ("kind", "text"), [("ip4", "1.2.3.4/33"), ("ip4", "fd00::1"), ("ip6", "1.2.3.4"), ("ip4", "01.2.3.4")]
)
def test_element_key_bytes_refuse_a_bad_address_by_name(kind: str, text: str) -> None:
    with pytest.raises(BackendError, match=f"cannot encode '{text}' as {kind}"):
        readback._field_bytes.__wrapped__(kind, text)


@settings(max_examples=200, deadline=None)
@given(
    key=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 9)),
    comment=st.text(max_size=100),
    timeout_ms=st.one_of(st.none(), st.integers(1, 10**9)),
    expires_ms=st.one_of(st.none(), st.integers(0, 10**9)),
    data=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    short=st.booleans(),
)
def test_record_rows_decode_as_the_general_element_decoder(
    key: tuple[int, int, int],
    comment: str,
    timeout_ms: int | None,
    expires_ms: int | None,
    data: int | None,
    short: bool,
) -> None:
    key_bytes = readback._MARKS.pack(*key)[: 8 if short else None]
    data_bytes = None if data is None else data.to_bytes(4, sys.byteorder)
    row = (key_bytes, None, data_bytes, comment, timeout_ms, expires_ms)
    fields = readback._RECORD_FIELDS
    assert list(readback._records("r1", "items", [row])) == [
        readback._element_of("r1", "items", fields, *row)
    ]
