"""``netscaffold traffic validate``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from netscaffold.cli.common import console, emit_json, settings_for

traffic_app = typer.Typer(help="Traffic-matrix files (.npz, long CSV): validate.", no_args_is_help=True)
log = logging.getLogger("netscaffold.traffic")


def _print_summary(summary: dict[str, Any], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False)
    names = summary["node_names"]
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    value = summary["value"]
    rows = [
        ("format", summary["format"]),
        ("shape [T, N, N]", " x ".join(str(d) for d in summary["shape"])),
        ("nodes", shown),
        ("interval", f"{summary['interval_s']:g} s"),
        ("unit", summary["unit"]),
        ("span", f"{summary['start']} .. {summary['end']}" if summary["start"] else "no timestamps"),
        ("sparsity (off-diagonal zeros)", f"{summary['sparsity']:.1%}"),
        ("missing values (absent cells, read as 0)", str(summary["missing_values"])),
        ("value min / mean / max", f"{value['min']:g} / {value['mean']:g} / {value['max']:g}"),
        ("contiguous segments", str(summary["segments"])),
    ]
    rows += [(f"gap after step {g['after_step']}", f"{g['from']} -> {g['to']}") for g in summary["gaps"]]
    for name, text in rows:
        table.add_row(name, text)
    console().print(table)


@traffic_app.command("validate")
def validate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="traffic-matrix file (.npz or long CSV)")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
) -> None:
    """Load FILE and report shape, nodes, interval, unit, sparsity, missing values and gaps."""
    from netscaffold.formats.traffic import read_traffic, traffic_summary

    settings_for(ctx)
    loaded = read_traffic(file)
    for warning in loaded.warnings:
        log.warning("%s: %s", file, warning)
    summary = traffic_summary(loaded)
    if as_json:
        emit_json(summary, inputs=[file])
    else:
        _print_summary(summary, str(file))


def register(app: typer.Typer) -> None:
    app.add_typer(traffic_app, name="traffic")
