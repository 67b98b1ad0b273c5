"""Replicas over time: autoscaling, rolling deployments and failures of the ``microservices`` workload.

A control loop per tick, at the service level: the expected calls into each service (from the realised
request counts and the call trees, mixed by the versions of the callers alive), spread evenly over its
live replicas (as a round-robin load balancer does), give a target CPU per replica; the CPU follows with a
first-order lag (``cpu_lag_s``). Like the Kubernetes horizontal pod autoscaler, the loop acts on the
service's average CPU: above ``scale_up_util`` it starts a replica on another host (ready after
``startup_s``; then ``cooldown_s`` before the next decision); below ``scale_down_util`` for
``scale_down_after_s`` it removes the newest extra replica. A deployment replaces the replicas one by one
(``rolling_step_s`` apart) with replicas of the next version; a failure takes a replica down for
``restart_s``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from netscaffold.telemetry.callgraph import REQUEST_TYPES, SERVICES
from netscaffold.telemetry.workload import WorkloadEvent

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IDLE_CPU = 0.05
NEVER = 1 << 40


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    target_util: float = 0.45  # a replica's CPU (cores) at the mean load with the initial replicas
    scale_up_util: float = 0.7
    scale_down_util: float = 0.25
    scale_down_after_s: float = 60.0
    cooldown_s: float = 30.0
    startup_s: float = 8.0
    max_replicas: int = 6
    cpu_lag_s: float = 10.0
    memory_lag_s: float = 60.0
    deployments: int = 2
    rolling_step_s: float = 15.0
    failures_per_hour: float = 12.0
    restart_s: float = 20.0


@dataclass(slots=True)
class Replica:
    endpoint: str
    service: str
    host: str
    version: int
    ready_tick: int
    end_tick: int = NEVER
    down: list[tuple[int, int]] = field(default_factory=list)

    def alive(self, tick: int) -> bool:
        if not self.ready_tick <= tick < self.end_tick:
            return False
        return not any(a <= tick < b for a, b in self.down)


def expected_calls(
    request_counts: dict[str, float], versions: dict[str, dict[int, float]]
) -> dict[str, float]:
    """Expected calls into each service for these request counts and caller version mixes."""
    calls: dict[str, float] = defaultdict(float)
    for request in REQUEST_TYPES:
        count = request_counts.get(request.name, 0.0)
        calls[request.root] += count
        reach: list[float] = []
        for node in request.calls:
            caller = request.root if node.parent < 0 else request.calls[node.parent].service
            mix = versions.get(caller) or {1: 1.0}
            p = sum(share * node.probability(v) for v, share in mix.items())
            parent_reach = count if node.parent < 0 else reach[node.parent]
            reach.append(parent_reach * p)
            calls[node.service] += reach[-1]
    return calls


class Cluster:
    """The replicas of every service, their hosts and lifetimes; decisions become events."""

    def __init__(self, hosts: list[str], tick_s: float, rng: np.random.Generator) -> None:
        self.hosts = hosts
        self.tick_s = tick_s
        self.rng = rng
        self.replicas: list[Replica] = []
        self.events: list[WorkloadEvent] = []
        self.version: dict[str, int] = {svc.name: 1 for svc in SERVICES}
        self._created: dict[str, int] = defaultdict(int)

    def of(self, service: str, tick: int) -> list[Replica]:
        return [r for r in self.replicas if r.service == service and r.alive(tick)]

    def pending(self, service: str, tick: int) -> list[Replica]:
        return [r for r in self.replicas if r.service == service and tick < r.ready_tick < r.end_tick]

    def _pick_host(self, service: str, tick: int) -> str:
        taken = {r.host for r in self.replicas if r.service == service and r.end_tick > tick}
        free = [h for h in self.hosts if h not in taken]
        choices = free or self.hosts
        return choices[int(self.rng.integers(len(choices)))]

    def spawn(self, service: str, tick: int, delay_ticks: int) -> Replica:
        index = self._created[service]
        self._created[service] += 1
        replica = Replica(
            f"{service}-{index}",
            service,
            self._pick_host(service, tick),
            self.version[service],
            tick + delay_ticks,
        )
        self.replicas.append(replica)
        return replica

    def time_s(self, tick: int) -> float:
        return round(tick * self.tick_s, 6)


def alive_matrix(replicas: list[Replica], ticks: int) -> BoolArray:
    alive = np.zeros((ticks, len(replicas)), dtype=bool)
    for j, r in enumerate(replicas):
        alive[max(r.ready_tick, 0) : max(min(r.end_tick, ticks), 0), j] = True
        for a, b in r.down:
            alive[max(a, 0) : max(min(b, ticks), 0), j] = False
    return alive


def calibrate_cpu_per_call(mean_requests_per_s: dict[str, float], config: ClusterConfig) -> dict[str, float]:
    """Cores per call/s, so that at the mean load each initial replica runs at ``target_util``."""
    base = expected_calls(mean_requests_per_s, {})
    out: dict[str, float] = {}
    for svc in SERVICES:
        rate = base.get(svc.name, 0.0)
        out[svc.name] = (config.target_util - IDLE_CPU) * svc.replicas / rate if rate > 0 else 0.0
    return out
