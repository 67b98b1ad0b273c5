"""A small read-only rtnetlink client: dumps of routes, policy rules, links, tc classes and tc filters,
decoded with ``struct`` into plain tuples (no pyroute2 on the hot path: its per-message parsing costs
milliseconds, these dumps cost microseconds per object).

A :class:`NetlinkReader` owns one NETLINK_ROUTE socket; the socket belongs to the network namespace it
was created in (see :mod:`netscaffold.backends.linux.session`), whichever thread uses it later.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from netscaffold.errors import BackendError
from netscaffold.formats.render.objects import KernelRule

NETLINK_ROUTE = 0
RTM_GETLINK, RTM_NEWLINK = 18, 16
RTM_GETROUTE, RTM_NEWROUTE = 26, 24
RTM_GETRULE, RTM_NEWRULE = 34, 32
RTM_GETTCLASS, RTM_NEWTCLASS = 42, 40
RTM_GETTFILTER, RTM_NEWTFILTER = 46, 44
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
_HDR = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")
_RTMSG = struct.Struct("=BBBBBBBBI")
_TCMSG = struct.Struct("=BxxxiIII")
_IFINFO = struct.Struct("=BxHiII")
_RTNH = struct.Struct("=HBBi")
_U32_SEL = struct.Struct("=BBBxHHhhI")
_U32_KEY = struct.Struct("=IIii")
RCVBUF_BYTES = 8 << 20
_AF = {2: 4, 10: 6}


def _align(length: int) -> int:
    return (length + 3) & ~3


def attrs(data: bytes | memoryview, offset: int, end: int) -> dict[int, memoryview]:
    """Netlink attributes in ``data[offset:end]`` by type (nested flag bits cleared)."""
    view = memoryview(data)
    out: dict[int, memoryview] = {}
    while offset + 4 <= end:
        length, kind = _ATTR.unpack_from(view, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = view[offset + 4 : offset + length]
        offset += _align(length)
    return out


def _u32(value: memoryview | None, default: int = 0) -> int:
    return default if value is None else int(struct.unpack_from("=I", value)[0])


@dataclass(frozen=True, slots=True)
class RouteMsg:
    family: int
    table: int
    protocol: int
    dst: str
    dst_len: int
    next_hops: tuple[tuple[str, int], ...]
    """(gateway, kernel weight = hops + 1), sorted."""


@dataclass(frozen=True, slots=True)
class RuleMsg:
    family: int
    priority: int
    fwmark: int
    table: int
    protocol: int


@dataclass(frozen=True, slots=True)
class ClassMsg:
    handle: int
    kind: str
    rate_bytes_s: int
    ceil_bytes_s: int
    sent_bytes: int = 0
    """Bytes the class has sent (TCA_STATS2 basic counters)."""


@dataclass(frozen=True, slots=True)
class U32Msg:
    handle: int
    priority: int
    classid: int
    keys: tuple[tuple[int, int], ...]
    """(offset, value) of every 32-bit match word."""


class NetlinkReader:
    """Dumps over one socket; ``lock`` keeps request/response pairs whole across threads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self._seq = 0

    @classmethod
    def open_here(cls) -> NetlinkReader:
        """A reader on a new socket in the calling thread's network namespace."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        sock.bind((0, 0))
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def dump(self, msg_type: int, payload: bytes) -> Iterator[tuple[int, bytes, int]]:
        """(message type, buffer, payload offset) of every message of the dump's answer."""
        with self.lock:
            self._seq += 1
            seq = self._seq
            self.sock.send(
                _HDR.pack(_HDR.size + len(payload), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload
            )
            messages = list(self._receive(seq))
        yield from messages

    def _receive(self, seq: int) -> Iterator[tuple[int, bytes, int]]:
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, _, msg_seq, _ = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    return
                if msg_seq == seq:
                    if kind == NLMSG_DONE:
                        return
                    if kind == NLMSG_ERROR:
                        code = struct.unpack_from("=i", data, offset + _HDR.size)[0]
                        if code:
                            raise BackendError(f"netlink dump failed: errno {-code}", backend="linux")
                        return
                    yield kind, data[offset : offset + length], _HDR.size
                offset += _align(length)

    # -- decoders -------------------------------------------------------------------------------------
    def links(self) -> dict[str, int]:
        """Interface name -> index."""
        out = {}
        for kind, buf, off in self.dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
            if kind != RTM_NEWLINK:
                continue
            index = _IFINFO.unpack_from(buf, off)[2]
            name = attrs(buf, off + _IFINFO.size, len(buf)).get(3)
            if name is not None:
                out[bytes(name).rstrip(b"\0").decode()] = index
        return out

    def tx_bytes(self) -> dict[str, int]:
        """Interface name -> bytes transmitted (IFLA_STATS64)."""
        out = {}
        for kind, buf, off in self.dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
            if kind != RTM_NEWLINK:
                continue
            a = attrs(buf, off + _IFINFO.size, len(buf))
            name, stats = a.get(3), a.get(23)
            if name is not None and stats is not None:
                out[bytes(name).rstrip(b"\0").decode()] = int(struct.unpack_from("=Q", stats, 24)[0])
        return out

    def routes(self, protocols: frozenset[int]) -> list[RouteMsg]:
        """Routes of every table and family whose protocol is in ``protocols``."""
        out = []
        for kind, buf, off in self.dump(RTM_GETROUTE, _RTMSG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0)):
            if kind != RTM_NEWROUTE:
                continue
            if buf[off + _RTMSG_PROTOCOL] in protocols:
                route = route_at(buf, off)
                if route is not None:
                    out.append(route)
        return out

    def rules(self, protocols: frozenset[int]) -> list[RuleMsg]:
        out = []
        for kind, buf, off in self.dump(RTM_GETRULE, _RTMSG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0)):
            if kind != RTM_NEWRULE:
                continue
            family, _, _, _, table = struct.unpack_from("=BBBBB", buf, off)
            a = attrs(buf, off + 12, len(buf))
            protocol = a.get(21)
            if protocol is None or protocol[0] not in protocols or family not in _AF:
                continue
            out.append(
                RuleMsg(_AF[family], _u32(a.get(6)), _u32(a.get(10)), _u32(a.get(15), table), protocol[0])
            )
        return out

    def classes(self, ifindex: int) -> list[ClassMsg]:
        out = []
        for kind, buf, off in self.dump(RTM_GETTCLASS, _TCMSG.pack(0, ifindex, 0, 0, 0)):
            if kind != RTM_NEWTCLASS:
                continue
            handle = _TCMSG.unpack_from(buf, off)[2]
            a = attrs(buf, off + _TCMSG.size, len(buf))
            name = bytes(a.get(1, b"")).rstrip(b"\0").decode()
            options = a.get(2)
            sent = _sent_bytes(a.get(7))
            if name != "htb" or options is None:
                out.append(ClassMsg(handle, name, 0, 0, sent))
                continue
            o = attrs(options, 0, len(options))
            parms = o.get(1)
            rate = ceil = 0
            if parms is not None:
                rate = struct.unpack_from("=I", parms, 8)[0]
                ceil = struct.unpack_from("=I", parms, 20)[0]
            rate64, ceil64 = o.get(6), o.get(7)
            rate = int(struct.unpack_from("=Q", rate64)[0]) if rate64 is not None else rate
            ceil = int(struct.unpack_from("=Q", ceil64)[0]) if ceil64 is not None else ceil
            out.append(ClassMsg(handle, name, rate, ceil, sent))
        return out

    def u32_filters(self, ifindex: int, parent: int) -> list[U32Msg]:
        out = []
        for kind, buf, off in self.dump(RTM_GETTFILTER, _TCMSG.pack(0, ifindex, 0, parent, 0)):
            if kind != RTM_NEWTFILTER:
                continue
            _, _, handle, _, info = _TCMSG.unpack_from(buf, off)
            a = attrs(buf, off + _TCMSG.size, len(buf))
            if bytes(a.get(1, b"")).rstrip(b"\0") != b"u32" or 2 not in a:
                continue
            o = attrs(a[2], 0, len(a[2]))
            sel, classid = o.get(5), o.get(1)
            if sel is None or classid is None:
                continue
            nkeys = _U32_SEL.unpack_from(sel)[2]
            keys = []
            for i in range(nkeys):
                _, value, key_off, _ = _U32_KEY.unpack_from(sel, _U32_SEL.size + i * _U32_KEY.size)
                keys.append((key_off, int.from_bytes(value.to_bytes(4, "little"), "big")))
            out.append(U32Msg(handle, info >> 16, _u32(classid), tuple(keys)))
        return out


_RTMSG_PROTOCOL = 5
_RTA_DST, _RTA_GATEWAY, _RTA_MULTIPATH, _RTA_TABLE = 1, 5, 9, 15


def route_at(buf: bytes, off: int) -> RouteMsg | None:
    """The route message (RTM_NEWROUTE or RTM_DELROUTE) whose rtmsg starts at ``off``, decoded in one
    pass over its attributes (the hot loop of every read-back: a dict of attribute views per route cost
    twice as much); None for a family other than IPv4/IPv6."""
    af, dst_len, _, _, table, protocol, _, _, _ = _RTMSG.unpack_from(buf, off)
    if af not in _AF:
        return None
    family = _AF[af]
    dst = gateway = b""
    multipath: tuple[int, int] | None = None
    pos, end = off + _RTMSG.size, len(buf)
    unpack = _ATTR.unpack_from
    while pos + 4 <= end:
        length, kind = unpack(buf, pos)
        if length < 4:
            break
        kind &= 0x3FFF
        if kind == _RTA_DST:
            dst = buf[pos + 4 : pos + length]
        elif kind == _RTA_GATEWAY:
            gateway = buf[pos + 4 : pos + length]
        elif kind == _RTA_TABLE:
            table = int.from_bytes(buf[pos + 4 : pos + 8], sys.byteorder)
        elif kind == _RTA_MULTIPATH:
            multipath = (pos + 4, pos + length)
        pos += (length + 3) & ~3
    address = socket.inet_ntop(af, dst) if dst else ("0.0.0.0" if family == 4 else "::")  # noqa: S104 (a default route)
    if multipath is None:
        hops: tuple[tuple[str, int], ...] = ((socket.inet_ntop(af, gateway) if gateway else "", 1),)
    else:
        hops = _multipath(buf, multipath[0], multipath[1], af)
    return RouteMsg(family, table, protocol, address, dst_len, hops)


def _multipath(buf: bytes, pos: int, end: int, af: int) -> tuple[tuple[str, int], ...]:
    hops = []
    while pos + _RTNH.size <= end:
        length, _, weight, _ = _RTNH.unpack_from(buf, pos)
        if length < _RTNH.size:
            break
        gateway = ""
        inner, stop = pos + _RTNH.size, pos + length
        while inner + 4 <= stop:
            attr_length, kind = _ATTR.unpack_from(buf, inner)
            if attr_length < 4:
                break
            if kind & 0x3FFF == _RTA_GATEWAY:
                gateway = socket.inet_ntop(af, buf[inner + 4 : inner + attr_length])
            inner += (attr_length + 3) & ~3
        hops.append((gateway, weight + 1))
        pos += (length + 3) & ~3
    return tuple(sorted(hops))


def _sent_bytes(stats2: memoryview | None) -> int:
    if stats2 is None:
        return 0
    basic = attrs(stats2, 0, len(stats2)).get(1)  # TCA_STATS_BASIC: u64 bytes, u32 packets
    return 0 if basic is None else int(struct.unpack_from("=Q", basic)[0])


NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETSET, NFT_MSG_NEWSET = 10, 9
NFT_MSG_GETSETELEM, NFT_MSG_NEWSETELEM = 13, 12
NFPROTO_INET = 1
_NFGEN = struct.Struct("=BBH")
_ELEM_INTERVAL_END = 1


@dataclass(frozen=True, slots=True)
class ElementMsg:
    """A set element as raw bytes: key (and key end for a concatenated range), map data, comment."""

    key: bytes
    key_end: bytes | None
    data: bytes | None
    comment: str
    timeout_ms: int | None
    expires_ms: int | None


def _nla(kind: int, payload: bytes) -> bytes:
    body = _ATTR.pack(4 + len(payload), kind) + payload
    return body + b"\0" * (_align(len(body)) - len(body))


def _cstr(text: str) -> bytes:
    return text.encode() + b"\0"


class NftReader(NetlinkReader):
    """Dumps of nf_tables sets and set elements (NETLINK_NETFILTER): what ``nft list`` shows, without
    libnftables' formatting cost."""

    @classmethod
    def open_here(cls) -> NftReader:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        sock.bind((0, 0))
        return cls(sock)

    def set_names(self, table: str, family: int = NFPROTO_INET) -> list[str]:
        """Names of the sets and maps of ``table`` (empty when the table does not exist)."""
        payload = _NFGEN.pack(family, 0, 0) + _nla(1, _cstr(table))
        out = []
        try:
            for _, buf, off in self.dump((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSET, payload):
                a = attrs(buf, off + _NFGEN.size, len(buf))
                if bytes(a.get(1, b"")).rstrip(b"\0").decode() == table and 2 in a:
                    out.append(bytes(a[2]).rstrip(b"\0").decode())
        except BackendError:
            return []
        return out

    def elements(self, table: str, set_name: str, family: int = NFPROTO_INET) -> list[ElementMsg]:
        payload = _NFGEN.pack(family, 0, 0) + _nla(1, _cstr(table)) + _nla(2, _cstr(set_name))
        out = []
        for _, buf, off in self.dump((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, payload):
            lists = attrs(buf, off + _NFGEN.size, len(buf)).get(3)
            if lists is None:
                continue
            offset = 0
            while offset + 4 <= len(lists):
                length = _ATTR.unpack_from(lists, offset)[0]
                if length < 4:
                    break
                element = _element(attrs(lists, offset + 4, offset + length))
                if element is not None:
                    out.append(element)
                offset += _align(length)
        return out


def _data(value: memoryview | None) -> bytes | None:
    if value is None:
        return None
    inner = attrs(value, 0, len(value)).get(1)  # NFTA_DATA_VALUE
    return None if inner is None else bytes(inner)


def _be64(value: memoryview | None) -> int | None:
    return None if value is None else int(struct.unpack_from(">Q", value)[0])


def _element(a: dict[int, memoryview]) -> ElementMsg | None:
    flags = a.get(3)
    if flags is not None and struct.unpack_from(">I", flags)[0] & _ELEM_INTERVAL_END:
        return None  # the closing half of an old-style interval (not used by our concatenated sets)
    key = _data(a.get(1))
    if key is None:
        return None
    comment = ""
    userdata = a.get(6)
    if userdata is not None:
        pos = 0
        while pos + 2 <= len(userdata):
            kind, length = userdata[pos], userdata[pos + 1]
            if kind == 0:  # NFTNL_UDATA_SET_ELEM_COMMENT
                comment = bytes(userdata[pos + 2 : pos + 2 + length]).rstrip(b"\0").decode()
            pos += 2 + length
    return ElementMsg(key, _data(a.get(10)), _data(a.get(2)), comment, _be64(a.get(4)), _be64(a.get(5)))


NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x4, 0x100, 0x400
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
RTN_UNICAST, RT_SCOPE_UNIVERSE = 1, 0


class NetlinkWriter(NetlinkReader):
    """Route writes over the session's socket: one with an acknowledgement (the reactive controller), or
    thousands packed into few ``send`` calls with their acknowledgements collected afterwards (plans:
    no process start, no per-route round trip)."""

    def bulk(self, messages: list[tuple[int, int, bytes]]) -> list[tuple[int, int]]:
        """Send (type, flags, payload) messages, each acknowledged; returns (index, errno) of the ones
        the kernel refused, in order. Every message is tried (the kernel handles them one by one)."""
        failures: list[tuple[int, int]] = []
        with self.lock:
            base = self._seq + 1
            self._seq += len(messages)
            start = 0
            while start < len(messages):
                chunk = bytearray()
                end = start
                while end < len(messages) and len(chunk) < BULK_CHUNK_BYTES:
                    kind, flags, payload = messages[end]
                    size = _HDR.size + len(payload)
                    chunk += _HDR.pack(size, kind, NLM_F_REQUEST | NLM_F_ACK | flags, base + end, 0)
                    chunk += payload
                    end += 1
                self.sock.send(bytes(chunk))
                failures += self._acks(base + start, end - start, base)
                start = end
        return failures

    def _acks(self, first_seq: int, count: int, base: int) -> list[tuple[int, int]]:
        failures = []
        seen = 0
        while seen < count:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, _, seq, _ = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                if kind == NLMSG_ERROR and first_seq <= seq < first_seq + count:
                    seen += 1
                    code = struct.unpack_from("=i", data, offset + _HDR.size)[0]
                    if code:
                        failures.append((seq - base, -code))
                offset += _align(length)
        return failures

    def request(self, msg_type: int, flags: int, payload: bytes) -> None:
        with self.lock:
            self._seq += 1
            seq = self._seq
            header = _HDR.pack(_HDR.size + len(payload), msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
            self.sock.send(header + payload)
            for _ in self._receive(seq):
                pass  # an ACK is an NLMSG_ERROR with code 0: _receive returns on it, raises otherwise

    def replace_route(self, destination: str, gateway: str, protocol: int, table: int = 254) -> None:
        """``ip route replace DESTINATION via GATEWAY proto PROTOCOL table TABLE``."""
        address, _, length = destination.partition("/")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        dst = socket.inet_pton(family, address)
        prefix_len = int(length) if length else len(dst) * 8
        header = _RTMSG.pack(
            family, prefix_len, 0, 0, table & 0xFF, protocol, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
        )
        payload = header + _nla(RTA_DST, dst) + _nla(RTA_GATEWAY, socket.inet_pton(family, gateway))
        payload += _nla(RTA_TABLE, struct.pack("=I", table))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, payload)


NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NF_DROP, NF_ACCEPT = 0, 1


@dataclass(frozen=True, slots=True)
class QueuedPacket:
    packet_id: int
    payload: bytes


class QueueSocket:
    """An NFQUEUE listener (``iptables ... -j NFQUEUE --queue-num N``) over raw netfilter netlink: bind,
    receive queued packets (their first ``copy_bytes``), give verdicts."""

    def __init__(self, sock: socket.socket, queue: int) -> None:
        self.sock = sock
        self.queue = queue
        self._seq = 0

    @classmethod
    def open_here(cls, queue: int, copy_bytes: int = 128) -> QueueSocket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        sock.bind((0, 0))
        listener = cls(sock, queue)
        listener._config(_nla(1, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
        listener._config(_nla(2, struct.pack("!IB", copy_bytes, NFQNL_COPY_PACKET)))
        return listener

    def _send(self, msg: int, attributes: bytes, flags: int = 0) -> None:
        self._seq += 1
        payload = _NFGEN.pack(0, 0, socket.htons(self.queue)) + attributes
        kind = (NFNL_SUBSYS_QUEUE << 8) | msg
        self.sock.send(
            _HDR.pack(_HDR.size + len(payload), kind, NLM_F_REQUEST | flags, self._seq, 0) + payload
        )

    def _config(self, attributes: bytes) -> None:
        self._send(NFQNL_MSG_CONFIG, attributes, NLM_F_ACK)
        data = self.sock.recv(65536)
        kind = _HDR.unpack_from(data, 0)[1]
        if kind == NLMSG_ERROR and struct.unpack_from("=i", data, _HDR.size)[0]:
            code = struct.unpack_from("=i", data, _HDR.size)[0]
            raise BackendError(f"NFQUEUE {self.queue}: config refused (errno {-code})", backend="linux")

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> list[QueuedPacket]:
        """The packets of one read (blocking until there is one)."""
        data = self.sock.recv(1 << 20)
        out = []
        offset = 0
        while offset + _HDR.size <= len(data):
            length, kind = _HDR.unpack_from(data, offset)[:2]
            if length < _HDR.size:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = attrs(data, offset + _HDR.size + _NFGEN.size, offset + length)
                header, payload = a.get(1), a.get(10)
                if header is not None:
                    packet_id = struct.unpack_from("!I", header)[0]
                    out.append(QueuedPacket(packet_id, bytes(payload) if payload is not None else b""))
            offset += _align(length)
        return out

    def verdict(self, packet_id: int, verdict: int = NF_ACCEPT) -> None:
        self._send(NFQNL_MSG_VERDICT, _nla(2, struct.pack("!II", verdict, packet_id)))

    def close(self) -> None:
        self.sock.close()


BULK_CHUNK_BYTES = 48 * 1024
RTM_DELROUTE = 25
RTA_MULTIPATH = 9


def route_message(
    action: str, destination: str, next_hops: tuple[tuple[str, int], ...], protocol: int, table: int
) -> tuple[int, int, bytes]:
    """An RTM_NEWROUTE (``replace``: create or replace) or RTM_DELROUTE (``delete``) for ``bulk``; next
    hops are (gateway, kernel weight 1..256), the device found by the kernel from the gateway."""
    address, _, length = destination.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    dst = socket.inet_pton(family, address)
    prefix_len = int(length) if length else len(dst) * 8
    tail = _nla(RTA_DST, dst) + _nla(RTA_TABLE, struct.pack("=I", table))
    header = _RTMSG.pack(family, prefix_len, 0, 0, table & 0xFF, protocol, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    if action == "delete":  # matches our protocol only (scope "nowhere" matched nothing on this kernel)
        return RTM_DELROUTE, 0, header + tail
    if len(next_hops) == 1:
        tail += _nla(RTA_GATEWAY, socket.inet_pton(family, next_hops[0][0]))
    else:
        hops = b""
        for gateway, weight in next_hops:
            inner = _nla(RTA_GATEWAY, socket.inet_pton(family, gateway))
            hops += _RTNH.pack(_RTNH.size + len(inner), 0, weight - 1, 0) + inner
        tail += _nla(RTA_MULTIPATH, hops)
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, header + tail


RTM_NEWRULE_MSG, RTM_DELRULE = 32, 33
FRA_PRIORITY, FRA_FWMARK, FRA_TABLE, FRA_PROTOCOL = 6, 10, 15, 21
FR_ACT_TO_TBL = 1
NLM_F_EXCL = 0x200
_FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")


def rule_message(action: str, rule: KernelRule) -> tuple[int, int, bytes]:
    """``ip rule add|delete priority P fwmark M lookup T protocol X`` as a message for ``bulk``; a delete
    names all four, so it removes only the rule we made."""
    af = socket.AF_INET6 if rule.family == 6 else socket.AF_INET
    table = rule.table
    header = _FIB_RULE_HDR.pack(af, 0, 0, 0, table if table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
    body = _nla(FRA_PRIORITY, struct.pack("=I", rule.priority))
    body += _nla(FRA_FWMARK, struct.pack("=I", rule.fwmark)) + _nla(FRA_TABLE, struct.pack("=I", table))
    body += _nla(FRA_PROTOCOL, struct.pack("=B", rule.protocol))
    if action == "delete":
        return RTM_DELRULE, 0, header + body
    return RTM_NEWRULE_MSG, NLM_F_CREATE | NLM_F_EXCL, header + body


NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 16, 17
NFT_MSG_DELSETELEM = 14
NFT_MSG_DESTROYSETELEM = 30
"""A delete that is not an error when the element is gone (Linux 6.3+): an element with a timeout may
expire in the kernel between our read and our delete."""
_NOT_KNOWN = (22, 95)  # EINVAL, EOPNOTSUPP: what an older kernel answers to a message type it lacks
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_TIMEOUT = 1, 2, 4
NFTA_SET_ELEM_USERDATA, NFTA_SET_ELEM_KEY_END = 6, 10
NFTA_DATA_VALUE = 1
NLA_F_NESTED = 0x8000
NFTNL_UDATA_SET_ELEM_COMMENT = 0
ELEMENTS_PER_MESSAGE = 256
"""Elements per NEWSETELEM/DELSETELEM message: a refused message names its first element."""


@dataclass(frozen=True, slots=True)
class ElementWrite:
    """One element of an nf_tables transaction: ``key`` (and ``key_end`` in an interval set) as the
    kernel stores them, map ``data``, ``comment`` and ``timeout_ms`` (adds only)."""

    action: str
    """``add`` or ``delete``."""
    set_name: str
    key: bytes
    key_end: bytes | None = None
    data: bytes | None = None
    comment: str = ""
    timeout_ms: int | None = None


def _element_attrs(write: ElementWrite) -> bytes:
    body = _nla(NFTA_SET_ELEM_KEY | NLA_F_NESTED, _nla(NFTA_DATA_VALUE, write.key))
    if write.key_end is not None:
        body += _nla(NFTA_SET_ELEM_KEY_END | NLA_F_NESTED, _nla(NFTA_DATA_VALUE, write.key_end))
    if write.action == "delete":
        return body
    if write.data is not None:
        body += _nla(NFTA_SET_ELEM_DATA | NLA_F_NESTED, _nla(NFTA_DATA_VALUE, write.data))
    if write.timeout_ms is not None:
        body += _nla(NFTA_SET_ELEM_TIMEOUT, struct.pack(">Q", write.timeout_ms))
    if write.comment:
        text = _cstr(write.comment)
        body += _nla(NFTA_SET_ELEM_USERDATA, bytes((NFTNL_UDATA_SET_ELEM_COMMENT, len(text))) + text)
    return body


class NftWriter(NftReader):
    """Set element writes as one nf_tables batch (begin, NEWSETELEM/DELSETELEM messages, end): the
    kernel commits all of it or none, as ``nft -f`` does, without libnftables' parsing and cache.
    Deletes are DESTROYSETELEM where the kernel has it (DELSETELEM otherwise)."""

    destroy = True

    @classmethod
    def open_here(cls) -> NftWriter:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        sock.bind((0, 0))
        return cls(sock)

    def transaction(
        self, table: str, writes: list[ElementWrite], family: int = NFPROTO_INET
    ) -> tuple[int, int] | None:
        """Write ``writes`` in order (consecutive writes of one set and action share a message) in one
        transaction; returns None when committed, else (index of the first write of the first refused
        message, errno) and nothing is committed."""
        messages: list[tuple[int, int, bytes]] = []  # (type, first write index, payload)
        table_attr = _nla(NFTA_SET_ELEM_LIST_TABLE, _cstr(table))
        start = 0
        while start < len(writes):
            first = writes[start]
            end = start
            elements: list[bytes] = []
            while (
                end < len(writes)
                and end - start < ELEMENTS_PER_MESSAGE
                and writes[end].action == first.action
                and writes[end].set_name == first.set_name
            ):
                elements.append(_nla(NFTA_LIST_ELEM | NLA_F_NESTED, _element_attrs(writes[end])))
                end += 1
            kind = NFT_MSG_NEWSETELEM if first.action == "add" else self._delete_kind()
            payload = (
                _NFGEN.pack(family, 0, 0) + table_attr + _nla(NFTA_SET_ELEM_LIST_SET, _cstr(first.set_name))
            )
            payload += _nla(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, b"".join(elements))
            messages.append((kind, start, payload))
            start = end
        if not messages:
            return None
        failure = self._commit(messages)
        if failure is not None and failure[1] in _NOT_KNOWN and self.destroy:
            kinds = {kind for kind, _, _ in messages}
            if NFT_MSG_DESTROYSETELEM in kinds:  # an older kernel: plain deletes from now on
                NftWriter.destroy = False
                return self.transaction(table, writes, family)
        return failure

    def _delete_kind(self) -> int:
        return NFT_MSG_DESTROYSETELEM if self.destroy else NFT_MSG_DELSETELEM

    def _commit(self, messages: list[tuple[int, int, bytes]]) -> tuple[int, int] | None:
        with self.lock:
            base = self._seq + 1
            self._seq += len(messages) + 2
            control = _NFGEN.pack(0, 0, socket.htons(NFNL_SUBSYS_NFTABLES))
            batch = bytearray(
                _HDR.pack(_HDR.size + len(control), NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, base, 0)
            )
            batch += control
            for number, (kind, _, payload) in enumerate(messages, start=1):
                flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if kind == NFT_MSG_NEWSETELEM else 0)
                msg_type = (NFNL_SUBSYS_NFTABLES << 8) | kind
                batch += _HDR.pack(_HDR.size + len(payload), msg_type, flags, base + number, 0) + payload
            end_seq = base + len(messages) + 1
            batch += _HDR.pack(_HDR.size + len(control), NFNL_MSG_BATCH_END, NLM_F_REQUEST, end_seq, 0)
            batch += control
            self._fit_send_buffer(len(batch))
            self.sock.send(bytes(batch))
            errors = self._batch_errors(base, len(messages))
        if not errors:
            return None
        number, errno = min(errors)
        return messages[number - 1][1], errno

    def _fit_send_buffer(self, size: int) -> None:
        if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < size + 4096:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, size + 65536)

    def _batch_errors(self, base: int, count: int) -> list[tuple[int, int]]:
        """(message number, errno) of every refused message: the kernel handles a batch inside ``send``,
        so every answer is queued by now; read until an acknowledgement of each or the queue is empty."""
        errors: list[tuple[int, int]] = []
        answered = 0
        while answered < count:
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, _, seq, _ = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                if kind == NLMSG_ERROR and base < seq <= base + count + 1:
                    answered += 1
                    code = struct.unpack_from("=i", data, offset + _HDR.size)[0]
                    if code:
                        errors.append((min(seq - base, count), -code))
                offset += _align(length)
        if answered == 0 and not errors:
            errors.append((1, 5))  # EIO: the kernel said nothing about the batch
        return errors


SO_SNDBUFFORCE = 32


RTM_DELTCLASS, RTM_DELTFILTER = 41, 45
TCA_KIND = 1
ETH_P_ALL = 3
U32_NODE_HANDLE = 0x800 << 20


def tc_delete_message(kind: str, ifindex: int, minor: int, priority: int) -> tuple[int, int, bytes]:
    """``tc class delete ... classid 1:MINOR`` or ``tc filter delete ... prio P handle 800::MINOR u32``
    as a message for ``bulk`` (deletes name only what identifies the object)."""
    if kind == "class":
        return RTM_DELTCLASS, 0, _TCMSG.pack(0, ifindex, 0x10000 | minor, 0x10001, 0)
    info = (priority << 16) | socket.htons(ETH_P_ALL)
    payload = _TCMSG.pack(0, ifindex, U32_NODE_HANDLE | minor, 0x10000, info) + _nla(TCA_KIND, b"u32\0")
    return RTM_DELTFILTER, 0, payload
