"""Sharded inference in Ray actors gives the single-process forecast (exactly for the baselines, to float32
rounding for the LSTM), survives a killed shard, and refuses bad input with our own errors."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from netscaffold.distributed.inference import (
    ShardedForecaster,
    ShardWorker,
    restrict,
    series_columns,
    sharded_predict,
)
from netscaffold.distributed.sharding import HashRing, PairShards
from netscaffold.errors import TrafficError, ValidationError
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.predict.base import Forecaster
from netscaffold.predict.lstm import LstmForecaster
from netscaffold.predict.registry import MODEL_NAMES, make_forecaster
from netscaffold.predict.series import PairSeries

HORIZON = 4
SMALL_LSTM: dict[str, Any] = {"epochs": 2, "hidden": 16, "windows_per_epoch": 2048, "device": "cpu"}


def synthetic(steps: int = 240, n_pairs: int = 120, seed: int = 0) -> PairSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    level = rng.uniform(1.0, 50.0, n_pairs)
    values = np.abs(level * (1 + 0.3 * np.sin(t / 12.0))[:, None] + rng.normal(0, 2.0, (steps, n_pairs)))
    values *= rng.random((steps, n_pairs)) > 0.15
    pairs = tuple((f"n{i}", f"m{i % 7}") for i in range(n_pairs))
    nodes = tuple(sorted({n for p in pairs for n in p}))
    return PairSeries(
        values, pairs, nodes, 60.0, "bytes", np.mod(t * 60.0 / 86_400.0, 1.0), np.zeros(steps, np.int64)
    )


def fitted(name: str, series: PairSeries) -> Forecaster:
    kwargs = SMALL_LSTM if name == "lstm" else {}
    return make_forecaster(name, horizon=HORIZON, **kwargs).fit(series)


def assert_same(a: Any, b: Any, *, rounding: bool = False) -> None:
    """Equal forecasts; ``rounding``: to float32 rounding. The LSTM's packed CPU path multiplies matrices
    through torch's BLAS, which may round a last bit differently in another process (a Ray worker)."""
    if rounding:
        np.testing.assert_allclose(a.quantiles, b.quantiles, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.activity, b.activity, rtol=1e-5, atol=1e-6)
        return
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    np.testing.assert_array_equal(a.activity, b.activity)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_restricted_models_give_their_columns_of_the_full_forecast(name: str) -> None:
    """No Ray: the identity that sharding rests on, for every model, with 1 and 2 torch threads (the
    LSTM's to float rounding: a shard's chunks hold fewer sequences, and on some CPUs (Intel Xeon with
    AVX-512 here) the BLAS then picks another kernel, which rounds a last bit differently)."""
    series = synthetic()
    model = fitted(name, series)
    origins = np.arange(200, series.steps - HORIZON + 1)
    full = model.predict_at(series, origins, HORIZON)
    rtol, atol = (1e-5, 1e-6) if name == "lstm" else (0.0, 0.0)  # 0, 0: equal bit for bit
    for columns in PairShards.split(series.pairs, HashRing.of(3)).columns:
        for threads in (1, 2):
            worker = ShardWorker(columns, restrict(model, columns, threads=threads))
            quantiles, activity = worker.predict_at(series, origins, HORIZON)
            np.testing.assert_allclose(quantiles, full.quantiles[:, :, columns], rtol=rtol, atol=atol)
            np.testing.assert_allclose(activity, full.activity[:, :, columns], rtol=rtol, atol=atol)


def matrix_series(steps: int = 240, n_nodes: int = 5, seed: int = 0) -> PairSeries:
    """A traffic matrix whose pairs never go idle: the LSTM reads its network context (node totals)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    tm = rng.uniform(1.0, 50.0, (n_nodes, n_nodes))[None] * (1 + 0.3 * np.sin(t / 12.0))[:, None, None]
    tm = tm * rng.lognormal(0.0, 0.1, (steps, n_nodes, n_nodes))
    nodes = tuple(f"n{i}" for i in range(n_nodes))
    return PairSeries.from_tm(TrafficMatrixSeries(tm, nodes, 60.0, "Mbit/s"))


def test_shards_of_an_lstm_with_network_context_give_the_full_forecast() -> None:
    """A shard holds only some pairs of the matrix, so it gets the nodes' totals over all of them: its
    own columns do not add up to them."""
    series = matrix_series()
    model = fitted("lstm", series)
    assert isinstance(model, LstmForecaster)
    assert model.spec.network_context  # the input this test is about
    origins = np.arange(200, series.steps - HORIZON + 1)
    full = model.predict_at(series, origins, HORIZON)
    for columns in PairShards.split(series.pairs, HashRing.of(3)).columns:
        worker = ShardWorker(columns, restrict(model, columns, threads=1))
        quantiles, activity = worker.predict_at(series, origins, HORIZON)
        np.testing.assert_allclose(quantiles, full.quantiles[:, :, columns], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(activity, full.activity[:, :, columns], rtol=1e-5, atol=1e-6)
    part = series_columns(series, np.array([0, 3]))
    assert part.node_totals is not None
    assert part.node_totals.shape == (series.steps, 2 * 5 + 1)
    assert part.slice(10, 20).node_totals is not None
    np.testing.assert_array_equal(part.slice(10, 20).node_totals, part.node_totals[10:20])
    with pytest.raises(TrafficError, match="node_totals must be"):
        dataclasses.replace(part, node_totals=part.node_totals[:, :3])
    # pair groups (the activity model pools a group's pairs) follow their columns
    grouped = dataclasses.replace(series, groups=tuple(f"g{i % 4}" for i in range(series.n_pairs)))
    assert series_columns(grouped, np.array([5, 2, 7])).groups == ("g1", "g2", "g3")
    assert series_columns(series, np.array([5, 2])).groups == ()


def test_restrict_refuses_unfitted_models_and_bad_columns() -> None:
    with pytest.raises(ValidationError, match="not fitted"):
        restrict(make_forecaster("naive"), np.array([0]))
    model = fitted("naive", synthetic(n_pairs=5))
    with pytest.raises(ValidationError, match=r"outside 0\.\.4"):
        restrict(model, np.array([0, 5]))


@pytest.mark.ray
def test_sharded_lstm_and_baseline_equal_single_process(ray_local: object) -> None:
    series = synthetic()
    origins = np.arange(200, series.steps - HORIZON + 1)
    for name in ("lstm", "ewma"):
        model = fitted(name, series)
        sharded = sharded_predict(model, series, HORIZON, shards=2, origins=origins)
        assert_same(sharded, model.predict_at(series, origins, HORIZON), rounding=name == "lstm")
    end = sharded_predict(model, series, HORIZON, shards=3, cpus_per_shard=0.5)
    assert_same(end, model.predict(series, HORIZON))


@pytest.mark.ray
def test_a_killed_shard_restarts_and_the_forecast_is_complete(ray_local: object) -> None:
    import ray

    series = synthetic()
    model = fitted("lstm", series)
    expected = model.predict(series, HORIZON)
    with ShardedForecaster.start(model, shards=2) as sharded:
        assert_same(sharded.predict(series, HORIZON), expected, rounding=True)
        ray.kill(sharded.workers[0], no_restart=False)
        assert_same(sharded.predict(series, HORIZON), expected, rounding=True)


@pytest.mark.ray
def test_per_shard_baselines_equal_a_fit_on_the_shard_alone(ray_local: object) -> None:
    import ray

    series = synthetic()
    train = series.slice(0, 200)
    origins = np.arange(200, series.steps - HORIZON + 1)
    with ShardedForecaster.fit_per_shard("meank", train, shards=2, horizon=HORIZON) as sharded:
        forecast = sharded.predict_at(series, origins, HORIZON)
        ray.kill(sharded.workers[1], no_restart=False)  # the restart refits from its constructor arguments
        assert_same(sharded.predict_at(series, origins, HORIZON), forecast)
        for columns in sharded.shards.columns:
            alone = fitted("meank", series_columns(train, columns))
            local = alone.predict_at(series_columns(series, columns), origins, HORIZON)
            np.testing.assert_array_equal(forecast.quantiles[:, :, columns], local.quantiles)
            np.testing.assert_array_equal(forecast.activity[:, :, columns], local.activity)


@pytest.mark.ray
def test_bad_input_raises_our_errors_not_ray_wrappers(ray_local: object) -> None:
    series = synthetic(n_pairs=20)
    model = fitted("naive", series)
    with ShardedForecaster.start(model, shards=2) as sharded:
        with pytest.raises(TrafficError, match="another pair set"):
            sharded.predict(synthetic(n_pairs=21), HORIZON)
        with pytest.raises(TrafficError, match="origins must be within"):
            sharded.predict_at(series, [series.steps + 5], HORIZON)
    with pytest.raises(ValidationError, match="closed"):
        sharded.predict(series, HORIZON)
    with pytest.raises(ValidationError, match="not fitted"):
        ShardedForecaster.start(make_forecaster("naive"))
