"""Random mixed configurations for the Linux benchmarks and reliability runs: routes with weighted
multipath next hops, firewall permits, reservations and virtual circuits on a lab topology, all valid
against it (neighbour next hops, paths along links, reservations well under capacity). Seeded: the same
seed gives the same config."""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass

import numpy as np

from netscaffold.model.config import (
    ConfigItem,
    FirewallRule,
    FlowMatch,
    NetworkConfig,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
)
from netscaffold.model.topology import Topology

ROUTE_BASE = ipaddress.IPv4Address("198.18.128.0")
"""Route destinations come from 198.18.128.0/17 (inside the lab range, clear of endpoint addresses)."""


@dataclass(frozen=True)
class Mix:
    """Shares of each kind in a mixed config (the rest are routes)."""

    firewall: float = 0.3
    reservation: float = 0.06
    circuit: float = 0.04
    provisional: float = 0.5


def shortest_path(topology: Topology, src: str, dst: str) -> tuple[str, ...]:
    """Breadth-first node path (the lab topologies are connected; raises KeyError if not)."""
    neighbours: dict[str, list[str]] = {}
    for a, b in sorted(topology.links):
        neighbours.setdefault(a, []).append(b)
    previous: dict[str, str | None] = {src: None}
    queue = deque([src])
    while queue:
        node = queue.popleft()
        if node == dst:
            break
        for peer in neighbours.get(node, []):
            if peer not in previous:
                previous[peer] = node
                queue.append(peer)
    if dst not in previous:
        raise KeyError(f"no path from {src} to {dst}")
    path = [dst]
    while (step := previous[path[-1]]) is not None:
        path.append(step)
    return tuple(reversed(path))


def _lifetime(rng: np.random.Generator, mix: Mix, now_s: float) -> dict[str, object]:
    if rng.random() < mix.provisional:
        return {"origin": Origin.PREDICTED, "expires_at": now_s + float(rng.integers(60, 600))}
    return {"origin": Origin.STATIC if rng.random() < 0.5 else Origin.CONFIRMED}


def _route(topology: Topology, rng: np.random.Generator, index: int, life: dict[str, object]) -> Route:
    neighbours: dict[str, list[str]] = {}
    for a, b in sorted(topology.links):
        neighbours.setdefault(a, []).append(b)
    devices = sorted(neighbours)
    device = devices[int(rng.integers(len(devices)))]
    peers = neighbours[device]
    count = int(rng.integers(1, min(3, len(peers)) + 1))
    chosen = sorted(rng.choice(len(peers), size=count, replace=False).tolist())
    raw = rng.uniform(0.1, 1.0, size=count)
    weights = raw / raw.sum()
    hops = tuple(NextHop(peers[i], float(w)) for i, w in zip(chosen, weights, strict=True))
    if count > 1:  # exact sum 1 despite float rounding
        last = 1.0 - sum(h.weight for h in hops[:-1])
        hops = (*hops[:-1], NextHop(hops[-1].via, last))
    destination = f"{ROUTE_BASE + index}/32"
    return Route(device, destination, hops, **life)  # type: ignore[arg-type]


def _endpoint_pair(topology: Topology, rng: np.random.Generator) -> tuple[str, str]:
    """Two distinct endpoints of the same address family."""
    ids = sorted(topology.endpoints)
    src = ids[int(rng.integers(len(ids)))]
    family = ":" in topology.endpoints[src].address
    peers = [i for i in ids if i != src and (":" in topology.endpoints[i].address) == family]
    if not peers:
        return src, src
    return src, peers[int(rng.integers(len(peers)))]


def mixed_config(
    topology: Topology, n_items: int, seed: int, *, mix: Mix | None = None, now_s: float = 0.0
) -> NetworkConfig:
    """``n_items`` items (fewer if the topology runs out of distinct endpoint pairs)."""
    mix = mix or Mix()
    rng = np.random.default_rng(seed)
    items: dict[tuple[str, ...], ConfigItem] = {}
    devices = sorted(topology.nodes)
    addresses = sorted(ep.address for ep in topology.endpoints.values() if ":" not in ep.address)
    for index in range(n_items * 3):
        if len(items) >= n_items:
            break
        draw, life = rng.random(), _lifetime(rng, mix, now_s)
        item: ConfigItem
        if draw < mix.firewall:
            device = devices[int(rng.integers(len(devices)))]
            src = addresses[int(rng.integers(len(addresses)))]
            match = FlowMatch(src, f"{ROUTE_BASE + index}", "udp", int(rng.integers(1024, 65535)))
            item = FirewallRule(device, match, **life)  # type: ignore[arg-type]
        elif draw < mix.firewall + mix.reservation + mix.circuit and len(topology.endpoints) >= 2:
            src_id, dst_id = _endpoint_pair(topology, rng)
            flow_key = f"{src_id}->{dst_id}"
            src_node, dst_node = topology.endpoints[src_id].host, topology.endpoints[dst_id].host
            if src_id == dst_id or src_node == dst_node:
                continue
            path = shortest_path(topology, src_node, dst_node)
            if draw < mix.firewall + mix.reservation:
                item = Reservation(flow_key, path, 1e6, **life)  # type: ignore[arg-type]
            else:
                item = VirtualCircuit(f"vc:{flow_key}", flow_key, path, 1e5, **life)  # type: ignore[arg-type]
        else:
            item = _route(topology, rng, index, life)
        items.setdefault(item.key, item)
    return NetworkConfig(items)
