"""Read responses encoded once and served as bytes until the state they show changes.

A read endpoint names what its body depends on: the store's ``state_revision`` (topology, config, plans,
settings, models: every committed transaction but telemetry/routing ingest) or ``revision`` (every committed
transaction), plus a time from which it is stale (a provisional item's ``expires_at``). A cached body is
served while both hold; otherwise it is rebuilt in the thread pool (a build may wait on the state lock, and
the event loop must not). The revision is read *before* the build, so a write that lands during the build
leaves an entry that is already stale, never a stale entry that looks current.

Bodies are kept by request target (path and raw query string). :class:`CachedReads`, the outermost
middleware, answers a ``GET`` whose target has a current body and whose bearer token is one the auth
dependency verified moments ago (:class:`~netscaffold.service.auth.VerifiedCache`) with at least the role
the body needs, without routing or dependency solving; anything else (an unknown or failed token, no
current body) goes down to the route, so every refusal is the route's own.

Every body carries a strong ``ETag`` (a digest of the bytes); a client that sends it back in
``If-None-Match`` gets ``304 Not Modified`` with no body.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic_core import to_json
from starlette.types import ASGIApp, Receive, Scope, Send

from netscaffold.service.auth import VerifiedCache
from netscaffold.service.core import ServiceCore
from netscaffold.service.tokens import Role

READ_CACHE = "read_cache"
MAX_ENTRIES = 512
MAX_BYTES = 64 * 1024 * 1024
Depends = Literal["state", "all"]
"""What a body is built from: ``state`` (no telemetry) or ``all`` (telemetry and routing ingest too)."""
Target = tuple[str, bytes]
"""(path, raw query string) of a request."""
_CACHE_CONTROL = b"private, no-cache"  # clients may keep a body but must revalidate it (If-None-Match)


@dataclass(frozen=True, slots=True)
class Encoded:
    body: bytes
    etag: bytes
    depends: Depends
    revision: int
    valid_until: float
    """Stale from this time on (the core's clock, unix seconds); ``inf`` while the revision holds."""
    role: Role
    """The least role allowed to read it."""

    @classmethod
    def of(
        cls,
        data: Any,
        depends: Depends,
        revision: int,
        valid_until: float = math.inf,
        role: Role = Role.VIEWER,
    ) -> Encoded:
        body = to_json(data, inf_nan_mode="null")  # as FastAPI's own encoding (NaN -> null), and faster
        etag = b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'
        return cls(body, etag, depends, revision, valid_until, role)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"etag", self.etag), (b"cache-control", _CACHE_CONTROL)]


def revision_of(core: ServiceCore, depends: Depends) -> int:
    return core.store.state_revision if depends == "state" else core.store.revision


class ReadCache:
    """Encoded bodies by request target, at most ``max_entries`` of ``max_bytes`` in all (the oldest dropped
    first; a body larger than a quarter of ``max_bytes`` is served but not kept): a client cycling through
    query strings cannot grow the server."""

    def __init__(self, core: ServiceCore, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.core = core
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: dict[Target, Encoded] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.builds = 0

    def current(self, target: Target) -> Encoded | None:
        entry = self._entries.get(target)
        if entry is None or entry.revision != revision_of(self.core, entry.depends):
            return None
        return entry if self.core.now() < entry.valid_until else None

    def keep(self, target: Target, entry: Encoded) -> Encoded:
        with self._lock:
            self.builds += 1
            self._drop(target)
            if len(entry.body) > self.max_bytes // 4:
                return entry
            while self._entries and (
                len(self._entries) >= self.max_entries or self._bytes + len(entry.body) > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))
            self._entries[target] = entry
            self._bytes += len(entry.body)
        return entry

    def _drop(self, target: Target) -> None:
        old = self._entries.pop(target, None)
        if old is not None:
            self._bytes -= len(old.body)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


def _not_modified(if_none_match: bytes | None, entry: Encoded) -> bool:
    return if_none_match is not None and entry.etag in (t.strip() for t in if_none_match.split(b","))


async def cached_json(
    request: Request, depends: Depends, build: Callable[[], tuple[Any, float]], role: Role = Role.VIEWER
) -> Response:
    """The body for this request's target: cached, or ``build()`` (JSON-able data, the time from which it
    is stale or ``inf``) run in the thread pool and kept."""
    core: ServiceCore = request.app.state.core
    cache: ReadCache = getattr(request.app.state, READ_CACHE)
    target = (request.scope["path"], request.scope["query_string"])
    entry = cache.current(target)
    if entry is None or entry.role != role:  # the role is the one this route checked
        revision = revision_of(core, depends)
        data, valid_until = await run_in_threadpool(build)
        entry = cache.keep(target, Encoded.of(data, depends, revision, valid_until, role))
    headers = {k.decode(): v.decode() for k, v in entry.headers()}
    if _not_modified(request.headers.get("if-none-match", "").encode() or None, entry):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type="application/json", headers=headers)


def forever(data: Any) -> tuple[Any, float]:
    """For a ``build`` whose body changes only with the revision."""
    return data, math.inf


class CachedReads:
    """Answers a GET from the read cache when its token was verified moments ago (see the module text)."""

    def __init__(self, app: ASGIApp, cache: ReadCache, verified: VerifiedCache) -> None:
        self.app = app
        self.cache = cache
        self.verified = verified

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        entry = self.cache.current((scope["path"], scope["query_string"]))
        if entry is None:
            await self.app(scope, receive, send)
            return
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"if-none-match":
                if_none_match = value
        principal = None
        if authorization is not None and authorization[:7].lower() == b"bearer ":
            principal = self.verified.get(authorization[7:].strip().decode("latin-1"), self.cache.core.now())
        if principal is None or principal.role < entry.role:
            await self.app(scope, receive, send)  # the route authenticates, and refuses
            return
        headers = entry.headers()
        if _not_modified(if_none_match, entry):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(entry.body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": entry.body})
