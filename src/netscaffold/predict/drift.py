"""Drift detection on forecast error: Page-Hinkley on a stream of NMAE values.

The detector lives here; the refiner decides what to do when it fires (for example ``partial_fit``).
It raises an alarm when the cumulative excess of the error over its running mean (less a tolerance
``delta``) rises more than ``threshold`` above its minimum, i.e. when the error has grown and stayed up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from netscaffold.errors import ValidationError


@dataclass
class PageHinkley:
    """``update(nmae) -> True`` when an upward shift of the error is detected (then the state resets)."""

    delta: float = 0.005
    threshold: float = 0.5
    min_samples: int = 30
    count: int = field(default=0, init=False)
    mean: float = field(default=0.0, init=False)
    cumulative: float = field(default=0.0, init=False)
    minimum: float = field(default=0.0, init=False)
    alarms: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delta) and self.delta >= 0):
            raise ValidationError(f"delta must be >= 0, got {self.delta}", field="delta")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValidationError(f"threshold must be > 0, got {self.threshold}", field="threshold")
        if self.min_samples < 1:
            raise ValidationError(f"min_samples must be >= 1, got {self.min_samples}", field="min_samples")

    def update(self, error: float) -> bool:
        if not math.isfinite(error):
            raise ValidationError(f"error must be finite, got {error}", field="error")
        self.count += 1
        self.mean += (error - self.mean) / self.count
        self.cumulative += error - self.mean - self.delta
        self.minimum = min(self.minimum, self.cumulative)
        if self.count >= self.min_samples and self.statistic > self.threshold:
            self.alarms += 1
            self.reset()
            return True
        return False

    @property
    def statistic(self) -> float:
        return self.cumulative - self.minimum

    def reset(self) -> None:
        self.count, self.mean, self.cumulative, self.minimum = 0, 0.0, 0.0, 0.0
