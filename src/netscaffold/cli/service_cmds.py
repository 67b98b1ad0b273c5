"""Service administration and client commands: certs, tokens, state backup/restore, export, and
``service ...`` commands that talk to a running service (``--server URL --token T``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

certs_app = typer.Typer(help="Local CA, server and client certificates.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens of a service's state.", no_args_is_help=True)
state_app = typer.Typer(
    help="State database backup and restore (service stopped for restore).", no_args_is_help=True
)
client_app = typer.Typer(help="Talk to a running service.", no_args_is_help=True)

StateDir = Annotated[Path, typer.Option("--state", help="state folder")]
Server = Annotated[str, typer.Option("--server", envvar="NETSCAFFOLD_SERVER", help="service URL")]
Token = Annotated[str, typer.Option("--token", envvar="NETSCAFFOLD_TOKEN", help="bearer token")]
Ca = Annotated[Path | None, typer.Option("--ca", help="CA certificate to trust (ca.pem)")]


@certs_app.command("init")
def certs_init(
    directory: Annotated[
        Path, typer.Option("--dir", help="where to write ca.pem, server.pem/key, client.pem/key")
    ],
    name: Annotated[list[str] | None, typer.Option("--name", help="extra server DNS name or IP")] = None,
    force: Annotated[bool, typer.Option(help="replace existing files")] = False,
) -> None:
    """Make a local CA and the server and client certificates it signs."""
    from netscaffold.service.certs import init_certs

    for path in init_certs(directory, names=name or (), force=force):
        typer.echo(str(path))


@token_app.command("create")
def token_create(
    state: StateDir,
    role: Annotated[str, typer.Option(help="viewer, operator or admin")],
    ttl: Annotated[float | None, typer.Option(help="lifetime in seconds (default: no expiry)")] = None,
    label: Annotated[str, typer.Option(help="a note on whose token it is")] = "",
) -> None:
    """Create a token; the secret is the last line of output and is never shown again."""
    from netscaffold.service import tokens
    from netscaffold.service.store import Store, audit

    store = Store(state)
    try:
        now = time.time()
        with store.transaction() as conn:
            secret, info = tokens.create(conn, tokens.Role.parse(role), now_s=now, ttl_s=ttl, label=label)
            audit(conn, now, "cli", "token.create", target=info.token_id, detail=info.role.label)
    finally:
        store.close()
    typer.echo(f"token {info.token_id} role {info.role.label} expires {info.expires_at or 'never'}", err=True)
    typer.echo(secret)


@token_app.command("revoke")
def token_revoke(
    state: StateDir, token_id: Annotated[str, typer.Argument(help="token id (the part after nst_)")]
) -> None:
    from netscaffold.service import tokens
    from netscaffold.service.store import Store, audit

    store = Store(state)
    try:
        now = time.time()
        with store.transaction() as conn:
            tokens.revoke(conn, token_id, now)
            audit(conn, now, "cli", "token.revoke", target=token_id)
    finally:
        store.close()
    typer.echo(f"revoked {token_id}")


@token_app.command("list")
def token_list(state: StateDir) -> None:
    from netscaffold.service import tokens
    from netscaffold.service.store import Store

    store = Store(state)
    try:
        with store.reading() as conn:
            rows = [t.as_json() for t in tokens.list_tokens(conn)]
    finally:
        store.close()
    typer.echo(json.dumps(rows, indent=2))


@state_app.command("backup")
def state_backup(state: StateDir, out: Annotated[Path, typer.Option("--out", help="backup file")]) -> None:
    """A consistent copy of the state database (safe while the service runs)."""
    from netscaffold.service.store import backup

    version = backup(state, out)
    typer.echo(f"backed up schema v{version} to {out}")


@state_app.command("restore")
def state_restore(
    state: StateDir, backup_file: Annotated[Path, typer.Option("--from", help="backup file")]
) -> None:
    """Replace the state with a backup (stop the service first); older schemas are migrated."""
    from netscaffold.service.store import restore

    version = restore(backup_file, state)
    typer.echo(f"restored schema v{version} into {state}")


def _load_source(source: Path) -> tuple[Any, Any]:
    from netscaffold.errors import ConfigError
    from netscaffold.formats import configjson
    from netscaffold.formats.netjson import read_netjson
    from netscaffold.model.config import NetworkConfig
    from netscaffold.service.store import DB_NAME, Store

    if (source / DB_NAME).is_file():
        store = Store(source)
        try:
            topology_text, config_text = store.get_kv("topology"), store.get_kv("config")
        finally:
            store.close()
        if topology_text is None:
            raise ConfigError("the state holds no topology yet", file=str(source))
        topology = read_netjson(topology_text, source / DB_NAME)
        config = configjson.config_from_json(json.loads(config_text)) if config_text else NetworkConfig()
        return topology, config
    topo_file, config_file = source / "topology.json", source / "config.json"
    if topo_file.is_file() and config_file.is_file():
        return read_netjson(topo_file.read_text(), topo_file), configjson.config_from_json(
            json.loads(config_file.read_text())
        )
    raise ConfigError(
        f"neither a state folder ({DB_NAME}) nor a run folder (topology.json + config.json)", file=str(source)
    )


def export(
    source: Annotated[Path, typer.Option("--from", help="STATE_DIR or RUN_DIR")],
    out: Annotated[Path, typer.Option("--out", help="folder for the exports")],
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace of the policies")] = "default",
) -> None:
    """Export the primed config: nftables JSON, ip and tc batches per node, NetworkPolicy YAML, NetJSON."""
    from netscaffold.formats.export import export_nodes, network_policies, policies_yaml
    from netscaffold.formats.netjson import to_netjson

    topology, config = _load_source(source)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("nftables", "iproute2", "tc"):
        (out / sub).mkdir(exist_ok=True)
    nodes = export_nodes(topology, config, now_s=time.time())
    for node in nodes:
        (out / "nftables" / f"{node.node}.json").write_text(json.dumps(node.nft_document, indent=1))
        (out / "iproute2" / f"{node.node}.batch").write_text("\n".join(node.ip_lines) + "\n")
        (out / "tc" / f"{node.node}.batch").write_text("\n".join(node.tc_lines) + "\n")
    policies = network_policies(topology, config, namespace=namespace)
    (out / "networkpolicy.yaml").write_text(policies_yaml(policies))
    (out / "topology.netjson").write_text(to_netjson(topology))
    typer.echo(
        f"exported {len(config)} items on {len(nodes)} nodes and {len(policies)} NetworkPolicies to {out}"
    )


def _client(server: str, token: str, ca: Path | None) -> Any:
    from netscaffold.client import Client

    return Client(server, token, ca=ca)


def _print(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True))


@client_app.command("config")
def client_config(server: Server, token: Token, ca: Ca = None) -> None:
    """The service's current config."""
    with _client(server, token, ca) as client:
        _print(client.config())


@client_app.command("put-topology")
def client_put_topology(
    file: Annotated[Path, typer.Argument(help="topology file (any supported format)")],
    server: Server,
    token: Token,
    ca: Ca = None,
) -> None:
    from netscaffold.formats.loader import load_topology
    from netscaffold.formats.netjson import netjson_document

    document = netjson_document(load_topology(file))
    with _client(server, token, ca) as client:
        _print(client.put_topology(document))


@client_app.command("plan")
def client_plan(
    server: Server,
    token: Token,
    ca: Ca = None,
    desired: Annotated[
        Path | None, typer.Option(help="JSON list of desired items (default: scaffold)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="apply the plan once created")] = False,
) -> None:
    """Create a plan (from the scaffolder, or to a desired config), optionally apply it."""
    items = json.loads(desired.read_text()) if desired else None
    with _client(server, token, ca) as client:
        plan = client.create_plan(items, scaffold=items is None, dry_run=dry_run)
        if apply and not dry_run:
            plan = client.apply_plan(int(plan["id"]))
        _print(plan)


@client_app.command("rollback")
def client_rollback(plan_id: int, server: Server, token: Token, ca: Ca = None) -> None:
    with _client(server, token, ca) as client:
        _print(client.rollback_plan(plan_id))


@client_app.command("model")
def client_model(
    server: Server, token: Token, ca: Ca = None, retrain: Annotated[bool, typer.Option("--retrain")] = False
) -> None:
    with _client(server, token, ca) as client:
        _print(client.retrain() if retrain else client.model())


def register(app: typer.Typer) -> None:
    app.add_typer(certs_app, name="certs")
    app.add_typer(token_app, name="token")
    app.add_typer(state_app, name="state")
    app.add_typer(client_app, name="service")
    app.command("export")(export)
