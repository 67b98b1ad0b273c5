"""Prediction against reality for one tick: missed pairs, unused scaffolding, bandwidth error, congestion.

``calculateDiscrepancy(routingInfo, predictedData)`` of the specification.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from netscaffold.model.config import NetworkConfig, Origin, Reservation, VirtualCircuit, split_flow_key
from netscaffold.model.events import FlowRequest, RoutingInfo
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.predicted import PredictedGraph
from netscaffold.model.topology import LinkKey, Topology

Pair = tuple[str, str]


@dataclass(frozen=True)
class Discrepancy:
    time_s: float
    new_flows: int
    missed_flows: int
    """New flows whose path was not scaffolded."""
    active_pairs: frozenset[Pair]
    """Pairs that started a flow or carried traffic this tick."""
    missed_pairs: frozenset[Pair]
    """Pairs that started flows without a scaffolded path."""
    unused_pairs: frozenset[Pair]
    """Pairs with provisional scaffolding (a reservation or circuit) that carried nothing this tick."""
    bandwidth_nmae: float
    """sum |predicted q50 - measured| / sum measured over pairs with traffic or a forecast (NaN: none)."""
    overloaded_links: tuple[LinkKey, ...]
    reservation_error: dict[str, tuple[float, float]] = field(default_factory=dict)
    """flow key -> (reserved bit/s, measured bit/s) for every reservation and circuit, provisional or
    confirmed (measured 0 when its pair carried nothing this tick)."""

    @property
    def missed_fraction(self) -> float:
        return self.missed_flows / self.new_flows if self.new_flows else 0.0

    @property
    def reservation_error_fraction(self) -> float:
        """sum |reserved - measured| / sum reserved over reservations (0 when nothing is reserved)."""
        total = sum(rate for rate, _ in self.reservation_error.values())
        if total <= 0:
            return 0.0
        return sum(abs(rate - used) for rate, used in self.reservation_error.values()) / total


def calculate_discrepancy(
    routing_info: Iterable[RoutingInfo],
    sample: PerformanceSample,
    predicted: PredictedGraph | None,
    config: NetworkConfig,
    topology: Topology,
    *,
    congestion_threshold: float = 0.9,
) -> Discrepancy:
    requests = [info for info in routing_info if isinstance(info, FlowRequest)]
    missed = [r for r in requests if not r.scaffolded]
    interval = sample.interval_s if sample.interval_s > 0 else 1.0
    measured_bps = {
        pair: float(b) * 8.0 / interval for pair, b in zip(sample.pair_keys, sample.pair_bytes, strict=True)
    }
    active = frozenset((r.src, r.dst) for r in requests) | {p for p, v in measured_bps.items() if v > 0}
    reserved: dict[str, float] = {}
    provisional: set[str] = set()
    for item in config:
        if isinstance(item, Reservation | VirtualCircuit):
            reserved[item.flow_key] = max(reserved.get(item.flow_key, 0.0), item.rate_bps)
            if item.origin is Origin.PREDICTED:
                provisional.add(item.flow_key)
    unused = frozenset(
        split_flow_key(key)
        for key in provisional
        if measured_bps.get(split_flow_key(key), 0.0) <= 0.0 and split_flow_key(key) not in active
    )
    errors = {key: (rate, measured_bps.get(split_flow_key(key), 0.0)) for key, rate in reserved.items()}
    overloaded = tuple(
        key
        for key, load in zip(sample.link_keys, sample.load_bps, strict=True)
        if key in topology.links and load > congestion_threshold * topology.links[key].capacity_bps
    )
    return Discrepancy(
        time_s=sample.time_s,
        new_flows=len(requests),
        missed_flows=len(missed),
        active_pairs=active,
        missed_pairs=frozenset((r.src, r.dst) for r in missed),
        unused_pairs=unused,
        bandwidth_nmae=_bandwidth_nmae(predicted, measured_bps),
        overloaded_links=overloaded,
        reservation_error=errors,
    )


def _bandwidth_nmae(predicted: PredictedGraph | None, measured_bps: dict[Pair, float]) -> float:
    if predicted is None:
        return float("nan")
    q50 = predicted.quantile_index(0.5) if 0.5 in predicted.quantile_levels else 0
    forecast = {pair: float(predicted.bandwidth_bps[0, i, q50]) for i, pair in enumerate(predicted.pairs)}
    pairs = set(forecast) | {p for p, v in measured_bps.items() if v > 0}
    actual = np.array([measured_bps.get(p, 0.0) for p in sorted(pairs)])
    guess = np.array([forecast.get(p, 0.0) for p in sorted(pairs)])
    total = float(np.sum(np.abs(actual)))
    return float(np.sum(np.abs(guess - actual)) / total) if total > 0 else float("nan")
