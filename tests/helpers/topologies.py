"""Small hand-built topologies for unit tests (the generators are tested on their own)."""

from __future__ import annotations

from netscaffold.model import Endpoint, Link, Node, NodeKind, Topology


def two_tier(
    link_bps: float = 1e9,
    *,
    firewall: bool = True,
    hosts_per_leaf: int = 2,
    firewalls: tuple[str, ...] = ("s1",),
) -> Topology:
    """Hosts under two leaves joined by two spines; the ``firewalls`` spines are firewalls when ``firewall``.

    Endpoint ``e<host>`` sits on every host with address 198.18.0.<n>.
    """
    leaves = ["l1", "l2"]
    spines = ["s1", "s2"]
    hosts = [f"h{i}" for i in range(1, 2 * hosts_per_leaf + 1)]
    nodes = [Node(h, NodeKind.HOST) for h in hosts]
    nodes += [Node(leaf, NodeKind.SWITCH) for leaf in leaves]
    nodes += [Node(s, NodeKind.FIREWALL if firewall and s in firewalls else NodeKind.SWITCH) for s in spines]
    links: list[Link] = []

    def both(a: str, b: str) -> None:
        links.extend([Link(a, b, link_bps, 1e-4), Link(b, a, link_bps, 1e-4)])

    for i, host in enumerate(hosts):
        both(host, leaves[i // hosts_per_leaf])
    for leaf in leaves:
        for spine in spines:
            both(leaf, spine)
    endpoints = [
        Endpoint(f"e{h[1:]}", h, f"198.18.0.{i + 1}", app=f"app{h[1:]}") for i, h in enumerate(hosts)
    ]
    return Topology.build(nodes, links, endpoints, name="two-tier")
