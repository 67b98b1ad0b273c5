"""Config items survive the shared JSON form (formats.configjson) both ways, and plans survive storage
(property tests); the service, the run report, the exporters and the agents all use it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.formats import configjson
from netscaffold.model.config import (
    ConfigItem,
    FirewallRule,
    FlowMatch,
    NetworkConfig,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
)
from netscaffold.model.plan import Plan

nodes = st.sampled_from(["a", "b", "c", "d", "e"])
hosts = st.integers(1, 250).map(lambda n: f"198.18.0.{n}/32")
life = st.one_of(
    st.just((Origin.STATIC, None)),
    st.just((Origin.CONFIRMED, None)),
    st.floats(0, 1e9, allow_nan=False).map(lambda t: (Origin.PREDICTED, t)),
)
paths = st.lists(nodes, min_size=2, max_size=5, unique=True).map(tuple)
rates = st.floats(1.0, 1e11, allow_nan=False)


@st.composite
def items(draw: st.DrawFn) -> ConfigItem:
    origin, expires = draw(life)
    kind = draw(st.sampled_from(["route", "firewall", "reservation", "circuit"]))
    if kind == "route":
        vias = draw(st.lists(nodes, min_size=1, max_size=3, unique=True))
        hops = tuple(NextHop(v, 1 / len(vias)) for v in vias)
        return Route(draw(nodes), draw(hosts), hops, origin, expires)
    if kind == "firewall":
        proto = draw(st.sampled_from([None, "tcp", "udp", "icmp"]))
        port = draw(st.integers(1, 65535)) if proto in ("tcp", "udp") else None
        match = FlowMatch(draw(st.none() | hosts), draw(st.none() | hosts), proto, port)
        return FirewallRule(draw(nodes), match, draw(st.sampled_from(["accept", "drop"])), origin, expires)
    if kind == "reservation":
        return Reservation(f"{draw(nodes)}->{draw(nodes)}", draw(paths), draw(rates), origin, expires)
    return VirtualCircuit(f"vc:{draw(nodes)}", "x->y", draw(paths), draw(rates), origin, expires)


@settings(max_examples=80, deadline=None)
@given(st.lists(items(), max_size=12))
def test_config_round_trips_through_json(drawn: list[ConfigItem]) -> None:
    unique = {item.key: item for item in drawn}
    config = NetworkConfig(unique)
    text = json.dumps(configjson.config_json(config))
    assert configjson.config_from_json(json.loads(text)).items == config.items


@settings(max_examples=50, deadline=None)
@given(st.lists(items(), max_size=8), st.lists(items(), max_size=8))
def test_stored_plan_equals_the_plan(before: list[ConfigItem], after: list[ConfigItem]) -> None:
    current = NetworkConfig({i.key: i for i in before})
    desired = NetworkConfig({i.key: i for i in after})
    plan = Plan.between(current, desired, allow_confirmed_changes=True)
    stored = json.loads(json.dumps([configjson.op_json(op) for op in plan.ops]))
    again = configjson.plan_from_json(stored)
    assert again.ops == plan.ops
    assert again.apply_to(current).items == desired.items


def test_formats_does_not_import_the_service_or_a_backend() -> None:
    import subprocess
    import sys

    code = (
        "import sys, netscaffold.formats.configjson, netscaffold.formats.export.k8s,"
        " netscaffold.formats.export.kernel, netscaffold.formats.render.desired;"
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('netscaffold.service', 'netscaffold.backends'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_bad_item_names_its_index() -> None:
    import pydantic
    import pytest

    from netscaffold.errors import ValidationError

    ok = {"kind": "route", "device": "a", "destination": "198.18.0.1/32", "next_hops": [{"via": "b"}]}
    bodies = pydantic.TypeAdapter(list[configjson.ItemBody]).validate_python([ok, {**ok, "destination": "x"}])
    with pytest.raises(ValidationError, match=r"desired\[1\]"):
        configjson.config_from_bodies(bodies)
    with pytest.raises(pydantic.ValidationError, match="next_hops"):
        configjson.item_from_json({**ok, "next_hops": []})
