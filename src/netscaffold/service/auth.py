"""Bearer-token authentication and role checks as FastAPI dependencies.

Missing token -> 401; invalid, expired or revoked -> 401 (429 once a client has sent 20 or more invalid
tokens within a minute); valid but under-privileged -> 403. Failures are logged with the client address
and reason, never the token.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from netscaffold.service import tokens
from netscaffold.service.core import ServiceCore
from netscaffold.service.tokens import Role

log = logging.getLogger("netscaffold.service.auth")
INVALID_LIMIT = 20
WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    role: Role

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}({self.role.label})"


class InvalidTokenLimiter:
    """Invalid-token attempts per client over a sliding minute."""

    def __init__(self, limit: int = INVALID_LIMIT, window_s: float = WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def record(self, client: str, now_s: float) -> int:
        """Count one more invalid attempt; returns the attempts within the window, this one included."""
        with self._lock:
            if len(self._seen) > 10_000:  # forget clients with nothing in the window
                for stale in [c for c, q in self._seen.items() if not q or q[-1] <= now_s - self.window_s]:
                    del self._seen[stale]
            seen = self._seen[client]
            while seen and seen[0] <= now_s - self.window_s:
                seen.popleft()
            seen.append(now_s)
            return len(seen)


class VerifiedCache:
    """Recently verified tokens (by a hash of the presented text) for ``ttl_s``, so a burst of requests does
    not hit the database and HMAC each time; cleared whenever this process changes a token. A token
    revoked by another process (``netscaffold token revoke``) stops working within ``ttl_s``."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[bytes, tuple[float, Principal, float | None]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(presented: str) -> bytes:
        return hashlib.sha256(presented.encode()).digest()

    def get(self, presented: str, now_s: float) -> Principal | None:
        with self._lock:
            entry = self._entries.get(self._key(presented))
        if entry is None:
            return None
        cached_at, principal, expires_at = entry
        if time.monotonic() - cached_at > self.ttl_s or (expires_at is not None and now_s >= expires_at):
            return None
        return principal

    def put(self, presented: str, principal: Principal, expires_at: float | None) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[self._key(presented)] = (time.monotonic(), principal, expires_at)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


VERIFIED = "verified_tokens"


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, detail=reason, headers={"WWW-Authenticate": 'Bearer realm="netscaffold"'})


def authenticate(core: ServiceCore, limiter: InvalidTokenLimiter, request: Request) -> Principal:
    client = request.client.host if request.client else "unknown"
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if not header:
        core.metrics.auth_failures.labels(reason="missing").inc()
        log.warning("auth: %s %s from %s: no bearer token", request.method, request.url.path, client)
        raise _unauthorized("a bearer token is required")
    info = None
    presented = presented.strip()
    cache: VerifiedCache = getattr(request.app.state, VERIFIED)
    if scheme.lower() == "bearer" and presented:
        now = core.now()
        cached = cache.get(presented, now)
        if cached is not None:
            return cached
        with core.store.reading() as conn:
            info = tokens.verify(conn, presented, now)
    if info is None:
        attempts = limiter.record(client, time.monotonic())
        core.metrics.auth_failures.labels(reason="invalid").inc()
        log.warning(
            "auth: %s %s from %s: invalid, expired or revoked token (%d in the last minute)",
            request.method,
            request.url.path,
            client,
            attempts,
        )
        if attempts > limiter.limit:
            raise HTTPException(429, detail="too many invalid tokens", headers={"Retry-After": "60"})
        raise _unauthorized("invalid, expired or revoked token")
    principal = Principal(info.token_id, info.role)
    cache.put(presented, principal, info.expires_at)
    return principal


def requires(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        # async: a cached token costs no thread hop; a cache miss is one indexed SQLite read
        core: ServiceCore = request.app.state.core
        principal = authenticate(core, request.app.state.limiter, request)
        if principal.role < role:
            core.metrics.auth_failures.labels(reason="forbidden").inc()
            log.warning(
                "auth: %s %s by %s: needs role %s",
                request.method,
                request.url.path,
                principal.actor,
                role.label,
            )
            raise HTTPException(403, detail=f"needs role {role.label} (token has {principal.role.label})")
        return principal

    dependency.__name__ = f"requires_{role.label}"
    return dependency
