"""Route monitor: the kernel's route announcements in every lab namespace, as routing information.

One NETLINK_ROUTE socket per namespace subscribed to the IPv4 and IPv6 route groups (receive buffer
:data:`MONITOR_RCVBUF_BYTES`, within the 8-64 MiB the issue asks for). ``poll()`` reads what is queued
without blocking and turns each RTM_NEWROUTE / RTM_DELROUTE of our protocols (and of the reactive
controller's host routes, whatever made them) into a :class:`RouteUpdate`. When the kernel dropped
announcements (the socket overflowed: ``ENOBUFS``), the monitor resyncs: it dumps the namespace's routes
and reports the difference from what it last knew, so no change is lost, only coalesced.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from netscaffold.backends.linux.announcements import NodeWatchers, read_queued, subscribed_socket
from netscaffold.backends.linux.netlink import (
    _HDR,
    RTM_DELROUTE,
    RTM_NEWROUTE,
    NetlinkReader,
    _align,
    route_at,
)
from netscaffold.backends.linux.session import open_in_namespace
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.objects import ROUTE_PROTOCOLS
from netscaffold.model.config import NextHop
from netscaffold.model.events import RouteUpdate

RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE = 0x40, 0x400
MONITOR_RCVBUF_BYTES = 16 << 20
RouteKey = tuple[int, str]  # (table, destination prefix)


class NamespaceMonitor:
    """The route announcements of one namespace (``node``), from a socket opened inside it."""

    def __init__(self, node: str, netns: str, protocols: frozenset[int]) -> None:
        self.node = node
        self.protocols = protocols
        self.overflows = 0
        self.sock = open_in_namespace(netns, _subscribed_socket)
        self._reader = open_in_namespace(netns, NetlinkReader.open_here)
        self.known: dict[RouteKey, tuple[tuple[str, int], ...]] = self._dump()

    def _dump(self) -> dict[RouteKey, tuple[tuple[str, int], ...]]:
        routes = self._reader.routes(self.protocols)
        return {(r.table, f"{r.dst}/{r.dst_len}"): r.next_hops for r in routes}

    def poll(self, now_s: float) -> list[RouteUpdate]:
        """Announcements queued since the last call (non-blocking); a resync after an overflow."""
        chunks, overflowed = read_queued(self.sock)
        updates = [update for data in chunks for update in self._decode(data, now_s)]
        if overflowed:
            self.overflows += 1
            updates += self.resync(now_s)
        return updates

    def resync(self, now_s: float) -> list[RouteUpdate]:
        """The difference between a fresh dump and what was known, as updates (withdrawals last)."""
        fresh = self._dump()
        updates = [
            self._update(now_s, key, hops, withdrawn=False)
            for key, hops in sorted(fresh.items())
            if self.known.get(key) != hops
        ]
        updates += [
            self._update(now_s, key, (), withdrawn=True) for key in sorted(set(self.known) - set(fresh))
        ]
        self.known = fresh
        return updates

    def _decode(self, data: bytes, now_s: float) -> list[RouteUpdate]:
        out = []
        offset = 0
        while offset + _HDR.size <= len(data):
            length, kind, _, _, _ = _HDR.unpack_from(data, offset)
            if length < _HDR.size:
                break
            if kind in (RTM_NEWROUTE, RTM_DELROUTE):
                message = route_at(data[offset : offset + length], _HDR.size)
                if message is not None and message.protocol in self.protocols:
                    key = (message.table, f"{message.dst}/{message.dst_len}")
                    withdrawn = kind == RTM_DELROUTE
                    if withdrawn:
                        self.known.pop(key, None)
                    else:
                        self.known[key] = message.next_hops
                    out.append(self._update(now_s, key, message.next_hops, withdrawn=withdrawn))
            offset += _align(length)
        return out

    def _update(
        self, now_s: float, key: RouteKey, hops: tuple[tuple[str, int], ...], *, withdrawn: bool
    ) -> RouteUpdate:
        next_hops = () if withdrawn else tuple(NextHop(via, float(weight)) for via, weight in hops)
        return RouteUpdate(now_s, self.node, key[1], next_hops, withdrawn=withdrawn)

    def close(self) -> None:
        self.sock.close()
        self._reader.close()


class RouteMonitor(NodeWatchers[NamespaceMonitor]):
    """A :class:`NamespaceMonitor` per lab node; ``poll(now)`` gathers them all, node by node."""

    def __init__(self, layout: LabLayout, protocols: Iterable[int] | None = None) -> None:
        wanted = frozenset(ROUTE_PROTOCOLS.values()) if protocols is None else frozenset(protocols)
        super().__init__(
            NamespaceMonitor(node, netns, wanted) for node, netns in sorted(layout.namespaces.items())
        )

    def poll(self, now_s: float) -> list[RouteUpdate]:
        return [update for monitor in self.monitors for update in monitor.poll(now_s)]


def _subscribed_socket() -> socket.socket:
    return subscribed_socket(0, RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE, MONITOR_RCVBUF_BYTES)  # NETLINK_ROUTE
