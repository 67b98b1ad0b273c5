"""``netscaffold run``: the headline comparison of strategies on one scenario.

reactive (no scaffolding), scaffold:<forecaster> for each named forecaster, and oracle (perfect foresight),
on the same seed and workload; figures per strategy on the terminal, in ``--out`` (summary.json,
report.md, PNG plots) and, with ``--json``, on stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from netscaffold.cli.common import console, settings_for
from netscaffold.errors import ConfigError


def _overrides(
    *,
    seed: int | None,
    duration: float | None,
    train_fraction: float | None,
    strategies: str | None,
    backend: str | None,
    tm: Path | None,
    topology: Path | None,
    flows: Path | None,
    app_telemetry: Path | None,
) -> dict[str, Any]:
    given = (("seed", seed), ("duration_s", duration), ("train_fraction", train_fraction))
    out: dict[str, Any] = {key: value for key, value in given if value is not None}
    if strategies is not None:
        out["strategies"] = [s.strip() for s in strategies.split(",") if s.strip()]
    if backend is not None:
        out["backend"] = backend
    if tm is not None and flows is not None:
        raise ConfigError("give either --tm (matrix replay) or --flows (call-trace replay), not both")
    if tm is not None:
        if topology is None:
            raise ConfigError("--tm needs --topology (the network the matrix is over)", field="topology")
        out["workload"] = {"kind": "tm-replay", "tm": str(tm)}
        out["topology"] = {"file": str(topology), "generate": None}
        out.setdefault("name", f"tm-replay:{tm.stem}")
    elif flows is not None:
        workload: dict[str, Any] = {"kind": "flow-trace", "flows": str(flows)}
        if app_telemetry is not None:
            workload["app_telemetry"] = str(app_telemetry)
        out["workload"] = workload
        if topology is not None:
            out["topology"] = {"file": str(topology), "generate": None}
        out.setdefault("name", f"flow-trace:{flows.stem}")
    elif topology is not None:
        out["topology"] = {"file": str(topology), "generate": None}
    return out


def base_scenario(scenario: str | None, flows: Path | None) -> str:
    """The scenario given, else ``trace`` for a call-trace replay (its risk floor suits recorded calls),
    else ``default``."""
    if scenario is not None:
        return scenario
    return "trace" if flows is not None else "default"


def run(
    ctx: typer.Context,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="shipped scenario name or a YAML file; a comma list makes a sweep "
            "[default: default, or trace with --flows]"
        ),
    ] = None,
    tm: Annotated[
        Path | None, typer.Option(help="traffic-matrix file: run a tm-replay on --topology")
    ] = None,
    topology: Annotated[Path | None, typer.Option(help="topology file (tm-replay, flow-trace)")] = None,
    flows: Annotated[Path | None, typer.Option(help="call-trace CSV: run a flow-trace replay")] = None,
    app_telemetry: Annotated[Path | None, typer.Option(help="per-app telemetry CSV for --flows")] = None,
    strategies: Annotated[
        str | None, typer.Option(help="comma list: reactive, oracle, scaffold:<naive|ewma|meank|...|lstm>")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed of every random source")] = None,
    duration: Annotated[float | None, typer.Option(help="simulated seconds")] = None,
    train_fraction: Annotated[
        float | None, typer.Option(help="share of the run forecasters learn on")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="sim (embedded emulator) or linux")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for summary.json, report.md and plots")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="summary as one JSON object on stdout")] = False,
    seeds: Annotated[
        str | None, typer.Option(help="sweep over seeds, 0..9 or 0,3,5: one report with 95% intervals")
    ] = None,
    ray_spec: Annotated[
        str | None, typer.Option("--ray", help="run strategies as Ray tasks: auto, local or HOST:PORT")
    ] = None,
) -> None:
    """Compare reactive, scaffolded and oracle strategies on one scenario (default: the embedded one)."""
    from netscaffold.scenarios.spec import load_scenario, scenario_path

    scenario = base_scenario(scenario, flows)
    effective = settings_for(ctx, seed=seed, backend=backend)
    if ray_spec is not None:
        from netscaffold.distributed.connection import parse_ray_spec

        parse_ray_spec(ray_spec)  # a bad value is refused before any work
    overrides = _overrides(
        seed=seed,
        duration=duration,
        train_fraction=train_fraction,
        strategies=strategies,
        backend=backend,
        tm=tm,
        topology=topology,
        flows=flows,
        app_telemetry=app_telemetry,
    )
    if "seed" not in overrides and effective.sources["seed"] != "default":
        overrides["seed"] = effective["seed"]
    if seeds is not None or "," in scenario:
        _sweep(scenario, overrides, seeds, seed=seed, ray_spec=ray_spec, out=out, as_json=as_json)
        return
    path = scenario_path(scenario)
    spec = load_scenario(path, overrides)
    if spec.backend == "linux":
        from netscaffold.backends.linux.signals import exit_on_sigterm
        from netscaffold.backends.linux.tools import require_facilities

        require_facilities()  # root, ip/nft/tc: refused here, before any lab is made
        exit_on_sigterm()  # the run's labs are torn down on the way out
    inputs = [p for p in (tm, topology, flows, app_telemetry) if p]
    _execute(spec, path, out=out, as_json=as_json, inputs=inputs, ray_spec=ray_spec)


def _sweep(
    scenario: str,
    overrides: dict[str, Any],
    seeds: str | None,
    *,
    seed: int | None,
    ray_spec: str | None,
    out: Path | None,
    as_json: bool,
) -> None:
    from netscaffold.distributed.sweep import (
        parse_seeds,
        render_sweep_markdown,
        run_sweep,
        write_sweep_report,
    )
    from netscaffold.reporting import to_json

    if seeds is not None and seed is not None:
        raise ConfigError("give either --seed or --seeds, not both", field="seeds")
    names = [name.strip() for name in scenario.split(",") if name.strip()]
    seed_list = parse_seeds(seeds) if seeds is not None else None
    doc = run_sweep(names, overrides, seed_list, ray_spec=ray_spec)
    if out is not None:
        write_sweep_report(doc, out)
    typer.echo(to_json(doc) if as_json else render_sweep_markdown(doc))


def _execute(
    spec: Any, path: Path, *, out: Path | None, as_json: bool, inputs: list[Path], ray_spec: str | None = None
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from netscaffold.reporting import to_json
    from netscaffold.scenarios.report import summary_document, write_report
    from netscaffold.scenarios.runner import ScenarioRunner

    err = console(stderr=True)
    runner = ScenarioRunner(spec, base_dir=path.parent)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(name: str, fraction: float) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"{name:<18}", total=1.0)
            progress.update(tasks[name], completed=fraction)

        if ray_spec is None:
            comparison = runner.run(on_progress)
        else:
            from netscaffold.distributed.connection import connect
            from netscaffold.distributed.executor import run_on_ray

            with connect(ray_spec) as session:
                comparison = run_on_ray(
                    session, [runner], on_done=lambda done, total: on_progress("ray tasks", done / total)
                )[0]
    doc = write_report(comparison, out, inputs) if out is not None else summary_document(comparison, inputs)
    if as_json:
        typer.echo(to_json(doc))
        return
    _print_table(doc, out)


def _print_table(doc: dict[str, Any], out: Path | None) -> None:
    from rich.table import Table

    table = Table(
        title=f"netscaffold run: {doc['scenario']} (seed {doc['seed']}), measured from "
        f"t={doc['split']['measured_from_s']:g} s"
    )
    columns = (
        ("hit ratio", "hit_ratio", "{:.3f}"),
        ("setup ms mean", "setup_ms_mean", "{:.2f}"),
        ("p50", "setup_ms_p50", "{:.2f}"),
        ("p99", "setup_ms_p99", "{:.2f}"),
        ("saved", "saved_fraction", "{:.3f}"),
        ("waste bw", "waste_bw_fraction", "{:.3f}"),
        ("unused rules", "unused_rule_fraction", "{:.3f}"),
        ("peak rules", "peak_rules_per_device", "{}"),
        ("ops/s", "plan_ops_per_s", "{:.1f}"),
        ("fc NMAE", "forecast_nmae", "{:.3f}"),
    )
    table.add_column("strategy")
    for title, _, _ in columns:
        table.add_column(title, justify="right")
    for name, fig in doc["strategies"].items():
        table.add_row(name, *("-" if fig[key] is None else fmt.format(fig[key]) for _, key, fmt in columns))
    out_console = console()
    out_console.print(table)
    if out is not None:
        out_console.print(f"report: {out / 'report.md'}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
