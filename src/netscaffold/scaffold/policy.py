"""Scaffolding policy: risk knobs per QoS class, the provisional budget, and the setup-cost model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from netscaffold.errors import ConfigError
from netscaffold.model.plan import ProvisionalBudget


class SetupCostModel(Protocol):
    """Estimated reactive setup delay that scaffolding a path saves."""

    def setup_delay_s(self, hops: int, firewalls: int, needs_admission: bool) -> float: ...


@dataclass(frozen=True)
class LinearSetupCost:
    """controller round trip + per-hop install x hops + firewall update x firewalls + admission.

    The emulator's profiles (``netscaffold.backends.sim``) carry the cited defaults; this plain form lets
    the scaffolder rank candidates without importing a backend.
    """

    base_s: float = 0.0155
    per_hop_s: float = 0.001
    per_firewall_s: float = 0.002
    admission_s: float = 0.002

    def setup_delay_s(self, hops: int, firewalls: int, needs_admission: bool) -> float:
        return (
            self.base_s
            + self.per_hop_s * hops
            + self.per_firewall_s * firewalls
            + (self.admission_s if needs_admission else 0.0)
        )


@dataclass(frozen=True)
class ClassRisk:
    """How boldly to scaffold a QoS class.

    ``min_probability``: P(active within the horizon) below which a pair is not scaffolded;
    ``reserve_quantile``: which forecast quantile a reservation takes.
    """

    min_probability: float = 0.3
    reserve_quantile: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_probability <= 1.0:
            raise ConfigError(
                f"min_probability must be within 0..1, got {self.min_probability}",
                field="min_probability",
            )
        if not 0.0 < self.reserve_quantile < 1.0:
            raise ConfigError(
                f"reserve_quantile must be within (0, 1), got {self.reserve_quantile}",
                field="reserve_quantile",
            )


@dataclass(frozen=True)
class ScaffoldPolicy:
    """Everything the scaffolder decides with.

    ``ttl_margin_s``: provisional items expire this long after the horizon ends; an item whose expiry still
    covers the horizon is left alone (no churn), otherwise renewed. ``max_paths``: candidate paths kept per
    pair (weighted next hops). ``slot_cost_s`` and ``bandwidth_cost_per_bit``: the price of one table entry
    and one reserved bit, in seconds of setup delay, used to rank (pair, path) candidates by net benefit.
    """

    budget: ProvisionalBudget = field(default_factory=ProvisionalBudget)
    default_risk: ClassRisk = field(default_factory=ClassRisk)
    risk_per_class: Mapping[str, ClassRisk] = field(default_factory=dict)
    ttl_margin_s: float = 2.0
    max_paths: int = 2
    min_path_probability: float = 0.1
    slot_cost_s: float = 1e-5
    bandwidth_cost_per_bit: float = 1e-12
    rate_change_tolerance: float = 0.2
    weight_resolution: int = 20

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ttl_margin_s) and self.ttl_margin_s >= 0):
            raise ConfigError(f"ttl_margin_s must be >= 0, got {self.ttl_margin_s}", field="ttl_margin_s")
        if self.max_paths < 1:
            raise ConfigError(f"max_paths must be >= 1, got {self.max_paths}", field="max_paths")
        if self.slot_cost_s < 0 or self.bandwidth_cost_per_bit < 0:
            raise ConfigError("costs must be >= 0", field="slot_cost_s")
        if self.weight_resolution < 1:
            raise ConfigError("weight_resolution must be >= 1", field="weight_resolution")

    def risk(self, qos_name: str) -> ClassRisk:
        return self.risk_per_class.get(qos_name, self.default_risk)
