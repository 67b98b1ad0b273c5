"""The telemetry store: what a predictor sees, per tick, as columns.

Two tables over one tick grid (tick ``k`` covers ``[start_s + k * tick_s, start_s + (k + 1) * tick_s)``):

- per application instance (endpoint) and tick: ``cpu`` (cores busy), ``memory`` (bytes), ``tx_bytes`` and
  ``rx_bytes`` (bytes sent and received in the tick);
- per (src, dst) endpoint pair and tick: ``bytes`` carried in the tick (stored sparse: only non-zero rows).

Endpoints may be added at any time (autoscaling); ticks before an endpoint existed read as zero. Appends go
per tick (:meth:`TelemetryStore.append_tick`) or in bulk (:meth:`TelemetryStore.from_arrays`); reads are
windows of ticks (:meth:`apps`, :meth:`pair_matrix`, :meth:`pair_series`). On disk: a folder with two
Parquet files, ``apps.parquet`` and ``pairs.parquet`` (see docs/formats.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.traffic import TrafficMatrixSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

APP_FIELDS = ("cpu", "memory", "tx_bytes", "rx_bytes")
APPS_FILE = "apps.parquet"
PAIRS_FILE = "pairs.parquet"
_META_KEY = b"netscaffold.telemetry"


@dataclass(frozen=True, eq=False)
class AppWindow:
    """Per-endpoint telemetry over ticks ``[start, stop)``: each array is ``[ticks, endpoints]``."""

    start: int
    cpu: FloatArray
    memory: FloatArray
    tx_bytes: FloatArray
    rx_bytes: FloatArray
    endpoints: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class _PairRows:
    tick: IntArray
    src: IntArray
    dst: IntArray
    bytes: FloatArray


def _empty_rows() -> _PairRows:
    none = np.zeros(0, dtype=np.int64)
    return _PairRows(none, none, none, np.zeros(0))


class TelemetryStore:
    """Columnar per-tick telemetry over a growing set of endpoints."""

    def __init__(self, *, tick_s: float = 1.0, start_s: float = 0.0) -> None:
        if not (math.isfinite(tick_s) and tick_s > 0):
            raise TrafficError(f"tick_s must be > 0, got {tick_s!r}", field="tick_s")
        if not math.isfinite(start_s):
            raise TrafficError(f"start_s must be finite, got {start_s!r}", field="start_s")
        self.tick_s = float(tick_s)
        self.start_s = float(start_s)
        self._endpoints: list[str] = []
        self._apps: list[str] = []
        self._index: dict[str, int] = {}
        self._app_chunks: list[tuple[int, dict[str, FloatArray]]] = []
        self._pair_chunks: list[_PairRows] = []
        self._ticks = 0
        self._app_cache: dict[str, FloatArray] | None = None
        self._pair_cache: _PairRows | None = None

    # -- shape ---------------------------------------------------------------------------------
    @property
    def ticks(self) -> int:
        return self._ticks

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(self._endpoints)

    @property
    def apps_of_endpoints(self) -> tuple[str, ...]:
        """The application (service) each endpoint is an instance of."""
        return tuple(self._apps)

    def index_of(self, endpoint: str) -> int:
        try:
            return self._index[endpoint]
        except KeyError:
            raise TrafficError("unknown endpoint", element=f"endpoint {endpoint!r}") from None

    def tick_times_s(self, start: int = 0, stop: int | None = None) -> FloatArray:
        stop = self._ticks if stop is None else stop
        return self.start_s + np.arange(start, stop, dtype=np.float64) * self.tick_s

    def tick_of(self, time_s: float) -> int:
        """The tick that contains ``time_s`` (may be outside the stored range)."""
        return math.floor((time_s - self.start_s) / self.tick_s + 1e-9)

    def add_endpoints(self, endpoints: Sequence[str], apps: Sequence[str] | None = None) -> None:
        """Register endpoints (ids unique); ``apps`` defaults to the ids themselves."""
        app_names = list(endpoints) if apps is None else list(apps)
        if len(app_names) != len(endpoints):
            raise TrafficError(f"{len(app_names)} app names for {len(endpoints)} endpoints", field="apps")
        for endpoint, app in zip(endpoints, app_names, strict=True):
            if not endpoint:
                raise TrafficError("endpoint id must not be empty")
            if endpoint in self._index:
                raise TrafficError("endpoint added twice", element=f"endpoint {endpoint!r}")
            self._index[endpoint] = len(self._endpoints)
            self._endpoints.append(endpoint)
            self._apps.append(app or endpoint)

    # -- appends -------------------------------------------------------------------------------
    def append_tick(
        self,
        *,
        cpu: npt.ArrayLike | None = None,
        memory: npt.ArrayLike | None = None,
        tx_bytes: npt.ArrayLike | None = None,
        rx_bytes: npt.ArrayLike | None = None,
        pair_src: npt.ArrayLike = (),
        pair_dst: npt.ArrayLike = (),
        pair_bytes: npt.ArrayLike = (),
    ) -> int:
        """Append the next tick; app arrays have one value per endpoint known now. Returns the tick."""
        n = len(self._endpoints)
        values: dict[str, FloatArray] = {}
        for name, given in zip(APP_FIELDS, (cpu, memory, tx_bytes, rx_bytes), strict=True):
            column = np.zeros(n) if given is None else np.asarray(given, dtype=np.float64)
            _check_app_column(name, column, (n,))
            values[name] = column[None, :]
        rows = _pair_rows(self._ticks, pair_src, pair_dst, pair_bytes, n)
        tick = self._ticks
        self._append(values, rows, 1)
        return tick

    def append_sample(self, sample: PerformanceSample) -> int:
        """Append a backend's performance sample as the next tick (pair bytes; endpoints must be known)."""
        if not math.isclose(sample.interval_s, self.tick_s, rel_tol=1e-9):
            raise TrafficError(
                f"sample interval {sample.interval_s} s differs from the store's tick {self.tick_s} s",
                field="interval_s",
            )
        src = [self.index_of(s) for s, _ in sample.pair_keys]
        dst = [self.index_of(d) for _, d in sample.pair_keys]
        tx = np.zeros(len(self._endpoints))
        rx = np.zeros(len(self._endpoints))
        np.add.at(tx, np.asarray(src, dtype=np.int64), sample.pair_bytes)
        np.add.at(rx, np.asarray(dst, dtype=np.int64), sample.pair_bytes)
        return self.append_tick(
            tx_bytes=tx, rx_bytes=rx, pair_src=src, pair_dst=dst, pair_bytes=sample.pair_bytes
        )

    def _append(self, values: dict[str, FloatArray], rows: _PairRows, ticks: int) -> None:
        self._app_chunks.append((self._ticks, values))
        if rows.tick.size:
            self._pair_chunks.append(rows)
        self._ticks += ticks
        self._app_cache = None
        self._pair_cache = None

    @classmethod
    def from_arrays(
        cls,
        *,
        endpoints: Sequence[str],
        apps: Sequence[str] | None = None,
        tick_s: float,
        start_s: float = 0.0,
        cpu: npt.ArrayLike,
        memory: npt.ArrayLike,
        tx_bytes: npt.ArrayLike,
        rx_bytes: npt.ArrayLike,
        pair_tick: npt.ArrayLike,
        pair_src: npt.ArrayLike,
        pair_dst: npt.ArrayLike,
        pair_bytes: npt.ArrayLike,
    ) -> TelemetryStore:
        """Bulk construction: app arrays ``[ticks, endpoints]``, pairs as long columns."""
        store = cls(tick_s=tick_s, start_s=start_s)
        store.add_endpoints(endpoints, apps)
        columns = {
            name: np.asarray(v, dtype=np.float64)
            for name, v in zip(APP_FIELDS, (cpu, memory, tx_bytes, rx_bytes), strict=True)
        }
        ticks = columns["cpu"].shape[0] if columns["cpu"].ndim == 2 else -1
        for name, column in columns.items():
            _check_app_column(name, column, (ticks, len(store._endpoints)))
        tick = np.asarray(pair_tick, dtype=np.int64)
        if tick.size and (tick.min() < 0 or tick.max() >= ticks):
            raise TrafficError(f"pair tick outside 0..{ticks - 1}", field="tick")
        rows = _pair_rows(tick, pair_src, pair_dst, pair_bytes, len(store._endpoints))
        order = np.lexsort((rows.dst, rows.src, rows.tick))
        rows = _PairRows(rows.tick[order], rows.src[order], rows.dst[order], rows.bytes[order])
        store._append(columns, rows, ticks)
        return store

    # -- reads ---------------------------------------------------------------------------------
    def _check_range(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self._ticks:
            raise TrafficError(f"window [{start}, {stop}) outside the stored ticks [0, {self._ticks})")

    def _app_columns(self) -> dict[str, FloatArray]:
        if self._app_cache is None:
            n = len(self._endpoints)
            full = {name: np.zeros((self._ticks, n)) for name in APP_FIELDS}
            for first, values in self._app_chunks:
                for name, block in values.items():
                    full[name][first : first + block.shape[0], : block.shape[1]] = block
            self._app_cache = full
        return self._app_cache

    def _pairs(self) -> _PairRows:
        if self._pair_cache is None:
            chunks = self._pair_chunks or [_empty_rows()]
            self._pair_cache = _PairRows(
                np.concatenate([c.tick for c in chunks]),
                np.concatenate([c.src for c in chunks]),
                np.concatenate([c.dst for c in chunks]),
                np.concatenate([c.bytes for c in chunks]),
            )
            self._pair_chunks = [self._pair_cache] if self._pair_cache.tick.size else []
        return self._pair_cache

    def _pair_slice(self, start: int, stop: int) -> _PairRows:
        rows = self._pairs()
        lo, hi = np.searchsorted(rows.tick, [start, stop], side="left")
        return _PairRows(rows.tick[lo:hi], rows.src[lo:hi], rows.dst[lo:hi], rows.bytes[lo:hi])

    def apps(self, start: int = 0, stop: int | None = None) -> AppWindow:
        stop = self._ticks if stop is None else stop
        self._check_range(start, stop)
        cols = self._app_columns()
        return AppWindow(
            start=start,
            cpu=cols["cpu"][start:stop].copy(),
            memory=cols["memory"][start:stop].copy(),
            tx_bytes=cols["tx_bytes"][start:stop].copy(),
            rx_bytes=cols["rx_bytes"][start:stop].copy(),
            endpoints=self.endpoints,
        )

    def pair_matrix(self, start: int = 0, stop: int | None = None) -> FloatArray:
        """Bytes per tick as ``[ticks, endpoints, endpoints]`` (origin axis 1, destination axis 2)."""
        stop = self._ticks if stop is None else stop
        self._check_range(start, stop)
        n = len(self._endpoints)
        out = np.zeros((stop - start, n, n))
        rows = self._pair_slice(start, stop)
        np.add.at(out, (rows.tick - start, rows.src, rows.dst), rows.bytes)
        return out

    def active_pairs(self, start: int = 0, stop: int | None = None) -> list[tuple[str, str]]:
        """Pairs with bytes in the window, sorted by (src index, dst index)."""
        stop = self._ticks if stop is None else stop
        self._check_range(start, stop)
        rows = self._pair_slice(start, stop)
        codes = np.unique(rows.src * max(len(self._endpoints), 1) + rows.dst)
        n = max(len(self._endpoints), 1)
        return [(self._endpoints[int(c) // n], self._endpoints[int(c) % n]) for c in codes]

    def pair_series(
        self, start: int = 0, stop: int | None = None, pairs: Sequence[tuple[str, str]] | None = None
    ) -> tuple[list[tuple[str, str]], FloatArray]:
        """Bytes per tick as ``[ticks, pairs]`` for ``pairs`` (default: those active in the window)."""
        stop = self._ticks if stop is None else stop
        chosen = self.active_pairs(start, stop) if pairs is None else list(pairs)
        n = max(len(self._endpoints), 1)
        wanted = np.array([self.index_of(s) * n + self.index_of(d) for s, d in chosen], dtype=np.int64)
        order = np.argsort(wanted, kind="stable")
        out = np.zeros((stop - start, len(chosen)))
        rows = self._pair_slice(start, stop)
        if wanted.size and rows.tick.size:
            codes = rows.src * n + rows.dst
            pos = np.minimum(np.searchsorted(wanted[order], codes), wanted.size - 1)
            hit = wanted[order][pos] == codes
            np.add.at(out, (rows.tick[hit] - start, order[pos[hit]]), rows.bytes[hit])
        return chosen, out

    def last(self, ticks: int) -> tuple[int, int]:
        """The ``[start, stop)`` range of the last ``ticks`` ticks (fewer when fewer are stored)."""
        if ticks < 0:
            raise TrafficError(f"ticks must be >= 0, got {ticks}")
        return max(self._ticks - ticks, 0), self._ticks

    def traffic_matrix_series(self) -> TrafficMatrixSeries:
        """Pair bytes as a traffic-matrix series over endpoints (unit: bytes per tick)."""
        return TrafficMatrixSeries(self.pair_matrix(), self.endpoints, self.tick_s, unit="bytes")

    def pair_columns(
        self, start: int = 0, stop: int | None = None
    ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
        """The non-zero pair rows of the window as long columns (tick, src index, dst index, bytes)."""
        stop = self._ticks if stop is None else stop
        self._check_range(start, stop)
        rows = self._pair_slice(start, stop)
        return rows.tick.copy(), rows.src.copy(), rows.dst.copy(), rows.bytes.copy()

    def total_pair_bytes(self) -> float:
        return float(self._pairs().bytes.sum())

    # -- Parquet -------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write ``apps.parquet`` and ``pairs.parquet`` into ``folder`` (created when missing)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            _META_KEY: json.dumps(
                {
                    "tick_s": self.tick_s,
                    "start_s": self.start_s,
                    "ticks": self._ticks,
                    "endpoints": self._endpoints,
                    "apps": self._apps,
                }
            ).encode()
        }
        cols = self._app_columns()
        n = len(self._endpoints)
        apps_table = pa.table(
            {
                "tick": np.repeat(np.arange(self._ticks, dtype=np.int64), n),
                "endpoint": np.tile(np.arange(n, dtype=np.int32), self._ticks),
                **{name: cols[name].reshape(-1) for name in APP_FIELDS},
            }
        )
        pq.write_table(apps_table.replace_schema_metadata(meta), folder / APPS_FILE)
        rows = self._pairs()
        pairs_table = pa.table(
            {
                "tick": rows.tick,
                "src": rows.src.astype(np.int32),
                "dst": rows.dst.astype(np.int32),
                "bytes": rows.bytes,
            }
        )
        pq.write_table(pairs_table.replace_schema_metadata(meta), folder / PAIRS_FILE)

    @classmethod
    def load(cls, folder: Path) -> TelemetryStore:
        """Read a folder written by :meth:`save`; a damaged or foreign file raises TrafficError."""
        apps_table, meta = _read_table(folder / APPS_FILE)
        pairs_table, _ = _read_table(folder / PAIRS_FILE)
        try:
            ticks, n = int(meta["ticks"]), len(meta["endpoints"])
            store = cls(tick_s=float(meta["tick_s"]), start_s=float(meta["start_s"]))
            store.add_endpoints(list(meta["endpoints"]), list(meta["apps"]))
            app_cols = {name: apps_table.column(name).to_numpy().reshape(ticks, n) for name in APP_FIELDS}
            pair_cols = {
                name: pairs_table.column(name).to_numpy() for name in ("tick", "src", "dst", "bytes")
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise TrafficError(f"not a telemetry store: {exc}", file=str(folder)) from None
        rows = _pair_rows(pair_cols["tick"], pair_cols["src"], pair_cols["dst"], pair_cols["bytes"], n)
        store._append({k: np.array(v, dtype=np.float64) for k, v in app_cols.items()}, rows, ticks)
        return store


def _read_table(path: Path) -> tuple[Any, dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise TrafficError(f"cannot read Parquet: {exc}", file=str(path)) from None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise TrafficError("no netscaffold telemetry metadata", file=str(path))
    try:
        meta = json.loads(raw)
    except ValueError:
        raise TrafficError("damaged netscaffold telemetry metadata", file=str(path)) from None
    if not isinstance(meta, dict):
        raise TrafficError("damaged netscaffold telemetry metadata", file=str(path))
    return table, meta


def _check_app_column(name: str, column: FloatArray, shape: tuple[int, ...]) -> None:
    if column.shape != shape or (shape and shape[0] < 0):
        raise TrafficError(f"shape {column.shape}, expected {shape}", field=name)
    bad = ~np.isfinite(column) | (column < 0)
    if bad.any():
        raise TrafficError(f"{int(bad.sum())} negative or non-finite value(s)", field=name)


def _pair_rows(
    tick: npt.ArrayLike, src: npt.ArrayLike, dst: npt.ArrayLike, size: npt.ArrayLike, n: int
) -> _PairRows:
    src_a = np.asarray(src, dtype=np.int64).reshape(-1)
    dst_a = np.asarray(dst, dtype=np.int64).reshape(-1)
    bytes_a = np.asarray(size, dtype=np.float64).reshape(-1)
    tick_a = np.broadcast_to(np.asarray(tick, dtype=np.int64), src_a.shape).copy()
    if not src_a.shape == dst_a.shape == bytes_a.shape:
        raise TrafficError("pair columns src, dst and bytes differ in length", field="pairs")
    for name, column in (("src", src_a), ("dst", dst_a)):
        if column.size and (column.min() < 0 or column.max() >= n):
            raise TrafficError(f"endpoint index outside 0..{n - 1}", field=name)
    if bytes_a.size and not (np.isfinite(bytes_a).all() and (bytes_a >= 0).all()):
        raise TrafficError("pair bytes must be finite and >= 0", field="bytes")
    keep = bytes_a > 0
    return _PairRows(tick_a[keep], src_a[keep], dst_a[keep], bytes_a[keep])
