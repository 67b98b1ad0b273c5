from __future__ import annotations

import pytest

from netscaffold.errors import PlanError, ValidationError
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
    VirtualCircuit,
)


@pytest.fixture
def line() -> Topology:
    nodes = [Node("h1", NodeKind.HOST), Node("fw", NodeKind.FIREWALL), Node("h2", NodeKind.HOST)]
    links = [Link(a, b, 100e6) for a, b in (("h1", "fw"), ("fw", "h2"), ("fw", "h1"), ("h2", "fw"))]
    return Topology.build(nodes, links)


def _predicted_route(device: str, via: str, expires: float = 10.0) -> Route:
    return Route(device, "198.18.0.2/32", (NextHop(via, 1.0),), Origin.PREDICTED, expires)


def test_plan_between_orders_make_before_break() -> None:
    route = _predicted_route("h1", "fw")
    resv = Reservation("a->b", ("h1", "fw", "h2"), 10e6, Origin.PREDICTED, 10.0)
    old_fw = FirewallRule("fw", FlowMatch(src="198.18.0.9/32"), "accept", Origin.PREDICTED, 5.0)
    plan = Plan.between(NetworkConfig.of([old_fw]), NetworkConfig.of([route, resv]))
    assert [(op.kind, op.item.key[0]) for op in plan.ops] == [
        (OpKind.REMOVE, "firewall"),
        (OpKind.ADD, "reservation"),
        (OpKind.ADD, "route"),
    ]


def test_plan_against_itself_is_empty_and_apply_gives_target(line: Topology) -> None:
    a = NetworkConfig.of([_predicted_route("h1", "fw")])
    b = NetworkConfig.of([_predicted_route("h1", "fw", 20.0), _predicted_route("fw", "h2")])
    assert Plan.between(a, a).is_empty
    plan = Plan.between(a, b)
    assert plan.count(OpKind.UPDATE) == 1
    assert plan.apply_to(a).items == b.items
    assert plan.validate(line, ProvisionalBudget(), a).items == b.items
    # applying twice is harmless
    assert plan.apply_to(plan.apply_to(a)).items == b.items
    assert plan.inverse().apply_to(b).items == a.items


def test_over_committed_link_is_refused_naming_the_item(line: Topology) -> None:
    first = Reservation("x->y", ("h1", "fw"), 60e6)
    second = Reservation("p->q", ("h1", "fw", "h2"), 50e6)
    current = NetworkConfig.of([first])
    plan = Plan.between(current, NetworkConfig.of([first, second]))
    with pytest.raises(PlanError, match=r"reservation p->q .*over-commits link h1->fw"):
        plan.validate(line, current=current)


def test_provisional_link_share_is_budgeted(line: Topology) -> None:
    resv = Reservation("a->b", ("h1", "fw"), 60e6, Origin.PREDICTED, 5.0)
    plan = Plan.between(NetworkConfig(), NetworkConfig.of([resv]))
    plan.validate(line)  # fits the link
    with pytest.raises(PlanError, match=r"above the budget of 0\.5 x capacity"):
        plan.validate(line, ProvisionalBudget(link_fraction=0.5))


def test_device_slots_are_budgeted(line: Topology) -> None:
    routes = [Route("h1", f"198.18.1.{i}/32", (NextHop("fw"),), Origin.PREDICTED, 5.0) for i in range(3)]
    plan = Plan.between(NetworkConfig(), NetworkConfig.of(routes))
    plan.validate(line, ProvisionalBudget(rule_slots_per_device=3))
    with pytest.raises(PlanError, match="device 'h1' would hold 3 provisional entries, budget 2"):
        plan.validate(line, ProvisionalBudget(rule_slots_per_device=2))


def test_confirmed_items_are_untouchable_by_scaffolding(line: Topology) -> None:
    confirmed = Route("h1", "198.18.0.2/32", (NextHop("fw"),), Origin.CONFIRMED)
    current = NetworkConfig.of([confirmed])
    with pytest.raises(PlanError, match="would remove a confirmed item"):
        Plan.between(current, NetworkConfig()).validate(line, current=current)
    refine = Plan.between(current, NetworkConfig(), allow_confirmed_changes=True)
    assert len(refine.validate(line, current=current)) == 0


def test_provisional_permit_conflicting_with_confirmed_drop(line: Topology) -> None:
    drop = FirewallRule("fw", FlowMatch(dst="198.18.0.2/32"), "drop", Origin.CONFIRMED)
    permit = FirewallRule(
        "fw", FlowMatch(src="198.18.0.1/32", dst="198.18.0.2/32"), "accept", Origin.PREDICTED, 9.0
    )
    current = NetworkConfig.of([drop])
    plan = Plan.between(current, NetworkConfig.of([drop, permit]))
    with pytest.raises(PlanError, match="conflicts with confirmed rule"):
        plan.validate(line, current=current)


def test_items_checked_against_topology(line: Topology) -> None:
    bad_hop = Route("h1", "198.18.0.2/32", (NextHop("h2"),))
    with pytest.raises(PlanError, match="next hop 'h2' is not a neighbour of 'h1'"):
        Plan.between(NetworkConfig(), NetworkConfig.of([bad_hop])).validate(line)
    bad_path = VirtualCircuit("vc1", "a->b", ("h1", "h2"), 1e6)
    with pytest.raises(PlanError, match=r"circuit vc1 .*link h1->h2: no such link"):
        Plan.between(NetworkConfig(), NetworkConfig.of([bad_path])).validate(line)
    unknown = FirewallRule("nowhere", FlowMatch(), "accept")
    with pytest.raises(PlanError, match="unknown node"):
        Plan.between(NetworkConfig(), NetworkConfig.of([unknown])).validate(line)
    lost = Route("nowhere", "198.18.0.2/32", (NextHop("h1"),))
    with pytest.raises(PlanError, match=r"route 198.18.0.2/32 on nowhere: node 'nowhere': unknown node"):
        Plan.between(NetworkConfig(), NetworkConfig.of([lost])).validate(line)


def test_stale_update_is_refused() -> None:
    old = _predicted_route("h1", "fw", 5.0)
    new = _predicted_route("h1", "fw", 6.0)
    plan = Plan.between(NetworkConfig.of([old]), NetworkConfig.of([new]))
    other = NetworkConfig.of([_predicted_route("h1", "fw", 7.0)])
    with pytest.raises(PlanError, match="changed since the plan was made"):
        plan.apply_to(other)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Route("h1", "nope", (NextHop("fw"),)),
        lambda: Route("h1", "198.18.0.0/24", (NextHop("fw", 0.5),)),
        lambda: Route("h1", "198.18.0.0/24", ()),
        lambda: Route("h1", "198.18.0.0/24", (NextHop("fw"),), Origin.PREDICTED),
        lambda: Reservation("k", ("a",), 1.0),
        lambda: Reservation("k", ("a", "b"), -1.0),
        lambda: FlowMatch(proto="udp", dst_port=70000),
        lambda: FlowMatch(dst_port=80),
        lambda: FirewallRule("fw", FlowMatch(), "maybe"),  # type: ignore[arg-type]
    ],
)
def test_bad_items_are_refused(make: object) -> None:
    with pytest.raises(ValidationError):
        make()  # type: ignore[operator]


def test_budget_validation() -> None:
    with pytest.raises(PlanError, match="rule_slots_per_device must be >= 0"):
        ProvisionalBudget(rule_slots_per_device=-1)
    with pytest.raises(PlanError, match="link_fraction"):
        ProvisionalBudget(link_fraction=1.5)


def test_expiry_helpers() -> None:
    a = _predicted_route("h1", "fw", 5.0)
    b = Route("fw", "198.18.0.2/32", (NextHop("h2"),))
    cfg = NetworkConfig.of([a, b])
    assert cfg.expired(5.0) == [a]
    assert list(cfg.without_expired(5.0)) == [b]
    assert cfg.provisional() == [a]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Route("h1", "nope", (NextHop("fw"),)),
            "route nope on h1: destination 'nope' is not a prefix",
        ),
        (lambda: Route("h1", "198.18.0.0/24", ()), "route 198.18.0.0/24 on h1: a route needs at least one"),
        (
            lambda: Route("h1", "198.18.0.0/24", (NextHop("fw", 0.5),)),
            "route 198.18.0.0/24 on h1: next-hop weights sum to 0.5, not 1",
        ),
        (
            lambda: Route("h1", "198.18.0.0/24", (NextHop("fw", float("nan")),)),
            "route 198.18.0.0/24 on h1: next hop 'fw' weight must be > 0",
        ),
        (
            lambda: Route("h1", "198.18.0.0/24", (NextHop("fw", 0.5), NextHop("fw", 0.5))),
            r"route 198.18.0.0/24 on h1: duplicate next hop in \['fw', 'fw'\]",
        ),
        (
            lambda: Route("h1", "198.18.0.0/24", (NextHop("fw", 0.5), NextHop("h2", -0.5))),
            "route 198.18.0.0/24 on h1: next hop 'h2' weight must be > 0",
        ),
        (
            lambda: Route("h1", "198.18.0.0/24", (NextHop("fw"),), Origin.PREDICTED),
            "route 198.18.0.0/24 on h1: a provisional .* needs expires_at",
        ),
        (lambda: Reservation("k", ("a",), 1.0), r"reservation k 1 bit/s: path needs at least two nodes"),
        (lambda: Reservation("k", ("a", "b", "a"), 1.0), "reservation k 1 bit/s: path visits a node twice"),
        (lambda: Reservation("k", ("a", "b"), -1.0), "reservation k -1 bit/s: rate_bps must be a positive"),
        (lambda: Reservation("", ("a", "b"), 1.0), "flow_key must not be empty"),
        (lambda: VirtualCircuit("vc", "k", ("a", "b"), 1.0, expires_at=float("inf")), "circuit vc .*finite"),
        (lambda: VirtualCircuit("", "k", ("a", "b"), 1.0), "circuit_id must not be empty"),
    ],
)
def test_bad_items_name_themselves(make: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make()  # type: ignore[operator]


def test_plan_of_orders_ops_and_refuses_an_item_twice() -> None:
    fw = FirewallRule("fw", FlowMatch(src="198.18.0.9/32"), "accept", Origin.PREDICTED, 5.0)
    route_a, route_b = _predicted_route("h1", "fw"), _predicted_route("fw", "h2")
    resv = Reservation("a->b", ("h1", "fw", "h2"), 10e6, Origin.PREDICTED, 10.0)
    ops = [
        PlanOp(OpKind.ADD, route_b),
        PlanOp(OpKind.REMOVE, resv),
        PlanOp(OpKind.ADD, fw),
        PlanOp(OpKind.UPDATE, route_a, previous=_predicted_route("h1", "fw", 5.0)),
        PlanOp(OpKind.REMOVE, _predicted_route("h2", "fw")),
    ]
    plan = Plan.of(ops)
    assert [(op.kind.value, op.item.key[0], op.item.devices()[0]) for op in plan.ops] == [
        ("remove", "route", "h2"),  # removes: routes first
        ("remove", "reservation", "h1"),
        ("update", "route", "h1"),
        ("add", "firewall", "fw"),  # adds: routes last
        ("add", "route", "fw"),
    ]
    with pytest.raises(PlanError, match=r"route 198\.18\.0\.2/32 on h1: item appears twice in one plan"):
        Plan.of([*ops, PlanOp(OpKind.REMOVE, route_a)])
