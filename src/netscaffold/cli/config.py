"""``netscaffold config show``: the effective settings and where each came from."""

from __future__ import annotations

from typing import Annotated

import typer

from netscaffold.cli.common import console, emit_json, settings_for

config_app = typer.Typer(help="Inspect settings (flag > NETSCAFFOLD_* env > netscaffold.toml > default).")


@config_app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
) -> None:
    """Print every setting's effective value and its source."""
    from rich.table import Table

    effective = settings_for(ctx)
    if as_json:
        emit_json(
            {
                "config_file": str(effective.config_file) if effective.config_file else None,
                "settings": {
                    name: {"value": effective.values[name], "source": effective.sources[name]}
                    for name in effective.values
                },
            }
        )
        return
    table = Table(title="netscaffold settings")
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for name, value in effective.values.items():
        table.add_row(name, str(value), effective.sources[name])
    console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
