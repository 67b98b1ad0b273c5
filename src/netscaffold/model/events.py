"""Routing information: what the network actually asks for, as backends report it."""

from __future__ import annotations

from dataclasses import dataclass

from netscaffold.model.config import NextHop


@dataclass(frozen=True, slots=True)
class FlowRequest:
    """The first packet of a new flow (like an OpenFlow packet-in)."""

    time_s: float
    src: str
    dst: str
    size_bytes: float = 0.0
    qos: str = "best-effort"
    dst_port: int | None = None
    scaffolded: bool = False
    setup_delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RouteUpdate:
    """A route announced or withdrawn (like a BGP UPDATE)."""

    time_s: float
    device: str
    destination: str
    next_hops: tuple[NextHop, ...] = ()
    withdrawn: bool = False


@dataclass(frozen=True, slots=True)
class LinkEvent:
    time_s: float
    src: str
    dst: str
    up: bool


RoutingInfo = FlowRequest | RouteUpdate | LinkEvent
