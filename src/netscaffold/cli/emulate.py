"""``netscaffold emulate``: run a workload on the reactive network (no scaffolding) and summarise it.

JSON timing fields are named ``wall_s`` or ``*_per_s``; every other field repeats with the seed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netscaffold.cli.common import console, emit_json, settings_for
from netscaffold.cli.workload import (
    KIND_HELP,
    AppTelemetry,
    Duration,
    FatTreeK,
    FlowRate,
    FlowsFile,
    FlowShare,
    Generate,
    HostsPerLeaf,
    IntervalS,
    JsonFlag,
    Leaves,
    LinkBps,
    Placement,
    Seed,
    SizeSpec,
    Spines,
    StartStep,
    TickS,
    TmFile,
    TopologyFile,
    inputs_of,
    resolve_topology,
    workload_summary,
)
from netscaffold.errors import ConfigError

if TYPE_CHECKING:
    from netscaffold.backends.sim import EmulationResult
    from netscaffold.telemetry.workload import Workload

ProgressFn = Callable[[float, float], None]


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[ProgressFn | None]:
    """A Rich bar on stderr over simulated time when ``enabled`` and stderr is a terminal."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("emulating"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s"),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("emulate", total=1.0)

        def update(now_s: float, end_s: float) -> None:
            bar.update(task, completed=now_s, total=max(end_s, now_s, 1e-9))

        yield update


def _run(workload: Workload, profile: str, seed: int, progress: ProgressFn | None) -> EmulationResult:
    import inspect

    from netscaffold.backends.sim import emulate

    extra: dict[str, Any] = {}
    if "qos" in inspect.signature(emulate).parameters:  # pass the QoS policy once the emulator takes one
        extra["qos"] = workload.qos
    return emulate(
        workload.topology,
        workload.flows,
        profile=profile,
        seed=seed,
        tick_s=workload.telemetry.tick_s,
        duration_s=None,  # arrivals stop at the workload's duration; run until the last flow finishes
        progress=progress,
        **extra,
    )


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    emu = report["emulation"]
    delay = emu["setup_delay_s"]
    util = emu["link_utilisation"]
    table = Table(
        title=f"reactive network: {report['workload']['kind']} on {report['topology']}", show_header=False
    )
    rows = [
        ("flows (arrived / finished)", f"{emu['flows']} ({emu['arrived']} / {emu['finished']})"),
        ("reactive setups", str(emu["reactive_setups"])),
        (
            "setup delay mean / p50 / p99",
            " / ".join(f"{delay[k] * 1e3:.3f} ms" for k in ("mean", "p50", "p99")),
        ),
        ("link utilisation mean / p99 / max", " / ".join(f"{util[k]:.2%}" for k in ("mean", "p99", "max"))),
        ("events", f"{emu['events']} ({report['events_per_s']:,.0f}/s)"),
        ("wall time", f"{report['wall_s']:.2f} s (emulation {report['emulation_timing']['wall_s']:.2f} s)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out = console()
    out.print(table)
    for note in report["workload"]["notes"]:
        out.print(f"note: {note}", soft_wrap=True)


def emulate_cmd(
    ctx: typer.Context,
    workload: Annotated[str, typer.Option("--workload", help=KIND_HELP)] = "microservices",
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
    profile: Annotated[str | None, typer.Option(help="reactive setup-cost profile (default sdn-lan)")] = None,
    seed: Seed = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a workload on the reactive network: flows, setup delay, events/s, link utilisation."""
    from netscaffold.backends.sim import PROFILES
    from netscaffold.telemetry.registry import WorkloadOptions, make_workload

    began = time.perf_counter()
    effective = settings_for(ctx, seed=seed, profile=profile)
    if effective["profile"] not in PROFILES:
        raise ConfigError(
            f"unknown profile {effective['profile']!r} (one of {', '.join(PROFILES)})", field="profile"
        )
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
    load = make_workload(workload, base, options, seed=effective["seed"])
    with _progress_bar(bool(effective["progress"]) and not as_json) as progress:
        result = _run(load, effective["profile"], effective["seed"], progress)
    wall_s = time.perf_counter() - began
    report = {
        "topology": base.name,
        "profile": effective["profile"],
        "workload": workload_summary(load),
        "emulation": result.summary(),
        "emulation_timing": {"wall_s": result.wall_s, "events_per_s": result.events_per_s},
        "wall_s": wall_s,
        "events_per_s": result.events / wall_s if wall_s > 0 else 0.0,
    }
    if as_json:
        emit_json(
            report, seed=effective["seed"], inputs=inputs_of(topology, tm, flows, app_telemetry, placement)
        )
        return
    _print(report)


def register(app: typer.Typer) -> None:
    app.command("emulate")(emulate_cmd)
