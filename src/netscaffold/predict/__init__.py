"""Predictive analytics: forecasters (baselines and a global LSTM) behind one interface, metrics, drift
detection, and the PredictedGraph builder. torch is imported only by the LSTM modules, lazily."""

from netscaffold.predict.base import DEFAULT_LEVELS, Forecast, Forecaster
from netscaffold.predict.checkpoint import load_checkpoint
from netscaffold.predict.drift import PageHinkley
from netscaffold.predict.registry import BASELINE_NAMES, MODEL_NAMES, make_forecaster
from netscaffold.predict.series import PairSeries

__all__ = [
    "BASELINE_NAMES",
    "DEFAULT_LEVELS",
    "MODEL_NAMES",
    "Forecast",
    "Forecaster",
    "PageHinkley",
    "PairSeries",
    "load_checkpoint",
    "make_forecaster",
]
