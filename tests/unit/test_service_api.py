"""The /v1 API in process: auth over every route of the OpenAPI document, error mapping, plans with
realization timestamps, ingest validation (nothing stored on bad input), SSE, metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.helpers.topologies import two_tier

from netscaffold.formats.netjson import netjson_document
from netscaffold.model import Endpoint
from netscaffold.service import tokens
from netscaffold.service.app import create_app
from netscaffold.service.core import ServiceCore
from netscaffold.service.tokens import Role

Headers = dict[str, str]


class Rig:
    def __init__(self, state: Path, *, max_body_bytes: int = 1 << 20, backend: str = "sim") -> None:
        self.core = ServiceCore(state, backend=backend)
        self.app = create_app(self.core, max_body_bytes=max_body_bytes)
        self.http = TestClient(self.app)
        self.secrets: dict[str, str] = {}
        for role in Role:
            self.secrets[role.label] = self.token(role)

    def token(self, role: Role, ttl_s: float | None = None) -> str:
        with self.core.store.transaction() as conn:
            secret, _ = tokens.create(conn, role, now_s=time.time(), ttl_s=ttl_s)
        return secret

    def auth(self, role: str) -> Headers:
        return {"Authorization": f"Bearer {self.secrets[role]}"}

    def close(self) -> None:
        self.http.close()
        self.core.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "state")
    yield r
    r.close()


@pytest.fixture
def loaded(rig: Rig) -> Rig:
    response = rig.http.put("/v1/topology", json=netjson_document(two_tier()), headers=rig.auth("operator"))
    assert response.status_code == 200, response.text
    return rig


def _telemetry(now: float, steps: int = 40) -> dict[str, list[Any]]:
    body: dict[str, list[Any]] = {"time_s": [], "src": [], "dst": [], "bytes": []}
    for k in range(steps):
        for src, dst in (("e1", "e3"), ("e2", "e4")):
            body["time_s"].append(now - steps + k)
            body["src"].append(src)
            body["dst"].append(dst)
            body["bytes"].append(1e5 * (1 + k % 3))
    return body


# -- auth: every route of the OpenAPI document --------------------------------------------------
MUTATING = {"post", "put", "delete", "patch"}
NEEDS = {
    ("get", "/v1/tokens"): "admin",
    ("get", "/v1/audit"): "admin",
    ("post", "/v1/model/retrain"): "admin",
    ("post", "/v1/tokens"): "admin",
    ("delete", "/v1/tokens/{token_id}"): "admin",
}


def _routes(app: Any) -> list[tuple[str, str]]:
    schema = app.openapi()
    return sorted((m, p) for p, ops in schema["paths"].items() for m in ops if p != "/healthz")


def _concrete(path: str) -> str:
    return re.sub(r"\{token_id\}", "0123456789ab", re.sub(r"\{plan_id\}", "1", path))


def _required_role(method: str, path: str) -> str:
    return NEEDS.get((method, path), "operator" if method in MUTATING else "viewer")


def test_every_route_is_guarded_by_role(rig: Rig) -> None:
    routes = _routes(rig.app)
    assert ("put", "/v1/topology") in routes
    assert ("post", "/v1/plans/{plan_id}/apply") in routes
    assert len(routes) >= 18
    expired = rig.token(Role.ADMIN, ttl_s=0.001)
    revoked = rig.token(Role.ADMIN)
    with rig.core.store.transaction() as conn:
        tokens.revoke(conn, revoked.split("_")[1], time.time())
    time.sleep(0.01)
    order = ["viewer", "operator", "admin"]
    for method, path in routes:
        url = _concrete(path) + ("?wait_s=0" if path == "/v1/events" else "")
        needed = _required_role(method, path)
        bad = {
            "missing": {},
            "wrong": {"Authorization": "Bearer nst_0123456789ab_" + "x" * 43},
            "not bearer": {"Authorization": f"Basic {rig.secrets['admin']}"},
            "expired": {"Authorization": f"Bearer {expired}"},
            "revoked": {"Authorization": f"Bearer {revoked}"},
        }
        for why, headers in bad.items():
            rig.app.state.limiter._seen.clear()  # this table is not a brute-force attempt
            status = rig.http.request(method, url, headers=headers).status_code
            assert status == 401, f"{method} {path} with a {why} token gave {status}"
        for role in order[: order.index(needed)]:
            status = rig.http.request(method, url, headers=rig.auth(role)).status_code
            assert status == 403, f"{method} {path} as {role} gave {status}"
        status = rig.http.request(method, url, headers=rig.auth(needed), json={}).status_code
        assert status not in (401, 403), f"{method} {path} as {needed} gave {status}"


def test_healthz_needs_no_token_openapi_does(rig: Rig) -> None:
    assert rig.http.get("/healthz").json()["ok"] is True
    assert rig.http.get("/openapi.json").status_code == 401
    document = rig.http.get("/openapi.json", headers=rig.auth("viewer")).json()
    assert "/v1/plans/{plan_id}/apply" in document["paths"]
    assert rig.http.get("/docs").status_code == 404


def test_429_only_after_twenty_invalid_tokens_a_minute(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    bad = {"Authorization": "Bearer nst_0123456789ab_" + "y" * 43}
    statuses = [rig.http.get("/v1/config", headers=bad).status_code for _ in range(21)]
    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429
    assert rig.http.get("/v1/settings", headers=rig.auth("viewer")).status_code == 200
    assert "y" * 43 not in caplog.text
    assert "invalid" in caplog.text


# -- errors and bad input ------------------------------------------------------------------------
def test_bad_topology_is_422_with_location_and_nothing_stored(rig: Rig) -> None:
    doc = netjson_document(two_tier())
    doc["links"][0]["target"] = "nowhere"
    response = rig.http.put("/v1/topology", json=doc, headers=rig.auth("operator"))
    assert response.status_code == 422
    assert "nowhere" in response.json()["error"]
    assert rig.core.store.get_kv("topology") is None
    assert rig.http.get("/v1/topology", headers=rig.auth("viewer")).status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bytes": [-5.0]}, "bytes"),
        ({"src": ["nobody"]}, "src[0]"),
        ({"dst": ["e1", "e2"]}, "dst"),
        ({"time_s": ["soon"]}, "time_s"),
    ],
)
def test_bad_telemetry_is_422_naming_the_field(loaded: Rig, change: dict[str, Any], field: str) -> None:
    body = {"time_s": [1.0], "src": ["e1"], "dst": ["e3"], "bytes": [10.0], **change}
    response = loaded.http.post("/v1/telemetry", json=body, headers=loaded.auth("operator"))
    assert response.status_code == 422, response.text
    assert field.split("[", maxsplit=1)[0] in response.text
    assert field in response.text or "[" not in field
    with loaded.core.store.reading() as conn:
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone()[0] == 0


def test_malformed_json_and_oversized_bodies(tmp_path: Path) -> None:
    small = Rig(tmp_path / "s", max_body_bytes=2048)
    try:
        headers = {**small.auth("operator"), "content-type": "application/json"}
        assert small.http.post("/v1/telemetry", content=b"{not json", headers=headers).status_code == 422
        big = b'{"time_s": [' + b"1.0," * 2000 + b"1.0]}"
        assert small.http.post("/v1/telemetry", content=big, headers=headers).status_code == 413

        def chunks() -> Iterator[bytes]:
            yield big[:1500]
            yield big[1500:]

        assert small.http.post("/v1/telemetry", content=chunks(), headers=headers).status_code == 413
    finally:
        small.close()


def test_over_committing_plan_is_refused_naming_the_item(loaded: Rig) -> None:
    item = {"kind": "reservation", "flow_key": "e1->e3", "path": ["h1", "l1"], "rate_bps": 5e10}
    response = loaded.http.post("/v1/plans", json={"desired": [item]}, headers=loaded.auth("operator"))
    assert response.status_code == 422
    body = response.json()
    assert "over-commits" in body["detail"]
    assert body["location"]["element"].startswith("reservation e1->e3")
    assert loaded.http.get("/v1/plans", headers=loaded.auth("viewer")).json() == []


def test_unknown_node_in_desired_item_names_its_index(loaded: Rig) -> None:
    good = {"kind": "route", "device": "h1", "destination": "198.18.0.3/32", "next_hops": [{"via": "l1"}]}
    bad = {"kind": "route", "device": "ghost", "destination": "198.18.0.3/32", "next_hops": [{"via": "l1"}]}
    response = loaded.http.post("/v1/plans", json={"desired": [good, bad]}, headers=loaded.auth("operator"))
    assert response.status_code == 422
    assert "ghost" in response.text


def test_unavailable_backend_is_503(tmp_path: Path) -> None:
    r = Rig(tmp_path / "linux", backend="linux")
    try:
        topo = two_tier().with_endpoints([Endpoint("x", "h1", "10.1.2.3", app="x")])
        assert (
            r.http.put("/v1/topology", json=netjson_document(topo), headers=r.auth("operator")).status_code
            == 200
        )
        response = r.http.get("/v1/config", headers=r.auth("viewer"))
        assert response.status_code == 503
        assert "linux" in response.json()["detail"]
    finally:
        r.close()


# -- plans ---------------------------------------------------------------------------------------
ROUTE = {"kind": "route", "device": "h1", "destination": "198.18.0.3/32", "next_hops": [{"via": "l1"}]}


def test_plan_dry_run_apply_rollback_with_realization_times(loaded: Rig) -> None:
    op = loaded.auth("operator")
    dry = loaded.http.post("/v1/plans", json={"desired": [ROUTE], "dry_run": True}, headers=op).json()
    assert dry["status"] == "dry-run"
    assert dry["id"] is None
    assert len(dry["ops"]) == 1
    assert loaded.http.get("/v1/plans", headers=op).json() == []
    plan = loaded.http.post("/v1/plans", json={"desired": [ROUTE]}, headers=op).json()
    before = time.time()
    applied = loaded.http.post(f"/v1/plans/{plan['id']}/apply", headers=op).json()
    assert applied["status"] == "applied"
    ((key, at),) = applied["realized"].items()
    assert key == "route/h1/198.18.0.3/32"
    assert before - 1 <= at <= time.time() + 1
    assert [i["device"] for i in loaded.http.get("/v1/config", headers=op).json()["items"]] == ["h1"]
    assert loaded.http.post(f"/v1/plans/{plan['id']}/apply", headers=op).status_code == 409
    rolled = loaded.http.post(f"/v1/plans/{plan['id']}/rollback", headers=op).json()
    assert rolled["status"] == "rolled-back"
    assert loaded.http.get("/v1/config", headers=op).json()["items"] == []
    audit = loaded.http.get("/v1/audit", headers=loaded.auth("admin")).json()
    assert {"plan.create", "plan.applied", "plan.rolled-back"} <= {a["action"] for a in audit}


def test_stale_plan_is_409(loaded: Rig) -> None:
    op = loaded.auth("operator")
    first = loaded.http.post("/v1/plans", json={"desired": [ROUTE]}, headers=op).json()
    other = {**ROUTE, "destination": "198.18.0.4/32"}
    second = loaded.http.post("/v1/plans", json={"desired": [other]}, headers=op).json()
    assert loaded.http.post(f"/v1/plans/{first['id']}/apply", headers=op).status_code == 200
    response = loaded.http.post(f"/v1/plans/{second['id']}/apply", headers=op)
    assert response.status_code == 409
    assert loaded.http.get("/v1/plans/999", headers=op).status_code == 404


def test_scaffold_plan_from_ingested_telemetry(loaded: Rig) -> None:
    op = loaded.auth("operator")
    short = _telemetry(time.time(), steps=20)
    assert loaded.http.post("/v1/telemetry", json=short, headers=op).status_code == 200
    assert loaded.http.get("/v1/predicted", headers=op).status_code == 409
    assert loaded.http.post("/v1/telemetry", json=_telemetry(time.time() + 20), headers=op).status_code == 200
    predicted = loaded.http.get("/v1/predicted", headers=op).json()
    assert set(predicted["pairs"]) == {"e1->e3", "e2->e4"}
    assert predicted["horizon"] == 5
    plan = loaded.http.post("/v1/plans", json={"source": "scaffold"}, headers=op).json()
    assert plan["ops"]
    assert all(o["item"]["origin"] == "predicted" for o in plan["ops"])
    assert loaded.http.post(f"/v1/plans/{plan['id']}/apply", headers=op).status_code == 200
    flow = {"kind": "flow_request", "time_s": time.time(), "src": "e1", "dst": "e3", "setup_delay_s": 0.001}
    miss = {**flow, "src": "e2", "dst": "e1"}
    result = loaded.http.post("/v1/routing", json={"events": [flow, miss]}, headers=op).json()
    assert result == {"accepted": 2, "flow_requests": 2, "scaffolded": 1}
    text = loaded.http.get("/metrics", headers=op).text
    assert "netscaffold_hit_ratio 0.5" in text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert names
    assert all(name.startswith("netscaffold_") for name in names)
    events = loaded.http.get("/v1/events?wait_s=0", headers=op).text
    assert "event: plan.applied" in events
    assert "event: discrepancy" in events


def test_settings_round_trip_and_validation(loaded: Rig) -> None:
    op = loaded.auth("operator")
    settings = loaded.http.get("/v1/settings", headers=op).json()
    settings["budget"]["link_fraction"] = 0.25
    assert (
        loaded.http.put("/v1/settings", json=settings, headers=op).json()["budget"]["link_fraction"] == 0.25
    )
    settings["budget"]["link_fraction"] = 3
    response = loaded.http.put("/v1/settings", json=settings, headers=op)
    assert response.status_code == 422
    assert "link_fraction" in response.text


def test_tokens_api_creates_and_revokes(rig: Rig) -> None:
    admin = rig.auth("admin")
    made = rig.http.post("/v1/tokens", json={"role": "viewer"}, headers=admin).json()
    assert made["token"].startswith("nst_")
    assert rig.http.get("/v1/config", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 409
    assert rig.http.delete(f"/v1/tokens/{made['id']}", headers=admin).status_code == 200
    assert rig.http.get("/v1/config", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 401
    listed = rig.http.get("/v1/tokens", headers=admin).json()
    assert all("token" not in t and "digest" not in t for t in listed)


def test_reserved_and_unused_bandwidth_gauges(loaded: Rig) -> None:
    op = loaded.auth("operator")
    item = {
        "kind": "reservation",
        "flow_key": "e1->e3",
        "path": ["h1", "l1", "s1", "l2", "h3"],
        "rate_bps": 1e6,
    }
    plan = loaded.http.post("/v1/plans", json={"desired": [item]}, headers=op).json()
    assert loaded.http.post(f"/v1/plans/{plan['id']}/apply", headers=op).status_code == 200
    body = {"time_s": [100.5], "src": ["e1"], "dst": ["e3"], "bytes": [25_000.0]}  # 200 kbit in a 1 s step
    assert loaded.http.post("/v1/telemetry", json=body, headers=op).status_code == 200
    text = loaded.http.get("/metrics", headers=op).text
    assert "netscaffold_reserved_bps 1e+06" in text
    assert "netscaffold_reserved_unused_bps 800000.0" in text


def test_grafana_dashboard_queries_only_exported_metrics(rig: Rig) -> None:
    import json as json_mod

    dashboard = (Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text()
    json_mod.loads(dashboard)
    wanted = {
        re.sub(r"_(bucket|sum|count|total)$", "", n) for n in re.findall(r"netscaffold_[a-z_]+", dashboard)
    }
    text = rig.http.get("/metrics", headers=rig.auth("viewer")).text
    exported = {
        re.sub(r"_total$", "", line.split()[2]) for line in text.splitlines() if line.startswith("# TYPE")
    }
    assert wanted <= exported, wanted - exported


@pytest.mark.slow
def test_retrain_scores_checkpoints_and_counts(loaded: Rig) -> None:
    admin = loaded.auth("admin")
    assert loaded.http.post("/v1/model/retrain", headers=admin).status_code == 409  # no telemetry yet
    assert loaded.http.post("/v1/telemetry", json=_telemetry(time.time()), headers=admin).status_code == 200
    result = loaded.http.post("/v1/model/retrain", headers=admin).json()
    assert 0 <= result["nmae"] < 10
    (model,) = result["models"]
    assert Path(model["checkpoint"]).is_file()
    assert model["retrains"] == 1
    text = loaded.http.get("/metrics", headers=admin).text
    assert "netscaffold_retrains_total 1.0" in text
    assert "netscaffold_forecast_error_nmae" in text


# -- orchestrator events -----------------------------------------------------------------------------
def _replicated(rig: Rig) -> float:
    """``web`` on h1 calling the ``api`` replica ``api-0`` on h3; ``api-1`` on h4 has never talked."""
    topo = two_tier().with_endpoints(
        [
            Endpoint("web", "h1", "198.18.1.1", app="web"),
            Endpoint("api-0", "h3", "198.18.1.3", app="api"),
            Endpoint("api-1", "h4", "198.18.1.4", app="api"),
        ]
    )
    op = rig.auth("operator")
    assert rig.http.put("/v1/topology", json=netjson_document(topo), headers=op).status_code == 200
    now = time.time()
    body: dict[str, list[Any]] = {"time_s": [], "src": [], "dst": [], "bytes": []}
    for k in range(40):
        for src, dst in (("web", "api-0"), ("api-0", "web")):
            body["time_s"].append(now - 40 + k)
            body["src"].append(src)
            body["dst"].append(dst)
            body["bytes"].append(1e5)
    assert rig.http.post("/v1/telemetry", json=body, headers=op).status_code == 200
    return now


def test_a_scaled_out_replica_is_predicted_from_its_siblings(rig: Rig) -> None:
    now = _replicated(rig)
    op = rig.auth("operator")
    before = rig.http.get("/v1/predicted", headers=op).json()
    assert set(before["pairs"]) == {"web->api-0", "api-0->web"}
    event = {
        "kind": "orchestrator",
        "time_s": now - 20,
        "event": "scale-out",
        "subject": "api",
        "endpoint": "api-1",
        "ready_s": now - 10,
    }
    assert rig.http.post("/v1/routing", json={"events": [event]}, headers=op).status_code == 200
    after = rig.http.get("/v1/predicted", headers=op).json()
    assert set(after["pairs"]) == {"web->api-0", "api-0->web", "web->api-1", "api-1->web"}
    index = {pair: i for i, pair in enumerate(after["pairs"])}
    assert after["activity"][0][index["web->api-1"]] == after["activity"][0][index["web->api-0"]]
    failure = {"kind": "orchestrator", "time_s": now - 5, "event": "failure", "subject": "api-0"}
    assert rig.http.post("/v1/routing", json={"events": [failure]}, headers=op).status_code == 200
    down = rig.http.get("/v1/predicted", headers=op).json()
    assert "web->api-0" not in down["pairs"]  # a failed replica is expected silent


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"endpoint": None}, "needs 'endpoint'"),
        ({"endpoint": "ghost"}, "events[0].endpoint"),
        ({"ready_s": 0.0}, "is before time_s"),
        ({"event": "reboot"}, "event"),
    ],
)
def test_bad_orchestrator_events_are_422_and_nothing_is_stored(
    rig: Rig, change: dict[str, Any], message: str
) -> None:
    _replicated(rig)
    op = rig.auth("operator")
    event = {
        "kind": "orchestrator",
        "time_s": 100.0,
        "event": "scale-out",
        "subject": "api",
        "endpoint": "api-1",
    }
    response = rig.http.post("/v1/routing", json={"events": [{**event, **change}]}, headers=op)
    assert response.status_code == 422, response.text
    assert message in response.text
    with rig.core.store.reading() as conn:
        assert conn.execute("SELECT count(*) FROM routing").fetchone()[0] == 0
