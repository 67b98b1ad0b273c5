"""ReplicaLifecycle: orchestrator events adjust a forecast for young and gone replicas, never early."""

from __future__ import annotations

import numpy as np
import pytest

from netscaffold.errors import ValidationError
from netscaffold.model import Endpoint, Link, Node, NodeKind, Topology
from netscaffold.predict.base import Forecast
from netscaffold.predict.lifecycle import ReplicaLifecycle
from netscaffold.telemetry.workload import WorkloadEvent

HORIZON = 5
LEVELS = (0.5, 0.9)


def _topology() -> Topology:
    """One switch, four hosts: ``web-0`` calls the ``api`` replicas ``api-0``, ``api-1`` and ``api-2``."""
    hosts = ["h0", "h1", "h2", "h3"]
    nodes = [Node(h, NodeKind.HOST) for h in hosts] + [Node("sw", NodeKind.SWITCH)]
    links = [link for h in hosts for link in (Link(h, "sw", 1e9, 1e-4), Link("sw", h, 1e9, 1e-4))]
    names = [("web-0", "web"), ("api-0", "api"), ("api-1", "api"), ("api-2", "api")]
    endpoints = [
        Endpoint(name, hosts[i], f"198.18.0.{i + 1}", app=app) for i, (name, app) in enumerate(names)
    ]
    return Topology.build(nodes, links, endpoints, name="lifecycle")


PAIRS = (
    ("web-0", "api-0"),
    ("web-0", "api-1"),
    ("web-0", "api-2"),
    ("api-0", "web-0"),
    ("api-1", "web-0"),
    ("api-2", "web-0"),
)


def _forecast(activity: list[float], bandwidth: list[float]) -> Forecast:
    """The same per-pair activity and median on every step (q90 = twice the median)."""
    act = np.tile(np.asarray(activity)[None, None, :], (1, HORIZON, 1))
    med = np.tile(np.asarray(bandwidth)[None, None, :], (1, HORIZON, 1))
    return Forecast(
        origins=np.zeros(1, dtype=np.int64),
        levels=LEVELS,
        quantiles=np.stack([med, 2 * med], axis=-1),
        activity=act,
    )


def _lifecycle(events: list[WorkloadEvent], settle_s: float = 30.0) -> ReplicaLifecycle:
    life = ReplicaLifecycle(_topology(), PAIRS, events, settle_s=settle_s)
    row = np.array([1e6, 1e6, 0.0, 1e5, 1e5, 0.0])  # api-0 and api-1 have served, api-2 never has
    life.observe(row)
    return life


def _scale_out(at: float, ready: float) -> WorkloadEvent:
    return WorkloadEvent(at, "scale-out", "api", {"endpoint": "api-2", "host": "h3", "ready_s": ready})


BASE = _forecast([0.8, 0.4, 0.01, 0.6, 0.2, 0.01], [1e6, 3e6, 0.0, 1e5, 3e5, 0.0])


def test_a_replica_announced_takes_its_siblings_mean_from_the_step_it_is_ready() -> None:
    life = _lifecycle([_scale_out(10.0, 18.0)])
    out = life.adjust(BASE, now_s=15.0, step_s=1.0)
    # steps end at 16..20 s: the replica is ready at 18 s, so the steps ending at 19 and 20 s carry it
    np.testing.assert_allclose(out.activity[0, :, 2], [0.0, 0.0, 0.0, 0.6, 0.6])
    np.testing.assert_allclose(out.activity[0, :, 5], [0.0, 0.0, 0.0, 0.4, 0.4])
    np.testing.assert_allclose(out.quantiles[0, 4, 2], [2e6, 4e6])  # the siblings' mean quantiles
    np.testing.assert_array_equal(out.activity[0, :, :2], BASE.activity[0, :, :2])  # siblings untouched
    np.testing.assert_array_equal(BASE.activity[0, :, 2], 0.01)  # the input is not modified


def test_nothing_changes_before_the_event_is_known() -> None:
    life = _lifecycle([_scale_out(10.0, 18.0)])
    assert life.adjust(BASE, now_s=9.0, step_s=1.0) is BASE


def test_a_young_pair_never_loses_probability_and_settles_after_settle_s() -> None:
    life = _lifecycle([_scale_out(10.0, 18.0)], settle_s=30.0)
    busy = _forecast([0.8, 0.4, 0.9, 0.6, 0.2, 0.9], [1e6, 3e6, 5e6, 1e5, 3e5, 5e5])
    out = life.adjust(busy, now_s=25.0, step_s=1.0)
    np.testing.assert_allclose(out.activity[0, :, 2], 0.9)  # its own forecast is higher: kept
    assert life.young(47.0) == ["api-2"]
    assert life.young(48.0) == []
    # a forecaster fitted before the replica had settled has not learned it: still young
    assert life.young(60.0, learned_s=40.0) == ["api-2"]
    assert life.young(60.0, learned_s=50.0) == []


def test_a_failed_replica_is_silent_until_it_recovers_then_young_again() -> None:
    events = [
        WorkloadEvent(20.0, "failure", "api-1", {"host": "h2"}),
        WorkloadEvent(40.0, "recovery", "api-1", {"host": "h2"}),
    ]
    life = _lifecycle(events)
    down = life.adjust(BASE, now_s=25.0, step_s=1.0)
    np.testing.assert_array_equal(down.activity[0, :, [1, 4]], 0.0)
    np.testing.assert_array_equal(down.activity[0, :, 0], 0.8)
    back = life.adjust(BASE, now_s=41.0, step_s=1.0)
    # its own forecast (0.4) is below api-0's (0.8): the recovered replica takes its sibling's
    np.testing.assert_allclose(back.activity[0, :, 1], 0.8)


def test_a_replaced_replica_stops_when_its_successor_is_ready() -> None:
    detail: dict[str, str | float] = {"old": "api-0", "new": "api-2", "host": "h3", "ready_s": 18.0}
    life = _lifecycle([WorkloadEvent(10.0, "replace", "api", detail)])
    out = life.adjust(BASE, now_s=15.0, step_s=1.0)
    # steps start at 15..19 s: api-0 serves the first three, none after 18 s
    np.testing.assert_allclose(out.activity[0, :, 0], [0.8, 0.8, 0.8, 0.0, 0.0])
    # api-2 pools from both (api-0 still serves now: its load is what moves), from the step ending after 18 s
    np.testing.assert_allclose(out.activity[0, :, 2], [0.0, 0.0, 0.0, 0.6, 0.6])
    later = life.adjust(BASE, now_s=19.0, step_s=1.0)
    np.testing.assert_allclose(later.activity[0, :, 2], 0.4)  # api-0 has stopped: api-1 alone


def test_a_replica_that_never_carried_traffic_lends_nothing() -> None:
    life = ReplicaLifecycle(_topology(), PAIRS, [_scale_out(10.0, 12.0)])
    out = life.adjust(BASE, now_s=15.0, step_s=1.0)  # nothing observed: no sibling to pool from
    np.testing.assert_allclose(out.activity[0, :, 2], 0.01)


def test_unknown_event_kinds_are_ignored_and_a_bad_settle_time_is_refused() -> None:
    life = _lifecycle([WorkloadEvent(1.0, "burst", "load", {"factor": 2.0})])
    assert life.adjust(BASE, now_s=5.0, step_s=1.0) is BASE
    with pytest.raises(ValidationError, match="settle_s"):
        ReplicaLifecycle(_topology(), PAIRS, [], settle_s=-1.0)


def test_new_pairs_name_what_a_young_replica_will_form() -> None:
    pairs = (("web-0", "api-0"), ("api-0", "web-0"), ("web-0", "api-1"))
    life = ReplicaLifecycle(_topology(), pairs, [_scale_out(10.0, 18.0)])
    life.observe(np.array([1e6, 1e5, 0.0]))  # api-1 has not carried traffic: it lends nothing
    assert life.new_pairs(9.0) == []  # not announced yet
    assert life.new_pairs(12.0) == [("web-0", "api-2"), ("api-2", "web-0")]


def test_the_run_predictor_lifts_a_replica_the_forecaster_was_fitted_before() -> None:
    """Wiring in the engine: a replica started after the forecaster's fit stays young (takes its siblings'
    forecast) even past ``settle_s``, since the fitted model never learned it."""
    from netscaffold.engine.forecasting import ForecastPredictor
    from netscaffold.engine.predictors import PairIndex
    from netscaffold.model.metrics import PerformanceSample
    from netscaffold.model.qos import QosPolicy

    topology = _topology()
    index = PairIndex(PAIRS)
    life = ReplicaLifecycle(topology, PAIRS, [_scale_out(12.0, 14.0)], settle_s=30.0)
    predictor = ForecastPredictor(
        "naive", index, topology, QosPolicy(), tick_s=1.0, horizon=2, train_ticks=10, min_activity=0.5,
        lifecycle=life,
    )  # fmt: skip
    busy = {
        ("web-0", "api-0"): 1e5,
        ("api-0", "web-0"): 1e4,
        ("web-0", "api-1"): 1e5,
        ("api-1", "web-0"): 1e4,
    }
    keys = tuple(busy)
    lifted: dict[int, bool] = {}
    for tick in range(1, 61):
        sample = PerformanceSample(
            float(tick), 1.0, (), np.zeros(0), np.zeros(0), np.zeros(0), keys, np.array(list(busy.values()))
        )
        predictor.observe(sample, [])
        graph = predictor.predict(float(tick))
        if graph is not None:
            lifted[tick] = ("web-0", "api-2") in graph.pairs
    assert not lifted[11]  # not announced yet
    assert lifted[13]  # announced at 12, ready at 14: inside the 2-step horizon
    assert lifted[60]  # 46 s after it was ready, but the naive model was fitted at 10 s
