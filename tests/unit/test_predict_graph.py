"""PredictedGraph builder: activity, quantiles in bit/s, QoS latency bounds, path probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from netscaffold.errors import TopologyError, ValidationError
from netscaffold.model import Endpoint, Link, Node, NodeKind, QosPolicy, QosProfile, Topology
from netscaffold.paths import PathFinder
from netscaffold.predict.base import Forecast
from netscaffold.predict.graph import PathOptions, build_predicted_graph, candidate_paths


def diamond() -> Topology:
    """a -> {b, c} -> d with both branches cost 2, plus a long branch a -> e -> f -> d (cost 3)."""
    nodes = [Node(n, NodeKind.ROUTER) for n in "abcdef"] + [
        Node("h1", NodeKind.HOST),
        Node("h2", NodeKind.HOST),
    ]
    edges = [("a", "b"), ("b", "d"), ("a", "c"), ("c", "d"), ("a", "e"), ("e", "f"), ("f", "d"),
             ("h1", "a"), ("d", "h2")]  # fmt: skip
    links = [Link(u, v, 1e9) for u, v in edges] + [Link(v, u, 1e9) for u, v in edges]
    endpoints = [Endpoint("web", "h1", "198.18.0.1", "web"), Endpoint("db", "h2", "198.18.0.2", "db")]
    return Topology.build(nodes, links, endpoints, name="diamond")


def forecast(pairs: int, horizon: int = 2) -> Forecast:
    quantiles = np.sort(np.random.default_rng(0).uniform(0, 5, (1, horizon, pairs, 3)), axis=-1)
    return Forecast(np.array([10]), (0.5, 0.9, 0.99), quantiles, np.full((1, horizon, pairs), 0.8))


def test_ecmp_splits_equally_and_recent_path_gets_more() -> None:
    finder = PathFinder(diamond())
    plain = candidate_paths(finder, "a", "d", PathOptions(mode="ecmp"))
    assert [p for p, _ in plain] == [("a", "b", "d"), ("a", "c", "d")]
    assert [w for _, w in plain] == pytest.approx([0.5, 0.5])
    recent = candidate_paths(
        finder, "a", "d", PathOptions(mode="ecmp", recent_weight=3.0), recent=("a", "c", "d")
    )
    assert dict(recent)[("a", "c", "d")] == pytest.approx(0.75)


def test_k_shortest_prefers_cheap_and_unloaded_paths() -> None:
    finder = PathFinder(diamond())
    options = PathOptions(k=3)
    probs = dict(candidate_paths(finder, "a", "d", options))
    assert len(probs) == 3
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs[("a", "e", "f", "d")] < probs[("a", "b", "d")]
    loaded = dict(candidate_paths(finder, "a", "d", options, utilisation={("a", "b"): 0.9}))
    assert loaded[("a", "b", "d")] < loaded[("a", "c", "d")]
    joined = dict(candidate_paths(finder, "a", "d", PathOptions(k=1), recent=("a", "e", "f", "d")))
    assert set(joined) == {("a", "b", "d"), ("a", "e", "f", "d")}


def test_build_from_endpoints_with_qos() -> None:
    topo = diamond()
    qos = QosPolicy(per_app={"db": QosProfile("db", max_latency_s=0.01)})
    pairs = [("web", "db"), ("db", "web")]
    graph = build_predicted_graph(
        forecast(2), pairs, topology=topo, finder=PathFinder(topo), qos=qos, t0_s=100.0, step_s=1.0,
        bps_factor=1e6, options=PathOptions(mode="ecmp"),
    )  # fmt: skip
    assert graph.horizon == 2
    assert graph.pairs == tuple(pairs)
    assert graph.latency_bound_s[0] == pytest.approx(0.01)
    assert np.isnan(graph.latency_bound_s[1])
    assert graph.bandwidth_bps.max() > 1e5  # Mbit/s -> bit/s
    first = graph.paths_of(0)
    assert {p for p, _ in first} == {("h1", "a", "b", "d", "h2"), ("h1", "a", "c", "d", "h2")}


def test_backbone_nodes_stand_for_themselves_and_unknown_names_fail() -> None:
    topo = diamond()
    graph = build_predicted_graph(
        forecast(1), [("a", "d")], topology=topo, finder=PathFinder(topo), qos=QosPolicy(), t0_s=0.0,
        step_s=300.0, bps_factor=1.0,
    )  # fmt: skip
    assert graph.paths_of(0)
    with pytest.raises(TopologyError, match="neither an endpoint nor a node"):
        build_predicted_graph(
            forecast(1), [("a", "zz")], topology=topo, finder=PathFinder(topo), qos=QosPolicy(), t0_s=0.0,
            step_s=1.0, bps_factor=1.0,
        )  # fmt: skip
    with pytest.raises(ValidationError, match="pair names"):
        build_predicted_graph(
            forecast(2), [("a", "d")], topology=topo, finder=PathFinder(topo), qos=QosPolicy(), t0_s=0.0,
            step_s=1.0, bps_factor=1.0,
        )  # fmt: skip
    with pytest.raises(ValidationError, match="path mode"):
        PathOptions(mode="random")
