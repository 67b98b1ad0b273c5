"""``netscaffold topology validate | generate | convert``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netscaffold.cli.common import console, emit_json, settings_for

if TYPE_CHECKING:
    from netscaffold.model.topology import Topology

topology_app = typer.Typer(help="Topology files: validate, generate, convert.", no_args_is_help=True)
log = logging.getLogger("netscaffold.topology")

FORMAT_HELP = "auto, graphml, sndlib, netjson, rocketfuel or abilene-csv"
JsonFlag = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]
DefaultCapacity = Annotated[
    float, typer.Option(help="capacity (bit/s) assumed for a link whose file gives none")
]


def _log_warnings(source: Path | str, topology: Topology) -> None:
    for warning in topology.warnings:
        log.warning("%s: %s", source, warning)


def _print_summary(summary: dict[str, Any], title: str) -> None:
    from rich.table import Table

    from netscaffold.formats.checks import format_bps

    table = Table(title=title, show_header=False)
    caps = summary["capacity_bps"]
    kinds = ", ".join(f"{n} {k}" for k, n in summary["kinds"].items() if n)
    rows = [
        ("nodes", f"{summary['nodes']} ({kinds})" if kinds else "0"),
        ("links (directed)", str(summary["links"])),
        ("hosts", str(summary["hosts"])),
        ("endpoints", str(summary["endpoints"])),
        ("connected components", str(summary["components"])),
        ("links with defaulted capacity", str(summary["defaulted_capacities"])),
        ("merged parallel links", str(summary["merged_parallel_links"])),
    ]
    if caps["min"] is not None:
        spread = " / ".join(format_bps(caps[k]) for k in ("min", "median", "max"))
        rows.append(("capacity min / median / max", spread))
    for name, value in rows:
        table.add_row(name, value)
    console().print(table)


@topology_app.command("validate")
def validate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="topology file")],
    input_format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    default_capacity_bps: DefaultCapacity = 1e9,
    as_json: JsonFlag = False,
) -> None:
    """Import FILE and print a summary; exit 2 with one line naming the problem if it is malformed."""
    from netscaffold.formats.loader import load_topology
    from netscaffold.formats.summary import summarize

    settings_for(ctx)
    topology = load_topology(file, input_format, default_capacity_bps=default_capacity_bps)
    _log_warnings(file, topology)
    summary = summarize(topology)
    if as_json:
        emit_json(summary, inputs=[file])
    else:
        _print_summary(summary, f"{file} ({topology.name})")


@topology_app.command("generate")
def generate(
    ctx: typer.Context,
    *,
    kind: Annotated[str, typer.Argument(help="leaf-spine or fat-tree")],
    out: Annotated[Path, typer.Option("--out", help="output file: .json (NetJSON) or .graphml")],
    spines: Annotated[int, typer.Option(help="leaf-spine: spine switches")] = 4,
    leaves: Annotated[int, typer.Option(help="leaf-spine: leaf switches")] = 8,
    hosts_per_leaf: Annotated[int, typer.Option(help="leaf-spine: hosts under each leaf")] = 4,
    k: Annotated[int, typer.Option("--k", help="fat-tree: switch radix (even)")] = 4,
    link_bps: Annotated[float, typer.Option(help="capacity of every switch link, bit/s")] = 10e9,
    host_link_bps: Annotated[float | None, typer.Option(help="leaf-spine: host links, bit/s")] = None,
    endpoints_per_host: Annotated[int, typer.Option(help="endpoints to attach per host (0: none)")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Write a generated leaf-spine or fat-tree topology to --out (format by suffix)."""
    from netscaffold.errors import ConfigError
    from netscaffold.formats.generators import attach_endpoints, fat_tree, leaf_spine
    from netscaffold.formats.loader import save_topology
    from netscaffold.formats.summary import summarize

    settings_for(ctx)
    if kind == "leaf-spine":
        topology = leaf_spine(spines, leaves, hosts_per_leaf, link_bps, host_link_bps=host_link_bps)
    elif kind == "fat-tree":
        topology = fat_tree(k, link_bps)
    else:
        raise ConfigError(f"unknown generator {kind!r} (leaf-spine or fat-tree)", field="kind")
    if endpoints_per_host:
        topology = attach_endpoints(topology, endpoints_per_host)
    written = save_topology(topology, out)
    summary = summarize(topology)
    if as_json:
        emit_json({"out": str(out), "format": written, **summary})
        return
    console().print(f"wrote {out} ({written}): {summary['nodes']} nodes, {summary['links']} directed links")


@topology_app.command("convert")
def convert(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="input topology file")],
    target: Annotated[Path, typer.Argument(help="output file: .json (NetJSON) or .graphml")],
    input_format: Annotated[str, typer.Option("--format", help=f"input format: {FORMAT_HELP}")] = "auto",
    default_capacity_bps: DefaultCapacity = 1e9,
) -> None:
    """Import SOURCE (any supported format) and write it as NetJSON or GraphML to TARGET."""
    from netscaffold.formats.loader import load_topology, save_topology

    settings_for(ctx)
    topology = load_topology(source, input_format, default_capacity_bps=default_capacity_bps)
    _log_warnings(source, topology)
    written = save_topology(topology, target)
    console().print(f"wrote {target} ({written}): {len(topology.nodes)} nodes, {len(topology.links)} links")


def register(app: typer.Typer) -> None:
    app.add_typer(topology_app, name="topology")
