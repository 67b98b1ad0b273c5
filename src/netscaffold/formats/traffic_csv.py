"""Long-CSV traffic matrices (``time, src, dst, value``): reader and writer. Layout: see
:mod:`netscaffold.formats.traffic`."""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError
from netscaffold.formats.checks import natural_key
from netscaffold.formats.traffic_common import DEFAULT_UNIT, TrafficLoad, infer_interval_s
from netscaffold.model.traffic import TrafficMatrixSeries

_HEADER_KEYS = ("unit", "interval_s", "nodes")
COLUMNS = ("time", "src", "dst", "value")


@dataclass
class _Header:
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    first_data_line: int = 0


def _read_header(lines: list[str]) -> _Header:
    """``# key: value`` lines before the column header (other comment lines are ignored)."""
    header = _Header()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            header.first_data_line = number
            return header
        key, sep, value = stripped.lstrip("#").partition(":")
        if sep and key.strip() in _HEADER_KEYS:
            header.values[key.strip()] = value.strip()
            header.lines[key.strip()] = number
    raise TrafficError("no header row 'time,src,dst,value'")


def _parse_time_ms(text: str, line: int) -> int:
    """Milliseconds since the Unix epoch from ISO 8601 or Unix seconds."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            with warnings.catch_warnings():  # numpy warns on a zone offset; it converts to UTC, as wanted
                warnings.simplefilter("ignore")
                return int(np.datetime64(text.strip().removesuffix("Z"), "ms").astype(np.int64))
        except ValueError:
            raise TrafficError(f"time {text!r} is neither ISO 8601 nor Unix seconds", line=line) from None
    if not math.isfinite(seconds):
        raise TrafficError(f"time {text!r} is not finite", line=line)
    return round(seconds * 1000)


def _parse_value(text: str, line: int, pair: str) -> float:
    try:
        value = float(text)
    except ValueError:
        reason = "missing value" if not text.strip() else f"not a number: {text!r}"
        raise TrafficError(reason, line=line, element=pair, field="value") from None
    if math.isnan(value):
        raise TrafficError("missing value (NaN)", line=line, element=pair, field="value")
    if not math.isfinite(value) or value < 0:
        raise TrafficError(f"value must be finite and >= 0, got {text.strip()}", line=line, element=pair)
    return value


@dataclass
class _Rows:
    declared_nodes: tuple[str, ...] | None
    cells: dict[tuple[int, str, str], float] = field(default_factory=dict)
    first_line: dict[tuple[int, str, str], int] = field(default_factory=dict)
    time_cache: dict[str, int] = field(default_factory=dict)

    def add(self, row: dict[str, str], line: int) -> None:
        src, dst = row["src"].strip(), row["dst"].strip()
        pair = f"{src}->{dst}"
        if not src or not dst:
            raise TrafficError("src and dst must not be empty", line=line)
        for end in (src, dst):
            if self.declared_nodes is not None and end not in self.declared_nodes:
                raise TrafficError(f"node {end!r} is not in the '# nodes:' list", line=line, element=pair)
        time_text = row["time"]
        when = self.time_cache.get(time_text)
        if when is None:
            when = self.time_cache[time_text] = _parse_time_ms(time_text, line)
        key = (when, src, dst)
        if key in self.cells:
            raise TrafficError(
                f"duplicate row (first on line {self.first_line[key]})", line=line, element=pair
            )
        self.cells[key] = _parse_value(row["value"], line, pair)
        self.first_line[key] = line


def _declared_nodes(header: _Header) -> tuple[str, ...] | None:
    text = header.values.get("nodes")
    if text is None:
        return None
    nodes = tuple(n.strip() for n in text.split(",") if n.strip())
    if len(set(nodes)) != len(nodes) or not nodes:
        raise TrafficError("node list is empty or repeats a name", line=header.lines["nodes"], field="nodes")
    return nodes


def _header_interval(header: _Header) -> float | None:
    text = header.values.get("interval_s")
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise TrafficError(
            f"not a number: {text!r}", line=header.lines["interval_s"], field="interval_s"
        ) from None


def read_traffic_csv(text: str) -> TrafficLoad:
    """Parse long-CSV text; errors carry the line (the caller adds the file)."""
    lines = text.splitlines()
    header = _read_header(lines)
    reader = csv.DictReader(lines[header.first_data_line - 1 :])
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise TrafficError(f"missing column(s) {', '.join(missing)}", line=header.first_data_line)
    reader.fieldnames = columns
    rows = _Rows(_declared_nodes(header))
    offset = header.first_data_line - 1
    for row in reader:
        line = offset + reader.line_num
        if None in row or any(row[c] is None for c in COLUMNS):
            raise TrafficError(f"expected {len(columns)} columns", line=line)
        rows.add(row, line)
    if not rows.cells:
        raise TrafficError("no data rows")
    nodes = rows.declared_nodes or tuple(
        sorted({n for _, s, d in rows.cells for n in (s, d)}, key=natural_key)
    )
    times_ms = sorted({t for t, _, _ in rows.cells})
    times = np.array(times_ms, dtype=np.int64).astype("datetime64[ms]")
    interval_s = _header_interval(header)
    if interval_s is None:
        interval_s = infer_interval_s(times, "time")
    tm = _fill(rows.cells, times_ms, nodes)
    off_diagonal = sum(1 for _, s, d in rows.cells if s != d)
    absent = len(times) * len(nodes) * (len(nodes) - 1) - off_diagonal
    unit = header.values.get("unit") or DEFAULT_UNIT
    warnings = () if "unit" in header.values else (f"no '# unit:' line: assuming {DEFAULT_UNIT}",)
    series = TrafficMatrixSeries(tm, nodes, interval_s, unit, times)
    series.bps_factor  # noqa: B018 (refuses an unknown unit now, with the file named)
    return TrafficLoad(series, "csv", absent, warnings)


def _fill(
    cells: dict[tuple[int, str, str], float], times_ms: list[int], nodes: tuple[str, ...]
) -> npt.NDArray[np.float64]:
    step_of = {t: i for i, t in enumerate(times_ms)}
    index_of = {n: i for i, n in enumerate(nodes)}
    tm = np.zeros((len(times_ms), len(nodes), len(nodes)))
    for (when, src, dst), value in cells.items():
        tm[step_of[when], index_of[src], index_of[dst]] = value
    return tm


def save_traffic_csv(series: TrafficMatrixSeries, path: Path | str) -> None:
    """Write the non-zero demands as long CSV with ``unit``, ``interval_s`` and ``nodes`` header lines."""
    if series.timestamps is not None:
        times = [str(t) for t in series.timestamps.astype("datetime64[ms]")]
    else:
        times = [repr(step * series.interval_s) for step in range(series.steps)]
    try:
        with Path(path).open("w", encoding="utf-8", newline="") as handle:
            handle.write(f"# unit: {series.unit}\n# interval_s: {series.interval_s!r}\n")
            handle.write(f"# nodes: {','.join(series.nodes)}\n")
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for step, src, dst in zip(*np.nonzero(series.tm), strict=True):
                value = float(series.tm[step, src, dst])
                writer.writerow((times[step], series.nodes[src], series.nodes[dst], repr(value)))
    except OSError as exc:
        raise TrafficError(f"cannot write: {exc.strerror or exc}", file=str(path)) from None
