"""Incremental max-min: solving only the flows a change reaches gives the rates of a full recomputation.

The kernel follows bottlenecks (see ``netscaffold.backends.sim.kernel``); ``hybrid_fraction=0`` recomputes
every active flow at every event, the reference here. Workloads mix elastic flows, rate-capped flows,
constant-rate flows of a fixed duration and reservations (guaranteed floors) that change mid-run.
"""

from __future__ import annotations

import numpy as np
import pytest

from netscaffold.backends.sim import SimBackend, kernel
from netscaffold.formats.generators import fat_tree
from netscaffold.model import Endpoint, Link, NetworkConfig, Node, NodeKind, Plan, Reservation, Topology
from netscaffold.model.flows import FlowTable

MBPS = 1e6
Rates = list[dict[int, float]]  # per sample: rate of every sending flow, by flow row


def two_switches() -> Topology:
    """h0-h3 on s1, h4-h7 on s2, h8-h9 on s3; unequal capacities so that bottlenecks move around."""
    nodes = [Node(f"s{i}", NodeKind.SWITCH) for i in (1, 2, 3)]
    nodes += [Node(f"h{i}", NodeKind.HOST) for i in range(10)]
    links: list[Link] = []

    def both(a: str, b: str, mbps: float) -> None:
        links.extend([Link(a, b, mbps * MBPS), Link(b, a, mbps * MBPS)])

    for i in range(10):
        both(f"h{i}", "s1" if i < 4 else "s2" if i < 8 else "s3", 10.0 if i % 3 else 7.0)
    both("s1", "s2", 16.0)
    both("s2", "s3", 6.0)
    endpoints = [Endpoint(f"e{i}", f"h{i}", f"198.18.0.{i + 1}") for i in range(10)]
    return Topology.build(nodes, links, endpoints, name="two-switches")


def mixed_flows(n: int, seed: int, n_endpoints: int = 10) -> FlowTable:
    """Elastic, rate-capped and fixed-duration flows between random distinct endpoints."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n_endpoints, n)
    dst = (src + rng.integers(1, n_endpoints, n)) % n_endpoints
    kind = rng.integers(0, 3, n)  # 0 elastic, 1 capped, 2 fixed duration at a constant rate
    size = np.where(kind == 2, np.nan, (1.0 + rng.pareto(1.5, n)) * 2e5)
    rate = np.where(kind == 0, np.inf, rng.uniform(0.5, 6.0, n) * MBPS)
    duration = np.where(kind == 2, rng.uniform(0.05, 1.0, n), np.nan)
    return FlowTable.build(
        start_s=np.sort(rng.uniform(0.0, 20.0, n)),
        src=src,
        dst=dst,
        size_bytes=size,
        rate_bps=rate,
        duration_s=duration,
        endpoints=tuple(f"e{i}" for i in range(n_endpoints)),
    )


def reservation(src: int, dst: int, mbps: float) -> Reservation:
    side = {0: "s1", 1: "s1", 2: "s1", 3: "s1", 8: "s3", 9: "s3"}
    first, last = side.get(src, "s2"), side.get(dst, "s2")
    middle = {("s1", "s2"): ("s1", "s2"), ("s2", "s1"): ("s2", "s1"), ("s1", "s3"): ("s1", "s2", "s3")}
    middle |= {("s3", "s1"): ("s3", "s2", "s1"), ("s2", "s3"): ("s2", "s3"), ("s3", "s2"): ("s3", "s2")}
    switches = (first,) if first == last else middle[(first, last)]
    return Reservation(f"e{src}->e{dst}", (f"h{src}", *switches, f"h{dst}"), mbps * MBPS)


def run_stepwise(
    topo: Topology, table: FlowTable, fraction: float
) -> tuple[list[dict[int, float]], SimBackend]:
    """Rates of every sending flow every 50 ms; reservations added at 5 s and changed at 10 s."""
    first = NetworkConfig.of([reservation(0, 5, 4.0), reservation(8, 1, 3.0)])
    second = NetworkConfig.of([reservation(8, 1, 3.0), reservation(4, 9, 2.5), reservation(2, 6, 5.0)])
    backend = SimBackend(topo, table, hybrid_fraction=fraction)
    samples: Rates = []
    for step in range(1, 500):
        t = step * 0.05
        if t == pytest.approx(5.0):
            backend.apply(Plan.between(backend.snapshot(), first, allow_confirmed_changes=True))
        if t == pytest.approx(10.0):
            backend.apply(Plan.between(backend.snapshot(), second, allow_confirmed_changes=True))
        backend.advance(t)
        samples.append(backend.rate_bps())
    return samples, backend


def assert_same_rates(got: Rates, want: Rates) -> None:
    for at, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.keys() == b.keys(), f"sample {at}: different flows sending"
        for flow, rate in b.items():
            assert a[flow] == pytest.approx(rate, rel=1e-9, abs=1e-6), f"sample {at}, flow {flow}"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction", [0.8, 1.0])
def test_component_rates_equal_full_recomputation(seed: int, fraction: float) -> None:
    topo, table = two_switches(), mixed_flows(400, seed)
    full, full_backend = run_stepwise(topo, table, 0.0)
    partial, backend = run_stepwise(topo, table, fraction)
    assert_same_rates(partial, full)
    np.testing.assert_allclose(backend.result().completion_s, full_backend.result().completion_s, rtol=1e-9)
    assert backend._state.counter(kernel.C_PARTIAL) > 0  # the components were really used


def test_floors_hold_when_a_component_is_solved_alone() -> None:
    """A reserved flow arriving beside elastic flows that are bottlenecked elsewhere still gets its
    floor: the outsiders on its links give way."""
    topo = two_switches()
    # e4->e0 and e5->e1 share s2->s1 (16 Mbit/s) at 10 and 6-ish; then e6->e2 arrives, reserved 7 Mbit/s
    table = FlowTable.build(
        start_s=[0.0, 0.0, 1.0],
        src=[4, 5, 6],
        dst=[0, 1, 2],
        size_bytes=[1e9, 1e9, 1e9],
        endpoints=tuple(f"e{i}" for i in range(10)),
    )
    initial = NetworkConfig.of([reservation(6, 2, 7.0)])
    backend = SimBackend(topo, table, initial=initial)
    backend.advance(2.0)
    rates = backend.rate_bps()
    assert rates[2] >= 7 * MBPS * (1 - 1e-12)
    assert sum(rates.values()) == pytest.approx(16 * MBPS)


def test_components_do_less_work_than_full_recomputation() -> None:
    bare = fat_tree(4, 1e9)
    topo = bare.with_endpoints(Endpoint(f"e{i}", h, f"198.18.1.{i + 1}") for i, h in enumerate(bare.hosts()))
    hosts = len(topo.endpoints)
    rng = np.random.default_rng(3)
    n = 3000
    src = rng.integers(0, hosts, n)
    table = FlowTable.build(
        start_s=np.cumsum(rng.exponential(1 / 400.0, n)),
        src=src,
        dst=(src + rng.integers(1, hosts, n)) % hosts,
        size_bytes=(1.0 + rng.pareto(1.5, n)) * 3e6,
        endpoints=tuple(f"e{i}" for i in range(hosts)),
    )
    solved: dict[float, float] = {}
    for fraction in (0.0, 0.8):
        backend = SimBackend(topo, table, hybrid_fraction=fraction)
        backend.advance(float(table.start_s[-1]))
        state = backend._state
        recomputes = state.counter(kernel.C_PARTIAL) + state.counter(kernel.C_FULL)
        solved[fraction] = state.counter(kernel.C_SOLVED) / recomputes
    assert solved[0.8] < 0.5 * solved[0.0]
