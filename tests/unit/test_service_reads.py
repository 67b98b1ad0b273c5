"""Read responses: encoded once, served until a write (or a provisional item's expiry) changes what they
show; strong ETags and 304; the cached fast path refuses exactly what the routes refuse."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.helpers.topologies import two_tier

from netscaffold.formats.netjson import netjson_document
from netscaffold.service import tokens
from netscaffold.service.app import create_app
from netscaffold.service.auth import VERIFIED, VerifiedCache
from netscaffold.service.core import ServiceCore
from netscaffold.service.responses import READ_CACHE, Encoded, ReadCache
from netscaffold.service.server import event_loop_and_parser
from netscaffold.service.tokens import Role

ROUTE = {"kind": "route", "device": "h1", "destination": "198.18.0.3/32", "next_hops": [{"via": "l1"}]}


class Clock:
    def __init__(self) -> None:
        self.now_s = time.time()

    def __call__(self) -> float:
        return self.now_s


class Reads:
    def __init__(self, state: Path) -> None:
        self.clock = Clock()
        self.core = ServiceCore(state, clock=self.clock)
        self.app = create_app(self.core)
        self.http = TestClient(self.app)
        self.secrets = {role.label: self.token(role) for role in Role}
        put = self.http.put("/v1/topology", json=netjson_document(two_tier()), headers=self.auth("operator"))
        assert put.status_code == 200, put.text

    def token(self, role: Role) -> str:
        with self.core.store.transaction() as conn:
            secret, _ = tokens.create(conn, role, now_s=self.clock(), ttl_s=None)
        return secret

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}"}

    @property
    def cache(self) -> ReadCache:
        cache: ReadCache = getattr(self.app.state, READ_CACHE)
        return cache

    def get(self, path: str, role: str = "viewer", **headers: str) -> Any:
        return self.http.get(path, headers={**self.auth(role), **headers})

    def apply(self, desired: list[dict[str, Any]]) -> None:
        op = self.auth("operator")
        plan = self.http.post("/v1/plans", json={"desired": desired}, headers=op)
        assert plan.status_code == 200, plan.text
        assert self.http.post(f"/v1/plans/{plan.json()['id']}/apply", headers=op).status_code == 200


@pytest.fixture
def reads(tmp_path: Path) -> Iterator[Reads]:
    r = Reads(tmp_path / "state")
    yield r
    r.http.close()
    r.core.close()


READ_PATHS = ("/v1/config", "/v1/settings", "/v1/topology", "/v1/plans", "/v1/model", "/v1/routing")


def test_a_body_is_built_once_until_a_write(reads: Reads) -> None:
    for path in READ_PATHS:
        assert reads.get(path).status_code == 200, path
    built = reads.cache.builds
    first = {path: reads.get(path).content for path in READ_PATHS}
    assert reads.cache.builds == built  # all answered from the cache
    reads.apply([ROUTE])
    assert [i["device"] for i in reads.get("/v1/config").json()["items"]] == ["h1"]
    assert reads.get("/v1/plans").json()[0]["status"] == "applied"
    assert reads.get("/v1/topology").content == first["/v1/topology"]  # rebuilt, same bytes


def test_new_topology_is_seen_at_once(reads: Reads) -> None:
    assert reads.get("/v1/topology").json()["label"] == "two-tier"
    bigger = netjson_document(two_tier(hosts_per_leaf=3))
    assert reads.http.put("/v1/topology", json=bigger, headers=reads.auth("operator")).status_code == 200
    assert len(reads.get("/v1/topology").json()["nodes"]) == len(bigger["nodes"])


def test_in_memory_change_after_a_commit_makes_bodies_stale(reads: Reads) -> None:
    reads.get("/v1/topology")
    target = ("/v1/topology", b"")
    assert reads.cache.current(target) is not None
    reads.core.store.changed()  # what put_topology does once its in-memory topology is in place
    assert reads.cache.current(target) is None


def test_settings_change_is_seen_at_once(reads: Reads) -> None:
    settings = reads.get("/v1/settings").json()
    settings["horizon"] = 7
    assert reads.http.put("/v1/settings", json=settings, headers=reads.auth("operator")).status_code == 200
    assert reads.get("/v1/settings").json()["horizon"] == 7


def test_ingest_moves_telemetry_reads_only(reads: Reads) -> None:
    config = reads.get("/v1/config")
    assert reads.get("/v1/model").json()["telemetry_samples"] == 0
    state_revision = reads.core.store.state_revision
    body = {"time_s": [reads.clock() - 1, reads.clock()], "src": ["e1", "e2"], "dst": ["e3", "e4"]}
    posted = reads.http.post(
        "/v1/telemetry", json={**body, "bytes": [1.0, 2.0]}, headers=reads.auth("operator")
    )
    assert posted.status_code == 200
    assert reads.core.store.state_revision == state_revision
    assert reads.get("/v1/model").json()["telemetry_samples"] == 2
    built = reads.cache.builds
    assert reads.get("/v1/config").content == config.content
    assert reads.cache.builds == built


def test_a_provisional_item_leaves_the_config_when_it_expires(reads: Reads) -> None:
    expires_at = reads.clock() + 30
    reads.apply([{**ROUTE, "origin": "predicted", "expires_at": expires_at}])
    assert len(reads.get("/v1/config").json()["items"]) == 1
    reads.clock.now_s = expires_at - 0.5
    assert len(reads.get("/v1/config").json()["items"]) == 1
    reads.clock.now_s = expires_at  # no write: only the clock moved
    assert reads.get("/v1/config").json()["items"] == []


def test_etag_and_not_modified(reads: Reads) -> None:
    first = reads.get("/v1/config")
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert first.headers["cache-control"] == "private, no-cache"
    again = reads.get("/v1/config", **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    listed = reads.get("/v1/config", **{"If-None-Match": f'"other", {etag}'})
    assert listed.status_code == 304
    reads.apply([ROUTE])
    changed = reads.get("/v1/config", **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    # the route's own answer (token not yet verified: the fast path stands aside) agrees
    getattr(reads.app.state, VERIFIED).clear()
    assert reads.get("/v1/config", **{"If-None-Match": changed.headers["etag"]}).status_code == 304


def test_a_cached_body_needs_a_token_that_still_verifies(reads: Reads) -> None:
    made = reads.http.post("/v1/tokens", json={"role": "viewer"}, headers=reads.auth("admin")).json()
    viewer = {"Authorization": f"Bearer {made['token']}"}
    assert reads.http.get("/v1/config", headers=viewer).status_code == 200  # verified and cached
    assert reads.http.get("/v1/config", headers=viewer).status_code == 200
    assert reads.http.delete(f"/v1/tokens/{made['id']}", headers=reads.auth("admin")).status_code == 200
    assert reads.http.get("/v1/config", headers=viewer).status_code == 401
    for headers in ({}, {"Authorization": "Bearer nst_0123456789ab_" + "x" * 43}):
        assert reads.http.get("/v1/config", headers=headers).status_code == 401


def test_revoked_elsewhere_stops_working_within_the_cache_ttl(reads: Reads) -> None:
    verified: VerifiedCache = getattr(reads.app.state, VERIFIED)
    verified.ttl_s = 0.05
    secret = reads.token(Role.VIEWER)
    headers = {"Authorization": f"Bearer {secret}"}
    assert reads.http.get("/v1/settings", headers=headers).status_code == 200
    with reads.core.store.transaction() as conn:  # as `netscaffold token revoke` does, from another process
        tokens.revoke(conn, secret.split("_")[1], reads.clock())
    time.sleep(0.06)
    assert reads.http.get("/v1/settings", headers=headers).status_code == 401


def test_fast_path_keeps_the_role_a_body_needs(reads: Reads) -> None:
    reads.get("/v1/settings")  # the viewer's and the admin's tokens are now verified
    reads.get("/v1/settings", role="admin")
    core = reads.core
    secret_body = Encoded.of({"secret": 1}, "state", core.store.state_revision, role=Role.ADMIN)
    reads.cache.keep(("/v1/settings", b"x=1"), secret_body)
    assert reads.get("/v1/settings?x=1", role="admin").json() == {"secret": 1}  # the fast path
    response = reads.get("/v1/settings?x=1")
    assert response.status_code == 200
    assert b"secret" not in response.content  # the route answered, with its own body


def test_errors_are_not_cached(reads: Reads) -> None:
    assert reads.get("/v1/plans/1").status_code == 404
    assert reads.get("/v1/predicted").status_code == 409
    reads.apply([ROUTE])
    assert reads.get("/v1/plans/1").json()["status"] == "applied"


def test_cache_is_bounded(tmp_path: Path) -> None:
    core = ServiceCore(tmp_path / "state")
    try:
        cache = ReadCache(core, max_entries=3)
        for i in range(5):
            cache.keep((f"/p{i}", b""), Encoded.of(i, "state", core.store.state_revision))
        assert len(cache) == 3
        assert cache.current(("/p0", b"")) is None
        assert cache.current(("/p4", b"")) is not None
        with core.store.transaction():
            pass
        assert cache.current(("/p4", b"")) is None
        small = ReadCache(core, max_bytes=400)
        revision = core.store.state_revision
        for i in range(10):
            small.keep((f"/q{i}", b""), Encoded.of("x" * 80, "state", revision))  # 82 bytes each
        assert len(small) == 4
        assert small.size_bytes == 4 * 82
        small.keep(("/big", b""), Encoded.of("x" * 200, "state", revision))  # over a quarter: not kept
        assert small.current(("/big", b"")) is None
        assert small.size_bytes == 4 * 82
    finally:
        core.close()


def test_nan_encodes_as_null() -> None:
    assert Encoded.of({"x": [float("nan"), float("inf"), 1.5]}, "all", 0).body == b'{"x":[null,null,1.5]}'


def test_uvicorn_runs_uvloop_and_httptools_here() -> None:
    assert event_loop_and_parser() == ("uvloop", "httptools")
