"""Lab bring-up and teardown in real network namespaces, and the veth pool: parked links come back as
the same pairs, a look-alike is not adopted, teardown leaves nothing (root)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from netscaffold.backends.linux import lab as lab_ops
from netscaffold.backends.linux import pool, tools
from netscaffold.errors import ValidationError
from netscaffold.formats.render.layout import LabLayout

from .test_linux_common import skip_without_facilities, small_topology, unique_lab

pytestmark = pytest.mark.root


@pytest.fixture
def layout() -> Iterator[LabLayout]:
    skip_without_facilities()
    lay = LabLayout.of(unique_lab(), small_topology())
    try:
        yield lay
    finally:
        lab_ops.lab_down(lay.lab)


def _ping(layout: LabLayout, node: str, address: str) -> bool:
    """Reachable: a TCP connect to a closed port is refused (a reset came back), not timed out."""
    script = f"exec 3<>/dev/tcp/{address}/9"
    proc = subprocess.run(
        ["ip", "netns", "exec", layout.namespace(node), "timeout", "2", "bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    return "refused" in proc.stderr


def test_up_creates_tagged_namespaces_links_and_capacity(layout: LabLayout) -> None:
    lab_ops.lab_up(layout, owner_pid=1)
    assert sorted(lab_ops.tagged_namespaces(layout.lab)) == sorted(layout.namespaces.values())
    port = layout.port("h1", "r1")
    assert _ping(layout, "h1", layout.port("r1", "h1").v4_address)
    qdiscs = tools.run(["tc", "-n", layout.namespace("h1"), "class", "show", "dev", port.ifname])
    assert "rate 1Gbit" in qdiscs
    routes = tools.ip_json(layout.namespace("h1"), ["route", "show"])
    assert all(r.get("dst") != "default" for r in routes), "a lab namespace has no route out"
    assert lab_ops.lab_status(layout.lab).owner_alive


def test_name_clash_is_refused_and_leaves_the_running_lab(layout: LabLayout) -> None:
    lab_ops.lab_up(layout, owner_pid=1)
    with pytest.raises(ValidationError, match="name clash"):
        lab_ops.lab_up(layout, owner_pid=1)
    assert len(lab_ops.tagged_namespaces(layout.lab)) == len(layout.namespaces)


def test_teardown_leaves_a_decoy_namespace_route_and_table(layout: LabLayout) -> None:
    decoy = f"ns-{layout.lab}-decoy"
    tools.add_namespace(decoy)
    try:
        tools.ip_batch(decoy, ["link set dev lo up", "route add 198.18.9.9/32 dev lo proto static"])
        tools.nft_json(decoy, {"nftables": [{"add": {"table": {"family": "inet", "name": "decoy"}}}]})
        lab_ops.lab_up(layout, owner_pid=1)
        removed = lab_ops.lab_down(layout.lab)
        assert sorted(removed) == sorted(layout.namespaces.values())
        assert decoy in tools.list_namespaces()
        assert not [ns for ns in tools.list_namespaces() if ns in layout.namespaces.values()]
        assert any(r["dst"] == "198.18.9.9" for r in tools.ip_json(decoy, ["route", "show"]))
        listing = json.loads(tools.run(["ip", "netns", "exec", decoy, "nft", "-j", "list", "tables"]))
        assert any(e.get("table", {}).get("name") == "decoy" for e in listing["nftables"])
    finally:
        tools.delete_namespace(decoy)


def test_down_stale_removes_labs_whose_owner_is_gone(layout: LabLayout) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    lab_ops.lab_up(layout, owner_pid=dead.pid)
    assert lab_ops.lab_status(layout.lab).stale
    assert layout.lab in lab_ops.down_stale()
    assert lab_ops.tagged_namespaces(layout.lab) == []


def test_repair_recreates_a_deleted_namespace(layout: LabLayout) -> None:
    lab_ops.lab_up(layout, owner_pid=1)
    tools.delete_namespace(layout.namespace("r2"))
    recreated = lab_ops.repair_namespaces(layout, 1, None)
    assert recreated == [layout.namespace("r2")]
    assert _ping(layout, "r1", layout.port("r2", "r1").v4_address)


def _ifindex(layout: LabLayout, node: str, peer: str) -> int:
    ifname = layout.port(node, peer).ifname
    return int(tools.ip_json(layout.namespace(node), ["link", "show", "dev", ifname])[0]["ifindex"])


def _parked(layout: LabLayout) -> list[pool.ParkedPair]:
    return pool.parked_pairs(layout.lab, pool.list_links(layout.namespaces.values()))


def test_a_parked_link_is_reused_by_the_next_build(layout: LabLayout) -> None:
    lab_ops.lab_up(layout, owner_pid=1)
    before = (_ifindex(layout, "h1", "r1"), _ifindex(layout, "r1", "h1"))
    parked = lab_ops.park_links(layout, [("r1", "h1")])
    assert parked == _parked(layout)
    assert {parked[0].netns_a, parked[0].netns_b} == {layout.namespace("h1"), layout.namespace("r1")}
    names = {link["ifname"] for link in tools.ip_json(layout.namespace("h1"), ["link", "show"])}
    assert layout.port("h1", "r1").ifname not in names
    assert not _ping(layout, "h1", layout.port("r1", "h1").v4_address)
    lab_ops.build(layout)
    assert (_ifindex(layout, "h1", "r1"), _ifindex(layout, "r1", "h1")) == before, "the same veth pair"
    assert _parked(layout) == []
    assert _ping(layout, "h1", layout.port("r1", "h1").v4_address)
    port = layout.port("h1", "r1")
    classes = tools.run(["tc", "-n", layout.namespace("h1"), "class", "show", "dev", port.ifname])
    assert "rate 1Gbit" in classes


def test_parking_an_unknown_link_is_refused(layout: LabLayout) -> None:
    lab_ops.lab_up(layout, owner_pid=1)
    with pytest.raises(ValidationError, match="no link"):
        lab_ops.park_links(layout, [("h1", "h2")])
    assert _parked(layout) == []


def test_teardown_removes_parked_pairs_and_a_look_alike_is_not_adopted(layout: LabLayout) -> None:
    lab_ops.lab_up(layout, owner_pid=1)
    h1, r1 = layout.namespace("h1"), layout.namespace("r1")
    decoy_alias = pool.park_tag(layout.lab, r1, "pk999")  # names a peer that does not exist
    tools.ip_batch(
        h1, ["link add pk998 type veth peer name pk997", f"link set dev pk998 alias {decoy_alias}"]
    )
    lab_ops.park_links(layout, [("h1", "r1"), ("r1", "r2")])
    assert len(_parked(layout)) == 2
    lab_ops.build(layout)
    assert _parked(layout) == []
    decoy = tools.ip_json(h1, ["link", "show", "dev", "pk998"])
    assert decoy, "the look-alike is left where it was"
    assert decoy[0]["ifalias"] == decoy_alias, "and as it was"
    lab_ops.park_links(layout, [("fw", "r2")])
    removed = lab_ops.lab_down(layout.lab)
    assert sorted(removed) == sorted(layout.namespaces.values())
    assert not [ns for ns in tools.list_namespaces() if ns.startswith(f"ns-{layout.lab}-")]
