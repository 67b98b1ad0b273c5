"""One control loop, tick by tick, over any backend.

Each tick: let time pass on the backend (the emulator runs its events; a real backend waits and collects)
-> read routing information and the performance sample -> feed the predictor what happened and forecast
the next horizon -> refine (discrepancy against the forecast made a tick ago, corrective plan sized by the
fresh one, drift: retraining takes effect from the next forecast) -> scaffold -> apply. The engine holds no
policy of its own: it only calls the stages in order and records what they did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from netscaffold.backends.protocol import Backend
from netscaffold.engine.predictors import Predictor
from netscaffold.engine.tally import RunTally
from netscaffold.errors import PlanError
from netscaffold.model.config import Origin
from netscaffold.model.events import FlowRequest, RoutingInfo
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import OpKind, Plan
from netscaffold.model.predicted import PredictedGraph
from netscaffold.refine.refiner import Refiner
from netscaffold.scaffold.planner import Scaffolder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickRecord:
    time_s: float
    new_flows: int
    hits: int
    scaffold_ops: int
    refine_ops: int
    retrained: bool


class Engine:
    """Drives one backend with one strategy: ``predictor`` + ``scaffolder`` (both None: reactive)."""

    def __init__(
        self,
        backend: Backend,
        *,
        tick_s: float = 1.0,
        predictor: Predictor | None = None,
        scaffolder: Scaffolder | None = None,
        refiner: Refiner | None = None,
        measure_from_s: float = 0.0,
    ) -> None:
        if (predictor is None) != (scaffolder is None):
            raise ValueError("a predictor and a scaffolder go together (both None: reactive)")
        self.backend = backend
        self.tick_s = tick_s
        self.predictor = predictor
        self.scaffolder = scaffolder
        self.refiner = refiner
        self.tally = RunTally(measure_from_s=measure_from_s)
        self.observers: list[Callable[[PerformanceSample, list[FlowRequest]], None]] = []
        self._predicted: PredictedGraph | None = None
        self._suppressed: dict[tuple[str, str], float] = {}

    def run(self, until_s: float, on_tick: Callable[[TickRecord], None] | None = None) -> RunTally:
        while self.backend.clock.now() + 1e-9 < until_s:
            record = self.step(min(self.backend.clock.now() + self.tick_s, until_s))
            if on_tick is not None:
                on_tick(record)
        return self.tally

    def step(self, until_s: float) -> TickRecord:
        backend = self.backend
        backend.advance(until_s)
        now = backend.clock.now()
        info = backend.drain_routing_info()
        sample = backend.performance()
        requests = [i for i in info if isinstance(i, FlowRequest)]
        self.tally.record_flows(requests)
        self.tally.record_sample(sample)
        for observer in self.observers:
            observer(sample, requests)
        fresh: PredictedGraph | None = None
        if self.predictor is not None:
            self.predictor.observe(sample, requests)
            fresh = self.predictor.predict(now)
        refine_ops, retrained = self._refine(info, sample, now, fresh)
        if retrained and self.predictor is not None:
            self.predictor.retrain()  # from the next tick's forecast on
        self._predicted = fresh
        scaffold_ops = 0
        if fresh is not None and self.scaffolder is not None:
            scaffold_ops = self._scaffold(fresh, now)
        self.tally.record_config(backend.snapshot(), now)
        return TickRecord(
            time_s=now,
            new_flows=len(requests),
            hits=sum(1 for r in requests if r.scaffolded),
            scaffold_ops=scaffold_ops,
            refine_ops=refine_ops,
            retrained=retrained,
        )

    def _refine(
        self, info: list[RoutingInfo], sample: PerformanceSample, now: float, coming: PredictedGraph | None
    ) -> tuple[int, bool]:
        """Discrepancy against the forecast made a tick ago; reservations sized by the fresh one."""
        if self.refiner is None:
            return 0, False
        decision = self.refiner.refine(
            info, sample, self._predicted, self.backend.snapshot(), now, coming=coming
        )
        self._suppressed.update(decision.suppress_until)
        self._suppressed = {p: t for p, t in self._suppressed.items() if t > now}
        self._apply(decision.plan, now, source="refine")
        return len(decision.plan), decision.retrain

    def _scaffold(self, predicted: PredictedGraph, now: float) -> int:
        assert self.scaffolder is not None
        result = self.scaffolder.plan(predicted, self.backend.snapshot(), now, self._suppressed)
        self._apply(result.plan, now, source="scaffold")
        return len(result.plan)

    def _apply(self, plan: Plan, now: float, source: str) -> None:
        if plan.is_empty:
            return
        try:
            self.backend.apply(plan)
        except PlanError as exc:
            # The backend's state moved under the plan (an expiry, a reactive install): skip this tick's
            # plan, the next tick plans again from a fresh snapshot.
            log.warning("%s plan of %d ops refused at t=%.3f: %s", source, len(plan), now, exc)
            self.tally.refused_plans += 1
            return
        self.tally.record_plan(plan, now)
        for op in plan.ops:
            if op.kind is OpKind.UPDATE and op.item.origin is Origin.CONFIRMED:
                prev = op.previous
                if prev is not None and prev.origin is Origin.PREDICTED:
                    self.tally.record_confirmed(op.item.key)
