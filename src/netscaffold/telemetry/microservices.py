"""The ``microservices`` workload: a web shop's call graph on a topology's hosts (see callgraph, load,
replicas). Deterministic by seed.

Every call is two flows: the request (caller -> callee, to the service port) and the reply (callee ->
caller, any port) when the callee's subtree has finished. Replicas are picked uniformly among those alive
at the call's tick; a call to a service with no live replica fails (no flows, counted in the stats).
Telemetry per replica: CPU (cores) from the calls it actually served through the same lag as the
autoscaler's; memory from a slower lag of the same, plus session state on the frontend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from netscaffold.model.flows import FlowTable
from netscaffold.model.topology import Topology
from netscaffold.telemetry.callgraph import (
    QOS_CLASSES,
    REQUEST_TYPES,
    SERVICES,
    RequestType,
    qos_classes_of,
    qos_policy,
)
from netscaffold.telemetry.control import run_control_loop
from netscaffold.telemetry.load import LoadConfig, Sessions, generate_sessions
from netscaffold.telemetry.replicas import (
    IDLE_CPU,
    Cluster,
    ClusterConfig,
    Replica,
    alive_matrix,
    calibrate_cpu_per_call,
)
from netscaffold.telemetry.workload import Workload, attach, build_store, first_flows, lag_filter, tick_count

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
SESSION_STATE_BYTES = 64e3
_SIZE_SIGMA = 1.0
_SERVICE_MS = {svc.name: svc.service_ms for svc in SERVICES}
_PORTS = {svc.name: svc.port for svc in SERVICES}


@dataclass(frozen=True, slots=True)
class MicroservicesConfig:
    duration_s: float = 600.0
    tick_s: float = 1.0
    load: LoadConfig = field(default_factory=LoadConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


@dataclass
class _Flows:
    """Flow columns collected call node by call node."""

    start: list[FloatArray] = field(default_factory=list)
    src: list[IntArray] = field(default_factory=list)
    dst: list[IntArray] = field(default_factory=list)
    size: list[FloatArray] = field(default_factory=list)
    qos: list[IntArray] = field(default_factory=list)
    port: list[IntArray] = field(default_factory=list)

    def add(
        self, start: FloatArray, src: IntArray, dst: IntArray, size: FloatArray, *, qos: int, port: int
    ) -> None:
        self.start.append(start)
        self.src.append(src)
        self.dst.append(dst)
        self.size.append(size)
        self.qos.append(np.full(start.size, qos, dtype=np.int64))
        self.port.append(np.full(start.size, port, dtype=np.int64))


@dataclass
class _Context:
    rng: np.random.Generator
    replicas: list[Replica]
    alive: BoolArray
    tick_s: float
    flows: _Flows
    served: FloatArray  # calls served per [tick, replica]
    failed_calls: int = 0

    def columns_of(self, service: str) -> IntArray:
        return np.array([j for j, r in enumerate(self.replicas) if r.service == service], dtype=np.int64)

    def tick(self, times: FloatArray) -> IntArray:
        return np.clip((times / self.tick_s).astype(np.int64), 0, self.alive.shape[0] - 1)

    def pick(self, service: str, times: FloatArray) -> IntArray:
        """A live replica (global index) per call, uniformly; -1 where the service has none alive."""
        cols = self.columns_of(service)
        if cols.size == 0 or times.size == 0:
            return np.full(times.size, -1, dtype=np.int64)
        live = self.alive[self.tick(times)][:, cols]
        count = live.sum(axis=1)
        which = np.floor(self.rng.uniform(size=times.size) * count).astype(np.int64)
        choice = np.argmax(np.cumsum(live, axis=1) > which[:, None], axis=1)
        return np.where(count > 0, cols[choice], -1)


def _lognormal(rng: np.random.Generator, mean: float, n: int) -> FloatArray:
    return np.maximum(rng.lognormal(math.log(mean) - _SIZE_SIGMA**2 / 2.0, _SIZE_SIGMA, n), 64.0)


@dataclass
class _Calls:
    """One request type's calls, one array per call node over the requests (-1: no call)."""

    root: IntArray
    handler: list[IntArray] = field(default_factory=list)
    start: list[FloatArray] = field(default_factory=list)
    end: list[FloatArray] = field(default_factory=list)


def _choose_calls(ctx: _Context, request: RequestType, times: FloatArray) -> _Calls:
    """Which calls happen (by the caller replica's version) and which replica serves each."""
    versions = np.array([r.version for r in ctx.replicas], dtype=np.int64)
    calls = _Calls(root=ctx.pick(request.root, times))
    for node in request.calls:
        caller = calls.root if node.parent < 0 else calls.handler[node.parent]
        caller_start = times if node.parent < 0 else calls.start[node.parent]
        p_by_version = np.array([node.probability(v) for v in range(1, int(versions.max()) + 1)])
        p = np.where(caller >= 0, p_by_version[versions[np.maximum(caller, 0)] - 1], 0.0)
        called = ctx.rng.uniform(size=times.size) < p
        begin = caller_start + ctx.rng.uniform(0.1e-3, 0.5e-3, times.size)
        callee = np.where(called, ctx.pick(node.service, begin), -1)
        ctx.failed_calls += int(np.sum(called & (callee < 0)))
        own_s = _SERVICE_MS[node.service] * 1e-3 * ctx.rng.lognormal(-0.125, 0.5, times.size)
        calls.handler.append(callee)
        calls.start.append(begin)
        calls.end.append(begin + own_s)
    for i in reversed(range(len(request.calls))):  # a call ends after its subtree
        parent = request.calls[i].parent
        done = calls.handler[i] >= 0
        if parent >= 0:
            calls.end[parent][done] = np.maximum(calls.end[parent][done], calls.end[i][done] + 0.1e-3)
    return calls


def _expand(ctx: _Context, request_name: str, times: FloatArray) -> None:
    """All calls of one request type as request and reply flows; counts the calls each replica served."""
    request = next(r for r in REQUEST_TYPES if r.name == request_name)
    calls = _choose_calls(ctx, request, times)
    served = calls.root >= 0
    np.add.at(ctx.served, (ctx.tick(times)[served], calls.root[served]), 1.0)
    for i, node in enumerate(request.calls):
        ok = calls.handler[i] >= 0
        caller = (calls.root if node.parent < 0 else calls.handler[node.parent])[ok]
        callee = calls.handler[i][ok]
        ask, reply = (QOS_CLASSES.index(q) for q in qos_classes_of(node.service))
        n = int(ok.sum())
        request_bytes = _lognormal(ctx.rng, node.request_bytes, n)
        ctx.flows.add(calls.start[i][ok], caller, callee, request_bytes, qos=ask, port=_PORTS[node.service])
        reply_bytes = _lognormal(ctx.rng, node.response_bytes, n)
        ctx.flows.add(calls.end[i][ok], callee, caller, reply_bytes, qos=reply, port=0)
        np.add.at(ctx.served, (ctx.tick(calls.start[i][ok]), callee), 1.0)


def _initial_replicas(cluster: Cluster) -> None:
    for svc in SERVICES:
        for _ in range(svc.replicas):
            cluster.spawn(svc.name, 0, 0)


def _replica_telemetry(
    ctx: _Context, sessions: Sessions, cpu_per_call: dict[str, float], config: ClusterConfig
) -> tuple[FloatArray, FloatArray]:
    ticks = ctx.alive.shape[0]
    per_call = np.array([cpu_per_call[r.service] for r in ctx.replicas])
    rate = ctx.served / ctx.tick_s
    cpu = lag_filter(np.where(ctx.alive, IDLE_CPU + per_call * rate, 0.0), ctx.tick_s, config.cpu_lag_s)
    cpu = np.where(ctx.alive, cpu * ctx.rng.lognormal(0.0, 0.03, cpu.shape), 0.0)
    base = np.array(
        [next(s for s in SERVICES if s.name == r.service).base_memory_bytes for r in ctx.replicas]
    )
    per_call_mem = np.array(
        [next(s for s in SERVICES if s.name == r.service).memory_per_call_bytes for r in ctx.replicas]
    )
    memory = base + per_call_mem * lag_filter(rate, ctx.tick_s, config.memory_lag_s, np.zeros(rate.shape[1]))
    front = np.array([r.service == "frontend" for r in ctx.replicas])
    mid = (np.arange(ticks, dtype=np.float64) + 0.5) * ctx.tick_s
    live_front = np.maximum((ctx.alive & front).sum(axis=1), 1)
    memory += np.outer(sessions.active_at(mid) / live_front * SESSION_STATE_BYTES, front)
    return cpu, np.where(ctx.alive, memory, 0.0)


def microservices(
    topology: Topology, *, seed: int = 0, config: MicroservicesConfig | None = None
) -> Workload:
    """Generate the workload on ``topology``'s attachment nodes (hosts, or every node of a backbone)."""
    cfg = config or MicroservicesConfig()
    ticks = tick_count(cfg.duration_s, cfg.tick_s)
    rng = np.random.default_rng(seed)
    sessions = generate_sessions(cfg.load, cfg.duration_s, cfg.tick_s, rng)
    counts = {
        name: np.bincount((times / cfg.tick_s).astype(np.int64), minlength=ticks)[:ticks]
        for name, times in sessions.requests.items()
    }
    mean_rates = {k: v * cfg.load.session_rate_per_s for k, v in cfg.load.requests_per_session().items()}
    cpu_per_call = calibrate_cpu_per_call(mean_rates, cfg.cluster)
    cluster = Cluster(topology.attachment_nodes(), cfg.tick_s, rng)
    _initial_replicas(cluster)
    service_cpu = run_control_loop(cluster, cfg.cluster, counts, cpu_per_call, ticks)
    alive = alive_matrix(cluster.replicas, ticks)
    ctx = _Context(rng, cluster.replicas, alive, cfg.tick_s, _Flows(), np.zeros(alive.shape))
    for name, times in sessions.requests.items():
        _expand(ctx, name, times)
    endpoints = tuple(r.endpoint for r in cluster.replicas)
    placed = attach(topology, [(r.endpoint, r.host, r.service) for r in cluster.replicas])
    flows = FlowTable.build(
        start_s=np.concatenate(ctx.flows.start),
        src=np.concatenate(ctx.flows.src),
        dst=np.concatenate(ctx.flows.dst),
        size_bytes=np.concatenate(ctx.flows.size),
        qos=np.concatenate(ctx.flows.qos),
        dst_port=np.concatenate(ctx.flows.port),
        endpoints=endpoints,
        qos_names=tuple(q.name for q in QOS_CLASSES),
    )
    keep = flows.start_s < cfg.duration_s
    flows = first_flows(flows, int(keep.sum()))
    cpu, memory = _replica_telemetry(ctx, sessions, cpu_per_call, cfg.cluster)
    store = build_store(placed, flows, tick_s=cfg.tick_s, ticks=ticks, cpu=cpu, memory=memory)
    events = tuple(sorted((*cluster.events, *sessions.bursts), key=lambda e: (e.time_s, e.kind, e.subject)))
    stats = {
        "requests": float(sum(t.size for t in sessions.requests.values())),
        "sessions": float(sessions.start_s.size),
        "failed_calls": float(ctx.failed_calls),
        "peak_service_cpu": float(service_cpu.max()),
    }
    return Workload(
        kind="microservices",
        topology=placed,
        flows=flows,
        telemetry=store,
        events=events,
        qos=qos_policy(),
        seed=seed,
        duration_s=cfg.duration_s,
        stats=stats,
    )
