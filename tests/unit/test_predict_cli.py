"""``netscaffold forecast train | evaluate | predict`` on tiny files; bad input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from netscaffold.cli.main import main
from netscaffold.predict import make_forecaster
from netscaffold.predict.checkpoint import checkpoint_info


def write_tm(path: Path, steps: int = 260, nodes: int = 3, seed: int = 0, nan: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    base = 20.0 + 8.0 * np.sin(2 * np.pi * t / 24)
    tm = (
        base[:, None, None]
        * rng.uniform(0.2, 2.0, (1, nodes, nodes))
        * rng.lognormal(0, 0.05, (steps, nodes, nodes))
    )
    tm[:, np.arange(nodes), np.arange(nodes)] = 0.0
    if nan:
        tm[5, 0, 1] = np.nan
    names = np.array([f"r{i}" for i in range(nodes)])
    np.savez(path, tm=tm, nodes=names, unit=np.array("Mbit/s"), interval_s=np.array(3600.0))
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_evaluate_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tm = write_tm(tmp_path / "tm.npz")
    code, out, err = run_cli(
        ["forecast", "evaluate", "--tm", str(tm), "--models", "naive,ewma,meank,quantile,lstm",
         "--epochs", "1", "--horizons", "1,3", "--device", "cpu", "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert set(result["models"]) == {"naive", "ewma", "meank", "quantile", "lstm"}
    assert set(result["models"]["lstm"]) == {"1", "3"}
    for key in ("nmae", "mae", "pinball", "coverage_q90", "coverage_q99"):
        assert 0.0 <= result["models"]["ewma"]["3"][key] < 100.0
    assert result["best_baseline"]["1"] in {"naive", "ewma", "meank", "quantile"}
    assert set(result["train_s"]) == set(result["models"])
    assert result["schema_version"] == 1
    assert str(tm) in result["inputs"]


def test_train_then_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tm = write_tm(tmp_path / "tm.npz")
    ckpt = tmp_path / "ewma.ckpt"
    code, _, err = run_cli(
        ["forecast", "train", "--tm", str(tm), "--model", "ewma", "--out", str(ckpt)], capsys
    )
    assert code == 0, err
    code, out, err = run_cli(
        ["forecast", "predict", "--checkpoint", str(ckpt), "--tm", str(tm), "--at", "200", "--horizon", "4",
         "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == "ewma"
    assert result["at"] == 200
    assert result["levels"] == [0.5, 0.9, 0.99]
    quantiles = np.array(result["quantiles_bps"])
    assert quantiles.shape == (6, 4, 3)
    assert np.all(np.diff(quantiles, axis=-1) >= 0)
    assert quantiles[0, 0, 0] > 1e6  # Mbit/s in the file, bit/s out
    code, out, _ = run_cli(["forecast", "predict", "--checkpoint", str(ckpt), "--tm", str(tm)], capsys)
    assert code == 0
    assert "r0->r1" in out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nan", "missing or infinite"),
        ("unknown-model", "unknown model"),
        ("horizon-0", "horizon must be >= 1"),
        ("other-nodes", "another node set"),
        ("corrupt-checkpoint", "corrupt or truncated"),
        ("short-history", "steps of contiguous history"),
        ("no-input", "exactly one of --tm"),
    ],
)
def test_bad_input_exits_2(
    case: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tm = write_tm(tmp_path / "tm.npz")
    ckpt = tmp_path / "naive.ckpt"
    if case in ("other-nodes", "short-history"):  # seasonal: finds the 24-step period, needs 24 steps
        assert (
            run_cli(
                ["forecast", "train", "--tm", str(tm), "--model", "seasonal", "--out", str(ckpt)], capsys
            )[0]
            == 0
        )
    args = {
        "nan": ["forecast", "evaluate", "--tm", str(write_tm(tmp_path / "nan.npz", nan=True))],
        "unknown-model": ["forecast", "evaluate", "--tm", str(tm), "--models", "naive,prophet"],
        "horizon-0": ["forecast", "evaluate", "--tm", str(tm), "--models", "naive", "--horizons", "0"],
        "other-nodes": ["forecast", "predict", "--checkpoint", str(ckpt), "--tm",
                        str(write_tm(tmp_path / "four.npz", nodes=4)), "--horizon", "2"],
        "corrupt-checkpoint": ["forecast", "predict", "--checkpoint", str(tmp_path / "tm.npz"),
                               "--tm", str(tm)],
        "short-history": ["forecast", "predict", "--checkpoint", str(ckpt), "--tm", str(tm), "--at", "10"],
        "no-input": ["forecast", "evaluate"],
    }[case]  # fmt: skip
    code, _, err = run_cli(args, capsys)
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_telemetry_directory_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A microservices telemetry directory: endpoint telemetry becomes eight LSTM input features."""
    from netscaffold.predict.telemetry_input import EXOG_NAMES, read_telemetry_input

    out = tmp_path / "ms"
    code, _, err = run_cli(
        ["workload", "generate", "microservices", "--out", str(out), "--duration", "200", "--seed", "1"],
        capsys,
    )
    assert code == 0, err
    data = read_telemetry_input(out)
    assert data.series.exog is not None
    assert data.series.exog_names == EXOG_NAMES
    assert data.series.exog.shape == (200, data.series.n_pairs, 8)
    assert data.series.bps_factor == 8.0
    ckpt = tmp_path / "lstm.ckpt"
    tiny = {"window": 8, "hidden": 8, "epochs": 1, "windows_per_epoch": 512, "device": "cpu"}
    make_forecaster("lstm", horizon=3, **tiny).fit(data.series).save(ckpt)

    features = checkpoint_info(ckpt)["config"]["features"]
    # pairs of a microservices run go idle: the window carries their on/off flags too
    assert features[:4] == ["dlog_traffic", "active", "tod_sin", "tod_cos"]
    assert features[4:12] == list(EXOG_NAMES)
    assert "pair_active_share" in features
    code, out_text, err = run_cli(
        [
            "forecast",
            "predict",
            "--checkpoint",
            str(ckpt),
            "--telemetry",
            str(out),
            "--horizon",
            "3",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    assert np.array(json.loads(out_text)["activity"]).shape == (data.series.n_pairs, 3)
