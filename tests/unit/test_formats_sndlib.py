"""SNDlib network XML import."""

from __future__ import annotations

from pathlib import Path

import pytest

from netscaffold.errors import TopologyError
from netscaffold.formats.sndlib import read_sndlib


def sndlib(links: str, unit: str = "", coords: str = "geographical") -> bytes:
    meta = f"<meta><unit>{unit}</unit></meta>" if unit else ""
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<network xmlns="http://sndlib.zib.de/network" version="1.0">{meta}
 <networkStructure>
  <nodes coordinatesType="{coords}">
   <node id="A"><coordinates><x>-84.38</x><y>33.75</y></coordinates></node>
   <node id="B"><coordinates><x>-87.62</x><y>41.83</y></coordinates></node>
   <node id="C"><coordinates><x>-105.0</x><y>40.75</y></coordinates></node>
  </nodes>
  <links>
{links}
  </links>
 </networkStructure>
</network>
""".encode("iso-8859-1")


def link(link_id: str, src: str, dst: str, inner: str) -> str:
    return f'   <link id="{link_id}"><source>{src}</source><target>{dst}</target>{inner}</link>'


PRE = "<preInstalledModule><capacity>{}</capacity><cost>0.0</cost></preInstalledModule>"
ADD = "<additionalModules>{}</additionalModules>"
MOD = "<addModule><capacity>{}</capacity><cost>1.0</cost></addModule>"


def test_preinstalled_else_smallest_module_in_mbit() -> None:
    links = "\n".join(
        [
            link("L1", "A", "B", PRE.format("9920.0") + ADD.format(MOD.format("40000.0"))),
            link("L2", "B", "C", ADD.format(MOD.format("622.0") + MOD.format("155.0"))),
        ]
    )
    topo = read_sndlib(sndlib(links), Path("net.xml"))
    assert topo.name == "net"
    assert topo.link("A", "B").capacity_bps == 9.92e9
    assert topo.link("B", "A").capacity_bps == 9.92e9  # undirected: both directions
    assert topo.link("C", "B").capacity_bps == 155e6
    assert topo.node("A").longitude == -84.38
    assert topo.link("A", "B").delay_s > 0.003  # ~950 km of fibre


def test_listed_reverse_means_directed_and_unit_meta() -> None:
    links = "\n".join(
        [
            link("fwd", "A", "B", ADD.format(MOD.format("1.0E9"))),
            link("bwd", "B", "A", ADD.format(MOD.format("2.0E9"))),
        ]
    )
    topo = read_sndlib(sndlib(links, unit="BITSPERSEC"), Path("d.xml"))
    assert topo.link("A", "B").capacity_bps == 1e9
    assert topo.link("B", "A").capacity_bps == 2e9
    assert topo.merged_parallel_links == 0


def test_no_module_defaults_and_pixel_coordinates_dropped() -> None:
    topo = read_sndlib(
        sndlib(link("L", "A", "C", ""), coords="pixel"), Path("p.xml"), default_capacity_bps=5e8
    )
    assert topo.link("A", "C").capacity_defaulted
    assert topo.link("A", "C").capacity_bps == 5e8
    assert topo.node("A").longitude is None
    assert topo.link("A", "C").delay_s == 0.0


def test_negative_capacity_names_line_link_and_field() -> None:
    data = sndlib(link("L9", "A", "B", PRE.format("-5.0")))
    with pytest.raises(TopologyError) as info:
        read_sndlib(data, Path("neg.xml"))
    err = info.value
    assert err.location.line == 10  # the <capacity> element
    assert err.location.element == "link 'L9'"
    assert err.location.field == "capacity"
    assert "negative capacity -5" in err.reason


@pytest.mark.parametrize(
    ("links", "unit", "needle"),
    [
        (link("L", "A", "Z", ""), "", "undeclared node 'Z'"),
        (link("L", "A", "B", PRE.format("abc")), "", "expected a number"),
        (link("L", "A", "B", ""), "FURLONGS", "unknown unit 'FURLONGS'"),
    ],
)
def test_bad_links(links: str, unit: str, needle: str) -> None:
    with pytest.raises(TopologyError, match=needle):
        read_sndlib(sndlib(links, unit=unit), Path("x.xml"))
