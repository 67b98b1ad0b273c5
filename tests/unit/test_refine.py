from __future__ import annotations

import numpy as np
import pytest
from tests.helpers.topologies import two_tier
from tests.unit.test_scaffold_planner import predicted

from netscaffold.model import (
    FlowRequest,
    NetworkConfig,
    NextHop,
    Origin,
    QosPolicy,
    QosProfile,
    Reservation,
    Route,
    Topology,
)
from netscaffold.model.config import FirewallRule
from netscaffold.model.metrics import PerformanceSample
from netscaffold.refine import RefinePolicy, Refiner, calculate_discrepancy
from netscaffold.scaffold import Scaffolder


def sample(
    topo: Topology,
    pair_bytes: dict[tuple[str, str], float] | None = None,
    load: dict[tuple[str, str], float] | None = None,
    time_s: float = 1.0,
) -> PerformanceSample:
    links = tuple(sorted(topo.links))
    pairs = tuple(sorted(pair_bytes or {}))
    load_bps = np.array([(load or {}).get(k, 0.0) for k in links])
    zeros = np.zeros(len(links))
    return PerformanceSample(
        time_s, 1.0, links, load_bps, zeros, zeros, pairs, np.array([(pair_bytes or {})[p] for p in pairs])
    )


class FlagDrift:
    def __init__(self, fire_above: float) -> None:
        self.fire_above = fire_above
        self.seen: list[float] = []

    def update(self, value: float) -> bool:
        self.seen.append(value)
        return value > self.fire_above


@pytest.fixture
def topo() -> Topology:
    return two_tier()


def primed(topo: Topology, qos: QosPolicy | None = None) -> NetworkConfig:
    result = Scaffolder(topo, qos).plan(
        predicted([("e1", "e3"), ("e2", "e4")], [0.9, 0.9]), NetworkConfig(), 0.0
    )
    return result.desired


def test_discrepancy_counts_missed_and_unused(topo: Topology) -> None:
    qos = QosPolicy(per_app={"app3": QosProfile("gold", 1e6), "app4": QosProfile("gold", 1e6)})
    config = primed(topo, qos)
    info = [FlowRequest(0.5, "e1", "e3", scaffolded=True), FlowRequest(0.6, "e1", "e4", scaffolded=False)]
    disc = calculate_discrepancy(info, sample(topo, {("e1", "e3"): 1e6}), None, config, topo)
    assert disc.new_flows == 2
    assert disc.missed_pairs == {("e1", "e4")}
    assert disc.missed_fraction == 0.5
    assert disc.unused_pairs == {("e2", "e4")}
    # every reservation is compared with what its pair carried (nothing, for the idle one)
    assert disc.reservation_error["e1->e3"] == (pytest.approx(1e6), 8e6)
    assert disc.reservation_error["e2->e4"][1] == 0.0
    assert disc.active_pairs == {("e1", "e3"), ("e1", "e4")}


def test_used_items_are_confirmed_with_idle_expiry(topo: Topology) -> None:
    config = primed(topo)
    refiner = Refiner(topo, policy=RefinePolicy(confirm_idle_s=10.0))
    decision = refiner.refine(
        [FlowRequest(0.5, "e1", "e3", scaffolded=True)], sample(topo), None, config, 1.0
    )
    new = decision.plan.apply_to(config)
    routes_to_e3 = [i for i in new if isinstance(i, Route) and i.destination == "198.18.0.3/32"]
    assert routes_to_e3
    assert all(r.origin is Origin.CONFIRMED and r.expires_at == 11.0 for r in routes_to_e3)
    permits = [i for i in new if isinstance(i, FirewallRule) and i.match.src == "198.18.0.1/32"]
    assert all(p.origin is Origin.CONFIRMED for p in permits)
    # the other pair stays provisional
    assert any(i.origin is Origin.PREDICTED for i in new)
    assert not decision.above_threshold
    assert any("confirmed" in r for r in decision.reasons)


def test_resize_reroute_and_drop_when_above_threshold(topo: Topology) -> None:
    qos = QosPolicy(per_app={"app3": QosProfile("gold", 1e6)})
    config = primed(topo, qos)
    refiner = Refiner(topo, RefinePolicy(unused_ticks=1, missed_threshold=0.1))
    info = [FlowRequest(0.5, "e1", "e3", scaffolded=True), FlowRequest(0.6, "e1", "e2", scaffolded=False)]
    hot = {("l1", "s1"): 0.99e9}
    decision = refiner.refine(info, sample(topo, {("e1", "e3"): 5e6}, hot), None, config, 1.0)
    assert decision.above_threshold
    new = decision.plan.apply_to(config)
    resv = new.get(("reservation", "e1->e3"))
    assert isinstance(resv, Reservation)
    assert resv.rate_bps == pytest.approx(5e6 * 8 * 1.2)
    l1_routes = [i for i in new if isinstance(i, Route) and i.device == "l1"]
    assert all(h.via != "s1" for r in l1_routes for h in r.next_hops)
    # e2->e4 had permits and no traffic: dropped and suppressed
    assert not [i for i in new if isinstance(i, FirewallRule) and i.match.src == "198.18.0.2/32"]
    assert decision.suppress_until == {("e2", "e4"): 11.0}
    suppressed = Scaffolder(topo, qos).plan(
        predicted([("e2", "e4")], [0.9]), new, 2.0, suppressed=decision.suppress_until
    )
    assert suppressed.skipped == {"suppressed by the refiner": 1}


def test_confirmed_reservations_follow_measured_demand(topo: Topology) -> None:
    """A confirmed reservation shrinks to the standby rate while its pair is idle and grows back with
    measured demand; a provisional one still waiting for its first flow keeps its forecast rate."""
    confirmed = Reservation("e1->e3", ("h1", "l1", "s1", "l2", "h3"), 8e6, Origin.CONFIRMED, expires_at=30.0)
    waiting = Reservation("e2->e4", ("h2", "l1", "s1", "l2", "h4"), 8e6, Origin.PREDICTED, expires_at=5.0)
    config = NetworkConfig.of([confirmed, waiting])
    policy = RefinePolicy(standby_bps=2e3)
    refiner = Refiner(topo, policy)
    idle = refiner.refine([], sample(topo), None, config, 1.0)
    assert idle.above_threshold  # all 16 Mbit/s reserved, nothing carried
    shrunk = idle.plan.apply_to(config)
    assert shrunk.items[confirmed.key].rate_bps == 2e3  # type: ignore[union-attr]
    assert shrunk.items[waiting.key] == waiting
    busy = refiner.refine([], sample(topo, {("e1", "e3"): 1e6}), None, shrunk, 2.0)
    grown = busy.plan.apply_to(shrunk)
    assert grown.items[confirmed.key].rate_bps == pytest.approx(1e6 * 8 * policy.resize_headroom)  # type: ignore[union-attr]
    # within the tolerance: left alone
    steady = refiner.refine([], sample(topo, {("e1", "e3"): 1.05e6}), None, grown, 3.0)
    assert confirmed.key not in {op.item.key for op in steady.plan.ops}


def test_reservations_follow_the_forecast_for_the_coming_tick(topo: Topology) -> None:
    """Where the last prediction covers the pair, the forecast for the coming tick sizes the reservation
    (not the tick just measured)."""
    confirmed = Reservation("e1->e3", ("h1", "l1", "s1", "l2", "h3"), 8e6, Origin.CONFIRMED, expires_at=30.0)
    config = NetworkConfig.of([confirmed])
    graph = predicted([("e1", "e3")], [0.9], bandwidth_bps=3e6)
    decision = Refiner(topo).refine([], sample(topo, {("e1", "e3"): 1e6}), graph, config, 1.0)
    resized = decision.plan.apply_to(config).items[confirmed.key]
    assert resized.rate_bps == pytest.approx(3e6)  # type: ignore[union-attr]
    assert any("forecast" in r for r in decision.reasons)


def test_idle_permits_are_kept_while_the_forecast_backs_them(topo: Topology) -> None:
    config = primed(topo)
    refiner = Refiner(topo, RefinePolicy(unused_ticks=1, missed_threshold=0.0, keep_probability=0.5))
    missed = [FlowRequest(0.6, "e1", "e2", scaffolded=False)]  # puts the refiner above its threshold
    both = [("e1", "e3"), ("e2", "e4")]
    backed = refiner.refine(missed, sample(topo), predicted(both, [0.9, 0.9]), config, 1.0)
    assert backed.above_threshold
    assert not backed.suppress_until
    doubted = refiner.refine(missed, sample(topo), predicted(both, [0.9, 0.05]), config, 2.0)
    assert set(doubted.suppress_until) == {("e2", "e4")}
    assert any(op.kind.name == "REMOVE" for op in doubted.plan.ops)


def test_drift_detector_decides_retraining(topo: Topology) -> None:
    drift = FlagDrift(fire_above=0.5)
    refiner = Refiner(topo, drift=drift)
    graph = predicted([("e1", "e3")], [0.9], bandwidth_bps=1e6)
    calm = refiner.refine([], sample(topo, {("e1", "e3"): 1e6 / 8}), graph, NetworkConfig(), 1.0)
    assert not calm.retrain
    shifted = refiner.refine([], sample(topo, {("e1", "e3"): 5e6 / 8}), graph, NetworkConfig(), 2.0)
    assert shifted.retrain
    assert drift.seen == [pytest.approx(0.5), pytest.approx(0.9)]


def test_confirmed_items_renewed_only_when_stale(topo: Topology) -> None:
    route = Route("h1", "198.18.0.3/32", (NextHop("l1"),), Origin.CONFIRMED, expires_at=20.0)
    config = NetworkConfig.of([route])
    refiner = Refiner(topo)
    req = [FlowRequest(0.5, "e1", "e3", scaffolded=True)]
    assert refiner.refine(req, sample(topo), None, config, 12.0).plan.is_empty
    renewed = refiner.refine(req, sample(topo), None, config, 16.0).plan.apply_to(config)
    assert renewed.items[route.key].expires_at == 26.0


def test_bad_policy_values() -> None:
    with pytest.raises(ValueError, match="unused_ticks"):
        RefinePolicy(unused_ticks=0)
    with pytest.raises(ValueError, match="missed_threshold must be >= 0"):
        RefinePolicy(missed_threshold=-1)
