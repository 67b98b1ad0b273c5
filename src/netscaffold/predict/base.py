"""The one forecaster interface shared by baselines and the LSTM (Darts-like ``fit`` / ``predict``).

``predict_at(series, origins, horizon)`` is the batched core: for each origin ``o`` it forecasts steps
``o .. o+horizon-1`` from ``series.values[:o]`` only. ``predict(context, horizon)`` is the single-origin
form (the origin is the end of the context). Outputs are a :class:`Forecast`: quantiles in the series'
unit, non-decreasing along the level axis, and the probability that each pair is active.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError, ValidationError
from netscaffold.predict.series import PairSeries, check_context

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.99)
DEFAULT_HORIZON = 10


@dataclass(frozen=True, eq=False)
class Forecast:
    """``quantiles[O, H, P, Q]`` (series unit) and ``activity[O, H, P]`` for ``origins[O]``."""

    origins: IntArray
    levels: tuple[float, ...]
    quantiles: FloatArray
    activity: FloatArray

    @property
    def point(self) -> FloatArray:
        """The median forecast ``[O, H, P]`` (the point that NMAE scores)."""
        return np.asarray(self.quantiles[..., self.level_index(0.5)])

    def level_index(self, level: float) -> int:
        for i, q in enumerate(self.levels):
            if abs(q - level) < 1e-9:
                return i
        raise ValidationError(f"quantile {level} not among {self.levels}", field="levels")


def check_levels(levels: tuple[float, ...]) -> tuple[float, ...]:
    arr = np.asarray(levels, dtype=np.float64)
    if arr.size == 0 or np.any(np.diff(arr) <= 0) or arr[0] <= 0 or arr[-1] >= 1:
        raise ValidationError(
            f"quantile levels must be increasing within (0, 1), got {levels}", field="levels"
        )
    if not np.any(np.abs(arr - 0.5) < 1e-9):
        raise ValidationError("quantile levels must include 0.5 (the point forecast)", field="levels")
    return tuple(float(v) for v in arr)


def check_horizon(horizon: int) -> int:
    if horizon < 1:
        raise ValidationError(f"horizon must be >= 1, got {horizon}", field="horizon")
    return horizon


def monotone(quantiles: FloatArray) -> FloatArray:
    """Non-negative and non-crossing along the last axis."""
    return np.asarray(np.maximum.accumulate(np.maximum(quantiles, 0.0), axis=-1), dtype=np.float64)


class Forecaster(ABC):
    """Fit on a history, forecast quantiles and activity; save and load through one checkpoint format."""

    name: ClassVar[str]

    def __init__(
        self,
        *,
        levels: tuple[float, ...] = DEFAULT_LEVELS,
        horizon: int = DEFAULT_HORIZON,
        validation_fraction: float = 0.15,
        seed: int = 0,
    ) -> None:
        if not 0.0 < validation_fraction < 0.9:
            raise ValidationError(
                f"validation_fraction must be in (0, 0.9), got {validation_fraction}",
                field="validation_fraction",
            )
        self.levels = check_levels(levels)
        self.horizon = check_horizon(horizon)
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.pairs: tuple[tuple[str, str], ...] = ()
        self.nodes: tuple[str, ...] = ()
        self.fingerprint = ""
        self.fitted = False

    # -- what every model provides ---------------------------------------------------------------
    @property
    @abstractmethod
    def min_context(self) -> int:
        """Steps of contiguous history needed before an origin."""

    @abstractmethod
    def _fit(self, history: PairSeries, split: int) -> None:
        """Fit on ``history``; steps ``>= split`` are the chronological validation part."""

    @abstractmethod
    def _predict_at(self, series: PairSeries, origins: IntArray, horizon: int) -> Forecast: ...

    @abstractmethod
    def _partial_fit(self, recent: PairSeries) -> None: ...

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-safe hyper-parameters (what the constructor and tuning chose)."""

    @abstractmethod
    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Fitted numeric state."""

    @abstractmethod
    def restore(self, config: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None: ...

    # -- shared behaviour --------------------------------------------------------------------------
    def fit(self, history: PairSeries) -> Self:
        split = round(history.steps * (1.0 - self.validation_fraction))
        self._fit(history, split)
        self.pairs, self.nodes = history.pairs, history.nodes
        self.fingerprint = history.fingerprint()
        self.fitted = True
        return self

    def predict_at(self, series: PairSeries, origins: npt.ArrayLike, horizon: int) -> Forecast:
        self._check_ready(series)
        check_horizon(horizon)
        orig = np.asarray(origins, dtype=np.int64).reshape(-1)
        if orig.size and (orig.min() < 1 or orig.max() > series.steps):
            raise TrafficError(f"origins must be within 1..{series.steps}", field="origins")
        if orig.size:
            have = orig - series.segment_start[orig - 1]
            short = np.flatnonzero(have < self.min_context)
            if short.size:
                raise TrafficError(
                    f"origin {int(orig[short[0]])} has {int(have[short[0]])} steps of contiguous history; "
                    f"model {self.name!r} needs {self.min_context}",
                    field="tm",
                )
        return self._predict_at(series, orig, horizon)

    def predict(self, context: PairSeries, horizon: int) -> Forecast:
        """Forecast the ``horizon`` steps that follow the end of ``context``."""
        check_context(context, self.min_context, self.name)
        return self.predict_at(context, np.array([context.steps]), horizon)

    def partial_fit(self, recent: PairSeries) -> Self:
        """Update the model with new windows (incremental; no refit from scratch)."""
        self._check_ready(recent)
        self._partial_fit(recent)
        return self

    def save(self, path: Path) -> None:
        from netscaffold.predict.checkpoint import save_checkpoint

        if not self.fitted:
            raise ValidationError("cannot save a forecaster that was not fitted", element=self.name)
        save_checkpoint(self, path)

    def _check_ready(self, series: PairSeries) -> None:
        if not self.fitted:
            raise ValidationError("the forecaster is not fitted: call fit() first", element=self.name)
        if series.pairs != self.pairs:
            raise TrafficError(
                f"the series has {series.n_pairs} pairs over nodes {list(series.nodes)[:4]}..., the model "
                f"was fitted on {len(self.pairs)} pairs over {list(self.nodes)[:4]}...: another node set",
                field="nodes",
            )

    def base_config(self) -> dict[str, Any]:
        return {
            "levels": list(self.levels),
            "horizon": self.horizon,
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
        }
