"""The backend contract shared by the emulator and the Linux dataplane.

A backend applies a :class:`~netscaffold.model.Plan` atomically: on failure its state is what it was before
(restored from what it reads back, not by replaying steps) and the error names the failing item. Applying
the same plan twice is harmless. Provisional items vanish at their ``expires_at``. A backend reports
routing information (flow requests, route updates, link events) and performance samples, and ``close``
leaves nothing behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from netscaffold.model.config import ConfigItem, ItemKey, NetworkConfig
from netscaffold.model.events import RoutingInfo
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import Plan
from netscaffold.model.topology import Topology


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock (simulated or monotonic wall time)."""
        ...


class WallClock:
    """Monotonic wall-clock seconds since the clock was made."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin


class ManualClock:
    """A clock that moves only when told (simulation and tests)."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = start_s

    def now(self) -> float:
        return self._now

    def set(self, now_s: float) -> None:
        if now_s < self._now:
            raise ValueError(f"clock cannot go back from {self._now} to {now_s}")
        self._now = now_s

    def advance(self, delta_s: float) -> None:
        self.set(self._now + delta_s)


@dataclass(frozen=True)
class ApplyReport:
    """What an apply did: op counts and, per item key, when it was realised (read back) on the clock."""

    applied_ops: int
    duration_s: float
    realized_at: dict[ItemKey, float] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topology(self) -> Topology: ...

    @property
    def clock(self) -> Clock:
        """The injected clock every time on this backend refers to."""
        ...

    def snapshot(self) -> NetworkConfig:
        """The configuration as the backend holds it now (read back, not remembered)."""
        ...

    def apply(self, plan: Plan) -> ApplyReport:
        """Validate and apply ``plan`` all or nothing; raise PlanError / BackendError naming the item."""
        ...

    def advance(self, until_s: float) -> None:
        """Let time pass up to ``until_s``: the emulator processes its events, a real backend waits and
        collects what it observes. Expiry of provisional items happens on the way."""
        ...

    def expire(self, now: float) -> list[ConfigItem]:
        """Remove provisional items whose ``expires_at`` <= ``now``; return them."""
        ...

    def drain_routing_info(self) -> list[RoutingInfo]:
        """Routing information observed since the last call, oldest first."""
        ...

    def performance(self) -> PerformanceSample:
        """The latest performance sample."""
        ...

    def close(self) -> None:
        """Tear down everything this backend created. Idempotent."""
        ...
