"""Per-flow conntrack events: the kernel's "a new connection started" announcements in lab namespaces,
as flow starts, and as :class:`FlowRequest` routing information for the engine and the refiner.

Every lab node tracks connections (the forward chain of our nft table matches on ``ct state``, which
turns conntrack on in that namespace), and the kernel announces each new entry on the
NFNLGRP_CONNTRACK_NEW group of ctnetlink once its first packet has passed. One NETLINK_NETFILTER socket
per watched namespace (hosts by default: a flow starts where its first packet is sent), receive buffer
:data:`CONNTRACK_RCVBUF_BYTES`. ``poll()`` reads what is queued without blocking. When the socket
overflowed (``ENOBUFS``: announcements were dropped), the monitor dumps the namespace's conntrack table
and reports the entries it had not seen, so a flow start is late, never lost while its entry lives.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from netscaffold.backends.linux.announcements import NodeWatchers, read_queued, subscribed_socket
from netscaffold.backends.linux.netlink import _HDR, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from netscaffold.backends.linux.session import open_in_namespace
from netscaffold.formats.render.layout import LabLayout
from netscaffold.model.events import FlowRequest
from netscaffold.model.topology import NodeKind, Topology

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_GET = 0, 1
NFNLGRP_CONNTRACK_NEW = 1
CTA_TUPLE_ORIG, CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CONNTRACK_RCVBUF_BYTES = 8 << 20
_NFGEN = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")
_PORTED = frozenset({6, 17, 132, 136})  # tcp, udp, sctp, udplite: protocols with ports
_FAMILY: dict[int, int] = {int(socket.AF_INET): 4, int(socket.AF_INET6): 6}


@dataclass(frozen=True, slots=True)
class FlowStart:
    """A new conntrack entry on ``node``: the original direction of a flow's first packet."""

    time_s: float
    node: str
    family: int
    proto: int
    src: str
    dst: str
    src_port: int | None
    dst_port: int | None

    @property
    def key(self) -> tuple[int, str, str, int | None, int | None]:
        return (self.proto, self.src, self.dst, self.src_port, self.dst_port)

    def as_request(self, endpoint_of: dict[str, str]) -> FlowRequest | None:
        """The flow request of this flow (endpoint ids from ``address -> id``), None when either end is
        not an endpoint of the topology (a link address, say)."""
        src, dst = endpoint_of.get(self.src), endpoint_of.get(self.dst)
        if src is None or dst is None:
            return None
        return FlowRequest(self.time_s, src, dst, dst_port=self.dst_port)


def _attrs(data: bytes, pos: int, end: int) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    while pos + 4 <= end:
        length, kind = _ATTR.unpack_from(data, pos)
        if length < 4:
            break
        out[kind & 0x3FFF] = (pos + 4, pos + length)
        pos += (length + 3) & ~3
    return out


def decode_entry(data: bytes, pos: int, end: int, node: str, now_s: float) -> FlowStart | None:
    """The original tuple of the ctnetlink message whose nfgenmsg starts at ``pos``."""
    family = _FAMILY.get(data[pos])
    if family is None:
        return None
    tuple_span = _attrs(data, pos + _NFGEN.size, end).get(CTA_TUPLE_ORIG)
    if tuple_span is None:
        return None
    parts = _attrs(data, *tuple_span)
    ip_span, proto_span = parts.get(CTA_TUPLE_IP), parts.get(CTA_TUPLE_PROTO)
    if ip_span is None or proto_span is None:
        return None
    ip = _attrs(data, *ip_span)
    src_key, dst_key = (CTA_IP_V4_SRC, CTA_IP_V4_DST) if family == 4 else (CTA_IP_V6_SRC, CTA_IP_V6_DST)
    if src_key not in ip or dst_key not in ip:
        return None
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    src = socket.inet_ntop(af, data[ip[src_key][0] : ip[src_key][1]])
    dst = socket.inet_ntop(af, data[ip[dst_key][0] : ip[dst_key][1]])
    proto_attrs = _attrs(data, *proto_span)
    number = proto_attrs.get(CTA_PROTO_NUM)
    if number is None:
        return None
    proto = data[number[0]]
    src_port = dst_port = None
    if proto in _PORTED and CTA_PROTO_SRC_PORT in proto_attrs and CTA_PROTO_DST_PORT in proto_attrs:
        src_port = int.from_bytes(data[proto_attrs[CTA_PROTO_SRC_PORT][0] :][:2], "big")
        dst_port = int.from_bytes(data[proto_attrs[CTA_PROTO_DST_PORT][0] :][:2], "big")
    return FlowStart(now_s, node, family, proto, src, dst, src_port, dst_port)


def _subscribed_socket() -> socket.socket:
    return subscribed_socket(NETLINK_NETFILTER, 1 << (NFNLGRP_CONNTRACK_NEW - 1), CONNTRACK_RCVBUF_BYTES)


def _dump_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    return sock


class NamespaceConntrack:
    """The new-connection announcements of one namespace (``node``), from sockets opened inside it."""

    def __init__(self, node: str, netns: str) -> None:
        self.node = node
        self.overflows = 0
        self.sock = open_in_namespace(netns, _subscribed_socket)
        self._dumper = open_in_namespace(netns, _dump_socket)
        self._seq = 0
        self._resynced: set[tuple[int, str, str, int | None, int | None]] = set()
        """Flows a resync reported: announcements of them still queued are not reported again."""

    def poll(self, now_s: float) -> list[FlowStart]:
        chunks, overflowed = read_queued(self.sock)
        starts = [s for data in chunks for s in self._decode(data, now_s) if s.key not in self._resynced]
        if overflowed:
            self.overflows += 1
            return starts + self.resync(now_s)
        self._resynced.clear()  # what was queued at the resync has been read
        return starts

    def _decode(self, data: bytes, now_s: float) -> list[FlowStart]:
        out = []
        offset = 0
        new_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
        while offset + _HDR.size <= len(data):
            length, kind = _HDR.unpack_from(data, offset)[:2]
            if length < _HDR.size:
                break
            if kind == new_type:
                start = decode_entry(data, offset + _HDR.size, offset + length, self.node, now_s)
                if start is not None:
                    out.append(start)
            offset += (length + 3) & ~3
        return out

    def resync(self, now_s: float) -> list[FlowStart]:
        """Every live entry (after an overflow dropped announcements: which of them were reported is not
        known, so a flow may be reported twice, never missed while its entry lives)."""
        live = self.dump(now_s)
        self._resynced = {start.key for start in live}
        return live

    def dump(self, now_s: float) -> list[FlowStart]:
        """Every entry of the namespace's conntrack table, as flow starts (``time_s`` = ``now_s``)."""
        self._seq += 1
        payload = _NFGEN.pack(socket.AF_UNSPEC, 0, 0)
        kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET
        header = _HDR.pack(_HDR.size + len(payload), kind, NLM_F_REQUEST | NLM_F_DUMP, self._seq, 0)
        self._dumper.send(header + payload)
        out: list[FlowStart] = []
        while True:
            data = self._dumper.recv(1 << 20)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, msg_type = _HDR.unpack_from(data, offset)[:2]
                if length < _HDR.size or msg_type in (NLMSG_DONE, NLMSG_ERROR):
                    return out
                start = decode_entry(data, offset + _HDR.size, offset + length, self.node, now_s)
                if start is not None:
                    out.append(start)
                offset += (length + 3) & ~3

    def close(self) -> None:
        self.sock.close()
        self._dumper.close()


class ConntrackMonitor(NodeWatchers[NamespaceConntrack]):
    """A :class:`NamespaceConntrack` per watched lab node (every host unless ``nodes`` says otherwise);
    ``poll(now)`` gathers their flow starts, ``requests(now)`` the same as flow requests between
    endpoints of the topology."""

    def __init__(self, layout: LabLayout, nodes: Iterable[str] | None = None) -> None:
        topology: Topology = layout.topology
        chosen = (
            sorted(n for n in topology.nodes if topology.node(n).kind is NodeKind.HOST)
            if nodes is None
            else sorted(set(nodes))
        )
        self.endpoint_of = {ep.address: ep.id for ep in topology.endpoints.values()}
        super().__init__(NamespaceConntrack(node, layout.namespace(node)) for node in chosen)

    def poll(self, now_s: float) -> list[FlowStart]:
        return [start for monitor in self.monitors for start in monitor.poll(now_s)]

    def requests(self, now_s: float) -> list[FlowRequest]:
        """New flows between endpoints, once each even when several watched nodes saw them."""
        out: list[FlowRequest] = []
        seen: set[tuple[str, str, int | None, int | None, int]] = set()
        for start in self.poll(now_s):
            request = start.as_request(self.endpoint_of)
            key = (start.src, start.dst, start.src_port, start.dst_port, start.proto)
            if request is not None and key not in seen:
                seen.add(key)
                out.append(request)
        return out
