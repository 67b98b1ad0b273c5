"""`netscaffold emulate`, `workload generate` and `workload convert-spans` from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netscaffold.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k != "wall_s" and not k.endswith("_per_s")}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


EMULATE = ["emulate", "--workload", "microservices", "--generate", "fat-tree", "--duration", "8", "--json"]


def test_emulate_json_repeats_with_the_seed_except_timing(capsys: pytest.CaptureFixture[str]) -> None:
    code, first, err = run_cli([*EMULATE, "--seed", "4"], capsys)
    assert code == 0, err
    code, second, _ = run_cli([*EMULATE, "--seed", "4"], capsys)
    assert code == 0
    a, b = json.loads(first), json.loads(second)
    assert _without_timing(a) == _without_timing(b)
    assert a["seed"] == 4
    assert a["topology"] == "fat-tree-k4"
    assert a["profile"] == "sdn-lan"
    emulation = a["emulation"]
    assert emulation["flows"] == a["workload"]["flows"] > 0
    assert set(emulation["setup_delay_s"]) == {"mean", "p50", "p99"}
    assert emulation["reactive_setups"] > 0
    assert {"mean", "p99", "max"} <= set(emulation["link_utilisation"])
    assert a["wall_s"] > 0
    assert a["events_per_s"] > 0
    code, other, _ = run_cli([*EMULATE, "--seed", "5"], capsys)
    assert _without_timing(json.loads(other)) != _without_timing(a)


def test_emulate_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["emulate", "--workload", "batch", "--duration", "20", "--seed", "1"], capsys)
    assert code == 0, err
    assert "setup delay mean / p50 / p99" in out
    assert "link utilisation" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["emulate", "--workload", "tm-replay"], "needs --tm"),
        (["emulate", "--workload", "web"], "unknown workload 'web'"),
        (["emulate", "--generate", "ring"], "unknown generator 'ring'"),
        (["emulate", "--profile", "fast"], "unknown profile 'fast'"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_emulate_refuses_a_flow_csv_with_a_wrong_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text("time_s,src,dst,megabytes\n0,a,b,1\n")
    code, _, err = run_cli(["emulate", "--workload", "flow-trace", "--flows", str(flows)], capsys)
    assert code == 2
    assert f"{flows}:1" in err
    assert "'megabytes'" in err


def test_workload_generate_writes_a_telemetry_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from netscaffold.telemetry import load_telemetry_dir

    out = tmp_path / "tel"
    args = ["workload", "generate", "batch", "--duration", "60", "--seed", "2", "--out", str(out), "--json"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["kind"] == "batch"
    assert report["files"] == [
        "flows.csv",
        "app_telemetry.csv",
        "pair_bytes.npz",
        "placement.csv",
        "meta.json",
    ]
    loaded = load_telemetry_dir(out)
    assert len(loaded.flows) == report["flows"]
    assert loaded.store.ticks == 60
    assert loaded.meta["source"]["generate"] == "leaf-spine"


def test_convert_spans_cli(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hotel.csv"
    spans = shared_data / "app_traces" / "traceweaver_deathstarbench_hotel_spans.npz"
    code, stdout, err = run_cli(
        ["workload", "convert-spans", str(spans), "--out", str(out), "--group", "5", "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(stdout)
    assert report["calls"] == 5000
    assert len(report["pairs"]) == 5
    assert out.read_text().count("\n") == 5001
