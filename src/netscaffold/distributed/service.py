"""``netscaffold serve --ray``: the REST service's heavy analytics on a Ray cluster.

:class:`RayAnalytics` is the service's analytics runner (see ``service.core.AnalyticsRunner``) for Ray:

- ``retrain``: :func:`~netscaffold.service.forecast.train_and_score` (held-out NMAE, then the fit on the
  whole history) runs as one Ray task on one CPU. It is the same function the in-process runner calls, on
  the same job, and every forecaster fixes its own torch thread count (as in ``run --ray``'s tasks), so the
  checkpoint and the NMAE equal the in-process ones.
- ``forecast`` (``GET /v1/predicted``, ``POST /v1/plans`` with ``source: scaffold``): the forecaster is
  fitted in a Ray task, then forecasts the next horizon on the sharded path of
  :mod:`netscaffold.distributed.inference`: pairs split by consistent hashing (``PairShards``), the model
  restricted to each shard's pairs (``restrict``) and run by a ``ShardWorker`` in that shard's actor; the
  assembled forecast equals the unsharded model's array for array. The shard actors (:class:`ShardHost`)
  start with the first forecast and live as long as the service (starting actors per request cost
  seconds), taking the freshly fitted model with each call.

The routes that call these run in FastAPI's thread pool, so the event loop keeps serving while a Ray job
runs. Before each job the Ray head is probed (a TCP connect, ``probe_timeout_s``); a head that does not
answer, a job that outlives ``job_timeout_s`` or a worker/node that died raises
:class:`~netscaffold.errors.BackendUnavailableError` naming Ray (HTTP 503). Nothing has been written by
then, so the service keeps its state and keeps serving reads.

A driver whose Ray head stays unreachable for ``gcs_rpc_server_reconnect_timeout_s`` (Ray's default: 60 s)
is ended by Ray itself; :func:`connect_analytics` raises that limit (unless the operator set it) so that a
lost cluster costs the service its analytics, not its life. Ray is imported lazily, through
:mod:`netscaffold.distributed.connection`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from netscaffold.distributed.connection import (
    DEFAULT_OBJECT_STORE_BYTES,
    RaySession,
    connect,
    parse_ray_spec,
    probe,
)
from netscaffold.distributed.inference import (
    FloatArray,
    IntArray,
    ShardWorker,
    assemble_columns,
    restrict,
)
from netscaffold.distributed.sharding import HashRing, PairShards
from netscaffold.errors import BackendError, BackendUnavailableError, ConfigError, NetscaffoldError
from netscaffold.predict.base import Forecast, Forecaster
from netscaffold.predict.series import PairSeries
from netscaffold.service.forecast import (
    AnalyticsJob,
    RetrainResult,
    fit_for_forecast,
    train_and_score,
)

log = logging.getLogger(__name__)

DEFAULT_SHARDS = 2
DEFAULT_JOB_TIMEOUT_S = 600.0
DEFAULT_PROBE_TIMEOUT_S = 2.0
SERVE_CONNECT_TIMEOUT_S = 5.0
"""``serve --ray ADDRESS``: how long the head may take to answer at start (within the 10 s bound with the
Ray import)."""
MAX_RETRIES = 2
MAX_RESTARTS = 3
RECONNECT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
SERVE_RECONNECT_TIMEOUT_S = 10 * 365 * 86_400


def _fit_task(job: AnalyticsJob) -> bytes | None:
    model = fit_for_forecast(job)
    return None if model is None else pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def _retrain_task(job: AnalyticsJob) -> bytes:
    return pickle.dumps(train_and_score(job), protocol=pickle.HIGHEST_PROTOCOL)


def _unpickled(blob: bytes, kind: type) -> Any:
    """A task's result from the bytes it pickled: arrays come back writable, not as read-only views into
    Ray's object store (the checkpoint writer hands them to torch, which warns on read-only memory)."""
    value = pickle.loads(blob)  # noqa: S301 (bytes our own task pickled)
    if not isinstance(value, kind):  # pragma: no cover - only our tasks return these
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


class ShardHost:
    """A long-lived shard actor: forecasts the pair columns it is given with the restricted model it is
    given (:class:`~netscaffold.distributed.inference.ShardWorker` does the forecasting). Stateless, so a
    restarted actor needs nothing replayed."""

    def predict_at(
        self, columns: IntArray, model: Forecaster, series: PairSeries, origins: IntArray, horizon: int
    ) -> tuple[FloatArray, FloatArray]:
        return ShardWorker(columns, model).predict_at(series, origins, horizon)


class RayAnalytics:
    """The service's analytics as Ray jobs on ``session``'s cluster (see the module text)."""

    remote = True

    def __init__(
        self,
        session: RaySession,
        *,
        shards: int = DEFAULT_SHARDS,
        job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S,
        probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    ) -> None:
        if shards < 1:
            raise ConfigError(f"shards must be >= 1, got {shards}", field="ray_shards")
        if not job_timeout_s > 0 or not probe_timeout_s > 0:
            raise ConfigError("job and probe timeouts must be > 0", field="ray timeouts")
        self.session = session
        self.address = session.address
        self.shards = shards
        self.job_timeout_s = job_timeout_s
        self.probe_timeout_s = probe_timeout_s
        ray = session.ray
        self._fit = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_fit_task)
        self._retrain = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_retrain_task)
        self._ring = HashRing.of(shards)
        self._hosts: list[Any] = []
        self._hosts_lock = threading.Lock()

    # -- the AnalyticsRunner protocol ---------------------------------------------------------------
    def retrain(self, job: AnalyticsJob) -> RetrainResult:
        with self._ray_errors("retrain"):
            self.check_alive()
            result: RetrainResult = _unpickled(self._get(self._retrain.remote(job)), RetrainResult)
            return result

    def forecast(self, job: AnalyticsJob) -> Forecast | None:
        with self._ray_errors("forecast"):
            self.check_alive()
            blob = self._get(self._fit.remote(job))
            if blob is None:  # too little history for the forecaster's context
                return None
            model: Forecaster = _unpickled(blob, Forecaster)
            return self._sharded_forecast(model, job)

    def _sharded_forecast(self, model: Forecaster, job: AnalyticsJob) -> Forecast:
        """``forecast_next``'s forecast, assembled from the shard actors' columns (as
        ``ShardedForecaster.predict_at`` assembles them; here the actors live as long as the service and
        take the restricted model with each call, since the model is refitted for every forecast)."""
        ray = self.session.ray
        split = PairShards.split(model.pairs, self._ring)
        hosts = self._shard_hosts()
        origins = np.array([job.values.shape[0]], dtype=np.int64)
        series_ref = ray.put(job.series())
        order = split.non_empty()
        refs = [
            hosts[i].predict_at.remote(
                split.columns[i],
                restrict(model, split.columns[i], threads=1),
                series_ref,
                origins,
                job.horizon,
            )
            for i in order
        ]
        parts = [self._get(ref) for ref in refs]
        columns = [split.columns[i] for i in order]
        return assemble_columns(
            parts, columns, origins, job.horizon, n_pairs=len(model.pairs), levels=model.levels
        )

    def _shard_hosts(self) -> list[Any]:
        """The shard actors, started at the first forecast. They hold no CPU while idle (a service's
        shards wait most of the time; holding CPUs would starve the fit and retrain tasks) and are spread
        over the cluster's nodes; a crashed one restarts and the call in flight is retried."""
        with self._hosts_lock:
            if not self._hosts:
                actor = self.session.ray.remote(
                    num_cpus=0,
                    max_restarts=MAX_RESTARTS,
                    max_task_retries=MAX_RESTARTS,
                    scheduling_strategy="SPREAD",
                )(ShardHost)
                self._hosts = [actor.remote() for _ in range(self.shards)]
            return self._hosts

    def status(self) -> dict[str, Any]:
        try:
            self.check_alive()
            reachable = True
        except BackendUnavailableError:
            reachable = False
        return {
            "ray": True,
            "address": self.address,
            "reachable": reachable,
            "shards": self.shards,
            "owned": self.session.owned,
        }

    def close(self) -> None:
        with self._hosts_lock:
            hosts, self._hosts = self._hosts, []
        for host in hosts:
            with contextlib.suppress(Exception):  # a lost cluster has no actors left to stop
                self.session.ray.kill(host, no_restart=True)
        self.session.close()

    # -- helpers ---------------------------------------------------------------------------------
    def check_alive(self) -> None:
        """:class:`BackendUnavailableError` unless the Ray head answers at ``address`` right now."""
        host, _, port = self.address.rpartition(":")
        if not self.session.ray.is_initialized():
            raise BackendUnavailableError(
                f"this service is no longer connected to the Ray cluster at {self.address}", backend="ray"
            )
        try:
            probe(host.strip("[]"), int(port), self.probe_timeout_s)
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(
                f"the Ray cluster at {self.address} is gone: no answer within {self.probe_timeout_s:g} s "
                f"({_cause(exc)}); retrain and forecasts wait for it, reads keep working",
                backend="ray",
            ) from exc

    def _get(self, ref: Any) -> Any:
        """The task's result; our own errors raised in it come out as themselves (409, 422, ...)."""
        ray = self.session.ray
        try:
            return ray.get(ref, timeout=self.job_timeout_s)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, NetscaffoldError):
                raise exc.cause from None
            raise
        except ray.exceptions.GetTimeoutError:
            with contextlib.suppress(Exception):  # best effort: the caller hears of the timeout
                ray.cancel(ref, force=True)
            raise

    @contextlib.contextmanager
    def _ray_errors(self, kind: str) -> Iterator[None]:
        """Ray's own failures as BackendUnavailableError (503) or BackendError (502), naming Ray."""
        from ray import exceptions as ray_errors

        try:
            yield
        except NetscaffoldError:
            raise
        except ray_errors.GetTimeoutError as exc:
            raise BackendUnavailableError(
                f"the {kind} job on the Ray cluster at {self.address} did not finish within "
                f"{self.job_timeout_s:g} s",
                backend="ray",
            ) from exc
        except ray_errors.RayTaskError as exc:
            log.error("%s job failed in a Ray task", kind, exc_info=exc)
            raise BackendError(f"the {kind} job failed in a Ray task: {exc.cause!r}", backend="ray") from exc
        except (ray_errors.RayError, ConnectionError) as exc:
            raise BackendUnavailableError(
                f"the Ray cluster at {self.address} failed the {kind} job "
                f"({type(exc).__name__}: {_first_line(exc)})",
                backend="ray",
            ) from exc


def _cause(exc: BaseException) -> str:
    """The OS reason behind a failed probe (``Connection refused``, ``timed out``)."""
    cause = exc.__cause__
    if isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"


def connect_analytics(
    spec: str,
    *,
    shards: int = DEFAULT_SHARDS,
    timeout_s: float = SERVE_CONNECT_TIMEOUT_S,
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES,
) -> RayAnalytics:
    """Connect to Ray as ``serve --ray SPEC`` says and return the service's runner. A bad spec raises
    ConfigError, an unreachable head BackendUnavailableError within ``timeout_s`` (both exit 2)."""
    parsed = parse_ray_spec(spec)  # a malformed value is refused before Ray is imported
    if shards < 1:
        raise ConfigError(f"must be >= 1, got {shards}", field="ray_shards")
    if parsed.host is not None and parsed.port is not None:
        probe(parsed.host, parsed.port, timeout_s)  # an unreachable head fails before Ray's import (~2 s)
    os.environ.setdefault(RECONNECT_ENV, str(SERVE_RECONNECT_TIMEOUT_S))
    session = connect(spec, timeout_s=timeout_s, object_store_bytes=object_store_bytes)
    try:
        return RayAnalytics(session, shards=shards)
    except BaseException:
        session.close()
        raise
