"""Network configuration items and the :class:`NetworkConfig` that holds them.

Every item has a stable ``key`` (its identity for diffing), an ``origin`` (static / predicted / confirmed)
and, when provisional (origin predicted), an ``expires_at`` in seconds on the backend's clock.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, TypeAlias

from netscaffold.errors import ValidationError

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=1 << 16)
def parse_prefix(text: str) -> Network:
    """``ipaddress.ip_network(text, strict=False)``, cached: planners and the emulator parse the same few
    thousand prefixes every tick (ValueError for a bad one, which is not cached)."""
    return ipaddress.ip_network(text, strict=False)


@functools.lru_cache(maxsize=1 << 16)
def parse_address(text: str) -> Address:
    return ipaddress.ip_address(text)


FLOW_KEY_SEPARATOR = "->"


def flow_key(src: str, dst: str) -> str:
    """The flow key of the pair ``src -> dst`` (endpoint ids), as reservations and circuits carry it."""
    return f"{src}{FLOW_KEY_SEPARATOR}{dst}"


def split_flow_key(key: str) -> tuple[str, str]:
    """``(src, dst)`` of a flow key; ``dst`` is empty when the key has no separator."""
    src, _, dst = key.partition(FLOW_KEY_SEPARATOR)
    return src, dst


class Origin(StrEnum):
    STATIC = "static"
    PREDICTED = "predicted"
    CONFIRMED = "confirmed"


ItemKey: TypeAlias = tuple[str, ...]
Protocol = Literal["tcp", "udp", "icmp"]
Action = Literal["accept", "drop"]
_WEIGHT_TOLERANCE = 1e-6


# The checks below run on every item built (planners build thousands per tick): they name the item
# (``describe()``) only when they raise.


def _check_common(item: ConfigItem) -> None:
    if item.origin is Origin.PREDICTED and item.expires_at is None:
        raise ValidationError("a provisional (predicted) item needs expires_at", element=item.describe())
    if item.expires_at is not None and not math.isfinite(item.expires_at):
        raise ValidationError(f"expires_at must be finite, got {item.expires_at!r}", element=item.describe())


def _check_rate(item: Reservation | VirtualCircuit) -> None:
    rate_bps = item.rate_bps
    if not (math.isfinite(rate_bps) and rate_bps > 0):
        raise ValidationError(
            f"rate_bps must be a positive number, got {rate_bps!r}", element=item.describe()
        )


def _check_path(item: Reservation | VirtualCircuit) -> None:
    path = item.path
    if len(path) < 2:
        raise ValidationError(f"path needs at least two nodes, got {list(path)}", element=item.describe())
    if len(set(path)) != len(path):
        raise ValidationError(f"path visits a node twice: {list(path)}", element=item.describe())


@dataclass(frozen=True, slots=True)
class NextHop:
    via: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Route:
    """``device`` forwards ``destination`` (a prefix) to weighted next hops (weights sum to 1)."""

    device: str
    destination: str
    next_hops: tuple[NextHop, ...]
    origin: Origin = Origin.STATIC
    expires_at: float | None = None

    def __post_init__(self) -> None:
        try:
            parse_prefix(self.destination)
        except ValueError:
            raise ValidationError(
                f"destination {self.destination!r} is not a prefix", element=self.describe()
            ) from None
        hops = self.next_hops
        if len(hops) == 1:  # the common case, checked without building lists
            (hop,) = hops
            if not (math.isfinite(hop.weight) and hop.weight > 0):
                raise ValidationError(f"next hop {hop.via!r} weight must be > 0", element=self.describe())
            total = hop.weight
        else:
            if not hops:
                raise ValidationError("a route needs at least one next hop", element=self.describe())
            vias = [h.via for h in hops]
            if len(set(vias)) != len(vias):
                raise ValidationError(f"duplicate next hop in {vias}", element=self.describe())
            for hop in hops:
                if not (math.isfinite(hop.weight) and hop.weight > 0):
                    raise ValidationError(f"next hop {hop.via!r} weight must be > 0", element=self.describe())
            total = sum(h.weight for h in hops)
        if abs(total - 1.0) > _WEIGHT_TOLERANCE:
            raise ValidationError(f"next-hop weights sum to {total:.6g}, not 1", element=self.describe())
        _check_common(self)

    @property
    def key(self) -> ItemKey:
        return ("route", self.device, self.destination)

    def devices(self) -> tuple[str, ...]:
        return (self.device,)

    def describe(self) -> str:
        return f"route {self.destination} on {self.device}"


@dataclass(frozen=True, slots=True)
class FlowMatch:
    """What a firewall rule matches. ``None`` fields match anything."""

    src: str | None = None
    dst: str | None = None
    proto: Protocol | None = None
    dst_port: int | None = None

    def __post_init__(self) -> None:
        for name, prefix in (("src", self.src), ("dst", self.dst)):
            if prefix is not None:
                try:
                    parse_prefix(prefix)
                except ValueError:
                    raise ValidationError(
                        f"{name} {prefix!r} is not an address or prefix", field=name
                    ) from None
        if self.proto is not None and self.proto not in ("tcp", "udp", "icmp"):
            raise ValidationError(f"unknown protocol {self.proto!r}", field="proto")
        if self.dst_port is not None:
            if not 0 < self.dst_port < 65536:
                raise ValidationError(f"port {self.dst_port} outside 1..65535", field="dst_port")
            if self.proto not in ("tcp", "udp"):
                raise ValidationError("a port match needs proto tcp or udp", field="dst_port")

    def __str__(self) -> str:
        parts = [
            f"{name}={value}"
            for name, value in (
                ("src", self.src),
                ("dst", self.dst),
                ("proto", self.proto),
                ("port", self.dst_port),
            )
            if value is not None
        ]
        return " ".join(parts) or "any"


@dataclass(frozen=True, slots=True)
class FirewallRule:
    device: str
    match: FlowMatch
    action: Action = "accept"
    origin: Origin = Origin.STATIC
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if self.action not in ("accept", "drop"):
            raise ValidationError(f"unknown action {self.action!r}", element=self.describe())
        _check_common(self)

    @property
    def key(self) -> ItemKey:
        m = self.match
        return (
            "firewall",
            self.device,
            m.src or "",
            m.dst or "",
            m.proto or "",
            str(m.dst_port or ""),
        )

    def devices(self) -> tuple[str, ...]:
        return (self.device,)

    def describe(self) -> str:
        return f"firewall {self.action} [{self.match}] on {self.device}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A guaranteed rate for ``flow_key`` along ``path`` (two nodes = one link)."""

    flow_key: str
    path: tuple[str, ...]
    rate_bps: float
    origin: Origin = Origin.STATIC
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if not self.flow_key:
            raise ValidationError("flow_key must not be empty", element=self.describe())
        _check_path(self)
        _check_rate(self)
        _check_common(self)

    @property
    def key(self) -> ItemKey:
        return ("reservation", self.flow_key)

    def devices(self) -> tuple[str, ...]:
        return self.path[:-1]  # one scheduler class on the egress of every link

    def link_keys(self) -> list[tuple[str, str]]:
        return list(zip(self.path, self.path[1:], strict=False))

    def describe(self) -> str:
        return f"reservation {self.flow_key} {self.rate_bps:.6g} bit/s"


@dataclass(frozen=True, slots=True)
class VirtualCircuit:
    """A temporary pinned path with a guaranteed rate (a tunnel or policy route per hop)."""

    circuit_id: str
    flow_key: str
    path: tuple[str, ...]
    rate_bps: float
    origin: Origin = Origin.STATIC
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if not self.circuit_id:
            raise ValidationError("circuit_id must not be empty", element=self.describe())
        _check_path(self)
        _check_rate(self)
        _check_common(self)

    @property
    def key(self) -> ItemKey:
        return ("circuit", self.circuit_id)

    def devices(self) -> tuple[str, ...]:
        return self.path

    def link_keys(self) -> list[tuple[str, str]]:
        return list(zip(self.path, self.path[1:], strict=False))

    def describe(self) -> str:
        return f"circuit {self.circuit_id} ({self.flow_key})"


ConfigItem: TypeAlias = Route | FirewallRule | Reservation | VirtualCircuit
KIND_ORDER: tuple[str, ...] = ("reservation", "circuit", "firewall", "route")
"""Make-before-break order for adds: capacity first, then permits, then the routes that use them."""


def is_provisional(item: ConfigItem) -> bool:
    return item.origin is Origin.PREDICTED


def with_origin(item: ConfigItem, origin: Origin, expires_at: float | None) -> ConfigItem:
    return replace(item, origin=origin, expires_at=expires_at)


@dataclass(frozen=True)
class NetworkConfig:
    """A set of configuration items keyed by identity. Immutable: edits return a new config."""

    items: Mapping[ItemKey, ConfigItem] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Iterable[ConfigItem]) -> NetworkConfig:
        out: dict[ItemKey, ConfigItem] = {}
        for item in items:
            if item.key in out:
                raise ValidationError("duplicate item", element=item.describe())
            out[item.key] = item
        return cls(out)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[ConfigItem]:
        return iter(self.items.values())

    def __contains__(self, key: object) -> bool:
        return key in self.items

    def get(self, key: ItemKey) -> ConfigItem | None:
        return self.items.get(key)

    def of_kind(self, kind: str) -> list[ConfigItem]:
        return [item for key, item in self.items.items() if key[0] == kind]

    def provisional(self) -> list[ConfigItem]:
        return [item for item in self.items.values() if is_provisional(item)]

    def expired(self, now: float) -> list[ConfigItem]:
        """Items whose ``expires_at`` is at or before ``now``."""
        return [
            item for item in self.items.values() if item.expires_at is not None and item.expires_at <= now
        ]

    def without_expired(self, now: float) -> NetworkConfig:
        return NetworkConfig(
            {k: v for k, v in self.items.items() if v.expires_at is None or v.expires_at > now}
        )

    def sorted_items(self) -> list[ConfigItem]:
        return [self.items[k] for k in sorted(self.items)]
