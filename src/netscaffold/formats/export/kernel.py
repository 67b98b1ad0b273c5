"""Per-node kernel exports of a NetworkConfig: the objects come from the pure mapping the Linux backend
also uses (``formats.render.desired.render_config`` over ``LabLayout``: the lab's interface names and
addresses),
the text/JSON from :mod:`netscaffold.formats.render` (one renderer per tool). Nothing here runs a tool."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from netscaffold.formats.render import iproute2 as ip_render
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render import tc as tc_render
from netscaffold.formats.render.objects import (
    KernelClass,
    KernelElement,
    KernelFilter,
    KernelObject,
    KernelRoute,
    KernelRule,
)
from netscaffold.model.config import NetworkConfig
from netscaffold.model.topology import Topology


@dataclass
class NodeExport:
    """What one node's kernel holds for the config: ``ip -batch`` lines (interface addresses, routes,
    policy rules), ``tc -batch`` lines (HTB per egress, classes, filters) and an ``nft -j -f`` document."""

    node: str
    interfaces: list[str] = field(default_factory=list)
    ip_lines: list[str] = field(default_factory=list)
    tc_lines: list[str] = field(default_factory=list)
    nft_document: dict[str, Any] = field(default_factory=dict)


def export_nodes(
    topology: Topology,
    config: NetworkConfig,
    *,
    now_s: float,
    lab: str = "export",
    forward_policy: str = "accept",
) -> list[NodeExport]:
    from netscaffold.formats.render.desired import Allocation, render_config
    from netscaffold.formats.render.layout import ALIAS_PREFIX, LabLayout

    layout = LabLayout.of(lab, topology)
    objects, _ = render_config(config, layout, Allocation(), now_s)
    per_node: dict[str, list[KernelObject]] = defaultdict(list)
    for obj in objects.values():
        per_node[obj.node].append(obj)
    policy: Literal["accept", "drop"] = "drop" if forward_policy == "drop" else "accept"
    out = []
    for node in topology.nodes:
        mine = sorted(per_node.get(node, []), key=lambda o: o.ident)
        export = NodeExport(node)
        for port in layout.egress_ports(node):
            export.interfaces.append(port.ifname)
            export.ip_lines += ip_render.link_setup_lines(
                port.ifname, f"{ALIAS_PREFIX}{port.peer}", port.v4, port.v6
            )
        export.ip_lines += ip_render.loopback_lines(layout.endpoint_addresses(node))
        export.ip_lines += [ip_render.rule_line(o, "add") for o in mine if isinstance(o, KernelRule)]
        export.ip_lines += [ip_render.route_line(o, "replace") for o in mine if isinstance(o, KernelRoute)]
        for port in layout.egress_ports(node):
            export.tc_lines += tc_render.root_lines(port.ifname, topology.link(node, port.peer).capacity_bps)
        export.tc_lines += [tc_render.class_line(o, "replace") for o in mine if isinstance(o, KernelClass)]
        export.tc_lines += [tc_render.filter_line(o, "replace") for o in mine if isinstance(o, KernelFilter)]
        commands = nft_render.table_commands(forward_policy=policy)
        commands += nft_render.element_commands("add", [o for o in mine if isinstance(o, KernelElement)])
        export.nft_document = nft_render.document(commands)
        out.append(export)
    return out
