"""Sharded forecast inference: pairs split by a :class:`~netscaffold.distributed.sharding.HashRing`, one
Ray actor per shard.

Every forecaster in :mod:`netscaffold.predict` forecasts each pair from that pair's column alone (the
LSTM is global but its inputs and per-pair scalers are per pair; baselines keep per-pair tables), so a
fitted model restricted to a shard's pairs (:func:`restrict`) gives that shard's columns of the full
forecast. ``ShardedForecaster.predict_at`` therefore equals ``forecaster.predict_at`` on the same input,
array for array (tested for every model; the LSTM runs with the same thread count, see ``threads``).

Two ways to fill the shards:

* :meth:`ShardedForecaster.start`: one globally fitted forecaster, restricted per shard (what the engine
  and ``forecast predict`` use: the numbers are those of one process).
* :meth:`ShardedForecaster.fit_per_shard`: a baseline fitted inside each shard's actor on that shard's
  pairs only (its tuned parameter and residual tables are per shard, so it is a different, local model;
  it equals a single-process fit of the same model on the same shard's columns).

Shard actors restart after a crash (``max_restarts``) from their constructor arguments (the restricted
model, or the name and shard of a per-shard fit), and a call that was in flight is retried on the new
actor, so a killed shard still yields a complete forecast. Ray is imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.distributed.sharding import HashRing, PairShards
from netscaffold.errors import ConfigError, NetscaffoldError, TrafficError, ValidationError
from netscaffold.predict.base import Forecast, Forecaster, check_horizon
from netscaffold.predict.checkpoint import constructor_args
from netscaffold.predict.lstm_features import matrix_totals
from netscaffold.predict.registry import make_forecaster
from netscaffold.predict.series import PairSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MAX_RESTARTS = 3

PER_PAIR_AXIS: dict[str, int] = {
    "scaler.mu": 0,  # LstmForecaster: per-pair log mean / spread
    "scaler.sd": 0,
    "scaler.active_share": 0,
    "table": 0,  # HistoricalQuantile: [P, Q]
    "residual_quantiles": 1,  # PointBaseline: [H, P, Q]
    "activity_counts": 1,  # ActivityModel: [H, P, 2, 2]
    "activity_groups": 0,  # ActivityModel with a group prior: [P] group codes
    "activity_prior": 1,  # and [H, P, S] group rates
}
"""The fitted arrays that carry one entry per pair, and on which axis. Every other array is shared."""


def series_columns(series: PairSeries, columns: IntArray, *, node_totals: bool = True) -> PairSeries:
    """``series`` reduced to the pairs at ``columns`` (same steps, time of day, segments; the columns'
    exogenous features and groups), with ``node_totals`` carrying the nodes' totals over all of its
    pairs where they are pairs between its nodes (the LSTM's network context reads them: a shard's own
    columns do not add up to them)."""
    exog = None if series.exog is None else np.ascontiguousarray(series.exog[:, columns])
    totals = series.node_totals
    if totals is None and node_totals:
        totals = matrix_totals(series)
    return PairSeries(
        values=np.ascontiguousarray(series.values[:, columns]),
        pairs=tuple(series.pairs[int(i)] for i in columns),
        nodes=series.nodes,
        interval_s=series.interval_s,
        unit=series.unit,
        time_of_day=series.time_of_day,
        segment_start=series.segment_start,
        bps_factor=series.bps_factor,
        exog=exog,
        exog_names=series.exog_names,
        groups=tuple(series.groups[int(i)] for i in columns) if series.groups else (),
        node_totals=totals,
    )


def _reads_node_totals(model: Forecaster) -> bool:
    """Whether ``model`` reads the matrix's node totals (an LSTM with the network context input)."""
    spec = getattr(model, "spec", None)
    return bool(getattr(spec, "network_context", False))


def assemble_columns(
    parts: Sequence[tuple[FloatArray, FloatArray]],
    columns: Sequence[IntArray],
    origins: IntArray,
    horizon: int,
    *,
    n_pairs: int,
    levels: tuple[float, ...],
) -> Forecast:
    """The whole forecast from the shards' parts: each shard's quantiles ``[O, H, p, Q]`` and activity
    ``[O, H, p]`` go to its pair ``columns``."""
    quantiles = np.empty((origins.size, horizon, n_pairs, len(levels)))
    activity = np.empty((origins.size, horizon, n_pairs))
    for (q, act), cols in zip(parts, columns, strict=True):
        quantiles[:, :, cols] = q
        activity[:, :, cols] = act
    return Forecast(origins=origins, levels=levels, quantiles=quantiles, activity=activity)


def restrict(model: Forecaster, columns: IntArray, *, threads: int | None = None) -> Forecaster:
    """A fitted copy of ``model`` that knows only the pairs at ``columns`` (through the same
    ``config()`` / ``arrays()`` / ``restore()`` path as a checkpoint). ``threads`` overrides the LSTM's
    torch thread count and its inference workers (one per shard actor)."""
    if not model.fitted:
        raise ValidationError("cannot shard a forecaster that was not fitted", element=model.name)
    cols = np.asarray(columns, dtype=np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= len(model.pairs)):
        raise ValidationError(f"pair columns outside 0..{len(model.pairs) - 1}", element=model.name)
    config = model.config()
    arrays = {
        name: np.take(array, cols, axis=PER_PAIR_AXIS[name]) if name in PER_PAIR_AXIS else array
        for name, array in model.arrays().items()
    }
    hyper = config.get("hyper")
    if threads is not None and isinstance(hyper, dict) and "threads" in hyper:
        config = {**config, "hyper": {**hyper, "threads": threads, "infer_threads": threads}}
    part = make_forecaster(model.name, **constructor_args(config))
    part.pairs = tuple(model.pairs[int(i)] for i in cols)
    part.nodes, part.fingerprint = model.nodes, model.fingerprint
    part.restore(config, arrays)
    part.fitted = True
    return part


class ShardWorker:
    """One shard's forecaster (the body of a Ray actor; plain Python so that it is testable alone).

    Everything it holds comes from its constructor (a restricted model, or a model to fit on this shard's
    columns of ``fit_history``), so a restarted actor rebuilds the same state."""

    def __init__(
        self,
        columns: IntArray,
        model: Forecaster | None = None,
        fit_name: str | None = None,
        fit_history: PairSeries | None = None,
        fit_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.columns = np.asarray(columns, dtype=np.int64)
        self.model = model
        if fit_name is not None and fit_history is not None:
            part = series_columns(fit_history, self.columns)
            self.model = make_forecaster(fit_name, **(fit_kwargs or {})).fit(part)

    def predict_at(
        self, series: PairSeries, origins: IntArray, horizon: int
    ) -> tuple[FloatArray, FloatArray]:
        """``(quantiles[O, H, p, Q], activity[O, H, p])`` for this shard's ``p`` pairs."""
        if self.model is None:
            raise ValidationError("the shard has no model: fit it first", element="shard")
        part = series_columns(series, self.columns, node_totals=_reads_node_totals(self.model))
        forecast = self.model.predict_at(part, origins, horizon)
        return forecast.quantiles, forecast.activity

    def ping(self) -> int:
        return int(self.columns.size)


class ShardedForecaster:
    """A forecaster spread over Ray actors, one per non-empty shard of pairs."""

    def __init__(
        self,
        shards: PairShards,
        pairs: tuple[tuple[str, str], ...],
        levels: tuple[float, ...],
        workers: dict[int, Any],
        name: str,
        *,
        pinned: list[Any],
    ) -> None:
        self.shards, self.pairs, self.levels = shards, pairs, levels
        self.workers, self.name = workers, name
        self._pinned = pinned  # the actors' constructor arguments: a restart needs them in scope
        self._closed = False
        self.window_only: int | None = None
        """Steps of history before each origin that the model reads (the LSTM's ``min_context``); set,
        only that tail of the series travels to the shards. None: the whole series (baselines read it)."""

    # -- starting -------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        forecaster: Forecaster,
        *,
        shards: int = 2,
        ring: HashRing | None = None,
        threads: int = 1,
        cpus_per_shard: float = 1.0,
    ) -> ShardedForecaster:
        """Shard a fitted ``forecaster`` over ``shards`` actors (or over ``ring``'s shards). Each actor
        holds ``cpus_per_shard`` Ray CPUs for its lifetime and runs torch on ``threads`` threads."""
        if not forecaster.fitted:
            raise ValidationError("cannot shard a forecaster that was not fitted", element=forecaster.name)
        split = PairShards.split(forecaster.pairs, ring or HashRing.of(shards))
        ray, actor = _actor_class(threads, cpus_per_shard)
        models = {
            i: ray.put(restrict(forecaster, split.columns[i], threads=threads)) for i in split.non_empty()
        }
        workers = {i: actor.remote(split.columns[i], ref) for i, ref in models.items()}
        pinned = list(models.values())
        sharded = cls(split, forecaster.pairs, forecaster.levels, workers, forecaster.name, pinned=pinned)
        if forecaster.name == "lstm":
            sharded.window_only = forecaster.min_context
        sharded.wait_ready()
        return sharded

    @classmethod
    def fit_per_shard(
        cls,
        name: str,
        history: PairSeries,
        *,
        shards: int = 2,
        ring: HashRing | None = None,
        cpus_per_shard: float = 1.0,
        **kwargs: Any,
    ) -> ShardedForecaster:
        """Fit ``name`` separately on each shard's pairs, inside the shard's actor (``kwargs`` go to the
        model's constructor)."""
        split = PairShards.split(history.pairs, ring or HashRing.of(shards))
        ray, actor = _actor_class(1, cpus_per_shard)
        levels = make_forecaster(name, **kwargs).levels  # refuses an unknown name or bad arguments here
        history_ref = ray.put(history)
        workers = {
            i: actor.remote(split.columns[i], None, name, history_ref, dict(kwargs))
            for i in split.non_empty()
        }
        sharded = cls(split, history.pairs, levels, workers, name, pinned=[history_ref])
        sharded.wait_ready()
        return sharded

    def wait_ready(self) -> None:
        import ray

        get_unwrapped(ray, [w.ping.remote() for w in self.workers.values()])

    # -- forecasting ----------------------------------------------------------------------------
    def predict_at(self, series: PairSeries, origins: npt.ArrayLike, horizon: int) -> Forecast:
        """The same forecast as the unsharded model's ``predict_at`` (assembled from every shard)."""
        import ray

        self._check_open()
        check_horizon(horizon)
        if series.pairs != self.pairs:
            raise TrafficError(
                f"the series has {series.n_pairs} pairs, the sharded model {len(self.pairs)}: another "
                "pair set",
                field="pairs",
            )
        orig = np.asarray(origins, dtype=np.int64).reshape(-1)
        sent, sent_origins = self._tail(series, orig)
        series_ref = ray.put(sent)
        order = sorted(self.workers)
        parts = get_unwrapped(
            ray, [self.workers[i].predict_at.remote(series_ref, sent_origins, horizon) for i in order]
        )
        columns = [self.shards.columns[i] for i in order]
        return assemble_columns(parts, columns, orig, horizon, n_pairs=series.n_pairs, levels=self.levels)

    def _tail(self, series: PairSeries, orig: IntArray) -> tuple[PairSeries, IntArray]:
        """The part of ``series`` the shards need, and the origins within it: from ``window_only`` steps
        before the first origin when every origin's window lies in one segment (otherwise the whole
        series, so that a short context is refused exactly as in one process)."""
        if self.window_only is None or orig.size == 0 or orig.min() < 1 or orig.max() > series.steps:
            return series, orig
        first = int(orig.min()) - self.window_only
        if first <= 0 or np.any(series.segment_start[orig - 1] > first):
            return series, orig
        return series.slice(first, int(orig.max())), orig - first

    def predict(self, context: PairSeries, horizon: int) -> Forecast:
        """Forecast the ``horizon`` steps after the end of ``context``."""
        return self.predict_at(context, np.array([context.steps]), horizon)

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the shard actors (idempotent)."""
        if self._closed:
            return
        self._closed = True
        import ray

        for worker in self.workers.values():
            ray.kill(worker, no_restart=True)
        self.workers = {}

    def __enter__(self) -> ShardedForecaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValidationError("the sharded forecaster is closed", element=self.name)


def sharded_predict(
    forecaster: Forecaster,
    history: PairSeries,
    horizon: int,
    *,
    shards: int = 2,
    origins: Sequence[int] | IntArray | None = None,
    threads: int = 1,
    cpus_per_shard: float = 1.0,
) -> Forecast:
    """One-shot sharded inference: ``forecaster.predict(history, horizon)`` (or ``predict_at`` at
    ``origins``) computed by ``shards`` Ray actors; the actors are stopped afterwards."""
    if shards < 1:
        raise ConfigError(f"shards must be >= 1, got {shards}", field="shards")
    start = ShardedForecaster.start
    with start(forecaster, shards=shards, threads=threads, cpus_per_shard=cpus_per_shard) as sharded:
        at = np.array([history.steps]) if origins is None else np.asarray(origins, dtype=np.int64)
        return sharded.predict_at(history, at, horizon)


def _actor_class(threads: int, cpus: float) -> tuple[Any, Any]:
    """``(ray, the ShardWorker actor class)``: ``cpus`` Ray CPUs each, restarted and retried after a crash."""
    import ray

    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}", field="threads")
    if not cpus > 0:
        raise ConfigError(f"cpus_per_shard must be > 0, got {cpus}", field="cpus_per_shard")
    if not ray.is_initialized():
        raise ConfigError(
            "Ray is not connected: call netscaffold.distributed.connection.connect first", field="ray"
        )
    actor = ray.remote(num_cpus=cpus, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(ShardWorker)
    return ray, actor


def get_unwrapped(ray: Any, refs: list[Any]) -> list[Any]:
    """``ray.get`` that re-raises our own errors as themselves (not wrapped in a RayTaskError)."""
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, NetscaffoldError):
            raise cause from None
        raise
