"""Inputs of the global LSTM, built with numpy: level-invariant, log1p-scaled windows.

Per pair ``s = (log1p(x) - mu) / sd`` with ``mu``, ``sd`` from the training part; a window is ``s`` over
the last ``W`` steps minus its last value (the model sees shape, not level, so a pair that doubles its
traffic is forecast from its new level), with, for series whose pairs go idle, each step's on/off flag
(``x > 0``: the one piece of level the activity forecast needs), the time of day (sin, cos) of every step,
for traffic matrices the network context (the totals of the pair's source row, destination column and the
whole matrix, level-invariant the same way) and any exogenous telemetry features of the pair.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.errors import TrafficError, ValidationError
from netscaffold.predict.series import Pair, PairSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
F32Array = npt.NDArray[np.float32]
SD_FLOOR = 0.05
IDLE_MARGIN = 1e-3
"""Standardised margin above the idle level under which a step counts as idle (float32 rounding)."""


def standardised_log(
    values: FloatArray,
    mu: FloatArray,
    sd: FloatArray,
    log1p: Callable[[FloatArray], FloatArray] = np.log1p,
) -> F32Array:
    """``(log1p(values) - mu) / sd`` as float32, in float64 and in place after the logarithm: how pair
    values and node totals are standardised (``log1p``: another implementation of it, e.g. torch's)."""
    logged = log1p(np.asarray(values, dtype=np.float64))
    logged -= mu
    logged /= sd
    return logged.astype(np.float32)


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
        return standardised_log(values, self.mu, self.sd)

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


CONTEXT_NAMES = ("src_out_total", "dst_in_total", "network_total")
"""Per window step, the network context of a pair in a traffic matrix: its source node's outgoing total,
its destination node's incoming total and the whole matrix's total."""


def pair_ends(series: PairSeries) -> tuple[IntArray, IntArray] | None:
    """Per pair, the indices of its source and destination in ``series.nodes``; None when some end is not
    a node of the series (no matrix structure to aggregate over)."""
    return ends_in(series.pairs, series.nodes)


@functools.lru_cache(maxsize=8)
def ends_in(pairs: tuple[Pair, ...], nodes: tuple[str, ...]) -> tuple[IntArray, IntArray] | None:
    """:func:`pair_ends` by pairs and nodes (every forecast of a model asks again: 10,000 pairs cost ~5 ms
    in Python; a checkpoint's pairs and nodes ask it too)."""
    index = {name: i for i, name in enumerate(nodes)}
    if not pairs or any(a not in index or b not in index for a, b in pairs):
        return None
    src = np.array([index[a] for a, _ in pairs], dtype=np.int64)
    dst = np.array([index[b] for _, b in pairs], dtype=np.int64)
    src.flags.writeable = False  # shared by every caller (cached)
    dst.flags.writeable = False
    return src, dst


def node_columns(ends: IntArray, n_nodes: int) -> list[IntArray]:
    """Per node, the columns (pairs) whose end is that node, in increasing order: what ``ends == node``
    selects, found once instead of one comparison of every pair per node and call."""
    order = np.argsort(ends, kind="stable")
    bounds = np.searchsorted(ends[order], np.arange(n_nodes + 1))
    return [order[bounds[node] : bounds[node + 1]] for node in range(n_nodes)]


def matrix_totals(series: PairSeries) -> FloatArray | None:
    """``[T, 2N + 1]``: :meth:`NetworkContext.totals` of the series' own columns (None when its pairs are
    not between its nodes)."""
    ends = pair_ends(series)
    if ends is None:
        return None
    n_nodes = len(series.nodes)
    return NetworkContext.totals(
        series.values, node_columns(ends[0], n_nodes), node_columns(ends[1], n_nodes)
    )


@dataclass(frozen=True)
class NetworkContext:
    """The network context inputs: per step, every node's outgoing and incoming total and the network
    total, ``log1p``-scaled and standardised per column on training data (``mu``, ``sd`` over
    ``[out_0..out_N-1, in_0..in_N-1, total]``), then gathered per pair ``[T, P, 3]``. Aggregates are
    smoother than a pair and lead it; the feature builders make them level-invariant like the pair's own
    window (each window minus its anchor)."""

    src: IntArray
    dst: IntArray
    mu: FloatArray
    sd: FloatArray

    @staticmethod
    def totals(values: FloatArray, out_columns: list[IntArray], in_columns: list[IntArray]) -> FloatArray:
        """``[T, 2N + 1]``: each node's outgoing and incoming total and the network total per step
        (``out_columns`` / ``in_columns``: :func:`node_columns` of the pairs' sources / destinations). Row
        by row: a step's totals do not depend on which other steps are in ``values``, bit for bit (numpy
        sums the rows of a 2-D array alike whatever their count, but a single row by another path, which
        may round differently from nine terms on: one step is summed as two copies of itself)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[0] == 1:
            return NetworkContext.totals(np.repeat(values, 2, axis=0), out_columns, in_columns)[:1]
        n_nodes = len(out_columns)
        out = np.zeros((values.shape[0], 2 * n_nodes + 1))
        for node, (leaving, entering) in enumerate(zip(out_columns, in_columns, strict=True)):
            out[:, node] = values[:, leaving].sum(axis=1)
            out[:, n_nodes + node] = values[:, entering].sum(axis=1)
        out[:, -1] = values.sum(axis=1)
        return out

    @functools.cached_property
    def pair_columns(self) -> tuple[list[IntArray], list[IntArray]]:
        """Per node, the columns of the pairs leaving it and of those entering it (:func:`node_columns`)."""
        n_nodes = (self.mu.size - 1) // 2
        return node_columns(self.src, n_nodes), node_columns(self.dst, n_nodes)

    @classmethod
    def fit(cls, series: PairSeries, split: int) -> NetworkContext:
        ends = pair_ends(series)
        if ends is None:
            raise ValidationError(
                "network context needs pairs whose ends are nodes of the series", field="network_context"
            )
        training = series.slice(0, split)  # the scaling sees the training steps only (summed alone)
        totals = training.node_totals if training.node_totals is not None else matrix_totals(training)
        assert totals is not None  # the pairs are between the series' nodes (checked above)
        logged = np.log1p(totals)
        return cls(ends[0], ends[1], logged.mean(axis=0), np.maximum(logged.std(axis=0), SD_FLOOR))

    def build(self, series: PairSeries, rows: IntArray | None = None) -> ContextTable:
        """The context of ``series`` as a :class:`ContextTable` (``[T, P, 3]`` float32 on indexing): per
        step and pair, the standardised log totals of its source's outgoing traffic, its destination's
        incoming traffic and the network (the series' ``node_totals`` where it carries them, else the
        sums of its columns); ``rows``: steps to sum at once (the ones the caller will read)."""
        n_nodes = (self.mu.size - 1) // 2
        ends = pair_ends(series)
        if ends is None or len(series.nodes) != n_nodes or ends[0].shape != self.src.shape:
            raise TrafficError(
                f"the model's network context covers {n_nodes} nodes and {self.src.size} pairs; the series "
                f"has {len(series.nodes)} nodes and {series.n_pairs} pairs",
                field="tm",
            )
        table = ContextTable(self, series)
        if rows is not None:
            table.node_table(rows)
        return table

    def standardised_totals(self, totals: FloatArray) -> F32Array:
        """``[T, 2N + 1]`` node and network totals -> their standardised logs, float32."""
        return standardised_log(totals, self.mu, self.sd)


class ContextTable:
    """:meth:`NetworkContext.build` of a series: indexed like a ``[T, P, 3]`` float32 array (by steps, or
    by steps and pairs, with numpy's rules), but holding only the standardised node totals ``[T, 2N + 1]``
    and computing them for the steps asked for, once each. The feature builders read a window and the
    seasonal steps of each origin (about 40 of the 290 steps an inference slice holds with a one-day
    hint), so the rest is never summed, and nothing of size ``T x P x 3`` is made. Each step's values
    are those of the dense array bit for bit (a step's totals do not depend on the other steps)."""

    def __init__(self, context: NetworkContext, series: PairSeries) -> None:
        self.context, self.series = context, series
        n_nodes = (context.mu.size - 1) // 2
        self.shape = (series.steps, series.n_pairs, len(CONTEXT_NAMES))
        self.dtype = np.dtype(np.float32)
        self.columns = (context.src, n_nodes + context.dst, np.full(context.src.shape, 2 * n_nodes))
        self._table = np.zeros((series.steps, context.mu.size), np.float32)
        self._done = np.zeros(series.steps, dtype=bool)

    def node_table(self, steps: Any = slice(None)) -> F32Array:
        """The standardised node totals ``[T, 2N + 1]``, computed at least for ``steps`` (any index of
        the steps axis; other rows may still be zero)."""
        wanted = np.unique(np.arange(self.shape[0])[steps])
        missing = wanted[~self._done[wanted]]
        if missing.size:
            given = self.series.node_totals  # a shard's: its own columns are only part of the matrix
            if given is None:
                totals = NetworkContext.totals(self.series.values[missing], *self.context.pair_columns)
            else:
                totals = np.asarray(given[missing], dtype=np.float64)
            self._table[missing] = self.context.standardised_totals(totals)
            self._done[missing] = True
        return self._table

    def __getitem__(self, key: Any) -> F32Array:
        if isinstance(key, tuple) and len(key) != 2:
            raise IndexError(f"a network context is indexed by steps and pairs, got {len(key)} indices")
        steps, pairs = key if isinstance(key, tuple) else (key, slice(None))
        table = self.node_table(steps)
        if isinstance(pairs, slice) and pairs == slice(None):
            rows = table[steps]
            parts = [rows[..., column] for column in self.columns]
        else:
            parts = [table[steps, column[pairs]] for column in self.columns]
        return np.stack(parts, axis=-1)

    def __array__(self, dtype: Any = None, copy: Any = None) -> F32Array:
        dense = self[:]
        return dense if dtype is None else dense.astype(dtype)


@dataclass(frozen=True)
class FeatureSpec:
    """What the network sees. Per window step: the level-invariant traffic, the time of day (sin, cos),
    optionally the network context and any exogenous features. Per sample (static, fed to the head): the
    pair's training log mean and spread (its size and noisiness, not its current level), and, with
    ``seasonal_lag`` steps (one day), the change the pair made one period earlier over the same horizon
    (``s[o-lag+h] - s[o-lag-1]``, averaged over ``seasonal_days`` periods): a level-invariant seasonal
    hint; with the network context too, the same change of the context's three totals.

    All three builders (:meth:`build` per sample, :meth:`build_all_pairs`,
    :meth:`build_all_pairs_time_major`) give the same values (tested)."""

    window: int
    horizon: int
    seasonal_lag: int = 0
    pair_stats: bool = True
    exog_names: tuple[str, ...] = ()
    activity_flag: bool = False
    anchor_alpha: float = 1.0
    """The level the window is taken relative to and the forecast is added to: an exponentially weighted
    mean of the window's standardised values with this smoothing (1.0: the last value)."""
    network_context: bool = False
    """Per window step, the :class:`NetworkContext` of the pair (its source's outgoing total, its
    destination's incoming total, the network total), each window minus its own anchor."""
    seasonal_days: int = 1
    """Periods the seasonal hint averages over (``s[o-d*lag+h] - s[o-d*lag-1]`` for ``d = 1..days``)."""
    context_seasonal: bool = False
    """With ``network_context`` and ``seasonal_lag``: the context's change one period earlier over the
    horizon as static inputs too."""

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
        seasonal = self.seasonal_lag * self.seasonal_days + 1 if self.seasonal_lag else 0
        return max(self.window, seasonal)

    def rows_read(self, origins: IntArray) -> IntArray:
        """The steps the builders read for ``origins``, sorted and unique: each origin's window and, with
        the seasonal hint, the ``horizon + 1`` steps of each earlier period it compares."""
        days = range(1, self.seasonal_days + 1) if self.seasonal_lag else range(0)
        offsets = [np.arange(-self.window, 0)]
        offsets += [np.arange(-1, self.horizon) - day * self.seasonal_lag for day in days]
        return np.unique(np.asarray(origins)[:, None] + np.concatenate(offsets)[None, :])

    def sequence_names(self) -> tuple[str, ...]:
        flags = ("active",) if self.activity_flag else ()
        context = CONTEXT_NAMES if self.network_context else ()
        return ("dlog_traffic", *flags, "tod_sin", "tod_cos", *context, *self.exog_names)

    def static_names(self) -> tuple[str, ...]:
        stats: tuple[str, ...] = ("pair_log_mean", "pair_log_sd") if self.pair_stats else ()
        if self.pair_stats and self.activity_flag:
            stats += ("pair_active_share",)
        seasonal = tuple(f"seasonal_delta_h{h + 1}" for h in range(self.horizon)) if self.seasonal_lag else ()
        if self.seasonal_lag and self.seasonal_days > 1:
            seasonal = tuple(f"{name}_mean{self.seasonal_days}d" for name in seasonal)
        context: tuple[str, ...] = ()
        if self._context_statics:
            steps = range(1, self.horizon + 1)
            context = tuple(f"{c}_seasonal_delta_h{h}" for h in steps for c in CONTEXT_NAMES)
        return (*stats, *seasonal, *context)

    @property
    def _context_statics(self) -> bool:
        return self.network_context and self.context_seasonal and self.seasonal_lag > 0

    def _require_context(self, context: ContextTable | None, series: PairSeries) -> ContextTable:
        if context is None:
            raise ValidationError("the features need the series' network context", field="network_context")
        if context.shape[:2] != (series.steps, series.n_pairs):
            raise ValidationError(
                f"network context of shape {context.shape} for a series of {series.steps} steps x "
                f"{series.n_pairs} pairs",
                field="network_context",
            )
        return context

    def _seasonal_change(
        self, data: npt.NDArray[Any] | ContextTable, origins: IntArray, pair_idx: IntArray | None = None
    ) -> npt.NDArray[Any]:
        """The mean over ``d = 1..seasonal_days`` of ``data[o-d*lag+h] - data[o-d*lag-1]`` (rows of
        ``data`` are steps, columns pairs): ``[O, H, P, ...]``, or ``[B, H, ...]`` for one pair per origin
        with ``pair_idx``."""
        ahead = np.arange(self.horizon)[None, :]
        total: npt.NDArray[Any] | None = None
        for day in range(1, self.seasonal_days + 1):
            base = origins - day * self.seasonal_lag
            if pair_idx is None:
                change = data[base[:, None] + ahead] - data[base - 1][:, None]
            else:
                change = data[base[:, None] + ahead, pair_idx[:, None]] - data[base - 1, pair_idx][:, None]
            total = change if total is None else total + change
        assert total is not None
        return total / self.seasonal_days if self.seasonal_days > 1 else total

    def names(self) -> tuple[str, ...]:
        return (*self.sequence_names(), *self.static_names())

    def build(
        self,
        series: PairSeries,
        scaled: F32Array,
        scaler: Scaler,
        origins: IntArray,
        pair_idx: IntArray,
        *,
        context: ContextTable | None = None,
    ) -> tuple[F32Array, F32Array, F32Array]:
        """(sequence ``[B, W, F]``, static ``[B, S]``, last standardised value ``[B]``); ``context`` is
        :meth:`NetworkContext.build` of ``series`` when the spec has ``network_context``."""
        steps = origins[:, None] + np.arange(-self.window, 0)[None, :]
        level = scaled[steps, pair_idx[:, None]]
        last = self.anchor(level)
        angle = 2.0 * np.pi * series.time_of_day[steps]
        columns = [level - last[:, None], np.sin(angle), np.cos(angle)]
        if self.activity_flag:
            columns.insert(1, level > scaler.idle_level()[pair_idx][:, None] + IDLE_MARGIN)
        sequence = np.stack(columns, axis=-1).astype(np.float32)
        if self.network_context:
            ctx = self._require_context(context, series)[steps, pair_idx[:, None]]  # [B, W, 3]
            sequence = np.concatenate([sequence, ctx - self.anchor(ctx, axis=1)[:, None, :]], axis=-1)
        if series.exog is not None:
            exog = series.exog[steps, pair_idx[:, None]].astype(np.float32)
            sequence = np.concatenate([sequence, exog], axis=-1)
        static: list[F32Array] = []
        if self.pair_stats:
            static.append(scaler.pair_stats(self.activity_flag)[pair_idx])
        if self.seasonal_lag:
            static.append(self._seasonal_change(scaled, origins, pair_idx))
        if self._context_statics:
            change = self._seasonal_change(self._require_context(context, series), origins, pair_idx)
            static.append(change.reshape(origins.size, -1))  # [B, H x 3]
        joined = np.concatenate(static, axis=-1) if static else np.zeros((origins.size, 0), np.float32)
        return sequence, joined.astype(np.float32), last.astype(np.float32)

    def build_all_pairs(
        self,
        series: PairSeries,
        scaled: F32Array,
        scaler: Scaler,
        origins: IntArray,
        *,
        context: ContextTable | None = None,
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
        if self.network_context:
            ctx = self._require_context(context, series)[steps].transpose(0, 2, 1, 3)  # [O, P, W, 3]
            parts.append(ctx - self.anchor(ctx, axis=2)[..., None, :])
        if series.exog is not None:
            parts.append(series.exog[steps].transpose(0, 2, 1, 3))  # [O, P, W, F]
        sequence = np.concatenate(parts, axis=-1, dtype=np.float32).reshape(n_orig * n_pairs, self.window, -1)
        static = self._static_all_pairs(series, scaled, scaler, origins, context)
        return sequence, static, last.reshape(-1).astype(np.float32)

    def build_all_pairs_time_major(
        self,
        series: PairSeries,
        scaled: F32Array,
        scaler: Scaler,
        origins: IntArray,
        *,
        context: ContextTable | None = None,
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
        column += 2
        if self.network_context:
            ctx = self._require_context(context, series)[steps]  # [W, O, P, 3]
            end = column + len(CONTEXT_NAMES)
            np.subtract(ctx, self.anchor(ctx, axis=0), out=sequence[..., column:end])
            column = end
        if series.exog is not None:
            sequence[..., column:] = series.exog[steps]  # [W, O, P, F]
        return (
            sequence.reshape(self.window, n_orig * n_pairs, -1),
            self._static_all_pairs(series, scaled, scaler, origins, context),
            last.reshape(-1).astype(np.float32),
        )

    def _static_all_pairs(
        self,
        series: PairSeries,
        scaled: F32Array,
        scaler: Scaler,
        origins: IntArray,
        context: ContextTable | None,
    ) -> F32Array:
        """The static inputs ``[O x P, S]`` of every pair at each origin, origin-major."""
        n_orig, n_pairs = origins.size, scaled.shape[1]
        static: list[F32Array] = []
        if self.pair_stats:
            static.append(np.tile(scaler.pair_stats(self.activity_flag), (n_orig, 1)))
        if self.seasonal_lag:
            change = self._seasonal_change(scaled, origins).transpose(0, 2, 1)  # [O, P, H]
            static.append(change.reshape(n_orig * n_pairs, self.horizon))
        if self._context_statics:
            ctx = self._seasonal_change(self._require_context(context, series), origins)  # [O, H, P, 3]
            static.append(ctx.transpose(0, 2, 1, 3).reshape(n_orig * n_pairs, -1))
        joined = np.concatenate(static, axis=-1) if static else np.zeros((n_orig * n_pairs, 0), np.float32)
        return joined.astype(np.float32)


def sample_grid(origins: IntArray, n_pairs: int) -> tuple[IntArray, IntArray]:
    """Every (origin, pair), origin-major."""
    return np.repeat(origins, n_pairs), np.tile(np.arange(n_pairs, dtype=np.int64), origins.size)
