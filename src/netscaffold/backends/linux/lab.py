"""Lab bring-up and teardown: namespaces, veth links, addresses, HTB capacity and our nft table.

Ownership is held in two places: every lab namespace carries the tag ``netscaffold:<lab>:<node>`` as the
alias of its loopback (in the kernel, so it survives a crash of ours), and an owner file
``/run/netscaffold/<lab>.json`` records the owning process. Teardown deletes only namespaces that carry
this lab's tag, so a namespace that merely looks like ours (same prefix, no tag) survives. Nothing is
done in the root namespace but creating and deleting namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netscaffold.backends.linux import pool, tools
from netscaffold.errors import BackendError, ValidationError
from netscaffold.formats.render import iproute2 as ip_render
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render import tc as tc_render
from netscaffold.formats.render.layout import ALIAS_PREFIX, LabLayout, check_lab_name, lab_namespace_prefix
from netscaffold.formats.render.objects import KernelClass
from netscaffold.model.topology import NodeKind

STATE_DIR = Path("/run/netscaffold")
_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
)


def owner_file(lab: str) -> Path:
    return STATE_DIR / f"{lab}.json"


def journal_file(lab: str) -> Path:
    return STATE_DIR / f"{lab}.journal.json"


def lab_tag(lab: str, node_ns: str) -> str:
    return f"{ALIAS_PREFIX}{lab}:{node_ns}"


def tagged_namespaces(lab: str) -> list[str]:
    """This lab's namespaces: the right prefix and, on their loopback, this lab's tag."""
    prefix = lab_namespace_prefix(lab)
    out = []
    for netns in tools.list_namespaces():
        if not netns.startswith(prefix):
            continue
        try:
            links = tools.ip_json(netns, ["link", "show", "dev", "lo"])
        except tools.ToolError:
            continue
        alias = links[0].get("ifalias", "") if links else ""
        if alias == lab_tag(lab, netns):
            out.append(netns)
    return out


def _write_owner(lab: str, pid: int, topology_file: str | None, namespaces: list[str]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    body = {"lab": lab, "pid": pid, "topology_file": topology_file, "namespaces": namespaces}
    tmp = owner_file(lab).with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1))
    tmp.replace(owner_file(lab))


def read_owner(lab: str) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = json.loads(owner_file(lab).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return body


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lab_up(layout: LabLayout, *, owner_pid: int, topology_file: str | None = None) -> None:
    """Bring the lab up; a name clash (any of its namespaces exists) is refused before anything is made."""
    tools.require_facilities()
    existing = set(tools.list_namespaces())
    clash = sorted(ns for ns in layout.namespaces.values() if ns in existing)
    if clash or read_owner(layout.lab) is not None:
        raise ValidationError(
            f"lab name clash: {', '.join(clash) or owner_file(layout.lab)} already exists "
            "(pick another name, or `netscaffold lab down` / `repair` it)",
            element=f"lab {layout.lab!r}",
        )
    _write_owner(layout.lab, owner_pid, topology_file, sorted(layout.namespaces.values()))
    try:
        _create_namespaces(layout, missing=sorted(layout.namespaces.values()))
        build(layout)
    except BaseException:
        lab_down(layout.lab)
        raise


def _create_namespaces(layout: LabLayout, missing: list[str]) -> None:
    if missing:
        tools.run(["ip", "-batch", "-"], "".join(f"netns add {ns}\n" for ns in missing))
    for netns in missing:
        tools.ip_batch(netns, [f"link set dev lo alias {lab_tag(layout.lab, netns)}", "link set dev lo up"])


def build(layout: LabLayout) -> None:
    """Links, addresses, forwarding, HTB roots and our nft table; idempotent (repair runs it again). A
    missing link takes a parked veth pair spanning its two namespaces when there is one (see
    :mod:`netscaffold.backends.linux.pool`), else a new pair; one ``ip`` batch per namespace."""
    listing = pool.list_links(layout.namespaces.values())
    present = {node: {link["ifname"] for link in listing[ns]} for node, ns in layout.namespaces.items()}
    missing = [(a, b) for a, b in layout.pairs if layout.port(a, b).ifname not in present[a]]
    renames, served = pool.unpark_lines(layout, missing, listing)
    lines: dict[str, list[str]] = defaultdict(list)
    for netns, renamed in renames.items():
        lines[netns] += renamed
    for a, b in missing:
        if (a, b) in served:
            continue
        port = layout.port(a, b)
        if port.ifname in present[b]:  # half a pair: the other end went with a deleted namespace
            tools.ip_batch(layout.namespace(b), [f"link delete dev {port.ifname}"])
        lines[layout.namespace(a)].append(ip_render.veth_line(port.ifname, port.ifname, layout.namespace(b)))
    for netns in sorted(lines):
        tools.ip_batch(netns, lines[netns])
    for node, netns in sorted(layout.namespaces.items()):
        _configure_node(layout, node, netns)


def park_links(layout: LabLayout, links: list[tuple[str, str]]) -> list[pool.ParkedPair]:
    """The lab's "link delete": the links between these node pairs leave service, their veth pairs
    parked for a later :func:`build` (about 1 ms a pair instead of a 16 ms delete)."""
    return pool.park_links(layout, links)


def _configure_node(layout: LabLayout, node: str, netns: str) -> None:
    lines = [f"link set dev lo alias {lab_tag(layout.lab, netns)}"]
    lines += ip_render.loopback_lines(layout.endpoint_addresses(node))
    tc_lines: list[str] = []
    qdiscs = _tc_json(netns, ["qdisc", "show"])
    rooted = {q["dev"] for q in qdiscs if q.get("kind") == "htb" and q.get("root")}
    for port in layout.egress_ports(node):
        lines += ip_render.link_setup_lines(port.ifname, f"{ALIAS_PREFIX}{port.peer}", port.v4, port.v6)
        link = layout.topology.links.get((node, port.peer))
        if link is not None:
            roots = tc_render.root_lines(port.ifname, link.capacity_bps)
            tc_lines += roots if port.ifname not in rooted else roots[1:]  # HTB cannot change in place
            rate = tc_render.bytes_per_s(link.capacity_bps)
            default = KernelClass(node, port.ifname, tc_render.DEFAULT_MINOR, rate, rate)
            tc_lines.append(tc_render.class_line(default, "replace"))
    # the namespace's defaults reach only interfaces made after them: the veths are already here, and
    # their link-local addresses would wait a second or two for duplicate address detection
    per_port = [f"net.ipv6.conf.{port.ifname}.accept_dad=0" for port in layout.egress_ports(node)]
    tools.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *_SYSCTLS, *per_port])
    tools.ip_batch(netns, lines)
    tools.tc_batch(netns, tc_lines)
    is_firewall = layout.topology.node(node).kind is NodeKind.FIREWALL
    commands = nft_render.table_commands(forward_policy="drop" if is_firewall else "accept")
    tools.nft_json(netns, nft_render.document(commands))


def _tc_json(netns: str, args: list[str]) -> list[dict[str, Any]]:
    text = tools.run(["tc", "-n", netns, "-j", *args])
    return list(json.loads(text)) if text.strip() else []


def lab_down(lab: str) -> list[str]:
    """Delete this lab's tagged namespaces (and with them every veth, route, rule, class and nft table
    inside), the owner file and the journal. Returns the namespaces deleted."""
    check_lab_name(lab)
    doomed = tagged_namespaces(lab)
    if doomed:
        tools.run(["ip", "-batch", "-"], "".join(f"netns delete {ns}\n" for ns in doomed))
    for path in (owner_file(lab), journal_file(lab)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return doomed


@dataclass(frozen=True)
class LabStatus:
    lab: str
    namespaces: list[str]
    owner_pid: int | None
    owner_alive: bool
    topology_file: str | None

    @property
    def stale(self) -> bool:
        return not self.owner_alive

    def as_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "namespaces": self.namespaces,
            "owner_pid": self.owner_pid,
            "owner_alive": self.owner_alive,
            "stale": self.stale,
            "topology_file": self.topology_file,
        }


def lab_status(lab: str) -> LabStatus:
    check_lab_name(lab)
    owner = read_owner(lab)
    pid = int(owner["pid"]) if owner else None
    return LabStatus(
        lab=lab,
        namespaces=tagged_namespaces(lab),
        owner_pid=pid,
        owner_alive=pid is not None and pid_alive(pid),
        topology_file=owner.get("topology_file") if owner else None,
    )


def known_labs() -> list[str]:
    """Labs with an owner file or a tagged namespace."""
    names = {path.stem for path in STATE_DIR.glob("*.json") if not path.name.endswith(".journal.json")}
    for netns in tools.list_namespaces():
        parts = netns.split("-")
        if len(parts) >= 3 and parts[0] == "ns":
            names.add(parts[1])
    return sorted(name for name in names if _valid(name))


def _valid(name: str) -> bool:
    try:
        check_lab_name(name)
    except ValidationError:
        return False
    return True


def down_stale() -> list[str]:
    """Tear down every lab whose owning process is gone (or that has no owner file but tagged namespaces)."""
    removed = []
    for lab in known_labs():
        status = lab_status(lab)
        if status.stale and (status.namespaces or status.owner_pid is not None):
            lab_down(lab)
            removed.append(lab)
    return removed


def repair_namespaces(layout: LabLayout, owner_pid: int, topology_file: str | None) -> list[str]:
    """Recreate what is missing of the lab (namespaces, links, addresses, roots, table); returns the
    namespaces that had to be recreated."""
    tools.require_facilities()
    existing = set(tools.list_namespaces())
    tagged = set(tagged_namespaces(layout.lab))
    foreign = sorted(ns for ns in layout.namespaces.values() if ns in existing and ns not in tagged)
    if foreign:
        raise BackendError(f"namespaces {foreign} exist but are not this lab's: refusing to adopt them")
    missing = sorted(ns for ns in layout.namespaces.values() if ns not in existing)
    _write_owner(layout.lab, owner_pid, topology_file, sorted(layout.namespaces.values()))
    _create_namespaces(layout, missing)
    build(layout)
    return missing
