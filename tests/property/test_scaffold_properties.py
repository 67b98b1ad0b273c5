"""Scaffolder invariants over random forecasts, QoS and budgets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers.topologies import two_tier

from netscaffold.errors import PlanError
from netscaffold.model import (
    FirewallRule,
    FlowMatch,
    NetworkConfig,
    NextHop,
    Origin,
    PredictedGraph,
    ProvisionalBudget,
    QosPolicy,
    QosProfile,
    Reservation,
    Route,
    VirtualCircuit,
)
from netscaffold.model.config import with_origin
from netscaffold.scaffold import Scaffolder, ScaffoldPolicy, ScaffoldResult

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


# -- the tick memo plans what planning from scratch plans --------------------------------------------------

FW_TOPO = two_tier(link_bps=100e6, hosts_per_leaf=3, firewalls=("s1", "s2"))
PROFILES = [
    QosProfile("be"),
    QosProfile("gold", min_bandwidth_bps=20e6),
    QosProfile("rt", min_bandwidth_bps=1e6, max_latency_s=0.01, allowed_ports=(80, 443)),
    QosProfile("web", allowed_ports=(443,)),
]


def _graph(pairs: tuple[tuple[str, str], ...], activity: np.ndarray, base: np.ndarray) -> PredictedGraph:
    bandwidth = np.stack([base, base * 1.5, base * 2], axis=2)
    return PredictedGraph(0.0, 1.0, pairs, (0.5, 0.9, 0.99), activity, bandwidth, np.full(len(pairs), np.nan))


def _outcome(scaffolder: Scaffolder, *args: object) -> ScaffoldResult | str:
    try:
        return scaffolder.plan(*args)  # type: ignore[arg-type]
    except PlanError as exc:
        return f"PlanError: {exc}"


def _world_moves(
    current: NetworkConfig, rng: np.random.Generator, now: float, moves: list[str]
) -> NetworkConfig:
    """What happens to the config between two ticks: expiries, the refiner confirming, resizing or dropping
    an item, an operator's static rule."""
    items = dict(current.without_expired(now).items)
    for move in moves:
        provisional = sorted(k for k, v in items.items() if v.origin is Origin.PREDICTED)
        if move == "confirm" and provisional:
            key = provisional[int(rng.integers(len(provisional)))]
            items[key] = with_origin(items[key], Origin.CONFIRMED, None)
        elif move == "drop" and provisional:
            items.pop(provisional[int(rng.integers(len(provisional)))], None)
        elif move == "resize":
            for key in provisional:
                item = items.get(key)
                if isinstance(item, Reservation) and item.origin is Origin.PREDICTED:
                    items[key] = replace(item, rate_bps=item.rate_bps * float(rng.uniform(0.5, 1.5)))
                    break
        elif move == "static-route":
            host = ENDPOINTS[int(rng.integers(len(ENDPOINTS)))]
            address = FW_TOPO.endpoints[host].address
            route = Route("l1", f"{address}/32", (NextHop("s2"),), Origin.STATIC)
            items[route.key] = route
        elif move == "static-drop":
            address = FW_TOPO.endpoints[ENDPOINTS[int(rng.integers(len(ENDPOINTS)))]].address
            rule = FirewallRule("s1", FlowMatch(dst=f"{address}/32"), "drop", Origin.STATIC)
            items[rule.key] = rule
    return NetworkConfig(items)


@st.composite
def tick_sequences(draw: st.DrawFn) -> dict[str, object]:
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(ENDPOINTS), st.sampled_from(ENDPOINTS)).filter(lambda p: p[0] != p[1]),
            min_size=1,
            max_size=14,
            unique=True,
        )
    )
    per_app = {f"app{i}": draw(st.sampled_from(PROFILES)) for i in range(1, 7)}
    budget = ProvisionalBudget(
        rule_slots_per_device=draw(st.sampled_from([0, 3, 8, 1000])),
        link_fraction=draw(st.sampled_from([0.0, 0.3, 1.0])),
    )
    ticks = [
        {
            "dt": draw(st.sampled_from([0.0, 1.0, 1.0, 2.5, 4.0])),
            "change": draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
            "apply": draw(st.booleans() | st.just(True)),
            "moves": draw(
                st.lists(
                    st.sampled_from(["confirm", "drop", "resize", "static-route", "static-drop"]),
                    max_size=2,
                )
            ),
            "suppress": draw(st.lists(st.sampled_from(pairs), max_size=2)),
            "subset": draw(st.sampled_from(["same", "same", "some", "shuffled"])),
        }
        for _ in range(draw(st.integers(2, 6)))
    ]
    return {
        "pairs": tuple(pairs),
        "qos": QosPolicy(per_app=per_app),
        "policy": ScaffoldPolicy(budget=budget, max_paths=draw(st.integers(1, 2))),
        "horizon": draw(st.integers(1, 4)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "ticks": ticks,
    }


@settings(max_examples=120, deadline=None)
@given(tick_sequences())
def test_tick_memo_plans_as_planning_from_scratch(case: dict[str, object]) -> None:
    pairs = case["pairs"]
    assert isinstance(pairs, tuple)
    qos, policy, horizon = case["qos"], case["policy"], case["horizon"]
    assert isinstance(qos, QosPolicy)
    assert isinstance(policy, ScaffoldPolicy)
    assert isinstance(horizon, int)
    rng = np.random.default_rng(case["seed"])  # type: ignore[arg-type]
    memo = Scaffolder(FW_TOPO, qos, policy)
    scratch = Scaffolder(FW_TOPO, qos, policy, path_finder=memo.paths, incremental=False)
    activity = rng.random((horizon, len(pairs))) ** 2
    base = rng.random((horizon, len(pairs))) * 30e6
    current, now = NetworkConfig(), 0.0
    chosen = np.arange(len(pairs))
    held: list[tuple[NetworkConfig, NetworkConfig]] = []  # every tick's desired config, kept to the end
    for tick in case["ticks"]:  # type: ignore[attr-defined]
        changed = rng.random(len(pairs)) < tick["change"]
        activity[:, changed] = rng.random((horizon, int(changed.sum()))) ** 2
        base[:, changed] = rng.random((horizon, int(changed.sum()))) * 30e6
        now += tick["dt"]
        # the forecaster's pair list changes as pairs cross its activity floor
        if tick["subset"] == "some":
            chosen = np.flatnonzero(rng.random(len(pairs)) < 0.7)
            chosen = chosen if chosen.size else np.arange(len(pairs))
        elif tick["subset"] == "shuffled":
            chosen = rng.permutation(len(pairs))
        graph = _graph(tuple(pairs[i] for i in chosen), activity[:, chosen], base[:, chosen])
        suppressed = {pair: now + 5.0 for pair in tick["suppress"]}
        got = _outcome(memo, graph, current, now, suppressed)
        want = _outcome(scratch, graph, current, now, suppressed)
        if isinstance(want, str) or isinstance(got, str):
            assert got == want
            continue
        assert got.plan == want.plan
        assert got.desired.items == want.desired.items
        assert (got.admitted_pairs, got.candidate_pairs) == (want.admitted_pairs, want.candidate_pairs)
        assert dict(got.occupancy) == dict(want.occupancy)
        assert dict(got.skipped) == dict(want.skipped)
        held.append((got.desired, want.desired))
        if tick["apply"]:
            current = want.plan.apply_to(current)
        current = _world_moves(current, rng, now, tick["moves"])
    for got_desired, want_desired in held:  # later ticks left the configs handed out earlier as they were
        assert got_desired.items == want_desired.items
        assert len(got_desired) == len(want_desired)
        assert all(got_desired.get(key) == item for key, item in want_desired.items.items())
