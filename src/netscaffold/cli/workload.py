"""``netscaffold workload generate | convert-spans``; the workload options shared with ``emulate``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netscaffold.cli.common import console, emit_json, settings_for
from netscaffold.errors import ConfigError

if TYPE_CHECKING:
    from netscaffold.model.topology import Topology
    from netscaffold.telemetry.registry import WorkloadOptions
    from netscaffold.telemetry.workload import Workload

workload_app = typer.Typer(
    help="Workloads: generate a telemetry directory, convert traces.", no_args_is_help=True
)

KIND_HELP = "microservices, batch, tm-replay or flow-trace"
GENERATORS = ("leaf-spine", "fat-tree")

JsonFlag = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]
Seed = Annotated[int | None, typer.Option(help="seed of every random source")]
TopologyFile = Annotated[
    Path | None, typer.Option("--topology", help="topology file (any importer's format)")
]
Generate = Annotated[
    str | None, typer.Option("--generate", help="generate leaf-spine or fat-tree (default: leaf-spine)")
]
FatTreeK = Annotated[int, typer.Option("--k", help="fat-tree arity")]
Spines = Annotated[int, typer.Option(help="leaf-spine: spine switches")]
Leaves = Annotated[int, typer.Option(help="leaf-spine: leaf switches")]
HostsPerLeaf = Annotated[int, typer.Option(help="leaf-spine: hosts under each leaf")]
LinkBps = Annotated[float, typer.Option(help="capacity of generated links (bit/s)")]
TmFile = Annotated[Path | None, typer.Option("--tm", help="tm-replay: traffic-matrix series file")]
FlowsFile = Annotated[Path | None, typer.Option("--flows", help="flow-trace: flow CSV")]
AppTelemetry = Annotated[
    Path | None, typer.Option("--app-telemetry", help="flow-trace: per-application telemetry CSV")
]
Placement = Annotated[str, typer.Option(help="flow-trace: round-robin, random or a placement CSV")]
SizeSpec = Annotated[
    str, typer.Option("--size", help="flow-trace: size of calls without bytes (lognormal:MEAN[:SIGMA], ...)")
]
Duration = Annotated[float | None, typer.Option("--duration", help="simulated seconds (default per kind)")]
TickS = Annotated[float, typer.Option("--tick-s", help="telemetry tick (s)")]
IntervalS = Annotated[
    float, typer.Option("--interval-s", help="tm-replay: simulated seconds per matrix interval")
]
FlowRate = Annotated[float, typer.Option("--flow-rate", help="tm-replay: new flows per simulated second")]
FlowShare = Annotated[float, typer.Option("--flow-share", help="tm-replay: share of volume carried by flows")]
StartStep = Annotated[int, typer.Option("--start-step", help="tm-replay: first matrix step replayed")]


def resolve_topology(
    topology: Path | None,
    generate: str | None,
    *,
    k: int,
    spines: int,
    leaves: int,
    hosts_per_leaf: int,
    link_bps: float,
) -> Topology:
    """The topology from ``--topology FILE`` or ``--generate`` (leaf-spine when neither is given)."""
    if topology is not None and generate is not None:
        raise ConfigError("give --topology or --generate, not both", field="generate")
    if topology is not None:
        from netscaffold.formats.loader import load_topology

        return load_topology(topology)
    from netscaffold.formats import generators

    if generate in (None, "leaf-spine"):
        return generators.leaf_spine(spines, leaves, hosts_per_leaf, link_bps)
    if generate == "fat-tree":
        return generators.fat_tree(k, link_bps)
    raise ConfigError(f"unknown generator {generate!r} (one of {', '.join(GENERATORS)})", field="generate")


def inputs_of(*paths: Path | str | None) -> list[Path]:
    """Input files for the JSON fingerprints (placement names only count when they are files)."""
    return [Path(p) for p in paths if p is not None and Path(p).is_file()]


def workload_summary(workload: Workload) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for event in workload.events:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    return {
        "kind": workload.kind,
        "flows": len(workload.flows),
        "endpoints": len(workload.flows.endpoints),
        "bytes": workload.total_bytes(),
        "duration_s": workload.duration_s,
        "ticks": workload.telemetry.ticks,
        "tick_s": workload.telemetry.tick_s,
        "events": kinds,
        "notes": list(workload.notes),
        "stats": dict(workload.stats),
    }


@workload_app.command("generate")
def generate_cmd(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help=KIND_HELP)],
    out: Annotated[Path, typer.Option("--out", help="telemetry directory to write")],
    topology: TopologyFile = None,
    generate: Generate = None,
    k: FatTreeK = 4,
    spines: Spines = 4,
    leaves: Leaves = 8,
    hosts_per_leaf: HostsPerLeaf = 4,
    link_bps: LinkBps = 10e9,
    tm: TmFile = None,
    flows: FlowsFile = None,
    app_telemetry: AppTelemetry = None,
    placement: Placement = "round-robin",
    size: SizeSpec = "lognormal:4096:1.0",
    duration: Duration = None,
    tick_s: TickS = 1.0,
    interval_s: IntervalS = 10.0,
    flow_rate: FlowRate = 1000.0,
    flow_share: FlowShare = 0.5,
    start_step: StartStep = 0,
    seed: Seed = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate a workload and write its telemetry directory (flows.csv, app_telemetry.csv,
    pair_bytes.npz, placement.csv, meta.json)."""
    from netscaffold.telemetry.directory import write_telemetry_dir
    from netscaffold.telemetry.registry import WorkloadOptions, make_workload

    effective = settings_for(ctx, seed=seed)
    base = resolve_topology(
        topology,
        generate,
        k=k,
        spines=spines,
        leaves=leaves,
        hosts_per_leaf=hosts_per_leaf,
        link_bps=link_bps,
    )
    options = WorkloadOptions(
        duration_s=duration,
        tick_s=tick_s,
        tm=tm,
        flows=flows,
        app_telemetry=app_telemetry,
        placement=placement,
        size=size,
        interval_s=interval_s,
        flow_rate_per_s=flow_rate,
        flow_share=flow_share,
        start_step=start_step,
    )
    workload = make_workload(kind, base, options, seed=effective["seed"])
    source = _source(topology, generate, options, base)
    files = write_telemetry_dir(workload, out, source=source)
    summary = {**workload_summary(workload), "out": str(out), "files": [f.name for f in files]}
    if as_json:
        emit_json(
            summary, seed=effective["seed"], inputs=inputs_of(topology, tm, flows, app_telemetry, placement)
        )
        return
    _print_generated(summary)


def _source(
    topology: Path | None, generate: str | None, options: WorkloadOptions, base: Topology
) -> dict[str, Any]:
    return {
        "topology": str(topology) if topology else None,
        "generate": None if topology else (generate or "leaf-spine"),
        "topology_name": base.name,
        "tm": str(options.tm) if options.tm else None,
        "flows": str(options.flows) if options.flows else None,
        "app_telemetry": str(options.app_telemetry) if options.app_telemetry else None,
        "placement": options.placement,
    }


def _print_generated(summary: dict[str, Any]) -> None:
    out = console()
    out.print(
        f"[bold]{summary['kind']}[/bold]: {summary['flows']} flows between {summary['endpoints']} endpoints, "
        f"{summary['ticks']} ticks of {summary['tick_s']:g} s -> {summary['out']}",
        soft_wrap=True,
    )
    if summary["events"]:
        out.print("events: " + ", ".join(f"{n} {k}" for k, n in sorted(summary["events"].items())))
    for note in summary["notes"]:
        out.print(f"note: {note}", soft_wrap=True)


@workload_app.command("convert-spans")
def convert_spans(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="flattened Jaeger span file (.npz, DeathStarBench layout)")],
    out: Annotated[Path, typer.Option("--out", help="flow-trace CSV to write")],
    group: Annotated[int | None, typer.Option("--group", help="only this group (load level) index")] = None,
    no_duration: Annotated[bool, typer.Option("--no-duration", help="omit the duration_s column")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Convert spans to the flow-trace CSV: a span whose service differs from its parent's is a call."""
    from netscaffold.telemetry.spans import span_calls, write_calls_csv

    settings_for(ctx)
    calls = span_calls(file, group)
    write_calls_csv(calls, out, with_duration=not no_duration)
    summary: dict[str, Any] = {
        "out": str(out),
        "spans": calls.spans,
        "calls": len(calls),
        "pairs": [f"{s}->{d}" for s, d in calls.pairs()],
        "groups": list(calls.groups),
        "span_s": float(calls.time_s[-1]) if len(calls) else 0.0,
    }
    if as_json:
        emit_json(summary, inputs=[file])
        return
    console().print(
        f"{summary['calls']} calls over {len(summary['pairs'])} caller->callee pairs from {summary['spans']} "
        f"spans ({summary['span_s']:.1f} s) -> {out}",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(workload_app, name="workload")
