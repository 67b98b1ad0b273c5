"""QoS profiles: what a pair of applications needs from the network."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from netscaffold.errors import ValidationError


@dataclass(frozen=True, slots=True)
class QosProfile:
    """Minimum bandwidth, maximum latency, priority and allowed destination ports.

    ``min_bandwidth_bps > 0`` means flows of this class need a reservation; a ``max_latency_s`` means they
    ask for a guaranteed path (a virtual circuit). An empty ``allowed_ports`` allows every port.
    """

    name: str = "best-effort"
    min_bandwidth_bps: float = 0.0
    max_latency_s: float | None = None
    priority: int = 0
    allowed_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        where = f"qos {self.name!r}"
        if not (math.isfinite(self.min_bandwidth_bps) and self.min_bandwidth_bps >= 0):
            raise ValidationError(
                f"min_bandwidth_bps must be >= 0, got {self.min_bandwidth_bps!r}", element=where
            )
        if self.max_latency_s is not None and not (
            math.isfinite(self.max_latency_s) and self.max_latency_s > 0
        ):
            raise ValidationError(f"max_latency_s must be > 0, got {self.max_latency_s!r}", element=where)
        for port in self.allowed_ports:
            if not 0 < port < 65536:
                raise ValidationError(f"port {port} outside 1..65535", element=where)

    @property
    def needs_reservation(self) -> bool:
        return self.min_bandwidth_bps > 0

    @property
    def needs_circuit(self) -> bool:
        return self.max_latency_s is not None


BEST_EFFORT = QosProfile()


@dataclass(frozen=True)
class QosPolicy:
    """Profiles per (src app, dst app) pair, then per destination app, then the default."""

    default: QosProfile = BEST_EFFORT
    per_app: Mapping[str, QosProfile] = field(default_factory=dict)
    per_pair: Mapping[tuple[str, str], QosProfile] = field(default_factory=dict)

    def lookup(self, src_app: str, dst_app: str) -> QosProfile:
        pair = self.per_pair.get((src_app, dst_app))
        if pair is not None:
            return pair
        return self.per_app.get(dst_app, self.default)
