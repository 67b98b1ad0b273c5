"""Rocketfuel (CFR-RL) text files and the Abilene links CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from netscaffold.errors import TopologyError
from netscaffold.formats.linkcsv import read_link_csv
from netscaffold.formats.rocketfuel import read_rocketfuel

ROCKETFUEL = "Node_num: 3\tEdge_num: 4\r\nLink_index\tSource\tDestination\tWeights\tBandwidth\r\n"
ROWS = "0\t0\t1\t4\t250\r\n1\t1\t0\t4\t250\r\n2\t1\t2\t2\t500\r\n3\t2\t1\t2\t500\r\n"


def test_rocketfuel_reads_weights_as_cost_and_bandwidth_as_mbit() -> None:
    topo = read_rocketfuel(ROCKETFUEL + ROWS, Path("Tiny.txt"))
    assert list(topo.nodes) == ["0", "1", "2"]
    assert topo.link("1", "2").capacity_bps == 500e6
    assert topo.link("1", "2").cost == 2.0
    assert any("no stated unit" in w for w in topo.warnings)
    scaled = read_rocketfuel(ROCKETFUEL + ROWS, Path("Tiny.txt"), bandwidth_unit_bps=1e9)
    assert scaled.link("0", "1").capacity_bps == 250e9


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("Nodes 3\n", 1, "expected a header"),
        (ROCKETFUEL + ROWS.replace("2\t1\t2\t2\t500", "2\t1\t7\t2\t500"), 5, "not one of 0..2"),
        (ROCKETFUEL + ROWS.replace("\t250\r\n1", "\t-1\r\n1"), 3, "must be > 0"),
        (ROCKETFUEL + ROWS[:-20], 5, "expected 5 tab-separated columns"),
        (ROCKETFUEL + ROWS.split("\r\n2", maxsplit=1)[0], None, "declares 4 links but the file has 2"),
    ],
)
def test_rocketfuel_errors_name_the_line(text: str, line: int | None, needle: str) -> None:
    with pytest.raises(TopologyError, match=needle) as info:
        read_rocketfuel(text, Path("bad.txt"))
    if line is not None:
        assert info.value.location.line == line


CSV = (
    "link_index,src_index,dst_index,src,dst,ospf_weight,capacity_kbps\n"
    "0,1,0,NYC,ATL,5,9920000\n"
    "1,0,1,ATL,NYC,5,2480000\n"
)


def test_link_csv_orders_nodes_by_index_and_converts_kbps() -> None:
    topo = read_link_csv(CSV, Path("links.csv"))
    assert list(topo.nodes) == ["ATL", "NYC"]
    assert topo.link("NYC", "ATL").capacity_bps == 9.92e9
    assert topo.link("ATL", "NYC").cost == 5.0


def test_link_csv_without_indices_keeps_first_appearance() -> None:
    topo = read_link_csv("src,dst,capacity_bps\nb,a,10\na,b,10\n", Path("l.csv"))
    assert list(topo.nodes) == ["b", "a"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("src,capacity_kbps\na,1\n", "missing column 'dst'"),
        ("src,dst\na,b\n", "no capacity column"),
        ("src,dst,capacity_kbps\na,b,-3\n", "must be > 0"),
        ("src,dst,capacity_kbps\na,b\n", "expected 3 columns"),
        ("src,src_index,dst,dst_index,capacity_kbps\na,0,b,1,1\nb,2,a,0,1\n", "two indices"),
    ],
)
def test_link_csv_errors(text: str, needle: str) -> None:
    with pytest.raises(TopologyError, match=needle):
        read_link_csv(text, Path("bad.csv"))
