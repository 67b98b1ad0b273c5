"""The per-tick control loop of the ``microservices`` workload (see :mod:`netscaffold.telemetry.replicas`)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from netscaffold.telemetry.callgraph import REQUEST_TYPES, SERVICES
from netscaffold.telemetry.replicas import IDLE_CPU, Cluster, ClusterConfig, Replica, expected_calls
from netscaffold.telemetry.workload import WorkloadEvent

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class _Plan:
    """Actions scheduled for later ticks: rolling replacements and failures."""

    rollouts: dict[int, list[tuple[str, Replica]]] = field(default_factory=dict)
    failures: list[int] = field(default_factory=list)


def _ticks(seconds: float, tick_s: float) -> int:
    return max(math.ceil(seconds / tick_s - 1e-9), 1)


def _schedule(cluster: Cluster, config: ClusterConfig, ticks: int) -> tuple[_Plan, dict[int, str]]:
    rng = cluster.rng
    drifting = sorted(
        {
            (request.root if node.parent < 0 else request.calls[node.parent].service)
            for request in REQUEST_TYPES
            for node in request.calls
            if len(node.p_by_version) > 1
        }
    )
    count = min(config.deployments, len(drifting))
    services = [drifting[i] for i in rng.permutation(len(drifting))[:count]]
    times = np.sort(rng.uniform(0.2, 0.7, count)) * ticks
    deploy_at = {int(t): s for t, s in zip(times, services, strict=True)}
    rate_per_tick = config.failures_per_hour / 3600.0 * cluster.tick_s
    failures = np.flatnonzero(rng.uniform(size=ticks) < rate_per_tick).tolist()
    return _Plan(failures=failures), deploy_at


def _deploy(cluster: Cluster, plan: _Plan, service: str, tick: int, config: ClusterConfig) -> None:
    old = cluster.of(service, tick) + cluster.pending(service, tick)
    cluster.version[service] += 1
    cluster.events.append(
        WorkloadEvent(cluster.time_s(tick), "deploy", service, {"version": cluster.version[service]})
    )
    step = _ticks(config.rolling_step_s, cluster.tick_s)
    for i, replica in enumerate(old):
        plan.rollouts.setdefault(tick + i * step, []).append((service, replica))


def _roll(cluster: Cluster, tick: int, service: str, old: Replica, config: ClusterConfig) -> None:
    if old.end_tick <= tick:
        return
    new = cluster.spawn(service, tick, _ticks(config.startup_s, cluster.tick_s))
    old.end_tick = new.ready_tick
    detail: dict[str, str | float] = {
        "old": old.endpoint,
        "new": new.endpoint,
        "host": new.host,
        "version": new.version,
        "ready_s": cluster.time_s(new.ready_tick),
    }
    cluster.events.append(WorkloadEvent(cluster.time_s(tick), "replace", service, detail))


def _fail(cluster: Cluster, tick: int, config: ClusterConfig) -> None:
    candidates = [
        r for svc in SERVICES for r in cluster.of(svc.name, tick) if len(cluster.of(svc.name, tick)) >= 2
    ]
    if not candidates:
        return
    victim = candidates[int(cluster.rng.integers(len(candidates)))]
    back = tick + _ticks(config.restart_s, cluster.tick_s)
    victim.down.append((tick, back))
    cluster.events.append(
        WorkloadEvent(cluster.time_s(tick), "failure", victim.endpoint, {"host": victim.host})
    )
    cluster.events.append(
        WorkloadEvent(cluster.time_s(back), "recovery", victim.endpoint, {"host": victim.host})
    )


def _version_mix(cluster: Cluster, tick: int) -> dict[str, dict[int, float]]:
    mix: dict[str, dict[int, float]] = {}
    for svc in SERVICES:
        live = cluster.of(svc.name, tick)
        if live:
            counts = Counter(r.version for r in live)
            mix[svc.name] = {v: c / len(live) for v, c in counts.items()}
    return mix


@dataclass
class _Scaler:
    config: ClusterConfig
    cooldown_until: dict[str, int] = field(default_factory=dict)
    low_since: dict[str, int] = field(default_factory=dict)

    def step(self, cluster: Cluster, tick: int, service: str, cpu: float, initial: int) -> None:
        cfg = self.config
        if tick < self.cooldown_until.get(service, 0):
            return
        live = cluster.of(service, tick)
        planned = len(live) + len(cluster.pending(service, tick))
        if cpu > cfg.scale_up_util and planned < cfg.max_replicas:
            new = cluster.spawn(service, tick, _ticks(cfg.startup_s, cluster.tick_s))
            detail: dict[str, str | float] = {
                "endpoint": new.endpoint,
                "host": new.host,
                "ready_s": cluster.time_s(new.ready_tick),
                "cpu": round(cpu, 4),
            }
            cluster.events.append(WorkloadEvent(cluster.time_s(tick), "scale-out", service, detail))
            self.cooldown_until[service] = new.ready_tick + _ticks(cfg.cooldown_s, cluster.tick_s)
            self.low_since.pop(service, None)
            return
        if cpu >= cfg.scale_down_util or len(live) <= initial:
            self.low_since.pop(service, None)
            return
        since = self.low_since.setdefault(service, tick)
        if (tick - since) * cluster.tick_s >= cfg.scale_down_after_s:
            newest = max(live, key=lambda r: r.ready_tick)
            newest.end_tick = tick + 1
            detail = {"endpoint": newest.endpoint, "host": newest.host, "cpu": round(cpu, 4)}
            cluster.events.append(WorkloadEvent(cluster.time_s(tick + 1), "scale-in", service, detail))
            self.cooldown_until[service] = tick + _ticks(cfg.cooldown_s, cluster.tick_s)
            self.low_since.pop(service, None)


def run_control_loop(
    cluster: Cluster,
    config: ClusterConfig,
    request_counts: dict[str, IntArray],
    cpu_per_call: dict[str, float],
    ticks: int,
) -> FloatArray:
    """Run the loop over ``ticks``; returns the service-average CPU ``[ticks, services]``."""
    plan, deploy_at = _schedule(cluster, config, ticks)
    alpha = 1.0 - math.exp(-cluster.tick_s / config.cpu_lag_s)
    cpu = np.full(len(SERVICES), IDLE_CPU)
    history = np.zeros((ticks, len(SERVICES)))
    scaler = _Scaler(config)
    failures = set(plan.failures)
    for tick in range(ticks):
        if tick in deploy_at:
            _deploy(cluster, plan, deploy_at[tick], tick, config)
        for service, old in plan.rollouts.pop(tick, []):
            _roll(cluster, tick, service, old, config)
        if tick in failures:
            _fail(cluster, tick, config)
        counts = {name: float(c[tick]) for name, c in request_counts.items()}
        calls = expected_calls(counts, _version_mix(cluster, tick))
        for i, svc in enumerate(SERVICES):
            live = len(cluster.of(svc.name, tick))
            per_replica_rate = calls.get(svc.name, 0.0) / cluster.tick_s / max(live, 1)
            target = IDLE_CPU + cpu_per_call[svc.name] * per_replica_rate if live else 0.0
            cpu[i] += alpha * (target - cpu[i])
            if svc.autoscaled:
                scaler.step(cluster, tick, svc.name, float(cpu[i]), svc.replicas)
        history[tick] = cpu
    return history
