"""Forecasters by name: the names the CLI and the engine accept."""

from __future__ import annotations

from typing import Any

from netscaffold.errors import ValidationError
from netscaffold.predict.base import Forecaster

MODEL_NAMES: tuple[str, ...] = ("naive", "ewma", "meank", "seasonal", "quantile", "lstm")
BASELINE_NAMES: tuple[str, ...] = MODEL_NAMES[:-1]


def make_forecaster(name: str, **kwargs: Any) -> Forecaster:
    """A new, unfitted forecaster; an unknown name is a ValidationError listing the known ones."""
    from netscaffold.predict import baselines

    classes: dict[str, type[Forecaster]] = {
        "naive": baselines.LastValue,
        "ewma": baselines.Ewma,
        "meank": baselines.MeanK,
        "seasonal": baselines.SeasonalNaive,
        "quantile": baselines.HistoricalQuantile,
    }
    if name == "lstm":
        from netscaffold.predict.lstm import LstmForecaster

        return LstmForecaster(**kwargs)
    if name not in classes:
        raise ValidationError(f"unknown model {name!r} (known: {', '.join(MODEL_NAMES)})", field="model")
    return classes[name](**kwargs)
