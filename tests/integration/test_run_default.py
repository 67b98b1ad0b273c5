"""`netscaffold run` end to end on a shortened default scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netscaffold.cli.main import main

SHORT = ["--duration", "90", "--train-fraction", "0.5"]


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.slow
def test_default_scenario_orders_strategies_and_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = run_cli(["run", *SHORT, "--strategies", "reactive,scaffold:lstm,oracle", "--out", str(out)])
    assert code == 0
    doc = json.loads((out / "summary.json").read_text())
    figures = doc["strategies"]
    assert figures["reactive"]["saved_fraction"] == 0.0
    assert figures["oracle"]["saved_fraction"] == 1.0
    assert figures["oracle"]["saved_fraction"] >= figures["scaffold:lstm"]["saved_fraction"]
    assert figures["scaffold:lstm"]["saved_fraction"] >= figures["reactive"]["saved_fraction"]
    assert doc["split"] == {"train_fraction": 0.5, "measured_from_s": 45.0, "duration_s": 90.0}
    plots = ("setup_delay_cdf.png", "hit_ratio_and_waste.png", "forecast_vs_actual.png", "rule_occupancy.png")
    for name in ("report.md", *plots):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "| scaffold:lstm |" in report
    assert "## Recovery after drift" in report
    assert set(doc["drift_recovery"]) == {"reactive", "scaffold:lstm", "oracle"}
    # the run folder feeds the exporters
    assert run_cli(["export", "--from", str(out), "--out", str(tmp_path / "exp")]) == 0
    assert any((tmp_path / "exp").iterdir())


@pytest.mark.slow
def test_same_seed_same_summary(tmp_path: Path) -> None:
    docs = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        assert (
            run_cli(["run", *SHORT, "--strategies", "reactive,scaffold:ewma,oracle", "--out", str(out)]) == 0
        )
        docs.append((out / "summary.json").read_text())
    assert docs[0] == docs[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "reactive,scaffold:tea-leaves"], "unknown strategy 'scaffold:tea-leaves'"),
        (["--scenario", "no-such-scenario"], "unknown scenario 'no-such-scenario'"),
        (["--tm", "x.npz"], "--tm needs --topology"),
        (["--train-fraction", "1.5"], "train_fraction"),
    ],
)
def test_bad_run_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert run_cli(["run", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_scenario_with_unknown_key_names_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\nbudget:\n  rule_slots_per_device: -1\n")
    assert run_cli(["run", "--scenario", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert f"{scenario}:3" in err
    assert "budget.rule_slots_per_device" in err
