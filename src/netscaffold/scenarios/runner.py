"""`netscaffold run`: the same scenario, seed and workload under each strategy, side by side.

Order: ``reactive`` first (it also records, per tick, what every pair carried and when flows started: the
oracle's perfect foresight), then every ``scaffold:<forecaster>`` and the ``oracle``. Each strategy runs on
a fresh emulator over the same flows. Forecasters learn from the first ``train_fraction`` of the run (and
keep learning online); every figure covers only the rest.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netscaffold.backends.protocol import ManualClock
from netscaffold.engine.forecasting import ForecastPredictor
from netscaffold.engine.loop import Engine, TickRecord
from netscaffold.engine.predictors import OraclePredictor, PairIndex, Predictor
from netscaffold.engine.tally import RunTally
from netscaffold.model.config import NetworkConfig
from netscaffold.model.events import FlowRequest
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import ProvisionalBudget
from netscaffold.predict.lifecycle import ReplicaLifecycle
from netscaffold.predict.telemetry_input import endpoint_features
from netscaffold.refine.refiner import RefinePolicy, Refiner
from netscaffold.scaffold.planner import Scaffolder
from netscaffold.scaffold.policy import ClassRisk, ScaffoldPolicy
from netscaffold.scenarios.build import build_topology, build_workload
from netscaffold.scenarios.spec import Scenario
from netscaffold.telemetry.workload import Workload

if TYPE_CHECKING:
    from netscaffold.backends.linux.live import LiveLab
    from netscaffold.backends.linux.processes import ProcessSample

log = logging.getLogger(__name__)
ProgressFn = Callable[[str, float], None]


@dataclass
class StrategyRun:
    name: str
    tally: RunTally
    wall_s: float
    forecast_nmae: float | None = None
    retrains: int = 0
    fit_s: float = 0.0
    forecasts: dict[int, np.ndarray] = field(default_factory=dict)
    observed_bps: np.ndarray | None = None
    """``reactive`` only: per tick and pair, the bit/s carried (what forecasts are compared with)."""
    final_config: NetworkConfig = field(default_factory=NetworkConfig)
    """The backend's configuration when the run ended (what `netscaffold export --from RUN_DIR` reads)."""
    lab_processes: list[ProcessSample] = field(default_factory=list)
    """``backend: linux`` only: CPU and memory of the processes in the lab's namespaces, per tick."""


@dataclass
class Comparison:
    scenario: Scenario
    workload: Workload
    measure_from_s: float
    index: PairIndex
    runs: dict[str, StrategyRun] = field(default_factory=dict)

    @property
    def actual_bps(self) -> np.ndarray | None:
        """Per tick and pair, bit/s carried in the reactive run (what forecasts are compared with)."""
        reactive = self.runs.get("reactive")
        return reactive.observed_bps if reactive is not None else None

    def summary(self) -> dict[str, Any]:
        figures = {name: run.tally.figures() for name, run in self.runs.items()}
        reactive = figures.get("reactive")
        oracle = figures.get("oracle")
        out: dict[str, Any] = {}
        for name, fig in figures.items():
            saved: float | None = None
            if reactive is not None and oracle is not None:
                span = reactive.setup_s_total - oracle.setup_s_total
                saved = (reactive.setup_s_total - fig.setup_s_total) / span if span > 0 else 0.0
            run = self.runs[name]
            out[name] = {
                **fig.as_dict(),
                "saved_fraction": saved,
                "forecast_nmae": run.forecast_nmae,
                "retrains": run.retrains,
            }
        return out


class _Recorder:
    """Per tick: bit/s carried per pair and flows started per pair (the oracle's foresight)."""

    def __init__(self, index: PairIndex) -> None:
        self.index = index
        self.bps: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []

    def __call__(self, sample: PerformanceSample, requests: list[FlowRequest]) -> None:
        self.bps.append(self.index.bps_row(sample))
        self.starts.append(self.index.starts_row(requests))


def _pair_index(workload: Workload) -> PairIndex:
    endpoints = workload.flows.endpoints
    hosts = {ep: workload.topology.endpoints[ep].host for ep in endpoints}
    pairs = tuple((a, b) for a in endpoints for b in endpoints if a != b and hosts[a] != hosts[b])
    return PairIndex(pairs)


class ScenarioRunner:
    def __init__(self, scenario: Scenario, base_dir: Path | None = None) -> None:
        self.scenario = scenario
        self.topology = build_topology(scenario.topology, base_dir)
        self.workload = build_workload(scenario, self.topology, base_dir)
        self.index = _pair_index(self.workload)
        self.measure_from_s = scenario.train_fraction * scenario.duration_s
        self.train_ticks = round(self.measure_from_s / scenario.tick_s)
        self._labs = 0

    def run(self, progress: ProgressFn | None = None) -> Comparison:
        comparison = Comparison(self.scenario, self.workload, self.measure_from_s, self.index)
        recorder = self.new_recorder()
        for name in self.strategy_order():
            run = self.run_strategy(name, recorder, progress)
            if name in self.scenario.strategies:
                comparison.runs[name] = run
        return comparison

    def strategy_order(self) -> list[str]:
        """The scenario's strategies, ``reactive`` first (added when absent: the oracle needs it)."""
        names = list(self.scenario.strategies)
        if "reactive" in names:
            names.remove("reactive")
        names.insert(0, "reactive")  # the reference run (and the oracle's foresight) comes first
        return names

    def new_recorder(self) -> _Recorder:
        """What the ``reactive`` run fills and the ``oracle`` reads (one per comparison)."""
        return _Recorder(self.index)

    def run_strategy(self, name: str, recorder: _Recorder, progress: ProgressFn | None = None) -> StrategyRun:
        """One strategy on a fresh backend; ``reactive`` fills ``recorder``, ``oracle`` needs it filled.

        Strategies share nothing else, so they may run in separate processes (``netscaffold.distributed``).
        """
        started = time.perf_counter()
        predictor = self._predictor(name, recorder)
        engine = self._engine(predictor)
        if name == "reactive":
            engine.observers.append(recorder)
        try:
            tally = engine.run(self.scenario.duration_s, self._tick_progress(name, progress))
            final_config = engine.backend.snapshot()
        finally:
            if self.scenario.backend == "linux":
                engine.backend.close()  # a lab per strategy: torn down, also on failure
        run = StrategyRun(name, tally, time.perf_counter() - started, final_config=final_config)
        run.lab_processes = list(getattr(engine.backend, "process_samples", ()))
        if name == "reactive" and recorder.bps:
            run.observed_bps = np.vstack(recorder.bps)
        if isinstance(predictor, ForecastPredictor):
            run.forecasts = dict(predictor.point_history)
            run.forecast_nmae, run.retrains, run.fit_s = (
                predictor.nmae,
                predictor.retrains,
                predictor.fit_s,
            )
        return run

    def _tick_progress(self, name: str, progress: ProgressFn | None) -> Callable[[TickRecord], None] | None:
        if progress is None:
            return None
        duration = self.scenario.duration_s

        def report(record: TickRecord) -> None:
            progress(name, min(record.time_s / duration, 1.0))

        return report

    def _predictor(self, name: str, recorder: _Recorder) -> Predictor | None:
        sc = self.scenario
        if name == "reactive":
            return None
        if name == "oracle":
            return OraclePredictor(
                self.index,
                np.vstack(recorder.bps),
                np.vstack(recorder.starts),
                tick_s=sc.tick_s,
                horizon=sc.horizon,
            )
        model = name.partition(":")[2]
        options: dict[str, Any] = dict(sc.lstm) if model == "lstm" else {}
        options.setdefault("levels", self._forecast_levels())
        features = endpoint_features(self.workload.telemetry.apps()) if model == "lstm" else None
        return ForecastPredictor(
            model,
            self.index,
            self.workload.topology,
            self.workload.qos,
            tick_s=sc.tick_s,
            horizon=sc.horizon,
            train_ticks=self.train_ticks,
            seed=sc.seed,
            model_options=options,
            min_activity=self._min_probability(),
            endpoint_features=features,
            endpoint_names=self.workload.telemetry.endpoints,
            lifecycle=self._lifecycle(),
        )

    def _lifecycle(self) -> ReplicaLifecycle | None:
        """Each forecasting run reads the workload's orchestrator events afresh (None without any)."""
        spec = self.scenario.lifecycle
        if not (spec.enabled and self.workload.events):
            return None
        return ReplicaLifecycle(
            self.workload.topology, self.index.pairs, self.workload.events, settle_s=spec.settle_s
        )

    def _min_probability(self) -> float:
        """Pairs below the lowest ``min_probability`` of any class cannot be scaffolded: the predicted
        graph leaves them out."""
        return min(r.min_probability for r in self.scenario.all_risks())

    def _forecast_levels(self) -> tuple[float, ...]:
        """The forecasters' quantile levels: the defaults plus every level the risk settings reserve at,
        so that a reservation takes the quantile asked for, not the nearest default one."""
        from netscaffold.predict.base import DEFAULT_LEVELS

        wanted = {r.reserve_quantile for r in self.scenario.all_risks()}
        return tuple(sorted(set(DEFAULT_LEVELS) | wanted))

    def _live_lab(self, budget: ProvisionalBudget) -> LiveLab:
        """A fresh lab with the workload's flows played as real packets (``backend: linux``)."""
        from netscaffold.backends.linux.live import LiveLab
        from netscaffold.backends.sim.costs import PROFILES

        sc = self.scenario
        self._labs += 1
        return LiveLab(
            self.workload.topology,
            self.workload.flows,
            lab=f"run{os.getpid() % 10000}x{self._labs}",
            duration_s=sc.duration_s,
            tick_s=sc.tick_s,
            idle_s=sc.idle_timeout_s,
            budget=budget,
            profile=PROFILES[sc.profile],
        )

    def _engine(self, predictor: Predictor | None) -> Engine:
        from netscaffold.backends.sim import SimBackend
        from netscaffold.predict.drift import PageHinkley

        sc = self.scenario
        budget = ProvisionalBudget(sc.budget.rule_slots_per_device, sc.budget.link_fraction)
        backend: SimBackend | LiveLab
        if sc.backend == "linux":
            backend = self._live_lab(budget)
        else:
            backend = SimBackend(
                self.workload.topology,
                self.workload.flows,
                profile=sc.profile,
                idle_timeout_s=sc.idle_timeout_s,
                qos=self.workload.qos,
                tick_s=sc.tick_s,
                seed=sc.seed,
                clock=ManualClock(),
                budget=budget,
            )
        if predictor is None:
            return Engine(backend, tick_s=sc.tick_s, measure_from_s=self.measure_from_s)
        policy = ScaffoldPolicy(
            budget=budget,
            default_risk=ClassRisk(sc.risk.min_probability, sc.risk.reserve_quantile),
            risk_per_class={
                k: ClassRisk(v.min_probability, v.reserve_quantile) for k, v in sc.risk_per_class.items()
            },
        )
        refine_policy = RefinePolicy(
            missed_threshold=sc.refine.missed_threshold,
            bandwidth_threshold=sc.refine.bandwidth_threshold,
            confirm_idle_s=sc.refine.confirm_idle_s,
            unused_ticks=sc.refine.unused_ticks,
            keep_probability=self._min_probability()
            if sc.refine.keep_probability is None
            else sc.refine.keep_probability,
            reserve_quantile=sc.risk.reserve_quantile,
        )
        drift = PageHinkley() if isinstance(predictor, ForecastPredictor) else None
        return Engine(
            backend,
            tick_s=sc.tick_s,
            predictor=predictor,
            scaffolder=Scaffolder(
                self.workload.topology, self.workload.qos, policy, cost_model=backend.profile
            ),
            refiner=Refiner(self.workload.topology, refine_policy, drift),
            measure_from_s=self.measure_from_s,
        )
