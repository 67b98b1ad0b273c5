"""The reactive controller: queue-on-miss in the lab's routers, path installed in-process, packet released.

Set-up per router (every node that is not a host): a chain of our nft table at prerouting (priority -300)
marks packets to the lab ranges (IPv4 198.18.0.0/15, IPv6 fd00::/8) whose destination has no route
(``fib daddr oif missing``), and an iptables-nft / ip6tables-nft rule (``mangle PREROUTING -m mark --mark
M/M -j NFQUEUE --queue-bypass``; this kernel has no nft ``queue``) hands them to the controller, both
families on the same queue. Hosts get a route to each lab range via their first router (their default
gateway, protocol :data:`GATEWAY_PROTOCOL`, not one of the backend's).

On a queued packet the controller finds the endpoints of its addresses, takes the shortest path between
their hosts, renders the path as the backend would (routes both ways on every node but the last, a
permit on every firewall; origin ``predicted`` with ``expires_at = now + idle_s``, records included, so
``snapshot()`` shows them), writes routes with one netlink request each and elements with one nft
transaction per node, then accepts the packet, which is routed afresh after prerouting. No delay is
added: ``controller_s`` holds the measured time from receipt to verdict of every packet.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import select
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.netlink import NF_ACCEPT, QueuedPacket, QueueSocket
from netscaffold.backends.linux.plans import shortest_path
from netscaffold.backends.linux.readback import element_write
from netscaffold.backends.linux.session import open_in_namespace
from netscaffold.errors import BackendError
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render.desired import Allocation, render_item
from netscaffold.formats.render.layout import LAB_V4, LAB_V6
from netscaffold.formats.render.objects import KernelElement, KernelRoute
from netscaffold.model.config import ConfigItem, FirewallRule, FlowMatch, NextHop, Origin, Route
from netscaffold.model.topology import NodeKind

RECENT_S = 0.5
"""A packet of a pair whose path the controller installed less than this ago is only released: it was
queued behind the packet that caused the install."""
MISS_MARK = 0x00010000
QUEUE_NUM = 0
GATEWAY_PROTOCOL = 204
LAB_RANGES: dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network] = {4: LAB_V4, 6: LAB_V6}
LAB_RANGE, LAB_RANGE6 = str(LAB_V4), str(LAB_V6)
_IPTABLES = {4: "iptables", 6: "ip6tables"}
_NFT_PROTOCOL = {4: "ip", 6: "ip6"}
MISS_CHAIN = "miss"
_COMMENT = "netscaffold-reactive"


@dataclass
class ReactiveController:
    backend: LinuxBackend
    idle_s: float = 60.0
    origin: Origin = Origin.PREDICTED
    """Origin of what the controller installs (``confirmed`` keeps a scaffolder from evicting it)."""
    controller_s: list[float] = field(default_factory=list)
    misses: list[tuple[str, str, float]] = field(default_factory=list)
    """(source, destination, backend clock time) of every packet handed to the controller."""
    held_s: list[float] = field(default_factory=list)
    """Per entry of ``misses``: seconds the controller held that packet (install, then release)."""
    unknown: int = 0
    _queues: dict[str, QueueSocket] = field(default_factory=dict)
    _installed_at: dict[tuple[str, str], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # -- set-up and tear-down ---------------------------------------------------------------------
    def start(self) -> ReactiveController:
        layout = self.backend.layout
        for node, netns in sorted(layout.namespaces.items()):
            if layout.topology.node(node).kind is NodeKind.HOST:
                self._host_gateway(node)
                continue
            self._miss_rules(netns, add=True, firewall=layout.topology.node(node).kind is NodeKind.FIREWALL)
            self._queues[node] = open_in_namespace(netns, lambda: QueueSocket.open_here(QUEUE_NUM))
        self._thread = threading.Thread(target=self._serve, name="reactive-controller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()
        layout = self.backend.layout
        for node, netns in sorted(layout.namespaces.items()):
            if layout.topology.node(node).kind is not NodeKind.HOST:
                self._miss_rules(netns, add=False)
                continue
            for family, lab_range in LAB_RANGES.items():
                if layout.gateways(node, family):
                    tools.ip_batch(netns, [f"route delete {lab_range} proto {GATEWAY_PROTOCOL}"])

    def __enter__(self) -> ReactiveController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _host_gateway(self, node: str) -> None:
        session = self.backend.sessions.get(self.backend.layout.namespace(node))
        for family, lab_range in LAB_RANGES.items():
            gateways = self.backend.layout.gateways(node, family)
            if gateways:
                session.netlink.replace_route(str(lab_range), gateways[min(gateways)], GATEWAY_PROTOCOL)

    def _miss_rules(self, netns: str, *, add: bool, firewall: bool = False) -> None:
        """The miss chain (a marking rule per address family); on a firewall also a rule per family
        queueing packets no permit accepts (a route to the destination may exist for another source, and
        the firewall would drop them unseen)."""
        session = self.backend.sessions.get(netns)
        chain = {"family": nft_render.FAMILY, "table": nft_render.TABLE, "name": MISS_CHAIN}
        if add:
            hooked = {**chain, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}
            commands: list[dict[str, Any]] = [{"add": {"chain": hooked}}, {"flush": {"chain": chain}}]
            for family in LAB_RANGES:
                commands += _miss_rule_commands(chain, family, firewall=firewall)
            session.nft_json(nft_render.document(commands))
        elif session.nft is not None:
            session.nft.run(f"delete chain inet {nft_render.TABLE} {MISS_CHAIN}")
        action = "-A" if add else "-D"
        for tool in _IPTABLES.values():
            argv = ["ip", "netns", "exec", netns, tool, "-w", "-t", "mangle", action, "PREROUTING"]
            argv += ["-m", "mark", "--mark", f"{MISS_MARK:#x}/{MISS_MARK:#x}", "-m", "comment"]
            argv += ["--comment", _COMMENT, "-j", "NFQUEUE", "--queue-num", str(QUEUE_NUM), "--queue-bypass"]
            try:
                tools.run(argv)
            except tools.ToolError:
                if add:
                    raise

    # -- serving ---------------------------------------------------------------------------------------
    def _serve(self) -> None:
        by_fd = {queue.fileno(): (node, queue) for node, queue in self._queues.items()}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(by_fd), [], [], 0.2)
            for fd in ready:
                node, queue = by_fd[fd]
                for packet in queue.receive():
                    self._handle(queue, packet, node)

    def _handle(self, queue: QueueSocket, packet: QueuedPacket, node: str | None = None) -> None:
        """Install the packet's path, then release it. Packets of a pair queued while its path was
        being installed (a burst behind the first packet) are released without a second install."""
        started = time.perf_counter()
        now = self.backend.clock.now()
        pair = packet_addresses(packet.payload)
        if pair is not None:
            self.misses.append((*pair, now))
        if pair is None or self._installed_at.get(pair, -math.inf) + RECENT_S < now:
            try:
                self.install_for(packet.payload, node)
                if pair is not None:
                    done = self.backend.clock.now()
                    self._installed_at[pair] = self._installed_at[(pair[1], pair[0])] = done
            except (BackendError, KeyError, ValueError, OSError):
                self.unknown += 1
        queue.verdict(packet.packet_id, NF_ACCEPT)
        held = time.perf_counter() - started
        self.controller_s.append(held)
        if pair is not None:
            self.held_s.append(held)

    def install_for(self, ip_header: bytes, at_node: str | None = None) -> list[ConfigItem]:
        """Install the path (both ways) for the IPv4 or IPv6 packet whose header is ``ip_header``; the
        path passes through ``at_node``, where the packet waits, when it is given."""
        pair = packet_addresses(ip_header)
        if pair is None:
            raise ValueError("not an IPv4 or IPv6 packet")
        src, dst = pair
        endpoint_at = self.backend.layout.endpoint_at
        a, b = endpoint_at[src], endpoint_at[dst]
        path = shortest_path(self.backend.topology, a.host, b.host)
        if at_node is not None and at_node not in path:
            upstream = shortest_path(self.backend.topology, a.host, at_node)
            path = upstream + shortest_path(self.backend.topology, at_node, b.host)[1:]
        items = self.path_items(path, src, dst) + self.path_items(tuple(reversed(path)), dst, src)
        with self.backend.write_lock:  # never between an apply's read and its read-back
            self._write(items)
        return items

    def path_items(self, path: tuple[str, ...], src: str, dst: str) -> list[ConfigItem]:
        expires_at = self.backend.clock.now() + self.idle_s
        life = {"origin": self.origin, "expires_at": expires_at}
        length = ipaddress.ip_address(dst).max_prefixlen
        items: list[ConfigItem] = []
        for here, there in itertools.pairwise(path):
            items.append(Route(here, f"{dst}/{length}", (NextHop(there),), **life))  # type: ignore[arg-type]
        for node in path:
            if self.backend.topology.node(node).kind is NodeKind.FIREWALL:
                match = FlowMatch(f"{src}/{length}", f"{dst}/{length}")
                items.append(FirewallRule(node, match, **life))  # type: ignore[arg-type]
        return items

    def _write(self, items: list[ConfigItem]) -> None:
        layout, now = self.backend.layout, self.backend.clock.now()
        elements: dict[str, list[KernelElement]] = defaultdict(list)
        routes: list[KernelRoute] = []
        for item in items:
            for obj in render_item(item, layout, Allocation(), now):
                if isinstance(obj, KernelRoute):
                    routes.append(obj)
                elif isinstance(obj, KernelElement):
                    elements[obj.node].append(obj)
        for node, node_elements in elements.items():
            session = self.backend.sessions.get(layout.namespace(node))
            writes = [element_write("add", element) for element in node_elements]
            failure = session.nftnl.transaction(nft_render.TABLE, writes)
            if failure is not None:
                raise BackendError(f"nft refused {node_elements[failure[0]].ident}: errno {failure[1]}")
        for route in routes:
            session = self.backend.sessions.get(layout.namespace(route.node))
            session.netlink.replace_route(
                route.destination, route.next_hops[0][0], route.protocol, route.table
            )


def packet_addresses(header: bytes) -> tuple[str, str] | None:
    """(source, destination) of an IPv4 or IPv6 packet starting at ``header``; None for anything else
    or a header cut short."""
    version = header[0] >> 4 if header else 0
    if version == 4 and len(header) >= 20:
        return socket.inet_ntop(socket.AF_INET, header[12:16]), socket.inet_ntop(
            socket.AF_INET, header[16:20]
        )
    if version == 6 and len(header) >= 40:
        return socket.inet_ntop(socket.AF_INET6, header[8:24]), socket.inet_ntop(
            socket.AF_INET6, header[24:40]
        )
    return None


def _miss_rule_commands(chain: dict[str, Any], family: int, *, firewall: bool) -> list[dict[str, Any]]:
    """The miss chain's rules for one address family: mark a packet to the lab range without a route
    (and, on a firewall, one no permit of the family's set accepts)."""
    protocol = _NFT_PROTOCOL[family]
    network = LAB_RANGES[family]
    lab = {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}
    daddr = {"payload": {"protocol": protocol, "field": "daddr"}}
    mark = {"mangle": {"key": {"meta": {"key": "mark"}}, "value": MISS_MARK}}
    to_lab = {"match": {"op": "==", "left": daddr, "right": lab}}
    missing = {"fib": {"result": "oif", "flags": ["daddr"]}}
    rule = {**chain, "chain": MISS_CHAIN}
    commands = [
        {
            "add": {
                "rule": {
                    **rule,
                    "expr": [to_lab, {"match": {"op": "==", "left": missing, "right": False}}, mark],
                }
            }
        }
    ]
    if firewall:
        key = [
            {"payload": {"protocol": protocol, "field": "saddr"}},
            daddr,
            {"meta": {"key": "l4proto"}},
            {"payload": {"protocol": "th", "field": "dport"}},
        ]
        unpermitted = {"match": {"op": "!=", "left": {"concat": key}, "right": f"@permit{family}"}}
        commands.append({"add": {"rule": {**rule, "expr": [to_lab, unpermitted, mark]}}})
    return commands
