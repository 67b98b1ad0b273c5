"""What a run measures, accumulated tick by tick from backend-neutral inputs (routing information,
performance samples, applied plans, config snapshots)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from netscaffold.model.config import ItemKey, NetworkConfig, Origin
from netscaffold.model.events import FlowRequest
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import OpKind, Plan, provisional_entries_per_device


@dataclass(frozen=True)
class StrategyFigures:
    flows: int
    hit_ratio: float
    setup_ms_mean: float
    setup_ms_p50: float
    setup_ms_p99: float
    setup_s_total: float
    waste_bw_fraction: float
    unused_rule_fraction: float
    peak_rules_per_device: int
    plan_ops_per_s: float
    refused_plans: int

    def as_dict(self) -> dict[str, float | int]:
        return dict(vars(self))


@dataclass
class RunTally:
    measure_from_s: float = 0.0
    setup_delays_s: list[float] = field(default_factory=list)
    flow_times_s: list[float] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)
    reserved_bit_s: float = 0.0
    reserved_unused_bit_s: float = 0.0
    plan_ops: int = 0
    refused_plans: int = 0
    provisional_added: set[ItemKey] = field(default_factory=set)
    provisional_used: set[ItemKey] = field(default_factory=set)
    peak_rules_per_device: int = 0
    measured_s: float = 0.0
    timeline: list[tuple[float, int, int, float, float]] = field(default_factory=list)
    """Per tick: time, new flows, hits, reserved bit/s, reserved-unused bit/s."""
    occupancy: list[tuple[float, int, int]] = field(default_factory=list)
    """Per tick: time, most provisional entries on one device, provisional entries in all."""

    _tick_flows: int = 0
    _tick_hits: int = 0

    def record_flows(self, requests: Iterable[FlowRequest]) -> None:
        """This tick's new flows (call before :meth:`record_sample` of the same tick)."""
        self._tick_flows = self._tick_hits = 0
        for req in requests:
            self.flow_times_s.append(req.time_s)
            self.setup_delays_s.append(req.setup_delay_s)
            self.hits.append(req.scaffolded)
            self._tick_flows += 1
            self._tick_hits += req.scaffolded

    def record_sample(self, sample: PerformanceSample) -> None:
        reserved = float(np.sum(sample.reserved_bps))
        unused = float(np.sum(np.maximum(sample.reserved_bps - sample.reserved_used_bps, 0.0)))
        self.timeline.append((sample.time_s, self._tick_flows, self._tick_hits, reserved, unused))
        if sample.time_s - sample.interval_s + 1e-9 >= self.measure_from_s:
            self.reserved_bit_s += reserved * sample.interval_s
            self.reserved_unused_bit_s += unused * sample.interval_s
            self.measured_s += sample.interval_s

    def record_plan(self, plan: Plan, now_s: float) -> None:
        if now_s >= self.measure_from_s:
            self.plan_ops += len(plan)
        for op in plan.ops:
            if op.kind is OpKind.ADD and op.item.origin is Origin.PREDICTED and now_s >= self.measure_from_s:
                self.provisional_added.add(op.item.key)

    def record_confirmed(self, key: ItemKey) -> None:
        if key in self.provisional_added:
            self.provisional_used.add(key)

    def record_config(self, config: NetworkConfig, now_s: float) -> None:
        occupancy = provisional_entries_per_device(config)
        peak = max(occupancy.values(), default=0)
        self.occupancy.append((now_s, peak, sum(occupancy.values())))
        if now_s >= self.measure_from_s:
            self.peak_rules_per_device = max(self.peak_rules_per_device, peak)

    def figures(self) -> StrategyFigures:
        times = np.asarray(self.flow_times_s)
        keep = times >= self.measure_from_s
        delays_ms = np.asarray(self.setup_delays_s)[keep] * 1e3
        hits = np.asarray(self.hits, dtype=bool)[keep]
        n = int(keep.sum())
        added = len(self.provisional_added)
        return StrategyFigures(
            flows=n,
            hit_ratio=float(hits.mean()) if n else 0.0,
            setup_ms_mean=float(delays_ms.mean()) if n else 0.0,
            setup_ms_p50=float(np.percentile(delays_ms, 50)) if n else 0.0,
            setup_ms_p99=float(np.percentile(delays_ms, 99)) if n else 0.0,
            setup_s_total=float(delays_ms.sum() / 1e3),
            waste_bw_fraction=self.reserved_unused_bit_s / self.reserved_bit_s
            if self.reserved_bit_s
            else 0.0,
            unused_rule_fraction=1.0 - len(self.provisional_used) / added if added else 0.0,
            peak_rules_per_device=self.peak_rules_per_device,
            plan_ops_per_s=self.plan_ops / self.measured_s if self.measured_s else 0.0,
            refused_plans=self.refused_plans,
        )
