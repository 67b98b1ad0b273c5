"""Running the service under uvicorn: TLS by default (optionally mutual), plain HTTP only when asked."""

from __future__ import annotations

import importlib.util
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netscaffold.errors import ConfigError

if TYPE_CHECKING:
    from netscaffold.service.core import AnalyticsRunner

log = logging.getLogger("netscaffold.service")


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    state_dir: Path
    backend: str = "sim"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    insecure_http: bool = False
    max_body_bytes: int = 16 * 1024 * 1024
    lab: str = "nsd"
    ray: str | None = None
    """``--ray auto|local|ADDRESS``: run the heavy analytics on Ray (None: in this process)."""
    ray_shards: int = 2


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"--listen must be HOST:PORT, got {listen!r}", field="listen")
    return host.strip("[]") or "127.0.0.1", int(port)


def _check_tls(options: ServeOptions) -> None:
    if options.insecure_http:
        if options.client_ca is not None:
            raise ConfigError("--client-ca (mutual TLS) needs TLS, not --insecure-http", field="client_ca")
        return
    for name, path in (("tls_cert", options.tls_cert), ("tls_key", options.tls_key)):
        if path is None:
            raise ConfigError(
                f"--{name.replace('_', '-')} is required (make them with `netscaffold certs init --dir DIR`, "
                "or pass --insecure-http explicitly)",
                field=name,
            )
        if not path.is_file():
            raise ConfigError("no such file", file=str(path), field=name)


def event_loop_and_parser() -> tuple[str, str]:
    """uvloop and httptools (C event loop and HTTP parser) where installed, else asyncio and h11."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    if (loop, http) != ("uvloop", "httptools"):
        log.warning("serving with the %s loop and the %s parser (uvloop/httptools not installed)", loop, http)
    return loop, http


def _analytics(options: ServeOptions) -> AnalyticsRunner | None:
    """The Ray runner for ``--ray`` (connected now: an unreachable head fails here, before listening)."""
    if options.ray is None:
        return None
    from netscaffold.distributed.service import connect_analytics

    runner = connect_analytics(options.ray, shards=options.ray_shards)
    log.info("analytics on Ray at %s (%d inference shards)", runner.address, runner.shards)
    return runner


def serve(options: ServeOptions) -> None:
    import uvicorn

    from netscaffold.service.app import create_app
    from netscaffold.service.core import ServiceCore

    _check_tls(options)
    analytics = _analytics(options)
    try:
        core = ServiceCore(options.state_dir, backend=options.backend, lab=options.lab, analytics=analytics)
    except BaseException:
        if analytics is not None:
            analytics.close()
        raise
    app = create_app(core, max_body_bytes=options.max_body_bytes)
    kwargs: dict[str, object] = {}
    if options.insecure_http:
        log.warning(
            "serving PLAIN HTTP on %s:%d (--insecure-http): tokens travel unencrypted",
            options.host,
            options.port,
        )
    else:
        kwargs = {"ssl_certfile": str(options.tls_cert), "ssl_keyfile": str(options.tls_key)}
        if options.client_ca is not None:
            kwargs |= {"ssl_ca_certs": str(options.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    loop, http = event_loop_and_parser()
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        loop=loop,
        http=http,
        log_level="warning",
        access_log=False,
        # no proxy in front: X-Forwarded-For from a local client must not change its address (the
        # invalid-token limiter counts by address) and costs a header scan per request
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=30,  # monitoring and orchestration clients keep their connections
        **kwargs,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        core.close()
