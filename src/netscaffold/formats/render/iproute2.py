"""``ip -batch`` lines: routes with weighted multipath next hops, policy rules, and lab links.

Single-next-hop routes are written without ``nexthop`` so that the kernel reports them the way they were
written (a one-member multipath collapses to a plain gateway route anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from netscaffold.errors import PlanError
from netscaffold.formats.render.objects import (
    MAIN_TABLE,
    ROUTE_PROTOCOLS,
    KernelRoute,
    KernelRule,
    canonical_prefix,
    quantize_weights,
)
from netscaffold.model.config import Route

RouteAction = Literal["replace", "delete"]


def kernel_route(route: Route, gateways: Mapping[str, str], *, table: int = MAIN_TABLE) -> KernelRoute:
    """The kernel form of ``route``; ``gateways`` maps a next-hop node to its address facing the device."""
    next_hops = route.next_hops
    if len(next_hops) == 1 and next_hops[0].via in gateways:  # the common case, without lists
        hops = _one_hop(gateways[next_hops[0].via])
    else:
        addresses, weights = [], []
        for hop in next_hops:  # one loop, not a comprehension per list (each is a call)
            address = gateways.get(hop.via)
            if address is None:
                missing = [hop.via for hop in next_hops if hop.via not in gateways]
                raise PlanError(
                    f"no link from {route.device!r} to next hop(s) {missing}", element=route.describe()
                )
            addresses.append(address)
            weights.append(hop.weight)
        hops = _weighted_hops(tuple(addresses), tuple(weights))
    return KernelRoute(
        route.device, table, canonical_prefix(route.destination), ROUTE_PROTOCOLS[route.origin], hops
    )


@lru_cache(maxsize=1 << 12)
def _one_hop(gateway: str) -> tuple[tuple[str, int], ...]:
    """The next hops of a route through one gateway (shared: a node has a handful of gateways)."""
    return ((gateway, 1),)


@lru_cache(maxsize=1 << 14)
def _weighted_hops(gateways: tuple[str, ...], weights: tuple[float, ...]) -> tuple[tuple[str, int], ...]:
    """Sorted (gateway, kernel weight) pairs: a pure function of its arguments, which the routes of a node
    share (a few sets of weighted next hops)."""
    if len(gateways) == 1:
        quantize_weights(weights)  # checks the weight
        return ((gateways[0], 1),)
    return tuple(sorted(zip(gateways, quantize_weights(weights), strict=True)))


def route_line(route: KernelRoute, action: RouteAction) -> str:
    head = f"route {action} {route.destination} table {route.table}"
    if action == "delete":
        return head
    if len(route.next_hops) == 1:
        return f"{head} proto {route.protocol} via {route.next_hops[0][0]}"
    hops = " ".join(f"nexthop via {via} weight {weight}" for via, weight in route.next_hops)
    return f"{head} proto {route.protocol} {hops}"


def rule_line(rule: KernelRule, action: Literal["add", "delete"]) -> str:
    """A rule line; its family is the batch's (``ip -6 -batch`` for IPv6 rules: a batch line cannot
    carry ``-6`` and a fwmark rule has no address to tell)."""
    if action == "delete":
        return f"rule delete priority {rule.priority}"
    return (
        f"rule add priority {rule.priority} fwmark {rule.fwmark:#x} "
        f"lookup {rule.table} protocol {rule.protocol}"
    )


def veth_line(ifname: str, peer_ifname: str, peer_netns: str) -> str:
    """Create a veth pair from inside the current namespace with its peer directly in ``peer_netns``."""
    return f"link add {ifname} type veth peer name {peer_ifname} netns {peer_netns}"


def link_setup_lines(ifname: str, alias: str, v4: str, v6: str) -> list[str]:
    """Address (IPv4 /31 and IPv6 /127, no DAD), alias (our tag: which neighbour) and up."""
    return [
        f"link set dev {ifname} alias {alias}",
        f"address replace {v4} dev {ifname}",
        f"address replace {v6} dev {ifname} nodad",
        f"link set dev {ifname} up",
    ]


def loopback_lines(addresses: list[str]) -> list[str]:
    """Loopback up with the node's endpoint addresses (host prefixes)."""
    lines = ["link set dev lo up"]
    lines.extend(f"address replace {address} dev lo" for address in addresses)
    return lines
