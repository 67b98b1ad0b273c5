"""The shared vocabulary: pure data and validation, no I/O. Imports nothing else of netscaffold's
but :mod:`netscaffold.errors`."""

from netscaffold.model.config import (
    ConfigItem,
    FirewallRule,
    FlowMatch,
    ItemKey,
    NetworkConfig,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
    is_provisional,
)
from netscaffold.model.events import FlowRequest, LinkEvent, RouteUpdate, RoutingInfo
from netscaffold.model.plan import OpKind, Plan, PlanOp, ProvisionalBudget
from netscaffold.model.predicted import PredictedGraph
from netscaffold.model.qos import BEST_EFFORT, QosPolicy, QosProfile
from netscaffold.model.topology import Endpoint, Link, LinkKey, Node, NodeKind, Topology
from netscaffold.model.traffic import TrafficMatrixSeries

__all__ = [
    "BEST_EFFORT",
    "ConfigItem",
    "Endpoint",
    "FirewallRule",
    "FlowMatch",
    "FlowRequest",
    "ItemKey",
    "Link",
    "LinkEvent",
    "LinkKey",
    "NetworkConfig",
    "NextHop",
    "Node",
    "NodeKind",
    "OpKind",
    "Origin",
    "Plan",
    "PlanOp",
    "PredictedGraph",
    "ProvisionalBudget",
    "QosPolicy",
    "QosProfile",
    "Reservation",
    "Route",
    "RouteUpdate",
    "RoutingInfo",
    "Topology",
    "TrafficMatrixSeries",
    "VirtualCircuit",
    "is_provisional",
]
