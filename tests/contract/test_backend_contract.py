"""The behaviour every backend owes the engine (parametrised over tests/contract/conftest.py BACKENDS)."""

from __future__ import annotations

import pytest

from netscaffold.backends.protocol import Backend
from netscaffold.errors import NetscaffoldError, PlanError
from netscaffold.model import (
    FirewallRule,
    FlowMatch,
    FlowRequest,
    NetworkConfig,
    NextHop,
    Origin,
    Plan,
    Reservation,
    Route,
)
from netscaffold.model.metrics import PerformanceSample

DST = "198.18.0.3/32"


def provisional(expires_at: float) -> NetworkConfig:
    """A scaffolded path e1 -> e3: routes on h1, s1, fw, a permit on fw, a 2 Mbit/s reservation."""
    items = [
        Route(dev, DST, (NextHop(via),), origin=Origin.PREDICTED, expires_at=expires_at)
        for dev, via in (("h1", "s1"), ("s1", "fw"), ("fw", "h3"))
    ]
    permit = FirewallRule(
        "fw", FlowMatch(src="198.18.0.1/32", dst=DST), origin=Origin.PREDICTED, expires_at=expires_at
    )
    reservation = Reservation(
        "e1->e3", ("h1", "s1", "fw", "h3"), 2e6, origin=Origin.PREDICTED, expires_at=expires_at
    )
    return NetworkConfig.of([*items, permit, reservation])


def test_is_a_backend(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name
    assert len(backend.snapshot()) == 0


def test_apply_gives_the_planned_config(backend: Backend) -> None:
    desired = provisional(expires_at=100.0)
    report = backend.apply(Plan.between(backend.snapshot(), desired))
    assert backend.snapshot() == desired
    assert report.applied_ops == len(desired)
    assert set(report.realized_at) == set(desired.items)
    assert all(t == backend.clock.now() for t in report.realized_at.values())


def test_apply_twice_is_harmless(backend: Backend) -> None:
    plan = Plan.between(NetworkConfig(), provisional(expires_at=100.0))
    backend.apply(plan)
    first = backend.snapshot()
    again = backend.apply(plan)
    assert backend.snapshot() == first
    assert again.applied_ops == 0


def test_rejected_plan_names_the_item_and_changes_nothing(backend: Backend) -> None:
    backend.apply(Plan.between(NetworkConfig(), provisional(expires_at=100.0)))
    before = backend.snapshot()
    greedy = Reservation("e2->e3", ("h2", "s1", "fw", "h3"), 9e6, origin=Origin.PREDICTED, expires_at=100.0)
    extra_route = Route("h2", DST, (NextHop("s1"),), origin=Origin.PREDICTED, expires_at=100.0)
    desired = NetworkConfig({**before.items, greedy.key: greedy, extra_route.key: extra_route})
    with pytest.raises(PlanError) as err:
        backend.apply(Plan.between(before, desired))
    assert "e2->e3" in str(err.value)
    assert backend.snapshot() == before


def test_expire_removes_provisional_items_at_their_time(backend: Backend) -> None:
    backend.apply(Plan.between(NetworkConfig(), provisional(expires_at=3.0)))
    assert backend.expire(2.9) == []
    gone = backend.expire(3.0)
    assert len(gone) == 5
    assert len(backend.snapshot()) == 0


def test_advance_expires_on_the_way_and_moves_the_clock(backend: Backend) -> None:
    backend.apply(Plan.between(NetworkConfig(), provisional(expires_at=2.0)))
    backend.advance(4.0)
    assert backend.clock.now() >= 4.0
    assert len(backend.snapshot()) == 0


def test_routing_info_and_performance(backend: Backend) -> None:
    backend.advance(5.0)
    info = backend.drain_routing_info()
    assert all(isinstance(i, FlowRequest) for i in info if hasattr(i, "scaffolded"))
    assert [i.time_s for i in info] == sorted(i.time_s for i in info)
    assert backend.drain_routing_info() == []
    sample = backend.performance()
    assert isinstance(sample, PerformanceSample)
    assert sample.load_bps.shape == (len(sample.link_keys),)


def test_close_is_idempotent_and_final(backend: Backend) -> None:
    backend.close()
    backend.close()
    with pytest.raises(NetscaffoldError):
        backend.apply(Plan.between(NetworkConfig(), provisional(expires_at=10.0)))
