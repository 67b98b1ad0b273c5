"""Sweeps: every strategy x scenario x seed, aggregated into one report with confidence intervals.

``netscaffold run --seeds 0..9 --scenario A,B [--ray ...]`` runs one comparison per scenario and seed
(sequentially, or as Ray tasks: :mod:`netscaffold.distributed.executor`) and writes ``summary.json`` and
``report.md``: per scenario and strategy, the mean of each figure over the seeds and its 95% confidence
interval (Student t with n - 1 degrees of freedom; none for a single seed), plus every run's own figures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netscaffold.errors import ConfigError
from netscaffold.reporting import envelope, to_json
from netscaffold.scenarios.report import SUMMARY_KEYS, summary_document
from netscaffold.scenarios.runner import Comparison, ScenarioRunner

if TYPE_CHECKING:
    from netscaffold.distributed.executor import DoneFn

AGGREGATED_KEYS = (*SUMMARY_KEYS, "flows", "refused_plans", "retrains")
CONFIDENCE = 0.95
MAX_SEEDS = 10_000
_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def parse_seeds(text: str, *, option: str = "--seeds") -> tuple[int, ...]:
    """``0..9`` (inclusive), ``0,3,5`` or a mix (``0..3,7``); distinct, in the order given."""
    seeds: list[int] = []
    for part in text.split(","):
        if not part.strip():
            raise ConfigError(f"empty item in seed list {text!r}", field=option)
        ranged = _RANGE.match(part)
        if ranged is not None:
            first, last = int(ranged[1]), int(ranged[2])
            if last < first:
                raise ConfigError(f"seed range {part.strip()!r} runs backwards", field=option)
            if last - first >= MAX_SEEDS:
                raise ConfigError(f"seed range {part.strip()!r} has over {MAX_SEEDS} seeds", field=option)
            seeds.extend(range(first, last + 1))
            continue
        try:
            seeds.append(int(part))
        except ValueError:
            raise ConfigError(
                f"seed {part.strip()!r} is not an integer or a range like 0..9", field=option
            ) from None
    if any(seed < 0 for seed in seeds):
        raise ConfigError(f"seeds must be >= 0, got {text!r}", field=option)
    duplicated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if duplicated:
        raise ConfigError(f"seed {duplicated[0]} is listed twice", field=option)
    return tuple(seeds)


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean and the two-sided Student t confidence interval of the mean (``None`` bounds when n < 2)."""
    from scipy import stats  # lazy: only sweeps pay for scipy

    count = len(values)
    if count == 0:
        return {"n": 0, "mean": None, "ci95_low": None, "ci95_high": None}
    mean = math.fsum(values) / count
    if count < 2:
        return {"n": 1, "mean": mean, "ci95_low": None, "ci95_high": None}
    variance = math.fsum((v - mean) ** 2 for v in values) / (count - 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, count - 1)) * math.sqrt(variance / count)
    return {"n": count, "mean": mean, "ci95_low": mean - half, "ci95_high": mean + half}


def sweep_document(comparisons: Sequence[Comparison]) -> dict[str, Any]:
    """The sweep's summary: per scenario and strategy, mean and 95% CI of each figure; every run's figures."""
    seeds = sorted({comparison.scenario.seed for comparison in comparisons})
    runs = []
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    for comparison in comparisons:
        doc = summary_document(comparison)
        runs.append({"scenario": doc["scenario"], "seed": doc["seed"], "strategies": doc["strategies"]})
        per_strategy = values.setdefault(doc["scenario"], {})
        for name, figures in doc["strategies"].items():
            per_key = per_strategy.setdefault(name, {key: [] for key in AGGREGATED_KEYS})
            for key in AGGREGATED_KEYS:
                if figures.get(key) is not None:
                    per_key[key].append(float(figures[key]))
    aggregate = {
        scenario: {
            name: {key: _rounded(mean_ci(series)) for key, series in per_key.items()}
            for name, per_key in per_strategy.items()
        }
        for scenario, per_strategy in values.items()
    }
    return envelope(
        {
            "kind": "sweep",
            "scenarios": list(values),
            "seeds": list(seeds),
            "confidence": CONFIDENCE,
            "aggregate": aggregate,
            "runs": runs,
        }
    )


def _rounded(stat: dict[str, Any]) -> dict[str, Any]:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in stat.items()}


REPORT_COLUMNS = (
    ("saved fraction", "saved_fraction"),
    ("hit ratio", "hit_ratio"),
    ("setup ms mean", "setup_ms_mean"),
    ("waste bw", "waste_bw_fraction"),
    ("unused rules", "unused_rule_fraction"),
    ("peak rules", "peak_rules_per_device"),
    ("forecast NMAE", "forecast_nmae"),
)


def render_sweep_markdown(doc: dict[str, Any]) -> str:
    seeds = doc["seeds"]
    lines = [
        "# netscaffold sweep",
        "",
        f"Seeds {', '.join(str(s) for s in seeds)} ({len(seeds)} per scenario). Each cell: mean over the "
        "seeds [95% confidence interval, Student t]; a single seed has no interval.",
    ]
    for scenario, strategies in doc["aggregate"].items():
        lines += ["", f"## {scenario}", ""]
        lines.append("| strategy | " + " | ".join(title for title, _ in REPORT_COLUMNS) + " |")
        lines.append("|---" * (len(REPORT_COLUMNS) + 1) + "|")
        for name, stats in strategies.items():
            cells = [_cell(stats[key]) for _, key in REPORT_COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Every run's own figures are in summary.json (`runs`).", ""]
    return "\n".join(lines)


def _cell(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "-"
    if stat["ci95_low"] is None:
        return f"{stat['mean']:.3f}"
    return f"{stat['mean']:.3f} [{stat['ci95_low']:.3f}, {stat['ci95_high']:.3f}]"


def write_sweep_report(doc: dict[str, Any], out_dir: Path) -> None:
    """``summary.json`` and ``report.md`` in ``out_dir`` (created when missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(to_json(doc) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_sweep_markdown(doc), encoding="utf-8")


def sweep_runners(
    scenarios: Sequence[str], overrides: Mapping[str, Any], seeds: Sequence[int] | None
) -> Iterator[ScenarioRunner]:
    """One runner per scenario (name or file) and seed, built as they are asked for.

    ``overrides`` apply to every scenario (the CLI's flags); without ``seeds`` each scenario runs with the
    seed it (or the overrides) names.
    """
    from netscaffold.scenarios.spec import load_scenario, scenario_path

    if not scenarios:
        raise ConfigError("no scenario given", field="scenario")
    names: dict[str, str] = {}
    for given in scenarios:
        path = scenario_path(given)
        base = load_scenario(path, dict(overrides))
        if base.backend != "sim":
            raise ConfigError(
                f"scenario {given!r}: sweeps run on the embedded emulator only (backend {base.backend!r})",
                field="backend",
            )
        if base.name in names:
            raise ConfigError(
                f"scenarios {names[base.name]!r} and {given!r} are both named {base.name!r}", field="scenario"
            )
        names[base.name] = given
        for seed in seeds if seeds is not None else (base.seed,):
            spec = base if seed == base.seed else load_scenario(path, {**overrides, "seed": seed})
            yield ScenarioRunner(spec, base_dir=path.parent)


def run_sweep(
    scenarios: Sequence[str],
    overrides: Mapping[str, Any],
    seeds: Sequence[int] | None,
    *,
    ray_spec: str | None = None,
    on_done: DoneFn | None = None,
) -> dict[str, Any]:
    """Run every scenario x seed (each with all its strategies) and return the sweep document.

    Without ``ray_spec`` the comparisons run one after the other in this process; with it, every strategy
    of every comparison is a Ray task (see :mod:`netscaffold.distributed.executor`).
    """
    from netscaffold.distributed.executor import run_local, run_on_ray

    runners = sweep_runners(scenarios, overrides, seeds)
    if ray_spec is None:
        return sweep_document(run_local(list(runners)))
    from netscaffold.distributed.connection import connect

    with connect(ray_spec) as session:
        return sweep_document(run_on_ray(session, runners, on_done=on_done))
