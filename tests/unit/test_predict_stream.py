"""Running state of the baselines: a stream pushed row by row forecasts exactly what ``predict_at`` does
at the same origin, without recomputing over the history."""

from __future__ import annotations

import numpy as np
import pytest

from netscaffold.errors import TrafficError
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.predict import PairSeries, make_forecaster
from netscaffold.predict.baselines import PointBaseline
from netscaffold.predict.registry import BASELINE_NAMES
from netscaffold.predict.stream import RowRing


def noisy_series(steps: int = 400, period: int = 24, seed: int = 3) -> PairSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    base = 10.0 + 6.0 * np.sin(2 * np.pi * t / period)
    tm = base[:, None, None] * rng.uniform(0.3, 2.0, (1, 3, 3)) * rng.lognormal(0.0, 0.3, (steps, 3, 3))
    tm[rng.random((steps, 3, 3)) < 0.1] = 0.0  # some idle steps, so activity states differ
    tm[:, np.arange(3), np.arange(3)] = 0.0
    return PairSeries.from_tm(TrafficMatrixSeries(tm, ("a", "b", "c"), 3600.0, "Mbit/s"))


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_stream_matches_predict_at_after_every_push(name: str) -> None:
    series = noisy_series()
    model = make_forecaster(name, horizon=5).fit(series.slice(0, 300))
    stream = model.stream(series.slice(0, 320))  # type: ignore[attr-defined]
    for origin in range(320, 340):
        expected = model.predict_at(series, [origin], 5)
        got = stream.forecast(5)
        assert got.origins.tolist() == [origin]
        np.testing.assert_allclose(got.quantiles, expected.quantiles, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(got.activity, expected.activity)
        stream.push(series.values[origin])


def test_ewma_stream_keeps_the_level_where_a_short_context_cannot() -> None:
    series = noisy_series()
    model = make_forecaster("ewma", horizon=3).fit(series.slice(0, 300))
    assert isinstance(model, PointBaseline)
    assert np.any(model.params_by_step < 1.0)  # a real smoothing was tuned on this noisy series
    stream = model.stream(series.slice(0, 350))
    from_one_step = model.predict(series.slice(349, 350), 3)  # the EWMA restarts on a 1-step context
    assert not np.allclose(stream.forecast(3).point, from_one_step.point)
    np.testing.assert_allclose(stream.forecast(3).point, model.predict_at(series, [350], 3).point)


def test_stream_refuses_bad_rows_and_short_history() -> None:
    series = noisy_series()
    model = make_forecaster("seasonal", horizon=2).fit(series.slice(0, 300))
    stream = model.stream(series.slice(0, 300))  # type: ignore[attr-defined]
    with pytest.raises(TrafficError, match="needs 6 pair values"):
        stream.push(np.ones(5))
    with pytest.raises(TrafficError, match="step 300: values must be finite"):
        stream.push(np.full(6, np.nan))
    short = model.stream(series.slice(0, 10))  # type: ignore[attr-defined]
    with pytest.raises(TrafficError, match="needs 24 steps"):
        short.forecast(2)
    other = make_forecaster("naive", horizon=2).fit(noisy_series().slice(0, 200))
    with pytest.raises(TrafficError, match="another node set"):
        other.stream(PairSeries.from_tm(TrafficMatrixSeries(np.ones((5, 2, 2)), ("x", "y"), 60.0, "Mbit/s")))  # type: ignore[attr-defined]


def test_row_ring_reads_back_in_order_and_refuses_what_it_dropped() -> None:
    ring = RowRing(3, 1)
    for v in range(5):
        ring.push(np.array([float(v)]))
    assert ring.ago(np.array([0, 1, 2])).ravel().tolist() == [4.0, 3.0, 2.0]
    assert ring.mean_last(2).tolist() == [3.5]
    with pytest.raises(TrafficError, match="3 steps back"):
        ring.ago(np.array([3]))
