"""Replica lifecycle from orchestrator events: forecasts for endpoints that have no history yet.

A forecaster knows a pair only from its past, so the pairs of a replica that an autoscaler or a rolling
deployment has just started look idle to it, and in the measured default scenario those first calls were
nearly all of the setup delay left after scaffolding. Orchestrators announce these changes ahead of time
(Kubernetes schedules a pod seconds before it is Ready): ``scale-out`` names the new endpoint and when it is
ready, ``replace`` the new and the old one (which stops when the new one is ready), ``failure`` and
``recovery`` an endpoint going down and coming back, ``scale-in`` an endpoint removed. Other kinds are
ignored.

:class:`ReplicaLifecycle` reads those events as they become known (an event counts from its ``time_s``) and
adjusts a forecast's first origin before the predicted graph is built:

- a *young* endpoint (announced and not ready yet, or ready or recovered less than ``settle_s`` ago, or
  not ``settle_s`` old when the forecaster was fitted: it has not learned it) takes its siblings' forecast:
  every pair it is part of gets, step by step, the mean over the same pair with the young endpoint replaced
  by each replica of the same application that serves now and has carried traffic (a load balancer spreads
  calls evenly over the replicas; an older young replica lends its adjusted forecast), where that is
  higher than the pair's own forecast; steps that end before the endpoint is ready get activity 0;
- a *gone* endpoint (failed and not recovered, scaled in, or replaced) gets activity 0 on the steps that
  start after it stopped.

The application of an endpoint is the topology's ``app_name``. Without events (a matrix replay, a recorded
trace) nothing changes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from netscaffold.errors import ValidationError
from netscaffold.model.topology import Topology
from netscaffold.predict.base import Forecast
from netscaffold.telemetry.workload import WorkloadEvent

Pair = tuple[str, str]
DEFAULT_SETTLE_S = 30.0


@dataclass
class _Endpoint:
    ready_s: float = -math.inf
    """When it started serving (or last recovered): young until ``settle_s`` after."""
    stopped_s: float = math.inf
    """When it stopped serving (failure, scale-in, replaced), until a recovery."""


@dataclass
class ReplicaLifecycle:
    """Young and gone endpoints from orchestrator events, and the forecast adjustment they call for."""

    topology: Topology
    pairs: Sequence[Pair]
    events: Sequence[WorkloadEvent]
    settle_s: float = DEFAULT_SETTLE_S
    _seen: int = field(default=0, init=False)
    _state: dict[str, _Endpoint] = field(default_factory=dict, init=False)
    _as_src: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list), init=False)
    _as_dst: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list), init=False)
    _position: dict[Pair, int] = field(default_factory=dict, init=False)
    _replicas: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list), init=False)
    _carried: set[str] = field(default_factory=set, init=False)
    _src: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), init=False)
    _dst: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), init=False)
    _names: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.settle_s) and self.settle_s >= 0):
            raise ValidationError(f"must be a finite number >= 0, got {self.settle_s!r}", field="settle_s")
        self.events = sorted(self.events, key=lambda e: e.time_s)
        for i, (src, dst) in enumerate(self.pairs):
            self._position[(src, dst)] = i
            self._as_src[src].append(i)
            self._as_dst[dst].append(i)
        self._names = list(dict.fromkeys(p for pair in self.pairs for p in pair))
        number = {name: k for k, name in enumerate(self._names)}
        self._src = np.array([number[src] for src, _ in self.pairs], dtype=np.int64)
        self._dst = np.array([number[dst] for _, dst in self.pairs], dtype=np.int64)
        for name in self._names:
            self._replicas[self._app(name)].append(name)

    def _app(self, endpoint: str) -> str:
        found = self.topology.endpoints.get(endpoint)
        return found.app_name if found is not None else endpoint

    def observe(self, row: np.ndarray) -> None:
        """One tick's carried traffic per pair: the endpoints seen carrying traffic become siblings to
        pool from (a replica not yet announced has no history to lend)."""
        active = np.flatnonzero(row > 0)
        if active.size:
            for k in np.union1d(self._src[active], self._dst[active]).tolist():
                self._carried.add(self._names[k])

    # -- events ------------------------------------------------------------------------------------
    def catch_up(self, now_s: float) -> None:
        """Read every event known by ``now_s`` (each once)."""
        while self._seen < len(self.events) and self.events[self._seen].time_s <= now_s:
            self._read(self.events[self._seen])
            self._seen += 1

    def _read(self, event: WorkloadEvent) -> None:
        detail = event.detail
        if event.kind == "scale-out" and "endpoint" in detail:
            self._start(str(detail["endpoint"]), float(detail.get("ready_s", event.time_s)))
        elif event.kind == "replace" and "new" in detail:
            ready = float(detail.get("ready_s", event.time_s))
            self._start(str(detail["new"]), ready)
            if "old" in detail:
                self._endpoint(str(detail["old"])).stopped_s = ready
        elif event.kind == "failure":
            self._endpoint(event.subject).stopped_s = event.time_s
        elif event.kind == "recovery":
            self._start(event.subject, event.time_s)
        elif event.kind == "scale-in" and "endpoint" in detail:
            self._endpoint(str(detail["endpoint"])).stopped_s = event.time_s

    def _endpoint(self, name: str) -> _Endpoint:
        return self._state.setdefault(name, _Endpoint())

    def _start(self, name: str, ready_s: float) -> None:
        state = self._endpoint(name)
        state.ready_s, state.stopped_s = ready_s, math.inf

    # -- the adjustment ----------------------------------------------------------------------------
    def young(self, now_s: float, learned_s: float = math.inf) -> list[str]:
        """Endpoints serving (or announced) whose first ``settle_s`` of service are not both past and in
        the forecaster's fit data (``learned_s``: where that data ends)."""
        return [
            n
            for n, s in self._state.items()
            if s.stopped_s > now_s and min(now_s, learned_s) < s.ready_s + self.settle_s
        ]

    def new_pairs(self, now_s: float) -> list[Pair]:
        """The pairs young replicas will form that are not among ``pairs`` yet: every pair of a sibling
        with the sibling replaced by the young replica. A caller that tracks only the pairs that have talked
        (the service) adds these, with an empty history, before forecasting and :meth:`adjust`."""
        self.catch_up(now_s)
        known = set(self._position)
        out: dict[Pair, None] = {}
        for name in self.young(now_s):
            siblings = set(self._established(name, now_s))
            for src, dst in self.pairs:
                for pair in (
                    (name, dst) if src in siblings else None,
                    (src, name) if dst in siblings else None,
                ):
                    if pair is not None and pair[0] != pair[1] and pair not in known:
                        out[pair] = None
        return list(out)

    def gone(self, now_s: float, until_s: float) -> list[str]:
        """Endpoints stopped before ``until_s`` (and not back by ``now_s``)."""
        return [n for n, s in self._state.items() if s.stopped_s < until_s and s.ready_s <= now_s]

    def adjust(
        self,
        forecast: Forecast,
        now_s: float,
        step_s: float,
        learned_s: float = math.inf,
        known_s: float | None = None,
    ) -> Forecast:
        """The forecast (its first origin, whose steps start at ``now_s``) adjusted for the endpoints young
        or gone, with the events known by ``known_s`` (default ``now_s``; a live service forecasting from
        telemetry that lags the wall clock knows events up to the wall clock)."""
        self.catch_up(now_s if known_s is None else max(now_s, known_s))
        horizon = forecast.activity.shape[1]
        ends = now_s + step_s * np.arange(1, horizon + 1)
        young = self.young(now_s, learned_s)
        gone = self.gone(now_s, float(ends[-1]))
        if not young and not gone:
            return forecast
        activity = forecast.activity.copy()
        quantiles = forecast.quantiles.copy()
        siblings = {name: self._established(name, now_s) for name in young}
        # oldest first: a young replica that is already serving lends its (adjusted) forecast to younger ones
        for name in sorted(young, key=lambda n: self._state[n].ready_s):
            before = ends <= self._state[name].ready_s
            for pair_index, sibling_rows in self._sibling_rows(name, siblings):
                if sibling_rows:
                    act = activity[0][:, sibling_rows].mean(axis=1)
                    q = quantiles[0][:, sibling_rows, :].mean(axis=1)
                    activity[0, :, pair_index] = np.maximum(activity[0, :, pair_index], act)
                    quantiles[0, :, pair_index, :] = np.maximum(quantiles[0, :, pair_index, :], q)
                activity[0, before, pair_index] = 0.0
        for name in gone:
            after = ends - step_s >= self._state[name].stopped_s
            rows = self._rows_of(name)
            first = activity[0]
            first[np.ix_(np.flatnonzero(after), np.asarray(rows, dtype=np.int64))] = 0.0
        return Forecast(
            origins=forecast.origins, levels=forecast.levels, quantiles=quantiles, activity=activity
        )

    def _established(self, name: str, now_s: float) -> list[str]:
        """The other replicas of ``name``'s application that serve now and have carried traffic."""
        return [
            r
            for r in self._replicas[self._app(name)]
            if r != name and r in self._carried and self._serving(r, now_s)
        ]

    def _serving(self, name: str, now_s: float) -> bool:
        state = self._state.get(name)
        return state is None or state.ready_s <= now_s < state.stopped_s

    def _rows_of(self, name: str) -> list[int]:
        """The rows of the pairs ``name`` is part of."""
        return self._as_src.get(name, []) + self._as_dst.get(name, [])

    def _sibling_rows(self, name: str, siblings: dict[str, list[str]]) -> Iterable[tuple[int, list[int]]]:
        """Per pair of ``name``: the rows of the same pair with each young end (a key of ``siblings``)
        replaced by each of its siblings."""
        for i in self._rows_of(name):
            src, dst = self.pairs[i]
            srcs = siblings.get(src, [src])
            dsts = siblings.get(dst, [dst])
            rows = [self._position[(a, b)] for a in srcs for b in dsts if (a, b) in self._position]
            yield i, rows
