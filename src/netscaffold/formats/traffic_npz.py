"""Traffic matrices in ``.npz`` (the layout of ``../shared/data/abilene/abilene_tm_5min.npz``): see
:mod:`netscaffold.formats.traffic`."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError
from netscaffold.formats.traffic_common import DEFAULT_UNIT, TrafficLoad, infer_interval_s
from netscaffold.model.traffic import TrafficMatrixSeries

# What a damaged zip archive raises from numpy and zipfile (NotImplementedError: a garbled version).
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,  # a member flagged as encrypted
    OSError,
    EOFError,
    KeyError,
)


def _array(archive: Any, key: str, path: Path) -> npt.NDArray[Any] | None:
    if key not in archive.files:
        return None
    try:
        return np.asarray(archive[key])
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise TrafficError(f"cannot load array: {exc}", file=str(path), field=key) from None
    except _ARCHIVE_ERRORS as exc:
        raise TrafficError(f"corrupt archive member: {exc}", file=str(path), field=key) from None


def _scalar_text(value: npt.NDArray[Any] | None, key: str) -> str | None:
    if value is None:
        return None
    if value.ndim != 0 or value.dtype.kind not in "US":
        raise TrafficError(f"expected a single string, got shape {value.shape} {value.dtype}", field=key)
    return str(value.item())


def _node_names(value: npt.NDArray[Any] | None) -> tuple[str, ...]:
    if value is None:
        raise TrafficError("missing array (the node names)", field="nodes")
    if value.ndim != 1 or value.dtype.kind not in "US":
        raise TrafficError(f"expected a 1-D array of strings, got {value.shape} {value.dtype}", field="nodes")
    return tuple(str(v) for v in value.tolist())


def _times(archive: Any, path: Path) -> tuple[npt.NDArray[np.datetime64] | None, str | None]:
    for key in ("timestamps", "dates"):
        value = _array(archive, key, path)
        if value is not None:
            if value.ndim != 1 or value.dtype.kind != "M":
                raise TrafficError(f"expected 1-D datetime64, got {value.shape} {value.dtype}", field=key)
            return value, key
    return None, None


def _interval_s(
    archive: Any, path: Path, times: npt.NDArray[np.datetime64] | None, field: str | None
) -> float:
    value = _array(archive, "interval_s", path)
    if value is None:
        if times is None or field is None:
            raise TrafficError("no interval_s and no timestamps to infer it from", field="interval_s")
        return infer_interval_s(times, field)
    if value.ndim != 0 or value.dtype.kind not in "iuf":
        raise TrafficError(f"expected a single number, got {value.shape} {value.dtype}", field="interval_s")
    return float(value.item())


def read_traffic_npz(data: bytes, path: Path) -> TrafficLoad:
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, *_ARCHIVE_ERRORS) as exc:
        raise TrafficError(f"not a readable .npz archive: {exc}", file=str(path)) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise TrafficError("not an .npz archive", file=str(path))
    with archive:
        tm = _array(archive, "tm", path)
        if tm is None:
            raise TrafficError(
                f"missing array 'tm' (arrays: {', '.join(map(repr, archive.files))})", field="tm"
            )
        if tm.dtype.kind not in "iuf":
            raise TrafficError(f"expected numbers, got dtype {tm.dtype}", field="tm")
        nodes = _node_names(_array(archive, "nodes", path))
        unit = _scalar_text(_array(archive, "unit", path), "unit")
        times, time_key = _times(archive, path)
        interval_s = _interval_s(archive, path, times, time_key)
    warnings = () if unit else (f"no unit array: assuming {DEFAULT_UNIT}",)
    series = TrafficMatrixSeries(tm.astype(np.float64), nodes, interval_s, unit or DEFAULT_UNIT, times)
    series.bps_factor  # noqa: B018 (refuses an unknown unit now, with the file named)
    return TrafficLoad(series, "npz", 0, warnings)


def save_traffic_npz(series: TrafficMatrixSeries, path: Path | str) -> None:
    """Write ``series`` in the shared ``.npz`` layout (compressed; no pickled objects)."""
    arrays: dict[str, Any] = {
        "tm": series.tm,
        "nodes": np.asarray(series.nodes, dtype=str),
        "unit": np.asarray(series.unit),
        "interval_s": np.asarray(series.interval_s),
    }
    if series.timestamps is not None:
        arrays["timestamps"] = series.timestamps
    try:
        with Path(path).open("wb") as handle:  # a handle: np.savez would append ".npz" to a path
            np.savez_compressed(handle, **arrays)
    except OSError as exc:
        raise TrafficError(f"cannot write: {exc.strerror or exc}", file=str(path)) from None
