"""``emulate``: run a flow table on a topology with no scaffolding (the reactive network) to the end."""

from __future__ import annotations

import math
from collections.abc import Callable

from netscaffold.backends.protocol import ManualClock
from netscaffold.backends.sim.backend import SimBackend
from netscaffold.backends.sim.costs import SetupCostProfile
from netscaffold.backends.sim.result import EmulationResult
from netscaffold.errors import ConfigError
from netscaffold.model.flows import FlowTable
from netscaffold.model.topology import Topology

Progress = Callable[[float, float], None]
_CHUNKS = 100


def emulate(
    topology: Topology,
    flows: FlowTable,
    *,
    profile: str | SetupCostProfile = "sdn-lan",
    seed: int = 0,
    tick_s: float = 1.0,
    duration_s: float | None = None,
    progress: Progress | None = None,
    idle_timeout_s: float = 10.0,
) -> EmulationResult:
    """Replay ``flows`` for ``duration_s`` (default: until every flow has finished, or only starved flows
    remain). ``progress(now_s, end_s)`` is called as simulated time passes (``end_s`` is an estimate when
    no duration is given)."""
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"must be a positive number, got {duration_s!r}", field="duration_s")
    start_s = float(flows.start_s[0]) if len(flows) else 0.0
    clock = ManualClock(min(start_s, 0.0))
    backend = SimBackend(
        topology, flows, profile=profile, seed=seed, tick_s=tick_s, clock=clock, idle_timeout_s=idle_timeout_s
    )
    try:
        last_arrival_s = float(flows.start_s[-1]) if len(flows) else 0.0
        end_s = duration_s + clock.now() if duration_s is not None else last_arrival_s + tick_s
        step_s = max(tick_s, (end_s - clock.now()) / _CHUNKS)
        while backend.now_s < end_s:
            backend.advance(min(end_s, backend.now_s + step_s))
            if progress is not None:
                progress(backend.now_s, end_s)
        if duration_s is None:
            _drain(backend, tick_s, progress)
        return backend.result()
    finally:
        backend.close()


def _drain(backend: SimBackend, tick_s: float, progress: Progress | None) -> None:
    """Advance past the last completion, tick by tick where events are dense, jumping gaps."""
    while backend.busy():
        next_s = backend.next_event_s()
        if math.isinf(next_s):
            return  # only flows that can never finish (starved by floors) remain
        target = max(backend.now_s + tick_s, next_s)
        target = math.ceil(target / tick_s) * tick_s
        backend.advance(target)
        if progress is not None:
            progress(backend.now_s, backend.now_s)
