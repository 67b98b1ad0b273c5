"""What every workload returns, and the pieces they share: endpoints, addresses, bytes per tick."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TopologyError, TrafficError
from netscaffold.model.flows import FlowTable
from netscaffold.model.qos import QosPolicy
from netscaffold.model.topology import Endpoint, Topology
from netscaffold.telemetry.store import TelemetryStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Generated addresses come from the benchmarking range (RFC 2544), as docs/architecture.md says.
_ADDRESS_BASE = int(ipaddress.IPv4Address("198.18.0.0"))
_ADDRESS_COUNT = 1 << 17


@dataclass(frozen=True, slots=True)
class WorkloadEvent:
    """Something that happened to the application at ``time_s`` (scale-out, deployment, failure...)."""

    time_s: float
    kind: str
    subject: str
    detail: Mapping[str, str | float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"time_s": self.time_s, "kind": self.kind, "subject": self.subject, **dict(self.detail)}


@dataclass(frozen=True, eq=False)
class Workload:
    """A generated (or replayed) workload: flows plus the telemetry a predictor would see.

    ``topology`` carries the workload's endpoints; ``flows.endpoints`` and the telemetry's endpoints are
    the same tuple in the same order. ``notes`` state assumptions (time compression, defaults applied).
    """

    kind: str
    topology: Topology
    flows: FlowTable
    telemetry: TelemetryStore
    events: tuple[WorkloadEvent, ...]
    qos: QosPolicy
    seed: int
    duration_s: float
    notes: tuple[str, ...] = ()
    stats: Mapping[str, float] = field(default_factory=dict)

    def total_bytes(self) -> float:
        """Bytes of every flow (a timed flow counts ``rate * duration``)."""
        flows = self.flows
        timed = ~np.isnan(flows.duration_s)
        sized_bytes = float(flows.size_bytes[~timed].sum())
        return sized_bytes + float((flows.rate_bps[timed] * flows.duration_s[timed]).sum() / 8.0)

    @property
    def placement(self) -> dict[str, str]:
        """Endpoint id -> host node."""
        return {ep: self.topology.endpoints[ep].host for ep in self.flows.endpoints}


def address_allocator(topology: Topology) -> AddressAllocator:
    return AddressAllocator({ep.address for ep in topology.endpoints.values()})


class AddressAllocator:
    """Hands out unused IPv4 addresses from 198.18.0.0/15 in order."""

    def __init__(self, used: set[str]) -> None:
        self._used = used
        self._next = 1

    def take(self) -> str:
        while self._next < _ADDRESS_COUNT - 1:
            address = str(ipaddress.IPv4Address(_ADDRESS_BASE + self._next))
            self._next += 1
            if address not in self._used:
                self._used.add(address)
                return address
        raise TopologyError("no free address left in 198.18.0.0/15 for generated endpoints")


def attach(topology: Topology, placement: Sequence[tuple[str, str, str]]) -> Topology:
    """Attach endpoints given as (id, host, app); an id already in the topology is refused."""
    allocate = address_allocator(topology)
    endpoints = []
    for endpoint_id, host, app in placement:
        if endpoint_id in topology.endpoints:
            raise TopologyError("a workload endpoint clashes with one of the topology", element=endpoint_id)
        topology.node(host)
        endpoints.append(Endpoint(endpoint_id, host, allocate.take(), app))
    return topology.with_endpoints(endpoints)


def access_rate_bps(topology: Topology, endpoints: Sequence[str]) -> FloatArray:
    """Per endpoint: the largest capacity of a link leaving its host (its ideal sending rate)."""
    best: dict[str, float] = {}
    for (src, _), link in topology.links.items():
        best[src] = max(best.get(src, 0.0), link.capacity_bps)
    out = np.empty(len(endpoints))
    for i, endpoint in enumerate(endpoints):
        host = topology.endpoints[endpoint].host
        if host not in best:
            raise TopologyError("the host of this endpoint has no outgoing link", element=endpoint)
        out[i] = best[host]
    return out


def nominal_intervals(flows: FlowTable, access_bps: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Each flow's (bytes, end time) when it runs undisturbed at min(its rate cap, its access rate)."""
    sized = np.isnan(flows.duration_s)
    rate_bps = np.minimum(flows.rate_bps, access_bps[flows.src])
    size = flows.size_bytes.copy()
    length_s = flows.duration_s.copy()
    size[~sized] = flows.rate_bps[~sized] * flows.duration_s[~sized] / 8.0
    length_s[sized] = flows.size_bytes[sized] * 8.0 / rate_bps[sized]
    return size, flows.start_s + length_s


def bytes_per_tick(
    start_s: FloatArray,
    end_s: FloatArray,
    size_bytes: FloatArray,
    key: IntArray,
    *,
    origin_s: float,
    tick_s: float,
    ticks: int,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Spread each item's bytes evenly over ``[start_s, end_s)`` and sum per (tick, key).

    Exact integration without a per-item loop: with ``a`` the sum of active rates and ``b`` the sum of
    ``rate * start`` (minus ``rate * end`` for items that ended), the bytes sent by a boundary ``T`` are
    ``T * a(T) - b(T)``; both are cumulative sums of start and end events. Bytes outside
    ``[origin_s, origin_s + ticks * tick_s)`` are dropped. Returns long columns (tick, key, bytes).
    """
    if start_s.size == 0 or ticks == 0:
        none = np.zeros(0, dtype=np.int64)
        return none, none, np.zeros(0)
    length = np.maximum(end_s - start_s, 1e-12)
    rate = size_bytes / length
    keys, key_col = np.unique(key, return_inverse=True)
    rel_start = (start_s - origin_s) / tick_s
    rel_end = (end_s - origin_s) / tick_s
    a = np.zeros((ticks + 2, keys.size))
    b = np.zeros((ticks + 2, keys.size))
    for rel, sign in ((rel_start, 1.0), (rel_end, -1.0)):
        boundary = np.clip(np.ceil(rel - 1e-12), 0, ticks + 1).astype(np.int64)
        np.add.at(a, (boundary, key_col), sign * rate * tick_s)
        np.add.at(b, (boundary, key_col), sign * rate * tick_s * rel)
    a = np.cumsum(a, axis=0)[: ticks + 1]
    b = np.cumsum(b, axis=0)[: ticks + 1]
    sent = np.arange(ticks + 1, dtype=np.float64)[:, None] * a - b
    per_tick = np.maximum(np.diff(sent, axis=0), 0.0)
    key_bytes = np.bincount(key_col, weights=size_bytes, minlength=keys.size)
    per_tick[per_tick < 1e-12 * key_bytes[None, :]] = 0.0  # cancellation noise of T * a - b
    tick_idx, key_idx = np.nonzero(per_tick)
    return tick_idx.astype(np.int64), keys[key_idx].astype(np.int64), per_tick[tick_idx, key_idx]


def flow_pair_bytes(
    flows: FlowTable, topology: Topology, *, origin_s: float, tick_s: float, ticks: int
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Offered bytes per (tick, src, dst): every flow spread over its nominal transfer interval."""
    n = len(flows.endpoints)
    size, end_s = nominal_intervals(flows, access_rate_bps(topology, flows.endpoints))
    tick, code, sent = bytes_per_tick(
        flows.start_s, end_s, size, flows.src * n + flows.dst, origin_s=origin_s, tick_s=tick_s, ticks=ticks
    )
    return tick, code // n, code % n, sent


def tick_count(duration_s: float, tick_s: float, origin_s: float = 0.0) -> int:
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise TrafficError(f"duration must be > 0 s, got {duration_s!r}", field="duration_s")
    return max(math.ceil((duration_s - origin_s) / tick_s - 1e-9), 1)


def build_store(
    topology: Topology,
    flows: FlowTable,
    *,
    tick_s: float,
    ticks: int,
    origin_s: float = 0.0,
    cpu: FloatArray | None = None,
    memory: FloatArray | None = None,
) -> TelemetryStore:
    """The telemetry of ``flows``: offered pair bytes per tick, tx/rx per endpoint, given cpu/memory."""
    n = len(flows.endpoints)
    tick, src, dst, sent = flow_pair_bytes(flows, topology, origin_s=origin_s, tick_s=tick_s, ticks=ticks)
    tx = np.zeros((ticks, n))
    rx = np.zeros((ticks, n))
    np.add.at(tx, (tick, src), sent)
    np.add.at(rx, (tick, dst), sent)
    apps = [topology.endpoints[ep].app_name for ep in flows.endpoints]
    return TelemetryStore.from_arrays(
        endpoints=flows.endpoints,
        apps=apps,
        tick_s=tick_s,
        start_s=origin_s,
        cpu=np.zeros((ticks, n)) if cpu is None else cpu,
        memory=np.zeros((ticks, n)) if memory is None else memory,
        tx_bytes=tx,
        rx_bytes=rx,
        pair_tick=tick,
        pair_src=src,
        pair_dst=dst,
        pair_bytes=sent,
    )


def lag_filter(
    target: FloatArray, tick_s: float, lag_s: float, initial: FloatArray | None = None
) -> FloatArray:
    """First-order lag along axis 0: ``y[k] = y[k-1] + (x[k] - y[k-1]) * (1 - exp(-tick_s / lag_s))``.

    ``y[-1]`` is ``initial`` (default ``x[0]``: no transient). A loop over ticks, vectorised across
    columns (scipy.signal.lfilter would do the same but costs seconds to import).
    """
    alpha = 1.0 - math.exp(-tick_s / lag_s) if lag_s > 0 else 1.0
    out = np.empty_like(target, dtype=np.float64)
    if target.shape[0] == 0:
        return out
    state = np.array(target[0] if initial is None else initial, dtype=np.float64)
    for k in range(target.shape[0]):
        state = state + alpha * (target[k] - state)
        out[k] = state
    return out


def first_flows(flows: FlowTable, n: int) -> FlowTable:
    """The first ``n`` rows (flows are sorted by start time)."""
    if n == len(flows):
        return flows
    return FlowTable(
        start_s=flows.start_s[:n],
        src=flows.src[:n],
        dst=flows.dst[:n],
        size_bytes=flows.size_bytes[:n],
        duration_s=flows.duration_s[:n],
        rate_bps=flows.rate_bps[:n],
        qos=flows.qos[:n],
        dst_port=flows.dst_port[:n],
        endpoints=flows.endpoints,
        qos_names=flows.qos_names,
    )
