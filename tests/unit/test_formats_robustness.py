"""Damaged files (cut short, bytes overwritten, a slice removed) load, or fail with one error line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.errors import ValidationError
from netscaffold.formats.generators import attach_endpoints, leaf_spine
from netscaffold.formats.loader import load_topology, save_topology
from netscaffold.formats.traffic import load_traffic, save_traffic_csv, save_traffic_npz
from netscaffold.model.traffic import TrafficMatrixSeries

SNDLIB = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<network xmlns="http://sndlib.zib.de/network"><meta><unit>MBITPERSEC</unit></meta><networkStructure>
<nodes coordinatesType="geographical"><node id="A"><coordinates><x>1.0</x><y>2.0</y></coordinates></node>
<node id="B"><coordinates><x>3.0</x><y>4.0</y></coordinates></node></nodes>
<links><link id="L"><source>A</source><target>B</target><preInstalledModule><capacity>40.0</capacity>
</preInstalledModule></link></links></networkStructure></network>
"""
ROCKETFUEL = (
    b"Node_num: 2\tEdge_num: 2\nLink_index\tSource\tDestination\tWeights\tBandwidth\n"
    b"0\t0\t1\t4\t250\n1\t1\t0\t4\t250\n"
)


def _seeds() -> dict[str, bytes]:
    seeds = {
        ".xml": SNDLIB,
        ".txt": ROCKETFUEL,
        ".csv": b"src,dst,capacity_kbps,ospf_weight\na,b,10,1\nb,a,10,2\n",
    }
    topology = attach_endpoints(leaf_spine(2, 2, 1, 1e9))
    times = np.datetime64("2020-01-01T00:00") + np.arange(4) * np.timedelta64(1, "m")
    series = TrafficMatrixSeries(np.arange(36.0).reshape(4, 3, 3), ("a", "b", "c"), 60.0, "Mbit/s", times)
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".json", ".graphml"):
            save_topology(topology, Path(folder) / f"t{suffix}")
            seeds[suffix] = (Path(folder) / f"t{suffix}").read_bytes()
        save_traffic_npz(series, Path(folder) / "tm.npz")
        save_traffic_csv(series, Path(folder) / "tm.csv")
        seeds["tm.npz"] = (Path(folder) / "tm.npz").read_bytes()
        seeds["tm.csv"] = (Path(folder) / "tm.csv").read_bytes()
    return seeds


SEEDS = _seeds()


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    at = draw(st.integers(0, len(data) - 1))
    how = draw(st.sampled_from(["cut", "overwrite", "remove"]))
    if how == "cut":
        data = data[:at]
    elif how == "overwrite":
        data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
    else:
        del data[at : at + draw(st.integers(1, 64))]
    return name, bytes(data)


@settings(max_examples=250, deadline=None)
@given(case=damaged())
def test_damaged_files_never_escape_as_other_errors(case: tuple[str, bytes]) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (name if name.startswith("tm") else f"topology{name}")
        path.write_bytes(data)
        load = load_traffic if name.startswith("tm") else load_topology
        message = None
        try:
            load(path)
        except ValidationError as exc:
            message = str(exc)
    if message is not None:
        assert "\n" not in message
        assert str(path) in message


def test_names_with_line_breaks_are_escaped_in_errors(tmp_path: Path) -> None:
    graphml = tmp_path / "t.graphml"
    graphml.write_text('<graphml><graph><node id="a"/><edge source="a" target="x&#10;y"/></graph></graphml>')
    npz = tmp_path / "t.npz"
    with npz.open("wb") as handle:
        np.savez(handle, tm=np.full((1, 2, 2), np.nan), nodes=np.array(["p\u2028q", "r"]), interval_s=1)
    for load, path, needle in ((load_topology, graphml, "x\\ny"), (load_traffic, npz, "p\\u2028q")):
        message = ""
        try:
            load(path)
        except ValidationError as exc:
            message = str(exc)
        assert len(message.splitlines()) == 1
        assert needle in message
