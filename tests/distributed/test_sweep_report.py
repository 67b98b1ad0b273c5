"""Sweeps without Ray: seed lists, Student t intervals, the aggregated report, the CLI's bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from netscaffold.cli.main import main
from netscaffold.distributed.sweep import mean_ci, parse_seeds, run_sweep
from netscaffold.errors import ConfigError

# The shipped 2x2 leaf-spine scenario, shortened: a comparison takes a few seconds.
SMALL = {"duration_s": 30.0, "strategies": ["reactive", "scaffold:ewma", "oracle"]}


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("0..9", tuple(range(10))),
        ("0,3,5", (0, 3, 5)),
        ("7", (7,)),
        ("0..2, 9", (0, 1, 2, 9)),
        ("4..4", (4,)),
    ],
)
def test_parse_seeds_accepts_ranges_and_lists(text: str, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty item"),
        ("1,,2", "empty item"),
        ("a", "not an integer"),
        ("3..1", "backwards"),
        ("0..99999", "over 10000"),
        ("-1", ">= 0"),
        ("1,1", "listed twice"),
        ("0..2,2", "listed twice"),
    ],
)
def test_parse_seeds_rejects_bad_lists_naming_the_option(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        parse_seeds(text)
    assert caught.value.location.field == "--seeds"


def test_mean_ci_is_the_student_t_interval() -> None:
    stat = mean_ci([1.0, 2.0, 3.0])
    # sd 1, n 3, t(0.975, 2) = 4.302653: half width 4.302653 / sqrt(3)
    half = 4.302652729749464 / math.sqrt(3)
    assert stat["n"] == 3
    assert stat["mean"] == pytest.approx(2.0)
    assert stat["ci95_low"] == pytest.approx(2.0 - half)
    assert stat["ci95_high"] == pytest.approx(2.0 + half)


def test_mean_ci_of_one_value_has_no_interval_and_of_equal_values_a_zero_one() -> None:
    assert mean_ci([0.5]) == {"n": 1, "mean": 0.5, "ci95_low": None, "ci95_high": None}
    assert mean_ci([]) == {"n": 0, "mean": None, "ci95_low": None, "ci95_high": None}
    flat = mean_ci([0.25, 0.25])
    assert flat["ci95_low"] == flat["ci95_high"] == pytest.approx(0.25)


@pytest.mark.slow
def test_sequential_sweep_aggregates_every_run(tmp_path: Path) -> None:
    doc = run_sweep(["small"], SMALL, (0, 1, 2))
    assert doc["kind"] == "sweep"
    assert doc["seeds"] == [0, 1, 2]
    assert [(run["scenario"], run["seed"]) for run in doc["runs"]] == [
        ("small", 0),
        ("small", 1),
        ("small", 2),
    ]
    aggregate = doc["aggregate"]["small"]
    assert list(aggregate) == ["reactive", "scaffold:ewma", "oracle"]
    hits = [run["strategies"]["scaffold:ewma"]["hit_ratio"] for run in doc["runs"]]
    stat = aggregate["scaffold:ewma"]["hit_ratio"]
    assert stat["n"] == 3
    assert stat["mean"] == pytest.approx(sum(hits) / 3, abs=1e-6)
    assert stat["ci95_low"] <= stat["mean"] <= stat["ci95_high"]
    assert aggregate["oracle"]["saved_fraction"]["mean"] == 1.0
    assert len({json.dumps(run["strategies"]) for run in doc["runs"]}) == 3  # seeds change the workload


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.slow
def test_cli_sweep_writes_summary_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    args = ["run", "--scenario", "small", "--duration", "30", "--seeds", "0,3"]
    assert run_cli([*args, "--strategies", "reactive,scaffold:naive,oracle", "--out", str(out)]) == 0
    doc = json.loads((out / "summary.json").read_text())
    assert doc["seeds"] == [0, 3]
    assert doc["aggregate"]["small"]["scaffold:naive"]["hit_ratio"]["n"] == 2
    report = (out / "report.md").read_text()
    assert "## small" in report
    assert "| scaffold:naive |" in report
    assert "[" in report  # intervals printed
    assert "| scaffold:naive |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0..x"], "not an integer or a range"),
        (["--seeds", "0,1", "--seed", "3"], "either --seed or --seeds"),
        (["--scenario", "small,small", "--seeds", "0"], "both named 'small'"),
        (["--scenario", "small,no-such-scenario"], "unknown scenario 'no-such-scenario'"),
        (["--ray", "nowhere"], "--ray"),
    ],
)
def test_bad_sweep_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert run_cli(["run", "--scenario", "small", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not out.exists()
