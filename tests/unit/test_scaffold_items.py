"""Building blocks of a pair's scaffolding: next-hop masses and permits."""

from __future__ import annotations

from netscaffold.model import QosProfile
from netscaffold.model.topology import Endpoint
from netscaffold.scaffold import items as mk


def test_route_contributions_add_up_per_device_and_next_hop() -> None:
    one = mk.route_contributions([(("a", "b", "c"), 1.0)], 0.5)
    assert one == {"a": {"b": 0.5}, "b": {"c": 0.5}}
    two = mk.route_contributions([(("a", "b", "d"), 0.75), (("a", "c", "d"), 0.25)], 0.4)
    assert two == {"a": {"b": 0.75 * 0.4, "c": 0.25 * 0.4}, "b": {"d": 0.75 * 0.4}, "c": {"d": 0.25 * 0.4}}
    shared = mk.route_contributions([(("a", "b", "d"), 0.5), (("a", "b", "e"), 0.5)], 1.0)
    assert shared["a"] == {"b": 1.0}
    # a path given with a loop visits a node twice: its masses there add up, as over two paths
    looped = mk.route_contributions([(("a", "b", "a", "c"), 1.0)], 0.3)
    assert looped == {"a": {"b": 0.3, "c": 0.3}, "b": {"a": 0.3}}
    looped_twice = mk.route_contributions([(("a", "b", "a", "b", "c"), 1.0)], 0.3)
    assert looped_twice == {"a": {"b": 0.3 + 0.3}, "b": {"a": 0.3, "c": 0.3}}


def test_permits_one_per_firewall_and_port() -> None:
    src = Endpoint("e1", "h1", "198.18.0.1")
    dst = Endpoint("e2", "h2", "198.18.0.2")
    assert mk.permits([], src, dst, QosProfile("web", allowed_ports=(443,)), 9.0) == []
    rules = mk.permits(iter(["fw1", "fw2"]), src, dst, QosProfile("web", allowed_ports=(80, 443)), 9.0)
    assert [(r.device, r.match.dst_port) for r in rules] == [
        ("fw1", 80),
        ("fw1", 443),
        ("fw2", 80),
        ("fw2", 443),
    ]
    (any_port,) = mk.permits(["fw1"], src, dst, QosProfile("be"), 9.0)
    assert (any_port.match.src, any_port.match.dst, any_port.match.proto) == (
        "198.18.0.1/32",
        "198.18.0.2/32",
        None,
    )
    assert any_port.expires_at == 9.0
