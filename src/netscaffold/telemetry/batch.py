"""The ``batch`` workload: jobs that start, compute, shuffle all-to-all among their workers, and end.

Jobs arrive as a Poisson process. A ``mapreduce`` job has one round (map, shuffle, reduce); a
``training`` job has many rounds, each a compute step then an all-to-all exchange of the model update.
Workers are new endpoints on distinct hosts for the job's lifetime (new pairs appear with every job).
Telemetry: a worker's CPU is high while it computes and low while it shuffles, so CPU announces the
shuffle that follows; memory grows while the input is loaded. Deterministic by seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from netscaffold.model.flows import FlowTable
from netscaffold.model.qos import QosPolicy
from netscaffold.model.topology import Topology
from netscaffold.telemetry.workload import (
    Workload,
    WorkloadEvent,
    attach,
    build_store,
    first_flows,
    tick_count,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BatchConfig:
    duration_s: float = 600.0
    tick_s: float = 1.0
    job_every_s: float = 40.0
    workers: tuple[int, int] = (4, 8)
    training_share: float = 0.4
    shuffle_bytes_mean: float = 2e9  # all bytes one mapreduce shuffle moves
    model_bytes_mean: float = 200e6  # bytes of one training all-to-all round
    map_s_mean: float = 20.0
    reduce_s_mean: float = 10.0
    step_s_mean: float = 4.0
    rounds: tuple[int, int] = (5, 15)
    cores_per_worker: float = 4.0
    worker_memory_bytes: float = 8e9


@dataclass
class _Job:
    index: int
    kind: str
    start_s: float
    workers: list[int]  # endpoint indices
    shuffles_s: list[float] = field(default_factory=list)
    round_bytes: float = 0.0
    end_s: float = 0.0


@dataclass
class _Build:
    endpoints: list[tuple[str, str, str]] = field(default_factory=list)
    start: list[FloatArray] = field(default_factory=list)
    src: list[IntArray] = field(default_factory=list)
    dst: list[IntArray] = field(default_factory=list)
    size: list[FloatArray] = field(default_factory=list)
    phases: list[tuple[int, float, float, float]] = field(default_factory=list)  # endpoint, from, to, cpu


def _shuffle(build: _Build, job: _Job, at_s: float, rng: np.random.Generator, skew: float) -> None:
    workers = np.array(job.workers, dtype=np.int64)
    src, dst = np.meshgrid(workers, workers, indexing="ij")
    off = src != dst
    n = int(off.sum())
    share = rng.lognormal(-(skew**2) / 2.0, skew, n) if skew > 0 else np.ones(n)
    build.start.append(at_s + rng.uniform(0.0, 0.05, n))
    build.src.append(src[off])
    build.dst.append(dst[off])
    build.size.append(np.maximum(job.round_bytes / n * share / share.mean(), 1.0))


def _run_job(build: _Build, job: _Job, cfg: BatchConfig, rng: np.random.Generator, access_bps: float) -> None:
    """Lay out the job's phases: compute (busy CPU) then shuffle, per round; the job ends after the last."""
    w = len(job.workers)
    if job.kind == "mapreduce":
        rounds, compute_mean, skew = 1, cfg.map_s_mean, 0.3
        job.round_bytes = float(rng.lognormal(math.log(cfg.shuffle_bytes_mean) - 0.125, 0.5))
    else:
        rounds, compute_mean, skew = int(rng.integers(cfg.rounds[0], cfg.rounds[1] + 1)), cfg.step_s_mean, 0.0
        job.round_bytes = float(rng.lognormal(math.log(cfg.model_bytes_mean) - 0.125, 0.5))
    t = job.start_s
    shuffle_s = job.round_bytes / w * 8.0 / access_bps  # each worker sends its share at its access rate
    for _ in range(rounds):
        compute_s = float(rng.lognormal(math.log(compute_mean) - 0.045, 0.3))
        load = cfg.cores_per_worker * float(rng.uniform(0.8, 1.0))
        build.phases.extend((e, t, t + compute_s, load) for e in job.workers)
        t += compute_s
        _shuffle(build, job, t, rng, skew)
        job.shuffles_s.append(t)
        build.phases.extend((e, t, t + shuffle_s, 0.5) for e in job.workers)
        t += shuffle_s
    if job.kind == "mapreduce":
        reduce_s = float(rng.lognormal(math.log(cfg.reduce_s_mean) - 0.045, 0.3))
        build.phases.extend((e, t, t + reduce_s, cfg.cores_per_worker * 0.6) for e in job.workers)
        t += reduce_s
    job.end_s = t


def _telemetry(build: _Build, cfg: BatchConfig, ticks: int) -> tuple[FloatArray, FloatArray]:
    n = len(build.endpoints)
    cpu = np.zeros((ticks, n))
    memory = np.zeros((ticks, n))
    first: dict[int, float] = {}
    for endpoint, a, b, load in build.phases:
        first.setdefault(endpoint, a)
        k0, k1 = int(a / cfg.tick_s), min(math.ceil(b / cfg.tick_s), ticks)
        for k in range(k0, k1):  # phases are seconds long: a few ticks each
            overlap = min(b, (k + 1) * cfg.tick_s) - max(a, k * cfg.tick_s)
            cpu[k, endpoint] += load * max(overlap, 0.0) / cfg.tick_s
            ramp = min((k * cfg.tick_s - first[endpoint]) / cfg.map_s_mean + 0.2, 1.0)
            memory[k, endpoint] = max(memory[k, endpoint], cfg.worker_memory_bytes * max(ramp, 0.2))
    return cpu, memory


def batch(topology: Topology, *, seed: int = 0, config: BatchConfig | None = None) -> Workload:
    cfg = config or BatchConfig()
    ticks = tick_count(cfg.duration_s, cfg.tick_s)
    rng = np.random.default_rng(seed)
    hosts = topology.attachment_nodes()
    access_bps = min(lk.capacity_bps for lk in topology.links.values())
    build, jobs = _Build(), list[_Job]()
    t = float(rng.exponential(cfg.job_every_s / 4.0))
    while t < cfg.duration_s:
        index = len(jobs)
        w = int(rng.integers(cfg.workers[0], cfg.workers[1] + 1))
        placed = rng.permutation(len(hosts))[:w] if w <= len(hosts) else rng.integers(len(hosts), size=w)
        first = len(build.endpoints)
        build.endpoints.extend(
            (f"job{index}-{i}", hosts[int(h)], f"job{index}") for i, h in enumerate(placed)
        )
        kind = "training" if rng.uniform() < cfg.training_share else "mapreduce"
        job = _Job(index, kind, t, list(range(first, first + w)))
        _run_job(build, job, cfg, rng, access_bps)
        jobs.append(job)
        t += float(rng.exponential(cfg.job_every_s))
    return _assemble(topology, build, jobs, cfg, ticks=ticks, seed=seed)


def _assemble(
    topology: Topology, build: _Build, jobs: list[_Job], cfg: BatchConfig, *, ticks: int, seed: int
) -> Workload:
    placed = attach(topology, build.endpoints)
    endpoints = tuple(e for e, _, _ in build.endpoints)
    flows = FlowTable.build(
        start_s=np.concatenate(build.start) if build.start else np.zeros(0),
        src=np.concatenate(build.src) if build.src else np.zeros(0),
        dst=np.concatenate(build.dst) if build.dst else np.zeros(0),
        size_bytes=np.concatenate(build.size) if build.size else np.zeros(0),
        endpoints=endpoints,
    )
    flows = first_flows(flows, int(np.searchsorted(flows.start_s, cfg.duration_s)))
    cpu, memory = _telemetry(build, cfg, ticks)
    store = build_store(placed, flows, tick_s=cfg.tick_s, ticks=ticks, cpu=cpu, memory=memory)
    events: list[WorkloadEvent] = []
    for job in jobs:
        hosts = ",".join(placed.endpoints[endpoints[e]].host for e in job.workers)
        detail: dict[str, str | float] = {"kind": job.kind, "workers": len(job.workers), "hosts": hosts}
        events.append(WorkloadEvent(round(job.start_s, 6), "job-start", f"job{job.index}", detail))
        if job.end_s < cfg.duration_s:
            events.append(WorkloadEvent(round(job.end_s, 6), "job-end", f"job{job.index}", {}))
    events.sort(key=lambda e: (e.time_s, e.kind, e.subject))
    return Workload(
        kind="batch",
        topology=placed,
        flows=flows,
        telemetry=store,
        events=tuple(events),
        qos=QosPolicy(),
        seed=seed,
        duration_s=cfg.duration_s,
        stats={"jobs": float(len(jobs))},
    )
