"""``netscaffold serve``: the REST service (TLS by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on")] = "127.0.0.1:8443",
    tls_cert: Annotated[Path | None, typer.Option(help="server certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="server key (PEM)")] = None,
    client_ca: Annotated[
        Path | None, typer.Option(help="CA of client certificates: turns on mutual TLS")
    ] = None,
    state: Annotated[Path, typer.Option(help="state folder (SQLite database, model checkpoints)")] = Path(
        "state"
    ),
    backend: Annotated[str, typer.Option(help="sim or linux")] = "sim",
    lab: Annotated[str, typer.Option(help="lab name for the linux backend")] = "nsd",
    insecure_http: Annotated[
        bool, typer.Option("--insecure-http", help="serve plain HTTP (logged as a warning)")
    ] = False,
    max_body_bytes: Annotated[int, typer.Option(help="request body limit (413 above)")] = 16 * 1024 * 1024,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="run retrain and forecast inference on Ray: auto, local or HOST:PORT (default: here)",
        ),
    ] = None,
    ray_shards: Annotated[int, typer.Option(help="inference shards (Ray actors) with --ray")] = 2,
) -> None:
    """Run the netscaffold REST API (OpenAPI at /openapi.json, metrics at /metrics)."""
    import logging

    from netscaffold.errors import ConfigError
    from netscaffold.service.server import ServeOptions, parse_listen
    from netscaffold.service.server import serve as run_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if max_body_bytes < 1024:
        raise ConfigError("must be at least 1024", field="max_body_bytes")
    if ray_shards < 1:
        raise ConfigError("must be at least 1", field="ray_shards")
    host, port = parse_listen(listen)
    if ray is not None:
        from netscaffold.distributed.connection import parse_ray_spec

        parse_ray_spec(ray)  # a bad value is refused before anything starts
    options = ServeOptions(
        host,
        port,
        state,
        backend,
        tls_cert,
        tls_key,
        client_ca,
        insecure_http,
        max_body_bytes,
        lab,
        ray=ray,
        ray_shards=ray_shards,
    )
    run_server(options)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
