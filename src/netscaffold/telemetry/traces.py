"""Readers of the ``flow-trace`` inputs: the flow CSV, the placement CSV and the app-telemetry CSV.

Formats (docs/formats.md, "Workloads and telemetry"):

- flows: ``time_s, src, dst`` and optional ``bytes, duration_s, qos, dst_port``; ``time_s >= 0``;
- placement: ``name, host`` and optional ``app`` (the application the named instance belongs to);
- app telemetry: ``time_s, app, cpu, memory, rx_bytes, tx_bytes``; ``time_s`` may be negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netscaffold.model.flows import FlowTable
from netscaffold.telemetry.csvio import CsvReader

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FLOW_COLUMNS = ("time_s", "src", "dst")
FLOW_OPTIONAL = ("bytes", "duration_s", "qos", "dst_port")
APP_COLUMNS = ("time_s", "app", "cpu", "memory", "rx_bytes", "tx_bytes")
PLACEMENT_COLUMNS = ("name", "host")


@dataclass(frozen=True, eq=False)
class FlowTrace:
    path: Path
    names: tuple[str, ...]  # src/dst names in order of first appearance
    time_s: FloatArray
    src: IntArray
    dst: IntArray
    size_bytes: FloatArray  # NaN: not given
    duration_s: FloatArray  # NaN: not given
    qos: IntArray
    qos_names: tuple[str, ...]
    dst_port: IntArray
    lines: IntArray

    def to_flow_table(self, sizes: FloatArray, endpoints: tuple[str, ...]) -> FlowTable:
        """Flows of these rows with ``sizes``; a row with a duration is paced at ``size * 8 / duration``."""
        paced = ~np.isnan(self.duration_s)
        rate = np.full(sizes.size, np.inf)
        rate[paced] = sizes[paced] * 8.0 / self.duration_s[paced]
        return FlowTable.build(
            start_s=self.time_s,
            src=self.src,
            dst=self.dst,
            size_bytes=sizes,
            rate_bps=rate,
            qos=self.qos,
            dst_port=self.dst_port,
            endpoints=endpoints,
            qos_names=self.qos_names,
        )


@dataclass(frozen=True, eq=False)
class AppSamples:
    path: Path
    time_s: FloatArray
    app: tuple[str, ...]
    cpu: FloatArray
    memory: FloatArray
    rx_bytes: FloatArray
    tx_bytes: FloatArray
    lines: IntArray


class _Names:
    def __init__(self, initial: tuple[str, ...] = ()) -> None:
        self.index: dict[str, int] = {name: i for i, name in enumerate(initial)}

    def code(self, name: str) -> int:
        found = self.index.get(name)
        if found is None:
            found = self.index[name] = len(self.index)
        return found

    def names(self) -> tuple[str, ...]:
        return tuple(self.index)


def read_flow_trace(path: Path, known: tuple[str, ...] | None = None) -> FlowTrace:
    """Read a flow CSV; with ``known``, a src/dst outside it is an unknown endpoint (file, line, column)."""
    reader = CsvReader(path, required=FLOW_COLUMNS, optional=FLOW_OPTIONAL)
    names, qos = _Names(known or ()), _Names(("best-effort",))
    cols: dict[str, list[float]] = {
        k: [] for k in ("time_s", "src", "dst", "bytes", "duration_s", "qos", "port", "line")
    }
    for row in reader.rows():
        for column in ("src", "dst"):
            if known is not None and row.cells[column] not in names.index:
                raise reader.fail(f"unknown endpoint {row.cells[column]!r}", row.line, column)
        src, dst = names.code(row.cells["src"]), names.code(row.cells["dst"])
        if src == dst:
            raise reader.fail("src and dst are the same endpoint", row.line, "dst")
        port = reader.number(row, "dst_port", minimum=0)
        port = 0.0 if math.isnan(port) else port
        if port > 65535 or port != int(port):
            raise reader.fail(f"not a port number: {row.cells['dst_port']}", row.line, "dst_port")
        cols["time_s"].append(reader.number(row, "time_s", minimum=0.0))
        cols["src"].append(src)
        cols["dst"].append(dst)
        cols["bytes"].append(reader.number(row, "bytes", minimum=0.0, strict=True))
        cols["duration_s"].append(reader.number(row, "duration_s", minimum=0.0, strict=True))
        cols["qos"].append(qos.code(row.cells.get("qos") or "best-effort"))
        cols["port"].append(port)
        cols["line"].append(row.line)
    if not cols["line"]:
        raise reader.fail("no flows after the header")
    ints = {k: np.asarray(cols[k], dtype=np.int64) for k in ("src", "dst", "qos", "port", "line")}
    return FlowTrace(
        path=path,
        names=names.names(),
        time_s=np.asarray(cols["time_s"]),
        src=ints["src"],
        dst=ints["dst"],
        size_bytes=np.asarray(cols["bytes"]),
        duration_s=np.asarray(cols["duration_s"]),
        qos=ints["qos"],
        qos_names=qos.names(),
        dst_port=ints["port"],
        lines=ints["line"],
    )


def read_placement(path: Path) -> list[tuple[str, str, str, int]]:
    """Rows (name, host, app, line); duplicate names are refused (hosts are checked by the caller)."""
    reader = CsvReader(path, required=PLACEMENT_COLUMNS, optional=("app",))
    out: list[tuple[str, str, str, int]] = []
    seen: set[str] = set()
    for row in reader.rows():
        name = row.cells["name"]
        if name in seen:
            raise reader.fail(f"{name!r} placed twice", row.line, "name")
        seen.add(name)
        out.append((name, row.cells["host"], row.cells.get("app") or name, row.line))
    if not out:
        raise reader.fail("no placements after the header")
    return out


def read_app_telemetry(path: Path, known: tuple[str, ...]) -> AppSamples:
    """Read per-application samples; an ``app`` outside ``known`` is an unknown endpoint."""
    reader = CsvReader(path, required=APP_COLUMNS, optional=())
    index = set(known)
    cols: dict[str, list[float]] = {
        k: [] for k in ("time_s", "cpu", "memory", "rx_bytes", "tx_bytes", "line")
    }
    apps: list[str] = []
    for row in reader.rows():
        if row.cells["app"] not in index:
            raise reader.fail(
                f"unknown endpoint {row.cells['app']!r} (not in the flows or placement)", row.line, "app"
            )
        apps.append(row.cells["app"])
        cols["time_s"].append(reader.number(row, "time_s"))
        for name in ("cpu", "memory", "rx_bytes", "tx_bytes"):
            cols[name].append(reader.number(row, name, minimum=0.0))
        cols["line"].append(row.line)
    if not apps:
        raise reader.fail("no samples after the header")
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    return AppSamples(
        path=path,
        time_s=arrays["time_s"],
        app=tuple(apps),
        cpu=arrays["cpu"],
        memory=arrays["memory"],
        rx_bytes=arrays["rx_bytes"],
        tx_bytes=arrays["tx_bytes"],
        lines=arrays["line"].astype(np.int64),
    )
