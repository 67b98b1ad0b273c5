"""Kernel objects: the canonical, comparable form of what a config item puts in a node's kernel.

Each object knows the node it lives on and an ``ident`` (its identity in the kernel: what a delete names;
computed once, at construction: read-backs and diffs look it up several times per object); two objects
with the same ident and different values mean "replace". The Linux backend reads the kernel
back into these objects and diffs them against the objects a desired config renders to.

They are named tuples whose last member is the ident (derived, never passed in): an apply of 5,000
routes builds ~20,000 of them, and a tuple is built, compared and hashed in C (a frozen dataclass took
2.1-4.0 µs to build, a tuple 0.8-2.3 µs, and comparing one ran Python code). Two objects of different
kinds are never equal: their idents start with the kind. ``_replace`` derives the ident again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

from netscaffold.errors import ValidationError
from netscaffold.model.config import Origin

MAIN_TABLE = 254
ROUTE_PROTOCOLS: dict[Origin, int] = {Origin.STATIC: 201, Origin.PREDICTED: 202, Origin.CONFIRMED: 203}
"""Our route protocol numbers (one per origin; unused by /etc/iproute2/rt_protos): the tag that scopes
every route and policy rule netscaffold reads, diffs and deletes."""
MAX_WEIGHT = 256


def origin_of_protocol(protocol: int) -> Origin | None:
    for origin, number in ROUTE_PROTOCOLS.items():
        if number == protocol:
            return origin
    return None


def quantize_weights(weights: Sequence[float]) -> tuple[int, ...]:
    """Float next-hop weights -> kernel weights 1..256 with the same proportions (largest = 256)."""
    if not weights or any(not w > 0 for w in weights):
        raise ValidationError(f"next-hop weights must be > 0, got {list(weights)}")
    top = max(weights)
    return tuple(max(1, min(MAX_WEIGHT, round(MAX_WEIGHT * w / top))) for w in weights)


def canonical_prefix(prefix: str) -> str:
    """``198.18.0.1`` -> ``198.18.0.1/32``; host bits cleared (the kernel stores networks). Parsed with
    ``inet_pton`` (ipaddress costs ~30 µs a prefix, too much for plans of thousands of routes)."""
    address, _, length = prefix.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if family == socket.AF_INET and (length == "32" or not length):
        try:
            socket.inet_pton(family, address)  # accepts canonical dotted quads only (no leading zeros)
        except (OSError, ValueError):
            pass
        else:  # an IPv4 host: nothing to clear, the text is already canonical
            return prefix if length else f"{address}/32"
    try:
        packed = socket.inet_pton(family, address)
        bits = len(packed) * 8
        prefix_len = int(length) if length else bits
    except (OSError, ValueError):
        return str(ipaddress.ip_network(prefix, strict=False))  # raises the usual ValueError
    if not 0 <= prefix_len <= bits:
        return str(ipaddress.ip_network(prefix, strict=False))
    value = int.from_bytes(packed, "big") & (((1 << prefix_len) - 1) << (bits - prefix_len))
    return f"{socket.inet_ntop(family, value.to_bytes(len(packed), 'big'))}/{prefix_len}"


def family_of(prefix: str) -> int:
    """4 or 6 (of a prefix the model has already validated)."""
    return 6 if ":" in prefix else 4


_new = tuple.__new__


def _replaced(obj: Any, **changes: Any) -> Any:
    """``obj._replace(**changes)`` with the ident derived again (a named tuple's own ``_replace`` copies
    every member, the ident too)."""
    return type(obj)(**{**fields_of(obj), **changes})


class _RouteFields(NamedTuple):
    node: str
    table: int
    destination: str
    protocol: int
    next_hops: tuple[tuple[str, int], ...]
    ident: tuple[str, ...]


class KernelRoute(_RouteFields):
    """A route in ``table`` of ``node``; ``next_hops`` = sorted (gateway address, kernel weight)."""

    __slots__ = ()

    def __new__(
        cls, node: str, table: int, destination: str, protocol: int, next_hops: tuple[tuple[str, int], ...]
    ) -> KernelRoute:
        ident = ("route", node, str(table), destination)
        return _new(cls, (node, table, destination, protocol, next_hops, ident))

    def __getnewargs__(self) -> tuple[Any, ...]:  # without the derived ident
        return tuple(self[:-1])

    def __repr__(self) -> str:
        return _repr(self)

    _replace = _replaced


class _RuleFields(NamedTuple):
    node: str
    family: int
    priority: int
    fwmark: int
    table: int
    protocol: int
    ident: tuple[str, ...]


class KernelRule(_RuleFields):
    """A policy routing rule: packets with ``fwmark`` look up ``table``."""

    __slots__ = ()

    def __new__(  # noqa: PLR0917 (the rule's fields, positional as before)
        cls, node: str, family: int, priority: int, fwmark: int, table: int, protocol: int
    ) -> KernelRule:
        ident = ("rule", node, str(family), str(priority))
        return _new(cls, (node, family, priority, fwmark, table, protocol, ident))

    def __getnewargs__(self) -> tuple[Any, ...]:  # without the derived ident
        return tuple(self[:-1])

    def __repr__(self) -> str:
        return _repr(self)

    _replace = _replaced


class _ElementFields(NamedTuple):
    node: str
    set_name: str
    key: tuple[str | int, ...]
    value: int | None
    comment: str
    timeout_s: int | None
    ident: tuple[str, ...]


class KernelElement(_ElementFields):
    """An element of set or map ``set_name`` in our nft table; ``key`` in nft JSON form (hashable)."""

    __slots__ = ()

    def __new__(  # noqa: PLR0917 (the element's fields, positional as before)
        cls,
        node: str,
        set_name: str,
        key: tuple[str | int, ...],
        value: int | None,
        comment: str,
        timeout_s: int | None,
    ) -> KernelElement:
        if len(key) == 3:  # an item record (the bulk of every apply): the parts without a map
            first, second, third = key
            ident: tuple[str, ...] = ("element", node, set_name, str(first), str(second), str(third))
        else:
            ident = ("element", node, set_name, *map(str, key))
        return _new(cls, (node, set_name, key, value, comment, timeout_s, ident))

    def __getnewargs__(self) -> tuple[Any, ...]:  # without the derived ident
        return tuple(self[:-1])

    def __repr__(self) -> str:
        return _repr(self)

    _replace = _replaced

    def same_content(self, other: KernelElement) -> bool:
        """Equal but for the timeout (the kernel reports what is left, not what was asked)."""
        return (self.value, self.comment, self.key) == (other.value, other.comment, other.key)


class _ClassFields(NamedTuple):
    node: str
    device: str
    minor: int
    rate_bytes_s: int
    ceil_bytes_s: int
    ident: tuple[str, ...]


class KernelClass(_ClassFields):
    """An HTB class ``1:minor`` on ``device`` of ``node``; rates in bytes/s as the kernel keeps them."""

    __slots__ = ()

    def __new__(cls, node: str, device: str, minor: int, rate_bytes_s: int, ceil_bytes_s: int) -> KernelClass:
        ident = ("class", node, device, str(minor))
        return _new(cls, (node, device, minor, rate_bytes_s, ceil_bytes_s, ident))

    def __getnewargs__(self) -> tuple[Any, ...]:  # without the derived ident
        return tuple(self[:-1])

    def __repr__(self) -> str:
        return _repr(self)

    _replace = _replaced


class _FilterFields(NamedTuple):
    node: str
    device: str
    minor: int
    family: int
    src: str
    dst: str
    ident: tuple[str, ...]


class KernelFilter(_FilterFields):
    """A u32 filter (handle ``800::minor``) sending ``src -> dst`` packets to class ``1:minor``."""

    __slots__ = ()

    def __new__(  # noqa: PLR0917 (the filter's fields, positional as before)
        cls, node: str, device: str, minor: int, family: int, src: str, dst: str
    ) -> KernelFilter:
        ident = ("filter", node, device, str(family), str(minor))
        return _new(cls, (node, device, minor, family, src, dst, ident))

    def __getnewargs__(self) -> tuple[Any, ...]:  # without the derived ident
        return tuple(self[:-1])

    def __repr__(self) -> str:
        return _repr(self)

    _replace = _replaced


def _repr(obj: tuple[Any, ...]) -> str:
    """``KernelRoute(node='r1', ...)`` without the derived ident (as the former dataclasses printed)."""
    names: tuple[str, ...] = obj._fields  # type: ignore[attr-defined]
    body = ", ".join(f"{name}={value!r}" for name, value in zip(names[:-1], obj, strict=False))
    return f"{type(obj).__name__}({body})"


def fields_of(obj: KernelObject) -> dict[str, Any]:
    """The object's fields by name, without the derived ident (what its constructor takes)."""
    return dict(zip(obj._fields[:-1], obj, strict=False))


KernelObject: TypeAlias = KernelRoute | KernelRule | KernelElement | KernelClass | KernelFilter


def same(a: KernelObject, b: KernelObject) -> bool:
    """Whether the kernel holds ``a`` as ``b`` asks (timeouts of set elements aside)."""
    if isinstance(a, KernelElement) and isinstance(b, KernelElement):
        return a.same_content(b)
    return a == b
