"""A small read-only rtnetlink client: dumps of routes, policy rules, links, tc classes and tc filters,
decoded with ``struct`` into plain tuples (no pyroute2 on the hot path: its per-message parsing costs
milliseconds, these dumps cost microseconds per object).

A :class:`NetlinkReader` owns one NETLINK_ROUTE socket; the socket belongs to the network namespace it
was created in (see :mod:`netscaffold.backends.linux.session`), whichever thread uses it later.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Self, TypeVar

from netscaffold.errors import BackendError
from netscaffold.formats.render.objects import KernelRoute, KernelRule

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
_ERRNO = struct.Struct("=i")
_RTMSG = struct.Struct("=BBBBBBBBI")
_TCMSG = struct.Struct("=BxxxiIII")
_IFINFO = struct.Struct("=BxHiII")
_RTNH = struct.Struct("=HBBi")
T = TypeVar("T")
_U32_SEL = struct.Struct("=BBBxHHhhI")
RCVBUF_BYTES = 8 << 20
_AF = {2: 4, 10: 6}


SOL_NETLINK, NETLINK_CAP_ACK = 270, 10


def _cap_acks(sock: socket.socket) -> None:
    """Acknowledgements without a copy of the request (a bulk of thousands of writes reads them all)."""
    with contextlib.suppress(OSError):  # a kernel before 4.3: full acknowledgements, same meaning
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)


def _request_socket(protocol: int, *, cap_acks: bool = False) -> socket.socket:
    """A netlink socket of ``protocol`` for requests and their answers (no multicast group), receive
    buffer :data:`RCVBUF_BYTES`; ``cap_acks``: acknowledgements without the request copied in."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    if cap_acks:
        _cap_acks(sock)
    sock.bind((0, 0))
    return sock


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
    def open_here(cls) -> Self:
        """A reader on a new socket in the calling thread's network namespace."""
        return cls(_request_socket(NETLINK_ROUTE, cap_acks=True))

    def close(self) -> None:
        self.sock.close()

    def dump(self, msg_type: int, payload: bytes) -> Iterator[tuple[int, bytes, int]]:
        """(message type, buffer, payload offset) of every message of the dump's answer."""
        for kind, data, start, end in self.dump_spans(msg_type, payload):
            yield kind, data[start - _HDR.size : end], _HDR.size

    def dump_spans(self, msg_type: int, payload: bytes) -> list[tuple[int, bytes, int, int]]:
        """(message type, receive buffer, payload offset, message end) of every message of the dump's
        answer: the messages stay in the buffers they arrived in (no copy per message)."""
        with self.lock:
            self._seq += 1
            seq = self._seq
            self.sock.send(
                _HDR.pack(_HDR.size + len(payload), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload
            )
            return self._receive(seq)

    def _receive(self, seq: int) -> list[tuple[int, bytes, int, int]]:
        """The messages answering ``seq`` up to its NLMSG_DONE (or acknowledgement), as :meth:`dump_spans`
        gives them; raises on an error answer. (A list built in one loop: a read-back takes thousands.)"""
        out: list[tuple[int, bytes, int, int]] = []
        unpack, header = _HDR.unpack_from, _HDR.size
        while True:
            data = self.sock.recv(1 << 20)
            offset, size = 0, len(data)
            while offset + header <= size:
                length, kind, _, msg_seq, _ = unpack(data, offset)
                if length < header:
                    return out
                if msg_seq == seq:
                    if kind == NLMSG_DONE:
                        return out
                    if kind == NLMSG_ERROR:
                        code = struct.unpack_from("=i", data, offset + header)[0]
                        if code:
                            raise BackendError(f"netlink dump failed: errno {-code}", backend="linux")
                        return out
                    out.append((kind, data, offset + header, offset + length))
                offset += (length + 3) & ~3

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
        for kind, buf, off, end in self.dump_spans(RTM_GETROUTE, _ROUTE_DUMP):
            if kind == RTM_NEWROUTE and buf[off + _RTMSG_PROTOCOL] in protocols:
                fields = route_fields(buf, off, end)
                if fields is not None:
                    out.append(RouteMsg(*fields))
        return out

    def kernel_routes(
        self, node: str, protocols: frozenset[int], written: WrittenRoutes | None = None
    ) -> list[KernelRoute]:
        """:meth:`routes` as the kernel objects of ``node`` (decoded straight from the receive buffers:
        the read-back of every apply goes through here). ``written``: IPv4 routes just written (see
        :func:`route_messages`); a route the kernel holds with one's destination and shape is that
        route (decoding it gives an equal one: the destination text of an IPv4 route is canonical)."""
        out: list[KernelRoute] = []
        ntop, inet = socket.inet_ntop, socket.AF_INET
        known = (written or {}).get
        add, new_route, protocol_at, head_bytes = out.append, RTM_NEWROUTE, _RTMSG_PROTOCOL, _V4_HEAD_BYTES
        table_header, dst_header = _TABLE_HEADER, _V4_DST_HEADER
        shapes: dict[tuple[bytes, bytes], RouteShape | None] = {}  # _v4_shape, per call: no lru wrapper
        # per written shape (by id: ``written`` holds them), the bytes around the destination of a route
        # read back and found to have that shape: a route with those very bytes has it too (the shape
        # is a function of them), compared in place without slicing or decoding
        seen: dict[int, tuple[bytes, bytes, int]] = {}
        for kind, buf, off, end in self.dump_spans(RTM_GETROUTE, _ROUTE_DUMP):
            if kind != new_route or buf[off + protocol_at] not in protocols:
                continue
            head_end = off + head_bytes
            if buf[off] == inet and buf.startswith(dst_header, head_end):
                # IPv4, as the kernel dumps it: RTA_TABLE, RTA_DST, then the rest, which routes of one
                # node share (a few sets of next hops): decoded once per shape, not once per route
                dst_bytes = buf[head_end + 4 : head_end + 8]
                entry = known(dst_bytes)
                if entry is not None:
                    pattern = seen.get(id(entry[0]))
                    if (
                        pattern is not None
                        and end - head_end - 8 == pattern[2]
                        and buf.startswith(pattern[0], off)
                        and buf.startswith(pattern[1], head_end + 8)
                    ):
                        add(entry[1])
                        continue
                if buf.startswith(table_header, head_end - 8):
                    parts = (buf[off:head_end], buf[head_end + 8 : end])
                    shape = shapes.get(parts, _UNSEEN)
                    if shape is _UNSEEN:
                        shape = shapes[parts] = _v4_shape(*parts)
                    if shape is not None:
                        if entry is not None and entry[0] == shape:
                            seen[id(entry[0])] = (*parts, len(parts[1]))
                            add(entry[1])
                            continue
                        table, protocol, dst_len, hops = shape
                        dst = ntop(inet, dst_bytes)
                        add(KernelRoute(node, table, f"{dst}/{dst_len}", protocol, hops))
                        continue
            fields = route_fields(buf, off, end)
            if fields is not None:
                _, table, protocol, dst, dst_len, hops = fields
                out.append(KernelRoute(node, table, f"{dst}/{dst_len}", protocol, hops))
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

    def class_rows(self, ifindex: int) -> list[tuple[int, str, int, int]]:
        """(handle, kind, rate, ceil) of the classes on the device, decoded as :meth:`classes` does with
        ``counters=False``, as plain tuples (a read-back decodes thousands)."""
        out = []
        htb = b"htb\0"
        # the bytes from TCA_KIND to the payload of TCA_OPTIONS of the first HTB class whose two
        # attributes come first: a class starting with the very same bytes has its options right after
        # them, of the same length (the kernel dumps every HTB class so), found without a scan
        head, head_end, options_size = b"", 0, 0
        attributes = _TCMSG.size
        for kind, buf, off, end in self.dump_spans(RTM_GETTCLASS, _TCMSG.pack(0, ifindex, 0, 0, 0)):
            if kind != RTM_NEWTCLASS:
                continue
            handle = _U32.unpack_from(buf, off + _TCMSG_HANDLE)[0]
            if head_end and buf.startswith(head, off + attributes):
                start = off + head_end
                out.append((handle, "htb", *_htb_rates(buf[start : start + options_size])))
                continue
            kind_span, options = _kind_and_options(buf, off + attributes, end)
            if kind_span is None or buf[kind_span[0] : kind_span[1]] != htb or options is None:
                out.append((handle, _text(buf, kind_span), 0, 0))
                continue
            if kind_span[0] == off + attributes + 4 and options[0] == kind_span[1] + 4:
                head, head_end = buf[off + attributes : options[0]], options[0] - off
                options_size = options[1] - options[0]
            rate, ceil = _htb_rates(buf[options[0] : options[1]])
            out.append((handle, "htb", rate, ceil))
        return out

    def classes(self, ifindex: int, *, counters: bool = True) -> list[ClassMsg]:
        """The classes on the device; ``counters=False`` leaves ``sent_bytes`` at 0 (a read-back needs
        the rates only, and its decoding stops before the statistics)."""
        if not counters:
            return [ClassMsg(*row) for row in self.class_rows(ifindex)]
        out = []
        for kind, buf, off, end in self.dump_spans(RTM_GETTCLASS, _TCMSG.pack(0, ifindex, 0, 0, 0)):
            if kind != RTM_NEWTCLASS:
                continue
            handle = _U32.unpack_from(buf, off + _TCMSG_HANDLE)[0]
            kind_span, options = _kind_and_options(buf, off + _TCMSG.size, end)
            sent = 0
            if counters:
                stats = _spans(buf, off + _TCMSG.size, end).get(_TCA_STATS2)
                sent = 0 if stats is None else _sent_bytes(buf, stats)
            if kind_span is None or buf[kind_span[0] : kind_span[1]] != b"htb\0" or options is None:
                out.append(ClassMsg(handle, _text(buf, kind_span), 0, 0, sent))
                continue
            rate, ceil = _htb_rates(buf[options[0] : options[1]])
            out.append(ClassMsg(handle, "htb", rate, ceil, sent))
        return out

    def u32_filters(self, ifindex: int, parent: int) -> list[U32Msg]:
        return [U32Msg(h, p, c, k) for h, p, c, k in self.u32_rows(ifindex, parent) if k is not None]

    def u32_rows(
        self, ifindex: int, parent: int, written: Mapping[int, tuple[bytes, object]] | None = None
    ) -> list[tuple[int, int, int, tuple[tuple[int, int], ...] | None]]:
        """(handle, priority, classid, match words) of the u32 filters under ``parent``, as
        :meth:`u32_filters` gives them, as plain tuples (a read-back decodes thousands). ``written``:
        per handle, the tc_u32_sel just written (first of each pair); a filter the kernel holds with
        those very bytes (and the class of its handle) comes with ``None`` for its words: it is the one
        written, not decoded again (the kernel keeps the selector as sent, dumps it back byte for byte)."""
        out: list[tuple[int, int, int, tuple[tuple[int, int], ...] | None]] = []
        known = (written or {}).get
        layouts = _FilterLayouts()
        for kind, buf, off, end in self.dump_spans(RTM_GETTFILTER, _TCMSG.pack(0, ifindex, 0, parent, 0)):
            if kind != RTM_NEWTFILTER:
                continue
            if layouts.by_size:  # a written filter found as written: later ones by its layout
                handle = _U32.unpack_from(buf, off + _TCMSG_HANDLE)[0]
                entry = known(handle)
                priority = None if entry is None else layouts.priority(buf, off, end, handle, entry[0])
                if priority is not None:
                    out.append((handle, priority, 0x10000 | (handle & 0xFFF), None))
                    continue
            _, _, handle, _, info = _TCMSG.unpack_from(buf, off)
            spans = _u32_spans(buf, off, end)
            if spans is None:
                continue
            sel, sel_end, classid = spans
            entry = known(handle)
            if (
                entry is not None
                and sel_end - sel == len(entry[0])
                and buf.startswith(entry[0], sel)
                and _U32.unpack_from(buf, classid)[0] == 0x10000 | (handle & 0xFFF)
            ):
                layouts.learn(buf, off, end, spans, info >> 16)
                out.append((handle, info >> 16, 0x10000 | (handle & 0xFFF), None))
                continue
            count, first = buf[sel + 2], sel + _U32_SEL.size
            values_of, offsets_of = _u32_key_structs(count)  # values big-endian, offsets native
            keys = tuple(
                zip(offsets_of.unpack_from(buf, first), values_of.unpack_from(buf, first), strict=True)
            )
            out.append((handle, info >> 16, _U32.unpack_from(buf, classid)[0], keys))
        return out


def _u32_spans(buf: bytes, off: int, end: int) -> tuple[int, int, int] | None:
    """(selector start, selector end, class id offset) of the u32 filter message at ``buf[off:end]``
    (None for another kind, or a filter without them: a hash table)."""
    kind_span, options = _kind_and_options(buf, off + _TCMSG.size, end)
    if kind_span is None or buf[kind_span[0] : kind_span[1]] != b"u32\0" or options is None:
        return None
    sel = classid = None
    sel_end = 0
    pos, stop = options
    while pos + 4 <= stop:  # one pass over the options: no dict of their spans
        length, attr = _ATTR.unpack_from(buf, pos)
        if length < 4:
            break
        attr &= 0x3FFF
        if attr == TCA_U32_SEL:
            sel, sel_end = pos + 4, pos + length
        elif attr == TCA_U32_CLASSID:
            classid = pos + 4
        pos += (length + 3) & ~3
    return None if sel is None or classid is None else (sel, sel_end, classid)


class _FilterLayouts:
    """Per selector length, the layout of the first written filter of a dump found as written: the
    bytes from tcm_info to the selector, those from the selector to the class id, those after it, the
    message size and the priority. A message of a written handle with those very bytes around its
    selector and class id is that filter too (handle, class id and selector are all that differ between
    the filters of one device), compared in place without a scan."""

    __slots__ = ("by_size",)
    _INFO_AT = _TCMSG.size - 4

    def __init__(self) -> None:
        self.by_size: dict[int, tuple[bytes, bytes, bytes, int, int]] = {}

    def learn(self, buf: bytes, off: int, end: int, spans: tuple[int, int, int], priority: int) -> None:
        sel, sel_end, classid = spans
        if sel_end <= classid - 4:  # the class id after the selector, as the kernel dumps it
            head, middle, tail = buf[off + self._INFO_AT : sel], buf[sel_end:classid], buf[classid + 4 : end]
            self.by_size[sel_end - sel] = (head, middle, tail, end - off, priority)

    def priority(self, buf: bytes, off: int, end: int, handle: int, selector: bytes) -> int | None:
        """The priority of the filter at ``buf[off:end]`` if it has a learnt layout around ``selector``
        and the class of ``handle``; None otherwise (decode it)."""
        layout = self.by_size.get(len(selector))
        if layout is None:
            return None
        head, middle, tail, size, priority = layout
        sel = off + self._INFO_AT + len(head)
        at = sel + len(selector) + len(middle)
        if (
            end - off == size
            and buf.startswith(head, off + self._INFO_AT)
            and buf.startswith(selector, sel)
            and buf.startswith(middle, at - len(middle))
            and _U32.unpack_from(buf, at)[0] == 0x10000 | (handle & 0xFFF)
            and buf.startswith(tail, at + 4)
        ):
            return priority
        return None


@functools.lru_cache(maxsize=64)
def _u32_key_structs(count: int) -> tuple[struct.Struct, struct.Struct]:
    """Structs reading the values (big-endian, after each key's mask) and the offsets (native) of
    ``count`` consecutive tc_u32_keys in one call each."""
    return struct.Struct("!" + "4xI8x" * count), struct.Struct("=" + "8xi4x" * count)


def _kind_and_options(
    buf: bytes, pos: int, end: int
) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """The payload spans of TCA_KIND and TCA_OPTIONS of a tc message whose attributes lie in
    ``buf[pos:end]``: the kernel puts them first, so the scan stops before the statistics."""
    kind_span = options = None
    while pos + 4 <= end:
        length, attr = _ATTR.unpack_from(buf, pos)
        if length < 4:
            break
        attr &= 0x3FFF
        if attr == TCA_KIND:
            kind_span = (pos + 4, pos + length)
        elif attr == TCA_OPTIONS:
            options = (pos + 4, pos + length)
        if kind_span is not None and options is not None:
            break
        pos += (length + 3) & ~3
    return kind_span, options


@functools.lru_cache(maxsize=1 << 12)
def _htb_rates(options: bytes) -> tuple[int, int]:
    """(rate, ceil) in bytes/s of an HTB class's TCA_OPTIONS payload (the classes of one rate on one
    link share it: a pure function of its bytes)."""
    spans = _spans(options, 0, len(options))
    rate = ceil = 0
    parms = spans.get(TCA_HTB_PARMS)
    if parms is not None:
        rate, ceil = _HTB_RATES.unpack_from(options, parms[0])
    rate64, ceil64 = spans.get(TCA_HTB_RATE64), spans.get(TCA_HTB_CEIL64)
    rate = _U64.unpack_from(options, rate64[0])[0] if rate64 is not None else rate
    ceil = _U64.unpack_from(options, ceil64[0])[0] if ceil64 is not None else ceil
    return rate, ceil


_TCMSG_HANDLE = 8
"""Offset of ``tcm_handle`` in a tcmsg (family and padding, then ifindex)."""
_TCA_STATS2 = 7
_HTB_RATES = struct.Struct("=8xI8xI")
"""rate.rate and ceil.rate of a tc_htb_opt (two 12-byte tc_ratespec, rate last in each)."""
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


def _spans(buf: bytes, pos: int, end: int) -> dict[int, tuple[int, int]]:
    """(payload start, payload end) of each attribute in ``buf[pos:end]`` by type (no copies)."""
    out: dict[int, tuple[int, int]] = {}
    unpack = _ATTR.unpack_from
    while pos + 4 <= end:
        length, kind = unpack(buf, pos)
        if length < 4:
            break
        out[kind & 0x3FFF] = (pos + 4, pos + length)
        pos += (length + 3) & ~3
    return out


def _text(buf: bytes, span: tuple[int, int] | None) -> str:
    return "" if span is None else buf[span[0] : span[1]].rstrip(b"\0").decode()


def _sent_bytes(buf: bytes, stats2: tuple[int, int]) -> int:
    basic = _spans(buf, *stats2).get(1)  # TCA_STATS_BASIC: u64 bytes, u32 packets
    return 0 if basic is None else int(_U64.unpack_from(buf, basic[0])[0])


_RTMSG_PROTOCOL = 5
_RTA_DST, _RTA_GATEWAY, _RTA_MULTIPATH, _RTA_TABLE = 1, 5, 9, 15


_ROUTE_DUMP = _RTMSG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0)
RouteFields = tuple[int, int, int, str, int, tuple[tuple[str, int], ...]]
"""(family 4/6, table, protocol, destination address, prefix length, sorted (gateway, kernel weight))."""


def route_at(buf: bytes, off: int) -> RouteMsg | None:
    """The route message (RTM_NEWROUTE or RTM_DELROUTE) whose rtmsg starts at ``off`` and runs to the
    end of ``buf``; None for a family other than IPv4/IPv6."""
    fields = route_fields(buf, off, len(buf))
    return None if fields is None else RouteMsg(*fields)


def route_fields(buf: bytes, off: int, end: int) -> RouteFields | None:
    """The route message whose rtmsg lies in ``buf[off:end]``, decoded in one pass over its attributes
    (the hot loop of every read-back: a dict of attribute views per route cost twice as much); None for
    a family other than IPv4/IPv6."""
    af, dst_len, _, _, table, protocol, _, _, _ = _RTMSG.unpack_from(buf, off)
    if af not in _AF:
        return None
    family = _AF[af]
    dst = gateway = b""
    multipath: tuple[int, int] | None = None
    pos = off + _RTMSG.size
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
    if multipath is not None:
        return family, table, protocol, address, dst_len, _multipath(buf[multipath[0] : multipath[1]], af)
    return family, table, protocol, address, dst_len, _single_hop(af, gateway)


_V4_HEAD_BYTES = _RTMSG.size + 8
"""An IPv4 route message's rtmsg and its first attribute, RTA_TABLE (as the kernel dumps it)."""
_TABLE_HEADER, _V4_DST_HEADER = _ATTR.pack(8, _RTA_TABLE), _ATTR.pack(8, _RTA_DST)


_UNSEEN: Any = object()


@functools.lru_cache(maxsize=1 << 12)
def _v4_shape(head: bytes, rest: bytes) -> tuple[int, int, int, tuple[tuple[str, int], ...]] | None:
    """(table, protocol, prefix length, next hops) of an IPv4 route message made of ``head`` (rtmsg and
    RTA_TABLE), an RTA_DST and ``rest``: everything but the destination, hence shared by many routes."""
    fields = route_fields(head + _V4_DST_HEADER + bytes(4) + rest, 0, len(head) + 8 + len(rest))
    if fields is None or fields[0] != 4:
        return None
    _, table, protocol, _, dst_len, hops = fields
    return table, protocol, dst_len, hops


@functools.lru_cache(maxsize=4096)
def _single_hop(af: int, gateway: bytes) -> tuple[tuple[str, int], ...]:
    """A route's next hop from its gateway bytes (a lab node has a handful of gateways)."""
    return ((socket.inet_ntop(af, gateway) if gateway else "", 1),)


@functools.lru_cache(maxsize=1 << 14)
def _multipath(buf: bytes, af: int) -> tuple[tuple[str, int], ...]:
    """The (gateway, weight) next hops of an RTA_MULTIPATH payload: a pure function of its bytes, which
    the routes sharing a set of weighted next hops share."""
    pos, end = 0, len(buf)
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


NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETSET, NFT_MSG_NEWSET = 10, 9
NFT_MSG_GETSETELEM, NFT_MSG_NEWSETELEM = 13, 12
NFPROTO_INET = 1
_NFGEN = struct.Struct("=BBH")
_ELEM_INTERVAL_END = 1
NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_EXPIRATION = 3, 5


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
    length = 4 + len(payload)
    return _ATTR.pack(length, kind) + payload + _PAD[-length & 3]


_PAD = (b"", b"\0", b"\0\0", b"\0\0\0")


def _cstr(text: str) -> bytes:
    return text.encode() + b"\0"


class NftReader(NetlinkReader):
    """Dumps of nf_tables sets and set elements (NETLINK_NETFILTER): what ``nft list`` shows, without
    libnftables' formatting cost."""

    @classmethod
    def open_here(cls) -> NftReader:
        return cls(_request_socket(NETLINK_NETFILTER))

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
        return [ElementMsg(*row) for row in self.element_rows(table, set_name, family)]

    def element_rows(self, table: str, set_name: str, family: int = NFPROTO_INET) -> list[ElementRow]:
        """:meth:`elements` as plain tuples (the read-back decodes thousands: no object per row)."""
        return self.known_elements(table, set_name, {}, family)[1]

    def known_elements(
        self, table: str, set_name: str, known: Mapping[bytes, T], family: int = NFPROTO_INET
    ) -> tuple[list[T], list[ElementRow]]:
        """The set's elements: those whose :func:`element_signature` is a key of ``known`` as its values
        (not decoded: the read-back of an apply matches the elements it wrote by the bytes it wrote),
        the others as :meth:`element_rows` gives them."""
        payload = _NFGEN.pack(family, 0, 0) + _nla(1, _cstr(table)) + _nla(2, _cstr(set_name))
        found: list[T] = []
        rows: list[ElementRow] = []
        unpack = _ATTR.unpack_from
        lookup = known.get
        record_key, with_comment, join = _RECORD_KEY_DUMPED, _MASKS[4], b"".join
        for _, buf, off, end in self.dump_spans((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, payload):
            span = _attr_span(buf, off + _NFGEN.size, end, NFTA_SET_ELEM_LIST_ELEMENTS)
            if span is None:
                continue
            pos, stop = span
            while pos + 4 <= stop:
                length = unpack(buf, pos)[0]
                if length < 4:
                    break
                if known:
                    body, stop_at = pos + 4, pos + length
                    # an item record as dumped (its key, then its comment, last): its signature
                    # without the attribute loop (a read-back matches thousands)
                    if buf.startswith(record_key, body) and body + 24 <= stop_at:
                        udata_length, udata_kind = unpack(buf, body + 20)
                        if (
                            udata_kind & 0x3FFF == NFTA_SET_ELEM_USERDATA
                            and udata_length >= 4
                            and body + 24 + ((udata_length + 3) & ~3) > stop_at
                            and body + 20 + udata_length <= stop_at
                        ):
                            record = buf[body + 8 : body + 20], buf[body + 24 : body + 20 + udata_length]
                            signature: bytes | None = join((with_comment, *record))
                        else:
                            signature = _signature_at(buf, body, stop_at)
                    else:
                        signature = _signature_at(buf, body, stop_at)
                    hit = None if signature is None else lookup(signature)
                    if hit is not None:
                        found.append(hit)
                        pos += (length + 3) & ~3
                        continue
                element = _element_at(buf, pos + 4, pos + length)
                if element is not None:
                    rows.append(element)
                pos += (length + 3) & ~3
        return found, rows


def _attr_span(buf: bytes, pos: int, end: int, wanted: int) -> tuple[int, int] | None:
    """(payload start, payload end) of the first attribute of type ``wanted`` in ``buf[pos:end]``."""
    while pos + 4 <= end:
        length, kind = _ATTR.unpack_from(buf, pos)
        if length < 4:
            return None
        if kind & 0x3FFF == wanted:
            return pos + 4, pos + length
        pos += (length + 3) & ~3
    return None


def _value_at(buf: bytes, pos: int, end: int) -> bytes | None:
    """The NFTA_DATA_VALUE inside a nested data attribute whose payload is ``buf[pos:end]``."""
    span = _attr_span(buf, pos, end, 1)
    return None if span is None else buf[span[0] : span[1]]


ElementRow = tuple[bytes, bytes | None, bytes | None, str, int | None, int | None]
"""The fields of an :class:`ElementMsg`, in order."""


def _element_at(buf: bytes, pos: int, end: int) -> ElementRow | None:
    """One NFTA_LIST_ELEM (its attributes in ``buf[pos:end]``), decoded in one pass: read-backs decode
    thousands of these, so no dict of attribute views per element."""
    key = key_end = data = None
    comment = ""
    timeout_ms = expires_ms = None
    unpack = _ATTR.unpack_from
    while pos + 4 <= end:
        length, kind = unpack(buf, pos)
        if length < 4:
            break
        kind &= 0x3FFF
        body, stop = pos + 4, pos + length
        if kind == NFTA_SET_ELEM_KEY:
            key = _value_at(buf, body, stop)
        elif kind == NFTA_SET_ELEM_KEY_END:
            key_end = _value_at(buf, body, stop)
        elif kind == NFTA_SET_ELEM_DATA:
            data = _value_at(buf, body, stop)
        elif kind == NFTA_SET_ELEM_FLAGS:
            if int.from_bytes(buf[body : body + 4], "big") & _ELEM_INTERVAL_END:
                return None  # the closing half of an old-style interval (not used by our sets)
        elif kind == NFTA_SET_ELEM_TIMEOUT:
            timeout_ms = int.from_bytes(buf[body : body + 8], "big")
        elif kind == NFTA_SET_ELEM_EXPIRATION:
            expires_ms = int.from_bytes(buf[body : body + 8], "big")
        elif kind == NFTA_SET_ELEM_USERDATA:
            comment = _comment(buf[body:stop])
        pos += (length + 3) & ~3
    if key is None:
        return None
    return key, key_end, data, comment, timeout_ms, expires_ms


def element_signature(key: bytes, key_end: bytes | None, data: bytes | None, comment: str) -> bytes:
    """What identifies an element's content as the kernel dumps it (key, key end, map data, the comment
    as its user data; not the timeout, which the kernel reports as what is left): equal signatures,
    equal elements, for the same set. None of the parts is decoded to compare them."""
    mask = (key_end is not None) | (data is not None) << 1 | bool(comment) << 2
    udata = _comment_udata(comment) if comment else b""
    return b"".join((_MASKS[mask], key, key_end or b"", data or b"", udata))


def _comment_udata(comment: str) -> bytes:
    """An element's comment as its user data (the TLV ``nft`` writes: type, length, text, NUL)."""
    text = comment.encode()
    return bytes((NFTNL_UDATA_SET_ELEM_COMMENT, len(text) + 1)) + text + b"\0"


_MASKS = tuple(bytes((mask,)) for mask in range(8))


def _signature_at(buf: bytes, pos: int, end: int) -> bytes | None:
    """:func:`element_signature` of the NFTA_LIST_ELEM whose attributes lie in ``buf[pos:end]``, read
    from the raw bytes in one pass; None where the element is not a plain one of ours (a verdict, the
    closing half of an interval, an attribute out of shape): those are decoded instead."""
    key = key_end = data = udata = b""
    mask = 0
    unpack = _ATTR.unpack_from
    if buf[pos : pos + 8] == _RECORD_KEY_DUMPED and pos + 20 <= end:  # an item record's key, as dumped
        key, pos = buf[pos + 8 : pos + 20], pos + 20
    while pos + 4 <= end:
        length, kind = unpack(buf, pos)
        if length < 4:
            return None
        kind &= 0x3FFF
        if kind in _VALUE_KINDS:
            inner, inner_kind = unpack(buf, pos + 4) if length >= 8 else (0, 0)
            if inner_kind & 0x3FFF != NFTA_DATA_VALUE or inner < 4 or 4 + inner > length:
                return None
            value = buf[pos + 8 : pos + 4 + inner]
            if kind == NFTA_SET_ELEM_KEY:
                key = value
            elif kind == NFTA_SET_ELEM_KEY_END:
                key_end, mask = value, mask | 1
            else:
                data, mask = value, mask | 2
        elif kind == NFTA_SET_ELEM_USERDATA:
            udata, mask = buf[pos + 4 : pos + length], mask | 4
        elif kind == NFTA_SET_ELEM_FLAGS:
            return None  # flags (an interval end, say): the decoder decides
        pos += (length + 3) & ~3
    if not key:
        return None
    return b"".join((_MASKS[mask], key, key_end, data, udata))


def _comment(userdata: bytes) -> str:
    pos = 0
    while pos + 2 <= len(userdata):
        kind, length = userdata[pos], userdata[pos + 1]
        if kind == NFTNL_UDATA_SET_ELEM_COMMENT:
            return userdata[pos + 2 : pos + 2 + length].rstrip(b"\0").decode()
        pos += 2 + length
    return ""


NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x4, 0x100, 0x400
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
RTN_UNICAST, RT_SCOPE_UNIVERSE = 1, 0


class NetlinkWriter(NetlinkReader):
    """Route writes over the session's socket: one with an acknowledgement (the reactive controller), or
    thousands packed into few ``send`` calls with their acknowledgements collected afterwards (plans:
    no process start, no per-route round trip)."""

    def bulk(self, messages: list[tuple[int, int, bytes]]) -> list[tuple[int, int]]:
        """Send (type, flags, payload) messages; returns (index, errno) of the ones the kernel refused,
        in order. Every message is tried (the kernel handles them one by one, in order). Only the last
        message of each ``send`` asks for an acknowledgement: the kernel answers a refused message with
        an error whether or not it asked, so the acknowledgement of the last says that every message
        before it was handled, and the errors before it name the refused ones (thousands of
        acknowledgements built, queued and read cost about as much as the routes' own encoding)."""
        failures: list[tuple[int, int]] = []
        pack, header_size, count = _HDR.pack, _HDR.size, len(messages)
        request, acked = NLM_F_REQUEST, NLM_F_REQUEST | NLM_F_ACK
        with self.lock:
            base = self._seq + 1
            self._seq += count
            parts: list[bytes] = []
            filled = first = 0
            for index, (kind, flags, payload) in enumerate(messages):
                size = header_size + len(payload)
                last = index + 1 == count or filled + size >= BULK_CHUNK_BYTES  # a chunk ends at 48 KiB
                parts.append(pack(size, kind, flags | (acked if last else request), base + index, 0))
                parts.append(payload)
                filled += size
                if last:
                    self.sock.send(b"".join(parts))
                    failures += self._errors_until(base + first, base + index, base)
                    parts.clear()
                    filled, first = 0, index + 1
        return failures

    def _errors_until(self, first_seq: int, last_seq: int, base: int) -> list[tuple[int, int]]:
        """The refusals among the messages ``first_seq..last_seq`` (as (index, errno), index counted
        from ``base``), read until the answer to ``last_seq``, which always comes (it asked for one)."""
        failures = []
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, _, seq, _ = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                if kind == NLMSG_ERROR and first_seq <= seq <= last_seq:
                    code = _ERRNO.unpack_from(data, offset + _HDR.size)[0]
                    if code:
                        failures.append((seq - base, -code))
                    if seq == last_seq:
                        return failures
                offset += _align(length)

    def request(self, msg_type: int, flags: int, payload: bytes) -> None:
        with self.lock:
            self._seq += 1
            seq = self._seq
            header = _HDR.pack(_HDR.size + len(payload), msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
            self.sock.send(header + payload)
            # an ACK is an NLMSG_ERROR with code 0: _receive returns on it, raises otherwise
            self._receive(seq)

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
        listener = cls(_request_socket(NETLINK_NETFILTER), queue)
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
    return _route_message(action, destination, next_hops, protocol, table)[0]


def _route_message(
    action: str, destination: str, next_hops: tuple[tuple[str, int], ...], protocol: int, table: int
) -> tuple[tuple[int, int, bytes], bytes, int]:
    """(:func:`route_message`, destination address bytes, prefix length)."""
    address, _, length = destination.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    dst = socket.inet_pton(family, address)
    bits = len(dst) * 8
    prefix_len = bits if length == _FULL_LENGTH[bits] or not length else int(length)
    head = _route_head(family, prefix_len, protocol, table) + _DST_HEADER[bits]  # RTA_DST: no padding
    if action == "delete":  # matches our protocol only (scope "nowhere" matched nothing on this kernel)
        return (RTM_DELROUTE, 0, head + dst), dst, prefix_len
    message = (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, head + dst + _next_hops(family, next_hops))
    return message, dst, prefix_len


RouteShape = tuple[int, int, int, tuple[tuple[str, int], ...]]
"""(table, protocol, prefix length, next hops) of a route: all of it but its destination."""
WrittenRoutes = dict[bytes, tuple[RouteShape, KernelRoute]]
"""IPv4 routes written, by destination address: their shape and the route (for the read-back)."""


def route_messages(
    ops: Sequence[tuple[str, KernelRoute | KernelRule]],
) -> tuple[list[Message], WrittenRoutes]:
    """The messages of ``ops`` (action, route or rule), and the IPv4 routes they replace by destination
    address (one the same address in two tables is left out: the read-back decodes those)."""
    messages: list[Message] = []
    written: WrittenRoutes = {}
    clashes: set[bytes] = set()
    pton, inet, v4_dst, replace = (
        socket.inet_pton,
        socket.AF_INET,
        _DST_HEADER[32],
        NLM_F_CREATE | NLM_F_REPLACE,
    )
    # per (protocol, table, next hops object) of IPv4 host routes: the bytes before and after the
    # destination, and the shape (a node's routes share a few: worked out once per call; the next hops
    # are held by ``ops`` while the call lasts, so their id is theirs)
    shapes: dict[tuple[int, int, int], tuple[bytes, bytes, RouteShape]] = {}
    join, add = b"".join, messages.append
    for action, obj in ops:
        if isinstance(obj, KernelRule):
            add(rule_message(action, obj))
            continue
        address, _, length = obj.destination.partition("/")
        if action == "replace" and length == "32" and ":" not in address:  # an IPv4 host route, inline
            dst = pton(inet, address)
            hops = obj.next_hops
            shape_key = (obj.protocol, obj.table, id(hops))
            known = shapes.get(shape_key)
            if known is None:
                head = _route_head(inet, 32, obj.protocol, obj.table) + v4_dst
                shape = (obj.table, obj.protocol, 32, hops)
                known = shapes[shape_key] = (head, _next_hops(inet, hops), shape)
            add((RTM_NEWROUTE, replace, join((known[0], dst, known[1]))))
            if dst in written:
                clashes.add(dst)
            written[dst] = (known[2], obj)
            continue
        message, dst, prefix_len = _route_message(
            action, obj.destination, obj.next_hops, obj.protocol, obj.table
        )
        add(message)
        if action == "replace" and len(dst) == 4:
            if dst in written:
                clashes.add(dst)
            written[dst] = ((obj.table, obj.protocol, prefix_len, obj.next_hops), obj)
    for dst in clashes:
        del written[dst]
    return messages, written


_DST_HEADER = {32: _ATTR.pack(8, RTA_DST), 128: _ATTR.pack(20, RTA_DST)}
_FULL_LENGTH = {32: "32", 128: "128"}


@functools.lru_cache(maxsize=1024)
def _route_head(family: int, prefix_len: int, protocol: int, table: int) -> bytes:
    """The rtmsg and RTA_TABLE of a route (shared by every route of one table, protocol and length)."""
    header = _RTMSG.pack(family, prefix_len, 0, 0, table & 0xFF, protocol, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    return header + _nla(RTA_TABLE, struct.pack("=I", table))


@functools.lru_cache(maxsize=1 << 14)
def _next_hops(family: int, next_hops: tuple[tuple[str, int], ...]) -> bytes:
    """RTA_GATEWAY, or RTA_MULTIPATH of weighted gateways (a node's routes share a few of these)."""
    if len(next_hops) == 1:
        return _nla(RTA_GATEWAY, socket.inet_pton(family, next_hops[0][0]))
    hops = b""
    for gateway, weight in next_hops:
        inner = _nla(RTA_GATEWAY, socket.inet_pton(family, gateway))
        hops += _RTNH.pack(_RTNH.size + len(inner), 0, weight - 1, 0) + inner
    return _nla(RTA_MULTIPATH, hops)


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
_VALUE_KINDS = frozenset((NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END, NFTA_SET_ELEM_DATA))
_RECORD_KEY_DUMPED = _ATTR.pack(20, NFTA_SET_ELEM_KEY) + _ATTR.pack(16, NFTA_DATA_VALUE)
"""The headers of a 12-byte key as the kernel dumps them (no NESTED flag): the first attribute of
every item record, read without the loop."""
ELEMENTS_PER_MESSAGE = 256
"""Elements per NEWSETELEM/DELSETELEM message: a refused message names its first element."""


class ElementWrite(NamedTuple):
    """One element of an nf_tables transaction: ``key`` (and ``key_end`` in an interval set) as the
    kernel stores them, map ``data``, ``comment`` and ``timeout_ms`` (adds only). A named tuple: an
    apply makes one per element written, and a frozen dataclass costs several times more to build."""

    action: str
    """``add`` or ``delete``."""
    set_name: str
    key: bytes
    key_end: bytes | None = None
    data: bytes | None = None
    comment: str = ""
    timeout_ms: int | None = None


EncodedWrite = tuple[str, str, bytes]
"""One element of an nf_tables transaction: (``add`` or ``delete``, set name, its NFTA_LIST_ELEM
attributes already encoded: see :func:`element_attrs`), what :meth:`NftWriter.encoded_transaction`
batches (a plain tuple: an apply makes one per element it writes)."""


def element_attrs(write: ElementWrite) -> bytes:
    """The attributes of one NFTA_LIST_ELEM (built with as few concatenations as the format allows: an
    apply encodes one per element it writes)."""
    action, _, key, key_end, data, comment, timeout_ms = write
    if key_end is None and data is None and len(key) == 12:  # an item record: the bulk of every write
        return record_attrs(action, key, comment, timeout_ms)
    parts = [_value_attr(NFTA_SET_ELEM_KEY, key)]
    if key_end is not None:
        parts.append(_value_attr(NFTA_SET_ELEM_KEY_END, key_end))
    if action != "delete":
        if data is not None:
            parts.append(_value_attr(NFTA_SET_ELEM_DATA, data))
        if timeout_ms is not None:
            parts.append(_TIMEOUT_HEADER + _BE64.pack(timeout_ms))
        if comment:
            parts.append(_nla(NFTA_SET_ELEM_USERDATA, _comment_udata(comment)))
    return b"".join(parts)


def _value_attr(kind: int, value: bytes) -> bytes:
    """``kind`` (nested) holding one NFTA_DATA_VALUE: ``_nla(kind | NESTED, _nla(VALUE, value))``."""
    return _value_head(kind, len(value)) + value + _PAD[-len(value) & 3]


@functools.lru_cache(maxsize=256)
def _value_head(kind: int, size: int) -> bytes:
    """The two attribute headers in front of a ``size``-byte value in :func:`_value_attr` (a set's
    elements share a few sizes)."""
    inner = 4 + size
    return _ATTR.pack(4 + inner + (-inner & 3), kind | NLA_F_NESTED) + _ATTR.pack(inner, NFTA_DATA_VALUE)


_TIMEOUT_HEADER = _ATTR.pack(12, NFTA_SET_ELEM_TIMEOUT)
_KEY12_HEADER = _ATTR.pack(20, NFTA_SET_ELEM_KEY | NLA_F_NESTED) + _ATTR.pack(16, NFTA_DATA_VALUE)


def record_add(key: bytes, comment: str, timeout_ms: int | None) -> tuple[bytes, bytes]:
    """(:func:`record_attrs`, :func:`element_signature`) of adding an item record, the comment
    encoded once for both."""
    timeout = b"" if timeout_ms is None else _TIMEOUT_HEADER + _BE64.pack(timeout_ms)
    if not comment:
        return _KEY12_HEADER + key + timeout, _MASKS[0] + key
    udata = _comment_udata(comment)
    size = len(udata)
    header = _ATTR.pack(4 + size, NFTA_SET_ELEM_USERDATA)
    return b"".join((_KEY12_HEADER, key, timeout, header, udata, _PAD[-size & 3])), _MASKS[4] + key + udata


def element_add(
    key: bytes, key_end: bytes | None, data: bytes | None, comment: str, timeout_ms: int | None
) -> tuple[bytes, bytes]:
    """(:func:`element_attrs`, :func:`element_signature`) of adding an element, the comment encoded
    once for both."""
    parts = [_value_head(NFTA_SET_ELEM_KEY, len(key)), key, _PAD[-len(key) & 3]]
    mask = 0
    if key_end is not None:
        parts += (_value_head(NFTA_SET_ELEM_KEY_END, len(key_end)), key_end, _PAD[-len(key_end) & 3])
        mask = 1
    if data is not None:
        parts += (_value_head(NFTA_SET_ELEM_DATA, len(data)), data, _PAD[-len(data) & 3])
        mask |= 2
    if timeout_ms is not None:
        parts += (_TIMEOUT_HEADER, _BE64.pack(timeout_ms))
    udata = b""
    if comment:
        udata = _comment_udata(comment)
        parts += (_ATTR.pack(4 + len(udata), NFTA_SET_ELEM_USERDATA), udata, _PAD[-len(udata) & 3])
        mask |= 4
    signature = b"".join((_MASKS[mask], key, key_end or b"", data or b"", udata))
    return b"".join(parts), signature


def record_attrs(action: str, key: bytes, comment: str, timeout_ms: int | None) -> bytes:
    """:func:`element_attrs` of an element with a 12-byte key and no key end or data (an item record),
    in one concatenation."""
    if action == "delete":
        return _KEY12_HEADER + key
    timeout = b"" if timeout_ms is None else _TIMEOUT_HEADER + _BE64.pack(timeout_ms)
    if not comment:
        return _KEY12_HEADER + key + timeout
    text = comment.encode()
    size = len(text) + 3  # type and length bytes, the text, its NUL
    header = _ATTR.pack(4 + size, NFTA_SET_ELEM_USERDATA) + bytes((NFTNL_UDATA_SET_ELEM_COMMENT, size - 2))
    return b"".join((_KEY12_HEADER, key, timeout, header, text, _NUL_PADDED[-size & 3]))


_NUL_PADDED = (b"\0", b"\0\0", b"\0\0\0", b"\0\0\0\0")
"""A comment's NUL and the attribute's padding (0-3 bytes)."""


def record_udata_heads(size: int) -> tuple[bytes, bytes]:
    """For a comment of ``size - 3`` bytes: what comes before its text in :func:`record_attrs` (the
    NFTA_SET_ELEM_USERDATA header and the comment's type and length) and in :func:`record_add`'s
    signature (the signature's mask byte is apart: it precedes the key)."""
    comment_head = bytes((NFTNL_UDATA_SET_ELEM_COMMENT, size - 2))
    return _ATTR.pack(4 + size, NFTA_SET_ELEM_USERDATA) + comment_head, comment_head


KEY12_HEADER = _KEY12_HEADER
TIMEOUT_HEADER = _TIMEOUT_HEADER
NUL_PADDED = _NUL_PADDED
SIGNATURE_MASKS = _MASKS


_BE64 = struct.Struct(">Q")
BE64 = _BE64


class NftWriter(NftReader):
    """Set element writes as one nf_tables batch (begin, NEWSETELEM/DELSETELEM messages, end): the
    kernel commits all of it or none, as ``nft -f`` does, without libnftables' parsing and cache.
    Deletes are DESTROYSETELEM where the kernel has it (DELSETELEM otherwise)."""

    destroy = True

    @classmethod
    def open_here(cls) -> NftWriter:
        return cls(_request_socket(NETLINK_NETFILTER, cap_acks=True))

    def transaction(
        self, table: str, writes: list[ElementWrite], family: int = NFPROTO_INET
    ) -> tuple[int, int] | None:
        """Write ``writes`` in order (consecutive writes of one set and action share a message) in one
        transaction; returns None when committed, else (index of the first write of the first refused
        message, errno) and nothing is committed."""
        encoded = [(w.action, w.set_name, element_attrs(w)) for w in writes]
        return self.encoded_transaction(table, encoded, family)

    def encoded_transaction(
        self, table: str, writes: list[EncodedWrite], family: int = NFPROTO_INET
    ) -> tuple[int, int] | None:
        """:meth:`transaction` of writes whose attributes are encoded already."""
        messages: list[tuple[int, int, bytes]] = []  # (type, first write index, payload)
        table_attr = _nla(NFTA_SET_ELEM_LIST_TABLE, _cstr(table))
        start = 0
        pack, list_elem = _ATTR.pack, NFTA_LIST_ELEM | NLA_F_NESTED
        while start < len(writes):
            end = start
            elements: list[bytes] = []
            action, set_name, _ = writes[start]
            stop = min(len(writes), start + ELEMENTS_PER_MESSAGE)
            while end < stop:
                this_action, this_set, body = writes[end]
                if this_action != action or this_set != set_name:
                    break
                elements.append(pack(4 + len(body), list_elem))  # every attribute is padded: so is
                elements.append(body)  # the body
                end += 1
            kind = NFT_MSG_NEWSETELEM if action == "add" else self._delete_kind()
            payload = _NFGEN.pack(family, 0, 0) + table_attr + _nla(NFTA_SET_ELEM_LIST_SET, _cstr(set_name))
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
                return self.encoded_transaction(table, writes, family)
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


RTM_NEWTCLASS_MSG, RTM_NEWTFILTER_MSG = 40, 44
TCA_OPTIONS = 2
TCA_HTB_PARMS, TCA_HTB_RATE64, TCA_HTB_CEIL64 = 1, 6, 7
TCA_U32_CLASSID, TCA_U32_SEL = 1, 5
TC_U32_TERMINAL = 1
TC_LINKLAYER_ETHERNET = 1
HTB_MTU_BYTES = 1600
"""The MTU ``tc`` assumes for an HTB class's default burst (``buffer = rate / HZ + mtu``)."""
_RATESPEC = struct.Struct("=BBHhHI")
_HTB_OPT_TAIL = struct.Struct("=IIIII")
_U32_KEY_BE = struct.Struct("!II")
_U32_KEY_OFF = struct.Struct("=ii")
_U32_MAX = 0xFFFFFFFF
_PSCHED_PATH = "/proc/net/psched"


@functools.lru_cache(maxsize=1)
def psched() -> tuple[float, int]:
    """(ticks per microsecond, HZ) exactly as ``tc`` derives them from /proc/net/psched, so that a
    class written here carries the burst ``tc`` would give it."""
    try:
        with open(_PSCHED_PATH) as handle:
            t2us, us2t, clock_res, fourth = (int(word, 16) for word in handle.read().split()[:4])
    except (OSError, ValueError):
        return 1.0, 1000
    if clock_res == 1_000_000_000:
        t2us = us2t
    tick_in_usec = t2us / us2t * (clock_res / 1_000_000)
    hz = fourth if clock_res == 1_000_000 and fourth else 1000
    return tick_in_usec, hz


def _xmittime(rate_bytes_s: int, size_bytes: int) -> int:
    """``tc_calc_xmittime``: the time (in psched ticks) to send ``size_bytes`` at the rate, truncated to
    whole microseconds first as ``tc`` does."""
    if rate_bytes_s <= 0:
        return 0  # the kernel refuses a class without a rate, and says so
    tick_in_usec, _ = psched()
    micros = min(_U32_MAX, int(1_000_000 * (size_bytes / rate_bytes_s)))
    return min(_U32_MAX, int(micros * tick_in_usec))


def htb_class_message(
    ifindex: int, minor: int, rate_bytes_s: int, ceil_bytes_s: int, *, parent_minor: int, quantum: int
) -> tuple[int, int, bytes]:
    """``tc class replace dev D parent 1:P classid 1:M htb rate R ceil C quantum Q`` as a message for
    ``bulk``: the parameters ``tc`` sends (burst from rate / HZ + MTU, ethernet link layer, 64-bit
    rates above 4 GB/s); no rate tables, which the kernel ignores for a known link layer."""
    header = _TCMSG.pack(0, ifindex, 0x10000 | minor, 0x10000 | parent_minor, 0)
    return RTM_NEWTCLASS_MSG, NLM_F_CREATE, header + _htb_attributes(rate_bytes_s, ceil_bytes_s, quantum)


@functools.lru_cache(maxsize=4096)
def _htb_attributes(rate_bytes_s: int, ceil_bytes_s: int, quantum: int) -> bytes:
    """TCA_KIND and TCA_OPTIONS of an HTB class (a pure function of its rates: reservations of one rate
    share them)."""
    _, hz = psched()
    rate = _RATESPEC.pack(3, TC_LINKLAYER_ETHERNET, 0, -1, 0, min(rate_bytes_s, _U32_MAX))
    ceil = _RATESPEC.pack(3, TC_LINKLAYER_ETHERNET, 0, -1, 0, min(ceil_bytes_s, _U32_MAX))
    buffer = _xmittime(rate_bytes_s, rate_bytes_s // hz + HTB_MTU_BYTES)
    cbuffer = _xmittime(ceil_bytes_s, ceil_bytes_s // hz + HTB_MTU_BYTES)
    options = _nla(TCA_HTB_PARMS, rate + ceil + _HTB_OPT_TAIL.pack(buffer, cbuffer, quantum, 0, 0))
    if rate_bytes_s > _U32_MAX:
        options += _nla(TCA_HTB_RATE64, struct.pack("=Q", rate_bytes_s))
    if ceil_bytes_s > _U32_MAX:
        options += _nla(TCA_HTB_CEIL64, struct.pack("=Q", ceil_bytes_s))
    return _nla(TCA_KIND, b"htb\0") + _nla(TCA_OPTIONS, options)


def u32_filter_message(ifindex: int, minor: int, priority: int, src: str, dst: str) -> tuple[int, int, bytes]:
    """``tc filter replace dev D parent 1: protocol all prio P handle 800::M u32 match u8 0x40|0x60 0xf0
    at 0 match ip[6] src S match ip[6] dst D flowid 1:M`` as a message for ``bulk`` (the keys ``tc``
    packs: the version nibble, then the address words; host addresses only)."""
    selector = u32_selector(src, dst)
    size = len(selector)  # a whole number of 4-byte words: no padding
    head = _U32_FILTER_HEAD.pack(
        0,
        ifindex,
        U32_NODE_HANDLE | minor,
        0x10000,
        (priority << 16) | _ETH_P_ALL_NET,
        _U32_KIND,
        16 + size,  # TCA_OPTIONS: TCA_U32_CLASSID, then TCA_U32_SEL
        TCA_OPTIONS,
        8,
        TCA_U32_CLASSID,
        0x10000 | minor,
        4 + size,
        TCA_U32_SEL,
    )
    return RTM_NEWTFILTER_MSG, NLM_F_CREATE, head + selector


_U32_KIND = _nla(TCA_KIND, b"u32\0")
_U32_FILTER_HEAD = struct.Struct(f"=BxxxiIII{len(_U32_KIND)}sHHHHIHH")
"""The tcmsg of a u32 filter, its TCA_KIND, the head of TCA_OPTIONS, TCA_U32_CLASSID and the head of
TCA_U32_SEL: the message up to its selector, in one pack."""
_ETH_P_ALL_NET = socket.htons(ETH_P_ALL)


@functools.lru_cache(maxsize=1 << 16)
def u32_selector(src: str, dst: str) -> bytes:
    """The tc_u32_sel of a (src, dst) host match (a reservation's filters on every hop share it)."""
    src_addr, dst_addr = src.partition("/")[0], dst.partition("/")[0]
    if ":" not in src_addr and ":" not in dst_addr:  # IPv4: the version key, then the two address words
        src4, dst4 = socket.inet_pton(socket.AF_INET, src_addr), socket.inet_pton(socket.AF_INET, dst_addr)
        return b"".join((_U32_V4_HEAD, src4, _U32_V4_SRC_OFF, dst4, _U32_V4_DST_OFF))
    family = socket.AF_INET6 if ":" in src_addr else socket.AF_INET
    src_bytes, dst_bytes = socket.inet_pton(family, src_addr), socket.inet_pton(family, dst_addr)
    version, src_off, dst_off = (0x4, 12, 16) if family == socket.AF_INET else (0x6, 8, 24)
    keys = [(0xF0000000, version << 28, 0)]
    for base, address in ((src_off, src_bytes), (dst_off, dst_bytes)):
        for word in range(len(address) // 4):
            value = int.from_bytes(address[4 * word : 4 * word + 4], "big")
            keys.append((_U32_MAX, value, base + 4 * word))
    selector = _U32_SEL.pack(TC_U32_TERMINAL, 0, len(keys), 0, 0, 0, 0, 0)
    return selector + b"".join(
        _U32_KEY_BE.pack(mask, value) + _U32_KEY_OFF.pack(at, 0) for mask, value, at in keys
    )


_U32_V4_HEAD = (
    _U32_SEL.pack(TC_U32_TERMINAL, 0, 3, 0, 0, 0, 0, 0)
    + _U32_KEY_BE.pack(0xF0000000, 0x4 << 28)
    + _U32_KEY_OFF.pack(0, 0)
    + _U32_KEY_BE.pack(_U32_MAX, 0)[:4]
)
"""An IPv4 host match's tc_u32_sel up to the source address: the head, the version key, a full mask."""
_U32_V4_SRC_OFF = _U32_KEY_OFF.pack(12, 0) + _U32_KEY_BE.pack(_U32_MAX, 0)[:4]
_U32_V4_DST_OFF = _U32_KEY_OFF.pack(16, 0)

RTM_DELADDR, RTM_DELQDISC = 21, 37
IFLA_IFNAME, IFLA_IFALIAS = 3, 20
IFA_LOCAL, IFA_ADDRESS = 2, 1
IFF_UP = 0x1
TC_H_ROOT = 0xFFFFFFFF
_IFADDR = struct.Struct("=BBBBi")


def link_park_messages(ifindex: int, name: str, alias: str, addresses: list[str]) -> list[Message]:
    """``tc qdisc del dev X root``, ``ip link set X down``, ``ip address del`` of each of
    ``addresses`` (prefixes), then ``ip link set X name NAME alias ALIAS``, as messages for ``bulk``."""
    messages: list[Message] = [(RTM_DELQDISC, 0, _TCMSG.pack(0, ifindex, 0, TC_H_ROOT, 0))]
    messages.append((RTM_NEWLINK, 0, _IFINFO.pack(0, 0, ifindex, 0, IFF_UP)))
    for prefix in addresses:
        address, _, length = prefix.partition("/")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        packed = socket.inet_pton(family, address)
        header = _IFADDR.pack(family, int(length or len(packed) * 8), 0, 0, ifindex)
        messages.append((RTM_DELADDR, 0, header + _nla(IFA_LOCAL, packed) + _nla(IFA_ADDRESS, packed)))
    body = _nla(IFLA_IFNAME, _cstr(name)) + _nla(IFLA_IFALIAS, _cstr(alias))
    messages.append((RTM_NEWLINK, 0, _IFINFO.pack(0, 0, ifindex, 0, 0) + body))
    return messages


Message = tuple[int, int, bytes]
"""(message type, extra flags, payload): one request of a ``bulk``."""
