"""``serve --ray``: the service's retrain and forecast run on Ray with the in-process numbers; a lost
cluster is a 503 naming Ray while reads keep working; the event loop serves while a job runs; the CLI
option parses and an unreachable head exits 2 within 10 s."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.helpers.topologies import two_tier

from netscaffold.distributed.connection import RaySession
from netscaffold.distributed.sharding import HashRing, PairShards
from netscaffold.formats.netjson import netjson_document
from netscaffold.service import tokens
from netscaffold.service.app import create_app
from netscaffold.service.core import AnalyticsRunner, ServiceCore
from netscaffold.service.forecast import AnalyticsJob, InProcessAnalytics, RetrainResult
from netscaffold.service.launch import free_port
from netscaffold.service.tokens import Role

NOW_S = 1_800_000_000.0  # one fixed clock for both services: equal inputs, equal outputs
PAIRS = (("e1", "e3"), ("e2", "e4"), ("e3", "e1"), ("e2", "e3"), ("e4", "e1"))


class Service:
    """One in-process service (its app in a TestClient that keeps one event loop) with a topology."""

    def __init__(self, state: Path, analytics: AnalyticsRunner | None = None) -> None:
        self.core = ServiceCore(state, analytics=analytics)
        self.app = create_app(self.core)
        self.http = TestClient(self.app)
        self.http.__enter__()
        with self.core.store.transaction() as conn:
            self.secret, _ = tokens.create(conn, Role.ADMIN, now_s=time.time(), ttl_s=None)
        self.headers = {"Authorization": f"Bearer {self.secret}"}
        response = self.post("/v1/topology", netjson_document(two_tier()), method="put")
        assert response.status_code == 200, response.text

    def get(self, path: str) -> Any:
        return self.http.get(path, headers=self.headers)

    def post(self, path: str, body: Any = None, method: str = "post") -> Any:
        return self.http.request(method, path, json=body, headers=self.headers)

    def metric(self, name: str) -> str:
        lines = self.get("/metrics").text.splitlines()
        return "\n".join(line for line in lines if line.startswith(name))

    def close(self) -> None:
        self.http.__exit__(None, None, None)
        self.core.close()


def _telemetry(steps: int = 40) -> dict[str, list[Any]]:
    body: dict[str, list[Any]] = {"time_s": [], "src": [], "dst": [], "bytes": []}
    for k in range(steps):
        for (src, dst), scale in zip(PAIRS, (1.0, 2.5, 0.4, 1.7, 0.9), strict=True):
            body["time_s"].append(NOW_S - steps + k + 0.5)
            body["src"].append(src)
            body["dst"].append(dst)
            body["bytes"].append(1e5 * scale * (1 + k % 3) * (k % 5 != 0))
    return body


@pytest.fixture
def ray_service(ray_local: RaySession, tmp_path: Path) -> Iterator[Service]:
    from netscaffold.distributed.service import connect_analytics

    runner = connect_analytics("local")  # joins the session's Ray (and leaves it open on close)
    assert not runner.session.owned
    service = Service(tmp_path / "ray", runner)
    yield service
    service.close()


@pytest.fixture
def local_service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path / "local")
    yield service
    service.close()


@pytest.mark.ray
def test_retrain_and_forecast_on_ray_equal_the_in_process_service(
    ray_service: Service, local_service: Service, ray_local: RaySession
) -> None:
    assert min(PairShards.split(PAIRS, HashRing.of(2)).sizes()) > 0  # both shards contribute columns
    for service in (ray_service, local_service):
        assert service.post("/v1/telemetry", _telemetry()).status_code == 200
    predicted = [s.get("/v1/predicted") for s in (ray_service, local_service)]
    assert [r.status_code for r in predicted] == [200, 200], predicted[0].text
    assert len(predicted[0].json()["pairs"]) == len(PAIRS)
    assert predicted[0].json() == predicted[1].json()

    retrained = [s.post("/v1/model/retrain") for s in (ray_service, local_service)]
    assert [r.status_code for r in retrained] == [200, 200], retrained[0].text
    ray_result, local_result = (r.json() for r in retrained)
    assert ray_result["nmae"] is not None
    assert ray_result["nmae"] == local_result["nmae"]
    (ray_model,), (local_model,) = ray_result["models"], local_result["models"]
    assert (ray_model["steps"], ray_model["retrains"]) == (local_model["steps"], local_model["retrains"])
    assert Path(ray_model["checkpoint"]).read_bytes() == Path(local_model["checkpoint"]).read_bytes()

    assert ray_service.metric('netscaffold_ray_jobs_total{kind="retrain",outcome="ok"}').endswith(" 1.0")
    assert ray_service.metric('netscaffold_ray_jobs_total{kind="forecast",outcome="ok"}').endswith(" 1.0")
    assert local_service.metric("netscaffold_ray_jobs_total") == ""
    status = ray_service.get("/v1/status").json()["analytics"]
    assert status == {
        "ray": True,
        "address": ray_local.address,
        "reachable": True,
        "shards": 2,
        "owned": False,
    }
    assert local_service.get("/v1/status").json()["analytics"] == {"ray": False, "address": None}


@pytest.mark.ray
def test_too_little_telemetry_is_the_same_409_on_ray(ray_service: Service) -> None:
    assert ray_service.post("/v1/telemetry", _telemetry(steps=1)).status_code == 200
    response = ray_service.post("/v1/model/retrain")
    assert response.status_code == 409, response.text
    assert "not enough telemetry to train" in response.json()["detail"]
    assert ray_service.metric('netscaffold_ray_jobs_total{kind="retrain",outcome="refused"}').endswith(" 1.0")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.ray
def test_lost_cluster_is_503_naming_ray_and_reads_keep_serving(ray_service: Service) -> None:
    assert ray_service.post("/v1/telemetry", _telemetry()).status_code == 200
    runner = ray_service.core.analytics
    gone = f"127.0.0.1:{_closed_port()}"
    runner.address = gone  # type: ignore[attr-defined]  # the head this service joined stops answering
    for method, path in (("post", "/v1/model/retrain"), ("get", "/v1/predicted")):
        started = time.monotonic()
        response = ray_service.post(path, method=method)
        assert response.status_code == 503, response.text
        assert response.json()["backend"] == "ray"
        assert f"the Ray cluster at {gone} is gone" in response.json()["detail"]
        assert time.monotonic() - started < 5.0
    for path in ("/v1/topology", "/v1/config", "/v1/model", "/v1/settings", "/healthz"):
        assert ray_service.get(path).status_code == 200, path
    assert ray_service.get("/v1/model").json()["models"] == []  # nothing half-written
    assert ray_service.get("/v1/status").json()["analytics"]["reachable"] is False
    text = ray_service.metric("netscaffold_ray_jobs_total")
    assert 'kind="retrain",outcome="unavailable"} 1.0' in text
    assert 'kind="forecast",outcome="unavailable"} 1.0' in text


class SlowRunner(InProcessAnalytics):
    """In-process analytics whose retrain waits until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def retrain(self, job: AnalyticsJob) -> RetrainResult:
        self.entered.set()
        if not self.release.wait(10.0):
            raise AssertionError("never released")
        return super().retrain(job)


def test_event_loop_serves_while_an_analytics_job_runs(tmp_path: Path) -> None:
    runner = SlowRunner()
    service = Service(tmp_path / "slow", runner)
    try:
        assert service.post("/v1/telemetry", _telemetry()).status_code == 200
        results: list[int] = []
        worker = threading.Thread(
            target=lambda: results.append(service.post("/v1/model/retrain").status_code)
        )
        worker.start()
        assert runner.entered.wait(10.0)
        started = time.monotonic()
        assert service.get("/healthz").status_code == 200
        assert service.get("/v1/model").status_code == 200
        assert time.monotonic() - started < 2.0
        assert not results, "the retrain finished before it was released"
        runner.release.set()
        worker.join(10.0)
        assert results == [200]
    finally:
        runner.release.set()
        service.close()


def test_serve_ray_option_refuses_a_bad_value_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from netscaffold.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--ray", "head:port", "--insecure-http", "--state", str(tmp_path / "s")])
    assert exit_info.value.code == 2
    assert "--ray" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    assert "--ray" in capsys.readouterr().out


def test_serve_ray_unreachable_head_exits_2_within_10_s(tmp_path: Path) -> None:
    gone = f"127.0.0.1:{_closed_port()}"
    args = ["serve", "--ray", gone, "--insecure-http", "--listen", f"127.0.0.1:{free_port()}"]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "netscaffold.cli.main", *args, "--state", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert f"no Ray cluster answers at {gone}" in done.stderr
    assert elapsed < 10.0


HEAD_SCRIPT = """
import time
from netscaffold.distributed.connection import connect
session = connect("local", num_cpus=1)
print(session.address, flush=True)
time.sleep(600)
"""
LOOPBACK_JOIN_ENV = {
    "RAY_AUTH_MODE": "disabled",  # a joiner does not hold the token a fresh local head would ask for
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep 127.0.0.1 as the head's address in the joiner
}


@pytest.mark.ray
@pytest.mark.slow
def test_serve_survives_its_ray_head_going_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real thing, end to end: ``serve --ray HEAD`` retrains on the head; the head's processes are
    killed; retrain and forecast answer 503 naming Ray at once, reads keep the state."""
    import httpx

    from netscaffold.service.launch import ServerProcess, make_token

    for name, value in LOOPBACK_JOIN_ENV.items():
        monkeypatch.setenv(name, value)
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD_SCRIPT], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert head.stdout is not None
        address = head.stdout.readline().strip()
        assert address.startswith("127.0.0.1:"), address
        state = tmp_path / "state"
        state.mkdir()
        headers = {"Authorization": f"Bearer {make_token(state, 'admin')}"}
        with (
            ServerProcess(state, extra=["--ray", address]) as server,
            httpx.Client(base_url=server.url, headers=headers, timeout=60.0) as http,
        ):
            assert http.put("/v1/topology", json=netjson_document(two_tier())).status_code == 200
            assert http.post("/v1/telemetry", json=_telemetry()).status_code == 200
            first = http.post("/v1/model/retrain")
            assert first.status_code == 200, first.text
            assert http.get("/v1/status").json()["analytics"]["address"] == address

            os.killpg(head.pid, signal.SIGKILL)  # the head and every Ray process it started
            head.wait(10)
            for method, path in (("post", "/v1/model/retrain"), ("get", "/v1/predicted")):
                started = time.monotonic()
                response = http.request(method, path)
                assert response.status_code == 503, response.text
                assert response.json()["backend"] == "ray"
                assert f"the Ray cluster at {address} is gone" in response.json()["detail"]
                assert time.monotonic() - started < 5.0
            model = http.get("/v1/model").json()
            assert [m["retrains"] for m in model["models"]] == [1]
            assert http.get("/v1/topology").status_code == 200
            assert http.get("/v1/status").json()["analytics"]["reachable"] is False
            assert 'kind="retrain",outcome="unavailable"} 1.0' in http.get("/metrics").text
            assert server.process is not None
            assert server.process.poll() is None  # still serving
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(10)
