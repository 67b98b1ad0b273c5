"""Plan invariants: a config against itself is empty; Plan(a, b) applied to a gives b; inverse undoes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netscaffold.model import (
    FirewallRule,
    FlowMatch,
    NetworkConfig,
    NextHop,
    Origin,
    Plan,
    Reservation,
    Route,
)

DEVICES = ["h1", "s1", "s2", "h2"]


@st.composite
def items(draw: st.DrawFn) -> Route | FirewallRule | Reservation:
    kind = draw(st.sampled_from(["route", "fw", "resv"]))
    origin = draw(st.sampled_from(list(Origin)))
    expires = draw(st.floats(0, 100)) if origin is Origin.PREDICTED else None
    host = draw(st.integers(1, 20))
    if kind == "route":
        n_hops = draw(st.integers(1, 2))
        vias = DEVICES[:n_hops]
        hops = tuple(NextHop(v, 1.0 / n_hops) for v in vias)
        return Route(draw(st.sampled_from(DEVICES)), f"198.18.0.{host}/32", hops, origin, expires)
    if kind == "fw":
        port = draw(st.one_of(st.none(), st.integers(1, 65535)))
        match = FlowMatch(dst=f"198.18.0.{host}/32", proto="tcp" if port else None, dst_port=port)
        return FirewallRule("s1", match, draw(st.sampled_from(["accept", "drop"])), origin, expires)
    rate = draw(st.floats(1.0, 1e9))
    return Reservation(f"f{host}", ("h1", "s1", "h2"), rate, origin, expires)


def configs() -> st.SearchStrategy[NetworkConfig]:
    return st.lists(items(), max_size=12).map(lambda xs: NetworkConfig({item.key: item for item in xs}))


@given(configs())
def test_plan_of_config_against_itself_is_empty(cfg: NetworkConfig) -> None:
    assert Plan.between(cfg, cfg).is_empty


@given(configs(), configs())
def test_applying_plan_a_to_b_gives_b(a: NetworkConfig, b: NetworkConfig) -> None:
    plan = Plan.between(a, b)
    assert plan.apply_to(a).items == b.items
    assert plan.inverse().apply_to(b).items == a.items
    assert Plan.between(plan.apply_to(a), b).is_empty
