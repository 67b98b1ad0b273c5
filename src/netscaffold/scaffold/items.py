"""The provisional items that scaffold one pair's predicted paths (see docs/architecture.md)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence

from netscaffold.model.config import (
    FirewallRule,
    FlowMatch,
    NextHop,
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
    devices = list(devices)
    if not devices:
        return []
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


def route_contributions(paths: Sequence[tuple[Path, float]], weight: float) -> dict[str, dict[str, float]]:
    """Per device on the paths (all but the last node): next hop -> probability mass x ``weight``."""
    if len(paths) == 1:  # the common case: one path
        ((path, probability),) = paths
        mass = probability * weight
        single = {here: {nxt: mass} for here, nxt in itertools.pairwise(path)}
        if len(single) == len(path) - 1:  # no node twice, so nothing to add up (0.0 + mass is mass)
            return single
    out: dict[str, dict[str, float]] = {}
    for path, probability in paths:
        mass = probability * weight
        for here, nxt in itertools.pairwise(path):
            hops = out.setdefault(here, {})
            hops[nxt] = hops.get(nxt, 0.0) + mass
    return out


def reservation(key: str, path: Path, rate_bps: float, expires_at: float) -> Reservation:
    return Reservation(key, path, rate_bps, Origin.PREDICTED, expires_at)


def circuit(key: str, path: Path, rate_bps: float, expires_at: float) -> VirtualCircuit:
    return VirtualCircuit(circuit_id(key), key, path, rate_bps, Origin.PREDICTED, expires_at)


def quantised(hops: Mapping[str, float], resolution: int) -> tuple[NextHop, ...]:
    """Weights rounded to 1/resolution (at least one unit each) so small forecast wobbles cause no churn."""
    total = sum(hops.values())
    ordered = sorted(hops.items(), key=lambda kv: (-kv[1], kv[0]))
    units = [max(1, round(mass / total * resolution)) for _, mass in ordered]
    while sum(units) > resolution and max(units) > 1:
        units[units.index(max(units))] -= 1
    scale = sum(units)
    return tuple(NextHop(via, u / scale) for (via, _), u in zip(ordered, units, strict=True))
