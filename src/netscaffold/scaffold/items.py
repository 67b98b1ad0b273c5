"""The provisional items that scaffold one pair's predicted paths (see docs/architecture.md)."""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Iterable

from netscaffold.model.config import (
    FirewallRule,
    FlowMatch,
    Origin,
    Reservation,
    VirtualCircuit,
    parse_prefix,
)
from netscaffold.model.qos import QosProfile
from netscaffold.model.topology import Endpoint, NodeKind, Topology

Path = tuple[str, ...]


@functools.lru_cache(maxsize=1 << 16)
def host_prefix(address: str) -> str:
    """The /32 (or /128) prefix of one endpoint address."""
    return str(parse_prefix(address))


def circuit_id(key: str) -> str:
    return f"vc:{key}"


def firewall_nodes(topology: Topology, paths: Iterable[Path]) -> list[str]:
    seen: dict[str, None] = {}
    for path in paths:
        for node in path:
            if topology.nodes[node].kind is NodeKind.FIREWALL:
                seen.setdefault(node, None)
    return list(seen)


def permits(
    devices: Iterable[str], src: Endpoint, dst: Endpoint, qos: QosProfile, expires_at: float
) -> list[FirewallRule]:
    """Accept rules for src -> dst on each firewall: one per allowed port, or one for the address pair."""
    src_prefix, dst_prefix = host_prefix(src.address), host_prefix(dst.address)
    if qos.allowed_ports:
        matches = [
            FlowMatch(src=src_prefix, dst=dst_prefix, proto="tcp", dst_port=port)
            for port in qos.allowed_ports
        ]
    else:
        matches = [FlowMatch(src=src_prefix, dst=dst_prefix)]
    return [
        FirewallRule(device, match, "accept", Origin.PREDICTED, expires_at)
        for device in devices
        for match in matches
    ]


def route_contributions(paths: Iterable[tuple[Path, float]], weight: float) -> dict[str, dict[str, float]]:
    """Per device on the paths (all but the last node): next hop -> probability mass x ``weight``."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path, probability in paths:
        for here, nxt in itertools.pairwise(path):
            out[here][nxt] += probability * weight
    return out


def reservation(key: str, path: Path, rate_bps: float, expires_at: float) -> Reservation:
    return Reservation(key, path, rate_bps, Origin.PREDICTED, expires_at)


def circuit(key: str, path: Path, rate_bps: float, expires_at: float) -> VirtualCircuit:
    return VirtualCircuit(circuit_id(key), key, path, rate_bps, Origin.PREDICTED, expires_at)
