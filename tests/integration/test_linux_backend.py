"""The Linux backend on a real lab: apply, read back, idempotence, expiry, rollback under injected faults
(a refused step, a killed nft, a bad line that fails half-way through a batch), bad input (root)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.converge import Step
from netscaffold.backends.linux.faults import FaultMode, fault_at
from netscaffold.errors import BackendError, PlanError
from netscaffold.model import (
    FirewallRule,
    FlowMatch,
    NetworkConfig,
    NextHop,
    Origin,
    Plan,
    Reservation,
    Route,
    VirtualCircuit,
)

from .test_linux_common import small_lab

pytestmark = pytest.mark.root


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("b") as be:
        yield be


def scaffold(expires_at: float = 30.0) -> NetworkConfig:
    predicted = {"origin": Origin.PREDICTED, "expires_at": expires_at}
    return NetworkConfig.of(
        [
            Route("h1", "198.18.0.2/32", (NextHop("r1"),)),
            Route("r1", "198.18.0.2/32", (NextHop("r2", 0.25), NextHop("fw", 0.75)), **predicted),
            Route("fw", "198.18.0.2/32", (NextHop("r2"),), **predicted),
            Route("r2", "198.18.0.2/32", (NextHop("h2"),)),
            Route("r1", "fd00::2/128", (NextHop("r2"),)),
            FirewallRule("fw", FlowMatch("198.18.0.1", "198.18.0.2", "udp", 5000), **predicted),
            FirewallRule("fw", FlowMatch(proto="icmp")),
            Reservation("a->b", ("h1", "r1", "r2", "h2"), 50e6),
            VirtualCircuit("vc:a->b", "a->b", ("h1", "r1", "fw", "r2", "h2"), 1e6, **predicted),
        ]
    )


def test_apply_reads_back_every_item_and_is_idempotent(backend: LinuxBackend) -> None:
    desired = scaffold()
    report = backend.apply(Plan.between(backend.snapshot(), desired))
    assert backend.snapshot() == desired
    assert set(report.realized_at) == set(desired.items)
    again = backend.apply(Plan.between(NetworkConfig(), desired))
    assert again.applied_ops == 0
    assert backend.residue() == {}
    routes = tools.ip_json(backend.layout.namespace("r1"), ["route", "show", "198.18.0.2/32"])
    weights = sorted(hop["weight"] for hop in routes[0]["nexthops"])
    assert weights == [85, 256]


def test_expire_removes_provisional_items_only(backend: LinuxBackend) -> None:
    backend.apply(Plan.between(NetworkConfig(), scaffold(expires_at=5.0)))
    backend.advance(6.0)
    left = backend.snapshot()
    assert all(item.origin is Origin.STATIC for item in left)
    assert len(left) == 5
    assert backend.residue() == {}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_injected_fault_at_a_random_step_leaves_the_pre_plan_state(backend: LinuxBackend, seed: int) -> None:
    rng = np.random.default_rng(seed)
    half = NetworkConfig.of([item for i, item in enumerate(scaffold().sorted_items()) if i % 2 == 0])
    backend.apply(Plan.between(NetworkConfig(), half))
    before_objects, before_config = backend.kernel_objects(), backend.snapshot()
    plan = Plan.between(before_config, scaffold(expires_at=40.0), allow_confirmed_changes=True)
    steps = backend.dry_run(plan)
    mode: FaultMode = "raise" if rng.random() < 0.5 else "bad-line"
    backend.before_step = fault_at(int(rng.integers(len(steps))), mode)
    with pytest.raises(BackendError, match=r"rolled back|injected"):
        backend.apply(plan)
    after = backend.kernel_objects()
    assert {k: v for k, v in after.items() if k[0] != "element"} == {
        k: v for k, v in before_objects.items() if k[0] != "element"
    }
    assert {k for k in after if k[0] == "element"} == {k for k in before_objects if k[0] == "element"}
    assert backend.snapshot() == before_config
    assert backend.residue() == {}


def test_killed_nft_is_rolled_back(backend: LinuxBackend) -> None:
    def kill_nft(index: int, step: Step) -> None:
        if step.tool == "nft":
            step.netns = "ns-no-such-namespace-xyz"  # the tool dies before committing anything

    backend.before_step = kill_nft
    with pytest.raises(BackendError):
        backend.apply(Plan.between(NetworkConfig(), scaffold()))
    assert backend.snapshot() == NetworkConfig()
    assert backend.residue() == {}


def test_foreign_objects_in_a_lab_namespace_survive(backend: LinuxBackend) -> None:
    netns = backend.layout.namespace("r1")
    tools.ip_batch(netns, ["route add 198.18.5.5/32 via 198.19.0.1 proto static"])
    tools.nft_json(netns, {"nftables": [{"add": {"table": {"family": "ip", "name": "decoy"}}}]})
    backend.apply(Plan.between(NetworkConfig(), scaffold()))
    backend.apply(Plan.between(backend.snapshot(), NetworkConfig(), allow_confirmed_changes=True))
    assert any(r["dst"] == "198.18.5.5" for r in tools.ip_json(netns, ["route", "show"]))
    tables = json.loads(tools.run(["ip", "netns", "exec", netns, "nft", "-j", "list", "tables"]))
    assert any(e.get("table", {}).get("name") == "decoy" for e in tables["nftables"])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (Route("nowhere", "198.18.0.2/32", (NextHop("r1"),)), "unknown node"),
        (Route("h1", "198.18.0.2/32", (NextHop("r2"),)), "not a neighbour"),
        (Reservation("a->b", ("h1", "r1", "r2", "h2"), 2e9), "over-commits"),
        (Reservation("x->y", ("h1", "r1"), 1e6), "two endpoints"),
    ],
)
def test_bad_plans_are_refused_with_nothing_applied(
    backend: LinuxBackend, item: object, message: str
) -> None:
    good = Route("r2", "198.18.0.2/32", (NextHop("h2"),))
    with pytest.raises(PlanError, match=message):
        backend.apply(Plan.between(NetworkConfig(), NetworkConfig.of([good, item])))  # type: ignore[list-item]
    assert backend.snapshot() == NetworkConfig()
    assert backend.residue() == {}
