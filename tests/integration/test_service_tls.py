"""The service as a process: TLS by default (plain HTTP refused on the TLS port), mutual TLS, the Python
client, CLI tokens, ``--insecure-http`` warned, and kill -9 durability (a small count; the full 50 runs are
benchmarks/durability_service.py). Every server listens on 127.0.0.1 and is stopped in a finalizer."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.helpers.topologies import two_tier

from netscaffold.client import Client, ServiceError
from netscaffold.errors import BackendUnavailableError, ValidationError
from netscaffold.formats.netjson import netjson_document
from netscaffold.service.launch import ServerProcess, make_token

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netscaffold.cli.main", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    done = _cli("certs", "init", "--dir", str(directory))
    assert done.returncode == 0, done.stderr
    assert _cli("certs", "init", "--dir", str(directory)).returncode == 2  # refuses to overwrite
    return directory


@pytest.fixture
def tls_server(tmp_path: Path, certs: Path) -> Iterator[tuple[ServerProcess, str]]:
    state = tmp_path / "state"
    token = make_token(state, "admin")
    server = ServerProcess(state, certs=certs)
    try:
        server.start()
        yield server, token
    finally:
        server.stop()


@pytest.mark.slow
def test_tls_client_round_trip_and_plain_http_refused(
    tls_server: tuple[ServerProcess, str], certs: Path
) -> None:
    server, token = tls_server
    assert token.startswith("nst_")
    with Client(server.url, token, ca=certs / "ca.pem") as client:
        assert client.health()["ok"] is True
        assert client.put_topology(netjson_document(two_tier()))["nodes"] == 8
        route = {
            "kind": "route",
            "device": "h1",
            "destination": "198.18.0.3/32",
            "next_hops": [{"via": "l1"}],
        }
        plan = client.create_plan([route])
        assert client.apply_plan(plan["id"])["status"] == "applied"
        assert client.config()["items"][0]["device"] == "h1"
        assert "netscaffold_plan_apply_seconds_count 1.0" in client.metrics()
        events = list(client.events(wait_s=0))
        assert [e["event"] for e in events] == ["plan.created", "plan.applied"]
        with pytest.raises(ValidationError, match="422"):
            client.ingest_telemetry([1.0], ["ghost"], ["e1"], [1.0])
    with Client(server.url, None, ca=certs / "ca.pem") as anonymous, pytest.raises(ServiceError) as caught:
        anonymous.config()
    assert caught.value.status == 401
    plain = server.url.replace("https://", "http://")
    try:
        status = httpx.get(f"{plain}/healthz", timeout=5).status_code
    except httpx.TransportError:
        status = None
    assert status is None or status >= 400
    with pytest.raises(httpx.ConnectError):  # an untrusted certificate is refused by a default client
        httpx.get(f"{server.url}/healthz", timeout=5)
    assert token not in server.log()


@pytest.mark.slow
def test_mutual_tls_needs_a_client_certificate(tmp_path: Path, certs: Path) -> None:
    state = tmp_path / "state"
    token = make_token(state, "viewer")
    server = ServerProcess(state, certs=certs, mutual_tls=True)
    try:
        server.start()
        with (
            Client(server.url, token, ca=certs / "ca.pem") as no_cert,
            pytest.raises((BackendUnavailableError, ServiceError, ssl.SSLError)),
        ):
            no_cert.health()
        pair = (certs / "client.pem", certs / "client.key")
        with Client(server.url, token, ca=certs / "ca.pem", client_cert=pair) as client:
            assert client.health()["ok"] is True
            assert client.settings()["forecaster"] == "ewma"
    finally:
        server.stop()


def test_serve_refuses_to_start_without_tls_or_explicit_insecure(tmp_path: Path) -> None:
    done = _cli("serve", "--listen", "127.0.0.1:1", "--state", str(tmp_path / "s"))
    assert done.returncode == 2
    assert "--tls-cert" in done.stderr
    assert "--insecure-http" in done.stderr


@pytest.mark.slow
def test_insecure_http_is_logged_as_a_warning(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state")
    try:
        server.start()
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()
    assert "WARNING" in server.log()
    assert "PLAIN HTTP" in server.log()


def test_token_cli_create_list_revoke(tmp_path: Path) -> None:
    state = tmp_path / "state"
    made = _cli("token", "create", "--state", str(state), "--role", "operator", "--ttl", "60")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    token_id = secret.split("_")[1]
    listed = json.loads(_cli("token", "list", "--state", str(state)).stdout)
    assert [t["id"] for t in listed] == [token_id]
    assert secret not in json.dumps(listed)
    assert _cli("token", "revoke", "--state", str(state), token_id).returncode == 0
    assert json.loads(_cli("token", "list", "--state", str(state)).stdout)[0]["revoked_at"] is not None
    assert _cli("token", "create", "--state", str(state), "--role", "root").returncode == 2


@pytest.mark.slow
def test_kill9_loses_nothing_acknowledged() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "durability_service.py"),
            "--runs",
            "1",
            "--seed",
            "7",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["lost"] == 0, done.stderr
    assert result["inconsistent"] == 0, done.stderr
    assert result["errors"] == 0, done.stderr
    assert result["acknowledged_batches"] > 0
    assert done.returncode == 0


@pytest.mark.slow
def test_client_cli_commands(tmp_path: Path, certs: Path) -> None:
    from typer.testing import CliRunner

    from netscaffold.cli.main import app as cli_app
    from netscaffold.formats.netjson import to_netjson

    state = tmp_path / "state"
    token = make_token(state, "admin")
    topo_file = tmp_path / "topo.json"
    topo_file.write_text(to_netjson(two_tier()))
    desired = tmp_path / "desired.json"
    route = {"kind": "route", "device": "h1", "destination": "198.18.0.3/32", "next_hops": [{"via": "l1"}]}
    desired.write_text(json.dumps([route]))
    server = ServerProcess(state, certs=certs)
    try:
        server.start()
        common = ["--server", server.url, "--token", token, "--ca", str(certs / "ca.pem")]
        runner = CliRunner()
        put = runner.invoke(cli_app, ["service", "put-topology", str(topo_file), *common])
        assert put.exit_code == 0, put.output
        plan = runner.invoke(cli_app, ["service", "plan", "--desired", str(desired), "--apply", *common])
        assert plan.exit_code == 0, plan.output
        assert json.loads(plan.output)["status"] == "applied"
        config = json.loads(runner.invoke(cli_app, ["service", "config", *common]).output)
        assert [i["device"] for i in config["items"]] == ["h1"]
        bad = runner.invoke(
            cli_app,
            ["service", "config", "--server", server.url, "--token", "nope", "--ca", str(certs / "ca.pem")],
        )
        assert bad.exit_code != 0
    finally:
        server.stop()
