"""Per-host agents, the capacity ledger and two-phase commit: a plan commits on every agent or on none, two
shards never over-commit a link, and an agent killed mid-plan comes back from its checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers.topologies import two_tier

from netscaffold.distributed.agents import HostAgent, PlanCoordinator, partition, split_plan
from netscaffold.distributed.ledger import CapacityLedger, Changes, plan_changes
from netscaffold.errors import ConfigError, PlanError
from netscaffold.model.config import NetworkConfig, NextHop, Origin, Reservation, Route
from netscaffold.model.plan import Plan
from netscaffold.model.topology import Topology

AGENTS = ("east", "west")
PATH_13 = ("h1", "l1", "s1", "l2", "h3")
PATH_24 = ("h2", "l1", "s1", "l2", "h4")


def scaffold(flow: str, path: tuple[str, ...], rate_bps: float, address: str) -> NetworkConfig:
    """A reservation along ``path`` plus a route towards ``address`` on every node of it but the last."""
    life = {"origin": Origin.PREDICTED, "expires_at": 100.0}
    routes = [Route(a, f"{address}/32", (NextHop(b),), **life) for a, b in itertools.pairwise(path)]
    return NetworkConfig.of([Reservation(flow, path, rate_bps, **life), *routes])


def plan_for(*configs: NetworkConfig, base: NetworkConfig | None = None) -> Plan:
    desired = NetworkConfig.of([item for c in configs for item in c])
    return Plan.between(base or NetworkConfig(), desired)


@pytest.fixture
def topology() -> Topology:
    return two_tier(link_bps=1e9)


# -- partition and ledger (no Ray) ----------------------------------------------------------------
def test_partition_gives_hosts_their_own_agent_and_every_node_one_owner(topology: Topology) -> None:
    owner = partition(topology)
    assert set(owner) == set(topology.nodes)
    assert all(owner[h] == h for h in topology.hosts())
    pinned = partition(topology, AGENTS, placement={"s1": "west", "l1": "east"})
    assert pinned["s1"] == "west"
    assert pinned["l1"] == "east"
    assert set(pinned.values()) <= set(AGENTS)
    with pytest.raises(ConfigError, match="unknown agent 'north'"):
        partition(topology, AGENTS, placement={"s1": "north"})
    with pytest.raises(ConfigError, match="unknown node 'zz'"):
        partition(topology, AGENTS, placement={"zz": "east"})


def test_split_plan_gives_each_item_to_the_agent_of_its_device(topology: Topology) -> None:
    owner = partition(topology, AGENTS)
    plan = plan_for(scaffold("e1->e3", PATH_13, 1e8, "198.18.0.3"))
    parts = split_plan(plan, owner)
    assert sum(len(p) for p in parts.values()) == len(plan)
    for agent, part in parts.items():
        for op in part.ops:
            device = op.item.path[0] if isinstance(op.item, Reservation) else op.item.device
            assert owner[device] == agent


def test_ledger_grants_within_capacity_and_names_the_link_it_refuses(topology: Topology) -> None:
    ledger = CapacityLedger.for_topology(topology)
    first = plan_changes(plan_for(scaffold("e1->e3", PATH_13, 6e8, "198.18.0.3")))
    second = plan_changes(plan_for(scaffold("e2->e4", PATH_24, 6e8, "198.18.0.4")))
    ledger.prepare("a", first)
    with pytest.raises(PlanError, match=r"link l1->s1 would carry 1\.2e\+09 bit/s") as refused:
        ledger.prepare("b", second)  # a pending grant counts: two shards cannot both take the link
    assert refused.value.location.element == "link l1->s1"
    ledger.abort("a")
    ledger.prepare("b", second)
    ledger.commit("b", second)
    assert ledger.committed_usage()[("l1", "s1")] == pytest.approx(6e8)
    with pytest.raises(PlanError, match="link l1->s1"):
        ledger.prepare("c", first)


def test_ledger_holds_the_larger_rate_while_a_resize_is_pending_and_locks_the_item(
    topology: Topology,
) -> None:
    ledger = CapacityLedger.for_topology(topology, capacity_fraction=0.5)
    small = scaffold("e1->e3", PATH_13, 2e8, "198.18.0.3")
    ledger.commit("t0", plan_changes(plan_for(small)))
    big = scaffold("e1->e3", PATH_13, 4e8, "198.18.0.3")
    ledger.prepare("t1", plan_changes(plan_for(big, base=small)))
    assert ledger.usage()[("l1", "s1")] == pytest.approx(4e8)
    with pytest.raises(PlanError, match="being changed by transaction 't1'"):
        ledger.prepare("t2", plan_changes(Plan.between(small, NetworkConfig())))
    with pytest.raises(PlanError, match=r"above 0\.5 x capacity"):
        ledger.prepare("t3", plan_changes(plan_for(scaffold("e2->e4", PATH_24, 2e8, "198.18.0.4"))))


def test_ledger_restarts_from_its_checkpoint(topology: Topology, tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = CapacityLedger.for_topology(topology, checkpoint=path)
    changes = plan_changes(plan_for(scaffold("e1->e3", PATH_13, 6e8, "198.18.0.3")))
    ledger.prepare("a", changes)
    ledger.commit("a", changes)
    again = CapacityLedger.for_topology(topology, checkpoint=path)
    assert again.committed == ledger.committed
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(Exception, match="unreadable ledger checkpoint"):
        CapacityLedger.for_topology(topology, checkpoint=path)


def test_an_agent_refuses_items_of_another_agent_and_recovers_its_checkpoint(
    topology: Topology, tmp_path: Path
) -> None:
    owner = partition(topology, AGENTS)
    mine = frozenset(n for n, a in owner.items() if a == "east")
    agent = HostAgent("east", topology, mine, tmp_path / "east.json")
    plan = plan_for(scaffold("e1->e3", PATH_13, 1e8, "198.18.0.3"))
    parts = split_plan(plan, owner)
    with pytest.raises(PlanError, match="does not belong to agent 'east'"):
        agent.prepare("t", parts["west"])
    agent.prepare("t", parts["east"])
    assert agent.commit("t", parts["east"]) == len(parts["east"])
    reborn = HostAgent("east", topology, mine, tmp_path / "east.json")
    assert not agent.restored
    assert reborn.restored
    assert reborn.snapshot() == agent.snapshot()


# -- two-phase commit on Ray ------------------------------------------------------------------------
@pytest.mark.ray
def test_two_phase_commit_all_or_nothing_and_restart_mid_plan(
    ray_local: object, topology: Topology, tmp_path: Path
) -> None:
    import ray

    with PlanCoordinator(topology, tmp_path, agents=AGENTS) as coordinator:
        first = scaffold("e1->e3", PATH_13, 6e8, "198.18.0.3")
        report = coordinator.execute(plan_for(first))
        assert set(report.applied_ops) == set(AGENTS)  # the plan spans both agents
        assert coordinator.snapshot() == first

        # Shard B asks for the same link: the ledger refuses, no agent applies anything.
        clash = scaffold("e2->e4", PATH_24, 6e8, "198.18.0.4")
        with pytest.raises(PlanError, match="link l1->s1") as refused:
            coordinator.execute(plan_for(clash))
        assert refused.value.location.element == "link l1->s1"
        assert coordinator.snapshot() == first

        # An agent refuses its part after the ledger granted: every agent and the ledger abort.
        bad_hop = Route("h2", "198.18.0.9/32", (NextHop("s2"),), Origin.PREDICTED, 100.0)
        fits = scaffold("e2->e4", PATH_24, 3e8, "198.18.0.4")
        with pytest.raises(PlanError, match="not a neighbour"):
            coordinator.execute(plan_for(fits, NetworkConfig.of([bad_hop])))
        assert coordinator.snapshot() == first
        assert coordinator.link_usage()[("l1", "s1")] == pytest.approx(6e8)

        # An agent dies between prepare and commit: it restarts from its checkpoint and the plan completes.
        victim = coordinator.owner["l1"]

        def kill(_txn: str) -> None:
            ray.kill(coordinator.agents[victim], no_restart=False)

        coordinator.execute(plan_for(fits), on_prepared=kill)
        expected = NetworkConfig.of([*first, *fits])
        assert coordinator.snapshot() == expected
        assert ray.get(coordinator.agents[victim].was_restarted.remote())
        survivor = next(a for a in AGENTS if a != victim)
        assert not ray.get(coordinator.agents[survivor].was_restarted.remote())
        assert coordinator.link_usage()[("l1", "s1")] == pytest.approx(9e8)


LINKS = [("a", "b"), ("b", "c"), ("c", "d")]
holdings = st.lists(st.tuples(st.sampled_from(LINKS), st.floats(1.0, 60.0)), min_size=1, max_size=3)
steps = st.lists(
    st.tuples(
        st.sampled_from(["prepare", "commit", "abort"]),
        st.integers(0, 3),  # transaction
        st.dictionaries(st.integers(0, 5), st.one_of(st.none(), holdings), max_size=3),
    ),
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(script=steps)
def test_ledger_never_over_commits_a_link_whatever_the_interleaving(
    script: list[tuple[str, int, dict[int, list[tuple[tuple[str, str], float]] | None]]],
) -> None:
    ledger = CapacityLedger(dict.fromkeys(LINKS, 100.0))
    prepared: dict[str, Changes] = {}
    for action, number, raw in script:
        txn = f"t{number}"
        changes: Changes = {
            ("reservation", f"f{k}"): None if h is None else tuple(dict(h).items()) for k, h in raw.items()
        }
        if action == "prepare" and txn not in prepared:
            try:
                ledger.prepare(txn, changes)
                prepared[txn] = changes
            except PlanError:
                pass
        elif action == "commit" and txn in prepared:
            ledger.commit(txn, prepared.pop(txn))
        elif action == "abort":
            ledger.abort(txn)
            prepared.pop(txn, None)
        assert all(rate <= 100.0 * (1 + 1e-9) for rate in ledger.usage().values())
        exact: dict[tuple[str, str], float] = {}
        for holding in ledger.committed.values():
            for link, rate in holding:
                exact[link] = exact.get(link, 0.0) + rate
        got = ledger.committed_usage()
        assert set(got) <= set(exact)
        for link, rate in exact.items():
            assert got.get(link, 0.0) == pytest.approx(rate)
