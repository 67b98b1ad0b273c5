"""Traffic-matrix series files: ``.npz`` (the layout of the shared Abilene / germany50 files) and long CSV.

``.npz`` arrays (loaded with ``allow_pickle=False``): ``tm`` [T, N, N] numbers, ``nodes`` [N] strings,
``unit`` (default Mbit/s, with a warning), ``interval_s`` (else inferred from the times), ``timestamps``
or ``dates`` [T] datetime64 (optional).

Long CSV: ``# key: value`` comment lines first (``unit``, ``interval_s``, ``nodes`` as a comma-separated
list fixing the node order; other comments are ignored), then a header with the columns ``time, src, dst,
value`` (any order), then one row per non-zero demand. ``time`` is ISO 8601 or Unix seconds; a
(time, src, dst) cell without a row is zero; a time with no row at all is a gap. Without ``interval_s``
the interval is the smallest step between consecutive times. A gzip-compressed CSV is read as well.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np

from netscaffold.errors import TrafficError
from netscaffold.formats.source import decode_text, located, read_bytes
from netscaffold.formats.traffic_common import DEFAULT_UNIT, TrafficLoad
from netscaffold.formats.traffic_csv import read_traffic_csv, save_traffic_csv
from netscaffold.formats.traffic_npz import read_traffic_npz, save_traffic_npz
from netscaffold.model.traffic import TrafficMatrixSeries

__all__ = [
    "DEFAULT_UNIT",
    "TrafficLoad",
    "load_traffic",
    "read_traffic",
    "save_traffic_csv",
    "save_traffic_npz",
    "traffic_summary",
]
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"


def read_traffic(path: Path | str) -> TrafficLoad:
    """Read ``.npz`` or long CSV (by content); every problem is a :class:`TrafficError` with the place."""
    path = Path(path)
    data = read_bytes(path, TrafficError)
    try:
        if data.startswith(_ZIP_MAGIC):
            return read_traffic_npz(data, path)
        if path.suffix.lower() in (".npz", ".npy"):
            raise TrafficError("not an .npz archive (no zip header)", file=str(path))
        if data.startswith(_GZIP_MAGIC):
            data = _gunzip(data, path)
        return read_traffic_csv(decode_text(data, path, TrafficError))
    except TrafficError as exc:
        raise located(exc, path) from None


def load_traffic(path: Path | str) -> TrafficMatrixSeries:
    return read_traffic(path).series


def _gunzip(data: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise TrafficError(f"corrupt gzip data: {exc}", file=str(path)) from None


def traffic_summary(load: TrafficLoad) -> dict[str, Any]:
    """What ``netscaffold traffic validate`` reports: shape, nodes, interval, unit, sparsity, gaps."""
    series = load.series
    segments = series.segments()
    times = series.timestamps
    gaps = []
    for _, stop in segments[:-1]:
        assert times is not None  # more than one segment only arises from timestamps
        before, after = times[stop - 1], times[stop]
        span_s = float((after - before) / np.timedelta64(1, "s"))
        gaps.append({"after_step": stop - 1, "from": str(before), "to": str(after), "step_s": span_s})
    values = series.tm
    return {
        "format": load.source_format,
        "shape": list(values.shape),
        "steps": series.steps,
        "nodes": len(series.nodes),
        "node_names": list(series.nodes),
        "interval_s": series.interval_s,
        "unit": series.unit,
        "start": None if times is None else str(times[0]),
        "end": None if times is None else str(times[-1]),
        "sparsity": series.sparsity(),
        "missing_values": load.absent_cells,
        "value": {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())},
        "total_bps_mean": float(values.sum(axis=(1, 2)).mean() * series.bps_factor),
        "segments": len(segments),
        "gaps": gaps,
        "warnings": list(load.warnings),
    }
