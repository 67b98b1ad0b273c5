"""One entry point for every workload kind, as the CLI and the scenarios name them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from netscaffold.errors import TrafficError
from netscaffold.model.topology import Topology
from netscaffold.telemetry.workload import Workload

KINDS = ("microservices", "batch", "tm-replay", "flow-trace")


@dataclass(frozen=True, slots=True)
class WorkloadOptions:
    """Options of ``netscaffold workload generate`` and ``netscaffold emulate`` (None: the kind's default)."""

    duration_s: float | None = None
    tick_s: float = 1.0
    tm: Path | None = None
    flows: Path | None = None
    app_telemetry: Path | None = None
    placement: str = "round-robin"
    size: str = "lognormal:4096:1.0"
    interval_s: float = 10.0
    flow_rate_per_s: float = 1000.0
    flow_share: float = 0.5
    start_step: int = 0


def _need(value: Path | None, option: str, kind: str) -> Path:
    if value is None:
        raise TrafficError(f"the {kind} workload needs {option}", field=option)
    return value


def make_workload(kind: str, topology: Topology, options: WorkloadOptions, *, seed: int = 0) -> Workload:
    """Build the workload ``kind`` on ``topology``; deterministic by ``seed``."""
    if kind == "microservices":
        from netscaffold.telemetry.microservices import MicroservicesConfig, microservices

        ms = MicroservicesConfig(tick_s=options.tick_s)
        ms = ms if options.duration_s is None else replace(ms, duration_s=options.duration_s)
        return microservices(topology, seed=seed, config=ms)
    if kind == "batch":
        from netscaffold.telemetry.batch import BatchConfig, batch

        bc = BatchConfig(tick_s=options.tick_s)
        bc = bc if options.duration_s is None else replace(bc, duration_s=options.duration_s)
        return batch(topology, seed=seed, config=bc)
    if kind == "tm-replay":
        from netscaffold.formats.traffic import load_traffic
        from netscaffold.telemetry.tm_replay import ReplayConfig, tm_replay

        series = load_traffic(_need(options.tm, "--tm", kind))
        rc = ReplayConfig(
            interval_s=options.interval_s,
            flow_rate_per_s=options.flow_rate_per_s,
            flow_share=options.flow_share,
            start_step=options.start_step,
            duration_s=options.duration_s,
            tick_s=options.tick_s,
        )
        return tm_replay(topology, series, seed=seed, config=rc)
    if kind == "flow-trace":
        from netscaffold.telemetry.flow_trace import flow_trace

        return flow_trace(
            topology,
            _need(options.flows, "--flows", kind),
            placement=options.placement,
            size=options.size,
            app_telemetry=options.app_telemetry,
            seed=seed,
            tick_s=options.tick_s,
            duration_s=options.duration_s,
        )
    raise TrafficError(f"unknown workload {kind!r} (one of {', '.join(KINDS)})", field="workload")
