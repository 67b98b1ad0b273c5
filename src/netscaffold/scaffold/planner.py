"""PredictedGraph + topology + current config -> desired primed config -> Plan.

Candidates are whole pairs (a pair is only useful when its whole path is in place): each is priced by
net benefit = P(active within the horizon) x setup delay saved - (table entries x slot cost + reserved
bit-seconds x bandwidth cost), then admitted greedily, best first, while the provisional budget (slots per
device, share of each link) holds. What is not admitted is not in the desired config, so the lowest-benefit
provisional entries are the ones evicted; confirmed and static items are never touched.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from netscaffold.model.config import (
    ConfigItem,
    ItemKey,
    NetworkConfig,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
    flow_key,
)
from netscaffold.model.plan import Plan, provisional_entries_per_device
from netscaffold.model.predicted import PredictedGraph
from netscaffold.model.qos import QosPolicy
from netscaffold.model.topology import Endpoint, LinkKey, Topology
from netscaffold.paths import PathFinder
from netscaffold.scaffold import items as mk
from netscaffold.scaffold.policy import LinearSetupCost, ScaffoldPolicy, SetupCostModel

log = logging.getLogger(__name__)
Path = tuple[str, ...]
MIN_RESERVATION_BPS = 1e3


@dataclass
class _Candidate:
    src: Endpoint
    dst: Endpoint
    probability: float
    paths: list[tuple[Path, float]]
    rate_bps: float
    items: list[ConfigItem]
    routes: dict[str, dict[str, float]]
    destination: str
    net_benefit_s: float


@dataclass(frozen=True)
class ScaffoldResult:
    plan: Plan
    desired: NetworkConfig
    admitted_pairs: int
    candidate_pairs: int
    occupancy: Mapping[str, int]
    """Provisional table entries per device in the desired config."""
    skipped: Mapping[str, int] = field(default_factory=dict)
    """Why candidate pairs were left out: reason -> count."""


@dataclass
class _Ledger:
    """Room left under the budget while candidates are admitted."""

    slots_used: dict[str, int]
    link_prov_bps: dict[LinkKey, float]
    link_all_bps: dict[LinkKey, float]
    route_keys: set[tuple[str, str]]


class Scaffolder:
    def __init__(
        self,
        topology: Topology,
        qos: QosPolicy | None = None,
        policy: ScaffoldPolicy | None = None,
        cost_model: SetupCostModel | None = None,
        path_finder: PathFinder | None = None,
    ) -> None:
        self.topology = topology
        self.qos = qos or QosPolicy()
        self.policy = policy or ScaffoldPolicy()
        self.cost_model = cost_model or LinearSetupCost()
        self.paths = path_finder or PathFinder(topology)

    # -- public ----------------------------------------------------------------------------------
    def plan(
        self,
        predicted: PredictedGraph,
        current: NetworkConfig,
        now_s: float,
        suppressed: Mapping[tuple[str, str], float] | None = None,
    ) -> ScaffoldResult:
        """The plan from ``current`` to the primed config for ``predicted`` at ``now_s``.

        ``suppressed`` maps pairs to a time before which they are not scaffolded (the refiner's verdict on
        scaffolding that went unused).
        """
        horizon_s = predicted.horizon * predicted.step_s
        expires_at = now_s + horizon_s + self.policy.ttl_margin_s
        fixed = {k: v for k, v in current.items.items() if v.origin is not Origin.PREDICTED}
        skipped: dict[str, int] = defaultdict(int)
        candidates = self._candidates(predicted, fixed, horizon_s, expires_at, skipped)
        if suppressed:
            kept = [c for c in candidates if suppressed.get((c.src.id, c.dst.id), -math.inf) <= now_s]
            if len(kept) < len(candidates):
                skipped["suppressed by the refiner"] += len(candidates) - len(kept)
            candidates = kept
        ledger = self._ledger(fixed)
        admitted: list[_Candidate] = []
        for cand in sorted(candidates, key=lambda c: (-c.net_benefit_s, c.src.id, c.dst.id)):
            reason = self._admit(cand, ledger)
            if reason is None:
                admitted.append(cand)
            else:
                skipped[reason] += 1
        desired_items: dict[ItemKey, ConfigItem] = dict(fixed)
        for item in self._materialise(admitted, fixed, expires_at):
            desired_items[item.key] = self._keep_if_close(current.items.get(item.key), item, now_s, horizon_s)
        desired = NetworkConfig(desired_items)
        plan = Plan.between(current, desired)
        plan.validate(self.topology, self.policy.budget, current)
        return ScaffoldResult(
            plan=plan,
            desired=desired,
            admitted_pairs=len(admitted),
            candidate_pairs=len(candidates),
            occupancy=provisional_entries_per_device(desired),
            skipped=dict(skipped),
        )

    # -- candidates ------------------------------------------------------------------------------
    def _candidates(
        self,
        predicted: PredictedGraph,
        fixed: Mapping[ItemKey, ConfigItem],
        horizon_s: float,
        expires_at: float,
        skipped: dict[str, int],
    ) -> list[_Candidate]:
        p_any = predicted.any_activity()
        placed: list[tuple[int, Endpoint, Endpoint, float]] = []
        for index, (src_id, dst_id) in enumerate(predicted.pairs):
            src = self.topology.endpoints.get(src_id)
            dst = self.topology.endpoints.get(dst_id)
            if src is None or dst is None or src.host == dst.host:
                skipped["unplaced or local pair"] += 1
                continue
            qos = self.qos.lookup(src.app_name, dst.app_name)
            probability = float(p_any[index])
            if probability > 0.0 and probability >= self.policy.risk(qos.name).min_probability:
                placed.append((index, src, dst, probability))
        pinned = self._pinned_destinations(placed)
        out: list[_Candidate] = []
        for index, src, dst, probability in placed:
            risk = self.policy.risk(self.qos.lookup(src.app_name, dst.app_name).name)
            if dst.id in pinned:
                paths = [(self.paths.tree_path(src.host, dst.host), 1.0)]
            else:
                paths = self._pair_paths(predicted, index, src.host, dst.host)
            q_index = _nearest_quantile(predicted.quantile_levels, risk.reserve_quantile)
            forecast_bps = float(np.max(predicted.bandwidth_bps[:, index, q_index]))
            cand = self._candidate(
                src,
                dst,
                probability,
                paths,
                forecast_bps=forecast_bps,
                horizon_s=horizon_s,
                expires_at=expires_at,
                fixed=fixed,
            )
            if cand is None:
                skipped["no path within the latency bound"] += 1
            elif cand.net_benefit_s > 0:
                out.append(cand)
            else:
                skipped["cost above benefit"] += 1
        return out

    def _pinned_destinations(self, placed: list[tuple[int, Endpoint, Endpoint, float]]) -> set[str]:
        """Destinations that some candidate pair needs a guaranteed path to.

        Routes match destinations only, so a reservation or circuit is on the path flows take only if every
        source's route to that destination follows one tree: such destinations are pinned to
        :meth:`PathFinder.tree_path` instead of being split over equal-cost paths.
        """
        out: set[str] = set()
        for _, src, dst, _ in placed:
            qos = self.qos.lookup(src.app_name, dst.app_name)
            if qos.needs_reservation or qos.needs_circuit:
                out.add(dst.id)
        return out

    def _pair_paths(
        self, predicted: PredictedGraph, index: int, src_host: str, dst_host: str
    ) -> list[tuple[Path, float]]:
        given = [(p, w) for p, w in predicted.paths_of(index) if p[0] == src_host and p[-1] == dst_host]
        if not given:
            ecmp = self.paths.ecmp(src_host, dst_host)
            given = [(p, 1.0 / len(ecmp)) for p in ecmp]
        given.sort(key=lambda pw: (-pw[1], pw[0]))
        kept = [pw for pw in given if pw[1] >= self.policy.min_path_probability][: self.policy.max_paths]
        kept = kept or given[:1]
        total = sum(w for _, w in kept)
        return [(p, w / total) for p, w in kept]

    def _candidate(
        self,
        src: Endpoint,
        dst: Endpoint,
        probability: float,
        paths: list[tuple[Path, float]],
        *,
        forecast_bps: float,
        horizon_s: float,
        expires_at: float,
        fixed: Mapping[ItemKey, ConfigItem],
    ) -> _Candidate | None:
        qos = self.qos.lookup(src.app_name, dst.app_name)
        key = flow_key(src.id, dst.id)
        top_path = paths[0][0]
        items: list[ConfigItem] = []
        # Reservations are at the forecast quantile (what the pair is expected to carry), not the QoS
        # class's nominal floor: the refiner resizes them to measured demand. A tiny floor keeps the
        # item meaningful for pairs forecast near zero.
        rate_bps = max(forecast_bps, MIN_RESERVATION_BPS)
        if qos.needs_circuit:
            assert qos.max_latency_s is not None
            fitting = [p for p, _ in paths if self.paths.path_delay_s(p) <= qos.max_latency_s]
            if not fitting:
                return None
            top_path = fitting[0]
            paths = [(top_path, 1.0)]  # a guaranteed path is pinned: no split
            items.append(mk.circuit(key, top_path, rate_bps, expires_at))
        if qos.needs_reservation:
            items.append(mk.reservation(key, top_path, rate_bps, expires_at))
        firewalls = mk.firewall_nodes(self.topology, (p for p, _ in paths))
        items.extend(mk.permits(firewalls, src, dst, qos, expires_at))
        items = [item for item in items if item.key not in fixed]
        routes = mk.route_contributions(paths, probability)
        hops = len(top_path) - 1
        saved_s = self.cost_model.setup_delay_s(
            hops, len(firewalls), qos.needs_reservation or qos.needs_circuit
        )
        entries = sum(len(item.devices()) for item in items) + sum(len(r) for r in routes.values())
        reserved_bps = sum(item.rate_bps for item in items if isinstance(item, Reservation | VirtualCircuit))
        net = (
            probability * saved_s
            - entries * self.policy.slot_cost_s
            - reserved_bps * horizon_s * self.policy.bandwidth_cost_per_bit
        )
        return _Candidate(
            src, dst, probability, paths, rate_bps, items, routes, mk.host_prefix(dst.address), net
        )

    # -- admission -------------------------------------------------------------------------------
    def _ledger(self, fixed: Mapping[ItemKey, ConfigItem]) -> _Ledger:
        link_all: dict[LinkKey, float] = defaultdict(float)
        for item in fixed.values():
            if isinstance(item, Reservation | VirtualCircuit):
                for link in item.link_keys():
                    link_all[link] += item.rate_bps
        route_keys = {(item.device, item.destination) for item in fixed.values() if isinstance(item, Route)}
        return _Ledger(defaultdict(int), defaultdict(float), link_all, route_keys)

    def _needs(self, cand: _Candidate, ledger: _Ledger) -> tuple[dict[str, int], dict[LinkKey, float]]:
        """Table entries per device and provisional rate per link that admitting ``cand`` takes."""
        slots: dict[str, int] = defaultdict(int)
        links: dict[LinkKey, float] = defaultdict(float)
        for item in cand.items:
            for device in item.devices():
                slots[device] += 1
            if isinstance(item, Reservation | VirtualCircuit):
                for link in item.link_keys():
                    links[link] += item.rate_bps
        for device in cand.routes:
            if (device, cand.destination) not in ledger.route_keys:
                slots[device] += 1
        return slots, links

    def _admit(self, cand: _Candidate, ledger: _Ledger) -> str | None:
        """Reserve room for ``cand`` in the ledger, or say why it does not fit."""
        budget = self.policy.budget
        slots, links = self._needs(cand, ledger)
        if any(ledger.slots_used[d] + n > budget.slots_for(d) for d, n in slots.items()):
            return "device slot budget"
        for link, rate in links.items():
            capacity = self.topology.links[link].capacity_bps
            if ledger.link_prov_bps[link] + rate > budget.link_fraction * capacity:
                return "link provisional share"
            if ledger.link_all_bps[link] + rate > capacity:
                return "link capacity"
        for device, count in slots.items():
            ledger.slots_used[device] += count
        for link, rate in links.items():
            ledger.link_prov_bps[link] += rate
            ledger.link_all_bps[link] += rate
        ledger.route_keys.update((d, cand.destination) for d in cand.routes)
        return None

    # -- output ----------------------------------------------------------------------------------
    def _materialise(
        self, admitted: list[_Candidate], fixed: Mapping[ItemKey, ConfigItem], expires_at: float
    ) -> list[ConfigItem]:
        out: list[ConfigItem] = []
        merged: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for cand in admitted:
            out.extend(cand.items)
            for device, hops in cand.routes.items():
                for via, mass in hops.items():
                    merged[(device, cand.destination)][via] += mass
        for (device, destination), hops in sorted(merged.items()):
            route = Route(
                device,
                destination,
                _quantised(hops, self.policy.weight_resolution),
                Origin.PREDICTED,
                expires_at,
            )
            if route.key not in fixed:
                out.append(route)
        return out

    def _keep_if_close(
        self, existing: ConfigItem | None, new: ConfigItem, now_s: float, horizon_s: float
    ) -> ConfigItem:
        """Avoid churn: keep an existing provisional item that still covers the horizon and differs only
        in expiry (or in rate within the tolerance)."""
        if existing is None or existing.origin is not Origin.PREDICTED or existing.expires_at is None:
            return new
        if existing.expires_at < now_s + horizon_s:
            return new
        candidate = replace(new, expires_at=existing.expires_at)
        if isinstance(existing, Reservation | VirtualCircuit) and isinstance(
            candidate, Reservation | VirtualCircuit
        ):
            tolerance = self.policy.rate_change_tolerance
            if abs(candidate.rate_bps - existing.rate_bps) <= tolerance * existing.rate_bps:
                candidate = replace(candidate, rate_bps=existing.rate_bps)
        return existing if candidate == existing else new


def _nearest_quantile(levels: tuple[float, ...], wanted: float) -> int:
    return int(np.argmin([abs(level - wanted) for level in levels]))


def _quantised(hops: Mapping[str, float], resolution: int) -> tuple[NextHop, ...]:
    """Weights rounded to 1/resolution (at least one unit each) so small forecast wobbles cause no churn."""
    total = sum(hops.values())
    ordered = sorted(hops.items(), key=lambda kv: (-kv[1], kv[0]))
    units = [max(1, round(mass / total * resolution)) for _, mass in ordered]
    while sum(units) > resolution and max(units) > 1:
        units[units.index(max(units))] -= 1
    scale = sum(units)
    return tuple(NextHop(via, u / scale) for (via, _), u in zip(ordered, units, strict=True))
