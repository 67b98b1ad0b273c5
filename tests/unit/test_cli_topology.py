"""``netscaffold topology validate | generate | convert`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netscaffold.cli.main import main
from netscaffold.formats.loader import load_topology


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


ZOO = """<?xml version="1.0" encoding="utf-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="LinkSpeedRaw" attr.type="double" for="edge" id="d1" />
  <graph edgedefault="undirected">
    <node id="0" />
    <node id="1" />
    <node id="2" />
    <node id="3" />
    <edge source="0" target="1"><data key="d1">1e10</data></edge>
    <edge source="0" target="1"><data key="d1">1e10</data></edge>
    <edge source="1" target="2" />
    {extra}
  </graph>
</graphml>
"""
SNDLIB_NEGATIVE = """<?xml version="1.0"?>
<network xmlns="http://sndlib.zib.de/network">
 <networkStructure>
  <nodes><node id="A"/><node id="B"/></nodes>
  <links>
   <link id="AB"><source>A</source><target>B</target>
    <preInstalledModule><capacity>-40.0</capacity></preInstalledModule>
   </link>
  </links>
 </networkStructure>
</network>
"""
NETJSON_DUPLICATE = '{"type": "NetworkGraph", "nodes": [{"id": "r1"}, {"id": "r1"}], "links": []}'


def test_validate_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "zoo.graphml"
    path.write_text(ZOO.format(extra=""))
    code, out, err = run_cli(["topology", "validate", str(path), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert {
        k: doc[k] for k in ("nodes", "links", "components", "defaulted_capacities", "merged_parallel_links")
    } == {
        "nodes": 4,
        "links": 4,
        "components": 2,
        "defaulted_capacities": 2,
        "merged_parallel_links": 2,
    }
    assert doc["capacity_bps"] == {"min": 1e9, "median": 1.05e10, "max": 2e10}
    assert doc["schema_version"] == 1
    assert len(doc["inputs"][str(path)]) == 64
    assert "1 edge(s) gave no capacity" in err  # warnings go to stderr
    assert "merged 2 parallel link(s)" in err


def test_validate_table_and_default_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "zoo.graphml"
    path.write_text(ZOO.format(extra=""))
    code, out, _ = run_cli(["topology", "validate", str(path), "--default-capacity-bps", "1e8"], capsys)
    assert code == 0
    assert "100 Mbit/s / 10.05 Gbit/s / 20 Gbit/s" in out


BAD_INPUTS = {
    "truncated GraphML": ("cut.graphml", ZOO.format(extra="")[:-60], ["cut.graphml:", "malformed XML"]),
    "undeclared node": (
        "ghost.graphml",
        ZOO.format(extra='<edge source="2" target="99" />'),
        ["ghost.graphml:12: edge 2->99: refers to undeclared node '99'"],
    ),
    "negative SNDlib capacity": (
        "neg.xml",
        SNDLIB_NEGATIVE,
        ["neg.xml:7: link 'AB': field 'capacity': negative capacity -40"],
    ),
    "duplicate NetJSON ids": (
        "dup.json",
        NETJSON_DUPLICATE,
        ["dup.json: nodes[1]: duplicate node id 'r1' (first at nodes[0])"],
    ),
    "empty file": ("empty.graphml", "", ["empty.graphml: empty file"]),
    "binary file": ("blob.json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, ["blob.json: binary file"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    name, content, needles = BAD_INPUTS[case]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, out, err = run_cli(["topology", "validate", str(path)], capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("netscaffold: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_missing_file_and_bad_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["topology", "validate", str(tmp_path / "none.graphml")], capsys)
    assert (code, err.strip()) == (2, f"netscaffold: error: {tmp_path / 'none.graphml'}: file does not exist")
    path = tmp_path / "x.json"
    path.write_text(NETJSON_DUPLICATE)
    code, _, err = run_cli(["topology", "validate", str(path), "--format", "dot"], capsys)
    assert code == 2
    assert "unknown format 'dot'" in err


@pytest.mark.parametrize(
    ("args", "nodes", "hosts"),
    [
        (
            ["leaf-spine", "--spines", "2", "--leaves", "3", "--hosts-per-leaf", "2", "--link-bps", "4e10"],
            11,
            6,
        ),
        (["fat-tree", "--k", "4"], 36, 16),
    ],
)
@pytest.mark.parametrize("suffix", [".json", ".graphml"])
def test_generate_then_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], nodes: int, hosts: int, suffix: str
) -> None:
    out_path = tmp_path / f"gen{suffix}"
    code, out, _ = run_cli(
        ["topology", "generate", *args, "--out", str(out_path), "--endpoints-per-host", "1"], capsys
    )
    assert code == 0, out
    assert f"wrote {out_path}" in out
    topo = load_topology(out_path)
    assert (len(topo.nodes), len(topo.hosts()), len(topo.endpoints)) == (nodes, hosts, hosts)
    code, out, _ = run_cli(["topology", "validate", str(out_path), "--json"], capsys)
    assert json.loads(out)["nodes"] == nodes


def test_generate_refuses_unknown_kind_and_bad_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["topology", "generate", "torus", "--out", str(tmp_path / "t.json")], capsys)
    assert code == 2
    assert "unknown generator 'torus'" in err
    code, _, err = run_cli(
        ["topology", "generate", "fat-tree", "--k", "5", "--out", str(tmp_path / "t.json")], capsys
    )
    assert code == 2
    assert "field 'k': must be even" in err


def test_convert_keeps_the_topology(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "zoo.graphml"
    source.write_text(ZOO.format(extra=""))
    target = tmp_path / "zoo.json"
    code, out, _ = run_cli(["topology", "convert", str(source), str(target)], capsys)
    assert code == 0, out
    assert load_topology(target).fingerprint_data() == load_topology(source).fingerprint_data()
