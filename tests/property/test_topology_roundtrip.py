"""import(export(topology)) == topology for NetJSON and GraphML, on arbitrary topologies."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netscaffold.formats.loader import load_topology, save_topology
from netscaffold.model.topology import Endpoint, Link, Node, NodeKind, Topology

# Printable text, including XML/JSON specials (<, &, quotes) and non-ASCII; no control characters,
# which XML 1.0 cannot carry.
TEXT = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x85\u2028\u2029"),
    min_size=1,
    max_size=12,
)
POSITIVE = st.floats(min_value=1e-9, max_value=1e15, allow_nan=False, allow_infinity=False)
COORD = st.none() | st.floats(min_value=-180, max_value=180, allow_nan=False)


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    ids = draw(st.lists(TEXT, min_size=2, max_size=8, unique=True))
    nodes = [
        Node(
            node_id,
            draw(st.sampled_from(list(NodeKind))),
            draw(COORD),
            draw(COORD),
            draw(st.none() | TEXT),
        )
        for node_id in ids
    ]
    pairs = [(a, b) for a in ids for b in ids if a != b]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=16))
    links = [
        Link(
            a,
            b,
            draw(POSITIVE),
            draw(st.just(0.0) | POSITIVE),
            draw(POSITIVE),
            draw(st.booleans()),
        )
        for a, b in chosen
    ]
    endpoint_ids = draw(st.lists(TEXT, unique=True, max_size=5))
    endpoints = [
        Endpoint(eid, draw(st.sampled_from(ids)), str(draw(st.ip_addresses())), draw(st.just("") | TEXT))
        for eid in endpoint_ids
    ]
    return Topology.build(nodes, links, endpoints, name=draw(TEXT))


def _descriptive(topology: Topology) -> dict[str, object]:
    """Everything fingerprint_data leaves out that the formats still carry."""
    return {
        "name": topology.name,
        "labels": {n.id: n.label for n in topology.nodes.values()},
        "defaulted": {k: lk.capacity_defaulted for k, lk in topology.links.items()},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topology=topologies(), suffix=st.sampled_from([".json", ".graphml"]))
def test_import_of_export_is_identity(topology: Topology, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"t{suffix}"
        save_topology(topology, path)
        again = load_topology(path)
    assert again.fingerprint_data() == topology.fingerprint_data()
    assert _descriptive(again) == _descriptive(topology)
    assert again.warnings == ()
