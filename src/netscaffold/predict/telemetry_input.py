"""Pair series from a telemetry directory (``--telemetry DIR``), with endpoint telemetry as features.

Per pair and tick, eight exogenous inputs: cpu, memory, tx and rx of the source endpoint, then the same of
the destination. Scaling is fixed (no fitted scaler, so nothing leaks from the test part): cpu as it is
(cores), memory and bytes as ``log1p(x) / 25`` (1 GB -> 0.83). A dead endpoint reads 0 everywhere, so a
replica that starts (memory > 0) is visible before its pairs carry traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from netscaffold.predict.series import PairSeries

if TYPE_CHECKING:
    from netscaffold.telemetry.store import AppWindow

LOG_SCALE = 25.0
ENDPOINT_FEATURES = ("cpu", "memory", "tx", "rx")
EXOG_NAMES = tuple(f"{end}_{name}" for end in ("src", "dst") for name in ENDPOINT_FEATURES)


@dataclass(frozen=True)
class TelemetryInput:
    series: PairSeries
    scale_out_endpoints: tuple[str, ...]


def read_telemetry_input(path: Path, features: bool = True) -> TelemetryInput:
    """The pair series of a telemetry directory (bytes per tick) and the endpoints autoscaling created."""
    from netscaffold.telemetry.directory import load_telemetry_dir

    loaded = load_telemetry_dir(path)
    store = loaded.store
    series = PairSeries.from_tm(store.traffic_matrix_series())
    base = PairSeries(
        series.values, series.pairs, series.nodes, series.interval_s, series.unit, series.time_of_day,
        series.segment_start, 8.0 / store.tick_s,
    )  # fmt: skip
    created = tuple(
        str(e.detail["endpoint"]) for e in loaded.events if e.kind == "scale-out" and "endpoint" in e.detail
    )
    if not features:
        return TelemetryInput(base, created)
    exog = pair_features(endpoint_features(store.apps()), store.endpoints, series.pairs)
    with_exog = PairSeries(
        base.values, base.pairs, base.nodes, base.interval_s, base.unit, base.time_of_day, base.segment_start,
        base.bps_factor, exog, EXOG_NAMES,
    )  # fmt: skip
    return TelemetryInput(with_exog, created)


def endpoint_features(apps: AppWindow) -> npt.NDArray[np.float32]:
    """``[T, E, 4]``: cpu, memory, tx, rx per tick and endpoint, scaled as the module docstring says."""
    return np.stack(
        [apps.cpu, np.log1p(apps.memory) / LOG_SCALE, np.log1p(apps.tx_bytes) / LOG_SCALE,
         np.log1p(apps.rx_bytes) / LOG_SCALE],
        axis=-1,
    ).astype(np.float32)  # fmt: skip


def pair_features(
    per_endpoint: npt.NDArray[np.float32], endpoints: tuple[str, ...], pairs: tuple[tuple[str, str], ...]
) -> npt.NDArray[np.float32]:
    """``[T, P, 8]``: each pair's source features, then its destination's (names: ``EXOG_NAMES``)."""
    index = {name: i for i, name in enumerate(endpoints)}
    src = np.array([index[a] for a, _ in pairs], dtype=np.int64)
    dst = np.array([index[b] for _, b in pairs], dtype=np.int64)
    return np.concatenate([per_endpoint[:, src], per_endpoint[:, dst]], axis=-1)


def pair_series_from_telemetry(path: Path) -> PairSeries:
    return read_telemetry_input(path).series
