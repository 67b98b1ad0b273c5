"""Per-flow conntrack events: the kernel's "a new connection started" announcements in lab namespaces,
as flow starts, and as :class:`FlowRequest` routing information for the engine and the refiner.

Every lab node tracks connections (the forward chain of our nft table matches on ``ct state``, which
turns conntrack on in that namespace), and the kernel announces each new entry on the
NFNLGRP_CONNTRACK_NEW group of ctnetlink once its first packet has passed. One NETLINK_NETFILTER socket
per watched namespace (hosts by default: a flow starts where its first packet is sent), receive buffer
:data:`CONNTRACK_RCVBUF_BYTES`. ``poll()`` reads what is queued without blocking. When the socket
overflowed (``ENOBUFS``: announcements were dropped), the monitor dumps the namespace's conntrack table
and reports the entries it had not seen, so a flow start is late, never lost while its entry lives.

Per-pair bytes (:class:`ConntrackBytes`): with connection accounting on (``nf_conntrack_acct``, per
namespace), every entry counts the bytes of each direction (the IP packets' total length). Each
``take()`` dumps every host's table with its counters and reads the DESTROY announcements queued since the
last one (they carry an ended connection's final counters), and reports, per endpoint pair, the bytes
sent since the last ``take()``: the original direction to (source, destination), the reply direction to
(destination, source). A connection is counted on the host of its source only, not again where it
arrives.
"""

from __future__ import annotations

import socket
import struct
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.announcements import NodeWatchers, read_queued, subscribed_socket
from netscaffold.backends.linux.netlink import _HDR, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from netscaffold.backends.linux.session import open_in_namespace
from netscaffold.formats.render.layout import LabLayout
from netscaffold.model.events import FlowRequest
from netscaffold.model.topology import NodeKind, Topology

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_DELETE = 0, 1, 2
NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY = 1, 3
CTA_TUPLE_ORIG, CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 1, 2
CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_ID = 9, 10, 12
CTA_COUNTERS_BYTES = 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CONNTRACK_RCVBUF_BYTES = 8 << 20
_NFGEN = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")
_PORTED = frozenset({6, 17, 132, 136})  # tcp, udp, sctp, udplite: protocols with ports
_FAMILY: dict[int, int] = {int(socket.AF_INET): 4, int(socket.AF_INET6): 6}
T = TypeVar("T")


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
    return _flow_start(data, _attrs(data, pos + _NFGEN.size, end), family, node, now_s)


@dataclass(frozen=True, slots=True)
class ConnectionBytes:
    """A conntrack entry's bytes so far in each direction (0 where the entry has no counters: it began
    before accounting was turned on)."""

    flow: FlowStart
    ident: int
    original: int
    reply: int


def decode_counters(data: bytes, pos: int, end: int, node: str, now_s: float) -> ConnectionBytes | None:
    """The original tuple, the entry id and the byte counters of the ctnetlink message whose nfgenmsg
    starts at ``pos``."""
    family = _FAMILY.get(data[pos])
    if family is None:
        return None
    top = _attrs(data, pos + _NFGEN.size, end)
    flow = _flow_start(data, top, family, node, now_s)
    ident = top.get(CTA_ID)
    if flow is None or ident is None:
        return None
    number = int.from_bytes(data[ident[0] : ident[1]], "big")
    return ConnectionBytes(
        flow, number, _bytes_of(data, top, CTA_COUNTERS_ORIG), _bytes_of(data, top, CTA_COUNTERS_REPLY)
    )


def _bytes_of(data: bytes, top: dict[int, tuple[int, int]], kind: int) -> int:
    span = top.get(kind)
    if span is None:
        return 0
    counter = _attrs(data, *span).get(CTA_COUNTERS_BYTES)
    return int.from_bytes(data[counter[0] : counter[1]], "big") if counter is not None else 0


def _flow_start(
    data: bytes, top: dict[int, tuple[int, int]], family: int, node: str, now_s: float
) -> FlowStart | None:
    tuple_span = top.get(CTA_TUPLE_ORIG)
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


def _dump_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    return sock


class _NamespaceSockets:
    """Two ctnetlink sockets opened inside one namespace (``node``'s): one subscribed to the
    announcement ``group`` (receive buffer :data:`CONNTRACK_RCVBUF_BYTES`), one for table dumps."""

    def __init__(self, node: str, netns: str, group: int) -> None:
        self.node = node
        self.overflows = 0
        self.sock = open_in_namespace(
            netns, lambda: subscribed_socket(NETLINK_NETFILTER, 1 << (group - 1), CONNTRACK_RCVBUF_BYTES)
        )
        self._dumper = open_in_namespace(netns, _dump_socket)
        self._seq = 0

    def _dump(self, now_s: float, decode: Callable[[bytes, int, int, str, float], T | None]) -> list[T]:
        """Every entry of the namespace's table that ``decode`` reads."""
        self._seq += 1
        return [
            entry for entry in _dump(self._dumper, self._seq, self.node, now_s, decode) if entry is not None
        ]

    def close(self) -> None:
        self.sock.close()
        self._dumper.close()


class NamespaceConntrack(_NamespaceSockets):
    """The new-connection announcements of one namespace (``node``), from sockets opened inside it."""

    def __init__(self, node: str, netns: str) -> None:
        super().__init__(node, netns, NFNLGRP_CONNTRACK_NEW)
        self._resynced: set[tuple[int, str, str, int | None, int | None]] = set()
        """Flows a resync reported: announcements of them still queued are not reported again."""

    def poll(self, now_s: float) -> list[FlowStart]:
        chunks, overflowed = read_queued(self.sock)
        starts = [
            s
            for data in chunks
            for s in announced(data, IPCTNL_MSG_CT_NEW, decode_entry, self.node, now_s)
            if s.key not in self._resynced
        ]
        if overflowed:
            self.overflows += 1
            return starts + self.resync(now_s)
        self._resynced.clear()  # what was queued at the resync has been read
        return starts

    def resync(self, now_s: float) -> list[FlowStart]:
        """Every live entry (after an overflow dropped announcements: which of them were reported is not
        known, so a flow may be reported twice, never missed while its entry lives)."""
        live = self.dump(now_s)
        self._resynced = {start.key for start in live}
        return live

    def dump(self, now_s: float) -> list[FlowStart]:
        """Every entry of the namespace's conntrack table, as flow starts (``time_s`` = ``now_s``)."""
        return self._dump(now_s, decode_entry)


class ConntrackMonitor(NodeWatchers[NamespaceConntrack]):
    """A :class:`NamespaceConntrack` per watched lab node (every host unless ``nodes`` says otherwise);
    ``poll(now)`` gathers their flow starts, ``requests(now)`` the same as flow requests between
    endpoints of the topology."""

    def __init__(self, layout: LabLayout, nodes: Iterable[str] | None = None) -> None:
        chosen = _hosts(layout.topology) if nodes is None else sorted(set(nodes))
        self.endpoint_of = {address: ep.id for address, ep in layout.endpoint_at.items()}
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


def announced(
    data: bytes,
    message: int,
    decode: Callable[[bytes, int, int, str, float], T | None],
    node: str,
    now_s: float,
) -> list[T]:
    """Every ctnetlink ``message`` (``IPCTNL_MSG_CT_NEW``, ``..._DELETE``) in a datagram of announcements,
    each through ``decode`` (those it cannot read left out)."""
    out = []
    offset = 0
    wanted = (NFNL_SUBSYS_CTNETLINK << 8) | message
    while offset + _HDR.size <= len(data):
        length, kind = _HDR.unpack_from(data, offset)[:2]
        if length < _HDR.size:
            break
        if kind == wanted:
            entry = decode(data, offset + _HDR.size, offset + length, node, now_s)
            if entry is not None:
                out.append(entry)
        offset += (length + 3) & ~3
    return out


def _dump(
    sock: socket.socket,
    seq: int,
    node: str,
    now_s: float,
    decode: Callable[[bytes, int, int, str, float], T | None],
) -> list[T | None]:
    """Every entry of the conntrack table of ``sock``'s namespace, each through ``decode``."""
    payload = _NFGEN.pack(socket.AF_UNSPEC, 0, 0)
    kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET
    sock.send(_HDR.pack(_HDR.size + len(payload), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload)
    out: list[T | None] = []
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _HDR.size <= len(data):
            length, msg_type = _HDR.unpack_from(data, offset)[:2]
            if length < _HDR.size or msg_type in (NLMSG_DONE, NLMSG_ERROR):
                return out
            out.append(decode(data, offset + _HDR.size, offset + length, node, now_s))
            offset += (length + 3) & ~3


def _hosts(topology: Topology) -> list[str]:
    return sorted(n for n in topology.nodes if topology.node(n).kind is NodeKind.HOST)


def enable_accounting(netns: str) -> None:
    """Turn on conntrack's byte and packet counters in ``netns`` (entries created from now on count)."""
    tools.run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"])


class _HostBytes(_NamespaceSockets):
    """One host's conntrack counters: a dump socket and a DESTROY subscription (ended connections' final
    counters), and the bytes already reported per entry."""

    def __init__(self, node: str, netns: str) -> None:
        enable_accounting(netns)
        super().__init__(node, netns, NFNLGRP_CONNTRACK_DESTROY)
        self.reported: dict[int, tuple[int, int]] = {}
        """Per entry id: (original, reply) bytes reported so far."""

    def take(self, now_s: float) -> list[tuple[ConnectionBytes, int, int]]:
        """(entry, new original bytes, new reply bytes) of every entry that moved since the last call."""
        chunks, overflowed = read_queued(self.sock)
        self.overflows += overflowed
        ended = [
            c
            for data in chunks
            for c in announced(data, IPCTNL_MSG_CT_DELETE, decode_counters, self.node, now_s)
        ]
        live = self._dump(now_s, decode_counters)
        out = [self._delta(entry, self.reported.pop(entry.ident, (0, 0))) for entry in ended]
        seen = {}
        for entry in live:
            out.append(self._delta(entry, self.reported.get(entry.ident, (0, 0))))
            seen[entry.ident] = (entry.original, entry.reply)
        self.reported = seen  # entries gone without an announcement (an overflow) are forgotten
        return [item for item in out if item[1] or item[2]]

    @staticmethod
    def _delta(entry: ConnectionBytes, before: tuple[int, int]) -> tuple[ConnectionBytes, int, int]:
        return entry, max(entry.original - before[0], 0), max(entry.reply - before[1], 0)


class ConntrackBytes(NodeWatchers[_HostBytes]):
    """Per endpoint pair, the bytes conntrack counted on every host (see the module's docstring); entries
    whose destination port is in ``skip_ports`` are left out (a caller that counts its own connections
    otherwise)."""

    def __init__(self, layout: LabLayout, skip_ports: Iterable[int] = ()) -> None:
        self.endpoint_of = layout.endpoint_at
        self.skip_ports = frozenset(skip_ports)
        super().__init__(_HostBytes(node, layout.namespace(node)) for node in _hosts(layout.topology))

    def take(self, now_s: float) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = defaultdict(float)
        for host in self.monitors:
            for entry, original, reply in host.take(now_s):
                flow = entry.flow
                src, dst = self.endpoint_of.get(flow.src), self.endpoint_of.get(flow.dst)
                if src is None or dst is None or src.host != host.node or flow.dst_port in self.skip_ports:
                    continue  # not between endpoints, counted on its source's host, or the caller's own
                if original:
                    out[(src.id, dst.id)] += original
                if reply:
                    out[(dst.id, src.id)] += reply
        return dict(out)
