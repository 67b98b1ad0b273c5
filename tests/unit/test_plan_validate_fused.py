"""``Plan.validate`` checks confirmed items, applies the ops and checks the items against the topology in
one pass over the ops (H14); it must return the same config and refuse with the same error, naming the
same item, as the checks run one after another (the code before, kept here as the reference)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.errors import PlanError, TopologyError
from netscaffold.model import (
    FirewallRule,
    FlowMatch,
    Link,
    NetworkConfig,
    NextHop,
    Node,
    NodeKind,
    OpKind,
    Origin,
    Plan,
    PlanOp,
    ProvisionalBudget,
    Reservation,
    Route,
    Topology,
)
from netscaffold.model.config import ConfigItem
from netscaffold.model.plan import (
    _check_device_slots,
    _check_firewall_conflicts,
    _check_link_commitment,
)


def _topology() -> Topology:
    nodes = [Node("h1", NodeKind.HOST), Node("r1"), Node("r2"), Node("fw", NodeKind.FIREWALL)]
    pairs = [("h1", "r1"), ("r1", "r2"), ("r1", "fw"), ("fw", "r2")]
    links = [Link(a, b, 100e6) for x, y in pairs for a, b in ((x, y), (y, x))]
    return Topology.build(nodes, links)


TOPOLOGY = _topology()


def reference_validate(
    plan: Plan, topology: Topology, budget: ProvisionalBudget | None, current: NetworkConfig | None
) -> NetworkConfig:
    """``Plan.validate`` as it was before the fused pass: each check in turn."""
    base = current if current is not None else NetworkConfig()
    if not plan.allow_confirmed_changes:
        plan._check_confirmed_untouched()
    keys = [op.item.key for op in plan.ops]
    result = plan._apply_to(base, keys)
    touched = {key for op, key in zip(plan.ops, keys, strict=True) if op.kind is not OpKind.REMOVE}
    plan._check_items(topology)
    _check_link_commitment(result, topology, budget, touched)
    if budget is not None:
        _check_device_slots(result, budget, touched)
    if not plan.allow_confirmed_changes:
        _check_firewall_conflicts(plan, result)
    return result


def _outcome(call: object) -> tuple[str, object]:
    try:
        return "ok", call()  # type: ignore[operator]
    except (PlanError, TopologyError) as exc:
        return type(exc).__name__, str(exc)


_DEVICES = ["h1", "r1", "r2", "fw", "nowhere"]
_ORIGINS = [Origin.STATIC, Origin.PREDICTED, Origin.CONFIRMED]


@st.composite
def _items(draw: st.DrawFn) -> ConfigItem:
    origin = draw(st.sampled_from(_ORIGINS))
    expires = 30.0 if origin is Origin.PREDICTED else None
    kind = draw(st.sampled_from(["route", "route2", "firewall", "reservation"]))
    device = draw(st.sampled_from(_DEVICES))
    destination = f"198.18.0.{draw(st.integers(1, 4))}/32"
    if kind == "route":
        return Route(device, destination, (NextHop(draw(st.sampled_from(_DEVICES))),), origin, expires)
    if kind == "route2":
        a, b = draw(st.lists(st.sampled_from(_DEVICES), min_size=2, max_size=2, unique=True))
        return Route(device, destination, (NextHop(a, 0.5), NextHop(b, 0.5)), origin, expires)
    if kind == "firewall":
        action = draw(st.sampled_from(["accept", "drop"]))
        match = FlowMatch(draw(st.sampled_from([None, "198.18.0.1"])), destination, "udp", 53)
        return FirewallRule(device, match, action, origin, expires)
    path = draw(st.sampled_from([("h1", "r1", "r2"), ("h1", "r1", "fw", "r2"), ("h1", "nowhere")]))
    rate = draw(st.sampled_from([1e6, 40e6, 90e6]))
    return Reservation(f"a{draw(st.integers(0, 2))}->b", path, rate, origin, expires)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Plan, NetworkConfig, ProvisionalBudget | None]:
    current: dict[tuple[str, ...], ConfigItem] = {}
    for item in draw(st.lists(_items(), max_size=6)):
        current.setdefault(item.key, item)
    ops: list[PlanOp] = []
    seen: set[tuple[str, ...]] = set()
    for item in draw(st.lists(_items(), max_size=8)):
        if item.key in seen:
            continue
        seen.add(item.key)
        held = current.get(item.key)
        kind = draw(st.sampled_from([OpKind.ADD, OpKind.REMOVE, OpKind.UPDATE]))
        if kind is OpKind.UPDATE:
            previous = held if held is not None and draw(st.booleans()) else item
            ops.append(PlanOp(OpKind.UPDATE, item, previous=previous))
        elif kind is OpKind.REMOVE:
            ops.append(PlanOp(OpKind.REMOVE, held if held is not None and draw(st.booleans()) else item))
        else:
            ops.append(PlanOp(OpKind.ADD, held if held is not None and draw(st.booleans()) else item))
    plan = Plan.of(ops, allow_confirmed_changes=draw(st.booleans()))
    budget = draw(st.none() | st.builds(ProvisionalBudget, st.integers(0, 3), st.sampled_from([0.2, 1.0])))
    return plan, NetworkConfig(current), budget


@given(case=_cases())
@settings(max_examples=300, deadline=None)
def test_validate_refuses_and_returns_as_the_checks_in_turn(
    case: tuple[Plan, NetworkConfig, ProvisionalBudget | None],
) -> None:
    plan, current, budget = case
    expected = _outcome(lambda: reference_validate(plan, TOPOLOGY, budget, current))
    fresh = Plan(plan.ops, plan.allow_confirmed_changes)  # without the keys cached by the reference
    assert _outcome(lambda: fresh.validate(TOPOLOGY, budget, current)) == expected


def test_item_keys_are_built_once_and_in_op_order() -> None:
    routes = [Route("r1", f"198.18.0.{i}/32", (NextHop("r2"),)) for i in (3, 1, 2)]
    plan = Plan.between(NetworkConfig(), NetworkConfig.of(routes))
    keys = plan.item_keys
    assert keys == tuple(op.item.key for op in plan.ops)
    assert plan.item_keys is keys
    result = plan.validate(TOPOLOGY)
    assert all(any(key is k for k in result.items) for key in keys)  # the result holds those tuples


def test_a_route_through_a_next_hop_without_a_link_is_named_after_good_ones() -> None:
    good = [Route("r1", f"198.18.0.{i}/32", (NextHop("r2", 0.5), NextHop("fw", 0.5))) for i in (1, 2)]
    bad = Route("r1", "198.18.0.3/32", (NextHop("r2", 0.5), NextHop("h1", 0.25), NextHop("h2", 0.25)))
    plan = Plan.between(NetworkConfig(), NetworkConfig.of([*good, bad]))
    with pytest.raises(PlanError, match=r"next hop 'h2' is not a neighbour of 'r1'") as caught:
        plan.validate(TOPOLOGY)
    assert caught.value.location.element == bad.describe()
