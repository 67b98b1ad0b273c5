"""The refiner: ``refineNetwork(routingInfo, performanceMetrics, predictedData)`` of the specification.

Every tick it measures the discrepancy and confirms the provisional items that traffic used (predicted ->
confirmed, with an idle expiry renewed while in use). When the discrepancy is above a threshold it also
corrects: resizes reservations to measured demand, moves weighted next hops off congested links, and drops
provisional permits of pairs that stay unused (suppressing them for a while so the scaffolder does not put
them straight back). The drift detector, fed the forecast error every tick, decides retraining.
Every decision is logged with its reason.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from netscaffold.errors import ConfigError, PlanError
from netscaffold.model.config import (
    ConfigItem,
    FirewallRule,
    ItemKey,
    NetworkConfig,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
    split_flow_key,
)
from netscaffold.model.events import RoutingInfo
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import OpKind, Plan, PlanOp
from netscaffold.model.predicted import PredictedGraph
from netscaffold.model.topology import LinkKey, Topology
from netscaffold.refine.discrepancy import Discrepancy, calculate_discrepancy

log = logging.getLogger(__name__)
Pair = tuple[str, str]


class DriftDetector(Protocol):
    """Fed one forecast-error value per tick; says True when the error distribution has drifted."""

    def update(self, value: float) -> bool: ...


@dataclass(frozen=True)
class RefinePolicy:
    missed_threshold: float = 0.2
    """Share of new flows that found no scaffolded path above which the refiner corrects."""
    bandwidth_threshold: float = 0.5
    """Bandwidth NMAE above which the refiner corrects."""
    confirm_idle_s: float = 10.0
    """Confirmed items expire this long after their pair was last active (an idle timeout)."""
    resize_tolerance: float = 0.1
    """A reservation whose measured use departs from its rate by more than this share is resized."""
    resize_headroom: float = 1.2
    """Resized rate = measured demand x headroom."""
    reservation_threshold: float = 0.2
    """sum |reserved - measured| / sum reserved above which the refiner corrects."""
    reserve_quantile: float = 0.9
    """Forecast quantile a reservation follows (as the scaffolder's risk knob)."""
    standby_bps: float = 1e3
    """What a confirmed reservation shrinks to while its pair is idle: it stays admitted (a flow of the
    pair still finds its path complete, as a reactive entry stays installed until its idle timeout) but
    holds almost no bandwidth until measured demand resizes it."""
    unused_ticks: int = 10
    """Ticks a provisional permit may go unused before it is dropped (and its pair suppressed): keep it
    above the forecast horizon, or scaffolding for a flow predicted a few ticks ahead is dropped before
    the flow comes."""
    keep_probability: float = 0.3
    """An idle provisional permit is kept while the last prediction gives its pair at least this
    P(active within the horizon)."""
    suppress_s: float = 10.0
    congestion_threshold: float = 0.9

    def __post_init__(self) -> None:
        for name in (
            "missed_threshold",
            "bandwidth_threshold",
            "confirm_idle_s",
            "resize_tolerance",
            "reservation_threshold",
            "standby_bps",
            "keep_probability",
            "suppress_s",
            "congestion_threshold",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be >= 0, got {value}", field=name)
        if self.resize_headroom < 1.0:
            raise ConfigError("resize_headroom must be >= 1", field="resize_headroom")
        if self.unused_ticks < 1:
            raise ConfigError("unused_ticks must be >= 1", field="unused_ticks")


@dataclass(frozen=True)
class RefineDecision:
    discrepancy: Discrepancy
    above_threshold: bool
    plan: Plan
    retrain: bool
    reasons: tuple[str, ...]
    suppress_until: dict[Pair, float] = field(default_factory=dict)


class Refiner:
    def __init__(
        self,
        topology: Topology,
        policy: RefinePolicy | None = None,
        drift: DriftDetector | None = None,
    ) -> None:
        self.topology = topology
        self.policy = policy or RefinePolicy()
        self.drift = drift
        self._idle_ticks: dict[Pair, int] = defaultdict(int)
        self._by_address = {ep.address: ep.id for ep in topology.endpoints.values()}

    def refine(
        self,
        routing_info: Iterable[RoutingInfo],
        sample: PerformanceSample,
        predicted: PredictedGraph | None,
        current: NetworkConfig,
        now_s: float,
        *,
        coming: PredictedGraph | None = None,
    ) -> RefineDecision:
        """``predicted``: the forecast made a tick ago (what the discrepancy is measured against);
        ``coming``: the fresh forecast, whose first step sizes reservations for the tick about to start
        (without it, the second step of ``predicted`` does)."""
        disc = calculate_discrepancy(
            routing_info,
            sample,
            predicted,
            current,
            self.topology,
            congestion_threshold=self.policy.congestion_threshold,
        )
        reasons: list[str] = []
        changes: dict[ItemKey, ConfigItem] = {}
        removals: dict[ItemKey, ConfigItem] = {}
        self._confirm_used(disc, current, now_s, changes, reasons)
        above = self._above_threshold(disc)
        suppress: dict[Pair, float] = {}
        if above:
            reasons.append(
                f"discrepancy above threshold: missed {disc.missed_fraction:.0%} of "
                f"{disc.new_flows} new flows, bandwidth NMAE {disc.bandwidth_nmae:.3g}, "
                f"{len(disc.overloaded_links)} congested link(s), reservation error "
                f"{disc.reservation_error_fraction:.3g}"
            )
            sizing = (
                _step_forecast(coming, 0, self.policy.reserve_quantile)
                if coming is not None
                else _step_forecast(predicted, 1, self.policy.reserve_quantile)
            )
            self._resize(disc, current, sizing, changes, reasons)
            self._reroute(disc.overloaded_links, current, changes, reasons)
            self._drop_unused_permits(
                disc,
                current=current,
                expected=_activity_by_pair(predicted),
                now_s=now_s,
                removals=removals,
                suppress=suppress,
                reasons=reasons,
            )
        retrain = self._drift(disc, reasons)
        plan = self._plan(current, changes, removals, reasons)
        for reason in reasons:
            log.info("refine t=%.3f: %s", now_s, reason)
        return RefineDecision(disc, above, plan, retrain, tuple(reasons), suppress)

    # -- decisions -------------------------------------------------------------------------------
    def _above_threshold(self, disc: Discrepancy) -> bool:
        nmae = disc.bandwidth_nmae
        return (
            disc.missed_fraction > self.policy.missed_threshold
            or (not math.isnan(nmae) and nmae > self.policy.bandwidth_threshold)
            or bool(disc.overloaded_links)
            or disc.reservation_error_fraction > self.policy.reservation_threshold
        )

    def _pair_of(self, item: ConfigItem) -> Pair | None:
        if isinstance(item, Reservation | VirtualCircuit):
            return split_flow_key(item.flow_key)
        if isinstance(item, FirewallRule) and item.match.src and item.match.dst:
            src_id = self._by_address.get(item.match.src.split("/")[0])
            dst_id = self._by_address.get(item.match.dst.split("/")[0])
            return (src_id, dst_id) if src_id and dst_id else None
        return None

    def _confirm_used(
        self,
        disc: Discrepancy,
        current: NetworkConfig,
        now_s: float,
        changes: dict[ItemKey, ConfigItem],
        reasons: list[str],
    ) -> None:
        """Provisional items of pairs that carried traffic become confirmed, with an idle expiry."""
        if not disc.active_pairs:
            return
        active_dsts = {
            self.topology.endpoints[dst].address
            for _, dst in disc.active_pairs
            if dst in self.topology.endpoints
        }
        expires = now_s + self.policy.confirm_idle_s
        confirmed = 0
        for item in current:
            used = (
                item.destination.split("/")[0] in active_dsts
                if isinstance(item, Route)
                else self._pair_of(item) in disc.active_pairs
            )
            if not used:
                continue
            stale = item.expires_at is not None and item.expires_at < now_s + self.policy.confirm_idle_s / 2
            if item.origin is Origin.PREDICTED or (item.origin is Origin.CONFIRMED and stale):
                changes[item.key] = replace(item, origin=Origin.CONFIRMED, expires_at=expires)
                confirmed += item.origin is Origin.PREDICTED
        if confirmed:
            reasons.append(f"confirmed {confirmed} provisional item(s) used by traffic")

    def _resize(
        self,
        disc: Discrepancy,
        current: NetworkConfig,
        coming: dict[Pair, float],
        changes: dict[ItemKey, ConfigItem],
        reasons: list[str],
    ) -> None:
        """Reservations and circuits follow demand: the forecast for the coming tick where the last
        prediction covers the pair, else measured demand x headroom; never below the standby rate. A
        confirmed one whose pair went idle so shrinks to standby; a provisional one still waiting for its
        first flow keeps the rate the scaffolder gave it."""
        policy = self.policy
        for item in current:
            if not isinstance(item, Reservation | VirtualCircuit):
                continue
            if item.flow_key not in disc.reservation_error:
                continue
            reserved, measured = disc.reservation_error[item.flow_key]
            base = changes.get(item.key, item)
            assert isinstance(base, Reservation | VirtualCircuit)
            if measured <= 0.0 and base.origin is not Origin.CONFIRMED:
                continue
            forecast = coming.get(split_flow_key(item.flow_key))
            demand = forecast if forecast is not None else measured * policy.resize_headroom
            rate = max(policy.standby_bps, demand)
            if abs(rate - item.rate_bps) <= policy.resize_tolerance * item.rate_bps:
                continue
            changes[item.key] = replace(base, rate_bps=rate)
            source = "forecast" if forecast is not None else "measured"
            reasons.append(
                f"resize {item.flow_key}: reserved {reserved:.3g} bit/s, measured {measured:.3g}, "
                f"{source} -> {rate:.3g}"
            )

    def _reroute(
        self,
        congested: tuple[LinkKey, ...],
        current: NetworkConfig,
        changes: dict[ItemKey, ConfigItem],
        reasons: list[str],
    ) -> None:
        hot = set(congested)
        for item in current:
            if not isinstance(item, Route) or len(item.next_hops) < 2:
                continue
            keep = [h for h in item.next_hops if (item.device, h.via) not in hot]
            if not keep or len(keep) == len(item.next_hops):
                continue
            total = sum(h.weight for h in keep)
            hops = tuple(NextHop(h.via, h.weight / total) for h in keep)
            base = changes.get(item.key, item)
            assert isinstance(base, Route)
            changes[item.key] = replace(base, next_hops=hops)
            dropped = sorted({h.via for h in item.next_hops} - {h.via for h in keep})
            reasons.append(f"reroute {item.destination} on {item.device} off congested hop(s) {dropped}")

    def _drop_unused_permits(
        self,
        disc: Discrepancy,
        *,
        current: NetworkConfig,
        expected: dict[Pair, float],
        now_s: float,
        removals: dict[ItemKey, ConfigItem],
        suppress: dict[Pair, float],
        reasons: list[str],
    ) -> None:
        """Provisional permits idle for ``unused_ticks`` are dropped (the pinhole closed) and their pair
        suppressed, unless the last prediction still expects the pair with at least ``keep_probability``:
        a sparse pair that talks every few tens of seconds keeps its scaffolding while the forecaster
        backs it (the budget bounds what that costs)."""
        holders: dict[Pair, list[ConfigItem]] = defaultdict(list)
        for item in current:
            pair = self._pair_of(item)
            if pair is not None and item.origin is Origin.PREDICTED and isinstance(item, FirewallRule):
                holders[pair].append(item)
        for pair in list(self._idle_ticks):
            if pair not in holders or pair in disc.active_pairs:
                del self._idle_ticks[pair]
        for pair, items in holders.items():
            if pair in disc.active_pairs:
                continue
            self._idle_ticks[pair] += 1
            if expected.get(pair, 0.0) >= self.policy.keep_probability:
                continue
            if self._idle_ticks[pair] >= self.policy.unused_ticks:
                for item in items:
                    removals[item.key] = item
                suppress[pair] = now_s + self.policy.suppress_s
                del self._idle_ticks[pair]
                reasons.append(
                    f"drop {len(items)} unused permit(s) of {pair[0]}->{pair[1]} "
                    f"after {self.policy.unused_ticks} idle tick(s)"
                )

    def _drift(self, disc: Discrepancy, reasons: list[str]) -> bool:
        if self.drift is None or math.isnan(disc.bandwidth_nmae):
            return False
        if self.drift.update(disc.bandwidth_nmae):
            reasons.append(f"drift detected (bandwidth NMAE {disc.bandwidth_nmae:.3g}): retrain")
            return True
        return False

    def _plan(
        self,
        current: NetworkConfig,
        changes: dict[ItemKey, ConfigItem],
        removals: dict[ItemKey, ConfigItem],
        reasons: list[str],
    ) -> Plan:
        ops = [PlanOp(OpKind.REMOVE, item) for item in removals.values()]
        ops += [
            PlanOp(OpKind.UPDATE, new, previous=current.items[key])
            for key, new in changes.items()
            if key not in removals and current.items.get(key) != new
        ]
        plan = Plan.of(ops, allow_confirmed_changes=True)
        try:
            plan.validate(self.topology, None, current)
        except PlanError as exc:
            # A resize that no longer fits is dropped; confirmation and removals still go ahead.
            reasons.append(f"corrective resize skipped: {exc}")
            safe = [
                op
                for op in plan.ops
                if not (
                    op.kind is OpKind.UPDATE
                    and isinstance(op.item, Reservation | VirtualCircuit)
                    and isinstance(op.previous, Reservation | VirtualCircuit)
                    and op.item.rate_bps > op.previous.rate_bps
                )
            ]
            plan = Plan.of(safe, allow_confirmed_changes=True)
            plan.validate(self.topology, None, current)
        return plan


def _step_forecast(predicted: PredictedGraph | None, step: int, quantile: float) -> dict[Pair, float]:
    """Pair -> the forecast quantile for one horizon step (the last step when ``step`` is past it)."""
    if predicted is None or predicted.horizon == 0 or not predicted.pairs:
        return {}
    q = predicted.nearest_quantile_index(quantile)
    values = predicted.bandwidth_bps[min(step, predicted.horizon - 1), :, q]
    return {pair: float(v) for pair, v in zip(predicted.pairs, values.tolist(), strict=True)}


def _activity_by_pair(predicted: PredictedGraph | None) -> dict[Pair, float]:
    """Pair -> P(active within the horizon) in the last prediction."""
    if predicted is None or not predicted.pairs:
        return {}
    return dict(zip(predicted.pairs, predicted.any_activity().tolist(), strict=True))
