"""netscaffold.distributed.connection: spec parsing, the unreachable-address bound, a local cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from netscaffold.distributed.connection import RaySession, connect, parse_ray_spec, probe
from netscaffold.errors import BackendUnavailableError, ConfigError


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("auto", "auto", None, None),
        ("local", "local", None, None),
        ("10.1.2.3:6379", "address", "10.1.2.3", 6379),
        ("ray://head.example:10001", "address", "head.example", 10001),
        ("[::1]:6379", "address", "::1", 6379),
    ],
)
def test_parse_ray_spec_accepts_the_documented_forms(
    text: str, kind: str, host: str | None, port: int | None
) -> None:
    spec = parse_ray_spec(text)
    assert (spec.kind, spec.host, spec.port) == (kind, host, port)


@pytest.mark.parametrize("text", ["", "   ", "head", "head:", ":6379", "head:port", "head:0", "head:70000"])
def test_parse_ray_spec_rejects_malformed_addresses_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--ray"):
        parse_ray_spec(text)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_probe_of_a_closed_port_fails_at_once_with_the_address() -> None:
    port = _closed_port()
    with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{port}"):
        probe("127.0.0.1", port, 2.0)


def test_connect_to_an_unreachable_address_fails_within_ten_seconds() -> None:
    # 198.18.0.0/15 is the benchmarking range: nothing answers and there is no route out.
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=r"198\.18\.0\.1:6379"):
        connect("198.18.0.1:6379", timeout_s=3.0)
    assert time.monotonic() - started < 10.0


def test_connect_rejects_bad_sizes_before_touching_ray() -> None:
    with pytest.raises(ConfigError, match="num_cpus"):
        connect("local", num_cpus=0)
    with pytest.raises(ConfigError, match="object store"):
        connect("local", object_store_bytes=1024)


def test_help_and_package_import_do_not_import_ray() -> None:
    code = (
        "import sys\n"
        "import netscaffold.distributed.connection, netscaffold.cli.main as m\n"
        "try:\n    m.main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.ray
def test_local_session_binds_to_loopback_and_runs_tasks(ray_local: RaySession) -> None:
    assert ray_local.address.startswith("127.0.0.1:")
    assert ray_local.num_cpus == 2
    ray = ray_local.ray

    @ray.remote
    def square(value: int) -> int:
        return value * value

    assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]


@pytest.mark.ray
def test_connect_inside_a_running_session_reuses_it_and_leaves_it_open(ray_local: RaySession) -> None:
    with connect("auto") as inner:
        assert not inner.owned
        assert inner.address == ray_local.address
    assert ray_local.ray.is_initialized()
