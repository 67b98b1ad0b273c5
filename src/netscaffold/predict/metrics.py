"""Forecast quality metrics. Arrays of any matching shape; sums run over every element.

NMAE is ``sum |error| / sum |actual|`` (not a mean of per-series ratios), so large pairs weigh more,
as they do in the network. Coverage is one-sided: the share of actuals at or below the quantile.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from netscaffold.errors import ValidationError

ArrayLike = npt.ArrayLike


def _pair(actual: ArrayLike, predicted: ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if a.shape != p.shape:
        raise ValidationError(f"actual {a.shape} and predicted {p.shape} differ in shape", field="predicted")
    if a.size == 0:
        raise ValidationError("no values to score", field="actual")
    return a, p


def mae(actual: ArrayLike, predicted: ArrayLike) -> float:
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(a - p)))


def nmae(actual: ArrayLike, predicted: ArrayLike) -> float:
    a, p = _pair(actual, predicted)
    denominator = float(np.sum(np.abs(a)))
    if denominator == 0.0:
        raise ValidationError("NMAE is undefined when every actual value is 0", field="actual")
    return float(np.sum(np.abs(a - p)) / denominator)


def rmse(actual: ArrayLike, predicted: ArrayLike) -> float:
    a, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((a - p) ** 2)))


def pinball(actual: ArrayLike, quantile: ArrayLike, level: float) -> float:
    """Mean pinball (quantile) loss of ``quantile`` predictions at ``level``."""
    if not 0.0 < level < 1.0:
        raise ValidationError(f"level must be in (0, 1), got {level}", field="level")
    a, q = _pair(actual, quantile)
    error = a - q
    return float(np.mean(np.maximum(level * error, (level - 1.0) * error)))


def coverage(actual: ArrayLike, quantile: ArrayLike) -> float:
    """Share of actuals <= the quantile (one-sided; a calibrated q90 gives 0.9)."""
    a, q = _pair(actual, quantile)
    return float(np.mean(a <= q))


def _binary(
    active: ArrayLike, probability: ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    truth = np.asarray(active).astype(bool)
    prob = np.asarray(probability, dtype=np.float64)
    _pair(truth.astype(np.float64), prob)
    if np.any((prob < 0) | (prob > 1) | ~np.isfinite(prob)):
        raise ValidationError("probabilities must be within [0, 1]", field="probability")
    return truth, prob


def precision(active: ArrayLike, probability: ArrayLike, threshold: float = 0.5) -> float:
    """Of the pairs predicted active (probability >= threshold), the share that were; 1.0 if none."""
    truth, prob = _binary(active, probability)
    predicted = prob >= threshold
    return float(np.sum(truth & predicted) / np.sum(predicted)) if np.any(predicted) else 1.0


def recall(active: ArrayLike, probability: ArrayLike, threshold: float = 0.5) -> float:
    """Of the pairs that were active, the share predicted active; 1.0 if none was."""
    truth, prob = _binary(active, probability)
    return float(np.sum(truth & (prob >= threshold)) / np.sum(truth)) if np.any(truth) else 1.0


def brier(active: ArrayLike, probability: ArrayLike) -> float:
    truth, prob = _binary(active, probability)
    return float(np.mean((prob - truth) ** 2))
