"""Item records: what the kernel objects of an item cannot say about it (float next-hop weights, the exact
prefix spelling, a reservation's rate in bit/s, a circuit's path, origin and expiry), carried in the kernel
as the comments of elements of one nft set (``items``) on the item's first device.

A record is the item as compact JSON, split into chunks of at most :data:`CHUNK_CHARS` characters (an nft
comment holds 128 bytes); element key = (high and low 32 bits of a hash of the item key, chunk number).
Reading the chunks back gives the item; the backend still counts it present only when all its kernel
objects are there as rendered. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from netscaffold.errors import ValidationError
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render.objects import KernelElement
from netscaffold.model.config import (
    ConfigItem,
    FirewallRule,
    FlowMatch,
    ItemKey,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
)

SET_NAME = nft_render.RECORD_SET
CHUNK_CHARS = 100
_ORIGIN = {Origin.STATIC: "s", Origin.PREDICTED: "p", Origin.CONFIRMED: "c"}
_FROM_ORIGIN = {code: origin for origin, code in _ORIGIN.items()}
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
"""``json.dumps(..., separators=(",", ":"))`` without building an encoder per record."""


def key_hash(key: ItemKey) -> tuple[int, int]:
    """(high, low) 32 bits of the 8-byte BLAKE2b of the key's parts joined by US (0x1f)."""
    digest = _BLAKE2B_8.copy()  # a copy of an empty state: a third of the constructor's cost
    digest.update("\x1f".join(key).encode())
    high, low = _HASH_WORDS.unpack(digest.digest())
    return high, low


_BLAKE2B_8 = hashlib.blake2b(digest_size=8)
_HASH_WORDS = struct.Struct(">II")


def encode_item(item: ConfigItem) -> list[Any]:
    tail = [_ORIGIN[item.origin], item.expires_at]
    if isinstance(item, Route):
        hops = [[hop.via, hop.weight] for hop in item.next_hops]
        return ["r", item.device, item.destination, hops, *tail]
    if isinstance(item, FirewallRule):
        m = item.match
        return ["f", item.device, m.src, m.dst, m.proto, m.dst_port, item.action, *tail]
    if isinstance(item, Reservation):
        return ["s", item.flow_key, list(item.path), item.rate_bps, *tail]
    return ["c", item.circuit_id, item.flow_key, list(item.path), item.rate_bps, *tail]


def decode_item(data: list[Any]) -> ConfigItem:
    """The item a record holds; ValidationError if the record is not one."""
    try:
        kind, *body, origin_code, expires_at = data
        life = {"origin": _FROM_ORIGIN[origin_code], "expires_at": expires_at}
        if kind == "r":
            device, destination, hops = body
            next_hops = tuple(NextHop(str(via), float(weight)) for via, weight in hops)
            return Route(device, destination, next_hops, **life)
        if kind == "f":
            device, src, dst, proto, port, action = body
            return FirewallRule(device, FlowMatch(src, dst, proto, port), action, **life)
        if kind == "s":
            flow_key, path, rate = body
            return Reservation(flow_key, tuple(path), float(rate), **life)
        if kind == "c":
            circuit_id, flow_key, path, rate = body
            return VirtualCircuit(circuit_id, flow_key, tuple(path), float(rate), **life)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationError(f"not an item record: {exc}", element=f"record {data!r:.80}") from None
    raise ValidationError(f"unknown record kind {kind!r}", element=f"record {data!r:.80}")


def record_text(item: ConfigItem) -> str:
    """The record of ``item`` as compact JSON (``encode_item`` through ``json``; a route's written
    directly, the same text: an apply of 5,000 new routes encodes 5,000 records)."""
    text = None
    if type(item) is Route:
        text = _route_text(item)
    elif type(item) is FirewallRule:
        text = _firewall_text(item)
    return _COMPACT_JSON.encode(encode_item(item)) if text is None else text


def _route_text(route: Route) -> str | None:
    """``encode_item(route)`` as ``json`` writes it, or None where a value is not a plain str, finite
    float, int or None (then ``json`` itself writes it)."""
    hops = [_hop_text(hop.via, hop.weight) for hop in route.next_hops]
    if None in hops:
        return None
    expires = "null" if route.expires_at is None else _number(route.expires_at)
    if expires is None or type(route.device) is not str or type(route.destination) is not str:
        return None
    origin = _ORIGIN[route.origin]
    return (
        f'["r",{_string(route.device)},{_string(route.destination)},[{",".join(hops)}],"{origin}",{expires}]'  # type: ignore[arg-type]
    )


def _firewall_text(rule: FirewallRule) -> str | None:
    """``encode_item(rule)`` as ``json`` writes it, or None (as :func:`_route_text`)."""
    m = rule.match
    src, dst, proto = m.src, m.dst, m.proto
    if type(rule.device) is not str or type(rule.action) is not str:
        return None
    for value in (src, dst, proto):
        if value is not None and type(value) is not str:
            return None
    port = "null" if m.dst_port is None else _number(m.dst_port)
    expires = "null" if rule.expires_at is None else _number(rule.expires_at)
    if port is None or expires is None:
        return None
    src_text = "null" if src is None else _string(src)
    dst_text = "null" if dst is None else _string(dst)
    proto_text = "null" if proto is None else _string(proto)
    head = f'["f",{_string(rule.device)},{src_text},{dst_text},{proto_text},{port}'
    return f'{head},{_string(rule.action)},"{_ORIGIN[rule.origin]}",{expires}]'


@lru_cache(maxsize=1 << 14, typed=True)
def _hop_text(via: object, weight: object) -> str | None:
    """``[via,weight]`` as ``json`` writes it, or None (a pure function of its arguments, which the routes
    of a node share: a few gateways and weights; weights are > 0, so 0.0 and -0.0 never meet here)."""
    number = _number(weight)
    if number is None or type(via) is not str:
        return None
    return f"[{_string(via)},{number}]"


def _number(value: object) -> str | None:
    """A number as ``json`` writes it (``float.__repr__``, ``int.__repr__``); None for anything else."""
    if type(value) is float:
        return float.__repr__(value) if math.isfinite(value) else None
    if type(value) is int:
        return int.__repr__(value)
    return None


_string = json.encoder.encode_basestring_ascii
"""A str as ``json`` writes it by default (quoted, non-ASCII escaped)."""

json_string = _string
number_text = _number
hop_text = _hop_text
ORIGIN_CODES = _ORIGIN
"""What the renderers that write a record's JSON themselves (``desired._route``) need of this module."""


def record_elements(
    item: ConfigItem, timeout_s: int | None, key: ItemKey | None = None
) -> list[KernelElement]:
    """The elements holding ``item``'s record, on its first device (``key``: ``item.key``, where the
    caller has built it already)."""
    text = record_text(item)
    high, low = key_hash(item.key if key is None else key)
    node = item.devices()[0]
    if len(text) <= CHUNK_CHARS:  # most records (a route through two next hops fits in one chunk)
        return [KernelElement(node, SET_NAME, (high, low, 0), None, text, timeout_s)]
    chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
    return [
        KernelElement(node, SET_NAME, (high, low, index), None, chunk, timeout_s)
        for index, chunk in enumerate(chunks)
    ]


def items_from_elements(elements: Iterable[KernelElement]) -> list[ConfigItem]:
    """Items whose records are complete and intact among ``elements`` (others are skipped)."""
    chunks: dict[tuple[str, int, int], dict[int, str]] = defaultdict(dict)
    for element in elements:
        if element.set_name != SET_NAME or len(element.key) != 3:
            continue
        high, low, index = (int(part) for part in element.key)
        chunks[(element.node, high, low)][index] = element.comment
    items = []
    for (_, high, low), parts in sorted(chunks.items()):
        if sorted(parts) != list(range(len(parts))):
            continue  # a chunk is missing: not a whole record
        item = _decoded("".join(parts[i] for i in range(len(parts))))
        if item is None:
            continue
        if key_hash(item.key) == (high, low):
            items.append(item)
    return items


@lru_cache(maxsize=1 << 16)
def _decoded(text: str) -> ConfigItem | None:
    """The item a record's text holds (a pure function of the text, hence cached), None if none."""
    try:
        return decode_item(json.loads(text))
    except (ValueError, ValidationError):
        return None
