"""The scaffolder's tick memo: which ticks it answers, and that it answers as planning from scratch would."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tests.helpers.topologies import two_tier

from netscaffold.errors import PlanError
from netscaffold.model import (
    FirewallRule,
    FlowMatch,
    NetworkConfig,
    Origin,
    PredictedGraph,
    ProvisionalBudget,
    QosPolicy,
    QosProfile,
    Route,
)
from netscaffold.model.config import ConfigItem, NextHop, with_origin
from netscaffold.scaffold import Scaffolder, ScaffoldPolicy, ScaffoldResult
from netscaffold.scaffold.incremental import DesiredSnapshot

TOPO = two_tier(hosts_per_leaf=3, firewalls=("s1", "s2"))
PAIRS = (("e1", "e4"), ("e2", "e5"), ("e3", "e6"), ("e4", "e1"), ("e5", "e3"))
QOS = QosPolicy(
    per_app={
        "app5": QosProfile("gold", min_bandwidth_bps=1e6),
        "app6": QosProfile("web", allowed_ports=(443,)),
    }
)


def graph(
    activity: list[float], bandwidth_bps: float = 1e6, pairs: tuple[tuple[str, str], ...] = PAIRS
) -> PredictedGraph:
    act = np.tile(np.asarray(activity), (3, 1))
    bw = np.broadcast_to(np.array([0.5, 1.0, 2.0]) * bandwidth_bps, (3, len(pairs), 3)).copy()
    return PredictedGraph(0.0, 1.0, pairs, (0.5, 0.9, 0.99), act, bw, np.full(len(pairs), np.nan))


def both(policy: ScaffoldPolicy | None = None) -> tuple[Scaffolder, Scaffolder]:
    memo = Scaffolder(TOPO, QOS, policy)
    return memo, Scaffolder(TOPO, QOS, policy, path_finder=memo.paths, incremental=False)


def assert_same(got: ScaffoldResult, want: ScaffoldResult) -> None:
    assert got.plan == want.plan
    assert got.desired.items == want.desired.items
    assert (got.admitted_pairs, got.candidate_pairs) == (want.admitted_pairs, want.candidate_pairs)
    assert dict(got.occupancy) == dict(want.occupancy)
    assert dict(got.skipped) == dict(want.skipped)


def test_steady_tick_is_answered_by_the_memo() -> None:
    memo, scratch = both()
    first = memo.plan(graph([0.9, 0.8, 0.7, 0.6, 0.9]), NetworkConfig(), 0.0)
    assert memo.incremental_ticks == 0  # nothing to start from
    current = first.plan.apply_to(NetworkConfig())
    tick = graph([0.9, 0.1, 0.7, 0.6, 0.95], bandwidth_bps=3e6)
    got = memo.plan(tick, current, 1.0)
    assert memo.incremental_ticks == 1
    assert_same(got, scratch.plan(tick, current, 1.0))
    assert got.plan.ops  # e2->e5 fell below the threshold: its items go
    assert got.skipped == {}
    again = memo.plan(tick, got.plan.apply_to(current), 1.0)
    assert again.plan.is_empty  # idempotent through the memo too
    assert memo.incremental_ticks == 2


def test_renewal_and_expiry_through_the_memo() -> None:
    memo, scratch = both()
    tick = graph([0.9, 0.8, 0.7, 0.6, 0.9])
    current = memo.plan(tick, NetworkConfig(), 0.0).plan.apply_to(NetworkConfig())
    for now in (1.0, 2.0, 3.5, 7.0, 20.0):
        current = current.without_expired(now)
        got = memo.plan(tick, current, now)
        assert_same(got, scratch.plan(tick, current, now))
        current = got.plan.apply_to(current)
    assert memo.incremental_ticks == 5


def test_confirmed_and_static_items_are_kept() -> None:
    memo, scratch = both()
    tick = graph([0.9, 0.8, 0.7, 0.6, 0.9])
    current = memo.plan(tick, NetworkConfig(), 0.0).plan.apply_to(NetworkConfig())
    route = next(i for i in current if isinstance(i, Route))
    permit = next(i for i in current if isinstance(i, FirewallRule))
    items = dict(current.items)
    items[route.key] = with_origin(route, Origin.CONFIRMED, None)
    items[permit.key] = with_origin(permit, Origin.CONFIRMED, None)
    current = NetworkConfig(items)
    got = memo.plan(tick, current, 1.0)
    assert memo.incremental_ticks == 1
    assert_same(got, scratch.plan(tick, current, 1.0))
    assert all(op.item.key not in (route.key, permit.key) for op in got.plan.ops)


def test_a_binding_budget_is_planned_from_scratch() -> None:
    memo, scratch = both(ScaffoldPolicy(budget=ProvisionalBudget(rule_slots_per_device=3)))
    tick = graph([0.9, 0.8, 0.7, 0.6, 0.9])
    first = memo.plan(tick, NetworkConfig(), 0.0)
    assert "device slot budget" in first.skipped
    current = first.plan.apply_to(NetworkConfig())
    got = memo.plan(tick, current, 1.0)
    assert memo.incremental_ticks == 0
    assert_same(got, scratch.plan(tick, current, 1.0))


def test_a_changed_pair_list_is_followed_and_a_new_horizon_planned_from_scratch() -> None:
    memo, scratch = both()
    current = memo.plan(graph([0.9] * 5), NetworkConfig(), 0.0).plan.apply_to(NetworkConfig())
    # the forecaster dropped a pair and reordered the rest
    fewer = graph([0.9] * 4, pairs=(PAIRS[3], PAIRS[0], PAIRS[2], PAIRS[1]))
    got = memo.plan(fewer, current, 1.0)
    assert memo.incremental_ticks == 1
    assert_same(got, scratch.plan(fewer, current, 1.0))
    assert {op.kind.value for op in got.plan.ops} == {"remove"}  # e5->e3's items
    longer = PredictedGraph(
        0.0, 1.0, PAIRS, (0.5, 0.9, 0.99), np.full((6, 5), 0.9), np.ones((6, 5, 3)), np.full(5, np.nan)
    )
    assert_same(memo.plan(longer, current, 1.0), scratch.plan(longer, current, 1.0))
    assert memo.incremental_ticks == 1


def test_a_refused_plan_drops_the_memo() -> None:
    memo, scratch = both()
    tick = graph([0.9, 0.8, 0.7, 0.6, 0.9])
    current = memo.plan(tick, NetworkConfig(), 0.0).plan.apply_to(NetworkConfig())
    # an operator's static drop of everything to e6 forbids the provisional permit for e3->e6
    drop = FirewallRule("s1", FlowMatch(dst="198.18.0.6/32"), "drop", Origin.STATIC)
    blocked = NetworkConfig({**current.items, drop.key: drop})
    renewing = graph([0.9, 0.8, 0.7, 0.6, 0.9])
    with pytest.raises(PlanError, match="conflicts with static rule") as raised:
        memo.plan(renewing, blocked, 3.5)
    with pytest.raises(PlanError) as reference:
        scratch.plan(renewing, blocked, 3.5)
    assert str(raised.value) == str(reference.value)
    assert_same(memo.plan(tick, current, 1.0), scratch.plan(tick, current, 1.0))
    assert memo.incremental_ticks == 0  # planned from scratch after the error
    assert_same(memo.plan(tick, current, 1.0), scratch.plan(tick, current, 1.0))
    assert memo.incremental_ticks == 1


def test_configs_handed_out_stay_as_they_were_and_can_be_planned_against() -> None:
    memo, scratch = both()
    ticks = [
        graph([0.9, 0.8, 0.7, 0.6, 0.9]),
        graph([0.9, 0.1, 0.7, 0.6, 0.95], bandwidth_bps=3e6),
        graph([0.2, 0.9, 0.7, 0.6, 0.95]),
        graph([0.9, 0.9, 0.1, 0.6, 0.95]),
        graph([0.9, 0.9, 0.8, 0.1, 0.95], bandwidth_bps=2e6),
        graph([0.1, 0.9, 0.8, 0.9, 0.95]),
        graph([0.9, 0.1, 0.8, 0.9, 0.1]),
    ]
    results, wanted = [], []
    current = NetworkConfig()
    for now, tick in enumerate(ticks):
        got = memo.plan(tick, current, float(now))
        want = scratch.plan(tick, current, float(now))
        assert_same(got, want)
        results.append(got)
        wanted.append(dict(want.desired.items))
        current = got.desired  # as if applied: the memo's own view comes back as the current config
    assert memo.incremental_ticks == 6
    assert memo._memo is not None
    assert len(memo._memo.handed_out) <= 4
    snapshots = [held for result in results[1:] if isinstance(held := result.desired.items, DesiredSnapshot)]
    assert len(snapshots) == 6
    assert snapshots[0].detached  # the oldest hold a copy of their own
    assert sum(not held.detached for held in snapshots) <= 4
    for result, expected in zip(results, wanted, strict=True):
        assert dict(result.desired.items) == expected
        assert len(result.desired) == len(expected)
        assert set(result.desired.items) == set(expected)
        assert all(key in result.desired for key in expected)
        assert sorted(result.desired.items.values(), key=lambda item: item.key) == sorted(
            expected.values(), key=lambda item: item.key
        )
    gone = next(key for key in wanted[0] if key not in wanted[-1])
    assert gone in results[0].desired
    assert gone not in results[-1].desired
    assert results[-1].desired.get(gone) is None


def test_desired_snapshot_reads_what_was_there_before_the_memo_edits() -> None:
    a = Route("l1", "198.18.0.1/32", (NextHop("s1"),), Origin.PREDICTED, 9.0)
    b = Route("l1", "198.18.0.2/32", (NextHop("s1"),), Origin.PREDICTED, 9.0)
    c = Route("l2", "198.18.0.3/32", (NextHop("s2"),), Origin.PREDICTED, 9.0)
    live: dict[tuple[str, ...], ConfigItem] = {a.key: a, b.key: b}
    snapshot = DesiredSnapshot(live)
    assert snapshot == {a.key: a, b.key: b}
    assert not snapshot.detached  # nothing changed: reads go to the live dict
    # the memo removes a, replaces b and adds c, telling the snapshot first
    b2 = replace(b, expires_at=12.0)
    for key, new in ((a.key, None), (b.key, b2), (c.key, c)):
        snapshot.keep(key, live.get(key))
        if new is None:
            del live[key]
        else:
            live[key] = new
    snapshot.keep(b.key, b2)  # a second change to a key: the first value recorded stands
    assert snapshot[a.key] is a
    assert snapshot[b.key] is b
    assert c.key not in snapshot
    assert a.key in snapshot
    assert snapshot.get(c.key) is None
    with pytest.raises(KeyError):
        snapshot[c.key]
    assert len(snapshot) == 2
    assert set(snapshot) == {a.key, b.key}
    assert snapshot.detached  # the whole-config read made a copy: later edits no longer reach it
    live.clear()
    assert snapshot == {a.key: a, b.key: b}
    assert snapshot != {a.key: a}
    other = DesiredSnapshot({c.key: c})
    other.detach()
    assert other.detached
    assert other == DesiredSnapshot({c.key: c})
    assert other != snapshot
