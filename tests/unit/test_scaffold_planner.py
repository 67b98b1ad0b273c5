from __future__ import annotations

import numpy as np
import pytest
from tests.helpers.topologies import two_tier

from netscaffold.model import (
    NetworkConfig,
    NextHop,
    Origin,
    PredictedGraph,
    ProvisionalBudget,
    QosPolicy,
    QosProfile,
    Reservation,
    Route,
    Topology,
    VirtualCircuit,
)
from netscaffold.model.config import FirewallRule
from netscaffold.scaffold import Scaffolder, ScaffoldPolicy


def predicted(
    pairs: list[tuple[str, str]],
    activity: list[float],
    bandwidth_bps: float = 1e6,
    horizon: int = 5,
    t0_s: float = 0.0,
) -> PredictedGraph:
    n = len(pairs)
    act = np.tile(np.asarray(activity, dtype=float), (horizon, 1))
    bw = np.broadcast_to(np.array([0.5, 1.0, 2.0]) * bandwidth_bps, (horizon, n, 3)).copy()
    return PredictedGraph(
        t0_s=t0_s,
        step_s=1.0,
        pairs=tuple(pairs),
        quantile_levels=(0.5, 0.9, 0.99),
        activity=act,
        bandwidth_bps=bw,
        latency_bound_s=np.full(n, np.nan),
    )


@pytest.fixture
def topo() -> Topology:
    return two_tier()


def test_all_four_actions() -> None:
    qos = QosPolicy(per_app={"app3": QosProfile("gold", 5e6, 0.01, 1, (443,))})
    scaffolder = Scaffolder(two_tier(firewalls=("s1", "s2")), qos)
    result = scaffolder.plan(predicted([("e1", "e3")], [0.9]), NetworkConfig(), now_s=10.0)
    kinds = {op.item.key[0] for op in result.plan.ops}
    assert kinds == {"route", "firewall", "reservation", "circuit"}
    resv = next(i for i in result.desired if isinstance(i, Reservation))
    vc = next(i for i in result.desired if isinstance(i, VirtualCircuit))
    assert resv.rate_bps == pytest.approx(1e6)  # the q90 forecast, not the class's nominal floor
    assert vc.path == resv.path  # a guaranteed path is pinned
    fw = [i for i in result.desired if isinstance(i, FirewallRule)]
    assert [(r.device, r.match.dst_port) for r in fw] == [(vc.path[2], 443)]
    routes = [i for i in result.desired if isinstance(i, Route)]
    assert all(len(r.next_hops) == 1 for r in routes)  # pinned: no split
    for item in result.desired:
        assert item.origin is Origin.PREDICTED
        assert item.expires_at == pytest.approx(10.0 + 5 + scaffolder.policy.ttl_margin_s)


def test_weighted_next_hops_split_over_ecmp(topo: Topology) -> None:
    result = Scaffolder(topo).plan(predicted([("e1", "e3")], [0.8]), NetworkConfig(), now_s=0.0)
    routes = {r.device: r for r in result.desired if isinstance(r, Route)}
    assert set(routes) == {"h1", "l1", "s1", "s2", "l2"}
    assert {h.via for h in routes["l1"].next_hops} == {"s1", "s2"}
    assert sum(h.weight for h in routes["l1"].next_hops) == pytest.approx(1.0)
    assert routes["l1"].destination == "198.18.0.3/32"
    # the firewall spine is on a path: a permit is there
    assert any(isinstance(i, FirewallRule) and i.device == "s1" for i in result.desired)


def test_idempotent_and_renewal(topo: Topology) -> None:
    scaffolder = Scaffolder(topo)
    graph = predicted([("e1", "e3"), ("e2", "e4")], [0.9, 0.7])
    first = scaffolder.plan(graph, NetworkConfig(), now_s=0.0)
    current = first.plan.apply_to(NetworkConfig())
    assert scaffolder.plan(graph, current, now_s=0.0).plan.is_empty
    # one second later the items still cover the horizon: no churn
    assert scaffolder.plan(graph, current, now_s=1.0).plan.is_empty
    # once an expiry no longer covers the horizon the items are renewed
    later = scaffolder.plan(graph, current, now_s=3.0)
    assert later.plan.ops
    assert all(op.kind.value == "update" for op in later.plan.ops)


def test_unlikely_pairs_are_not_scaffolded_and_stale_ones_removed(topo: Topology) -> None:
    scaffolder = Scaffolder(topo)
    current = scaffolder.plan(predicted([("e1", "e3")], [0.9]), NetworkConfig(), 0.0).desired
    result = scaffolder.plan(predicted([("e1", "e3")], [0.01]), current, 1.0)
    assert len(result.desired) == 0
    assert result.plan.count(result.plan.ops[0].kind) == len(current)


def test_budget_evicts_lowest_benefit_first() -> None:
    policy = ScaffoldPolicy(budget=ProvisionalBudget(rule_slots_per_device=1))
    scaffolder = Scaffolder(two_tier(firewall=False), policy=policy)
    graph = predicted([("e1", "e3"), ("e1", "e4")], [0.4, 0.95])
    result = scaffolder.plan(graph, NetworkConfig(), 0.0)
    assert result.admitted_pairs == 1
    assert result.skipped == {"device slot budget": 1}
    assert max(result.occupancy.values()) <= 1
    assert {r.destination for r in result.desired if isinstance(r, Route)} == {"198.18.0.4/32"}


def test_link_share_limits_reservations(topo: Topology) -> None:
    qos = QosPolicy(per_app={"app3": QosProfile("bulk", 1e6), "app4": QosProfile("bulk", 1e6)})
    policy = ScaffoldPolicy(budget=ProvisionalBudget(link_fraction=0.5))
    result = Scaffolder(topo, qos, policy).plan(
        predicted([("e1", "e3"), ("e1", "e4")], [0.9, 0.8], bandwidth_bps=400e6), NetworkConfig(), 0.0
    )
    # both reservations leave h1 over the same link: only one fits in half of 1 Gbit/s
    assert result.admitted_pairs == 1
    assert result.skipped == {"link provisional share": 1}


def test_confirmed_items_are_kept_and_not_duplicated(topo: Topology) -> None:
    confirmed = Route("h1", "198.18.0.3/32", (NextHop("l1"),), Origin.CONFIRMED)
    current = NetworkConfig.of([confirmed])
    result = Scaffolder(topo).plan(predicted([("e1", "e3")], [0.9]), current, 0.0)
    assert result.desired.get(confirmed.key) == confirmed
    assert all(op.item.key != confirmed.key for op in result.plan.ops)


def test_latency_bound_without_fitting_path_is_skipped(topo: Topology) -> None:
    qos = QosPolicy(per_app={"app3": QosProfile("rt", max_latency_s=1e-5)})
    result = Scaffolder(topo, qos).plan(predicted([("e1", "e3")], [0.9]), NetworkConfig(), 0.0)
    assert result.admitted_pairs == 0
    assert result.skipped == {"no path within the latency bound": 1}
