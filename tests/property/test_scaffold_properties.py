"""Scaffolder invariants over random forecasts, QoS and budgets."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers.topologies import two_tier

from netscaffold.model import (
    NetworkConfig,
    PredictedGraph,
    ProvisionalBudget,
    QosPolicy,
    QosProfile,
    Reservation,
    Route,
    VirtualCircuit,
)
from netscaffold.scaffold import Scaffolder, ScaffoldPolicy

TOPO = two_tier(link_bps=100e6, hosts_per_leaf=3)
ENDPOINTS = sorted(TOPO.endpoints)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Scaffolder, PredictedGraph, float]:
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(ENDPOINTS), st.sampled_from(ENDPOINTS)).filter(lambda p: p[0] != p[1]),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    horizon = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    activity = rng.random((horizon, len(pairs)))
    base = rng.random((horizon, len(pairs), 1)) * 80e6
    bandwidth = np.concatenate([base, base * 1.5, base * 2], axis=2)
    graph = PredictedGraph(
        0.0, 1.0, tuple(pairs), (0.5, 0.9, 0.99), activity, bandwidth, np.full(len(pairs), np.nan)
    )
    per_app = {
        f"app{i}": draw(
            st.sampled_from(
                [
                    QosProfile("be"),
                    QosProfile("gold", min_bandwidth_bps=20e6),
                    QosProfile("rt", min_bandwidth_bps=1e6, max_latency_s=0.01, allowed_ports=(80, 443)),
                ]
            )
        )
        for i in range(1, 7)
    }
    budget = ProvisionalBudget(
        rule_slots_per_device=draw(st.integers(0, 12)), link_fraction=draw(st.floats(0.0, 1.0))
    )
    policy = ScaffoldPolicy(budget=budget)
    now = draw(st.floats(0, 1000))
    return Scaffolder(TOPO, QosPolicy(per_app=per_app), policy), graph, now


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_plans_respect_budget_capacity_and_expire(case: tuple[Scaffolder, PredictedGraph, float]) -> None:
    scaffolder, graph, now = case
    result = scaffolder.plan(graph, NetworkConfig(), now)
    budget = scaffolder.policy.budget
    # Plan.validate ran inside plan(); check the invariants directly as well
    load: dict[tuple[str, str], float] = {}
    for item in result.desired:
        assert item.expires_at is not None
        assert item.expires_at > now
        if isinstance(item, Route):
            assert abs(sum(h.weight for h in item.next_hops) - 1.0) < 1e-9
        if isinstance(item, Reservation | VirtualCircuit):
            for link in item.link_keys():
                load[link] = load.get(link, 0.0) + item.rate_bps
    for link, rate in load.items():
        assert rate <= budget.link_fraction * TOPO.links[link].capacity_bps * (1 + 1e-9)
    for used in result.occupancy.values():
        assert used <= budget.rule_slots_per_device
    current = result.plan.apply_to(NetworkConfig())
    assert scaffolder.plan(graph, current, now).plan.is_empty
    # everything provisional is gone once its expiry passes
    latest = max((i.expires_at or 0.0) for i in current) if len(current) else now
    assert len(current.without_expired(latest)) == 0
