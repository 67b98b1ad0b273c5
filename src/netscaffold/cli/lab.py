"""``netscaffold lab up|down|status|repair``: labs of network namespaces that realise a topology."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from netscaffold.cli.common import console, emit_json, settings_for

lab_app = typer.Typer(help="Bring a topology up in network namespaces (needs root), inspect, repair, remove.")

TopologyOpt = Annotated[Path, typer.Option("--topology", help="topology file (GraphML, SNDlib, NetJSON...)")]
NameOpt = Annotated[str, typer.Option("--name", help="lab name: 1-16 of a-z 0-9 _")]
JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]


def _layout(topology: Path, name: str):  # type: ignore[no-untyped-def]
    from netscaffold.formats.loader import load_topology
    from netscaffold.formats.render.layout import LabLayout

    return LabLayout.of(name, load_topology(topology))


@lab_app.command("up")
def up(
    ctx: typer.Context,
    topology: TopologyOpt,
    name: NameOpt,
    owner_pid: Annotated[
        int | None, typer.Option(help="process whose exit makes the lab stale (default: the calling shell)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create one namespace per node, veth links, addresses, HTB capacity and the nft table."""
    from netscaffold.backends.linux.lab import lab_status, lab_up

    settings_for(ctx)
    layout = _layout(topology, name)
    lab_up(layout, owner_pid=owner_pid or os.getppid(), topology_file=str(topology.resolve()))
    _report(lab_status(name).as_dict(), as_json, [topology])


@lab_app.command("down")
def down(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="lab to remove")] = None,
    stale: Annotated[
        bool, typer.Option("--stale", help="remove every lab whose owner process is gone")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete the lab's namespaces (only those tagged as this lab's) and its state files."""
    from netscaffold.backends.linux.lab import down_stale, lab_down
    from netscaffold.errors import ConfigError

    settings_for(ctx)
    if stale == (name is not None):
        raise ConfigError("give exactly one of --name and --stale", field="--name")
    if stale:
        _report({"removed_labs": down_stale()}, as_json, [])
        return
    assert name is not None
    _report({"lab": name, "removed_namespaces": lab_down(name)}, as_json, [])


@lab_app.command("status")
def status(ctx: typer.Context, name: NameOpt, as_json: JsonOpt = False) -> None:
    """The lab's namespaces, owner process and whether it is stale."""
    from netscaffold.backends.linux.lab import lab_status

    settings_for(ctx)
    _report(lab_status(name).as_dict(), as_json, [])


@lab_app.command("repair")
def repair(ctx: typer.Context, topology: TopologyOpt, name: NameOpt, as_json: JsonOpt = False) -> None:
    """Recreate what is missing, then undo an apply that a dead process left half done (its journal)."""
    from netscaffold.backends.linux.converge import diff, execute, plan_steps, read_all
    from netscaffold.backends.linux.journal import clear_journal, read_journal
    from netscaffold.backends.linux.lab import repair_namespaces
    from netscaffold.backends.linux.session import SessionPool

    settings_for(ctx)
    layout = _layout(topology, name)
    recreated = repair_namespaces(layout, os.getppid(), str(topology.resolve()))
    journal = read_journal(name)
    changed = 0
    if journal is not None:
        with SessionPool() as sessions:
            remove, put = diff(read_all(layout, sessions), journal)
            execute(plan_steps(layout, remove, put), None, sessions)
        changed = len(remove) + len(put)
        clear_journal(name)
    _report(
        {
            "lab": name,
            "recreated_namespaces": recreated,
            "journal_found": journal is not None,
            "objects_restored": changed,
        },
        as_json,
        [topology],
    )


def _report(payload: dict[str, object], as_json: bool, inputs: list[Path]) -> None:
    if as_json:
        emit_json(payload, inputs=inputs)
        return
    out = console()
    for key, value in payload.items():
        out.print(f"{key}: {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
