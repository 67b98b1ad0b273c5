"""``netscaffold traffic validate`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def write_npz(path: Path, **arrays: object) -> Path:
    with path.open("wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
    return path


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tm.csv"
    path.write_text("# unit: Mbit/s\n# interval_s: 300\ntime,src,dst,value\n0,a,b,4\n300,b,a,2\n900,a,b,1\n")
    code, out, _ = run_cli(["traffic", "validate", str(path), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["shape"] == [3, 2, 2]
    assert doc["node_names"] == ["a", "b"]
    assert (doc["interval_s"], doc["unit"], doc["missing_values"]) == (300.0, "Mbit/s", 3)
    assert doc["segments"] == 2
    assert doc["gaps"] == [
        {"after_step": 1, "from": "1970-01-01T00:05:00.000", "to": "1970-01-01T00:15:00.000", "step_s": 600.0}
    ]
    assert str(path) in doc["inputs"]


def test_validate_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_npz(tmp_path / "tm.npz", tm=np.ones((2, 2, 2)), nodes=np.array(["x", "y"]), interval_s=60)
    code, out, err = run_cli(["traffic", "validate", str(path)], capsys)
    assert code == 0
    assert "2 x 2 x 2" in out
    assert "no unit array" in err


AB = np.array(["a", "b"])
BAD_NPZ = [
    ("nan.npz", {"tm": np.array([[[0.0, np.nan], [1.0, 0.0]]]), "nodes": AB, "interval_s": 60},
     "nan.npz: a->b: 1 missing or infinite value(s), first at step 0"),
    ("nodes.npz", {"tm": np.ones((1, 2, 2)), "nodes": np.array(["a"]), "interval_s": 60},
     "nodes.npz: field 'nodes': 1 node names for 2 x 2 matrices"),
    ("square.npz", {"tm": np.ones((1, 2, 3)), "nodes": AB, "interval_s": 60},
     "square.npz: field 'tm': matrices are not square: 2 x 3"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "arrays", "needle"), BAD_NPZ)
def test_bad_npz_is_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, arrays: dict[str, object], needle: str
) -> None:
    path = write_npz(tmp_path / name, **arrays)
    code, out, err = run_cli(["traffic", "validate", str(path)], capsys)
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [f"netscaffold: error: {tmp_path / needle}"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("time,src,dst,value\n0,a,b,NaN\n", "bad.csv:2: a->b: field 'value': missing value (NaN)"),
        (
            "# nodes: a,b\ntime,src,dst,value\n0,a,c,1\n",
            "bad.csv:3: a->c: node 'c' is not in the '# nodes:' list",
        ),
        ("", "bad.csv: empty file"),
        (b"\x00\x01\x02\x03" * 64, "bad.csv: binary file, not a text format"),
    ],
)
def test_bad_csv_is_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, needle: str
) -> None:
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, _, err = run_cli(["traffic", "validate", str(path)], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"netscaffold: error: {tmp_path / needle}"]


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["traffic", "validate", str(tmp_path / "gone.npz")], capsys)
    assert code == 2
    assert err.strip() == f"netscaffold: error: {tmp_path / 'gone.npz'}: file does not exist"
