"""Topology, telemetry, routing information, predicted graph, config, model and strategy settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from netscaffold import __version__
from netscaffold.formats import configjson
from netscaffold.service import forecast, ingest
from netscaffold.service.auth import Principal, requires
from netscaffold.service.core import ServiceCore, config_digest
from netscaffold.service.responses import cached_json, forever
from netscaffold.service.schemas import RoutingBatch, StrategySettings, TelemetryBatch
from netscaffold.service.tokens import Role

router = APIRouter(prefix="/v1")
Viewer = Annotated[Principal, Depends(requires(Role.VIEWER))]
Operator = Annotated[Principal, Depends(requires(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]


def core_of(request: Request) -> ServiceCore:
    core: ServiceCore = request.app.state.core
    return core


# Reads answer pre-encoded bytes (service.responses); response_model documents their shape in OpenAPI.
@router.get("/topology", tags=["topology"], response_model=dict[str, Any])
async def get_topology(request: Request, _: Viewer) -> Response:
    """The topology as NetJSON."""
    core = core_of(request)
    return await cached_json(request, "state", lambda: forever(core.topology_document()))


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


@router.get("/routing", tags=["ingest"], response_model=list[dict[str, Any]])
async def get_routing(
    request: Request, _: Viewer, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> Response:
    core = core_of(request)
    return await cached_json(request, "all", lambda: forever(ingest.recent_routing(core, limit)))


@router.get("/predicted", tags=["forecast"], response_model=dict[str, Any])
async def get_predicted(request: Request, _: Viewer) -> Response:
    core = core_of(request)
    return await cached_json(
        request, "all", lambda: forever(forecast.graph_json(forecast.predicted_graph(core)))
    )


def _config_body(core: ServiceCore) -> tuple[dict[str, Any], float]:
    config = core.current_config()
    return {"digest": config_digest(config), "items": configjson.config_json(config)}, core.config_stale_at(
        config
    )


@router.get("/config", tags=["config"], response_model=dict[str, Any])
async def get_config(request: Request, _: Viewer) -> Response:
    core = core_of(request)
    return await cached_json(request, "state", lambda: _config_body(core))


@router.get("/model", tags=["forecast"], response_model=dict[str, Any])
async def get_model(request: Request, _: Viewer) -> Response:
    core = core_of(request)
    return await cached_json(request, "all", lambda: forever(forecast.model_status(core)))


@router.post("/model/retrain", tags=["forecast"])
def post_retrain(request: Request, who: Admin) -> dict[str, Any]:
    """Score and refit the forecaster (a sync route: FastAPI runs it in its thread pool, so the event loop
    keeps serving while the fit runs, in process or as a Ray task under ``serve --ray``)."""
    return forecast.retrain(core_of(request), who.actor)


@router.get("/status", tags=["health"])
def get_status(request: Request, _: Viewer) -> dict[str, Any]:
    """What this instance runs on: the backend and where the analytics run (``ray``: on, address,
    whether the cluster answers now)."""
    core = core_of(request)
    return {
        "version": __version__,
        "backend": core.backend_name,
        "backend_error": core.backend_error,
        "topology": None if core.topology is None else core.topology.name,
        "forecaster": core.settings.forecaster,
        "analytics": core.analytics.status(),
    }


@router.get("/settings", tags=["settings"], response_model=StrategySettings)
async def get_settings(request: Request, _: Viewer) -> Response:
    core = core_of(request)
    return await cached_json(request, "state", lambda: forever(core.settings.model_dump(mode="json")))


@router.put("/settings", tags=["settings"])
def put_settings(request: Request, who: Operator, settings: StrategySettings) -> StrategySettings:
    return core_of(request).put_settings(settings, who.actor)
