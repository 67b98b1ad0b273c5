"""What the traffic-matrix readers share: the load result, the default unit, interval inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError
from netscaffold.model.traffic import TrafficMatrixSeries

DEFAULT_UNIT = "Mbit/s"


@dataclass(frozen=True)
class TrafficLoad:
    """A loaded series and what the file left implicit."""

    series: TrafficMatrixSeries
    source_format: str
    absent_cells: int = 0
    """Off-diagonal (step, src, dst) cells a long CSV gave no row for (read as zero)."""
    warnings: tuple[str, ...] = ()


def infer_interval_s(times: npt.NDArray[np.datetime64], field: str) -> float:
    """The smallest positive step between consecutive times, in seconds."""
    seconds = times.astype("datetime64[ms]").astype(np.int64) / 1000.0
    steps = np.diff(seconds)
    positive = steps[steps > 0]
    if positive.size == 0:
        raise TrafficError("cannot infer the interval from fewer than two distinct times", field=field)
    return float(positive.min())
