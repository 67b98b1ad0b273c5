"""Schemathesis over the service's own OpenAPI document, as an admin on a loaded state: zero 5xx.

Driven through hypothesis with schemathesis' per-operation strategies (its pytest plugin does not load
under this pytest). The SSE stream is left out (its ``wait_s`` may hold a connection for minutes by
design); it has its own tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from tests.helpers.topologies import two_tier

from netscaffold.formats.netjson import netjson_document
from netscaffold.service import tokens
from netscaffold.service.app import create_app
from netscaffold.service.core import ServiceCore


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    core = ServiceCore(tmp_path_factory.mktemp("fuzz") / "state")
    core.put_topology(netjson_document(two_tier()), "test")
    with core.store.transaction() as conn:
        secret, _ = tokens.create(conn, tokens.Role.ADMIN, now_s=time.time(), ttl_s=None)
    app = create_app(core, max_body_bytes=256 * 1024)
    yield app, secret
    core.close()


def _operations(app: Any) -> list[Any]:
    loaded = schemathesis.openapi.from_dict(app.openapi())
    loaded.app = app
    return [result.ok() for result in loaded.get_all_operations() if result.ok().path != "/v1/events"]


def test_operations_cover_the_api(served: tuple[Any, str]) -> None:
    app, _ = served
    paths = {op.path for op in _operations(app)}
    assert {"/v1/topology", "/v1/telemetry", "/v1/plans", "/v1/plans/{plan_id}/apply", "/metrics"} <= paths


@pytest.mark.slow
def test_no_server_errors(served: tuple[Any, str]) -> None:
    app, secret = served
    headers = {"Authorization": f"Bearer {secret}"}
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for operation in _operations(app):

        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                )

        check()
    assert failures == []
    assert sum(statuses.values()) >= 100
    assert statuses.get(200, 0) > 0, statuses
    assert statuses.get(422, 0) > 0, statuses
