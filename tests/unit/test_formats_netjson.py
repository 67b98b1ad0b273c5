"""NetJSON NetworkGraph import and export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netscaffold.errors import TopologyError
from netscaffold.formats.netjson import netjson_document, read_netjson
from netscaffold.model.topology import NodeKind


def graph(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "NetworkGraph",
        "protocol": "static",
        "version": None,
        "metric": None,
        "label": "lab",
        "nodes": [
            {"id": "a", "properties": {"kind": "host", "longitude": 1.5, "latitude": 2.5}},
            {"id": "b"},
        ],
        "links": [
            {"source": "a", "target": "b", "cost": 3, "properties": {"capacity_bps": 1e9, "delay_s": 0.01}}
        ],
    }
    doc.update(extra)
    return doc


def read(doc: dict[str, Any]) -> Any:
    return read_netjson(json.dumps(doc), Path("g.json"), default_capacity_bps=7e8)


def test_undirected_by_default_kinds_and_coordinates() -> None:
    topo = read(graph())
    assert topo.name == "lab"
    assert set(topo.links) == {("a", "b"), ("b", "a")}
    assert topo.link("b", "a").capacity_bps == 1e9
    assert topo.link("a", "b").cost == 3.0
    assert topo.link("a", "b").delay_s == 0.01
    assert topo.node("a").kind is NodeKind.HOST
    assert topo.node("b").kind is NodeKind.ROUTER
    assert (topo.node("a").longitude, topo.node("a").latitude) == (1.5, 2.5)


def test_directed_flag_and_defaulted_capacity() -> None:
    doc = graph(directed=True, links=[{"source": "a", "target": "b", "cost": 1}])
    topo = read(doc)
    assert set(topo.links) == {("a", "b")}
    assert topo.link("a", "b").capacity_defaulted
    assert topo.link("a", "b").capacity_bps == 7e8
    assert any("1 link(s) gave no capacity" in w for w in topo.warnings)


def test_endpoint_extension_round_trips() -> None:
    endpoints = [{"id": "web", "host": "a", "address": "198.18.0.1", "app": "nginx"}]
    topo = read(graph(netscaffold={"endpoints": endpoints}))
    assert topo.endpoint("web").address == "198.18.0.1"
    assert netjson_document(topo)["netscaffold"]["endpoints"] == endpoints


def _error(doc: dict[str, Any] | str) -> TopologyError:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(TopologyError) as info:
        read_netjson(text, Path("bad.json"))
    return info.value


def test_duplicate_node_ids_name_both_places() -> None:
    err = _error(graph(nodes=[{"id": "a"}, {"id": "b"}, {"id": "a"}]))
    assert str(err) == "bad.json: nodes[2]: duplicate node id 'a' (first at nodes[0])"


def test_invalid_json_names_line() -> None:
    err = _error('{\n  "type": "NetworkGraph",\n  "nodes": [\n')
    assert err.location.line is not None
    assert "invalid JSON" in err.reason


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (graph(type="NetworkRoutes"), 'expected "NetworkGraph"'),
        (graph(nodes={"a": 1}), "must be a JSON list"),
        (graph(nodes=[{"id": ""}]), "non-empty string"),
        (graph(nodes=[{"id": "a", "properties": {"kind": "toaster"}}]), "unknown node kind 'toaster'"),
        (graph(links=[{"source": "a", "target": "zz", "cost": 1}]), "undeclared node 'zz'"),
        (
            graph(links=[{"source": "a", "target": "b", "cost": 1, "properties": {"capacity_bps": -1}}]),
            "must be > 0",
        ),
        (graph(links=[{"source": "a", "target": "b", "cost": "x"}]), "expected a number"),
        (graph(directed="yes"), "true or false"),
        (graph(netscaffold={"endpoints": [{"id": "e", "host": "a", "address": "nope"}]}), "invalid address"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_documents(doc: Any, needle: str) -> None:
    assert needle in str(_error(json.dumps(doc)))
