"""GraphML import (Topology Zoo conventions, our own export) and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from netscaffold.errors import TopologyError
from netscaffold.formats.graphml import read_graphml
from netscaffold.model.topology import NodeKind

HEAD = """<?xml version="1.0" encoding="utf-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="label" attr.type="string" for="node" id="d0" />
  <key attr.name="Longitude" attr.type="double" for="node" id="d1" />
  <key attr.name="Latitude" attr.type="double" for="node" id="d2" />
  <key attr.name="LinkSpeedRaw" attr.type="double" for="edge" id="d3" />
  <key attr.name="label" attr.type="string" for="graph" id="d4" />
"""


def zoo(body: str, edgedefault: str = "undirected") -> bytes:
    return (HEAD + f'  <graph edgedefault="{edgedefault}">\n{body}  </graph>\n</graphml>\n').encode()


NODES = """    <data key="d4">Tiny</data>
    <node id="0"><data key="d0">Sydney</data><data key="d1">151.2</data><data key="d2">-33.9</data></node>
    <node id="1"><data key="d0">Perth</data><data key="d1">115.9</data><data key="d2">-31.95</data></node>
    <node id="2" />
"""


def test_zoo_speed_defaults_direction_and_coordinates() -> None:
    body = NODES + (
        '    <edge source="0" target="1"><data key="d3">10000000000.0</data></edge>\n'
        '    <edge source="1" target="2" />\n'
    )
    topo = read_graphml(zoo(body), Path("tiny.graphml"), default_capacity_bps=2e9)
    assert topo.name == "Tiny"
    assert len(topo.links) == 4  # undirected: both directions
    assert topo.link("0", "1").capacity_bps == 1e10
    assert topo.link("1", "0").capacity_bps == 1e10
    assert not topo.link("0", "1").capacity_defaulted
    assert topo.link("2", "1").capacity_bps == 2e9
    assert topo.link("2", "1").capacity_defaulted
    assert any("1 edge(s) gave no capacity" in w for w in topo.warnings)
    sydney = topo.node("0")
    assert (sydney.longitude, sydney.latitude, sydney.label, sydney.kind) == (
        151.2,
        -33.9,
        "Sydney",
        NodeKind.ROUTER,
    )
    # Sydney-Perth is about 3,290 km of great circle: about 16.4 ms in fibre.
    assert topo.link("0", "1").delay_s == pytest.approx(0.01645, rel=0.01)
    assert topo.link("1", "2").delay_s == 0.0  # node 2 has no coordinates


def test_parallel_edges_merge_and_self_loops_drop() -> None:
    body = NODES + (
        '    <edge source="0" target="1"><data key="d3">1e9</data></edge>\n'
        '    <edge source="0" target="1"><data key="d3">2e9</data></edge>\n'
        '    <edge source="2" target="2" />\n'
    )
    topo = read_graphml(zoo(body), Path("p.graphml"))
    assert topo.link("0", "1").capacity_bps == 3e9
    assert topo.merged_parallel_links == 2  # one per direction
    assert len(topo.links) == 2
    assert any("self-loop" in w for w in topo.warnings)


def test_directed_edgedefault_and_per_edge_override() -> None:
    body = NODES + '    <edge source="0" target="1" />\n    <edge source="1" target="2" directed="false" />\n'
    topo = read_graphml(zoo(body, "directed"), Path("d.graphml"))
    assert set(topo.links) == {("0", "1"), ("1", "2"), ("2", "1")}


def _error(data: bytes) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        read_graphml(data, Path("bad.graphml"))
    return info.value


def test_truncated_file_names_line() -> None:
    data = zoo(NODES + '    <edge source="0" target="1" />\n')[:-40]
    err = _error(data)
    assert err.location.file == "bad.graphml"
    assert err.location.line is not None
    assert "malformed XML" in err.reason


def test_edge_to_undeclared_node_names_line_and_node() -> None:
    err = _error(zoo(NODES + '    <edge source="0" target="9" />\n'))
    assert err.location.line == 13
    assert "undeclared node '9'" in str(err)
    assert "edge 0->9" in str(err)


def test_duplicate_node_and_negative_speed() -> None:
    assert "duplicate node id" in str(_error(zoo(NODES + '    <node id="1" />\n')))
    err = _error(zoo(NODES + '    <edge source="0" target="1"><data key="d3">-5</data></edge>\n'))
    assert err.location.field == "LinkSpeedRaw"
    assert "must be > 0" in err.reason


def test_undeclared_key() -> None:
    err = _error(zoo(NODES + '    <node id="7"><data key="zz">x</data></node>\n'))
    assert "undeclared key 'zz'" in str(err)


def test_doctype_and_entities_are_refused() -> None:
    bomb = b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">]>\n<graphml><graph/></graphml>'
    err = _error(bomb)
    assert "DOCTYPE" in err.reason


def test_not_graphml_root() -> None:
    assert "not <graphml>" in str(_error(b"<network/>"))
    assert "no <graph>" in str(_error(b"<graphml/>"))
