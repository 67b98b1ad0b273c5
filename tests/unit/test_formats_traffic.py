"""Traffic-matrix files: .npz and long CSV, their errors, and the validate summary."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from netscaffold.errors import TrafficError
from netscaffold.formats.traffic import (
    load_traffic,
    read_traffic,
    save_traffic_csv,
    save_traffic_npz,
    traffic_summary,
)
from netscaffold.model.traffic import TrafficMatrixSeries


def series(
    steps: int = 4, nodes: tuple[str, ...] = ("A", "B", "C"), gap_after: int | None = None
) -> TrafficMatrixSeries:
    rng = np.random.default_rng(7)
    tm = rng.uniform(0, 10, size=(steps, len(nodes), len(nodes)))
    tm[:, np.arange(len(nodes)), np.arange(len(nodes))] = 0.0
    tm[0, 0, 1] = 0.0
    times = np.datetime64("2004-03-01T00:00") + np.arange(steps) * np.timedelta64(5, "m")
    if gap_after is not None:
        times[gap_after + 1 :] += np.timedelta64(1, "D")
    return TrafficMatrixSeries(tm, nodes, 300.0, "Mbit/s", times)


def write_npz(path: Path, **arrays: object) -> Path:
    with path.open("wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
    return path


def test_npz_round_trip_and_summary(tmp_path: Path) -> None:
    original = series(gap_after=1)
    save_traffic_npz(original, tmp_path / "tm.npz")
    loaded = read_traffic(tmp_path / "tm.npz")
    again = loaded.series
    assert np.array_equal(again.tm, original.tm)
    assert again.nodes == original.nodes
    assert (again.interval_s, again.unit) == (300.0, "Mbit/s")
    summary = traffic_summary(loaded)
    assert summary["shape"] == [4, 3, 3]
    assert summary["segments"] == 2
    assert summary["gaps"][0]["after_step"] == 1
    assert summary["gaps"][0]["step_s"] == 86400 + 300
    assert summary["missing_values"] == 0
    assert summary["sparsity"] == pytest.approx(1 / 24)


def test_npz_germany_style_dates_and_inferred_interval(tmp_path: Path) -> None:
    dates = np.arange(np.datetime64("2005-02-01"), np.datetime64("2005-02-04"))
    path = write_npz(tmp_path / "g.npz", tm=np.ones((3, 2, 2)), nodes=np.array(["x", "y"]), dates=dates)
    loaded = read_traffic(path)
    assert loaded.series.interval_s == 86400.0
    assert loaded.series.unit == "Mbit/s"
    assert any("no unit" in w for w in loaded.warnings)


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        (
            {"tm": np.full((2, 2, 2), np.nan), "nodes": np.array(["a", "b"]), "interval_s": 60},
            "missing or infinite",
        ),
        ({"tm": -np.ones((1, 2, 2)), "nodes": np.array(["a", "b"]), "interval_s": 60}, "negative value"),
        ({"tm": np.ones((1, 2, 3)), "nodes": np.array(["a", "b"]), "interval_s": 60}, "not square: 2 x 3"),
        (
            {"tm": np.ones((1, 2, 2)), "nodes": np.array(["a", "b", "c"]), "interval_s": 60},
            "3 node names for 2 x 2",
        ),
        ({"tm": np.ones((1, 2, 2)), "interval_s": 60}, "missing array (the node names)"),
        ({"nodes": np.array(["a"]), "interval_s": 60}, "missing array 'tm'"),
        ({"tm": np.ones((1, 2, 2)), "nodes": np.array(["a", "b"])}, "no interval_s"),
        (
            {"tm": np.ones((1, 2, 2)), "nodes": np.array(["a", "b"]), "interval_s": 1, "unit": "furlongs"},
            "unknown unit",
        ),
        (
            {"tm": np.ones((1, 2, 2)), "nodes": np.array(["a", None], dtype=object), "interval_s": 1},
            "cannot load array",
        ),
    ],
)
def test_bad_npz(tmp_path: Path, arrays: dict[str, object], needle: str) -> None:
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(TrafficError) as info:
        load_traffic(path)
    assert needle in str(info.value)
    assert info.value.location.file == str(path)


def test_nan_position_is_named(tmp_path: Path) -> None:
    tm = np.zeros((3, 2, 2))
    tm[2, 1, 0] = np.nan
    path = write_npz(tmp_path / "nan.npz", tm=tm, nodes=np.array(["a", "b"]), interval_s=60)
    with pytest.raises(TrafficError) as info:
        load_traffic(path)
    assert str(info.value) == f"{path}: b->a: 1 missing or infinite value(s), first at step 2"


def test_corrupt_and_misnamed_archives(tmp_path: Path) -> None:
    save_traffic_npz(series(), tmp_path / "ok.npz")
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes((tmp_path / "ok.npz").read_bytes()[:200])
    with pytest.raises(TrafficError, match=r"not a readable \.npz|corrupt"):
        load_traffic(truncated)
    text = tmp_path / "text.npz"
    text.write_text("time,src,dst,value\n")
    with pytest.raises(TrafficError, match="no zip header"):
        load_traffic(text)


CSV = """# unit: kbit/s
# interval_s: 60
# nodes: a,b,c
# exported by: a test (ignored)
time,src,dst,value
1970-01-01T00:00:00,a,b,1.5
1970-01-01T00:01:00,b,c,2
1970-01-01T00:03:00,c,a,0.25
"""


def test_csv_with_header_lines(tmp_path: Path) -> None:
    path = tmp_path / "tm.csv"
    path.write_text(CSV)
    loaded = read_traffic(path)
    tm = loaded.series
    assert tm.nodes == ("a", "b", "c")
    assert (tm.unit, tm.interval_s, tm.steps) == ("kbit/s", 60.0, 3)
    assert tm.tm[0, 0, 1] == 1.5
    assert tm.tm[2, 2, 0] == 0.25
    assert loaded.absent_cells == 3 * 6 - 3
    assert tm.segments() == [(0, 2), (2, 3)]  # 00:01 -> 00:03 skips a step


def test_csv_unix_seconds_inferred_nodes_and_gzip(tmp_path: Path) -> None:
    body = "src,dst,value,time\nn10,n2,1,600\nn2,n10,2,900\n"
    path = tmp_path / "tm.csv.gz"
    path.write_bytes(gzip.compress(body.encode()))
    loaded = read_traffic(path)
    assert loaded.series.nodes == ("n2", "n10")
    assert loaded.series.interval_s == 300.0
    assert loaded.series.unit == "Mbit/s"
    assert loaded.warnings


def test_csv_round_trip(tmp_path: Path) -> None:
    original = series(steps=5, gap_after=2)
    save_traffic_csv(original, tmp_path / "tm.csv")
    again = load_traffic(tmp_path / "tm.csv")
    assert np.array_equal(again.tm, original.tm)
    assert again.nodes == original.nodes
    assert again.interval_s == original.interval_s
    assert again.segments() == original.segments()


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        ("time,src,dst,value\n0,a,b,nan\n", 2, "missing value (NaN)"),
        ("time,src,dst,value\n0,a,b,\n", 2, "missing value"),
        ("time,src,dst,value\n0,a,b,1\n60,a,b,-2\n", 3, "finite and >= 0"),
        (
            "# nodes: a,b\ntime,src,dst,value\n0,a,b,1\n60,a,z,1\n",
            4,
            "node 'z' is not in the '# nodes:' list",
        ),
        ("time,src,dst,value\n0,a,b,1\n0,a,b,2\n", 3, "duplicate row (first on line 2)"),
        ("time,src,dst,value\nyesterday,a,b,1\n", 2, "neither ISO 8601 nor Unix seconds"),
        ("time,src,value\n0,a,1\n", 1, "missing column(s) dst"),
        ("time,src,dst,value\n0,a,b\n", 2, "expected 4 columns"),
    ],
)
def test_bad_csv_names_the_line(tmp_path: Path, body: str, line: int, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(TrafficError) as info:
        load_traffic(path)
    assert needle in str(info.value)
    assert info.value.location.line == line
    assert info.value.location.file == str(path)


def test_csv_without_rows_or_interval(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("time,src,dst,value\n0,a,b,1\n")
    with pytest.raises(TrafficError, match="infer the interval"):
        load_traffic(path)
    path.write_text("# nodes: a\n")
    with pytest.raises(TrafficError, match="no header row"):
        load_traffic(path)


def test_file_level_problems(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match="file does not exist"):
        load_traffic(tmp_path / "absent.npz")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TrafficError, match="empty file"):
        load_traffic(tmp_path / "empty.csv")
    (tmp_path / "blob.csv").write_bytes(bytes(range(256)))
    with pytest.raises(TrafficError, match="binary file"):
        load_traffic(tmp_path / "blob.csv")
