from __future__ import annotations

import numpy as np
import pytest

from netscaffold.errors import TrafficError, ValidationError
from netscaffold.model import PredictedGraph, TrafficMatrixSeries
from netscaffold.model.flows import FlowTable


def _tm(steps: int = 3, n: int = 2) -> np.ndarray:
    return np.ones((steps, n, n))


def test_traffic_series_validation_names_the_position() -> None:
    tm = _tm()
    tm[1, 0, 1] = np.nan
    with pytest.raises(TrafficError, match=r"a->b: 1 missing or infinite value\(s\), first at step 1"):
        TrafficMatrixSeries(tm, ("a", "b"), 300.0)
    tm = _tm()
    tm[2, 1, 0] = -3
    with pytest.raises(TrafficError, match="b->a: 1 negative value"):
        TrafficMatrixSeries(tm, ("a", "b"), 300.0)
    with pytest.raises(TrafficError, match="not square"):
        TrafficMatrixSeries(np.ones((2, 2, 3)), ("a", "b"), 300.0)
    with pytest.raises(TrafficError, match="3 node names for 2 x 2"):
        TrafficMatrixSeries(_tm(), ("a", "b", "c"), 300.0)


def test_traffic_segments_split_at_gaps() -> None:
    stamps = np.array(
        ["2004-03-01T00:00", "2004-03-01T00:05", "2004-04-02T00:00", "2004-04-02T00:05"],
        dtype="datetime64[m]",
    )
    series = TrafficMatrixSeries(_tm(4), ("a", "b"), 300.0, timestamps=stamps)
    assert series.segments() == [(0, 2), (2, 4)]
    assert series.bps_factor == 1e6
    assert series.sparsity() == 0.0


def _graph(**overrides: object) -> PredictedGraph:
    args: dict[str, object] = {
        "t0_s": 0.0,
        "step_s": 1.0,
        "pairs": (("a", "b"), ("b", "a")),
        "quantile_levels": (0.5, 0.9),
        "activity": np.array([[0.5, 1.0], [0.2, 0.0]]),
        "bandwidth_bps": np.array([[[1, 2], [3, 4]], [[1, 1], [0, 0]]], dtype=float),
        "latency_bound_s": np.array([np.nan, 0.01]),
        "paths": (("a", "s", "b"), ("a", "t", "b")),
        "path_pair": np.array([0, 0]),
        "path_prob": np.array([0.25, 0.75]),
    }
    args.update(overrides)
    return PredictedGraph(**args)  # type: ignore[arg-type]


def test_predicted_graph_queries() -> None:
    graph = _graph()
    assert graph.horizon == 2
    assert graph.quantile_index(0.9) == 1
    assert graph.paths_of(0) == [(("a", "s", "b"), 0.25), (("a", "t", "b"), 0.75)]
    assert graph.paths_of(1) == []
    np.testing.assert_allclose(graph.any_activity(), [0.6, 1.0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"activity": np.array([[1.5, 0.0], [0, 0]])}, "probabilities"),
        ({"bandwidth_bps": np.array([[[2, 1], [3, 4]], [[1, 1], [0, 0]]], dtype=float)}, "cross"),
        ({"path_prob": np.array([0.5, 0.4])}, "pair a->b: path probabilities sum to 0.9"),
        ({"quantile_levels": (0.9, 0.5)}, "increasing"),
        ({"latency_bound_s": np.zeros(3)}, "latency_bound_s"),
    ],
)
def test_predicted_graph_validation(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _graph(**overrides)


def test_flow_table_sorts_and_validates() -> None:
    flows = FlowTable.build(
        start_s=[2.0, 1.0], src=[0, 1], dst=[1, 0], size_bytes=[10, 20], endpoints=("x", "y")
    )
    assert flows.start_s.tolist() == [1.0, 2.0]
    assert flows.size_bytes.tolist() == [20, 10]
    with pytest.raises(TrafficError, match="flow 1: field 'size_bytes': must be a positive number"):
        FlowTable.build(start_s=[0, 1], src=[0, 0], dst=[1, 1], size_bytes=[5, -1], endpoints=("x", "y"))
    with pytest.raises(TrafficError, match="index outside"):
        FlowTable.build(start_s=[0], src=[0], dst=[7], size_bytes=[5], endpoints=("x", "y"))
    with pytest.raises(TrafficError, match="two different endpoints"):
        FlowTable.build(start_s=[0], src=[1], dst=[1], size_bytes=[5], endpoints=("x", "y"))
