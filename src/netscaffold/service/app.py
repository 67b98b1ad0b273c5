"""The FastAPI application: routers, authentication, the body-size limit and error mapping.

Errors: a bad request body is 422 with the field path; a ValidationError of ours is 422 with its location;
a conflicting plan or state 409; a missing object 404; an unavailable backend 503; anything unexpected is
logged with its traceback and answered 500 with no detail.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netscaffold import __version__
from netscaffold.errors import BackendError, BackendUnavailableError, NetscaffoldError, ValidationError
from netscaffold.service.auth import VERIFIED, InvalidTokenLimiter, Principal, VerifiedCache, requires
from netscaffold.service.core import ConflictError, NotFoundError, ServiceCore
from netscaffold.service.responses import READ_CACHE, CachedReads, ReadCache
from netscaffold.service.tokens import Role

log = logging.getLogger("netscaffold.service")
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class BodyLimit:
    """413 for bodies over ``max_bytes``, by Content-Length or by counting a streamed body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # the route's body parsing passes HTTPException through
                raise HTTPException(413, detail=f"request body over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over the limit of {limit} bytes"}, status_code=413)


def _location(exc: ValidationError) -> dict[str, Any]:
    loc = exc.location
    return {"file": loc.file, "line": loc.line, "element": loc.element, "field": loc.field}


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ValidationError)
    async def _bad_input(_: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.reason, "location": _location(exc), "error": str(exc)}, status_code=422
        )

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(NotFoundError)
    async def _missing(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(BackendError)
    async def _backend(_: Request, exc: BackendError) -> JSONResponse:
        status = 503 if isinstance(exc, BackendUnavailableError) else 502
        return JSONResponse(
            {"detail": str(exc), "item": exc.item, "backend": exc.backend}, status_code=status
        )

    @app.exception_handler(NetscaffoldError)
    async def _other(_: Request, exc: NetscaffoldError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _body(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(RecursionError)
    async def _deep(_: Request, __: RecursionError) -> JSONResponse:
        return JSONResponse({"detail": "input nested too deeply"}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)


def create_app(core: ServiceCore, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from netscaffold.service.routes import data, plans

    app = FastAPI(title="netscaffold", version=__version__, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.core = core
    app.state.limiter = InvalidTokenLimiter()
    verified = VerifiedCache()
    setattr(app.state, VERIFIED, verified)
    read_cache = ReadCache(core)
    setattr(app.state, READ_CACHE, read_cache)
    _install_handlers(app)
    app.include_router(data.router)
    app.include_router(plans.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        """Liveness (no token needed)."""
        return {"ok": True, "version": __version__}

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics(_: Principal = Depends(requires(Role.VIEWER))) -> Response:  # noqa: B008 (FastAPI idiom)
        """Prometheus metrics (text exposition format)."""
        core.refresh_gauges()
        return Response(generate_latest(core.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: Principal = Depends(requires(Role.VIEWER))) -> dict[str, Any]:  # noqa: B008
        return app.openapi()

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(CachedReads, cache=read_cache, verified=verified)  # outermost: added last
    return app
