"""Renderers for ip, nft and tc: pure functions, checked without a kernel."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netscaffold.backends.linux import netlink
from netscaffold.backends.linux.netlink import ElementMsg
from netscaffold.backends.linux.readback import _element
from netscaffold.errors import PlanError
from netscaffold.formats.render import iproute2, nftables, records, tc
from netscaffold.formats.render.objects import KernelClass, KernelFilter, quantize_weights
from netscaffold.model import FirewallRule, FlowMatch, NextHop, Origin, Route


@given(st.lists(st.floats(min_value=1e-3, max_value=1.0), min_size=1, max_size=16))
def test_quantized_weights_keep_order_and_range(weights: list[float]) -> None:
    q = quantize_weights(weights)
    assert all(1 <= w <= 256 for w in q)
    assert max(q) == 256
    for (a, qa), (b, qb) in zip(
        zip(weights, q, strict=True), zip(weights[1:], q[1:], strict=True), strict=False
    ):
        if a < b:
            assert qa <= qb


def test_multipath_route_line_names_protocol_and_weights() -> None:
    route = Route("r1", "198.18.0.2", (NextHop("r2", 0.25), NextHop("fw", 0.75)), Origin.PREDICTED, 9.0)
    kr = iproute2.kernel_route(route, {"r2": "198.19.0.3", "fw": "198.19.0.5"})
    line = iproute2.route_line(kr, "replace")
    assert line == (
        "route replace 198.18.0.2/32 table 254 proto 202 "
        "nexthop via 198.19.0.3 weight 85 nexthop via 198.19.0.5 weight 256"
    )
    assert iproute2.route_line(kr, "delete") == "route delete 198.18.0.2/32 table 254"


def test_route_to_a_non_neighbour_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="no link"):
        iproute2.kernel_route(Route("r1", "198.18.0.2/32", (NextHop("x"),)), {})


def test_firewall_element_round_trips_through_the_kernel_key_bytes() -> None:
    rule = FirewallRule(
        "fw", FlowMatch("198.18.0.1", "198.18.0.0/24", "tcp", 80), origin=Origin.PREDICTED, expires_at=10.2
    )
    (element,) = nftables.firewall_elements(rule, now_s=0.0)
    assert element.timeout_s == 11  # nft takes whole seconds: rounded up
    # what the kernel dumps: low and high ends of each concatenated field, each padded to 4 bytes
    low = bytes([198, 18, 0, 1, 198, 18, 0, 0, 6, 0, 0, 0, 0, 80, 0, 0])
    high = bytes([198, 18, 0, 1, 198, 18, 0, 255, 6, 0, 0, 0, 0, 80, 0, 0])
    msg = ElementMsg(low, high, None, element.comment, 11_000, 9_500)
    fields = ("ip4", "ip4", "proto", "port")
    read = _element("fw", element.set_name, fields, msg)
    assert read.same_content(element)
    assert read.timeout_s == 10


def test_item_records_round_trip_and_reject_damage() -> None:
    route = Route("r1", "198.18.0.2/32", (NextHop("r2", 0.1), NextHop("fw", 0.9)), Origin.PREDICTED, 9.5)
    long_route = Route(
        "r1", "fd00::" + "1:2:3:4:5:6/128", tuple(NextHop(f"node{i}", 1 / 3) for i in range(3))
    )
    elements = records.record_elements(route, 10) + records.record_elements(long_route, None)
    assert len(elements) >= 3  # the long record needs more than one 100-character chunk
    assert records.items_from_elements(elements) == [route, long_route] or records.items_from_elements(
        elements
    ) == [long_route, route]
    damaged = [e for e in elements if e.key[2] != 1]  # drop a middle chunk of the long record
    assert records.items_from_elements(damaged) == [route]


def test_wildcard_rule_covers_both_families() -> None:
    elements = nftables.firewall_elements(FirewallRule("fw", FlowMatch(proto="icmp")), now_s=0.0)
    assert [e.set_name for e in elements] == ["permit4", "permit6"]
    assert [e.key[2] for e in elements] == [1, 58]


def test_mixed_family_rule_is_refused() -> None:
    with pytest.raises(PlanError, match="families"):
        nftables.firewall_elements(FirewallRule("fw", FlowMatch("198.18.0.1", "fd00::1")), now_s=0.0)


def test_table_commands_put_denies_before_permits() -> None:
    rules = [
        c["add"]["rule"] for c in nftables.table_commands(forward_policy="drop") if "rule" in c.get("add", {})
    ]
    forward = [r["expr"][-1] for r in rules if r["chain"] == "forward"]
    assert forward == [{"accept": None}, {"drop": None}, {"accept": None}, {"drop": None}, {"accept": None}]


def test_tc_lines_use_bit_rates_and_one_u32_table() -> None:
    kc = KernelClass("r1", "v1", 0x10, tc.bytes_per_s(50e6), tc.bytes_per_s(1e9))
    assert tc.class_line(kc, "replace").startswith(
        "class replace dev v1 parent 1:1 classid 1:10 htb rate 50000000bit ceil 1000000000bit"
    )
    kf = KernelFilter("r1", "v1", 0x10, 6, "fd00::1/128", "fd00::2/128")
    line = tc.filter_line(kf, "replace")
    assert "protocol all prio 10 handle 800::10 u32 match u8 0x60 0xf0 at 0" in line
    assert line.endswith("flowid 1:10")


def test_bulk_route_message_carries_weights_table_and_protocol() -> None:
    kind, flags, payload = netlink.route_message(
        "replace", "198.18.0.0/24", (("198.19.0.1", 85), ("198.19.0.3", 256)), 202, 10001
    )
    assert kind == netlink.RTM_NEWROUTE
    assert flags & netlink.NLM_F_REPLACE
    family, dst_len, _, _, _, protocol, _, _, _ = netlink._RTMSG.unpack_from(payload)
    assert (family, dst_len, protocol) == (2, 24, 202)
    a = netlink.attrs(payload, netlink._RTMSG.size, len(payload))
    assert bytes(a[netlink.RTA_DST]) == bytes([198, 18, 0, 0])
    assert int.from_bytes(bytes(a[netlink.RTA_TABLE]), "little") == 10001
    decoded = netlink.route_at(payload, 0)
    assert decoded is not None
    assert decoded.next_hops == (("198.19.0.1", 85), ("198.19.0.3", 256))
    delete_kind, _, _ = netlink.route_message("delete", "fd00::2/128", (), 202, 254)
    assert delete_kind == netlink.RTM_DELROUTE
