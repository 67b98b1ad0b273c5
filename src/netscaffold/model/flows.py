"""Flows as columns: what workloads produce and the emulator consumes.

One row per flow, sorted by ``(start_s, row order given)``. A flow is either sized (``size_bytes`` finite,
``duration_s`` NaN: it lasts until its bytes are sent) or timed (``duration_s`` finite: it sends at up to
``rate_bps`` for that long). ``rate_bps`` caps the flow's demand (``inf``: elastic, takes its fair share).
``src`` and ``dst`` index ``endpoints``; ``qos`` indexes ``qos_names``; ``dst_port`` 0 means any.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class FlowTable:
    start_s: FloatArray
    src: IntArray
    dst: IntArray
    size_bytes: FloatArray
    duration_s: FloatArray
    rate_bps: FloatArray
    qos: IntArray
    dst_port: IntArray
    endpoints: tuple[str, ...]
    qos_names: tuple[str, ...] = ("best-effort",)

    def __post_init__(self) -> None:
        n = self.start_s.shape[0]
        for name in ("src", "dst", "size_bytes", "duration_s", "rate_bps", "qos", "dst_port"):
            if getattr(self, name).shape != (n,):
                raise TrafficError(f"column {name} has {getattr(self, name).shape}, expected ({n},)")
        self._check_range("src", self.src, len(self.endpoints))
        self._check_range("dst", self.dst, len(self.endpoints))
        self._check_range("qos", self.qos, len(self.qos_names))
        self._first_bad("start_s", ~np.isfinite(self.start_s), "must be finite")
        self._first_bad("start_s", np.diff(self.start_s) < 0, "must be sorted (non-decreasing)")
        self._first_bad("dst", self.src == self.dst, "a flow must join two different endpoints")
        sized = np.isnan(self.duration_s)
        self._first_bad(
            "size_bytes",
            sized & ~(np.isfinite(self.size_bytes) & (self.size_bytes > 0)),
            "must be a positive number for a sized flow",
        )
        self._first_bad(
            "duration_s",
            ~sized & ~(np.isfinite(self.duration_s) & (self.duration_s > 0)),
            "must be a positive number",
        )
        self._first_bad("rate_bps", ~(self.rate_bps > 0), "must be > 0 (inf for elastic)")
        self._first_bad("rate_bps", ~sized & ~np.isfinite(self.rate_bps), "a timed flow needs a finite rate")
        self._first_bad("dst_port", (self.dst_port < 0) | (self.dst_port > 65535), "outside 0..65535")

    def _check_range(self, name: str, column: IntArray, size: int) -> None:
        self._first_bad(name, (column < 0) | (column >= size), f"index outside 0..{size - 1}")

    @staticmethod
    def _first_bad(name: str, mask: npt.NDArray[np.bool_], reason: str) -> None:
        bad = np.flatnonzero(mask)
        if bad.size:
            raise TrafficError(f"{reason} ({bad.size} row(s))", element=f"flow {int(bad[0])}", field=name)

    def __len__(self) -> int:
        return int(self.start_s.shape[0])

    @classmethod
    def build(
        cls,
        *,
        start_s: npt.ArrayLike,
        src: npt.ArrayLike,
        dst: npt.ArrayLike,
        endpoints: tuple[str, ...],
        size_bytes: npt.ArrayLike | None = None,
        duration_s: npt.ArrayLike | None = None,
        rate_bps: npt.ArrayLike | None = None,
        qos: npt.ArrayLike | None = None,
        dst_port: npt.ArrayLike | None = None,
        qos_names: tuple[str, ...] = ("best-effort",),
    ) -> FlowTable:
        """Build from unsorted columns; rows are stably sorted by start time."""
        start = np.asarray(start_s, dtype=np.float64)
        n = start.shape[0]

        def floats(values: npt.ArrayLike | None, fill: float) -> FloatArray:
            if values is None:
                return np.full(n, fill, dtype=np.float64)
            return np.asarray(values, dtype=np.float64)

        def ints(values: npt.ArrayLike | None) -> IntArray:
            if values is None:
                return np.zeros(n, dtype=np.int64)
            return np.asarray(values, dtype=np.int64)

        order = np.argsort(start, kind="stable")
        return cls(
            start_s=start[order],
            src=ints(src)[order],
            dst=ints(dst)[order],
            size_bytes=floats(size_bytes, np.nan)[order],
            duration_s=floats(duration_s, np.nan)[order],
            rate_bps=floats(rate_bps, np.inf)[order],
            qos=ints(qos)[order],
            dst_port=ints(dst_port)[order],
            endpoints=endpoints,
            qos_names=qos_names,
        )
