"""``netscaffold run``: the main job.

Until the scaffold/refine stages land, it runs what exists on the embedded default and says so.
"""

from __future__ import annotations

from typing import Annotated

import typer

from netscaffold.cli.common import console, emit_json, settings_for


def run(
    ctx: typer.Context,
    seed: Annotated[int | None, typer.Option(help="seed of every random source")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
) -> None:
    """Run the default scenario (today: build and validate the default leaf-spine topology)."""
    from netscaffold.formats.generators import leaf_spine
    from netscaffold.formats.summary import summarize

    effective = settings_for(ctx, seed=seed)
    topology = leaf_spine(spines=4, leaves=8, hosts_per_leaf=4, link_bps=10e9)
    summary = summarize(topology)
    note = "scaffolding strategies are not built yet: this run builds and validates the default topology only"
    if as_json:
        emit_json({"summary": summary, "note": note}, seed=effective["seed"])
        return
    out = console()
    out.print(f"[bold]netscaffold run[/bold] (seed {effective['seed']}): {note}")
    out.print(summary)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
