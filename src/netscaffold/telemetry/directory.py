"""The telemetry directory: what ``netscaffold workload generate`` writes and ``--telemetry DIR`` reads.

``flows.csv`` (the flow-trace format), ``app_telemetry.csv`` (one row per tick and endpoint),
``pair_bytes.npz`` (``tm[ticks, endpoints, endpoints]`` bytes per tick, the traffic-matrix layout),
``placement.csv`` (endpoint, host, app: replays the flows with ``--placement``) and ``meta.json``
(topology, endpoints, placement, seed, QoS, events, notes). Formats: docs/formats.md.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TopologyError, TrafficError
from netscaffold.model.flows import FlowTable
from netscaffold.model.topology import Endpoint, Link, Node, NodeKind, Topology
from netscaffold.telemetry.store import TelemetryStore
from netscaffold.telemetry.traces import read_app_telemetry, read_flow_trace
from netscaffold.telemetry.workload import Workload, WorkloadEvent

FORMAT = "netscaffold-telemetry"
FORMAT_VERSION = 1
FILES = ("flows.csv", "app_telemetry.csv", "pair_bytes.npz", "placement.csv", "meta.json")


@dataclass(frozen=True, eq=False)
class TelemetryDir:
    """A loaded telemetry directory: everything a predictor needs."""

    path: Path
    topology: Topology
    flows: FlowTable
    store: TelemetryStore
    events: tuple[WorkloadEvent, ...]
    seed: int
    meta: dict[str, Any]

    @property
    def placement(self) -> dict[str, str]:
        return {ep: self.topology.endpoints[ep].host for ep in self.store.endpoints}


def _topology_json(topology: Topology) -> dict[str, Any]:
    return {
        "name": topology.name,
        "nodes": [
            {"id": n.id, "kind": n.kind.value, "longitude": n.longitude, "latitude": n.latitude}
            for n in topology.nodes.values()
        ],
        "links": [
            {
                "src": lk.src,
                "dst": lk.dst,
                "capacity_bps": lk.capacity_bps,
                "delay_s": lk.delay_s,
                "cost": lk.cost,
            }
            for lk in topology.links.values()
        ],
        "endpoints": [
            {"id": e.id, "host": e.host, "address": e.address, "app": e.app}
            for e in topology.endpoints.values()
        ],
    }


def _topology_from_json(data: dict[str, Any], where: str) -> Topology:
    try:
        nodes = [
            Node(n["id"], NodeKind(n["kind"]), n.get("longitude"), n.get("latitude")) for n in data["nodes"]
        ]
        links = [
            Link(lk["src"], lk["dst"], float(lk["capacity_bps"]), float(lk["delay_s"]), float(lk["cost"]))
            for lk in data["links"]
        ]
        endpoints = [Endpoint(e["id"], e["host"], e["address"], e.get("app", "")) for e in data["endpoints"]]
        return Topology.build(nodes, links, endpoints, name=str(data["name"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, TopologyError):
            raise exc.at(file=where, field="topology") from None
        raise TrafficError(f"malformed topology: {exc!r}", file=where, field="topology") from None


def write_flows_csv(flows: FlowTable, path: Path) -> None:
    """The flow-trace CSV of ``flows``: exact floats; paced flows get ``duration_s = bytes * 8 / rate``."""
    timed = ~np.isnan(flows.duration_s)
    size = flows.size_bytes.copy()
    size[timed] = flows.rate_bps[timed] * flows.duration_s[timed] / 8.0
    paced = np.isfinite(flows.rate_bps)
    duration = np.where(paced, size * 8.0 / np.where(paced, flows.rate_bps, 1.0), np.nan)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time_s", "src", "dst", "bytes", "duration_s", "qos", "dst_port"])
        names, qos = flows.endpoints, flows.qos_names
        for row in zip(
            flows.start_s.tolist(),
            flows.src.tolist(),
            flows.dst.tolist(),
            size.tolist(),
            duration.tolist(),
            flows.qos.tolist(),
            flows.dst_port.tolist(),
            strict=True,
        ):
            t, s, d, b, dur, q, port = row
            writer.writerow(
                [repr(t), names[s], names[d], repr(b), "" if math.isnan(dur) else repr(dur), qos[q], port]
            )


def _write_app_csv(store: TelemetryStore, path: Path) -> None:
    window = store.apps()
    times = store.tick_times_s()
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time_s", "app", "cpu", "memory", "rx_bytes", "tx_bytes"])
        for k, time_s in enumerate(times.tolist()):
            for j, endpoint in enumerate(store.endpoints):
                values = (window.cpu[k, j], window.memory[k, j], window.rx_bytes[k, j], window.tx_bytes[k, j])
                writer.writerow([repr(time_s), endpoint, *(repr(float(v)) for v in values)])


def write_telemetry_dir(workload: Workload, out: Path, *, source: dict[str, Any] | None = None) -> list[Path]:
    """Write the five files into ``out`` (created when missing); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    store = workload.telemetry
    write_flows_csv(workload.flows, out / "flows.csv")
    _write_app_csv(store, out / "app_telemetry.csv")
    np.savez_compressed(
        out / "pair_bytes.npz",
        tm=store.pair_matrix(),
        nodes=np.array(store.endpoints),
        interval_s=np.float64(store.tick_s),
        unit=np.array("bytes"),
        start_s=np.float64(store.start_s),
        times_s=store.tick_times_s(),
    )
    with (out / "placement.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["name", "host", "app"])
        for endpoint in store.endpoints:
            ep = workload.topology.endpoints[endpoint]
            writer.writerow([endpoint, ep.host, ep.app_name])
    (out / "meta.json").write_text(json.dumps(_meta(workload, source), indent=2) + "\n", encoding="utf-8")
    return [out / name for name in FILES]


def _meta(workload: Workload, source: dict[str, Any] | None) -> dict[str, Any]:
    store = workload.telemetry
    qos = workload.qos
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "workload": workload.kind,
        "seed": workload.seed,
        "source": source or {},
        "tick_s": store.tick_s,
        "start_s": store.start_s,
        "ticks": store.ticks,
        "duration_s": workload.duration_s,
        "flows": len(workload.flows),
        "endpoints": list(store.endpoints),
        "placement": workload.placement,
        "topology": _topology_json(workload.topology),
        "qos": {
            "per_pair": [
                {
                    "src_app": s,
                    "dst_app": d,
                    "class": p.name,
                    "min_bandwidth_bps": p.min_bandwidth_bps,
                    "max_latency_s": p.max_latency_s,
                    "priority": p.priority,
                    "allowed_ports": list(p.allowed_ports),
                }
                for (s, d), p in sorted(qos.per_pair.items())
            ],
        },
        "events": [e.to_json() for e in workload.events],
        "notes": list(workload.notes),
        "stats": dict(workload.stats),
    }


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrafficError(f"cannot read: {exc.strerror}", file=str(meta_path)) from None
    except ValueError as exc:
        raise TrafficError(f"not JSON: {exc}", file=str(meta_path)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TrafficError(f"not a telemetry directory (format is not {FORMAT!r})", file=str(meta_path))
    if meta.get("format_version") != FORMAT_VERSION:
        raise TrafficError(
            f"format_version {meta.get('format_version')!r} (this reads {FORMAT_VERSION})",
            file=str(meta_path),
            field="format_version",
        )
    return meta


def _read_pairs(
    path: Path, endpoints: tuple[str, ...], ticks: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    npz = path / "pair_bytes.npz"
    try:
        with np.load(npz, allow_pickle=False) as archive:
            tm = np.asarray(archive["tm"], dtype=np.float64)
            nodes = tuple(str(n) for n in archive["nodes"])
    except (OSError, ValueError, KeyError) as exc:
        raise TrafficError(f"cannot read pair bytes: {exc}", file=str(npz)) from None
    if nodes != endpoints or tm.shape != (ticks, len(endpoints), len(endpoints)):
        raise TrafficError(
            f"tm {tm.shape} and nodes disagree with meta.json ({ticks} ticks, {len(endpoints)} endpoints)",
            file=str(npz),
            field="tm",
        )
    tick, src, dst = (np.asarray(a, dtype=np.int64) for a in np.nonzero(tm))
    return tick, src, dst, tm[tick, src, dst]


def _app_arrays(
    path: Path, endpoints: tuple[str, ...], grid: tuple[float, float, int]
) -> dict[str, np.ndarray]:
    start_s, tick_s, ticks = grid
    samples = read_app_telemetry(path / "app_telemetry.csv", endpoints)
    tick = np.rint((samples.time_s - start_s) / tick_s).astype(np.int64)
    bad = np.flatnonzero((tick < 0) | (tick >= ticks) | ~np.isclose(start_s + tick * tick_s, samples.time_s))
    if bad.size:
        raise TrafficError(
            "time_s is not a tick start of meta.json's grid",
            file=str(samples.path),
            line=int(samples.lines[bad[0]]),
            field="time_s",
        )
    index = {name: i for i, name in enumerate(endpoints)}
    column = np.array([index[a] for a in samples.app], dtype=np.int64)
    out = {}
    for name in ("cpu", "memory", "tx_bytes", "rx_bytes"):
        out[name] = np.zeros((ticks, len(endpoints)))
        out[name][tick, column] = getattr(samples, name)
    return out


def load_telemetry_dir(path: Path | str) -> TelemetryDir:
    """Read a telemetry directory; a missing file or a disagreement raises TrafficError naming it."""
    path = Path(path)
    if not path.is_dir():
        raise TrafficError("telemetry directory does not exist", file=str(path))
    meta = _read_meta(path)
    where = str(path / "meta.json")
    try:
        endpoints = tuple(str(e) for e in meta["endpoints"])
        grid = (float(meta["start_s"]), float(meta["tick_s"]), int(meta["ticks"]))
        seed = int(meta["seed"])
        events = tuple(
            WorkloadEvent(float(e.pop("time_s")), str(e.pop("kind")), str(e.pop("subject")), e)
            for e in (dict(raw) for raw in meta.get("events", []))
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TrafficError(f"malformed: {exc!r}", file=where) from None
    topology = _topology_from_json(meta["topology"], where)
    tick, src, dst, sent = _read_pairs(path, endpoints, grid[2])
    apps = _app_arrays(path, endpoints, grid)
    store = TelemetryStore.from_arrays(
        endpoints=endpoints,
        apps=[topology.endpoint(e).app_name for e in endpoints],
        tick_s=grid[1],
        start_s=grid[0],
        **apps,
        pair_tick=tick,
        pair_src=src,
        pair_dst=dst,
        pair_bytes=sent,
    )
    return TelemetryDir(path, topology, _read_flows(path, endpoints), store, events, seed, meta)


def _read_flows(path: Path, endpoints: tuple[str, ...]) -> FlowTable:
    trace = read_flow_trace(path / "flows.csv", endpoints)
    missing = np.flatnonzero(np.isnan(trace.size_bytes))
    if missing.size:
        raise TrafficError(
            "missing value", file=str(trace.path), line=int(trace.lines[missing[0]]), field="bytes"
        )
    return trace.to_flow_table(trace.size_bytes, endpoints)
