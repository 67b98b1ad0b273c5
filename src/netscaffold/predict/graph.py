"""From a forecast to a :class:`~netscaffold.model.PredictedGraph`: per horizon step and pair the activity
probability and bandwidth quantiles (bit/s), the latency bound of the pair's QoS, and candidate paths with
probabilities from :class:`~netscaffold.paths.PathFinder` (the one place paths are computed).

Path probabilities: ECMP splits equally; k shortest paths get ``exp(-(c - c_min) / (temperature c_min))``
of their cost ``c`` inflated by link utilisation (the same inflation PathFinder ranks with). The path a
pair was last seen on gets ``recent_weight`` times its weight (and joins the candidates if missing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from netscaffold.errors import TopologyError, ValidationError
from netscaffold.model.predicted import PredictedGraph, any_activity
from netscaffold.model.qos import QosPolicy
from netscaffold.model.topology import LinkKey, Topology
from netscaffold.paths import Path, PathFinder
from netscaffold.predict.base import Forecast

Pair = tuple[str, str]


@dataclass(frozen=True)
class PathOptions:
    mode: str = "k_shortest"
    k: int = 3
    temperature: float = 0.25
    recent_weight: float = 3.0
    utilisation_alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("k_shortest", "ecmp"):
            raise ValidationError(f"path mode must be k_shortest or ecmp, got {self.mode!r}", field="mode")
        if self.k < 1 or self.temperature <= 0 or self.recent_weight < 1:
            raise ValidationError("need k >= 1, temperature > 0, recent_weight >= 1", field="path options")


def attachment(topology: Topology, ident: str) -> tuple[str, str]:
    """(node, application) of an endpoint id, or of a node id standing for itself (backbone maps)."""
    endpoint = topology.endpoints.get(ident)
    if endpoint is not None:
        return endpoint.host, endpoint.app_name
    if ident in topology.nodes:
        return ident, ident
    raise TopologyError("neither an endpoint nor a node of the topology", element=f"{ident!r}")


def build_predicted_graph(
    forecast: Forecast,
    pairs: Sequence[Pair],
    *,
    topology: Topology,
    finder: PathFinder,
    qos: QosPolicy,
    t0_s: float,
    step_s: float,
    bps_factor: float,
    origin_index: int = 0,
    options: PathOptions = PathOptions(),
    utilisation: Mapping[LinkKey, float] | None = None,
    recent_paths: Mapping[Pair, Path] | None = None,
) -> PredictedGraph:
    if forecast.quantiles.shape[2] != len(pairs):
        raise ValidationError(
            f"forecast has {forecast.quantiles.shape[2]} pairs, {len(pairs)} pair names given", field="pairs"
        )
    if not 0 <= origin_index < forecast.origins.size:
        raise ValidationError(f"origin_index {origin_index} out of range", field="origin_index")
    latency = np.full(len(pairs), np.nan)
    paths: list[Path] = []
    path_pair: list[int] = []
    path_prob: list[float] = []
    for index, (src, dst) in enumerate(pairs):
        (src_node, src_app), (dst_node, dst_app) = attachment(topology, src), attachment(topology, dst)
        bound = qos.lookup(src_app, dst_app).max_latency_s
        latency[index] = np.nan if bound is None else bound
        if src_node == dst_node:
            continue
        recent = (recent_paths or {}).get((src, dst))
        for path, prob in candidate_paths(
            finder, src_node, dst_node, options, utilisation=utilisation, recent=recent
        ):
            paths.append(path)
            path_pair.append(index)
            path_prob.append(prob)
    return PredictedGraph(
        t0_s=t0_s,
        step_s=step_s,
        pairs=tuple(pairs),
        quantile_levels=forecast.levels,
        activity=np.asarray(forecast.activity[origin_index], dtype=np.float64),
        bandwidth_bps=np.asarray(forecast.quantiles[origin_index] * bps_factor, dtype=np.float64),
        latency_bound_s=latency,
        paths=tuple(paths),
        path_pair=np.asarray(path_pair, dtype=np.int64),
        path_prob=np.asarray(path_prob, dtype=np.float64),
    )


def likely_pairs_graph(
    forecast: Forecast,
    pairs: Sequence[Pair],
    *,
    min_activity: float,
    topology: Topology,
    finder: PathFinder,
    qos: QosPolicy,
    t0_s: float,
    step_s: float,
) -> PredictedGraph | None:
    """The graph of the next horizon (the forecast's first origin, ECMP paths) over the pairs whose
    P(active within the horizon), as the scaffolder reads it (:meth:`PredictedGraph.any_activity`), reaches
    ``min_activity``; None when no pair does. What the engine and the service forecast each tick."""
    keep = np.flatnonzero(any_activity(forecast.activity[0]) >= min_activity)
    if keep.size == 0:
        return None
    sub = Forecast(
        origins=forecast.origins,
        levels=forecast.levels,
        quantiles=forecast.quantiles[:, :, keep, :],
        activity=forecast.activity[:, :, keep],
    )
    return build_predicted_graph(
        sub,
        [pairs[i] for i in keep.tolist()],
        topology=topology,
        finder=finder,
        qos=qos,
        t0_s=t0_s,
        step_s=step_s,
        bps_factor=1.0,
        options=PathOptions(mode="ecmp"),
    )


def candidate_paths(
    finder: PathFinder,
    src: str,
    dst: str,
    options: PathOptions,
    *,
    utilisation: Mapping[LinkKey, float] | None = None,
    recent: Path | None = None,
) -> list[tuple[Path, float]]:
    """Candidate node paths from ``src`` to ``dst`` with probabilities summing to 1."""
    if options.mode == "ecmp":
        found = finder.ecmp(src, dst)
        weights = [1.0] * len(found)
    else:
        found = finder.k_shortest(src, dst, options.k, utilisation, options.utilisation_alpha)
        costs = [effective_cost(finder.topology, p, utilisation, options.utilisation_alpha) for p in found]
        best = min(costs)
        weights = [math.exp(-(c - best) / (options.temperature * best)) for c in costs]
    if recent is not None and len(recent) >= 2 and recent[0] == src and recent[-1] == dst:
        if recent in found:
            weights[found.index(recent)] *= options.recent_weight
        elif _is_path(finder.topology, recent):
            found = [*found, recent]
            weights.append(max(weights) * options.recent_weight)
    total = sum(weights)
    return [(p, w / total) for p, w in zip(found, weights, strict=True)]


def effective_cost(
    topology: Topology, path: Path, utilisation: Mapping[LinkKey, float] | None, alpha: float
) -> float:
    """Link costs inflated by ``1 + alpha u / (1 - u)`` (u capped at 0.99), as PathFinder ranks them."""
    total = 0.0
    for link in topology.path_links(path):
        load = min(max((utilisation or {}).get(link.key, 0.0), 0.0), 0.99)
        total += link.cost * (1.0 + alpha * load / (1.0 - load))
    return total


def _is_path(topology: Topology, path: Path) -> bool:
    try:
        topology.path_links(path)
    except TopologyError:
        return False
    return len(set(path)) == len(path)
