"""The lab layout: a pure function of (topology, lab name) giving every kernel name and address.

One namespace per node (``ns-<lab>-<node>``), one veth pair per adjacent node pair (``v<index>`` at both
ends, created from inside the namespaces), a /31 from 198.19.0.0/16 and a /127 from fd5c:af::/96 per link,
endpoint addresses (198.18.0.0/15 or fd00::/8, from the topology) on the loopback of their node. Nothing
here touches the system.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field

from netscaffold.errors import TopologyError, ValidationError
from netscaffold.model.topology import Endpoint, Topology

NS_PREFIX = "ns-"
LAB_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,15}")
_NODE_NAME = re.compile(r"[A-Za-z0-9_.]{1,40}")
LINK_V4 = ipaddress.IPv4Network("198.19.0.0/16")
LINK_V6 = ipaddress.IPv6Network("fd5c:af::/96")
LAB_V4 = ipaddress.IPv4Network("198.18.0.0/15")
LAB_V6 = ipaddress.IPv6Network("fd00::/8")
ALIAS_PREFIX = "netscaffold:"


def check_lab_name(name: str) -> str:
    if not LAB_NAME.fullmatch(name):
        raise ValidationError(
            "lab name must be 1-16 characters of a-z, 0-9 and _ (starting with a letter or digit)",
            element=f"lab {name!r}",
        )
    return name


def kernel_address(address: str) -> str:
    """An address as the kernel spells it (``fd00::1`` for ``fd00:0::1``): what packet headers, dumps
    and conntrack give back."""
    return str(ipaddress.ip_address(address))


def lab_namespace_prefix(lab: str) -> str:
    return f"{NS_PREFIX}{lab}-"


@dataclass(frozen=True, slots=True)
class LinkPort:
    """One end of a lab link: the interface on ``node`` facing ``peer`` and its addresses."""

    node: str
    peer: str
    ifname: str
    v4: str
    v6: str

    @property
    def v4_address(self) -> str:
        return self.v4.split("/")[0]

    @property
    def v6_address(self) -> str:
        return self.v6.split("/")[0]


@dataclass(frozen=True)
class LabLayout:
    lab: str
    topology: Topology
    namespaces: dict[str, str]
    ports: dict[tuple[str, str], LinkPort]
    """(node, peer) -> the port on node facing peer; both directions of every adjacent pair."""
    pairs: tuple[tuple[str, str], ...]
    """Adjacent node pairs (a < b in node order), index = link number = interface name suffix."""
    _gateways: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, lab: str, topology: Topology) -> LabLayout:
        check_lab_name(lab)
        namespaces = _namespace_names(lab, topology)
        order = {node: i for i, node in enumerate(topology.nodes)}
        pairs = sorted({tuple(sorted(k, key=order.__getitem__)) for k in topology.links})
        if len(pairs) > LINK_V4.num_addresses // 2:
            raise TopologyError(f"{len(pairs)} links: a lab holds at most {LINK_V4.num_addresses // 2}")
        ports: dict[tuple[str, str], LinkPort] = {}
        for index, (a, b) in enumerate(pairs):
            for end, (node, peer) in enumerate(((a, b), (b, a))):
                v4 = LINK_V4.network_address + 2 * index + end
                v6 = LINK_V6.network_address + 2 * index + end
                ports[(node, peer)] = LinkPort(node, peer, f"v{index}", f"{v4}/31", f"{v6}/127")
        _check_endpoint_addresses(topology)
        return cls(lab, topology, namespaces, ports, tuple((a, b) for a, b in pairs))

    def namespace(self, node: str) -> str:
        try:
            return self.namespaces[node]
        except KeyError:
            raise ValidationError("not a node of the lab", element=f"node {node!r}") from None

    def port(self, node: str, peer: str) -> LinkPort:
        try:
            return self.ports[(node, peer)]
        except KeyError:
            raise ValidationError(f"no link to {peer!r}", element=f"node {node!r}") from None

    def gateways(self, node: str, family: int) -> dict[str, str]:
        """Next-hop node -> its address on the link facing ``node``."""
        cached = self._gateways.get((node, family))
        if cached is not None:
            return cached
        out = {}
        for src, peer in self.ports:
            if src == node:
                far = self.ports[(peer, node)]
                out[peer] = far.v4_address if family == 4 else far.v6_address
        self._gateways[(node, family)] = out
        return out

    @functools.cached_property
    def endpoint_at(self) -> dict[str, Endpoint]:
        """Address in the kernel's spelling (:func:`kernel_address`) -> the endpoint holding it."""
        return {kernel_address(ep.address): ep for ep in self.topology.endpoints.values()}

    def endpoint_addresses(self, node: str) -> list[str]:
        return sorted(
            f"{ep.address}/{ipaddress.ip_address(ep.address).max_prefixlen}"
            for ep in self.topology.endpoints.values()
            if ep.host == node
        )

    def egress_ports(self, node: str) -> list[LinkPort]:
        return [port for (src, _), port in sorted(self.ports.items()) if src == node]


def _namespace_names(lab: str, topology: Topology) -> dict[str, str]:
    names: dict[str, str] = {}
    used: set[str] = set()
    for index, node in enumerate(topology.nodes):
        suffix = node if _NODE_NAME.fullmatch(node) else f"n{index}"
        if suffix in used:
            suffix = f"n{index}"
        used.add(suffix)
        names[node] = f"{lab_namespace_prefix(lab)}{suffix}"
    return names


def _check_endpoint_addresses(topology: Topology) -> None:
    for ep in topology.endpoints.values():
        address = ipaddress.ip_address(ep.address)
        inside = address in LAB_V4 if address.version == 4 else address in LAB_V6
        clash = address in LINK_V4 if address.version == 4 else address in LINK_V6
        if not inside or clash:
            raise ValidationError(
                f"address {ep.address} is outside the lab ranges (198.18.0.0/15 or fd00::/8 but not "
                f"the link ranges {LINK_V4} and {LINK_V6})",
                element=f"endpoint {ep.id!r}",
            )
