"""The ``sim`` backend: the embedded flow-level emulator behind the :class:`Backend` contract.

It holds a :class:`NetworkConfig` (plans validated all or nothing), replays a :class:`FlowTable` against
it, and reports what a dataplane would: a flow request per new flow (scaffolded or not, with its setup
delay) and a performance sample per tick. Reactive entries (what the emulated controller installs for an
unscaffolded pair, kept until the pair has been idle for ``idle_timeout_s``) are internal: they are not
part of :meth:`snapshot`. See docs/backends.md.
"""

from __future__ import annotations

import math
import time

from netscaffold.backends.protocol import ApplyReport, ManualClock
from netscaffold.backends.sim import kernel
from netscaffold.backends.sim.costs import SetupCostProfile, resolve_profile
from netscaffold.backends.sim.readiness import Readiness, compute_readiness
from netscaffold.backends.sim.result import EmulationResult
from netscaffold.backends.sim.routing import PathTable
from netscaffold.backends.sim.setup import ecmp_candidates, index_pairs, qos_masks, resolve_endpoints
from netscaffold.backends.sim.state import SimState
from netscaffold.errors import BackendError, ConfigError
from netscaffold.model.config import ConfigItem, NetworkConfig
from netscaffold.model.events import FlowRequest, RoutingInfo
from netscaffold.model.flows import FlowTable
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import OpKind, Plan, PlanOp, ProvisionalBudget
from netscaffold.model.qos import QosPolicy
from netscaffold.model.topology import Topology


def _check_positive(value: float, name: str, *, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(
            f"must be a finite number {bound}, got {value!r}", element="sim backend", field=name
        )


class SimBackend:
    """Flow-level emulator. ``advance(until_s)`` replays the flows up to ``until_s`` on the injected
    :class:`ManualClock`; ``result()`` gives everything measured so far as columns."""

    name = "sim"

    def __init__(
        self,
        topology: Topology,
        flows: FlowTable,
        *,
        profile: str | SetupCostProfile = "sdn-lan",
        idle_timeout_s: float = 10.0,
        qos: QosPolicy | None = None,
        tick_s: float = 1.0,
        seed: int = 0,
        clock: ManualClock | None = None,
        budget: ProvisionalBudget | None = None,
        initial: NetworkConfig | None = None,
        hybrid_fraction: float = 0.8,
    ) -> None:
        _check_positive(idle_timeout_s, "idle_timeout_s", allow_zero=True)
        _check_positive(tick_s, "tick_s")
        if not 0.0 <= hybrid_fraction <= 1.0:
            raise ConfigError(f"must be within 0..1, got {hybrid_fraction}", field="hybrid_fraction")
        self.topology = topology
        self.clock = clock if clock is not None else ManualClock()
        self.profile = resolve_profile(profile)
        self.flows = flows
        self._budget = budget
        self._seed = seed
        self._tick_s = tick_s
        self._now_s = self.clock.now()
        endpoints = resolve_endpoints(topology, flows)
        f_pair, self._pairs = index_pairs(flows, endpoints)
        self._paths = PathTable(topology)
        self._state = SimState(
            flows=flows,
            f_pair=f_pair,
            f_mask=qos_masks(flows, endpoints, qos if qos is not None else QosPolicy()),
            n_pairs=len(self._pairs),
            paths=self._paths,
            ecmp=ecmp_candidates(topology, self._pairs, self._paths),
            profile=self.profile,
            idle_timeout_s=idle_timeout_s,
            tick_s=tick_s,
            origin_s=self._now_s,
            seed=seed,
            hybrid_fraction=hybrid_fraction,
        )
        self._config = NetworkConfig()
        if initial is not None:
            plan = Plan.between(NetworkConfig(), initial, allow_confirmed_changes=True)
            self._config = plan.validate(topology, budget, NetworkConfig())
        self._state.set_readiness(self._readiness(self._config), self._now_s)
        self._drained = 0
        self._wall_s = 0.0
        self._closed = False

    # -- contract --------------------------------------------------------------------------------
    def snapshot(self) -> NetworkConfig:
        return self._config

    def apply(self, plan: Plan) -> ApplyReport:
        """Validate against the topology, the budget and the current config; all or nothing."""
        self._check_open()
        started = time.perf_counter()
        if self.clock.now() > self._now_s:
            self.advance(self.clock.now())
        result = plan.validate(self.topology, self._budget, self._config)
        changed = sum(1 for op in plan.ops if self._config.get(op.item.key) != _after(op))
        if changed:
            ready = self._readiness(result)  # may raise: nothing is committed before this point
            self._state.set_readiness(ready, self._now_s)
            self._config = result
        now = self.clock.now()
        return ApplyReport(
            applied_ops=changed,
            duration_s=time.perf_counter() - started,
            realized_at={op.item.key: now for op in plan.ops},
        )

    def advance(self, until_s: float) -> None:
        """Replay flows up to ``until_s``; provisional items expire on the way, at their ``expires_at``."""
        self._check_open()
        if not until_s >= self._now_s:
            raise ConfigError(
                f"cannot advance to {until_s!r}: the emulator is already at {self._now_s}", field="until_s"
            )
        started = time.perf_counter()
        while True:
            self._expire_due(self._now_s)
            next_expiry = min(
                (i.expires_at for i in self._config if i.expires_at is not None), default=math.inf
            )
            segment_end = min(until_s, next_expiry)
            self._state.run_until(segment_end)
            self._now_s = segment_end
            if segment_end >= until_s:
                break
        self._expire_due(self._now_s)
        if self.clock.now() < until_s:
            self.clock.set(until_s)
        self._wall_s += time.perf_counter() - started

    def expire(self, now: float) -> list[ConfigItem]:
        self._check_open()
        return self._expire_due(now)

    def drain_routing_info(self) -> list[RoutingInfo]:
        arrived = self._state.counter(kernel.C_NEXT_ARRIVAL)
        rows = range(self._drained, arrived)
        self._drained = arrived
        flows, state = self.flows, self._state
        names, qos_names = flows.endpoints, flows.qos_names
        return [
            FlowRequest(
                time_s=float(flows.start_s[i]),
                src=names[int(flows.src[i])],
                dst=names[int(flows.dst[i])],
                size_bytes=float(flows.size_bytes[i]) if not math.isnan(flows.size_bytes[i]) else 0.0,
                qos=qos_names[int(flows.qos[i])],
                dst_port=int(flows.dst_port[i]) or None,
                scaffolded=bool(state.o_hit[i]),
                setup_delay_s=float(state.o_delay_s[i]),
            )
            for i in rows
        ]

    def performance(self) -> PerformanceSample:
        state = self._state
        rows = state.counter(kernel.C_ROWS)
        if rows == 0:
            return PerformanceSample.empty(self._now_s, self._tick_s)
        last = rows - 1
        reserved = state.t_reserved_bps[last].copy()
        return PerformanceSample(
            time_s=float(state.t_end_s[last]),
            interval_s=self._tick_s,
            link_keys=self._paths.link_keys,
            load_bps=state.t_load_bps[last].copy(),
            reserved_bps=reserved,
            reserved_used_bps=reserved - state.t_unused_bps[last],
            pair_keys=tuple((s.id, d.id) for s, d in self._pairs),
            pair_bytes=state.pair_last_bytes.copy(),
        )

    def close(self) -> None:
        self._closed = True

    # -- results ---------------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        return self._now_s

    def busy(self) -> bool:
        """Flows still to arrive, waiting for setup or sending."""
        state = self._state
        return state.counter(kernel.C_NEXT_ARRIVAL) < len(self.flows) or int(state.h_size[0]) > 0

    def next_event_s(self) -> float:
        """Time of the next arrival, start or completion (``inf``: none will ever happen)."""
        state = self._state
        arrival = state.counter(kernel.C_NEXT_ARRIVAL)
        t_arr = float(self.flows.start_s[arrival]) if arrival < len(self.flows) else math.inf
        t_heap = float(state.h_t[state.h_heap[0]]) if state.h_size[0] else math.inf
        return min(t_arr, t_heap)

    def result(self) -> EmulationResult:
        state = self._state
        rows = state.counter(kernel.C_ROWS)
        return EmulationResult(
            start_s=self.flows.start_s.copy(),
            setup_delay_s=state.o_delay_s.copy(),
            completion_s=state.o_done_s.copy(),
            hit=state.o_hit.copy(),
            reactive=state.o_reactive.copy(),
            path=state.o_path.copy(),
            paths=tuple(self._paths.paths),
            tick_s=self._tick_s,
            tick_end_s=state.t_end_s[:rows].copy(),
            link_keys=self._paths.link_keys,
            capacity_bps=state.l_cap.copy(),
            load_bps=state.t_load_bps[:rows].copy(),
            reserved_bps=state.t_reserved_bps[:rows].copy(),
            reserved_unused_bps=state.t_unused_bps[:rows].copy(),
            sent_bytes=state.t_sent_bytes[:rows].copy(),
            events=state.counter(kernel.C_EVENTS),
            wall_s=self._wall_s,
            profile=self.profile.name,
            seed=self._seed,
        )

    def rate_bps(self) -> dict[int, float]:
        """Current rate of every sending flow, by flow row (for tests and diagnosis)."""
        state = self._state
        slots = state.a_list[: state.counter(kernel.C_ACTIVE)]
        return {int(state.s_flow[s]): float(state.s_rate[s]) for s in slots}

    # -- internals -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("the backend is closed", backend=self.name)

    def _readiness(self, config: NetworkConfig) -> Readiness:
        return compute_readiness(config, self.topology, self._pairs, self._paths)

    def _expire_due(self, now: float) -> list[ConfigItem]:
        gone = self._config.expired(now)
        if gone:
            remaining = self._config.without_expired(now)
            self._state.set_readiness(self._readiness(remaining), self._now_s)
            self._config = remaining
        return sorted(gone, key=lambda item: item.key)


def _after(op: PlanOp) -> ConfigItem | None:
    """The item a plan op leaves behind (None for a remove)."""
    return None if op.kind is OpKind.REMOVE else op.item
