"""The ``flow-trace`` workload: replay recorded flows or calls from a CSV (see :mod:`traces`).

Each distinct ``src``/``dst`` name is one endpoint, placed on the topology's attachment nodes
(``round-robin`` in order of first appearance, ``random`` by seed, or a placement CSV). A row with
``bytes`` and ``duration_s`` is a flow of those bytes paced over that duration (it lasts longer when
congested); with ``bytes`` only, an elastic flow; without ``bytes``, the size is drawn from ``size``
(``lognormal:MEAN[:SIGMA]``, ``pareto:MEAN[:SHAPE]``, ``const:BYTES``). Gaps in the trace stay idle time.

The optional app-telemetry CSV is aligned to ticks: ``cpu`` and ``memory`` hold the last sample at or
before the tick's start (zero before an app's first sample); ``rx_bytes`` and ``tx_bytes`` count the bytes
of the interval from a sample to the app's next one (the last sample: the app's median interval) and are
spread over it, so volume is kept whatever the sampling interval. Apps without samples get tx/rx from the
flows. Sample times may be negative (history before the first call): the tick grid then starts earlier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TopologyError, TrafficError
from netscaffold.model.flows import FlowTable
from netscaffold.model.qos import QosPolicy, QosProfile
from netscaffold.model.topology import Topology
from netscaffold.telemetry.callgraph import QOS_CLASSES
from netscaffold.telemetry.store import TelemetryStore
from netscaffold.telemetry.traces import (
    AppSamples,
    FlowTrace,
    read_app_telemetry,
    read_flow_trace,
    read_placement,
)
from netscaffold.telemetry.workload import (
    Workload,
    attach,
    build_store,
    bytes_per_tick,
    first_flows,
    tick_count,
)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SizeDistribution:
    kind: str
    mean_bytes: float
    shape: float

    @classmethod
    def parse(cls, spec: str) -> SizeDistribution:
        parts = spec.split(":")
        defaults = {"lognormal": 1.0, "pareto": 1.5, "const": 0.0}
        if parts[0] not in defaults or not 2 <= len(parts) <= 3:
            raise TrafficError(
                f"size distribution {spec!r}: use lognormal:MEAN[:SIGMA], pareto:MEAN[:SHAPE] or const:BYTES",
                field="size",
            )
        try:
            mean = float(parts[1])
            shape = float(parts[2]) if len(parts) == 3 else defaults[parts[0]]
        except ValueError:
            raise TrafficError(f"size distribution {spec!r}: not a number", field="size") from None
        if not (math.isfinite(mean) and mean > 0 and math.isfinite(shape) and shape >= 0):
            raise TrafficError(f"size distribution {spec!r}: mean must be > 0, shape >= 0", field="size")
        if parts[0] == "pareto" and shape <= 1:
            raise TrafficError(f"size distribution {spec!r}: a Pareto shape must be > 1", field="size")
        return cls(parts[0], mean, shape)

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        if self.kind == "const":
            return np.full(n, self.mean_bytes)
        if self.kind == "pareto":
            scale = self.mean_bytes * (self.shape - 1.0) / self.shape
            return np.asarray(scale * (1.0 + rng.pareto(self.shape, n)), dtype=np.float64)
        mu = math.log(self.mean_bytes) - self.shape**2 / 2.0
        return np.maximum(rng.lognormal(mu, self.shape, n), 1.0)


def _place(
    topology: Topology, trace_names: tuple[str, ...], placement: str, rng: np.random.Generator
) -> list[tuple[str, str, str]]:
    hosts = topology.attachment_nodes()
    if placement == "round-robin":
        return [(name, hosts[i % len(hosts)], name) for i, name in enumerate(trace_names)]
    if placement == "random":
        picks = rng.integers(len(hosts), size=len(trace_names))
        return [(name, hosts[int(h)], name) for name, h in zip(trace_names, picks, strict=True)]
    path = Path(placement)
    rows = read_placement(path)
    for name, host, _, line in rows:
        if host not in topology.nodes:
            raise TopologyError(
                f"unknown host {host!r} for {name!r}", file=str(path), line=line, element=host
            )
    return [(name, host, app) for name, host, app, _ in rows]


def _qos_policy(trace: FlowTrace, apps: list[str]) -> QosPolicy:
    known = {q.name: q for q in QOS_CLASSES}
    profiles = [known.get(name, QosProfile(name)) for name in trace.qos_names]
    per_pair: dict[tuple[str, str], QosProfile] = {}
    for s, d, q in zip(trace.src.tolist(), trace.dst.tolist(), trace.qos.tolist(), strict=True):
        if q:
            per_pair.setdefault((apps[s], apps[d]), profiles[q])
    return QosPolicy(per_pair=per_pair)


def _flow_table(
    trace: FlowTrace, size: SizeDistribution, rng: np.random.Generator, names: tuple[str, ...]
) -> FlowTable:
    sizes = trace.size_bytes.copy()
    missing = np.isnan(sizes)
    sizes[missing] = size.sample(rng, int(missing.sum()))
    return trace.to_flow_table(sizes, names)


def _align(
    samples: AppSamples, store_grid: tuple[float, float, int], names: tuple[str, ...]
) -> dict[str, FloatArray]:
    """Per tick and endpoint: held cpu/memory, interval-spread rx/tx; ``covered`` marks sampled apps."""
    origin_s, tick_s, ticks = store_grid
    index = {name: i for i, name in enumerate(names)}
    app_idx = np.array([index[a] for a in samples.app], dtype=np.int64)
    order = np.lexsort((samples.time_s, app_idx))
    app_sorted, time_sorted = app_idx[order], samples.time_s[order]
    for i in np.flatnonzero((np.diff(app_sorted) == 0) & (np.diff(time_sorted) == 0)):
        raise TrafficError(
            "a second sample of this app at the same time",
            file=str(samples.path),
            line=int(samples.lines[order][i + 1]),
            field="time_s",
        )
    out = {k: np.zeros((ticks, len(names))) for k in ("cpu", "memory", "rx_bytes", "tx_bytes")}
    out["covered"] = np.zeros((1, len(names)))
    starts = origin_s + np.arange(ticks) * tick_s
    for app in np.unique(app_sorted):
        rows = order[app_sorted == app]
        times = samples.time_s[rows]
        held = np.searchsorted(times, starts, side="right") - 1
        for name in ("cpu", "memory"):
            values = getattr(samples, name)[rows]
            out[name][:, app] = np.where(held >= 0, values[np.maximum(held, 0)], 0.0)
        gaps = np.diff(times)
        last = float(np.median(gaps)) if gaps.size else tick_s
        ends = np.append(times[1:], times[-1] + last)
        for name in ("rx_bytes", "tx_bytes"):
            tick, _, sent = bytes_per_tick(
                times,
                ends,
                getattr(samples, name)[rows],
                np.zeros(times.size, dtype=np.int64),
                origin_s=origin_s,
                tick_s=tick_s,
                ticks=ticks,
            )
            out[name][tick, app] = sent
        out["covered"][0, app] = 1.0
    return out


def flow_trace(
    topology: Topology,
    flows_path: Path,
    *,
    placement: str = "round-robin",
    size: str = "lognormal:4096:1.0",
    app_telemetry: Path | None = None,
    seed: int = 0,
    tick_s: float = 1.0,
    duration_s: float | None = None,
) -> Workload:
    rng = np.random.default_rng(seed)
    distribution = SizeDistribution.parse(size)
    placed_names: tuple[str, ...] | None = None
    if placement not in ("round-robin", "random"):
        placed_names = tuple(name for name, _, _, _ in read_placement(Path(placement)))
    trace = read_flow_trace(flows_path, placed_names)
    rows = _place(topology, trace.names, placement, rng)
    names = tuple(name for name, _, _ in rows)
    placed = attach(topology, rows)
    flows = _flow_table(trace, distribution, rng, names)
    samples = read_app_telemetry(app_telemetry, names) if app_telemetry else None
    first_sample = float(samples.time_s.min()) if samples else 0.0
    origin_s = min(0.0, math.floor(first_sample / tick_s) * tick_s)
    last_s = max(float(trace.time_s.max()), float(samples.time_s.max()) if samples else 0.0)
    end_s = duration_s if duration_s is not None else last_s + tick_s
    keep = flows.start_s < end_s
    flows = first_flows(flows, int(keep.sum()))
    ticks = tick_count(end_s, tick_s, origin_s)
    store = build_store(placed, flows, tick_s=tick_s, ticks=ticks, origin_s=origin_s)
    if samples is not None:
        store = _with_samples(store, _align(samples, (origin_s, tick_s, ticks), names))
    apps = [placed.endpoints[n].app_name for n in names]
    notes = [f"{len(trace.names)} names in the trace, placement {placement}"]
    if origin_s < 0:
        notes.append(f"app telemetry starts at {first_sample:g} s: the tick grid starts at {origin_s:g} s")
    return Workload(
        kind="flow-trace",
        topology=placed,
        flows=flows,
        telemetry=store,
        events=(),
        qos=_qos_policy(trace, apps),
        seed=seed,
        duration_s=float(end_s),
        notes=tuple(notes),
        stats={"drawn_sizes": float(np.isnan(trace.size_bytes).sum())},
    )


def _with_samples(store: TelemetryStore, aligned: dict[str, FloatArray]) -> TelemetryStore:
    window = store.apps()
    covered = aligned["covered"].astype(bool)
    tick, src, dst, sent = store.pair_columns()
    return TelemetryStore.from_arrays(
        endpoints=store.endpoints,
        apps=store.apps_of_endpoints,
        tick_s=store.tick_s,
        start_s=store.start_s,
        cpu=aligned["cpu"],
        memory=aligned["memory"],
        tx_bytes=np.where(covered, aligned["tx_bytes"], window.tx_bytes),
        rx_bytes=np.where(covered, aligned["rx_bytes"], window.rx_bytes),
        pair_tick=tick,
        pair_src=src,
        pair_dst=dst,
        pair_bytes=sent,
    )
