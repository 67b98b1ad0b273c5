"""The global LSTM on tiny series (1-2 epochs): shapes, determinism, checkpoints, partial_fit, errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from netscaffold.errors import CheckpointError, ConfigError, TrafficError, ValidationError
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.predict import PairSeries, load_checkpoint, make_forecaster
from netscaffold.predict.calibration import ActivityModel
from netscaffold.predict.checkpoint import checkpoint_info
from netscaffold.predict.lstm import ACTIVITY_MIX_GRID, LstmForecaster

TINY = {
    "window": 8, "hidden": 8, "epochs": 2, "windows_per_epoch": 512, "batch_size": 128, "device": "cpu",
    "seasonal_lag": 0,
}  # fmt: skip


def tiny_series(steps: int = 300, seed: int = 0) -> PairSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    base = 20.0 + 8.0 * np.sin(2 * np.pi * t / 24)
    tm = base[:, None, None] * rng.uniform(0.2, 2.0, (1, 3, 3)) * rng.lognormal(0, 0.05, (steps, 3, 3))
    tm[:, np.arange(3), np.arange(3)] = 0.0
    return PairSeries.from_tm(TrafficMatrixSeries(tm, ("a", "b", "c"), 3600.0, "Mbit/s"))


@pytest.fixture(scope="module")
def series() -> PairSeries:
    return tiny_series()


@pytest.fixture(scope="module")
def fitted(series: PairSeries) -> LstmForecaster:
    model = make_forecaster("lstm", horizon=3, **TINY)
    assert isinstance(model, LstmForecaster)
    return model.fit(series.slice(0, 250))


def test_forecast_shapes_non_crossing_and_probabilities(fitted: LstmForecaster, series: PairSeries) -> None:
    forecast = fitted.predict_at(series, np.arange(250, 298), 3)
    assert forecast.quantiles.shape == (48, 3, 6, 3)
    assert forecast.activity.shape == (48, 3, 6)
    assert np.all(np.diff(forecast.quantiles, axis=-1) >= 0)
    assert np.all(forecast.quantiles >= 0)
    assert np.all((forecast.activity >= 0) & (forecast.activity <= 1))
    assert len(fitted.history_log) >= 1
    assert "val_nmae" in fitted.history_log[0]


def test_same_seed_same_model_other_seed_other_model(fitted: LstmForecaster, series: PairSeries) -> None:
    again = make_forecaster("lstm", horizon=3, **TINY).fit(series.slice(0, 250))
    other = make_forecaster("lstm", horizon=3, seed=1, **TINY).fit(series.slice(0, 250))
    origins = np.arange(250, 260)
    a, b = fitted.predict_at(series, origins, 3), again.predict_at(series, origins, 3)
    assert np.array_equal(a.quantiles, b.quantiles)
    assert not np.array_equal(a.quantiles, other.predict_at(series, origins, 3).quantiles)


def test_level_shift_is_followed_not_reverted(fitted: LstmForecaster, series: PairSeries) -> None:
    shifted = series.slice(0, 280)
    shifted.values[260:] *= 2.5  # the pairs jump to 2.5x their training level
    point = fitted.predict(shifted, 1).point[0, 0]
    ratio = point / shifted.values[-1]
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio


def test_checkpoint_round_trip_and_header(fitted: LstmForecaster, series: PairSeries, tmp_path: Path) -> None:
    path = tmp_path / "lstm.ckpt"
    fitted.save(path)
    loaded = load_checkpoint(path)
    origins = np.arange(250, 260)
    assert np.array_equal(
        fitted.predict_at(series, origins, 3).quantiles, loaded.predict_at(series, origins, 3).quantiles
    )
    info = checkpoint_info(path)
    assert info["model"] == "lstm"
    assert info["fingerprint"] == series.slice(0, 250).fingerprint()
    assert info["config"]["features"] == [
        "dlog_traffic",
        "tod_sin",
        "tod_cos",
        "src_out_total",  # a traffic matrix: the network context is on
        "dst_in_total",
        "network_total",
        "pair_log_mean",
        "pair_log_sd",
    ]
    assert info["package_version"]


def test_corrupt_truncated_and_foreign_checkpoints(fitted: LstmForecaster, tmp_path: Path) -> None:
    import torch

    good = tmp_path / "good.ckpt"
    fitted.save(good)
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "garbage": b"\x00not a checkpoint" * 10,
        "empty": b"",
    }
    for name, content in cases.items():
        bad = tmp_path / f"{name}.ckpt"
        bad.write_bytes(content)
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_checkpoint(bad)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a netscaffold-forecaster"):
        load_checkpoint(foreign)
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match="format version"):
        load_checkpoint(tmp_path / "future.ckpt")
    payload = torch.load(good, weights_only=True)
    payload["arrays"] = {k: v for k, v in payload["arrays"].items() if "lstm" not in k}
    torch.save(payload, tmp_path / "partial.ckpt")
    with pytest.raises(CheckpointError, match="incompatible"):
        load_checkpoint(tmp_path / "partial.ckpt")


def test_partial_fit_moves_the_weights(fitted: LstmForecaster, series: PairSeries, tmp_path: Path) -> None:
    path = tmp_path / "copy.ckpt"
    fitted.save(path)
    model = load_checkpoint(path)
    before = model.predict_at(series, np.array([290]), 3).quantiles
    model.partial_fit(series.slice(250, 300))
    assert not np.array_equal(before, model.predict_at(series, np.array([290]), 3).quantiles)


def test_lstm_bad_input(fitted: LstmForecaster, series: PairSeries) -> None:
    with pytest.raises(ValidationError, match="trained for horizon 3"):
        fitted.predict(series, 4)
    with pytest.raises(TrafficError, match="needs 8"):
        fitted.predict_at(series, np.array([5]), 1)
    with pytest.raises(TrafficError, match="too short"):
        make_forecaster("lstm", **TINY).fit(series.slice(0, 20))
    with pytest.raises(ConfigError):
        make_forecaster("lstm", window=1)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no GPU"):
            make_forecaster("lstm", horizon=3, **{**TINY, "device": "cuda"}).fit(series)


def test_seasonal_hint_is_used_when_four_days_are_there(series: PairSeries, tmp_path: Path) -> None:
    """Hourly steps: one day is 24 steps; 212 training steps hold more than eight days (the hint averages
    the last two), 144 more than four (one day earlier only)."""
    short = make_forecaster("lstm", horizon=3, **{**TINY, "seasonal_lag": -1, "epochs": 1})
    assert isinstance(short, LstmForecaster)
    short.prepare(series.slice(0, 170), 144)
    assert (short.hyper["seasonal_lag"], short.hyper["seasonal_days"], short.min_context) == (24, 1, 25)
    static = short.spec.static_names()
    assert static[2:5] == ("seasonal_delta_h1", "seasonal_delta_h2", "seasonal_delta_h3")
    # a traffic matrix: its network context's change one day earlier too, per step and total
    context = ("src_out_total", "dst_in_total", "network_total")
    assert static[5:8] == tuple(f"{c}_seasonal_delta_h1" for c in context)
    assert len(static) == 2 + 3 + 3 * 3
    model = make_forecaster("lstm", horizon=3, **{**TINY, "seasonal_lag": -1, "epochs": 1})
    assert isinstance(model, LstmForecaster)
    model.fit(series.slice(0, 250))
    assert (model.hyper["seasonal_lag"], model.hyper["seasonal_days"]) == (24, 2)
    assert model.min_context == 49
    assert model.spec.static_names()[2:5] == tuple(f"seasonal_delta_h{h}_mean2d" for h in (1, 2, 3))
    model.save(tmp_path / "s.ckpt")
    loaded = load_checkpoint(tmp_path / "s.ckpt")
    assert loaded.min_context == 49
    origins = np.arange(250, 255)
    assert np.array_equal(
        model.predict_at(series, origins, 3).quantiles, loaded.predict_at(series, origins, 3).quantiles
    )


def on_off_series(steps: int = 400, pairs: int = 6, seed: int = 0) -> PairSeries:
    """Pairs that switch on and off in runs (a two-state Markov chain, staying put with p = 0.9)."""
    rng = np.random.default_rng(seed)
    on = np.zeros((steps, pairs), dtype=bool)
    on[0] = rng.random(pairs) < 0.5
    for t in range(1, steps):
        flip = rng.random(pairs) < 0.1
        on[t] = on[t - 1] ^ flip
    values = np.where(on, rng.lognormal(3.0, 0.3, (steps, pairs)), 0.0)
    names = tuple(f"n{i}" for i in range(pairs + 1))
    tm = np.zeros((steps, pairs + 1, pairs + 1))
    for p in range(pairs):
        tm[:, p, p + 1] = values[:, p]
    return PairSeries.from_tm(TrafficMatrixSeries(tm, names, 1.0, "Mbit/s"))


def test_on_off_flags_only_for_series_that_go_idle(series: PairSeries, fitted: LstmForecaster) -> None:
    assert "active" not in fitted.features
    assert "pair_active_share" not in fitted.features
    model = make_forecaster("lstm", horizon=3, **TINY).fit(on_off_series().slice(0, 300))
    assert isinstance(model, LstmForecaster)
    assert model.features[:2] == ("dlog_traffic", "active")
    assert "pair_active_share" in model.features
    forced = make_forecaster("lstm", horizon=3, activity_input=0, **TINY).fit(on_off_series().slice(0, 300))
    assert isinstance(forced, LstmForecaster)
    assert "active" not in forced.features


def test_activity_forecast_tells_on_from_off(tmp_path: Path) -> None:
    """The level-invariant traffic input hides whether a pair is on; the on/off flags give it back, so
    the activity head separates pairs on now (likely on next step) from pairs off now."""
    data = on_off_series()
    opts = {**TINY, "epochs": 6, "windows_per_epoch": 4096, "activity_weight": 1.0, "lr": 0.01}
    model = make_forecaster("lstm", horizon=1, **opts).fit(data.slice(0, 300))
    origins = np.arange(320, 398)
    forecast = model.predict_at(data, origins, 1)
    on_now = data.values[origins - 1] > 0
    prob = forecast.activity[:, 0, :]
    on_pairs = [i for i, (a, b) in enumerate(data.pairs) if int(b[1:]) == int(a[1:]) + 1]
    prob, on_now = prob[:, on_pairs], on_now[:, on_pairs]
    assert prob[on_now].mean() > 0.7 > 0.3 > prob[~on_now].mean()
    path = tmp_path / "onoff.ckpt"
    model.save(path)
    again = load_checkpoint(path)
    assert np.array_equal(again.predict_at(data, origins, 1).activity, forecast.activity)


def rare_wake_series(steps: int = 900, seed: int = 0) -> PairSeries:
    """Two pairs busy in short bursts after long silences (a wake every ~150 steps), two never active:
    the network sees a handful of wakes, the transition counts give them their small but real rate."""
    rng = np.random.default_rng(seed)
    values = np.zeros((steps, 4))
    for p in (0, 1):
        t = int(rng.integers(0, 60))
        while t < steps:
            values[t : t + 8, p] = rng.lognormal(3.0, 0.2, min(8, steps - t))
            t += int(rng.integers(100, 200))
    tm = np.zeros((steps, 5, 5))
    for p in range(4):
        tm[:, p, p + 1] = values[:, p]
    return PairSeries.from_tm(TrafficMatrixSeries(tm, ("n0", "n1", "n2", "n3", "n4"), 1.0, "Mbit/s"))


def _log_loss(prob: np.ndarray, active: np.ndarray) -> float:
    p = np.clip(prob, 1e-12, 1 - 1e-12)
    return float(-np.mean(np.where(active, np.log(p), np.log1p(-p))))


def test_activity_mix_calibrates_rare_wakes(tmp_path: Path) -> None:
    """Validation picks a weight for the transition counts where the network is overconfident about
    silence; the mixed forecast scores better on unseen steps, and a checkpoint keeps both parts."""
    data = rare_wake_series()
    opts = {**TINY, "epochs": 8, "windows_per_epoch": 4096, "activity_weight": 1.0, "lr": 0.01}
    model = make_forecaster("lstm", horizon=3, **opts).fit(data.slice(0, 600))
    assert isinstance(model, LstmForecaster)
    assert 0.0 < model.activity_mix <= 1.0
    origins = np.arange(600, 897)
    active = data.values[origins[:, None] + np.arange(3)[None, :]] > 0
    mixed = model.predict_at(data, origins, 3).activity
    mix, mix_active = model.activity_mix, model.activity_mix_active
    model.activity_mix = model.activity_mix_active = 0.0
    network = model.predict_at(data, origins, 3).activity
    model.activity_mix, model.activity_mix_active = mix, mix_active
    assert _log_loss(mixed, active) < _log_loss(network, active)
    path = tmp_path / "mix.ckpt"
    model.save(path)
    again = load_checkpoint(path)
    assert isinstance(again, LstmForecaster)
    assert (again.activity_mix, again.activity_mix_active) == (mix, mix_active)
    assert np.array_equal(again.predict_at(data, origins, 3).activity, mixed)


def test_activity_calibration_with_pair_groups(tmp_path: Path) -> None:
    """With pair groups the calibration also tries counts shrunk towards each group's pooled rate, and
    keeps whichever scores best on validation; a checkpoint keeps the group prior and its strength."""
    plain = rare_wake_series()
    busy = {("n0", "n1"), ("n1", "n2")}
    data = replace(plain, groups=tuple("busy" if pair in busy else "silent" for pair in plain.pairs))
    opts = {**TINY, "epochs": 2, "windows_per_epoch": 1024, "activity_weight": 1.0}
    model = make_forecaster("lstm", horizon=3, **opts).fit(data.slice(0, 600))
    assert isinstance(model, LstmForecaster)
    split = round(600 * 0.85)
    val = data.slice(0, 600).origins(model.min_context, 3, start=split)
    active = data.values[val[:, None] + np.arange(3)[None, :]] > 0
    network = model._infer(data, val, 3)[1]
    chosen = ActivityModel(groups=model.activity_counts.groups, strength=model.activity_counts.strength)
    chosen.fit(data.slice(0, split), 3)
    laplace = ActivityModel()
    laplace.fit(data.slice(0, split), 3)

    def best_loss(counts: ActivityModel) -> float:
        counted = counts.predict(data, val, 3)
        return min(_log_loss((1 - w) * network + w * counted, active) for w in ACTIVITY_MIX_GRID)

    assert best_loss(chosen) <= best_loss(laplace) + 1e-9
    # a group prior survives a checkpoint, whichever model validation chose
    model.activity_counts = ActivityModel(groups=data.group_codes(), strength=10.0)
    model.activity_counts.fit(data.slice(0, 600), 3)
    model.activity_mix, model.activity_mix_active = 0.5, 0.2
    origins = np.arange(600, 897)
    forecast = model.predict_at(data, origins, 3).activity
    path = tmp_path / "groups.ckpt"
    model.save(path)
    again = load_checkpoint(path)
    assert isinstance(again, LstmForecaster)
    assert again.activity_counts.strength == 10.0
    assert np.array_equal(again.predict_at(plain, origins, 3).activity, forecast)  # groups not needed
    config, arrays = model.config(), model.arrays()
    without_prior = {k: v for k, v in arrays.items() if k != "activity_prior"}
    with pytest.raises(CheckpointError, match="groups or prior are missing"):
        again.restore(config, without_prior)
    with pytest.raises(CheckpointError, match="strength must be > 0"):
        again.restore({**config, "activity_strength": -1.0}, arrays)
    with pytest.raises(CheckpointError, match="activity_mix_active"):
        again.restore({**config, "activity_mix_active": 2.0}, arrays)
    with pytest.raises(CheckpointError, match="3 states"):  # counts of two states, the absent state named
        again.restore({**config, "activity_absent": True}, arrays)


def test_checkpoint_from_before_the_per_state_weights_keeps_one_weight_and_laplace_counts(
    fitted: LstmForecaster,
) -> None:
    new_keys = ("activity_mix_active", "activity_mix_absent", "activity_absent", "activity_strength")
    config = {k: v for k, v in fitted.config().items() if k not in new_keys}
    model = make_forecaster("lstm", horizon=3, **TINY)
    assert isinstance(model, LstmForecaster)
    model.pairs, model.nodes = fitted.pairs, fitted.nodes
    model.restore({**config, "activity_mix": 0.3}, fitted.arrays())
    assert (model.activity_mix, model.activity_mix_active, model.activity_mix_absent) == (0.3, 0.3, 0.0)
    assert model.activity_counts.groups is None
    assert not model.activity_counts.absent


def test_checkpoint_with_a_bad_activity_mix_is_refused(fitted: LstmForecaster, tmp_path: Path) -> None:
    config, arrays = fitted.config(), fitted.arrays()
    model = make_forecaster("lstm", horizon=3, **TINY)
    assert isinstance(model, LstmForecaster)
    model.pairs, model.nodes = fitted.pairs, fitted.nodes
    with pytest.raises(CheckpointError, match="activity_mix"):
        model.restore({**config, "activity_mix": 1.5}, arrays)
    without_counts = {k: v for k, v in arrays.items() if k != "activity_counts"}
    with pytest.raises(CheckpointError, match="counts are missing"):
        model.restore({**config, "activity_mix": 0.5}, without_counts)
    with pytest.raises(CheckpointError, match="do not match"):
        model.restore(config, {**arrays, "activity_counts": np.zeros((3, 2, 2, 2))})


def test_anchor_smoothing_follows_how_bursty_the_training_part_is() -> None:
    """Auto (-1): the last value where traffic moves smoothly, a smoothed level where it jumps tick to
    tick around a level (as a tuned exponential smoothing would choose)."""
    rng = np.random.default_rng(3)
    steps, names = 400, ("a", "b", "c")
    walk = np.exp(np.cumsum(rng.normal(0, 0.05, (steps, 3, 3)), axis=0)) * 50.0
    bursty = 50.0 * rng.lognormal(0.0, 0.8, (steps, 3, 3))
    picked = []
    for tm in (walk, bursty):
        tm[:, np.arange(3), np.arange(3)] = 0.0
        series = PairSeries.from_tm(TrafficMatrixSeries(tm, names, 1.0, "Mbit/s"))
        model = make_forecaster("lstm", horizon=3, **{**TINY, "anchor_alpha": -1.0})
        assert isinstance(model, LstmForecaster)
        model.prepare(series, 300)
        picked.append(model.spec.anchor_alpha)
    assert picked[0] == 1.0
    assert picked[1] <= 0.5


def test_anchor_alpha_bad_values_and_old_checkpoints(fitted: LstmForecaster) -> None:
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="anchor_alpha"):
            make_forecaster("lstm", anchor_alpha=bad)
    config, arrays = fitted.config(), fitted.arrays()
    old = {**config, "hyper": {k: v for k, v in config["hyper"].items() if k != "anchor_alpha"}}
    model = make_forecaster("lstm", horizon=3, **TINY)
    assert isinstance(model, LstmForecaster)
    model.pairs, model.nodes = fitted.pairs, fitted.nodes
    model.hyper.pop("anchor_alpha")  # what a constructor fed an old checkpoint's hyper-parameters sees
    model.restore(old, arrays)
    assert model.spec.anchor_alpha == 1.0  # before the smoothed anchor: the last value
