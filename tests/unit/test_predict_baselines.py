"""Baselines, the shared interface, calibration and checkpoints of baselines (tiny synthetic series)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netscaffold.errors import CheckpointError, TrafficError, ValidationError
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.predict import PairSeries, load_checkpoint, make_forecaster
from netscaffold.predict.baselines import detect_period, ewma_series
from netscaffold.predict.registry import BASELINE_NAMES


def diurnal_tm(steps: int = 600, nodes: int = 3, period: int = 48, seed: int = 0) -> TrafficMatrixSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    base = 10.0 + 5.0 * np.sin(2 * np.pi * t / period)
    tm = base[:, None, None] * rng.uniform(0.5, 2.0, (1, nodes, nodes)) + rng.normal(
        0, 0.3, (steps, nodes, nodes)
    )
    tm = np.maximum(tm, 0.0)
    tm[:, np.arange(nodes), np.arange(nodes)] = 0.0
    names = tuple(f"n{i}" for i in range(nodes))
    return TrafficMatrixSeries(tm, names, 86_400.0 / period, "Mbit/s")


@pytest.fixture
def series() -> PairSeries:
    return PairSeries.from_tm(diurnal_tm())


def test_pair_series_drops_the_diagonal_and_keeps_order(series: PairSeries) -> None:
    assert series.n_pairs == 6
    assert series.pairs[0] == ("n0", "n1")
    assert series.pairs[-1] == ("n2", "n1")
    assert series.bps_factor == 1e6


def test_origins_never_span_a_gap() -> None:
    tm = diurnal_tm(steps=40, period=10)
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(40) * np.timedelta64(144, "m")
    stamps[20:] += np.timedelta64(7, "D")
    gapped = TrafficMatrixSeries(tm.tm, tm.nodes, 8640.0, "Mbit/s", stamps)
    series = PairSeries.from_tm(gapped)
    origins = series.origins(context=5, horizon=3)
    for o in origins:
        assert series.segment_start[o - 5] == series.segment_start[o + 2]
    assert 20 not in origins.tolist()
    assert 25 in origins.tolist()
    assert series.first_segment().steps == 20


def test_time_of_day_from_timestamps_or_interval() -> None:
    tm = diurnal_tm(steps=4, period=4)
    stamps = np.array(["2024-01-01T06:00", "2024-01-01T12:00", "2024-01-01T18:00", "2024-01-02T00:00"],
                      dtype="datetime64[m]")  # fmt: skip
    with_time = PairSeries.from_tm(TrafficMatrixSeries(tm.tm, tm.nodes, 21_600.0, "Mbit/s", stamps))
    assert with_time.time_of_day.tolist() == [0.25, 0.5, 0.75, 0.0]
    without = PairSeries.from_tm(TrafficMatrixSeries(tm.tm, tm.nodes, 21_600.0, "Mbit/s"))
    assert without.time_of_day.tolist() == [0.0, 0.25, 0.5, 0.75]


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_every_baseline_gives_monotone_quantiles_and_probabilities(series: PairSeries, name: str) -> None:
    model = make_forecaster(name, horizon=4).fit(series.slice(0, 500))
    forecast = model.predict_at(series, np.arange(500, 596), 4)
    assert forecast.quantiles.shape == (96, 4, 6, 3)
    assert np.all(np.diff(forecast.quantiles, axis=-1) >= 0)
    assert np.all(forecast.quantiles >= 0)
    assert np.all((forecast.activity >= 0) & (forecast.activity <= 1))


def test_last_value_repeats_the_last_step(series: PairSeries) -> None:
    model = make_forecaster("naive", horizon=3).fit(series.slice(0, 400))
    forecast = model.predict(series.slice(0, 450), 3)
    assert np.allclose(forecast.point[0], series.values[449][None, :])


def test_ewma_restarts_at_segments_and_matches_the_recursion() -> None:
    series = PairSeries.from_tm(diurnal_tm(steps=30, period=10))
    out = ewma_series(series, 0.3)
    expected = series.values[0].copy()
    for t in range(1, 30):
        expected = 0.3 * series.values[t] + 0.7 * expected
    assert np.allclose(out[-1], expected)


def test_ewma_tuning_prefers_smoothing_on_noise() -> None:
    rng = np.random.default_rng(1)
    tm = 10.0 + rng.normal(0, 2.0, (400, 2, 2))
    tm[:, [0, 1], [0, 1]] = 0.0
    series = PairSeries.from_tm(TrafficMatrixSeries(np.abs(tm), ("a", "b"), 60.0))
    model = make_forecaster("ewma", horizon=2).fit(series)
    assert model.params_by_step.max() <= 0.2  # type: ignore[attr-defined]


def test_meank_tuned_on_validation(series: PairSeries) -> None:
    model = make_forecaster("meank", horizon=2).fit(series.slice(0, 500))
    assert set(model.params_by_step.tolist()) <= {1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0}  # type: ignore[attr-defined]


def test_seasonal_period_is_found_from_data(series: PairSeries) -> None:
    assert detect_period(series) == 48
    model = make_forecaster("seasonal", horizon=3).fit(series)
    assert model.min_context == 48
    forecast = model.predict(series, 3)
    assert np.allclose(forecast.point[0, 0], series.values[-48])


def test_seasonal_refuses_less_than_one_period() -> None:
    short = PairSeries.from_tm(diurnal_tm(steps=40, period=48))
    with pytest.raises(TrafficError, match="full period"):
        make_forecaster("seasonal").fit(short)


def test_residual_quantiles_are_calibrated_on_stationary_noise() -> None:
    rng = np.random.default_rng(3)
    tm = np.abs(50.0 + rng.normal(0, 5.0, (3000, 2, 2)))
    tm[:, [0, 1], [0, 1]] = 0.0
    series = PairSeries.from_tm(TrafficMatrixSeries(tm, ("a", "b"), 60.0))
    model = make_forecaster("ewma", horizon=1).fit(series.slice(0, 2000))
    forecast = model.predict_at(series, np.arange(2000, 3000), 1)
    actual = series.values[2000:3000]
    coverage = np.mean(actual <= forecast.quantiles[:, 0, :, 1])
    assert 0.85 <= coverage <= 0.95


def test_activity_follows_on_off_persistence() -> None:
    on = (np.arange(800) // 50) % 2 == 0
    tm = np.zeros((800, 2, 2))
    tm[:, 0, 1] = np.where(on, 5.0, 0.0)
    tm[:, 1, 0] = 3.0
    series = PairSeries.from_tm(TrafficMatrixSeries(tm, ("a", "b"), 60.0))
    model = make_forecaster("naive", horizon=1).fit(series)
    forecast = model.predict_at(series, np.array([10, 60]), 1)
    assert forecast.activity[0, 0, 0] > 0.9
    assert forecast.activity[1, 0, 0] < 0.1
    assert forecast.activity[0, 0, 1] > 0.9


def test_partial_fit_updates_calibration(series: PairSeries) -> None:
    model = make_forecaster("naive", horizon=2).fit(series.slice(0, 300))
    before = model.residuals.table.copy()  # type: ignore[attr-defined]
    noisy = series.slice(300, 600)
    noisy.values[:] = noisy.values * np.random.default_rng(0).uniform(0.3, 3.0, noisy.values.shape)
    model.partial_fit(noisy)
    assert not np.allclose(before, model.residuals.table)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_checkpoint_round_trip(series: PairSeries, name: str, tmp_path: Path) -> None:
    model = make_forecaster(name, horizon=3).fit(series.slice(0, 500))
    path = tmp_path / f"{name}.ckpt"
    model.save(path)
    loaded = load_checkpoint(path)
    a = model.predict_at(series, np.arange(500, 520), 3)
    b = loaded.predict_at(series, np.arange(500, 520), 3)
    assert loaded.name == name
    assert loaded.fingerprint == model.fingerprint
    assert np.array_equal(a.quantiles, b.quantiles)
    assert np.array_equal(a.activity, b.activity)


def test_bad_input_is_refused(series: PairSeries, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown model"):
        make_forecaster("prophet")
    with pytest.raises(ValidationError, match="horizon"):
        make_forecaster("naive", horizon=0)
    model = make_forecaster("meank", horizon=2).fit(series.slice(0, 500))
    with pytest.raises(ValidationError, match="horizon"):
        model.predict(series, 0)
    with pytest.raises(TrafficError, match="contiguous history"):
        model.predict(series.slice(0, model.min_context - 1), 2)
    other = PairSeries.from_tm(diurnal_tm(nodes=4))
    with pytest.raises(TrafficError, match="another node set"):
        model.predict(other, 2)
    with pytest.raises(ValidationError, match="not fitted"):
        make_forecaster("naive").predict(series, 1)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
