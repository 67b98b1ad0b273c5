"""The veth pool: a lab link that goes away is parked, not deleted, and a link that comes back between
the same two namespaces takes a parked pair instead of creating one.

Deleting a veth pair costs one RCU grace period in the kernel (about 16 ms, 25 ms on a loaded 2-core
machine: measured in docs/linux.md); setting it down and renaming it costs about 1 ms, and creating one
about 2 ms. Moving an end into a separate pool namespace would cost a grace period per end (measured at
18 ms), so parked pairs stay where they are: each end is down, without addresses or qdisc, named
``pk<ifindex>`` and tagged with an alias naming this lab and its peer (``netscaffold:pool:<lab>:<peer
namespace>:<peer name>``). Only a pair whose two ends name each other that way is taken back, so a
decoy interface that merely looks parked is never adopted. Parked pairs live in the lab's namespaces,
so ``lab down`` (which deletes them) removes them with everything else.
"""

from __future__ import annotations

import errno
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.netlink import (
    RTM_DELADDR,
    RTM_DELQDISC,
    Message,
    NetlinkWriter,
    link_park_messages,
)
from netscaffold.backends.linux.session import open_in_namespace
from netscaffold.errors import BackendError, ValidationError
from netscaffold.formats.render.layout import ALIAS_PREFIX, LabLayout

POOL_TAG = f"{ALIAS_PREFIX}pool:"
PARKED_PREFIX = "pk"
Listing = Mapping[str, Sequence[Mapping[str, Any]]]
"""Per namespace, ``ip -j link show`` of it."""


@dataclass(frozen=True)
class ParkedPair:
    """A parked veth pair: ``ifname_a`` in ``netns_a``, its peer ``ifname_b`` in ``netns_b``."""

    netns_a: str
    ifname_a: str
    netns_b: str
    ifname_b: str


def park_tag(lab: str, peer_netns: str, peer_ifname: str) -> str:
    return f"{POOL_TAG}{lab}:{peer_netns}:{peer_ifname}"


def list_links(namespaces: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    return {netns: list(tools.ip_json(netns, ["link", "show"])) for netns in sorted(set(namespaces))}


def parked_pairs(lab: str, listing: Listing) -> list[ParkedPair]:
    """The parked pairs of ``lab`` among the listed namespaces (both ends listed, naming each other)."""
    ends: dict[tuple[str, str], tuple[str, str]] = {}
    prefix = f"{POOL_TAG}{lab}:"
    for netns, links in listing.items():
        for link in links:
            alias = str(link.get("ifalias", ""))
            if alias.startswith(prefix) and str(link.get("ifname", "")).startswith(PARKED_PREFIX):
                peer_netns, _, peer_ifname = alias[len(prefix) :].rpartition(":")
                ends[(netns, str(link["ifname"]))] = (peer_netns, peer_ifname)
    pairs = []
    for (netns, ifname), peer in sorted(ends.items()):
        if ends.get(peer) == (netns, ifname) and (netns, ifname) < peer:
            pairs.append(ParkedPair(netns, ifname, *peer))
    return pairs


def park_links(layout: LabLayout, links: Iterable[tuple[str, str]]) -> list[ParkedPair]:
    """Take the lab links between these node pairs out of service (the lab's "link delete"): each veth
    end loses its qdisc, is set down, loses its addresses, and is renamed and tagged as parked. One bulk
    of netlink messages per namespace involved, sent from this process. Returns the pairs parked."""
    chosen = sorted({tuple(sorted(pair)) for pair in links})
    for a, b in chosen:
        layout.port(a, b)  # a ValidationError naming the node when there is no such link
    writers = {}
    try:
        for netns in sorted({layout.namespace(node) for pair in chosen for node in pair}):
            writers[netns] = open_in_namespace(netns, NetlinkWriter.open_here)
        index = {netns: writer.links() for netns, writer in writers.items()}
        messages: dict[str, list[Message]] = defaultdict(list)
        parked = []
        for a, b in chosen:
            ends = []
            for node, peer in ((a, b), (b, a)):
                netns, port = layout.namespace(node), layout.port(node, peer)
                if port.ifname not in index[netns]:
                    raise ValidationError(f"link {port.ifname} is not there", element=f"node {node!r}")
                ifindex = index[netns][port.ifname]
                ends.append((netns, ifindex, f"{PARKED_PREFIX}{ifindex}", [port.v4, port.v6]))
            for mine, theirs in ((ends[0], ends[1]), (ends[1], ends[0])):
                netns, ifindex, name, addresses = mine
                alias = park_tag(layout.lab, theirs[0], theirs[2])
                messages[netns] += link_park_messages(ifindex, name, alias, addresses)
            parked.append(ParkedPair(ends[0][0], ends[0][2], ends[1][0], ends[1][2]))
        for netns, batch in sorted(messages.items()):
            _send(netns, writers[netns], batch)
    finally:
        for writer in writers.values():
            writer.close()
    return parked


_FINE = frozenset({errno.ENOENT, errno.EINVAL, errno.EADDRNOTAVAIL})
"""Refusals that mean "already so": no root qdisc, no such address."""


def _send(netns: str, writer: NetlinkWriter, batch: list[Message]) -> None:
    for at, code in writer.bulk(batch):
        if batch[at][0] in (RTM_DELQDISC, RTM_DELADDR) and code in _FINE:
            continue
        raise BackendError(f"parking a link in {netns}: {os.strerror(code)}", backend="linux")


def unpark_lines(
    layout: LabLayout, missing: Iterable[tuple[str, str]], listing: Listing
) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """Renames (per namespace) that give each missing link (a, b) a parked pair already spanning its
    two namespaces, and the links so served; the others need a new pair."""
    free: dict[tuple[str, str], list[ParkedPair]] = defaultdict(list)
    for pair in parked_pairs(layout.lab, listing):
        free[(pair.netns_a, pair.netns_b)].append(pair)
    lines: dict[str, list[str]] = defaultdict(list)
    served = set()
    for a, b in missing:
        netns_a, netns_b = layout.namespace(a), layout.namespace(b)
        ifname = layout.port(a, b).ifname
        if free.get((netns_a, netns_b)):
            pair = free[(netns_a, netns_b)].pop()
            lines[netns_a].append(f"link set dev {pair.ifname_a} name {ifname}")
            lines[netns_b].append(f"link set dev {pair.ifname_b} name {layout.port(b, a).ifname}")
        elif free.get((netns_b, netns_a)):
            pair = free[(netns_b, netns_a)].pop()
            lines[netns_b].append(f"link set dev {pair.ifname_a} name {layout.port(b, a).ifname}")
            lines[netns_a].append(f"link set dev {pair.ifname_b} name {ifname}")
        else:
            continue
        served.add((a, b))
    return dict(lines), served
