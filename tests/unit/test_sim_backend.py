"""The sim backend: reactive setup, scaffolded hits, reservations, conservation, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from netscaffold.backends.protocol import ManualClock
from netscaffold.backends.sim import PROFILES, SimBackend, emulate
from netscaffold.errors import PlanError, TrafficError
from netscaffold.model import (
    Endpoint,
    FirewallRule,
    FlowMatch,
    Link,
    NetworkConfig,
    NextHop,
    Node,
    NodeKind,
    Origin,
    Plan,
    QosPolicy,
    QosProfile,
    Reservation,
    Route,
    Topology,
)
from netscaffold.model.events import FlowRequest
from netscaffold.model.flows import FlowTable

MBPS = 1e6


def small_topology() -> Topology:
    """h1, h2 -- s1 -- fw -- h3 (8 Mbit/s links both ways); one endpoint per host."""
    nodes = [
        Node("h1", NodeKind.HOST),
        Node("h2", NodeKind.HOST),
        Node("h3", NodeKind.HOST),
        Node("s1", NodeKind.SWITCH),
        Node("fw", NodeKind.FIREWALL),
    ]
    links = []
    for a, b in (("h1", "s1"), ("h2", "s1"), ("s1", "fw"), ("fw", "h3")):
        links += [Link(a, b, 8 * MBPS), Link(b, a, 8 * MBPS)]
    endpoints = [Endpoint(f"e{i}", f"h{i}", f"198.18.0.{i}", app=f"app{i}") for i in (1, 2, 3)]
    return Topology.build(nodes, links, endpoints, name="small")


def flows(start: list[float], src: list[int], dst: list[int], size: list[float], **kw: object) -> FlowTable:
    return FlowTable.build(
        start_s=start,
        src=src,
        dst=dst,
        size_bytes=size,
        endpoints=("e1", "e2", "e3"),
        **kw,  # type: ignore[arg-type]
    )


def scaffold_config(expires_at: float | None = None, reserve_bps: float = 0.0) -> NetworkConfig:
    """Routes for e3 along h1 -> s1 -> fw -> h3 and a permit on fw for e1 -> e3 (optionally a reservation)."""
    origin = Origin.PREDICTED if expires_at is not None else Origin.STATIC
    dst = "198.18.0.3/32"
    items: list[object] = [
        Route(dev, dst, (NextHop(via),), origin=origin, expires_at=expires_at)
        for dev, via in (("h1", "s1"), ("s1", "fw"), ("fw", "h3"))
    ]
    items.append(
        FirewallRule("fw", FlowMatch(src="198.18.0.1/32", dst=dst), origin=origin, expires_at=expires_at)
    )
    if reserve_bps:
        items.append(
            Reservation("e1->e3", ("h1", "s1", "fw", "h3"), reserve_bps, origin=origin, expires_at=expires_at)
        )
    return NetworkConfig.of(items)  # type: ignore[arg-type]


def test_reactive_cost_charged_once_per_idle_pair() -> None:
    profile = PROFILES["sdn-lan"]
    cost = profile.setup_delay_s(hops=3, firewalls=1, needs_admission=False)
    # e1->e3 at 0 (pays), 0.001 (waits for the same install), 1 and 2 (entries live), 30 (idle 10 s: pays)
    table = flows([0.0, 0.001, 1.0, 2.0, 30.0], [0] * 5, [2] * 5, [1000.0] * 5)
    result = emulate(small_topology(), table, profile="sdn-lan")
    assert result.reactive.tolist() == [True, False, False, False, True]
    np.testing.assert_allclose(result.setup_delay_s, [cost, cost - 0.001, 0.0, 0.0, cost])
    assert not result.hit.any()
    assert result.finished.all()


def test_idle_timeout_is_configurable() -> None:
    table = flows([0.0, 5.0], [0, 0], [2, 2], [1000.0, 1000.0])
    topo = small_topology()
    assert emulate(topo, table, idle_timeout_s=10.0).reactive.tolist() == [True, False]
    assert emulate(topo, table, idle_timeout_s=1.0).reactive.tolist() == [True, True]


def test_scaffolded_path_is_a_hit_until_it_expires() -> None:
    clock = ManualClock()
    table = flows([1.0, 2.0, 6.0], [0, 0, 0], [2, 2, 2], [1000.0] * 3)
    backend = SimBackend(small_topology(), table, clock=clock, idle_timeout_s=0.5)
    report = backend.apply(Plan.between(NetworkConfig(), scaffold_config(expires_at=5.0)))
    assert report.applied_ops == 4
    backend.advance(10.0)
    result = backend.result()
    assert result.hit.tolist() == [True, True, False]
    assert result.setup_delay_s[:2].tolist() == [0.0, 0.0]
    assert result.reactive.tolist() == [False, False, True]
    assert len(backend.snapshot()) == 0  # expired on the way
    requests = backend.drain_routing_info()
    assert all(isinstance(r, FlowRequest) for r in requests)
    assert [r.scaffolded for r in requests if isinstance(r, FlowRequest)] == [True, True, False]
    assert backend.drain_routing_info() == []


def test_missing_firewall_permit_is_not_a_hit() -> None:
    config = NetworkConfig.of([i for i in scaffold_config() if not isinstance(i, FirewallRule)])
    table = flows([1.0], [0], [2], [1000.0])
    backend = SimBackend(small_topology(), table, initial=config)
    backend.advance(5.0)
    assert not backend.result().hit[0]


def test_reservation_is_a_guaranteed_floor_and_unused_part_is_reported() -> None:
    qos = QosPolicy(per_pair={("app1", "app3"): QosProfile("gold", min_bandwidth_bps=6 * MBPS)})
    # e1->e3 (reserved 6 Mbit/s) and e2->e3 share s1->fw and fw->h3 (8 Mbit/s)
    table = flows([0.0, 0.0], [0, 1], [2, 2], [1e9, 1e9])
    backend = SimBackend(small_topology(), table, qos=qos, initial=scaffold_config(reserve_bps=6 * MBPS))
    backend.advance(0.5)
    rates = backend.rate_bps()
    assert rates[0] == pytest.approx(6 * MBPS)
    assert rates[1] == pytest.approx(2 * MBPS)
    assert backend.result().hit[0]


def test_unused_reservation_is_lent_and_reported_unused() -> None:
    table = flows([0.0], [1], [2], [1e9])
    backend = SimBackend(small_topology(), table, initial=scaffold_config(reserve_bps=6 * MBPS))
    backend.advance(2.0)
    assert backend.rate_bps()[0] == pytest.approx(8 * MBPS)  # nobody uses the reservation: all lent
    sample = backend.performance()
    fw_h3 = sample.link_keys.index(("fw", "h3"))
    assert sample.reserved_bps[fw_h3] == pytest.approx(6 * MBPS)
    assert sample.reserved_used_bps[fw_h3] == pytest.approx(0.0)
    assert sample.load_bps[fw_h3] == pytest.approx(8 * MBPS)


def _rpc_run(bits_per_tick: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """e1->e3 reserved at 6 Mbit/s, sending 100 short RPCs per second (each 7.5 ms at 8 Mbit/s at most)
    that carry ``bits_per_tick`` in all per 1 s tick. Returns the fw->h3 reserved and unused columns and
    the reserved_used_bps of the last tick's sample."""
    qos = QosPolicy(per_pair={("app1", "app3"): QosProfile("gold", min_bandwidth_bps=6 * MBPS)})
    n = 300
    starts = [0.001 + 0.01 * i for i in range(n)]  # each one ends inside its tick
    table = flows(starts, [0] * n, [2] * n, [bits_per_tick / 100 / 8] * n)
    backend = SimBackend(small_topology(), table, qos=qos, initial=scaffold_config(reserve_bps=6 * MBPS))
    backend.advance(3.0)
    result = backend.result()
    assert result.hit.all()
    fw_h3 = result.link_keys.index(("fw", "h3"))
    sample = backend.performance()
    return result.reserved_bps[:, fw_h3], result.reserved_unused_bps[:, fw_h3], sample.reserved_used_bps


def test_short_flows_carrying_the_reserved_volume_use_the_reservation() -> None:
    reserved, unused, used_last = _rpc_run(6 * MBPS)
    assert reserved == pytest.approx([6 * MBPS] * 3)
    assert unused == pytest.approx([0.0] * 3, abs=1e-6 * MBPS)  # each RPC sends for 7.5 ms only
    assert used_last.max() == pytest.approx(6 * MBPS)


def test_short_flows_carrying_half_the_reserved_volume_leave_half_unused() -> None:
    reserved, unused, used_last = _rpc_run(3 * MBPS)
    assert unused == pytest.approx([3 * MBPS] * 3)
    assert used_last.max() == pytest.approx(3 * MBPS)
    assert reserved - unused == pytest.approx([3 * MBPS] * 3)


def random_flows(n: int, seed: int) -> FlowTable:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 3, n)
    dst = (src + rng.integers(1, 3, n)) % 3
    return flows(
        list(np.sort(rng.uniform(0, 20, n))), list(src), list(dst), list(rng.pareto(1.5, n) * 2e5 + 1e4)
    )


def test_bytes_are_conserved_per_tick_and_per_link() -> None:
    table = random_flows(300, 1)
    result = emulate(small_topology(), table, tick_s=0.5)
    assert result.finished.all()
    assert result.sent_bytes.sum() == pytest.approx(table.size_bytes.sum(), rel=1e-9)
    hops = np.array([len(result.paths[p]) - 1 for p in result.path])
    carried_bits = result.load_bps.sum() * result.tick_s
    assert carried_bits == pytest.approx((table.size_bytes * 8 * hops).sum(), rel=1e-6)
    assert np.all(result.load_bps <= result.capacity_bps * (1 + 1e-9))


def test_same_seed_same_figures() -> None:
    table = random_flows(200, 2)
    first = emulate(small_topology(), table, seed=7)
    second = emulate(small_topology(), table, seed=7)
    for name in ("setup_delay_s", "completion_s", "hit", "reactive", "path", "load_bps", "sent_bytes"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.summary() == second.summary()


def test_incremental_components_agree_with_full_recomputation() -> None:
    table = random_flows(300, 3)
    topo = small_topology()
    results = [_run(SimBackend(topo, table, hybrid_fraction=fraction)) for fraction in (0.0, 1.0)]
    np.testing.assert_allclose(results[0], results[1], rtol=1e-9)


def _run(backend: SimBackend) -> np.ndarray:
    backend.advance(1000.0)
    return backend.result().completion_s


def test_unknown_endpoint_is_named() -> None:
    table = FlowTable.build(start_s=[0.0], src=[0], dst=[1], size_bytes=[1.0], endpoints=("e1", "ghost"))
    with pytest.raises(TrafficError, match="ghost") as err:
        SimBackend(small_topology(), table)
    assert err.value.location.element == "flow 0"
    assert err.value.location.field == "dst"


@pytest.mark.parametrize(("column", "value"), [("size_bytes", -5.0), ("rate_bps", -1.0)])
def test_negative_size_or_rate_is_refused(column: str, value: float) -> None:
    kw = {"size_bytes": [1.0, 1.0], "rate_bps": [np.inf, np.inf]}
    kw[column] = [1.0, value]
    with pytest.raises(TrafficError) as err:
        FlowTable.build(start_s=[0.0, 1.0], src=[0, 0], dst=[1, 1], endpoints=("e1", "e2"), **kw)  # type: ignore[arg-type]
    assert err.value.location.element == "flow 1"
    assert err.value.location.field == column


def test_plan_through_missing_link_is_refused_and_state_unchanged() -> None:
    backend = SimBackend(small_topology(), random_flows(10, 4))
    bad = Reservation("e1->e3", ("h1", "fw", "h3"), MBPS)
    with pytest.raises(PlanError, match="h1->fw"):
        backend.apply(Plan.between(NetworkConfig(), NetworkConfig.of([bad])))
    assert len(backend.snapshot()) == 0


def test_over_committing_plan_is_refused_and_emulation_unchanged() -> None:
    table = random_flows(200, 5)
    topo = small_topology()
    untouched = SimBackend(topo, table)
    untouched.advance(5.0)
    backend = SimBackend(topo, table)
    backend.advance(5.0)
    good = scaffold_config(expires_at=100.0, reserve_bps=3 * MBPS)
    backend.apply(Plan.between(NetworkConfig(), good))
    greedy = Reservation("e2->e3", ("h2", "s1", "fw", "h3"), 6 * MBPS, Origin.PREDICTED, 100.0)
    before = backend.snapshot()
    with pytest.raises(PlanError, match="over-commits") as err:
        backend.apply(Plan.between(before, NetworkConfig({**before.items, greedy.key: greedy})))
    assert "e2->e3" in str(err.value.location.element)
    assert backend.snapshot() is before
    backend.apply(Plan.between(backend.snapshot(), NetworkConfig()))  # back to the untouched config
    backend.advance(200.0)
    untouched.advance(200.0)
    np.testing.assert_allclose(backend.result().completion_s, untouched.result().completion_s, rtol=1e-9)


def test_apply_is_idempotent() -> None:
    backend = SimBackend(small_topology(), random_flows(5, 6))
    plan = Plan.between(NetworkConfig(), scaffold_config(expires_at=50.0))
    assert backend.apply(plan).applied_ops == 4
    snapshot = backend.snapshot()
    assert backend.apply(plan).applied_ops == 0
    assert backend.snapshot() == snapshot
