"""Per-pair readiness: which scaffolded paths a new flow can take, and until when each is complete.

Recomputed in Python only when ``apply()`` or ``expire()`` changes the configuration. For pair ``s->d`` the
routes for ``address(d)`` (longest prefix match on each device) are walked from ``s``'s node; every way
through their weighted next hops is a candidate with its probability. A candidate that reaches ``d``'s node
is complete until the earliest expiry among its routes, the accept rules on its firewall nodes, and (when
the flow's QoS asks) the reservation / circuit of ``s->d`` on exactly that path: ``until[c, mask]`` with
``mask`` bit 0 = needs a reservation, bit 1 = needs a circuit. A walk that dead-ends or loops is a
candidate with path -1 (the flow then goes reactive).
"""

from __future__ import annotations

import ipaddress
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netscaffold.backends.sim.routing import NodePath, PathTable
from netscaffold.model.config import (
    Address,
    FirewallRule,
    NetworkConfig,
    Reservation,
    Route,
    VirtualCircuit,
    parse_address,
    parse_prefix,
)
from netscaffold.model.topology import Endpoint, NodeKind, Topology

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_CANDIDATES = 64
N_MASKS = 4

# (node path or None for a dead end, probability, earliest route expiry)
Candidate = tuple[NodePath | None, float, float]


def _until(expires_at: float | None) -> float:
    return math.inf if expires_at is None else expires_at


@dataclass(frozen=True)
class Readiness:
    cand_off: IntArray
    cand_path: IntArray
    cand_cum: FloatArray
    cand_until: FloatArray
    grp_off: IntArray
    grp_idx: IntArray
    g_path: IntArray
    g_rate: FloatArray


class _RouteIndex:
    """Longest-prefix match of destination addresses on each device's routes."""

    def __init__(self, config: NetworkConfig) -> None:
        per_device: dict[str, list[tuple[Network, Route]]] = defaultdict(list)
        for item in config.of_kind("route"):
            assert isinstance(item, Route)
            per_device[item.device].append((parse_prefix(item.destination), item))
        for routes in per_device.values():
            routes.sort(key=lambda nr: -nr[0].prefixlen)
        self._routes = dict(per_device)

    def __bool__(self) -> bool:
        return bool(self._routes)

    def lookup(self, device: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Route | None:
        for network, route in self._routes.get(device, ()):
            if address.version == network.version and address in network:
                return route
        return None


class _Walker:
    """Candidate paths towards one destination endpoint, memoised per node."""

    def __init__(self, index: _RouteIndex, dst: Endpoint) -> None:
        self._index = index
        self._dst_node = dst.host
        self._address = parse_address(dst.address)
        self._memo: dict[str, list[Candidate]] = {}
        self._on_stack: set[str] = set()

    def from_node(self, node: str) -> list[Candidate]:
        if node == self._dst_node:
            return [((node,), 1.0, math.inf)]
        memo = self._memo.get(node)
        if memo is not None:
            return memo
        route = self._index.lookup(node, self._address)
        if route is None or node in self._on_stack:
            return [(None, 1.0, -math.inf)]
        self._on_stack.add(node)
        out: list[Candidate] = []
        for hop in sorted(route.next_hops, key=lambda h: h.via):
            for suffix, prob, until in self.from_node(hop.via):
                if suffix is None or node in suffix or len(out) >= MAX_CANDIDATES:
                    out.append((None, prob * hop.weight, -math.inf))
                else:
                    out.append(((node, *suffix), prob * hop.weight, min(until, _until(route.expires_at))))
        self._on_stack.discard(node)
        self._memo[node] = out
        return out


def _single(net: Network | None) -> bool:
    return net is not None and net.prefixlen == net.max_prefixlen


class _Permits:
    """Accept rules per firewall device, as (src network, dst network, until).

    Rules for one source address to one destination address (what scaffolding installs) are kept in a
    dictionary; only broader rules are scanned.
    """

    def __init__(self, config: NetworkConfig) -> None:
        self._rules: dict[str, list[tuple[Network | None, Network | None, float]]] = defaultdict(list)
        self._exact: dict[tuple[str, Address, Address], float] = {}
        for item in config.of_kind("firewall"):
            assert isinstance(item, FirewallRule)
            if item.action != "accept":
                continue
            src = parse_prefix(item.match.src) if item.match.src else None
            dst = parse_prefix(item.match.dst) if item.match.dst else None
            until = _until(item.expires_at)
            if src is not None and dst is not None and _single(src) and _single(dst):
                key = (item.device, src.network_address, dst.network_address)
                self._exact[key] = max(self._exact.get(key, -math.inf), until)
            else:
                self._rules[item.device].append((src, dst, until))

    def until(self, device: str, src: Endpoint, dst: Endpoint) -> float:
        src_ip = parse_address(src.address)
        dst_ip = parse_address(dst.address)
        best = self._exact.get((device, src_ip, dst_ip), -math.inf)
        for src_net, dst_net, until in self._rules.get(device, ()):
            if (src_net is None or src_ip in src_net) and (dst_net is None or dst_ip in dst_net):
                best = max(best, until)
        return best


def _guarantees(config: NetworkConfig, kind: str) -> dict[tuple[str, NodePath], float]:
    """(flow key, path) -> latest expiry of the reservations (or circuits) there."""
    out: dict[tuple[str, NodePath], float] = {}
    for item in config.of_kind(kind):
        assert isinstance(item, Reservation | VirtualCircuit)
        key = (item.flow_key, item.path)
        out[key] = max(out.get(key, -math.inf), _until(item.expires_at))
    return out


def _pair_candidates(
    *,
    src: Endpoint,
    dst: Endpoint,
    walker: _Walker | None,
    topology: Topology,
    permits: _Permits,
    reservations: dict[tuple[str, NodePath], float],
    circuits: dict[tuple[str, NodePath], float],
) -> list[tuple[NodePath | None, float, list[float]]]:
    if src.host == dst.host:
        return [((src.host,), 1.0, [math.inf] * N_MASKS)]
    if walker is None:
        return []
    found = walker.from_node(src.host)
    if len(found) == 1 and found[0][0] is None:
        return []  # no route at the source node: the pair has no scaffolding
    key = f"{src.id}->{dst.id}"
    out: list[tuple[NodePath | None, float, list[float]]] = []
    for path, prob, route_until in found:
        if path is None:
            out.append((None, prob, [-math.inf] * N_MASKS))
            continue
        base = route_until
        for node in path:
            if topology.nodes[node].kind is NodeKind.FIREWALL:
                base = min(base, permits.until(node, src, dst))
        res = reservations.get((key, path), -math.inf)
        vc = circuits.get((key, path), -math.inf)
        out.append((path, prob, [base, min(base, res), min(base, vc), min(base, res, vc)]))
    return out


def compute_readiness(
    config: NetworkConfig,
    topology: Topology,
    pairs: list[tuple[Endpoint, Endpoint]],
    paths: PathTable,
) -> Readiness:
    """Pack the candidates of every pair and the reservation groups (floors) of ``config``."""
    index = _RouteIndex(config)
    permits = _Permits(config)
    reservations = _guarantees(config, "reservation")
    circuits = _guarantees(config, "circuit")
    walkers: dict[str, _Walker] = {}
    offsets = [0]
    cand_path: list[int] = []
    cand_cum: list[float] = []
    cand_until: list[list[float]] = []
    for src, dst in pairs:
        walker = None
        if index:
            walker = walkers.get(dst.id)
            if walker is None:
                walker = walkers[dst.id] = _Walker(index, dst)
        found = _pair_candidates(
            src=src,
            dst=dst,
            walker=walker,
            topology=topology,
            permits=permits,
            reservations=reservations,
            circuits=circuits,
        )
        total = sum(prob for _, prob, _ in found) or 1.0
        running = 0.0
        for path, prob, until in found:
            running += prob / total
            cand_path.append(-1 if path is None else paths.intern(path))
            cand_cum.append(running)
            cand_until.append(until)
        offsets.append(len(cand_path))
    groups = _groups(config, pairs, paths)
    return Readiness(
        cand_off=np.array(offsets, dtype=np.int64),
        cand_path=np.array(cand_path, dtype=np.int64),
        cand_cum=np.array(cand_cum, dtype=np.float64),
        cand_until=np.array(cand_until, dtype=np.float64).reshape(len(cand_path), N_MASKS),
        grp_off=groups[0],
        grp_idx=groups[1],
        g_path=groups[2],
        g_rate=groups[3],
    )


def _groups(
    config: NetworkConfig, pairs: list[tuple[Endpoint, Endpoint]], paths: PathTable
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Reservation groups: one per (flow key, path), rate = sum of its reservations and circuits; indexed
    per pair of the flow table (a flow key no flow uses still holds its capacity, with pair -1)."""
    pair_of = {f"{s.id}->{d.id}": i for i, (s, d) in enumerate(pairs)}
    rate: dict[tuple[str, NodePath], float] = defaultdict(float)
    for item in config:
        if isinstance(item, Reservation | VirtualCircuit):
            rate[(item.flow_key, item.path)] += item.rate_bps
    keys = sorted(rate, key=lambda k: (pair_of.get(k[0], -1), k))
    g_pair = np.array([pair_of.get(k[0], -1) for k in keys], dtype=np.int64)
    g_path = np.array([paths.intern(k[1]) for k in keys], dtype=np.int64)
    g_rate = np.array([rate[k] for k in keys], dtype=np.float64)
    counts = np.bincount(g_pair[g_pair >= 0], minlength=len(pairs))
    grp_off = np.zeros(len(pairs) + 1, dtype=np.int64)
    np.cumsum(counts, out=grp_off[1:])
    grp_idx = np.flatnonzero(g_pair >= 0).astype(np.int64)
    return grp_off, grp_idx, g_path, g_rate
