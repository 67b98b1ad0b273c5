"""Batched LSTM inference: the all-pairs feature builder equals the per-sample one, and forecasts do not
depend on how much history precedes the windows or on how origins are chunked."""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt
import pytest
import torch

from netscaffold.errors import ConfigError, TrafficError, ValidationError
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.predict import PairSeries, make_forecaster
from netscaffold.predict import lstm as lstm_module
from netscaffold.predict.base import monotone
from netscaffold.predict.lstm import LstmForecaster
from netscaffold.predict.lstm_features import FeatureSpec, Scaler, sample_grid
from netscaffold.predict.lstm_net import PackedLstm, QuantileLstm, rational_tanh_array

TINY = {
    "window": 6, "hidden": 8, "epochs": 1, "windows_per_epoch": 256, "batch_size": 64, "device": "cpu",
    "seasonal_lag": 0,
}  # fmt: skip


def series_without_exog(steps: int = 160, seed: int = 1) -> PairSeries:
    rng = np.random.default_rng(seed)
    tm = rng.lognormal(2.0, 0.5, (steps, 3, 3))
    tm[:, np.arange(3), np.arange(3)] = 0.0
    return PairSeries.from_tm(TrafficMatrixSeries(tm, ("a", "b", "c"), 600.0, "Mbit/s"))


def series_with_exog(steps: int = 160, seed: int = 1) -> PairSeries:
    base = series_without_exog(steps, seed)
    rng = np.random.default_rng(seed + 100)
    exog = rng.normal(size=(steps, base.n_pairs, 2)).astype(np.float32)
    return PairSeries(
        base.values, base.pairs, base.nodes, base.interval_s, base.unit, base.time_of_day,
        base.segment_start, base.bps_factor, exog, ("x0", "x1"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("seasonal_lag", "pair_stats", "anchor_alpha"), [(0, True, 1.0), (20, True, 1.0), (12, False, 0.4)]
)
def test_all_pairs_builder_equals_per_sample_builder(
    seasonal_lag: int, pair_stats: bool, anchor_alpha: float
) -> None:
    series = series_with_exog()
    spec = FeatureSpec(window=6, horizon=3, seasonal_lag=seasonal_lag, pair_stats=pair_stats,
                       exog_names=series.exog_names, anchor_alpha=anchor_alpha)  # fmt: skip
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


# -- the packed CPU path (PackedLstm): what predict_at runs ------------------------------------------
PACKED_RTOL, PACKED_ATOL = 1e-5, 1e-6
"""Packed vs ``nn.LSTM`` forecasts: float rounding only (measured on the 10,000-pair benchmark model:
6.4e-7 on the hidden state, 5.8e-7 relative on quantiles above 1 in the series unit; the rational tanh is
within 5 ulp of tanh, tested below)."""


def series_with_idle_pairs(steps: int = 200, seed: int = 2) -> PairSeries:
    base = series_with_exog(steps, seed)
    values = base.values.copy()
    values[::3, 1] = 0.0  # a pair that goes idle: the model gets the on/off input
    values[: steps // 2, 4] = 0.0
    return PairSeries(
        values, base.pairs, base.nodes, base.interval_s, base.unit, base.time_of_day,
        base.segment_start, base.bps_factor, base.exog, base.exog_names,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("seasonal_lag", "activity_flag", "anchor_alpha"), [(0, False, 1.0), (20, True, 1.0), (0, True, 0.3)]
)
def test_time_major_builder_is_the_all_pairs_builder_transposed(
    seasonal_lag: int, activity_flag: bool, anchor_alpha: float
) -> None:
    series = series_with_idle_pairs()
    spec = FeatureSpec(window=6, horizon=3, seasonal_lag=seasonal_lag, exog_names=series.exog_names,
                       activity_flag=activity_flag, anchor_alpha=anchor_alpha)  # fmt: skip
    scaler = Scaler.fit(series.values[:100])
    scaled = scaler.standardise(series.values)
    origins = np.array([30, 31, 77, 150], dtype=np.int64)
    sequence, static, last = spec.build_all_pairs(series, scaled, scaler, origins)
    got = spec.build_all_pairs_time_major(series, scaled, scaler, origins)
    assert got[0].dtype == np.float32
    assert got[0].shape == (6, origins.size * series.n_pairs, len(spec.sequence_names()))
    np.testing.assert_allclose(got[0], sequence.transpose(1, 0, 2), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got[1], static)
    np.testing.assert_allclose(got[2], last, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layers", [1, 2])
def test_packed_lstm_equals_nn_lstm_in_any_chunking_and_thread_count(layers: int) -> None:
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(5, 16, num_layers=layers, batch_first=True)
    x = torch.randn(300, 12, 5) * 2.0
    with torch.inference_mode():
        expected = lstm(x)[0][:, -1]
    packed = PackedLstm(lstm)
    time_major = x.transpose(0, 1).contiguous()
    one = packed.run(time_major, chunk=300)
    np.testing.assert_allclose(one.numpy(), expected.numpy(), rtol=0, atol=2e-6)
    for chunk, threads in ((7, 1), (64, 2), (128, 3)):
        assert torch.equal(packed.run(time_major, chunk=chunk, threads=threads), one)  # same bytes
    block = packed.new_block(300)
    block.fill(np.nan)  # a dirty reused block: the state must start from zero anyway
    assert torch.equal(packed.last_hidden(time_major[:, :50], block), one[:50])


def test_packed_lstm_rejects_bad_input() -> None:
    packed = PackedLstm(torch.nn.LSTM(3, 4, batch_first=True))
    with pytest.raises(ValidationError, match=r"\[steps, sequences, 3\] inputs, got \[5, 2, 4\]"):
        packed.run(torch.zeros(5, 2, 4), chunk=8)
    with pytest.raises(ConfigError, match="chunk and threads must be >= 1"):
        packed.run(torch.zeros(5, 2, 3), chunk=0)
    with pytest.raises(ConfigError, match="unidirectional, batch-first"):
        PackedLstm(torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True))


@pytest.mark.parametrize("threads", [1, 2])
def test_predict_at_packed_path_equals_the_nn_lstm_path(
    threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    series = series_with_idle_pairs()
    options = {**TINY, "seasonal_lag": 20, "layers": 2, "threads": threads, "infer_threads": threads}
    model = make_forecaster("lstm", horizon=3, **options).fit(series.slice(0, 150))
    assert isinstance(model, LstmForecaster)
    assert model.spec.activity_flag
    origins = np.arange(150, 198)
    monkeypatch.setattr(lstm_module, "INFER_PAIR_CHUNK", 4)  # several packed chunks per origin chunk
    calls: list[int] = []
    last_hidden = PackedLstm.last_hidden

    def spy(
        self: PackedLstm, sequence: torch.Tensor, block: npt.NDArray[np.float32] | None = None
    ) -> torch.Tensor:
        calls.append(sequence.shape[1])
        return last_hidden(self, sequence, block)

    monkeypatch.setattr(PackedLstm, "last_hidden", spy)
    monkeypatch.setattr(model, "activity_mix", 0.0)  # the network's own activity, not the calibrated mix
    monkeypatch.setattr(model, "activity_mix_active", 0.0)
    fast = model.predict_at(series, origins, 3)
    straight = model._infer(series, origins, 3, packed=False)
    np.testing.assert_allclose(fast.quantiles, straight[0], rtol=PACKED_RTOL, atol=PACKED_ATOL)
    np.testing.assert_allclose(fast.activity, straight[1], rtol=PACKED_RTOL, atol=PACKED_ATOL)
    assert calls == [4] * (origins.size * series.n_pairs // 4)  # the packed path ran, in chunks of 4


def test_inference_workers_change_no_forecast(monkeypatch: pytest.MonkeyPatch) -> None:
    series = series_with_idle_pairs()
    model = make_forecaster("lstm", horizon=3, **TINY).fit(series.slice(0, 150))
    assert isinstance(model, LstmForecaster)
    monkeypatch.setattr(lstm_module, "INFER_PAIR_CHUNK", 4)  # several chunks for the workers to share
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert model.inference_workers == lstm_module.MAX_INFER_THREADS  # auto: one per core, at most 4
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert model.inference_workers == 1
    origins = np.arange(150, 198)
    forecasts = []
    for workers in (1, 2, 3):
        model.hyper["infer_threads"] = workers
        assert model.inference_workers == workers
        forecasts.append(model.predict_at(series, origins, 3))
    for other in forecasts[1:]:  # the same bytes, whatever the number of workers
        assert np.array_equal(other.quantiles, forecasts[0].quantiles)
        assert np.array_equal(other.activity, forecasts[0].activity)
    with pytest.raises(ConfigError, match="infer_threads must be >= 1 or -1"):
        make_forecaster("lstm", horizon=3, **{**TINY, "infer_threads": 0})


def test_packed_path_keeps_the_bad_input_errors() -> None:
    series = series_with_exog()
    model = make_forecaster("lstm", horizon=3, **TINY).fit(series.slice(0, 120))
    with pytest.raises(ValidationError, match="trained for horizon 3"):
        model.predict_at(series, [130], 4)
    with pytest.raises(TrafficError, match="needs 6"):
        model.predict_at(series, [3], 3)
    with pytest.raises(TrafficError, match=r"origins must be within 1\.\.160"):
        model.predict_at(series, [161], 3)
    with pytest.raises(ValidationError, match="horizon"):
        model.predict_at(series, [130], 0)
    no_exog = series_without_exog()
    with pytest.raises(TrafficError, match="trained with features"):
        model.predict_at(no_exog, [130], 3)


def test_rational_tanh_is_within_five_ulp_of_tanh() -> None:
    values = np.concatenate([np.linspace(-12.0, 12.0, 400_001), [0.0, 1e-30, -1e-30, 7.9, 8.0, 1e4, -1e4]])
    values = values.astype(np.float32)
    got = np.empty_like(values)
    rational_tanh_array(values, got)
    exact = np.tanh(values.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 5.0
    assert np.abs(got).max() <= 1.0
    np.testing.assert_array_equal(got[values == 0.0], 0.0)


def test_contiguous_decode_rounds_like_the_training_decode() -> None:
    torch.manual_seed(4)
    net = QuantileLstm(3, 2, hidden=8, layers=1, horizon=4, levels=(0.1, 0.5, 0.9, 0.99))
    hidden, static = torch.randn(64, 8) * 3.0, torch.randn(64, 2)
    with torch.inference_mode():
        for a, b in zip(net.decode(hidden, static, contiguous=True), net.decode(hidden, static), strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


def test_in_place_monotone_equals_base_monotone() -> None:
    quantiles = np.random.default_rng(5).normal(size=(3, 4, 7, 4)) * 10.0  # negatives and crossings
    expected = monotone(quantiles)
    got = lstm_module._monotone_in_place(quantiles.copy())
    np.testing.assert_array_equal(got, expected)


def test_anchor_is_an_exponentially_weighted_mean_of_the_window() -> None:
    last = FeatureSpec(window=5, horizon=1).anchor_weights()
    np.testing.assert_array_equal(last, [0, 0, 0, 0, 1])
    smooth = FeatureSpec(window=5, horizon=1, anchor_alpha=0.5).anchor_weights()
    np.testing.assert_allclose(smooth, np.array([1, 2, 4, 8, 16]) / 31, rtol=1e-6)
    series = series_with_idle_pairs()
    spec = FeatureSpec(window=5, horizon=1, anchor_alpha=0.5)
    scaler = Scaler.fit(series.values[:100])
    scaled = scaler.standardise(series.values)
    sequence, _, anchor = spec.build(series, scaled, scaler, np.array([40]), np.array([1]))
    window = scaled[35:40, 1]
    assert anchor[0] == pytest.approx(float(window @ smooth), rel=1e-6)
    np.testing.assert_allclose(sequence[0, :, 0], window - anchor[0], rtol=1e-5, atol=1e-6)


def test_inference_runs_numpy_blas_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before  # numpy's BLAS is loaded
    with lstm_module.single_threaded_blas():
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before  # restored
    # and predict_at runs its inference inside it
    seen: list[list[int]] = []
    infer = LstmForecaster._infer

    def spy(self: LstmForecaster, *args: object, **kwargs: object) -> object:
        seen.append(blas_threads())
        return infer(self, *args, **kwargs)  # type: ignore[arg-type]

    model = make_forecaster("lstm", horizon=3, **TINY).fit(series_without_exog())
    monkeypatch.setattr(LstmForecaster, "_infer", spy)
    model.predict_at(series_without_exog(), np.array([120]), 3)
    assert seen == [[1] * len(before)]
