"""The activity count model: Laplace smoothing (the baselines) and the group prior (the LSTM calibration)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from netscaffold.errors import TrafficError
from netscaffold.predict import PairSeries
from netscaffold.predict.calibration import ABSENT, ACTIVE, IDLE, ActivityModel


def on_off_series(columns: list[list[int]], groups: tuple[str, ...] = ()) -> PairSeries:
    values = np.array(columns, dtype=np.float64).T
    steps, n = values.shape
    return PairSeries(
        values=values,
        pairs=tuple((f"s{i}", f"d{i}") for i in range(n)),
        nodes=tuple(x for i in range(n) for x in (f"s{i}", f"d{i}")),
        interval_s=1.0,
        unit="bit/s",
        time_of_day=np.zeros(steps),
        segment_start=np.zeros(steps, dtype=np.int64),
        groups=groups,
    )


def wake_column(steps: int, every: int) -> list[int]:
    return [1 if t % every == every - 1 else 0 for t in range(steps)]


def test_laplace_counts_are_the_baselines_rule() -> None:
    series = on_off_series([wake_column(100, 10), [0] * 100])
    model = ActivityModel()
    model.fit(series, 1)
    prob = model.probability()  # [1, P, 2]
    idle = model.counts[0, :, 0]
    assert prob[0, :, 0] == pytest.approx((idle[:, 1] + 1.0) / (idle.sum(axis=1) + 2.0))
    # the counts' sum as numpy's sum over the last axis gives it, bit for bit
    counts = model.counts
    np.testing.assert_array_equal(prob, (counts[..., 1] + 1.0) / (counts.sum(axis=-1) + 2.0))
    assert prob[0, 1, 0] == pytest.approx(1.0 / 101.0)  # never active: 1 / (n + 2)
    assert model.prior is None


def test_group_prior_pools_exchangeable_pairs_and_keeps_silent_groups_near_zero() -> None:
    """Three replicas of one application pair wake every 10 steps (1 idle step in 9 is followed by a
    wake); two pairs of a group that never talks stay idle; a pair with no wake of its own in a group
    that wakes takes the group's rate."""
    steps = 200
    columns = [wake_column(steps, 10) for _ in range(3)] + [[0] * steps, [0] * steps]
    groups = ("a->b", "a->b", "a->b", "x->y", "x->y")
    series = on_off_series(columns, groups)
    codes = series.group_codes()
    assert codes is not None
    assert codes.tolist() == [0, 0, 0, 1, 1]
    laplace, pooled = ActivityModel(), ActivityModel(groups=codes, strength=30.0)
    laplace.fit(series, 2)
    pooled.fit(series, 2)
    # the replicas keep about their own rate; the silent group falls well below Laplace's 1 / (n + 2)
    assert pooled.probability()[0, 0, 0] == pytest.approx(1.0 / 9.0, rel=0.1)
    assert pooled.probability()[0, 3, 0] < 0.2 * laplace.probability()[0, 3, 0]
    assert pooled.prior is not None
    assert pooled.prior.shape == (2, 5, 2)
    # a pair with no history of its own takes its group's rate
    fresh = on_off_series([wake_column(steps, 10), wake_column(steps, 10), [0] * steps], ("g", "g", "g"))
    short = ActivityModel(groups=fresh.group_codes(), strength=1000.0)
    short.fit(fresh, 1)
    group_rate = (short.counts[0, :, 0, 1].sum() + 1.0) / (short.counts[0, :, 0].sum() + 2.0)
    assert short.prior is not None
    assert short.prior[0, 2, 0] == pytest.approx(group_rate)
    assert short.probability()[0, 2, 0] > 5.0 * 1.0 / (steps + 1.0)


def test_group_prior_follows_updates() -> None:
    series = on_off_series([[0] * 50, [0] * 50], ("g", "g"))
    model = ActivityModel(groups=series.group_codes(), strength=10.0)
    model.fit(series, 1)
    before = model.probability()[0, 1, 0]
    model.update(on_off_series([wake_column(50, 5), [0] * 50], ("g", "g")))
    assert model.probability()[0, 1, 0] > before  # pair 1 never woke, its group did


def test_bad_activity_model_input_is_refused() -> None:
    with pytest.raises(TrafficError, match="strength"):
        ActivityModel(strength=0.0)
    with pytest.raises(TrafficError, match="groups"):
        ActivityModel(groups=np.array([[0, 1]], dtype=np.int64))
    model = ActivityModel(groups=np.array([0, 0, 1], dtype=np.int64))
    with pytest.raises(TrafficError, match="3 activity groups for 2 pairs"):
        model.fit(on_off_series([[0, 1], [1, 0]]), 1)


def test_pair_series_groups_are_checked_and_kept_by_slices() -> None:
    with pytest.raises(TrafficError, match="1 groups for 2 pairs"):
        on_off_series([[0, 1], [1, 0]], ("g",))
    series = on_off_series([[0, 1, 0], [1, 0, 1]], ("g", "h"))
    assert series.slice(1, 3).groups == ("g", "h")
    assert on_off_series([[0, 1]]).group_codes() is None


def with_telemetry(series: PairSeries, live: np.ndarray) -> PairSeries:
    """``series`` with endpoint features that read 0 wherever ``live[T, P]`` is False."""
    exog = np.repeat(live[..., None].astype(np.float32), 4, axis=2) * 0.5
    return replace(series, exog=exog, exog_names=("src_cpu", "src_memory", "dst_cpu", "dst_memory"))


def test_live_reads_memory_and_only_where_it_is_reported() -> None:
    series = on_off_series([[0, 1, 0], [1, 0, 1]])
    live = np.array([[True, False], [True, True], [False, True]])
    assert np.array_equal(with_telemetry(series, live).live(), live)
    silent = replace(with_telemetry(series, live), exog=np.zeros((3, 2, 4), dtype=np.float32))
    assert silent.live() is None  # memory never reported: an idle endpoint reads 0 too
    assert series.live() is None


def test_absent_state_counts_the_steps_before_a_replica_existed_apart() -> None:
    """Two replicas of one group: the first serves throughout and wakes every 10 steps, the second only
    exists from step 150 on. Without the absent state its 150 silent steps pull its rate down; with it,
    they are counted apart and, with no idle step of its own, it takes the group's rate."""
    steps = 160
    series = on_off_series([wake_column(steps, 10), [0] * steps], ("g", "g"))
    live = np.ones((steps, 2), dtype=bool)
    live[:150, 1] = False
    data = with_telemetry(series, live)
    read = data.live()
    assert read is not None
    assert np.array_equal(read, live)
    codes = data.group_codes()
    plain, apart = (
        ActivityModel(groups=codes, strength=10.0),
        ActivityModel(groups=codes, strength=10.0, absent=True),
    )
    plain.fit(data.slice(0, 150), 1)
    apart.fit(data.slice(0, 150), 1)
    assert apart.counts.shape == (1, 2, 3, 2)
    assert apart.counts[0, 1, IDLE].sum() == 0  # no idle step while it existed
    assert apart.counts[0, 1, ABSENT].sum() == 149
    assert apart.probability()[0, 1, IDLE] == pytest.approx(1.0 / 9.0, rel=0.15)
    assert plain.probability()[0, 1, IDLE] < 0.5 * apart.probability()[0, 1, IDLE]
    origins = np.array([151, 155])
    assert apart.state_before(data, origins).tolist() == [[IDLE, IDLE], [IDLE, IDLE]]
    assert apart.state_before(data, np.array([100, 101])).tolist() == [[ACTIVE, ABSENT], [IDLE, ABSENT]]
    assert apart.predict(data, origins, 1)[:, 0, 1] == pytest.approx(apart.probability()[0, 1, IDLE])


def test_absent_state_needs_endpoint_telemetry() -> None:
    model = ActivityModel(absent=True)
    with pytest.raises(TrafficError, match="needs the endpoint telemetry"):
        model.fit(on_off_series([[0, 1, 0], [1, 0, 1]]), 1)
    with pytest.raises(TrafficError, match="forecasts from a series"):
        model.predict_from(np.zeros(2), 1)
