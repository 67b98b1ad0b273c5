"""Reading a node's kernel state back into kernel objects, scoped to what is ours: routes and policy
rules with our protocol numbers, elements of our nft table, HTB classes and u32 filters under our qdiscs.
Anything else in the namespace (another protocol's route, another table) is never read, so never touched.

Routes, rules, classes and filters come from rtnetlink dumps on the namespace's session socket; set
elements from nf_tables netlink dumps (key bytes decoded by the set's field types, which are ours and
fixed: see :func:`netscaffold.formats.render.nftables.table_commands`). No process is started.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import socket
import struct
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence

from netscaffold.backends.linux.netlink import (
    BE64,
    KEY12_HEADER,
    NUL_PADDED,
    SIGNATURE_MASKS,
    TIMEOUT_HEADER,
    ElementMsg,
    ElementRow,
    ElementWrite,
    EncodedWrite,
    WrittenRoutes,
    element_add,
    element_attrs,
    record_add,
    record_attrs,
    record_udata_heads,
)
from netscaffold.backends.linux.session import NamespaceSession
from netscaffold.errors import BackendError
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render.objects import (
    ROUTE_PROTOCOLS,
    KernelClass,
    KernelElement,
    KernelFilter,
    KernelObject,
    KernelRule,
)
from netscaffold.formats.render.tc import FILTER_PRIORITY, ROOT_MINOR

_OUR_PROTOCOLS = frozenset(ROUTE_PROTOCOLS.values())
_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58}
_ROOT_QDISC = 0x10000
_U32_NODE_TABLE = 0x800


def read_node(
    node: str,
    session: NamespaceSession,
    devices: Iterable[str],
    *,
    routes: bool = True,
    sets: Iterable[str] | None = None,
    written: Mapping[str, Mapping[bytes, KernelElement]] | None = None,
    written_routes: WrittenRoutes | None = None,
    written_filters: Mapping[str, WrittenFilters] | None = None,
) -> list[KernelObject]:
    """Every object of ours in the session's namespace (``devices``: the lab ports holding our classes),
    or only part of it: ``routes=False`` skips routes and policy rules, ``sets`` names the nft sets to
    read (None: all of ours). ``written``: per set, elements just written by their
    :func:`~netscaffold.backends.linux.netlink.element_signature`; an element the kernel holds with
    the very bytes of one of them is that element (not decoded again: see :func:`written_signature`);
    ``written_routes`` likewise for routes (see
    :meth:`~netscaffold.backends.linux.netlink.NetlinkReader.kernel_routes`) and ``written_filters``
    for u32 filters, per device (see :meth:`~netscaffold.backends.linux.netlink.NetlinkReader.u32_rows`)."""
    nl = session.netlink
    try:
        objects: list[KernelObject] = []
        if routes:
            objects += nl.kernel_routes(node, _OUR_PROTOCOLS, written_routes)
            objects += [
                KernelRule(node, r.family, r.priority, r.fwmark, r.table, r.protocol)
                for r in nl.rules(_OUR_PROTOCOLS)
            ]
        chosen = sorted(devices)
        index = nl.links() if chosen else {}
        for device in chosen:
            if device in index:
                objects += _classes(session, node, device, index[device])
                known = written_filters.get(device) if written_filters is not None else None
                objects += _filters(session, node, device, index[device], known)
    except OSError as exc:
        raise BackendError(f"cannot read namespace {session.netns}: {exc}", backend="linux") from None
    objects += _elements(session, node, _SET_FIELDS if sets is None else set(sets), written or {})
    return objects


def _classes(session: NamespaceSession, node: str, device: str, ifindex: int) -> list[KernelClass]:
    out = []
    for handle, kind, rate, ceil in session.netlink.class_rows(ifindex):
        minor = handle & 0xFFFF
        if kind != "htb" or handle >> 16 != 1 or minor == ROOT_MINOR:
            continue  # the root class holds the link capacity: the lab's, not a plan's
        out.append(KernelClass(node, device, minor, rate, ceil))
    return out


WrittenFilters = dict[int, tuple[bytes, KernelFilter]]
"""The u32 filters written on one device: by handle, the tc_u32_sel sent and the filter."""


def _filters(
    session: NamespaceSession, node: str, device: str, ifindex: int, written: WrittenFilters | None = None
) -> list[KernelFilter]:
    out = []
    for handle, priority, classid, keys in session.netlink.u32_rows(ifindex, _ROOT_QDISC, written):
        if priority != FILTER_PRIORITY or handle >> 20 != _U32_NODE_TABLE or classid >> 16 != 1:
            continue
        minor = handle & 0xFFF
        if minor == 0 or minor != classid & 0xFFFF:
            continue
        if keys is None:  # the selector written for this handle (only given ``written``): that filter
            if written is not None:
                out.append(written[handle][1])
            continue
        if len(keys) == 3:  # what we write for IPv4: the version nibble, source, destination
            (version_at, version), (src_at, src), (dst_at, dst) = keys
            if (version_at, src_at, dst_at) == (0, 12, 16) and version >> 28 == 4:
                out.append(KernelFilter(node, device, minor, 4, _host4(src), _host4(dst)))
                continue
        out.append(_u32_filter(node, device, minor, dict(keys)))
    return out


def _u32_filter(node: str, device: str, minor: int, words: dict[int, int]) -> KernelFilter:
    if words.get(0, 0) >> 28 == 4:
        return KernelFilter(node, device, minor, 4, _host4(words.get(12, 0)), _host4(words.get(16, 0)))
    src6 = ipaddress.IPv6Address(sum(words.get(8 + 4 * i, 0) << (96 - 32 * i) for i in range(4)))
    dst6 = ipaddress.IPv6Address(sum(words.get(24 + 4 * i, 0) << (96 - 32 * i) for i in range(4)))
    return KernelFilter(node, device, minor, 6, f"{src6}/128", f"{dst6}/128")


@functools.lru_cache(maxsize=1 << 16)
def _host4(word: int) -> str:
    return f"{socket.inet_ntop(socket.AF_INET, word.to_bytes(4, 'big'))}/32"


_FIELD_BYTES = {"ip4": 4, "ip6": 16, "proto": 4, "port": 4, "mark": 4}
_SET_FIELDS: dict[str, tuple[str, ...]] = {
    **{f"{kind}4": ("ip4", "ip4", "proto", "port") for kind in ("permit", "deny")},
    **{f"{kind}6": ("ip6", "ip6", "proto", "port") for kind in ("permit", "deny")},
    nft_render.circuit_map(4): ("ip4", "ip4"),
    nft_render.circuit_map(6): ("ip6", "ip6"),
    nft_render.RECORD_SET: ("mark", "mark", "mark"),
}
_RECORD_FIELDS = _SET_FIELDS[nft_render.RECORD_SET]


def _elements(
    session: NamespaceSession,
    node: str,
    sets: Iterable[str],
    written: Mapping[str, Mapping[bytes, KernelElement]],
) -> list[KernelElement]:
    out: list[KernelElement] = []
    for set_name in sets:
        fields = _SET_FIELDS.get(set_name)
        if fields is None:
            continue  # not a set of ours
        try:
            found, rows = session.nftnl.known_elements(nft_render.TABLE, set_name, written.get(set_name, {}))
        except BackendError:
            return []  # no table of ours (yet): nothing of ours in nft
        out += found
        if fields == _RECORD_FIELDS:
            out.extend(_records(node, set_name, rows))
        else:
            out.extend(_element_of(node, set_name, fields, *row) for row in rows)
    return out


def _records(node: str, set_name: str, rows: list[ElementRow]) -> Iterator[KernelElement]:
    """The elements of the record set (the bulk of every read-back: one or more per item), decoded as
    :func:`_element_of` does, without its per-field loop."""
    unpack, size = _MARKS.unpack_from, _MARKS.size
    for row in rows:
        key_bytes, _key_end, data, comment, timeout_ms, expires_ms = row
        if len(key_bytes) < size or data is not None:
            yield _element_of(node, set_name, _RECORD_FIELDS, *row)
            continue
        timeout = None
        if timeout_ms is not None:
            left_ms = expires_ms if expires_ms is not None else timeout_ms
            timeout = max(1, math.ceil((left_ms or 1) / 1000))
        yield KernelElement(node, set_name, unpack(key_bytes), None, comment, timeout)


_MARKS = struct.Struct("=III")


def _element(node: str, set_name: str, fields: tuple[str, ...], msg: ElementMsg) -> KernelElement:
    return _element_of(
        node, set_name, fields, msg.key, msg.key_end, msg.data, msg.comment, msg.timeout_ms, msg.expires_ms
    )


def _element_of(  # noqa: PLR0917 (one element's fields, as the dump gives them)
    node: str,
    set_name: str,
    fields: tuple[str, ...],
    key_bytes: bytes,
    key_end: bytes | None,
    data: bytes | None,
    comment: str,
    timeout_ms: int | None,
    expires_ms: int | None,
) -> KernelElement:
    key: tuple[str | int, ...]
    if fields == _RECORD_FIELDS and len(key_bytes) >= _MARKS.size:
        key = _MARKS.unpack_from(key_bytes)  # item records: the bulk of every read-back
    else:
        parts: list[str | int] = []
        offset = 0
        for kind in fields:
            size = _FIELD_BYTES[kind]
            low = key_bytes[offset : offset + size]
            high = key_end[offset : offset + size] if key_end is not None else low
            parts.append(_field(kind, low, high))
            offset += size
        key = tuple(parts)
    value = None if data is None else int.from_bytes(data[:4], sys.byteorder)
    timeout = None
    if timeout_ms is not None:
        left_ms = expires_ms if expires_ms is not None else timeout_ms
        timeout = max(1, math.ceil((left_ms or 1) / 1000))
    return KernelElement(node, set_name, key, value, comment, timeout)


@functools.lru_cache(maxsize=1 << 16)
def _field(kind: str, low: bytes, high: bytes) -> str | int:
    if kind == "mark":
        return int.from_bytes(low, sys.byteorder)
    if kind in ("proto", "port"):
        size = 1 if kind == "proto" else 2
        lo, hi = int.from_bytes(low[:size], "big"), int.from_bytes(high[:size], "big")
        return lo if lo == hi else f"{lo}-{hi}"
    if low == high:
        return socket.inet_ntop(socket.AF_INET if len(low) == 4 else socket.AF_INET6, low)
    lo_addr, hi_addr = ipaddress.ip_address(low), ipaddress.ip_address(high)
    span = int(lo_addr) ^ int(hi_addr)
    if (span + 1) & span == 0 and int(lo_addr) & span == 0:
        return f"{lo_addr}/{lo_addr.max_prefixlen - span.bit_length()}"
    return f"{lo_addr}-{hi_addr}"


INTERVAL_SETS = frozenset(name for name, fields in _SET_FIELDS.items() if fields[-1] == "port")
"""Sets with interval flags (permits, denies): their elements carry a key end."""


def element_write(action: str, element: KernelElement) -> ElementWrite:
    """The bytes the kernel stores for ``element`` (the inverse of :func:`_element`), for a write."""
    low, high, data = _element_bytes(element)
    timeout_ms = None if element.timeout_s is None else element.timeout_s * 1000
    return ElementWrite(action, element.set_name, low, high, data, element.comment, timeout_ms)


def _element_bytes(element: KernelElement) -> tuple[bytes, bytes | None, bytes | None]:
    """(key, key end in an interval set, map data) as the kernel stores them."""
    fields = _SET_FIELDS.get(element.set_name)
    if fields is None or len(fields) != len(element.key):
        fields = ("mark",) * len(element.key)  # not one of our sets: the kernel will refuse it by name
    if fields == _RECORD_FIELDS and all(type(part) is int for part in element.key):
        low = high = _record_key(element.key)  # item records: the bulk of every write
    else:
        lows, highs = [], []
        for kind, part in zip(fields, element.key, strict=True):
            lo, hi = _field_bytes(kind, part)
            lows.append(lo)
            highs.append(hi)
        low, high = b"".join(lows), b"".join(highs)
    data = None if element.value is None else element.value.to_bytes(4, sys.byteorder)
    return low, high if element.set_name in INTERVAL_SETS else None, data


def encoded_element(action: str, element: KernelElement) -> tuple[EncodedWrite, bytes | None]:
    """:func:`element_write` with its attributes encoded, and :func:`written_signature` (None for a
    delete)."""
    writes, written = encoded_elements([(action, element)])
    signatures = written.get(element.set_name, {})
    return writes[0], next(iter(signatures), None)


def encoded_elements(
    ops: Sequence[tuple[str, KernelElement]],
) -> tuple[list[EncodedWrite], dict[str, dict[bytes, KernelElement]]]:
    """The writes of ``ops`` (action, element) with their attributes encoded (item records straight
    from key, comment and timeout: no :class:`ElementWrite` in between), and per set the elements
    added by :func:`written_signature` (where there is one)."""
    writes: list[EncodedWrite] = []
    written: dict[str, dict[bytes, KernelElement]] = {}
    record_set, pack = nft_render.RECORD_SET, _MARKS.pack
    records: dict[bytes, KernelElement] | None = None  # written[record_set], once there is one
    heads: dict[int, tuple[bytes, bytes]] = {}  # record_udata_heads by size: a few comment lengths
    key_header, nul_padded, with_comment = KEY12_HEADER, NUL_PADDED, SIGNATURE_MASKS[4]
    write, join = writes.append, b"".join
    for action, element in ops:
        set_name, key, comment = element.set_name, element.key, element.comment
        if set_name == record_set and len(key) == 3 and element.value is None:
            try:
                key_bytes = pack(*key)
            except (struct.error, TypeError):
                key_bytes = _record_key(key)  # raises, naming the key
            timeout_s = element.timeout_s
            if action == "add" and comment and "\0" not in comment:
                # record_add, inline (an apply of 5,000 routes adds 5,000 records): the same bytes
                text = comment.encode()
                size = len(text) + 3
                head = heads.get(size)
                if head is None:
                    head = heads[size] = record_udata_heads(size)
                timeout = b"" if timeout_s is None else TIMEOUT_HEADER + BE64.pack(timeout_s * 1000)
                attributes = join((key_header, key_bytes, timeout, head[0], text, nul_padded[-size & 3]))
                write((action, set_name, attributes))
                if records is None:
                    records = written.setdefault(set_name, {})
                records[join((with_comment, key_bytes, head[1], text, b"\0"))] = element
                continue
            timeout_ms = None if timeout_s is None else timeout_s * 1000
            if action != "add":
                writes.append((action, set_name, record_attrs(action, key_bytes, comment, timeout_ms)))
                continue
            attributes, signature = record_add(key_bytes, comment, timeout_ms)
            writes.append((action, set_name, attributes))
            if "\0" not in comment:
                written.setdefault(set_name, {})[signature] = element
            continue
        if action != "add":
            writes.append((action, set_name, element_attrs(element_write(action, element))))
            continue
        key_bytes, key_end, data = _element_bytes(element)
        timeout_ms = None if element.timeout_s is None else element.timeout_s * 1000
        attributes, signature = element_add(key_bytes, key_end, data, comment, timeout_ms)
        writes.append((action, set_name, attributes))
        if set_name in _EXACT_SETS and "\0" not in comment:
            written.setdefault(set_name, {})[signature] = element
    return writes, written


_EXACT_SETS = frozenset(
    name for name, fields in _SET_FIELDS.items() if not any(kind == "ip6" for kind in fields)
)
"""Sets whose elements read back exactly as rendered (their decoding inverts the encoding for every key
the renderers make): records (numbers) and the IPv4 sets. An IPv6 key may be spelled otherwise when
decoded (an IPv4-mapped address, say), which the read-back must go on reporting."""


def written_signature(action: str, element: KernelElement) -> bytes | None:
    """The signature by which a read-back recognises ``element`` as written (None: decode it instead):
    equal signatures mean the kernel holds the key, key end, data and comment the write sent, and for
    these sets decoding them gives back the element's own key, value and comment."""
    return encoded_element(action, element)[1]


def _record_key(key: tuple[str | int, ...]) -> bytes:
    try:
        return _MARKS.pack(*key)
    except (struct.error, TypeError) as exc:
        raise BackendError(f"cannot encode {key!r} as a record key: {exc}", backend="linux") from None


@functools.lru_cache(maxsize=1 << 16)
def _field_bytes(kind: str, part: str | int) -> tuple[bytes, bytes]:
    """(low, high) bytes of one key field, each padded to the 4-byte register nft uses."""
    try:
        if kind == "mark":
            value = int(part).to_bytes(4, sys.byteorder)
            return value, value
        if kind in ("proto", "port"):
            size = 1 if kind == "proto" else 2
            text = str(part)
            lo, _, hi = text.partition("-")
            pad = b"\0" * (4 - size)
            return int(lo).to_bytes(size, "big") + pad, int(hi or lo).to_bytes(size, "big") + pad
        return _address_bytes(socket.AF_INET6 if kind == "ip6" else socket.AF_INET, str(part))
    except (ValueError, OverflowError, OSError) as exc:
        raise BackendError(f"cannot encode {part!r} as {kind}: {exc}", backend="linux") from None


def _address_bytes(family: int, text: str) -> tuple[bytes, bytes]:
    """(first, last) address of an address, ``a-b`` range or prefix (host bits of the prefix ignored, as
    ``ipaddress.ip_network(strict=False)``), parsed with ``inet_pton``: ``ipaddress`` cost ~10 µs an
    element, and an apply writes thousands."""
    if "-" in text:
        first, last = text.split("-")
        return socket.inet_pton(family, first), socket.inet_pton(family, last)
    address, slash, length = text.partition("/")
    packed = socket.inet_pton(family, address)
    if not slash:
        return packed, packed
    bits = len(packed) * 8
    prefix_len = int(length)
    if not 0 <= prefix_len <= bits:
        raise ValueError(f"prefix length {prefix_len} out of 0..{bits}")
    value, host_bits = int.from_bytes(packed, "big"), (1 << (bits - prefix_len)) - 1
    return (value & ~host_bits).to_bytes(len(packed), "big"), (value | host_bits).to_bytes(len(packed), "big")
