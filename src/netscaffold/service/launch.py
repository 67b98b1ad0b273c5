"""Start ``netscaffold serve`` as a child process on a free 127.0.0.1 port and wait until it answers;
used by the integration tests and the benchmark scripts. Always loopback; always stopped by its owner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from netscaffold.errors import BackendUnavailableError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_token(state: Path, role: str) -> str:
    """A token made through the CLI (its secret is the last line of output)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "netscaffold.cli.main",
            "token",
            "create",
            "--state",
            str(state),
            "--role",
            role,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@dataclass
class ServerProcess:
    state: Path
    certs: Path | None = None
    mutual_tls: bool = False
    extra: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.certs else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        self.port = free_port()
        args = [
            sys.executable,
            "-m",
            "netscaffold.cli.main",
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--state",
            str(self.state),
            *self.extra,
        ]
        if self.certs is None:
            args.append("--insecure-http")
        else:
            args += [
                "--tls-cert",
                str(self.certs / "server.pem"),
                "--tls-key",
                str(self.certs / "server.key"),
            ]
            if self.mutual_tls:
                args += ["--client-ca", str(self.certs / "ca.pem")]
        self.log_path = self.state.parent / f"serve-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait(timeout_s)
        return self

    def _wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BackendUnavailableError(f"serve exited: {self.log()}", backend="service")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise BackendUnavailableError(f"serve did not listen within {timeout_s} s", backend="service")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_healthy(url: str, verify: object = True, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", verify=verify, timeout=2.0).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise BackendUnavailableError("service not healthy in time", backend="service")
