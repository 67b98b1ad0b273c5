"""Converter from flattened Jaeger spans (DeathStarBench traces of ../shared/data/app_traces/) to calls.

The layout (one row per span): ``parent_row`` (-1: root), ``service`` (index into ``service_names``),
``start_us`` and ``duration_us``, ``group`` (index into ``group_dirs``: one load level). A span whose
service differs from its parent's is a call ``service[parent] -> service[row]`` at its ``start_us``;
spans within one service (internal operations) are not network calls. The calls become flow-trace rows
``time_s, src, dst, duration_s``: times relative to the first selected span, the callee span's duration as
the call's duration; spans carry no byte counts, so sizes are left to the flow-trace size distribution.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError

SPAN_KEYS = ("group", "parent_row", "service", "start_us", "duration_us", "service_names", "group_dirs")


@dataclass(frozen=True, eq=False)
class SpanCalls:
    """Calls as columns, sorted by (time, span row)."""

    time_s: npt.NDArray[np.float64]
    src: tuple[str, ...]
    dst: tuple[str, ...]
    duration_s: npt.NDArray[np.float64]
    groups: tuple[str, ...]  # the group folders selected
    spans: int

    def __len__(self) -> int:
        return int(self.time_s.size)

    def pairs(self) -> list[tuple[str, str]]:
        return sorted(set(zip(self.src, self.dst, strict=True)))


def _load(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TrafficError(f"cannot read the span archive: {exc}", file=str(path)) from None
    with archive:
        missing = [k for k in SPAN_KEYS if k not in archive.files]
        if missing:
            raise TrafficError(
                f"not a flattened span file: missing {', '.join(missing)}", file=str(path), field=missing[0]
            )
        return {k: archive[k] for k in SPAN_KEYS}


def _check(data: dict[str, npt.NDArray[np.generic]], path: Path) -> None:
    rows = data["parent_row"].shape[0]
    for key in ("group", "service", "start_us", "duration_us"):
        if data[key].shape != (rows,):
            raise TrafficError(f"{data[key].shape[0]} values for {rows} spans", file=str(path), field=key)
    parent = data["parent_row"].astype(np.int64)
    bad = np.flatnonzero((parent < -1) | (parent >= rows))
    if bad.size:
        raise TrafficError(
            f"parent row {parent[bad[0]]} outside -1..{rows - 1}",
            file=str(path),
            element=f"span row {bad[0]}",
            field="parent_row",
        )
    service = data["service"].astype(np.int64)
    bad = np.flatnonzero((service < 0) | (service >= data["service_names"].shape[0]))
    if bad.size:
        raise TrafficError(
            "service index outside service_names",
            file=str(path),
            element=f"span row {bad[0]}",
            field="service",
        )


def span_calls(path: Path, group: int | None = None) -> SpanCalls:
    """The calls of the span file (of one group when ``group`` is given)."""
    data = _load(path)
    _check(data, path)
    group_dirs = tuple(str(g) for g in data["group_dirs"])
    groups = data["group"].astype(np.int64)
    if group is not None and not 0 <= group < len(group_dirs):
        raise TrafficError(f"group {group} outside 0..{len(group_dirs) - 1}", file=str(path), field="group")
    selected = np.ones(groups.size, dtype=bool) if group is None else groups == group
    parent = data["parent_row"].astype(np.int64)
    service = data["service"].astype(np.int64)
    has_parent = parent >= 0
    parent_service = np.where(has_parent, service[np.maximum(parent, 0)], -1)
    is_call = selected & has_parent & (parent_service != service)
    start_us = data["start_us"].astype(np.int64)
    origin_us = int(start_us[selected].min()) if selected.any() else 0
    rows = np.flatnonzero(is_call)
    rows = rows[np.lexsort((rows, start_us[rows]))]
    names = [str(n) for n in data["service_names"]]
    return SpanCalls(
        time_s=(start_us[rows] - origin_us) / 1e6,
        src=tuple(names[i] for i in parent_service[rows]),
        dst=tuple(names[i] for i in service[rows]),
        duration_s=np.maximum(data["duration_us"].astype(np.int64)[rows], 1) / 1e6,
        groups=group_dirs if group is None else (group_dirs[group],),
        spans=int(selected.sum()),
    )


def write_calls_csv(calls: SpanCalls, out: Path, *, with_duration: bool = True) -> None:
    """Write the flow-trace CSV (``time_s, src, dst[, duration_s]``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time_s", "src", "dst", *(["duration_s"] if with_duration else [])])
        for i in range(len(calls)):
            row = [f"{calls.time_s[i]:.6f}", calls.src[i], calls.dst[i]]
            if with_duration:
                row.append(f"{calls.duration_s[i]:.6f}")
            writer.writerow(row)
