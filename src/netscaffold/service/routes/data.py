"""Topology, telemetry, routing information, predicted graph, config, model and strategy settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from netscaffold.service import codec, forecast, ingest
from netscaffold.service.auth import Principal, requires
from netscaffold.service.core import ServiceCore
from netscaffold.service.schemas import RoutingBatch, StrategySettings, TelemetryBatch
from netscaffold.service.tokens import Role

router = APIRouter(prefix="/v1")
Viewer = Annotated[Principal, Depends(requires(Role.VIEWER))]
Operator = Annotated[Principal, Depends(requires(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]


def core_of(request: Request) -> ServiceCore:
    core: ServiceCore = request.app.state.core
    return core


@router.get("/topology", tags=["topology"])
async def get_topology(request: Request, _: Viewer) -> dict[str, Any]:
    """The topology as NetJSON."""
    return core_of(request).topology_document()


@router.put("/topology", tags=["topology"])
def put_topology(
    request: Request,
    who: Operator,
    document: Annotated[dict[str, Any], Body(description="NetJSON NetworkGraph")],
) -> dict[str, Any]:
    topology = core_of(request).put_topology(document, who.actor)
    return {
        "name": topology.name,
        "nodes": len(topology.nodes),
        "links": len(topology.links),
        "endpoints": len(topology.endpoints),
    }


@router.post("/telemetry", tags=["ingest"])
def post_telemetry(request: Request, who: Operator, batch: TelemetryBatch) -> dict[str, Any]:
    return ingest.ingest_telemetry(core_of(request), batch, who.actor)


@router.post("/routing", tags=["ingest"])
def post_routing(request: Request, who: Operator, batch: RoutingBatch) -> dict[str, Any]:
    return ingest.ingest_routing(core_of(request), batch, who.actor)


@router.get("/routing", tags=["ingest"])
def get_routing(
    request: Request, _: Viewer, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[dict[str, Any]]:
    return ingest.recent_routing(core_of(request), limit)


@router.get("/predicted", tags=["forecast"])
async def get_predicted(request: Request, _: Viewer) -> dict[str, Any]:
    core = core_of(request)
    graph = await run_in_threadpool(forecast.predicted_graph, core)
    return forecast.graph_json(graph)


@router.get("/config", tags=["config"])
def get_config(request: Request, _: Viewer) -> dict[str, Any]:
    from netscaffold.service.core import config_digest

    config = core_of(request).current_config()
    return {"digest": config_digest(config), "items": codec.config_json(config)}


@router.get("/model", tags=["forecast"])
def get_model(request: Request, _: Viewer) -> dict[str, Any]:
    return forecast.model_status(core_of(request))


@router.post("/model/retrain", tags=["forecast"])
def post_retrain(request: Request, who: Admin) -> dict[str, Any]:
    return forecast.retrain(core_of(request), who.actor)


@router.get("/settings", tags=["settings"])
async def get_settings(request: Request, _: Viewer) -> StrategySettings:
    return core_of(request).settings


@router.put("/settings", tags=["settings"])
def put_settings(request: Request, who: Operator, settings: StrategySettings) -> StrategySettings:
    return core_of(request).put_settings(settings, who.actor)
