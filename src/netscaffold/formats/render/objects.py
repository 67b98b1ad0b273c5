"""Kernel objects: the canonical, comparable form of what a config item puts in a node's kernel.

Each object knows the node it lives on and an ``ident`` (its identity in the kernel: what a delete names;
computed once, at construction: read-backs and diffs look it up several times per object); two objects
with the same ident and different values mean "replace". The Linux backend reads the kernel
back into these objects and diffs them against the objects a desired config renders to.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

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
    if family == socket.AF_INET and length in ("32", ""):
        with contextlib.suppress(OSError, ValueError):
            socket.inet_pton(family, address)  # accepts canonical dotted quads only (no leading zeros)
            return f"{address}/32"  # an IPv4 host: nothing to clear, the text is already canonical
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


@dataclass(frozen=True, slots=True)
class KernelRoute:
    """A route in ``table`` of ``node``; ``next_hops`` = sorted (gateway address, kernel weight)."""

    node: str
    table: int
    destination: str
    protocol: int
    next_hops: tuple[tuple[str, int], ...]

    ident: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ident", ("route", self.node, str(self.table), self.destination))


@dataclass(frozen=True, slots=True)
class KernelRule:
    """A policy routing rule: packets with ``fwmark`` look up ``table``."""

    node: str
    family: int
    priority: int
    fwmark: int
    table: int
    protocol: int

    ident: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ident", ("rule", self.node, str(self.family), str(self.priority)))


@dataclass(frozen=True, slots=True)
class KernelElement:
    """An element of set or map ``set_name`` in our nft table; ``key`` in nft JSON form (hashable)."""

    node: str
    set_name: str
    key: tuple[str | int, ...]
    value: int | None
    comment: str
    timeout_s: int | None

    ident: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ident", ("element", self.node, self.set_name, *map(str, self.key)))

    def same_content(self, other: KernelElement) -> bool:
        """Equal but for the timeout (the kernel reports what is left, not what was asked)."""
        return (self.value, self.comment, self.key) == (other.value, other.comment, other.key)


@dataclass(frozen=True, slots=True)
class KernelClass:
    """An HTB class ``1:minor`` on ``device`` of ``node``; rates in bytes/s as the kernel keeps them."""

    node: str
    device: str
    minor: int
    rate_bytes_s: int
    ceil_bytes_s: int

    ident: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ident", ("class", self.node, self.device, str(self.minor)))


@dataclass(frozen=True, slots=True)
class KernelFilter:
    """A u32 filter (handle ``800::minor``) sending ``src -> dst`` packets to class ``1:minor``."""

    node: str
    device: str
    minor: int
    family: int
    src: str
    dst: str

    ident: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "ident", ("filter", self.node, self.device, str(self.family), str(self.minor))
        )


KernelObject: TypeAlias = KernelRoute | KernelRule | KernelElement | KernelClass | KernelFilter


def same(a: KernelObject, b: KernelObject) -> bool:
    """Whether the kernel holds ``a`` as ``b`` asks (timeouts of set elements aside)."""
    if isinstance(a, KernelElement) and isinstance(b, KernelElement):
        return a.same_content(b)
    return a == b
