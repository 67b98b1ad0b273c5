"""The application the ``microservices`` workload runs: services, their calls, QoS classes (as data).

A web shop: clients enter through ``ingress``, then ``frontend`` and ``api``; behind them ``user``,
``catalog``, ``recommend``, ``order`` and ``payment``, a shared ``cache`` and three databases. Sessions issue
three request types: ``login`` at the start, ``browse`` during, ``order`` (sometimes) at the end. Each
request type is a call tree; the probability of a call depends on the **version of the caller**, so a
rolling deployment shifts the call pattern (drift) while the old and new replicas both serve.

QoS: calls to the databases and their replies need a bandwidth reservation (classes ``storage`` and
``storage-reply``); calls to ``payment`` have a latency bound too (``payment``, ``payment-reply``); requests
name the service port (a firewall permit's port), replies go to any port. So scaffolding has to place
routes, firewall permits, reservations and virtual circuits.
"""

from __future__ import annotations

from dataclasses import dataclass

from netscaffold.model.qos import BEST_EFFORT, QosPolicy, QosProfile


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    port: int
    replicas: int
    autoscaled: bool = True
    service_ms: float = 1.0
    base_memory_bytes: float = 256e6
    memory_per_call_bytes: float = 2e5


@dataclass(frozen=True, slots=True)
class CallNode:
    """A call from the service of node ``parent`` (-1: the request's root caller) to ``service``.

    ``p_by_version[v - 1]`` is the probability that a caller of version ``v`` makes this call (the last
    entry holds for later versions). Request and response sizes are lognormal with these means.
    """

    service: str
    parent: int
    p_by_version: tuple[float, ...]
    request_bytes: float
    response_bytes: float

    def probability(self, version: int) -> float:
        return self.p_by_version[min(version, len(self.p_by_version)) - 1]


@dataclass(frozen=True, slots=True)
class RequestType:
    name: str
    root: str
    calls: tuple[CallNode, ...]


SERVICES: tuple[Service, ...] = (
    Service("ingress", 443, 2, autoscaled=False, service_ms=0.2),
    Service("frontend", 8080, 2, service_ms=1.5, base_memory_bytes=384e6),
    Service("api", 8081, 2, service_ms=1.0),
    Service("user", 9001, 1, service_ms=0.8),
    Service("catalog", 9002, 2, service_ms=1.2),
    Service("recommend", 9003, 1, service_ms=3.0),
    Service("order", 9004, 1, service_ms=2.0),
    Service("payment", 9005, 1, service_ms=4.0),
    Service("cache", 6379, 1, autoscaled=False, service_ms=0.1, base_memory_bytes=1e9),
    Service("user-db", 5432, 1, autoscaled=False, service_ms=2.0, base_memory_bytes=2e9),
    Service("catalog-db", 5432, 1, autoscaled=False, service_ms=3.0, base_memory_bytes=4e9),
    Service("order-db", 5432, 1, autoscaled=False, service_ms=3.0, base_memory_bytes=2e9),
)

# Node 0 is ingress -> frontend; indices in `parent` refer to positions in the same tuple.
_FRONT = (
    CallNode("frontend", -1, (1.0,), 600, 9000),
    CallNode("api", 0, (1.0,), 500, 6000),
)

REQUEST_TYPES: tuple[RequestType, ...] = (
    RequestType(
        "login",
        "ingress",
        (
            *_FRONT,
            CallNode("user", 1, (1.0,), 400, 1200),
            CallNode("user-db", 2, (1.0,), 300, 2000),
            CallNode("cache", 2, (0.5, 0.9), 120, 400),
        ),
    ),
    RequestType(
        "browse",
        "ingress",
        (
            *_FRONT,
            CallNode("catalog", 1, (1.0,), 350, 16000),
            CallNode("cache", 2, (1.0,), 120, 8000),
            CallNode("catalog-db", 2, (0.25, 0.08), 300, 40000),
            CallNode("recommend", 1, (0.5, 0.9), 300, 3000),
            CallNode("cache", 5, (1.0,), 120, 2000),
            CallNode("catalog", 5, (0.0, 0.6), 300, 6000),
        ),
    ),
    RequestType(
        "order",
        "ingress",
        (
            *_FRONT,
            CallNode("order", 1, (1.0,), 1500, 800),
            CallNode("payment", 2, (1.0,), 900, 500),
            CallNode("order-db", 2, (1.0,), 2500, 400),
            CallNode("user", 2, (0.5, 0.2), 300, 1200),
            CallNode("user-db", 5, (1.0,), 300, 2000),
        ),
    ),
)

STORAGE = QosProfile("storage", min_bandwidth_bps=50e6, priority=1, allowed_ports=(5432,))
STORAGE_REPLY = QosProfile("storage-reply", min_bandwidth_bps=50e6, priority=1)
PAYMENT = QosProfile(
    "payment", min_bandwidth_bps=10e6, max_latency_s=0.002, priority=2, allowed_ports=(9005,)
)
PAYMENT_REPLY = QosProfile("payment-reply", min_bandwidth_bps=10e6, max_latency_s=0.002, priority=2)
QOS_CLASSES: tuple[QosProfile, ...] = (BEST_EFFORT, STORAGE, STORAGE_REPLY, PAYMENT, PAYMENT_REPLY)


def service(name: str) -> Service:
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise KeyError(name)


def qos_classes_of(callee: str) -> tuple[QosProfile, QosProfile]:
    """The classes of a call's request (to the callee's port) and of its reply: the callee decides."""
    if callee == "payment":
        return PAYMENT, PAYMENT_REPLY
    if callee.endswith("-db"):
        return STORAGE, STORAGE_REPLY
    return BEST_EFFORT, BEST_EFFORT


def qos_policy() -> QosPolicy:
    """Per (src app, dst app) pair: both directions of every call edge that needs more than best effort."""
    per_pair: dict[tuple[str, str], QosProfile] = {}
    for request in REQUEST_TYPES:
        for node in request.calls:
            caller = request.root if node.parent < 0 else request.calls[node.parent].service
            ask, reply = qos_classes_of(node.service)
            if ask is not BEST_EFFORT:
                per_pair[(caller, node.service)] = ask
                per_pair[(node.service, caller)] = reply
    return QosPolicy(per_pair=per_pair)
