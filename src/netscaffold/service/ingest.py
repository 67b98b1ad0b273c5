"""Telemetry and routing-information ingest: validated as a whole (nothing stored on any error), then one
transaction per batch."""

from __future__ import annotations

import json
from typing import Any

from netscaffold.errors import ValidationError
from netscaffold.model.config import Route, flow_key
from netscaffold.model.topology import Topology
from netscaffold.service.core import ServiceCore
from netscaffold.service.schemas import (
    FlowRequestBody,
    OrchestratorEventBody,
    RouteUpdateBody,
    RoutingBatch,
    TelemetryBatch,
)
from netscaffold.service.store import audit
from netscaffold.telemetry.workload import WorkloadEvent

RETAIN_ROWS = 2_000_000


def _known(topology: Topology) -> set[str]:
    return set(topology.endpoints) | set(topology.nodes)


def _check_columns(batch: TelemetryBatch, known: set[str]) -> None:
    n = len(batch.time_s)
    for name in ("src", "dst", "bytes"):
        if len(getattr(batch, name)) != n:
            raise ValidationError(f"{len(getattr(batch, name))} values, {n} in time_s", field=name)
    for name in ("src", "dst"):
        unknown = [i for i, ident in enumerate(getattr(batch, name)) if ident not in known]
        if unknown:
            first = unknown[0]
            raise ValidationError(
                f"unknown endpoint or node {getattr(batch, name)[first]!r} ({len(unknown)} such)",
                field=f"{name}[{first}]",
            )


def ingest_telemetry(core: ServiceCore, batch: TelemetryBatch, actor: str) -> dict[str, Any]:
    topology = core.require_topology()
    _check_columns(batch, _known(topology))
    rows = zip(batch.time_s, batch.src, batch.dst, batch.bytes, strict=True)
    with core.store.transaction(ingest=True) as conn:
        conn.executemany("INSERT INTO telemetry (time_s, src, dst, bytes) VALUES (?,?,?,?)", rows)
        last = conn.execute("SELECT max(seq) FROM telemetry").fetchone()[0] or 0
        if last > RETAIN_ROWS and last % 1000 < len(batch.time_s):
            conn.execute("DELETE FROM telemetry WHERE seq <= ?", (last - RETAIN_ROWS,))
        audit(conn, core.now(), actor, "telemetry.ingest", target="", detail=f"{len(batch.time_s)} samples")
    core.metrics.samples.inc(len(batch.time_s))
    _track_last_step(core, batch)
    return {"accepted": len(batch.time_s), "last_seq": last}


def _track_last_step(core: ServiceCore, batch: TelemetryBatch) -> None:
    """Keep bit/s per flow key of the newest step seen (for the reserved-but-unused gauge)."""
    step_s = core.settings.step_s
    newest, per_key = core.last_step
    per_key = dict(per_key)
    for time_s, src, dst, size in zip(batch.time_s, batch.src, batch.dst, batch.bytes, strict=True):
        step = int(time_s // step_s)
        if step > newest:
            newest, per_key = step, {}
        if step == newest:
            key = flow_key(src, dst)
            per_key[key] = per_key.get(key, 0.0) + size * 8.0 / step_s
    core.last_step = (newest, per_key)
    core.refresh_gauges()


def _scaffolded(topology: Topology, config_routes: set[tuple[str, str]], body: FlowRequestBody) -> bool:
    src = topology.endpoints.get(body.src)
    dst = topology.endpoints.get(body.dst)
    if src is None or dst is None:
        return False
    return (src.host, f"{dst.address}/{32 if '.' in dst.address else 128}") in config_routes


def _names_of(event: FlowRequestBody | RouteUpdateBody | OrchestratorEventBody) -> dict[str, str]:
    """Field -> the endpoint or node the event names there (checked against the topology)."""
    if isinstance(event, FlowRequestBody):
        return {"src": event.src, "dst": event.dst}
    if isinstance(event, RouteUpdateBody):
        return {"device": event.device}
    return event.endpoints()


def orchestrator_events(core: ServiceCore) -> list[WorkloadEvent]:
    """Every orchestrator event ingested, oldest first, as the forecast's replica lifecycle reads them."""
    with core.store.reading() as conn:
        rows = conn.execute(
            "SELECT body FROM routing WHERE kind = 'orchestrator' ORDER BY time_s, seq"
        ).fetchall()
    out: list[WorkloadEvent] = []
    for (body,) in rows:
        event = OrchestratorEventBody.model_validate_json(body)
        out.append(WorkloadEvent(event.time_s, event.event, event.subject, event.detail()))
    return out


def ingest_routing(core: ServiceCore, batch: RoutingBatch, actor: str) -> dict[str, Any]:
    topology = core.require_topology()
    known = _known(topology)
    for index, event in enumerate(batch.events):
        for name, ident in _names_of(event).items():
            allowed = topology.endpoints if isinstance(event, OrchestratorEventBody) else known
            if ident not in allowed:
                what = "endpoint" if isinstance(event, OrchestratorEventBody) else "endpoint or node"
                raise ValidationError(f"unknown {what} {ident!r}", field=f"events[{index}].{name}")
    config = core.current_config()
    routes = {(i.device, i.destination) for i in config if isinstance(i, Route)}
    now = core.now()
    hits = 0
    requests = 0
    with core.store.transaction(ingest=True) as conn:
        for event in batch.events:
            conn.execute(
                "INSERT INTO routing (kind, time_s, body) VALUES (?,?,?)",
                (event.kind, event.time_s, event.model_dump_json()),
            )
        audit(conn, now, actor, "routing.ingest", target="", detail=f"{len(batch.events)} events")
    for event in batch.events:
        if not isinstance(event, FlowRequestBody):
            continue
        requests += 1
        hit = _scaffolded(topology, routes, event)
        hits += hit
        core.metrics.flow_requests.labels(scaffolded=str(hit).lower()).inc()
        core.metrics.setup_latency.observe(event.setup_delay_s)
        if not hit:
            core.events.publish(
                "discrepancy", now, {"pair": f"{event.src}->{event.dst}", "reason": "not scaffolded"}
            )
    _update_hit_ratio(core, hits, requests)
    return {"accepted": len(batch.events), "flow_requests": requests, "scaffolded": hits}


def _update_hit_ratio(core: ServiceCore, hits: int, requests: int) -> None:
    core.flow_hits += hits
    core.flow_requests += requests
    if core.flow_requests:
        core.metrics.hit_ratio.set(core.flow_hits / core.flow_requests)


def recent_routing(core: ServiceCore, limit: int) -> list[dict[str, Any]]:
    with core.store.reading() as conn:
        rows = conn.execute("SELECT seq, body FROM routing ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
    return [{"seq": seq, **json.loads(body)} for seq, body in rows]
