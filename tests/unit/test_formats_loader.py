"""load_topology: format detection, file-level problems, save by suffix."""

from __future__ import annotations

from pathlib import Path

import pytest

from netscaffold.errors import TopologyError
from netscaffold.formats.generators import leaf_spine
from netscaffold.formats.loader import detect_format, load_topology, save_topology

GRAPHML = (
    b'<?xml version="1.0"?>\n<graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
    b'<graph edgedefault="undirected"><node id="a"/><node id="b"/>'
    b'<edge source="a" target="b"/></graph></graphml>'
)
SNDLIB = (
    b'<?xml version="1.0"?>\n<network xmlns="http://sndlib.zib.de/network"><networkStructure>'
    b'<nodes><node id="a"/><node id="b"/></nodes>'
    b'<links><link id="l"><source>a</source><target>b</target></link></links></networkStructure></network>'
)
NETJSON = (
    b'{"type": "NetworkGraph", "nodes": [{"id": "a"}, {"id": "b"}], '
    b'"links": [{"source": "a", "target": "b", "cost": 1}]}'
)
ROCKETFUEL = (
    b"Node_num: 2\tEdge_num: 1\nLink_index\tSource\tDestination\tWeights\tBandwidth\n0\t0\t1\t1\t100\n"
)
LINKCSV = b"src,dst,capacity_kbps\na,b,1000\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (GRAPHML, "graphml"),
        (SNDLIB, "sndlib"),
        (NETJSON, "netjson"),
        (ROCKETFUEL, "rocketfuel"),
        (LINKCSV, "abilene-csv"),
    ],
)
def test_detection_by_content_whatever_the_suffix(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "topology.dat"
    path.write_bytes(data)
    assert detect_format(path, data) == expected
    topo = load_topology(path)
    assert len(topo.nodes) == 2
    assert load_topology(path, expected).fingerprint_data() == topo.fingerprint_data()


def test_suffix_decides_when_content_does_not(tmp_path: Path) -> None:
    path = tmp_path / "broken.graphml"
    path.write_text("hello")
    with pytest.raises(TopologyError, match="malformed XML") as info:
        load_topology(path)
    assert info.value.location.file == str(path)


def _error(path: Path, fmt: str = "auto") -> TopologyError:
    with pytest.raises(TopologyError) as info:
        load_topology(path, fmt)
    return info.value


def test_file_level_problems(tmp_path: Path) -> None:
    assert str(_error(tmp_path / "nope.json")).endswith("nope.json: file does not exist")
    empty = tmp_path / "empty.graphml"
    empty.write_text("  \n")
    assert str(_error(empty)).endswith("empty.graphml: empty file")
    binary = tmp_path / "blob.graphml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert str(_error(binary)).endswith("blob.graphml: binary file, not a topology format")
    assert "is a directory" in str(_error(tmp_path))
    unknown = tmp_path / "x.dat"
    unknown.write_text("what is this")
    assert "cannot tell the topology format" in str(_error(unknown))
    assert "unknown format 'yaml'" in str(_error(unknown, "yaml"))


def test_model_errors_get_the_file(tmp_path: Path) -> None:
    path = tmp_path / "loop.json"
    path.write_bytes(NETJSON.replace(b'"target": "b"', b'"target": "a"'))
    err = _error(path)
    assert err.location.file == str(path)
    assert "self-loop" in err.reason


def test_save_by_suffix(tmp_path: Path) -> None:
    topo = leaf_spine(1, 2, 1, 1e9)
    assert save_topology(topo, tmp_path / "t.json") == "netjson"
    assert save_topology(topo, tmp_path / "t.graphml") == "graphml"
    with pytest.raises(TopologyError, match="cannot tell the output format"):
        save_topology(topo, tmp_path / "t.yaml")
    with pytest.raises(TopologyError, match="cannot write"):
        save_topology(topo, tmp_path / "missing" / "t.json")
