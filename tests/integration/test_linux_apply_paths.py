"""The apply's fast paths: HTB classes and u32 filters written as netlink messages hold exactly what
``tc`` would have written, and a refused message is reported while the others are tried (root); the
read-back after an apply covers every object the apply wrote, element attributes packed in one go equal
the plain encoding, nft intervals equal what ``ipaddress`` makes of a prefix, and the garbage collector
pause restores the collector (pure); the apply reports where its time went (root)."""

from __future__ import annotations

import gc
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.backends.gc_pause import gc_paused
from netscaffold.backends.linux import netlink, tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.converge import plan_steps, written_scopes
from netscaffold.backends.linux.netlink import (
    _TCMSG,
    RTM_GETTCLASS,
    RTM_GETTFILTER,
    attrs,
    htb_class_message,
    u32_filter_message,
)
from netscaffold.backends.linux.session import NamespaceSession
from netscaffold.backends.protocol import ManualClock
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render import tc as tc_render
from netscaffold.formats.render.desired import Allocation, render_config
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.objects import KernelClass, KernelFilter
from netscaffold.model import NetworkConfig, Plan

from .test_linux_backend import scaffold
from .test_linux_common import skip_without_facilities, small_topology, unique_lab, veth_namespace

_DEVICE = "h10tc0"
_CASES = [
    # (rate bytes/s, ceil bytes/s, family, src, dst): slow, fast, above 4 GB/s (64-bit rates), IPv6
    (12_500, 125_000_000, 4, "198.18.0.1/32", "198.18.0.2/32"),
    (6_250_000, 1_250_000_000, 4, "198.18.3.4/32", "198.19.0.9/32"),
    (6_000_000_000, 6_000_000_000, 4, "198.18.0.1/32", "198.18.0.2/32"),
    (125_000, 125_000_000, 6, "fd00::1/128", "fd00:0:0:1::2/128"),
]


@pytest.fixture
def tc_namespace() -> Iterator[NamespaceSession]:
    with veth_namespace("tcnl", _DEVICE, "h10tc1") as session:
        yield session


def _dumped(session: NamespaceSession, msg_type: int, parent: int) -> dict[int, bytes]:
    """TCA_OPTIONS of every class (or filter) on the device, by handle minor."""
    ifindex = session.netlink.links()[_DEVICE]
    out = {}
    for _, buf, off in session.netlink.dump(msg_type, _TCMSG.pack(0, ifindex, 0, parent, 0)):
        handle = _TCMSG.unpack_from(buf, off)[2]
        options = attrs(buf, off + _TCMSG.size, len(buf)).get(2)
        if options is not None and handle & 0xFFFF:
            out[handle & 0xFFF] = bytes(options)
    return out


@pytest.mark.root
def test_netlink_tc_writes_match_what_tc_writes(tc_namespace: NamespaceSession) -> None:
    session = tc_namespace
    ifindex = session.netlink.links()[_DEVICE]
    messages = []
    for number, (rate, ceil, family, src, dst) in enumerate(_CASES):
        by_tc, by_us = 0x20 + number, 0x40 + number
        tools.tc_batch(
            session.netns,
            [
                tc_render.class_line(KernelClass("n", _DEVICE, by_tc, rate, ceil), "replace"),
                tc_render.filter_line(KernelFilter("n", _DEVICE, by_tc, family, src, dst), "replace"),
            ],
        )
        quantum = tc_render.quantum(rate)
        messages.append(htb_class_message(ifindex, by_us, rate, ceil, parent_minor=1, quantum=quantum))
        messages.append(u32_filter_message(ifindex, by_us, tc_render.FILTER_PRIORITY, src, dst))
    assert session.netlink.bulk(messages) == []
    classes = _dumped(session, RTM_GETTCLASS, 0)
    filters = _dumped(session, RTM_GETTFILTER, 0x10000)
    for number in range(len(_CASES)):
        by_tc, by_us = 0x20 + number, 0x40 + number
        assert classes[by_us] == classes[by_tc], f"HTB parameters of case {number}"
        classid = (0x10000 | by_tc).to_bytes(4, "little"), (0x10000 | by_us).to_bytes(4, "little")
        assert filters[by_us] == filters[by_tc].replace(*classid), f"u32 selector of case {number}"


@pytest.mark.root
def test_refused_tc_message_is_reported_and_others_are_tried(tc_namespace: NamespaceSession) -> None:
    session = tc_namespace
    ifindex = session.netlink.links()[_DEVICE]
    good = htb_class_message(ifindex, 0x30, 12_500, 125_000, parent_minor=1, quantum=1514)
    refused = htb_class_message(ifindex, 0x31, 0, 125_000, parent_minor=1, quantum=1514)  # no rate
    later = htb_class_message(ifindex, 0x32, 12_500, 125_000, parent_minor=1, quantum=1514)
    failures = session.netlink.bulk([good, refused, later])
    assert [index for index, _ in failures] == [1]
    written = set(_dumped(session, RTM_GETTCLASS, 0))
    assert {0x30, 0x32} <= written
    assert 0x31 not in written


def test_read_back_scope_covers_every_written_object() -> None:
    layout = LabLayout.of("scope", small_topology())
    target, _ = render_config(scaffold(), layout, Allocation(), 0.0)
    objects = list(target.values())
    for remove, put in ((objects, []), ([], objects), (objects[::2], objects[1::2])):
        steps = plan_steps(layout, remove, put)
        scopes = written_scopes(steps)
        for obj in [*remove, *put]:
            assert obj.node in scopes, obj
            assert scopes[obj.node].holds(obj), obj
    written = {obj.node for obj in objects}
    assert set(written_scopes(plan_steps(layout, [], objects))) == written
    assert written_scopes([]) == {}


@pytest.mark.root
def test_apply_reports_its_phases_and_reads_back_what_it_wrote() -> None:
    skip_without_facilities()
    with LinuxBackend(small_topology(), lab=unique_lab("ph"), clock=ManualClock()) as backend:
        config = scaffold()
        report = backend.apply(Plan.between(NetworkConfig(), config))
        phases = backend.last_phases_s
        assert {"read", "validate", "render", "write", "read_back", "verify", "realized"} <= set(phases)
        assert all(seconds >= 0 for seconds in phases.values())
        assert set(report.realized_at) == {item.key for item in config}
        assert backend.snapshot() == config
        assert not backend.residue()


def _reference_attrs(write: netlink.ElementWrite) -> bytes:
    """The element attributes spelled out one ``_nla`` at a time (what ``element_attrs`` packs faster)."""
    nested = netlink.NLA_F_NESTED

    def value(kind: int, data: bytes) -> bytes:
        return netlink._nla(kind | nested, netlink._nla(netlink.NFTA_DATA_VALUE, data))

    body = value(netlink.NFTA_SET_ELEM_KEY, write.key)
    if write.key_end is not None:
        body += value(netlink.NFTA_SET_ELEM_KEY_END, write.key_end)
    if write.action == "delete":
        return body
    if write.data is not None:
        body += value(netlink.NFTA_SET_ELEM_DATA, write.data)
    if write.timeout_ms is not None:
        body += netlink._nla(netlink.NFTA_SET_ELEM_TIMEOUT, write.timeout_ms.to_bytes(8, "big"))
    if write.comment:
        text = write.comment.encode() + b"\0"
        body += netlink._nla(netlink.NFTA_SET_ELEM_USERDATA, bytes((0, len(text))) + text)
    return body


@given(
    action=st.sampled_from(["add", "delete"]),
    key=st.binary(min_size=1, max_size=40),
    key_end=st.none() | st.binary(min_size=1, max_size=40),
    data=st.none() | st.binary(min_size=4, max_size=4),
    comment=st.text(max_size=100),
    timeout_ms=st.none() | st.integers(1, 2**40),
)
@settings(max_examples=200, deadline=None)
def test_element_attributes_match_the_plain_encoding(
    action: str,
    key: bytes,
    key_end: bytes | None,
    data: bytes | None,
    comment: str,
    timeout_ms: int | None,
) -> None:
    write = netlink.ElementWrite(action, "permit4", key, key_end, data, comment, timeout_ms)
    assert netlink.element_attrs(write) == _reference_attrs(write)


def test_gc_pause_restores_the_collector_as_it_was() -> None:
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            with gc_paused():
                assert not gc.isenabled()
            assert gc.isenabled() is enabled
        gc.enable()
        with pytest.raises(RuntimeError), gc_paused():
            raise RuntimeError("an apply that fails")
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


@given(
    network=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).flatmap(
        lambda address: st.tuples(st.just(address), st.integers(0, address.max_prefixlen), st.booleans())
    )
)
@settings(max_examples=300, deadline=None)
def test_nft_interval_is_what_ipaddress_makes_of_the_prefix(network: tuple[Any, int, bool]) -> None:
    address, length, bare = network
    prefix = str(address) if bare else f"{address}/{length}"
    reference = ipaddress.ip_network(prefix, strict=False)
    expected: str | dict[str, Any] = str(reference.network_address)
    if reference.prefixlen != reference.max_prefixlen:
        expected = {"prefix": {"addr": str(reference.network_address), "len": reference.prefixlen}}
    assert nft_render._interval(prefix, reference.version) == expected
    assert nft_render._version(prefix) == reference.version
