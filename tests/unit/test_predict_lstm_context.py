"""The LSTM's network context input (node and network totals per window step) and the multi-day seasonal
hint: values on a hand-made matrix, the same values from all three feature builders, the automatic gate,
checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netscaffold.errors import CheckpointError, ConfigError, TrafficError, ValidationError
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.predict import PairSeries, load_checkpoint, make_forecaster
from netscaffold.predict.lstm import LstmForecaster
from netscaffold.predict.lstm_features import (
    CONTEXT_NAMES,
    FeatureSpec,
    NetworkContext,
    Scaler,
    node_columns,
    sample_grid,
)

TINY = {
    "window": 6, "hidden": 8, "epochs": 1, "windows_per_epoch": 256, "batch_size": 64, "device": "cpu",
    "seasonal_lag": 0,
}  # fmt: skip
NODES = ("a", "b", "c")


def matrix_series(steps: int = 160, seed: int = 1) -> PairSeries:
    rng = np.random.default_rng(seed)
    tm = rng.lognormal(2.0, 0.5, (steps, 3, 3))
    tm[:, np.arange(3), np.arange(3)] = 0.0
    return PairSeries.from_tm(TrafficMatrixSeries(tm, NODES, 600.0, "Mbit/s"))


def test_network_context_values_on_a_hand_made_matrix() -> None:
    # two steps of a 3-node matrix: row = source, column = destination
    tm = np.array([[[0, 1, 2], [3, 0, 4], [5, 6, 0]], [[0, 10, 0], [0, 0, 20], [30, 0, 0]]], dtype=np.float64)
    series = PairSeries.from_tm(TrafficMatrixSeries(tm, NODES, 300.0, "Mbit/s"))
    assert series.pairs == (("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b"))
    context = NetworkContext.fit(series, 2)
    columns = node_columns(context.src, 3), node_columns(context.dst, 3)
    assert [list(c) for c in columns[0]] == [[0, 1], [2, 3], [4, 5]]  # the pairs leaving a, b, c
    assert [list(c) for c in columns[1]] == [[2, 4], [0, 5], [1, 3]]  # the pairs entering a, b, c
    totals = NetworkContext.totals(series.values, *columns)
    # out a, b, c | in a, b, c | total
    expected = np.array([[3, 7, 11, 8, 7, 6, 21], [10, 20, 30, 30, 10, 20, 60]], dtype=np.float64)
    np.testing.assert_array_equal(totals, expected)
    logged = np.log1p(expected)
    np.testing.assert_allclose(context.mu, logged.mean(axis=0))
    np.testing.assert_allclose(context.sd, np.maximum(logged.std(axis=0), 0.05))
    built = context.build(series)
    assert built.shape == (2, 6, len(CONTEXT_NAMES))
    assert built.dtype == np.float32
    standard = (logged - context.mu) / context.sd
    # pair b -> c (index 3): source b's outgoing total, destination c's incoming total, the network total
    np.testing.assert_allclose(built[:, 3], standard[:, [1, 5, 6]], rtol=1e-6)
    np.testing.assert_allclose(built[:, 0], standard[:, [0, 4, 6]], rtol=1e-6)  # a -> b
    # a step's totals do not depend on the other steps given
    np.testing.assert_array_equal(context.build(series.slice(1, 2))[0], built[1])


def test_network_context_window_is_level_invariant() -> None:
    series = matrix_series()
    spec = FeatureSpec(window=6, horizon=3, network_context=True)
    scaler = Scaler.fit(series.values[:100])
    context = NetworkContext.fit(series, 100).build(series)
    origins = np.array([30, 77], dtype=np.int64)
    sequence, _, _ = spec.build_all_pairs(
        series, scaler.standardise(series.values), scaler, origins, context=context
    )
    column = spec.sequence_names().index(CONTEXT_NAMES[0])
    assert spec.sequence_names()[column : column + 3] == CONTEXT_NAMES
    window = context[24:30, 4]  # origin 30, pair 4 (c -> a): steps 24..29
    np.testing.assert_allclose(sequence[4, :, column : column + 3], window - window[-1], rtol=1e-6, atol=1e-7)

    # the whole matrix doubled (large values: log1p is then log): the context inputs do not move
    def scaled_by(factor: float) -> PairSeries:
        return PairSeries(
            series.values * factor, series.pairs, series.nodes, series.interval_s, series.unit,
            series.time_of_day, series.segment_start,
        )  # fmt: skip

    big, doubled = scaled_by(1e4), scaled_by(2e4)
    fitted = NetworkContext.fit(big, 100)
    inputs = [
        spec.build_all_pairs(s, scaler.standardise(s.values), scaler, origins, context=fitted.build(s))[0]
        for s in (big, doubled)
    ]
    moved = inputs[1][..., column : column + 3] - inputs[0][..., column : column + 3]
    assert np.abs(moved).max() < 1e-3
    assert np.abs(inputs[0][..., column : column + 3]).max() > 0.1  # not trivially zero


@pytest.mark.parametrize(
    ("seasonal_lag", "seasonal_days", "context_seasonal", "anchor_alpha"),
    [(0, 1, False, 1.0), (20, 1, True, 1.0), (20, 3, True, 1.0), (12, 2, False, 0.4)],
)
def test_three_builders_give_the_same_context_features(
    seasonal_lag: int, seasonal_days: int, context_seasonal: bool, anchor_alpha: float
) -> None:
    series = matrix_series()
    spec = FeatureSpec(
        window=6, horizon=3, seasonal_lag=seasonal_lag, seasonal_days=seasonal_days, network_context=True,
        context_seasonal=context_seasonal, anchor_alpha=anchor_alpha,
    )  # fmt: skip
    scaler = Scaler.fit(series.values[:100])
    scaled = scaler.standardise(series.values)
    context = NetworkContext.fit(series, 100).build(series)
    origins = np.array([70, 71, 77, 150], dtype=np.int64)
    orig_idx, pair_idx = sample_grid(origins, series.n_pairs)
    per_sample = spec.build(series, scaled, scaler, orig_idx, pair_idx, context=context)
    all_pairs = spec.build_all_pairs(series, scaled, scaler, origins, context=context)
    time_major = spec.build_all_pairs_time_major(series, scaled, scaler, origins, context=context)
    assert per_sample[0].shape == (origins.size * series.n_pairs, 6, len(spec.sequence_names()))
    assert per_sample[1].shape == (origins.size * series.n_pairs, len(spec.static_names()))
    exact = anchor_alpha == 1.0
    for a, b in zip(all_pairs, per_sample, strict=True):
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(time_major[1], all_pairs[1])
    sequence = time_major[0].transpose(1, 0, 2)
    if exact:
        np.testing.assert_array_equal(sequence, all_pairs[0])
    else:
        np.testing.assert_allclose(sequence, all_pairs[0], rtol=1e-6, atol=1e-6)


def test_multi_day_seasonal_hint_is_the_mean_of_each_days_change() -> None:
    series = matrix_series()
    spec = FeatureSpec(window=6, horizon=2, seasonal_lag=20, seasonal_days=3, pair_stats=False)
    assert spec.min_context == 61
    assert spec.static_names() == ("seasonal_delta_h1_mean3d", "seasonal_delta_h2_mean3d")
    scaler = Scaler.fit(series.values[:100])
    scaled = scaler.standardise(series.values)
    o, p = 90, 2
    _, static, _ = spec.build(series, scaled, scaler, np.array([o]), np.array([p]))
    for h in range(2):
        days = [scaled[o - d * 20 + h, p] - scaled[o - d * 20 - 1, p] for d in (1, 2, 3)]
        assert static[0, h] == pytest.approx(np.mean(days), rel=1e-5)


def test_builders_need_the_context_they_were_specified_with() -> None:
    series = matrix_series()
    spec = FeatureSpec(window=6, horizon=3, network_context=True)
    scaler = Scaler.fit(series.values[:100])
    scaled = scaler.standardise(series.values)
    with pytest.raises(ValidationError, match="network context"):
        spec.build_all_pairs(series, scaled, scaler, np.array([30]))
    with pytest.raises(ValidationError, match=r"shape \(10, 6, 3\)"):
        spec.build_all_pairs_time_major(
            series, scaled, scaler, np.array([30]), context=np.zeros((10, 6, 3), np.float32)
        )


def test_context_is_on_for_matrices_only_and_forecasts_follow_it(tmp_path: Path) -> None:
    series = matrix_series(200)
    model = make_forecaster("lstm", horizon=3, **TINY).fit(series.slice(0, 150))
    assert isinstance(model, LstmForecaster)
    assert model.spec.network_context
    assert set(CONTEXT_NAMES) <= set(model.features)
    # a series whose pairs go idle (microservices, call traces): no context
    idle = series.values.copy()
    idle[np.random.default_rng(0).random(idle.shape) < 0.4] = 0.0
    idle_series = dataclasses.replace(series, values=idle)
    other = make_forecaster("lstm", horizon=3, **TINY)
    assert isinstance(other, LstmForecaster)
    other.prepare(idle_series, 150)
    assert not other.spec.network_context
    assert other.context is None
    # pairs whose ends are not nodes of the series: nothing to aggregate over
    loose = PairSeries(
        series.values, tuple((f"s{i}", f"d{i}") for i in range(6)), (), series.interval_s, series.unit,
        series.time_of_day, series.segment_start,
    )  # fmt: skip
    other = make_forecaster("lstm", horizon=3, **TINY)
    assert isinstance(other, LstmForecaster)
    other.prepare(loose, 150)
    assert not other.spec.network_context
    with pytest.raises(ValidationError, match="ends are nodes"):
        NetworkContext.fit(loose, 150)
    # the forecast reads the context: change only the other pairs' traffic, the pair's forecast moves
    origins = np.arange(150, 197)
    before = model.predict_at(series, origins, 3).quantiles[:, :, 0]
    values = series.values.copy()
    values[140:150, 1:] *= 3.0
    moved = dataclasses.replace(series, values=values)
    after = model.predict_at(moved, np.array([150]), 3).quantiles[0, :, 0]
    assert not np.allclose(after, before[0])
    # checkpoint round trip
    path = tmp_path / "lstm.pt"
    model.save(path)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LstmForecaster)
    assert loaded.context is not None
    np.testing.assert_array_equal(
        loaded.predict_at(series, origins, 3).quantiles, model.predict_at(series, origins, 3).quantiles
    )


def test_context_checkpoints_old_and_broken() -> None:
    series = matrix_series(200)
    with pytest.raises(ConfigError, match="seasonal_days"):
        make_forecaster("lstm", seasonal_days=0)
    model = make_forecaster("lstm", horizon=3, **TINY).fit(series.slice(0, 150))
    assert isinstance(model, LstmForecaster)
    config, arrays = model.config(), model.arrays()

    def fresh(hyper: dict[str, Any] = model.hyper) -> LstmForecaster:
        again = LstmForecaster(horizon=3, device="cpu", **hyper)  # what load_checkpoint builds
        again.pairs, again.nodes = model.pairs, model.nodes
        return again

    without = {k: v for k, v in arrays.items() if not k.startswith("context.")}
    with pytest.raises(CheckpointError, match="network context's scaling is missing"):
        fresh().restore(config, without)
    with pytest.raises(CheckpointError, match="does not match 3 nodes"):
        fresh().restore(config, {**arrays, "context.sd": np.ones(5)})
    with pytest.raises(CheckpointError, match="finite and positive"):
        fresh().restore(config, {**arrays, "context.sd": np.zeros(7)})
    # a checkpoint from before the context input (no such hyper-parameter, features without it) loads
    # without it; one whose features name the context but whose settings say otherwise is refused
    old_model = make_forecaster("lstm", horizon=3, **{**TINY, "network_context": 0}).fit(series.slice(0, 150))
    assert isinstance(old_model, LstmForecaster)
    old_config = old_model.config()
    new_keys = ("network_context", "seasonal_days", "context_seasonal")
    old = {**old_config, "hyper": {k: v for k, v in old_config["hyper"].items() if k not in new_keys}}
    again = fresh(old["hyper"])
    again.restore(old, old_model.arrays())
    again.fitted = True
    assert not again.spec.network_context
    assert again.spec.seasonal_days == 1
    np.testing.assert_array_equal(
        again.predict_at(series, np.array([160]), 3).quantiles,
        old_model.predict_at(series, np.array([160]), 3).quantiles,
    )
    with pytest.raises(CheckpointError, match="feature list"):
        fresh(old["hyper"]).restore({**config, "hyper": old["hyper"]}, arrays)
    # another node set at predict time
    bigger = TrafficMatrixSeries(np.ones((40, 4, 4)), ("a", "b", "c", "d"), 600.0, "Mbit/s")
    with pytest.raises(TrafficError, match="another node set"):
        model.predict_at(PairSeries.from_tm(bigger), np.array([30]), 3)


def test_node_totals_equal_the_sums_of_each_nodes_pairs_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    n = 9
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
    order = rng.permutation(len(pairs))  # pairs in no particular order
    src = np.array([pairs[i][0] for i in order])
    dst = np.array([pairs[i][1] for i in order])
    values = rng.lognormal(0.0, 2.0, (50, len(pairs)))
    totals = NetworkContext.totals(values, node_columns(src, n), node_columns(dst, n))
    for node in range(n):
        assert np.array_equal(totals[:, node], values[:, src == node].sum(axis=1))
        assert np.array_equal(totals[:, n + node], values[:, dst == node].sum(axis=1))
    assert np.array_equal(totals[:, -1], values.sum(axis=1))


def test_context_table_indexes_like_the_dense_array_and_sums_only_what_is_read() -> None:
    series = matrix_series()
    fitted = NetworkContext.fit(series, 100)
    dense = np.asarray(fitted.build(series))
    assert dense.shape == (series.steps, series.n_pairs, 3)
    table = fitted.build(series)
    steps = np.array([[3, 4, 5], [40, 41, 42]])
    pair_idx = np.array([5, 1])
    keys: list[Any] = [
        steps,
        (steps, pair_idx[:, None]),
        (slice(10, 14), 2),
        7,
        (np.array([9, 9, 0]), slice(None)),
    ]
    for key in keys:
        np.testing.assert_array_equal(table[key], dense[key])
    # a forecast's inputs: only the rows the builders read are standardised and summed; the others
    # (NaN here) are never read, and the features equal those built from every row
    spec = FeatureSpec(
        window=6, horizon=3, seasonal_lag=20, seasonal_days=2, network_context=True, context_seasonal=True
    )
    scaler = Scaler.fit(series.values[:100])
    origins = np.array([70, 71, 150], dtype=np.int64)
    rows = spec.rows_read(origins)
    # windows 64-69, 65-70, 144-149; one day back (lag 20) steps o-21..o-18, two days back o-41..o-38
    expected = [
        *range(29, 34),
        *range(49, 54),
        *range(64, 71),
        *range(109, 113),
        *range(129, 133),
        *range(144, 150),
    ]
    assert rows.tolist() == expected
    sparse = np.full((series.steps, series.n_pairs), np.nan, np.float32)
    sparse[rows] = scaler.standardise(series.values[rows])
    lazy = fitted.build(series, rows)
    built = spec.build_all_pairs_time_major(series, sparse, scaler, origins, context=lazy)
    everything = spec.build_all_pairs_time_major(
        series, scaler.standardise(series.values), scaler, origins, context=fitted.build(series)
    )
    for a, b in zip(built, everything, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(lazy._done.sum()) == rows.size  # no other step was summed
