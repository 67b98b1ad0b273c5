"""Batched LSTM inference: the all-pairs feature builder equals the per-sample one, and forecasts do not
depend on how much history precedes the windows or on how origins are chunked."""

from __future__ import annotations

import numpy as np
import pytest

from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.predict import PairSeries, make_forecaster
from netscaffold.predict import lstm as lstm_module
from netscaffold.predict.lstm import LstmForecaster
from netscaffold.predict.lstm_features import FeatureSpec, Scaler, sample_grid

TINY = {
    "window": 6, "hidden": 8, "epochs": 1, "windows_per_epoch": 256, "batch_size": 64, "device": "cpu",
    "seasonal_lag": 0,
}  # fmt: skip


def series_with_exog(steps: int = 160, seed: int = 1) -> PairSeries:
    rng = np.random.default_rng(seed)
    tm = rng.lognormal(2.0, 0.5, (steps, 3, 3))
    tm[:, np.arange(3), np.arange(3)] = 0.0
    base = PairSeries.from_tm(TrafficMatrixSeries(tm, ("a", "b", "c"), 600.0, "Mbit/s"))
    exog = rng.normal(size=(steps, base.n_pairs, 2)).astype(np.float32)
    return PairSeries(
        base.values, base.pairs, base.nodes, base.interval_s, base.unit, base.time_of_day,
        base.segment_start, base.bps_factor, exog, ("x0", "x1"),
    )  # fmt: skip


@pytest.mark.parametrize(("seasonal_lag", "pair_stats"), [(0, True), (20, True), (12, False)])
def test_all_pairs_builder_equals_per_sample_builder(seasonal_lag: int, pair_stats: bool) -> None:
    series = series_with_exog()
    spec = FeatureSpec(window=6, horizon=3, seasonal_lag=seasonal_lag, pair_stats=pair_stats,
                       exog_names=series.exog_names)  # fmt: skip
    scaler = Scaler.fit(series.values[:100])
    scaled = scaler.standardise(series.values)
    origins = np.array([30, 31, 77, 150], dtype=np.int64)
    orig_idx, pair_idx = sample_grid(origins, series.n_pairs)
    expected = spec.build(series, scaled, scaler, orig_idx, pair_idx)
    got = spec.build_all_pairs(series, scaled, scaler, origins)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_forecast_ignores_older_history_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    series = series_with_exog()
    model = make_forecaster("lstm", horizon=3, **TINY).fit(series.slice(0, 120))
    assert isinstance(model, LstmForecaster)
    origins = np.arange(120, 158)
    whole = model.predict_at(series, origins, 3)
    late = model.predict_at(series.slice(100, series.steps), origins - 100, 3)
    np.testing.assert_allclose(late.quantiles, whole.quantiles, rtol=1e-5)
    monkeypatch.setattr(lstm_module, "INFER_CHUNK", 7)  # 6 pairs: one origin per forward pass
    chunked = model.predict_at(series, origins, 3)
    np.testing.assert_allclose(chunked.quantiles, whole.quantiles, rtol=1e-5)
    np.testing.assert_allclose(chunked.activity, whole.activity, rtol=1e-5)
    one = model.predict(series.slice(0, 140), 2)
    np.testing.assert_allclose(one.quantiles[0], whole.quantiles[20, :2], rtol=1e-5)
