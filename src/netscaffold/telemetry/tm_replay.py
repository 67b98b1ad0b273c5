"""The ``tm-replay`` workload: flows generated from a real traffic-matrix series.

Each matrix interval lasts ``interval_s`` simulated seconds (a time compression stated in the notes); the
rates (bit/s) of the matrix are kept, so an interval carries ``rate * interval_s / 8`` bytes. Per interval,
pair ``(i, j)`` gets Poisson arrivals at ``flow_rate * v_ij / sum(v)`` flows/s (the network sees
``flow_rate`` new flows per simulated second), with Pareto (shape 1.5) sizes whose mean
``flow_share * sum(v) / (8 * flow_rate)`` makes flows carry ``flow_share`` of the volume. What the sampled
flows leave of the entry is one background flow paced at a constant rate over the interval, so volume adds
up to the entry (when heavy-tailed flows overshoot an entry, the excess is reported in the stats).

Endpoints: one per matrix node, named like it, attached to the topology node of that name; when the
topology lacks some of them (for example a data-centre fabric), they go round-robin on its attachment
nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TopologyError, TrafficError
from netscaffold.model.flows import FlowTable
from netscaffold.model.qos import QosPolicy
from netscaffold.model.topology import Topology
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.telemetry.workload import Workload, attach, build_store, tick_count

FloatArray = npt.NDArray[np.float64]
PARETO_SHAPE = 1.5


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    interval_s: float = 10.0
    flow_rate_per_s: float = 1000.0
    flow_share: float = 0.5
    start_step: int = 0
    duration_s: float | None = None  # default: 60 intervals or the whole series when shorter
    tick_s: float = 1.0

    def check(self) -> None:
        for name, value in (("interval_s", self.interval_s), ("flow_rate_per_s", self.flow_rate_per_s)):
            if not (math.isfinite(value) and value > 0):
                raise TrafficError(f"must be > 0, got {value!r}", field=name)
        if not 0.0 <= self.flow_share <= 1.0:
            raise TrafficError(f"must be within [0, 1], got {self.flow_share!r}", field="flow_share")


def _placement(topology: Topology, nodes: tuple[str, ...]) -> tuple[list[tuple[str, str, str]], str | None]:
    if all(n in topology.nodes for n in nodes):
        return [(n, n, n) for n in nodes], None
    hosts = topology.attachment_nodes()
    note = f"matrix nodes are not topology nodes: placed round-robin on {len(hosts)} attachment nodes"
    return [(n, hosts[i % len(hosts)], n) for i, n in enumerate(nodes)], note


def _steps(series: TrafficMatrixSeries, cfg: ReplayConfig) -> tuple[int, int]:
    if not 0 <= cfg.start_step < series.steps:
        raise TrafficError(f"start step {cfg.start_step} outside 0..{series.steps - 1}", field="start_step")
    available = series.steps - cfg.start_step
    if cfg.duration_s is None:
        return cfg.start_step, cfg.start_step + min(available, 60)
    wanted = max(math.ceil(cfg.duration_s / cfg.interval_s - 1e-9), 1)
    if wanted > available:
        raise TrafficError(
            f"{cfg.duration_s} s needs {wanted} intervals of {cfg.interval_s} s, the series has {available}"
            f" from step {cfg.start_step}",
            field="duration_s",
        )
    return cfg.start_step, cfg.start_step + wanted


def _sample(
    rate_bps: FloatArray, cfg: ReplayConfig, rng: np.random.Generator
) -> tuple[dict[str, FloatArray], dict[str, float]]:
    """Flows and background of ``rate_bps[steps, pairs]``: columns (pair index in ``pair``) and stats."""
    total_bps = rate_bps.sum(axis=1, keepdims=True)
    share = np.divide(rate_bps, total_bps, out=np.zeros_like(rate_bps), where=total_bps > 0)
    flow_rate = cfg.flow_rate_per_s if cfg.flow_share > 0 else 0.0  # no volume for flows: background only
    counts = rng.poisson(flow_rate * share * cfg.interval_s)
    cell = np.repeat(np.arange(counts.size), counts.reshape(-1))
    step_of, pair_of = np.divmod(cell, rate_bps.shape[1])
    mean_bytes = cfg.flow_share * total_bps[:, 0] / (8.0 * cfg.flow_rate_per_s)
    pareto_scale = mean_bytes[step_of] * (PARETO_SHAPE - 1.0) / PARETO_SHAPE
    sizes = pareto_scale * (1.0 + rng.pareto(PARETO_SHAPE, cell.size))
    starts = (step_of + rng.uniform(size=cell.size)) * cfg.interval_s
    flow_bytes = np.bincount(cell, weights=sizes, minlength=counts.size).reshape(counts.shape)
    entry_bytes = rate_bps * cfg.interval_s / 8.0
    background = np.maximum(entry_bytes - flow_bytes, 0.0)
    bg_step, bg_pair = np.nonzero(background > 0)
    bg_bytes = background[bg_step, bg_pair]
    columns = {
        "start_s": np.concatenate([starts, bg_step * cfg.interval_s]),
        "pair": np.concatenate([pair_of, bg_pair]).astype(np.float64),
        "size_bytes": np.concatenate([sizes, bg_bytes]),
        "rate_bps": np.concatenate([np.full(sizes.size, np.inf), bg_bytes * 8.0 / cfg.interval_s]),
    }
    volume = float(entry_bytes.sum())
    stats = {
        "flow_bytes_share": float(sizes.sum() / volume) if volume else 0.0,
        "overshoot_bytes": float(np.maximum(flow_bytes - entry_bytes, 0.0).sum()),
        "background_flows": float(bg_bytes.size),
    }
    return columns, stats


def tm_replay(
    topology: Topology, series: TrafficMatrixSeries, *, seed: int = 0, config: ReplayConfig | None = None
) -> Workload:
    cfg = config or ReplayConfig()
    cfg.check()
    first, stop = _steps(series, cfg)
    duration_s = cfg.duration_s if cfg.duration_s is not None else (stop - first) * cfg.interval_s
    src_idx, dst_idx = np.nonzero(~np.eye(len(series.nodes), dtype=bool))
    rate_bps = series.tm[first:stop][:, src_idx, dst_idx] * series.bps_factor  # [steps, pairs]
    columns, stats = _sample(rate_bps, cfg, np.random.default_rng(seed))
    keep = columns["start_s"] < duration_s
    pair = columns["pair"][keep].astype(np.int64)
    placement, note = _placement(topology, series.nodes)
    try:
        placed = attach(topology, placement)
    except TopologyError as exc:
        raise exc.at(element="tm-replay placement") from None
    flows = FlowTable.build(
        start_s=columns["start_s"][keep],
        src=src_idx[pair],
        dst=dst_idx[pair],
        size_bytes=columns["size_bytes"][keep],
        rate_bps=columns["rate_bps"][keep],
        endpoints=series.nodes,
    )
    store = build_store(placed, flows, tick_s=cfg.tick_s, ticks=tick_count(duration_s, cfg.tick_s))
    notes = [
        f"time compression: one matrix interval of {series.interval_s:g} s lasts {cfg.interval_s:g} simulated"
        f" s (x{series.interval_s / cfg.interval_s:g}); rates are kept, so volumes shrink by that factor",
        f"replayed matrix steps {first}..{stop - 1} back to back (gaps in the series are not replayed)",
        *([note] if note else []),
    ]
    return Workload(
        kind="tm-replay",
        topology=placed,
        flows=flows,
        telemetry=store,
        events=(),
        qos=QosPolicy(),
        seed=seed,
        duration_s=float(duration_s),
        notes=tuple(notes),
        stats={"matrix_steps": float(stop - first), **stats},
    )
