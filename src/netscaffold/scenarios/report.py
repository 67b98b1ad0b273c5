"""What `netscaffold run` writes: summary.json, report.md and PNG plots, in a folder the user names."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from netscaffold.reporting import envelope, to_json
from netscaffold.scenarios.drift import DRIFT_KINDS, drift_recoveries, summarise
from netscaffold.scenarios.runner import Comparison

SUMMARY_KEYS = (
    "hit_ratio",
    "setup_ms_mean",
    "setup_ms_p50",
    "setup_ms_p99",
    "saved_fraction",
    "waste_bw_fraction",
    "unused_rule_fraction",
    "peak_rules_per_device",
    "plan_ops_per_s",
    "forecast_nmae",
)


def summary_document(comparison: Comparison, inputs: list[Path] | None = None) -> dict[str, Any]:
    sc = comparison.scenario
    figures = comparison.summary()
    strategies = {
        name: {key: _round(fig[key]) for key in (*SUMMARY_KEYS, "flows", "refused_plans", "retrains")}
        for name, fig in figures.items()
    }
    return envelope(
        {
            "scenario": sc.name,
            "strategies": strategies,
            "split": {
                "train_fraction": sc.train_fraction,
                "measured_from_s": comparison.measure_from_s,
                "duration_s": sc.duration_s,
            },
            "workload": {
                "kind": comparison.workload.kind,
                "flows": len(comparison.workload.flows),
                "endpoints": len(comparison.workload.flows.endpoints),
                "pairs": len(comparison.index),
                "events": [e.to_json() for e in comparison.workload.events],
                "notes": list(comparison.workload.notes),
            },
            "profile": sc.profile,
            "drift_recovery": drift_document(comparison),
        },
        seed=sc.seed,
        inputs=inputs or [],
    )


def drift_document(comparison: Comparison) -> dict[str, Any]:
    """Per strategy: recovery of the hit ratio after each drift event of the measured period."""
    out: dict[str, Any] = {}
    for name, run in comparison.runs.items():
        recoveries = drift_recoveries(
            run.tally.timeline, comparison.workload.events, measure_from_s=comparison.measure_from_s
        )
        out[name] = {
            **summarise(recoveries),
            "per_event": [{k: _round(v) for k, v in r.as_dict().items()} for r in recoveries],
        }
    return out


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return None if np.isnan(value) else round(value, 6)
    return value


def write_report(comparison: Comparison, out_dir: Path, inputs: list[Path] | None = None) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = summary_document(comparison, inputs)
    (out_dir / "summary.json").write_text(to_json(doc) + "\n", encoding="utf-8")
    write_primed_config(comparison, out_dir)
    write_lab_processes(comparison, out_dir)
    plots = write_plots(comparison, out_dir)
    (out_dir / "report.md").write_text(render_markdown(doc, plots), encoding="utf-8")
    return doc


def write_lab_processes(comparison: Comparison, out_dir: Path) -> bool:
    """lab_processes.csv (``backend: linux``): per strategy, tick and process in the lab's namespaces,
    the cores it kept busy and its resident memory; nothing when no run sampled any."""
    if not any(run.lab_processes for run in comparison.runs.values()):
        return False
    with (out_dir / "lab_processes.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["strategy", "time_s", "node", "pid", "name", "cpu", "memory"])
        for name, run in comparison.runs.items():
            for s in run.lab_processes:
                writer.writerow([name, f"{s.time_s:.3f}", s.node, s.pid, s.name, f"{s.cpu:.4f}", s.memory])
    return True


def write_primed_config(comparison: Comparison, out_dir: Path) -> str | None:
    """topology.json (NetJSON, with endpoints) and config.json: the final primed configuration of the
    scaffolding strategy that saved the most setup delay (for `netscaffold export --from RUN_DIR`)."""
    from netscaffold.formats import configjson as codec
    from netscaffold.formats.netjson import to_netjson

    figures = comparison.summary()
    scaffolded = [name for name in comparison.runs if name.startswith("scaffold:")]
    if not scaffolded:
        return None
    best = max(scaffolded, key=lambda name: (figures[name]["saved_fraction"] or 0.0, name))
    (out_dir / "topology.json").write_text(to_netjson(comparison.workload.topology), encoding="utf-8")
    config = codec.config_json(comparison.runs[best].final_config)
    (out_dir / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return best


def render_markdown(doc: dict[str, Any], plots: list[str]) -> str:
    lines = [
        f"# netscaffold run: scenario `{doc['scenario']}` (seed {doc['seed']})",
        "",
        f"Workload: {doc['workload']['kind']}, {doc['workload']['flows']} flows over "
        f"{doc['workload']['endpoints']} endpoints; setup-cost profile `{doc['profile']}`. Figures cover "
        f"t >= {doc['split']['measured_from_s']:g} s of {doc['split']['duration_s']:g} s "
        f"(forecasters learn on the first {doc['split']['train_fraction']:.0%}).",
        "",
        "| strategy | hit ratio | setup ms mean | p50 | p99 | saved | waste bw | unused rules "
        "| peak rules/device | plan ops/s | forecast NMAE |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, fig in doc["strategies"].items():
        cells = [_cell(fig[key]) for key in SUMMARY_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "saved = (reactive - strategy) / (reactive - oracle) of total setup delay.", ""]
    drift = doc.get("drift_recovery") or {}
    if drift:
        lines += [
            "## Recovery after drift",
            "",
            "Hit ratio in 10 s windows after each deployment or scale-out of the measured period, against "
            "the 30 s before it: recovered = back within 5% (relative); target: within 60 s.",
            "",
            "| strategy | drift events | recovered | worst recovery (s) |",
            "|---|---|---|---|",
        ]
        for name, fig in drift.items():
            lines.append(
                f"| {name} | {fig['events']} | {fig['recovered']} | {_cell(fig['worst_recovery_s'])} |"
            )
        lines.append("")
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    events = doc["workload"]["events"]
    if events:
        lines += ["", "## Workload events", ""]
        lines += [f"- t={e['time_s']:g} s: {e['kind']} {e['subject']}" for e in events[:50]]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def write_plots(comparison: Comparison, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, draw in (
        ("cumulative_setup_delay.png", _plot_cumulative),
        ("setup_delay_cdf.png", _plot_cdf),
        ("hit_ratio_and_waste.png", _plot_timeline),
        ("forecast_vs_actual.png", _plot_forecasts),
        ("rule_occupancy.png", _plot_occupancy),
    ):
        fig = draw(comparison, plt)
        if fig is None:
            continue
        fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(name)
    return written


def _plot_cumulative(comparison: Comparison, plt: Any) -> Any:
    """Setup delay paid so far, per strategy: the gap to reactive is what scaffolding saved."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, run in comparison.runs.items():
        times = np.asarray(run.tally.flow_times_s)
        delays = np.asarray(run.tally.setup_delays_s)
        keep = times >= comparison.measure_from_s
        order = np.argsort(times[keep], kind="stable")
        ax.step(times[keep][order], np.cumsum(delays[keep][order]), where="post", label=name)
    ax.set_xlabel("simulated time (s), measured part")
    ax.set_ylabel("total setup delay paid (s)")
    ax.set_title(
        f"Setup delay paid by new flows ({comparison.scenario.name}, seed {comparison.scenario.seed})"
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _plot_cdf(comparison: Comparison, plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, run in comparison.runs.items():
        tally = run.tally
        times = np.asarray(tally.flow_times_s)
        delays = np.sort(np.asarray(tally.setup_delays_s)[times >= comparison.measure_from_s] * 1e3)
        if delays.size:
            ax.step(delays, np.arange(1, delays.size + 1) / delays.size, where="post", label=name)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("setup delay before the first packet moves (ms)")
    ax.set_ylabel("share of new flows")
    ax.set_title("Setup-delay CDF per strategy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _smooth(values: np.ndarray, window: int = 10) -> np.ndarray:
    if values.size < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="same")


def _plot_timeline(comparison: Comparison, plt: Any) -> Any:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for name, run in comparison.runs.items():
        rows = np.asarray(run.tally.timeline)
        if rows.size == 0 or name == "reactive":
            continue
        flows, hits = _smooth(rows[:, 1]), _smooth(rows[:, 2])
        top.plot(rows[:, 0], np.divide(hits, flows, out=np.zeros_like(hits), where=flows > 0), label=name)
        reserved, unused = rows[:, 3], rows[:, 4]
        bottom.plot(
            rows[:, 0], np.divide(unused, reserved, out=np.zeros_like(unused), where=reserved > 0), label=name
        )
    for event in comparison.workload.events:
        if event.kind in DRIFT_KINDS:
            for ax in (top, bottom):
                ax.axvline(event.time_s, color="grey", alpha=0.3, linewidth=0.8)
    for ax in (top, bottom):
        ax.axvline(comparison.measure_from_s, color="black", linestyle="--", linewidth=0.8)
        ax.grid(alpha=0.3)
    top.set_ylabel("hit ratio (10 s mean)")
    bottom.set_ylabel("reserved bw unused")
    bottom.set_xlabel("simulated time (s); dashed: end of training; grey: scaling and deployments")
    top.legend(fontsize=8)
    top.set_title("Hit ratio and bandwidth waste over time")
    return fig


def _plot_forecasts(comparison: Comparison, plt: Any) -> Any:
    actual = comparison.actual_bps
    runs = [r for r in comparison.runs.values() if r.forecasts]
    if actual is None or not runs:
        return None
    top_pairs = np.argsort(-actual.sum(axis=0))[:4]
    fig, axes = plt.subplots(len(top_pairs), 1, figsize=(8, 2.2 * len(top_pairs)), sharex=True)
    for ax, pair in zip(np.atleast_1d(axes), top_pairs, strict=True):
        ax.plot(np.arange(actual.shape[0]), actual[:, pair] / 1e6, color="black", linewidth=1, label="actual")
        for run in runs:
            ticks = sorted(run.forecasts)
            ax.plot(ticks, [run.forecasts[t][pair] / 1e6 for t in ticks], linewidth=0.8, label=run.name)
        src, dst = comparison.index.pairs[pair]
        ax.set_ylabel(f"{src}\n->{dst}\nMbit/s", fontsize=7)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, ncol=3)
    np.atleast_1d(axes)[-1].set_xlabel("tick")
    fig.suptitle("One-step-ahead median forecast against what the pair carried (top pairs)")
    return fig


def _plot_occupancy(comparison: Comparison, plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, run in comparison.runs.items():
        rows = np.asarray(run.tally.occupancy)
        if rows.size and name != "reactive":
            ax.plot(rows[:, 0], rows[:, 1], label=name)
    budget = comparison.scenario.budget.rule_slots_per_device
    ax.axhline(budget, color="red", linestyle=":", label=f"budget {budget}")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("provisional entries, busiest device")
    ax.set_yscale("symlog")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Rule-table occupancy")
    return fig
