"""Inputs of the global LSTM, built with numpy: level-invariant, log1p-scaled windows.

Per pair ``s = (log1p(x) - mu) / sd`` with ``mu``, ``sd`` from the training part; a window is ``s`` over
the last ``W`` steps minus its last value (the model sees shape, not level, so a pair that doubles its
traffic is forecast from its new level), with, for series whose pairs go idle, each step's on/off flag
(``x > 0``: the one piece of level the activity forecast needs), the time of day (sin, cos) of every step
and any exogenous telemetry features of the pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.errors import ValidationError
from netscaffold.predict.series import PairSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
F32Array = npt.NDArray[np.float32]
SD_FLOOR = 0.05
IDLE_MARGIN = 1e-3
"""Standardised margin above the idle level under which a step counts as idle (float32 rounding)."""


@dataclass(frozen=True)
class Scaler:
    mu: FloatArray
    sd: FloatArray
    max_log: float
    active_share: FloatArray | None = None
    """Per pair, the share of training steps that carried traffic (how often an idle pair wakes up)."""

    @classmethod
    def fit(cls, values: FloatArray) -> Scaler:
        logged = np.log1p(values)
        return cls(
            mu=logged.mean(axis=0),
            sd=np.maximum(logged.std(axis=0), SD_FLOOR),
            max_log=float(logged.max()) + 2.0,
            active_share=np.mean(values > 0.0, axis=0),
        )

    def standardise(self, values: FloatArray) -> F32Array:
        # in place from here: the same float64 operations as before, fewer temporaries
        logged = np.log1p(np.asarray(values, dtype=np.float64))
        logged -= self.mu
        logged /= self.sd
        return logged.astype(np.float32)

    def idle_level(self) -> FloatArray:
        """Per pair, the standardised value of 0 bit/s (a step above it carried traffic)."""
        return -self.mu / self.sd

    def pair_stats(self, with_activity: bool = False) -> F32Array:
        """Per pair ``[P, 2]``: the training mean and spread in log1p space (size and noisiness, not the
        current level, so a level shift is still not reverted); ``with_activity`` adds a third column,
        the share of training steps the pair was active."""
        columns = [self.mu / 10.0, self.sd]
        if with_activity:
            if self.active_share is None:  # fit() and restore() always set it with the on/off input
                raise ValidationError("the scaler holds no active shares", field="active_share")
            columns.append(self.active_share)
        return np.stack(columns, axis=-1).astype(np.float32)


@dataclass(frozen=True)
class FeatureSpec:
    """What the network sees. Per window step: the level-invariant traffic, the time of day (sin, cos)
    and any exogenous features. Per sample (static, fed to the head): the pair's training log mean and
    spread (its size and noisiness, not its current level), and, with ``seasonal_lag`` steps (one day),
    the change the pair made one period earlier over the same horizon (``s[o-lag+h] - s[o-lag-1]``): a
    level-invariant seasonal hint."""

    window: int
    horizon: int
    seasonal_lag: int = 0
    pair_stats: bool = True
    exog_names: tuple[str, ...] = ()
    activity_flag: bool = False
    anchor_alpha: float = 1.0
    """The level the window is taken relative to and the forecast is added to: an exponentially weighted
    mean of the window's standardised values with this smoothing (1.0: the last value)."""

    def anchor_weights(self) -> F32Array:
        """Weights over the window's steps (oldest first) that sum to 1: ``alpha (1 - alpha)^age``."""
        age = np.arange(self.window - 1, -1, -1, dtype=np.float64)
        weights: npt.NDArray[np.float64] = self.anchor_alpha * (1.0 - self.anchor_alpha) ** age
        return np.asarray(weights / weights.sum(), dtype=np.float32)

    def anchor(self, level: npt.NDArray[Any], axis: int = -1) -> npt.NDArray[Any]:
        """The anchor of windows whose steps run along ``axis`` of ``level``: its last step, or the
        weighted mean of :meth:`anchor_weights` (in ``level``'s precision)."""
        if self.anchor_alpha >= 1.0:
            return np.asarray(np.take(level, -1, axis=axis))
        weights = self.anchor_weights().astype(level.dtype, copy=False)
        if axis in (-1, level.ndim - 1):
            return np.asarray(level @ weights)
        return np.tensordot(weights, level, axes=([0], [axis]))

    @property
    def min_context(self) -> int:
        return max(self.window, self.seasonal_lag + 1 if self.seasonal_lag else 0)

    def sequence_names(self) -> tuple[str, ...]:
        flags = ("active",) if self.activity_flag else ()
        return ("dlog_traffic", *flags, "tod_sin", "tod_cos", *self.exog_names)

    def static_names(self) -> tuple[str, ...]:
        stats: tuple[str, ...] = ("pair_log_mean", "pair_log_sd") if self.pair_stats else ()
        if self.pair_stats and self.activity_flag:
            stats += ("pair_active_share",)
        seasonal = tuple(f"seasonal_delta_h{h + 1}" for h in range(self.horizon)) if self.seasonal_lag else ()
        return (*stats, *seasonal)

    def names(self) -> tuple[str, ...]:
        return (*self.sequence_names(), *self.static_names())

    def build(
        self, series: PairSeries, scaled: F32Array, scaler: Scaler, origins: IntArray, pair_idx: IntArray
    ) -> tuple[F32Array, F32Array, F32Array]:
        """(sequence ``[B, W, F]``, static ``[B, S]``, last standardised value ``[B]``)."""
        steps = origins[:, None] + np.arange(-self.window, 0)[None, :]
        level = scaled[steps, pair_idx[:, None]]
        last = self.anchor(level)
        angle = 2.0 * np.pi * series.time_of_day[steps]
        columns = [level - last[:, None], np.sin(angle), np.cos(angle)]
        if self.activity_flag:
            columns.insert(1, level > scaler.idle_level()[pair_idx][:, None] + IDLE_MARGIN)
        sequence = np.stack(columns, axis=-1).astype(np.float32)
        if series.exog is not None:
            exog = series.exog[steps, pair_idx[:, None]].astype(np.float32)
            sequence = np.concatenate([sequence, exog], axis=-1)
        static: list[F32Array] = []
        if self.pair_stats:
            static.append(scaler.pair_stats(self.activity_flag)[pair_idx])
        if self.seasonal_lag:
            base = origins - self.seasonal_lag
            ahead = scaled[base[:, None] + np.arange(self.horizon)[None, :], pair_idx[:, None]]
            static.append(ahead - scaled[base - 1, pair_idx][:, None])
        joined = np.concatenate(static, axis=-1) if static else np.zeros((origins.size, 0), np.float32)
        return sequence, joined.astype(np.float32), last.astype(np.float32)

    def build_all_pairs(
        self, series: PairSeries, scaled: F32Array, scaler: Scaler, origins: IntArray
    ) -> tuple[F32Array, F32Array, F32Array]:
        """:meth:`build` for every pair at each origin, origin-major (``[O x P, ...]``), gathered by whole
        rows (one window of steps serves every pair) instead of one index per sample."""
        n_orig, n_pairs = origins.size, series.n_pairs
        steps = origins[:, None] + np.arange(-self.window, 0)[None, :]  # [O, W]
        level = scaled[steps].transpose(0, 2, 1)  # [O, P, W]
        last = self.anchor(level)
        angle = 2.0 * np.pi * series.time_of_day[steps]  # [O, W]
        parts = [(level - last[..., None])[..., None]]
        if self.activity_flag:
            parts.append((level > scaler.idle_level()[None, :, None] + IDLE_MARGIN)[..., None])
        parts += [
            np.broadcast_to(np.sin(angle)[:, None, :, None], (n_orig, n_pairs, self.window, 1)),
            np.broadcast_to(np.cos(angle)[:, None, :, None], (n_orig, n_pairs, self.window, 1)),
        ]
        if series.exog is not None:
            parts.append(series.exog[steps].transpose(0, 2, 1, 3))  # [O, P, W, F]
        sequence = np.concatenate(parts, axis=-1, dtype=np.float32).reshape(n_orig * n_pairs, self.window, -1)
        return sequence, self._static_all_pairs(scaled, scaler, origins), last.reshape(-1).astype(np.float32)

    def build_all_pairs_time_major(
        self, series: PairSeries, scaled: F32Array, scaler: Scaler, origins: IntArray
    ) -> tuple[F32Array, F32Array, F32Array]:
        """:meth:`build_all_pairs` with the sequence time-major (``[W, O x P, F]``, what
        :class:`~netscaffold.predict.lstm_net.PackedLstm` reads), written column by column into one
        array (the same values, float32, without the per-feature temporaries)."""
        n_orig, n_pairs = origins.size, series.n_pairs
        steps = origins[None, :] + np.arange(-self.window, 0)[:, None]  # [W, O]
        level = scaled[steps]  # [W, O, P]
        last = self.anchor(level, axis=0)
        sequence = np.empty((self.window, n_orig, n_pairs, len(self.sequence_names())), np.float32)
        np.subtract(level, last, out=sequence[..., 0])
        column = 1
        if self.activity_flag:
            np.greater(level, scaler.idle_level() + IDLE_MARGIN, out=sequence[..., 1], casting="unsafe")
            column = 2
        angle = 2.0 * np.pi * series.time_of_day[steps]  # [W, O]
        sequence[..., column] = np.sin(angle)[..., None]
        sequence[..., column + 1] = np.cos(angle)[..., None]
        if series.exog is not None:
            sequence[..., column + 2 :] = series.exog[steps]  # [W, O, P, F]
        return (
            sequence.reshape(self.window, n_orig * n_pairs, -1),
            self._static_all_pairs(scaled, scaler, origins),
            last.reshape(-1).astype(np.float32),
        )

    def _static_all_pairs(self, scaled: F32Array, scaler: Scaler, origins: IntArray) -> F32Array:
        """The static inputs ``[O x P, S]`` of every pair at each origin, origin-major."""
        n_orig, n_pairs = origins.size, scaled.shape[1]
        static: list[F32Array] = []
        if self.pair_stats:
            static.append(np.tile(scaler.pair_stats(self.activity_flag), (n_orig, 1)))
        if self.seasonal_lag:
            base = origins - self.seasonal_lag
            ahead = scaled[base[:, None] + np.arange(self.horizon)[None, :]]  # [O, H, P]
            change = (ahead - scaled[base - 1][:, None, :]).transpose(0, 2, 1)
            static.append(change.reshape(n_orig * n_pairs, self.horizon))
        joined = np.concatenate(static, axis=-1) if static else np.zeros((n_orig * n_pairs, 0), np.float32)
        return joined.astype(np.float32)


def sample_grid(origins: IntArray, n_pairs: int) -> tuple[IntArray, IntArray]:
    """Every (origin, pair), origin-major."""
    return np.repeat(origins, n_pairs), np.tile(np.arange(n_pairs, dtype=np.int64), origins.size)
