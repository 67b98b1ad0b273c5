"""Metrics and the drift detector."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from netscaffold.errors import ValidationError
from netscaffold.predict import PageHinkley, metrics

values = arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1e6, allow_nan=False))


def test_known_values() -> None:
    actual, predicted = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 1.0, 4.0])
    assert metrics.mae(actual, predicted) == pytest.approx(0.75)
    assert metrics.nmae(actual, predicted) == pytest.approx(3.0 / 10.0)
    assert metrics.rmse(actual, predicted) == pytest.approx(np.sqrt(5.0 / 4.0))
    assert metrics.pinball(actual, predicted, 0.9) == pytest.approx((0.1 * 1 + 0.9 * 2) / 4)
    assert metrics.coverage(actual, predicted) == pytest.approx(0.75)


def test_activity_scores() -> None:
    active = np.array([1, 1, 0, 0, 1])
    prob = np.array([0.9, 0.2, 0.6, 0.1, 0.7])
    assert metrics.precision(active, prob) == pytest.approx(2 / 3)
    assert metrics.recall(active, prob) == pytest.approx(2 / 3)
    assert metrics.brier(active, prob) == pytest.approx(np.mean((prob - active) ** 2))


@given(values)
@settings(max_examples=50, deadline=None)
def test_perfect_forecast_scores_zero_and_full_coverage(actual: np.ndarray) -> None:
    assert metrics.mae(actual, actual) == 0.0
    assert metrics.pinball(actual, actual, 0.5) == 0.0
    assert metrics.coverage(actual, actual) == 1.0
    if actual.sum() > 0:
        assert metrics.nmae(actual, actual) == 0.0


@given(values, st.floats(0.01, 0.99))
@settings(max_examples=50, deadline=None)
def test_pinball_at_median_is_half_the_mae(actual: np.ndarray, level: float) -> None:
    predicted = actual[::-1].copy()
    assert metrics.pinball(actual, predicted, 0.5) == pytest.approx(0.5 * metrics.mae(actual, predicted))
    assert metrics.pinball(actual, predicted, level) >= 0.0
    assert metrics.rmse(actual, predicted) >= metrics.mae(actual, predicted) - 1e-9


def test_bad_inputs() -> None:
    with pytest.raises(ValidationError, match="shape"):
        metrics.mae([1.0, 2.0], [1.0])
    with pytest.raises(ValidationError, match="undefined"):
        metrics.nmae([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValidationError, match="level"):
        metrics.pinball([1.0], [1.0], 1.0)
    with pytest.raises(ValidationError, match="probabilities"):
        metrics.brier([1], [1.5])


def test_page_hinkley_fires_on_a_rise_and_not_on_noise() -> None:
    rng = np.random.default_rng(0)
    detector = PageHinkley(delta=0.005, threshold=0.5, min_samples=30)
    stable = 0.11 + rng.normal(0, 0.01, 500)
    assert not any(detector.update(float(v)) for v in stable)
    risen = 0.2 + rng.normal(0, 0.01, 100)
    fired = [i for i, v in enumerate(risen) if detector.update(float(v))]
    assert fired
    assert fired[0] < 20
    assert detector.alarms >= 1


def test_page_hinkley_ignores_a_fall_and_refuses_bad_values() -> None:
    detector = PageHinkley(min_samples=5)
    for v in [0.3] * 50 + [0.1] * 200:
        assert not detector.update(v)
    with pytest.raises(ValidationError):
        detector.update(float("nan"))
    with pytest.raises(ValidationError):
        PageHinkley(threshold=0.0)
