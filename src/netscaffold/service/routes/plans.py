"""Plans (dry-run, apply, rollback), the event stream, tokens and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from netscaffold.errors import ValidationError
from netscaffold.service import plans, tokens
from netscaffold.service.auth import VERIFIED, Principal, requires
from netscaffold.service.core import NotFoundError
from netscaffold.service.responses import cached_json, forever
from netscaffold.service.routes.data import Admin, Operator, Viewer, core_of
from netscaffold.service.schemas import PlanRequest, TokenRequest
from netscaffold.service.store import audit
from netscaffold.service.tokens import Role

router = APIRouter(prefix="/v1")
PlanId = Annotated[int, Path(ge=1, le=2**62)]
_ = (Principal, Depends, requires, Role)


@router.post("/plans", tags=["plans"])
def post_plan(request: Request, who: Operator, body: PlanRequest) -> dict[str, Any]:
    """Validate a plan from the current config to ``desired`` (or to the scaffolder's primed config);
    ``dry_run`` returns it without storing it."""
    return plans.create_plan(core_of(request), body, who.actor)


@router.get("/plans", tags=["plans"], response_model=list[dict[str, Any]])
async def get_plans(
    request: Request,
    _: Viewer,
    status: Literal["pending", "applied", "rolled-back", "superseded"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    core = core_of(request)
    return await cached_json(request, "state", lambda: forever(plans.list_plans(core, status, limit)))


@router.get("/plans/{plan_id}", tags=["plans"], response_model=dict[str, Any])
async def get_plan(request: Request, _: Viewer, plan_id: PlanId) -> Response:
    core = core_of(request)
    return await cached_json(request, "state", lambda: forever(plans.get_plan(core, plan_id)))


@router.post("/plans/{plan_id}/apply", tags=["plans"])
def apply_plan(request: Request, who: Operator, plan_id: PlanId) -> dict[str, Any]:
    return plans.apply_plan(core_of(request), plan_id, who.actor)


@router.post("/plans/{plan_id}/rollback", tags=["plans"])
def rollback_plan(request: Request, who: Operator, plan_id: PlanId) -> dict[str, Any]:
    return plans.rollback_plan(core_of(request), plan_id, who.actor)


@router.get("/events", tags=["events"], response_class=StreamingResponse)
async def get_events(
    request: Request,
    _: Viewer,
    after: Annotated[int, Query(ge=0)] = 0,
    wait_s: Annotated[float, Query(ge=0, le=300)] = 15.0,
) -> StreamingResponse:
    """Server-sent events (plan.*, discrepancy) after sequence ``after``, for up to ``wait_s`` seconds."""
    log = core_of(request).events

    async def stream() -> AsyncIterator[str]:
        seen = after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        yield ": netscaffold events\n\n"
        while True:
            for event in log.after(seen):
                seen = event.seq
                yield event.sse()
            if loop.time() >= deadline or await request.is_disconnected():
                return
            await asyncio.sleep(0.05)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/tokens", tags=["admin"])
def get_tokens(request: Request, _: Admin) -> list[dict[str, object]]:
    with core_of(request).store.reading() as conn:
        return [t.as_json() for t in tokens.list_tokens(conn)]


@router.post("/tokens", tags=["admin"])
def post_token(request: Request, who: Admin, body: TokenRequest) -> dict[str, object]:
    """A new token; its secret is in this response only."""
    core = core_of(request)
    now = core.now()
    with core.store.transaction() as conn:
        secret, info = tokens.create(
            conn, tokens.Role.parse(body.role), now_s=now, ttl_s=body.ttl_s, label=body.label
        )
        audit(conn, now, who.actor, "token.create", target=info.token_id, detail=info.role.label)
    return {**info.as_json(), "token": secret}


@router.delete("/tokens/{token_id}", tags=["admin"])
def delete_token(
    request: Request, who: Admin, token_id: Annotated[str, Path(pattern="^[0-9a-f]{12}$")]
) -> dict[str, object]:
    core = core_of(request)
    now = core.now()
    try:
        with core.store.transaction() as conn:
            info = tokens.revoke(conn, token_id, now)
            audit(conn, now, who.actor, "token.revoke", target=token_id)
    except ValidationError:
        raise NotFoundError(f"no token {token_id}") from None
    getattr(request.app.state, VERIFIED).clear()
    return info.as_json()


@router.get("/audit", tags=["admin"])
def get_audit(
    request: Request, _: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[dict[str, Any]]:
    with core_of(request).store.reading() as conn:
        rows = conn.execute(
            "SELECT seq, at, actor, action, target, detail FROM audit ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
    keys = ("seq", "at", "actor", "action", "target", "detail")
    return [dict(zip(keys, row, strict=True)) for row in rows]
