"""PredictedGraph + topology + current config -> desired primed config -> Plan.

Candidates are whole pairs (a pair is only useful when its whole path is in place): each is priced by
net benefit = P(active within the horizon) x setup delay saved - (table entries x slot cost + reserved
bit-seconds x bandwidth cost), then admitted greedily, best first, while the provisional budget (slots per
device, share of each link) holds. What is not admitted is not in the desired config, so the lowest-benefit
provisional entries are the ones evicted; confirmed and static items are never touched.

The first plan (and any plan the tick memo cannot follow, see :mod:`netscaffold.scaffold.incremental`)
is computed from scratch; later ticks re-price only the pairs whose forecast changed and rebuild only the
items those pairs, expiring renewals and changes in the current config touch. Both give the same plan.
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
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
    flow_key,
)
from netscaffold.model.plan import Plan, provisional_entries_per_device
from netscaffold.model.predicted import PredictedGraph
from netscaffold.model.qos import QosPolicy, QosProfile
from netscaffold.model.topology import Endpoint, LinkKey, Topology
from netscaffold.paths import PathFinder
from netscaffold.scaffold import items as mk
from netscaffold.scaffold.incremental import (
    NO_PATH,
    NOT_LIKELY,
    NOT_WORTH,
    PLACED,
    UNPLACED,
    Candidate,
    IntArray,
    PairInputs,
    PairTable,
    TickMemo,
    skip_counts,
)
from netscaffold.scaffold.policy import LinearSetupCost, ScaffoldPolicy, SetupCostModel

log = logging.getLogger(__name__)
Path = tuple[str, ...]
MIN_RESERVATION_BPS = 1e3


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
        *,
        incremental: bool = True,
    ) -> None:
        """``incremental=False`` plans every tick from scratch (the reference the tick memo is tested
        against)."""
        self.topology = topology
        self.qos = qos or QosPolicy()
        self.policy = policy or ScaffoldPolicy()
        self.cost_model = cost_model or LinearSetupCost()
        self.paths = path_finder or PathFinder(topology)
        self.incremental = incremental
        self._table: PairTable | None = None
        self._settings: tuple[object, ...] | None = None
        self._default_paths: dict[tuple[str, str], list[tuple[Path, float]]] = {}
        self._memo: TickMemo | None = None
        self.incremental_ticks = 0
        """How many plans the tick memo answered (the others were planned from scratch)."""

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
        memo, self._memo = self._memo, None  # dropped if anything below raises
        settings = (self.topology, self.qos, self.policy, self.cost_model, self.paths)
        if self._settings is None or any(a is not b for a, b in zip(settings, self._settings, strict=True)):
            # reassigned since the last plan: nothing cached from the old settings holds
            self._settings, self._table, memo = settings, None, None
            self._default_paths = {}
        table = self._pair_table(predicted)
        inputs = PairInputs.of(table, predicted)
        if memo is not None:
            outcome = memo.replan(self, inputs, current, now_s, suppressed or {})
            if outcome is not None:
                self._memo = memo
                self.incremental_ticks += 1
                return outcome
        result, memo = self._plan_full(inputs, current, now_s, suppressed)
        self._memo = memo
        return result

    # -- from scratch ----------------------------------------------------------------------------
    def _plan_full(
        self,
        inputs: PairInputs,
        current: NetworkConfig,
        now_s: float,
        suppressed: Mapping[tuple[str, str], float] | None,
    ) -> tuple[ScaffoldResult, TickMemo | None]:
        horizon_s = inputs.horizon_s
        expires_at = now_s + horizon_s + self.policy.ttl_margin_s
        fixed = {k: v for k, v in current.items.items() if v.origin is not Origin.PREDICTED}
        status, candidates = self._candidates(inputs, fixed, expires_at)
        skipped: dict[str, int] = defaultdict(int, skip_counts(status))
        if suppressed:
            kept = [c for c in candidates if suppressed.get((c.src.id, c.dst.id), -math.inf) <= now_s]
            if len(kept) < len(candidates):
                skipped["suppressed by the refiner"] += len(candidates) - len(kept)
            eligible = kept
        else:
            eligible = candidates
        ledger = self._ledger(fixed)
        admitted: list[Candidate] = []
        for cand in sorted(eligible, key=Candidate.order):
            reason = self._admit(cand, ledger)
            if reason is None:
                admitted.append(cand)
            else:
                skipped[reason] += 1
        desired_items: dict[ItemKey, ConfigItem] = dict(fixed)
        for item in self._materialise(admitted, fixed, expires_at):
            desired_items[item.key] = self.keep_if_close(current.items.get(item.key), item, now_s, horizon_s)
        desired = NetworkConfig(desired_items)
        plan = Plan.between(current, desired)
        plan.validate(self.topology, self.policy.budget, current)
        result = ScaffoldResult(
            plan=plan,
            desired=desired,
            admitted_pairs=len(admitted),
            candidate_pairs=len(eligible),
            occupancy=provisional_entries_per_device(desired),
            skipped=dict(skipped),
        )
        if not self.incremental:
            return result, None
        memo = TickMemo.build(
            self,
            inputs=inputs,
            status=status,
            candidates=candidates,
            eligible=eligible,
            admitted=admitted,
            desired=desired_items,
        )
        return result, memo

    def _pair_table(self, predicted: PredictedGraph) -> PairTable:
        table = self._table
        if table is None or not table.fits(predicted):
            table = PairTable.of(self, predicted)
            self._table = table
        return table

    # -- candidates ------------------------------------------------------------------------------
    def _candidates(
        self, inputs: PairInputs, fixed: Mapping[ItemKey, ConfigItem], expires_at: float
    ) -> tuple[IntArray, list[Candidate]]:
        """Per pair its status code (see :mod:`~netscaffold.scaffold.incremental`) and the candidates."""
        status = np.where(inputs.table.valid, NOT_LIKELY, UNPLACED).astype(np.int64)
        out: list[Candidate] = []
        for index in np.flatnonzero(inputs.placed).tolist():
            code, cand = self.pair_candidate(inputs, index, fixed, expires_at)
            status[index] = code
            if cand is not None:
                out.append(cand)
        return status, out

    def pair_candidate(
        self, inputs: PairInputs, index: int, fixed: Mapping[ItemKey, ConfigItem], expires_at: float
    ) -> tuple[int, Candidate | None]:
        """The candidate of one placed pair, or the status code saying why there is none."""
        table = inputs.table
        src, dst, qos = table.src[index], table.dst[index], table.qos[index]
        assert src is not None
        assert dst is not None
        assert qos is not None
        if inputs.pinned[index]:
            paths = [(self.paths.tree_path(src.host, dst.host), 1.0)]
        else:
            paths = self._pair_paths(inputs.given.get(index, ()), src.host, dst.host)
        cand = self._candidate(
            src,
            dst,
            qos,
            float(inputs.probability[index]),
            paths,
            forecast_bps=float(inputs.forecast_bps[index]),
            horizon_s=inputs.horizon_s,
            expires_at=expires_at,
            fixed=fixed,
        )
        if cand is None:
            return NO_PATH, None
        if cand.net_benefit_s > 0:
            return PLACED, cand
        return NOT_WORTH, None

    def _pair_paths(
        self, given_paths: tuple[tuple[Path, float], ...], src_host: str, dst_host: str
    ) -> list[tuple[Path, float]]:
        given = [(p, w) for p, w in given_paths if p[0] == src_host and p[-1] == dst_host]
        if not given:
            return self._ecmp_paths(src_host, dst_host)
        return self._kept_paths(given)

    def _ecmp_paths(self, src_host: str, dst_host: str) -> list[tuple[Path, float]]:
        """A pair's paths when the forecast gives none: equal-cost paths, kept as for given ones (the same
        for every pair between two hosts, so computed once per host pair; callers do not mutate it)."""
        key = (src_host, dst_host)
        found = self._default_paths.get(key)
        if found is None:
            # all equal weights and in path order: the paths kept are among the first max_paths
            count, head = self.paths.ecmp_head(src_host, dst_host, self.policy.max_paths)
            found = self._kept_paths([(p, 1.0 / count) for p in head])
            self._default_paths[key] = found
        return found

    def _kept_paths(self, given: list[tuple[Path, float]]) -> list[tuple[Path, float]]:
        given.sort(key=lambda pw: (-pw[1], pw[0]))
        kept = [pw for pw in given if pw[1] >= self.policy.min_path_probability][: self.policy.max_paths]
        kept = kept or given[:1]
        total = sum(w for _, w in kept)
        return [(p, w / total) for p, w in kept]

    def _candidate(
        self,
        src: Endpoint,
        dst: Endpoint,
        qos: QosProfile,
        probability: float,
        paths: list[tuple[Path, float]],
        *,
        forecast_bps: float,
        horizon_s: float,
        expires_at: float,
        fixed: Mapping[ItemKey, ConfigItem],
    ) -> Candidate | None:
        key = flow_key(src.id, dst.id)
        top_path = paths[0][0]
        items: list[ConfigItem] = []
        # Reservations are admitted for the whole horizon but sized to the forecast quantile for the coming
        # tick (what the pair is expected to carry then), not the QoS class's nominal floor: a pair
        # expected later holds only the tiny standby floor until its tick comes (each tick replans), and
        # the refiner resizes used ones to the forecast or measured demand.
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
        return Candidate(
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

    def _needs(self, cand: Candidate, ledger: _Ledger) -> tuple[dict[str, int], dict[LinkKey, float]]:
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

    def _admit(self, cand: Candidate, ledger: _Ledger) -> str | None:
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
        self, admitted: list[Candidate], fixed: Mapping[ItemKey, ConfigItem], expires_at: float
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
                mk.quantised(hops, self.policy.weight_resolution),
                Origin.PREDICTED,
                expires_at,
            )
            if route.key not in fixed:
                out.append(route)
        return out

    def keep_if_close(
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
