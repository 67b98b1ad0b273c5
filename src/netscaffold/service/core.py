"""The service's state: topology, backend, settings and the store, behind one lock.

Every mutation commits its database transaction (with an audit row) before it returns, and the backend
(sim: a validated config holder on a clock that follows unix time; linux: the kernel) is rebuilt from the
stored config at start, so a restart after ``kill -9`` resumes what was acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from netscaffold.backends.protocol import Backend, ManualClock
from netscaffold.errors import BackendUnavailableError, ConfigError, NetscaffoldError, PlanError
from netscaffold.formats import configjson
from netscaffold.model.config import NetworkConfig, Reservation
from netscaffold.model.plan import Plan, ProvisionalBudget, provisional_entries_per_device
from netscaffold.model.topology import Topology
from netscaffold.service.events import EventLog
from netscaffold.service.metrics import ServiceMetrics
from netscaffold.service.schemas import StrategySettings
from netscaffold.service.store import Store, audit, put_kv

if TYPE_CHECKING:
    from netscaffold.predict.base import Forecast
    from netscaffold.service.forecast import AnalyticsJob, RetrainResult

log = logging.getLogger(__name__)
BACKENDS = ("sim", "linux")


class ConflictError(NetscaffoldError):
    """The request conflicts with the current state (HTTP 409)."""


class NotFoundError(NetscaffoldError):
    """The addressed object does not exist (HTTP 404)."""


class AnalyticsRunner(Protocol):
    """Where the service's heavy analytics run: in process (``service.forecast.InProcessAnalytics``, the
    default) or on Ray (``distributed.service.RayAnalytics``, ``serve --ray``). Called from a route's
    worker thread, never on the event loop; a runner that lost its cluster raises
    BackendUnavailableError (HTTP 503)."""

    remote: bool
    """True when jobs leave this process (they are then counted in ``netscaffold_ray_jobs_total``)."""

    def forecast(self, job: AnalyticsJob) -> Forecast | None: ...

    def retrain(self, job: AnalyticsJob) -> RetrainResult: ...

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def config_digest(config: NetworkConfig) -> str:
    text = json.dumps(configjson.config_json(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ServiceCore:
    def __init__(
        self,
        state_dir: Path,
        *,
        backend: str = "sim",
        lab: str = "nsd",
        clock: Callable[[], float] = time.time,
        analytics: AnalyticsRunner | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r} (sim, linux)", field="backend")
        self.state_dir = state_dir
        self.backend_name = backend
        self.lab = lab
        self.now = clock
        self.lock = threading.RLock()
        self.store = Store(state_dir)
        self.events = EventLog()
        self.metrics = ServiceMetrics()
        if analytics is None:
            from netscaffold.service.forecast import InProcessAnalytics

            analytics = InProcessAnalytics()
        self.analytics: AnalyticsRunner = analytics
        self.topology: Topology | None = None
        self.backend: Backend | None = None
        self.backend_error: str | None = None
        self._document: tuple[Topology, dict[str, Any]] | None = None
        self.flow_hits = 0
        self.flow_requests = 0
        self.last_step: tuple[int, dict[str, float]] = (-1, {})
        """(newest telemetry step, bit/s per flow key in it): what reservations are compared with."""
        self.settings = self._load_settings()
        self._load_topology()

    # -- loading ---------------------------------------------------------------------------------
    def _load_settings(self) -> StrategySettings:
        text = self.store.get_kv("settings")
        return StrategySettings() if text is None else StrategySettings.model_validate_json(text)

    def _load_topology(self) -> None:
        from netscaffold.formats.netjson import read_netjson

        text = self.store.get_kv("topology")
        if text is None:
            return
        self.topology = read_netjson(text, Path("state:topology"))
        stored = self.store.get_kv("config")
        config = configjson.config_from_json(json.loads(stored)) if stored else NetworkConfig()
        self._start_backend(self.topology, config)

    @property
    def budget(self) -> ProvisionalBudget:
        b = self.settings.budget
        return ProvisionalBudget(b.rule_slots_per_device, b.link_fraction)

    def _start_backend(self, topology: Topology, config: NetworkConfig) -> None:
        if self.backend is not None:
            self.backend.close()
        self.backend = None
        try:
            self.backend = self._make_backend(topology, config)
            self.backend_error = None
        except BackendUnavailableError as exc:
            self.backend_error = str(exc)
            log.warning("backend %s unavailable: %s", self.backend_name, exc)
        self.refresh_gauges()

    def _make_backend(self, topology: Topology, config: NetworkConfig) -> Backend:
        if self.backend_name == "linux":
            return _linux_backend(topology, config, self.lab, self.budget)
        from netscaffold.backends.sim.backend import SimBackend
        from netscaffold.model.flows import FlowTable

        flows = FlowTable.build(
            start_s=[], src=[], dst=[], endpoints=tuple(sorted(topology.endpoints)) or ("_",)
        )
        clock = ManualClock(self.now())  # never advanced: see tick()
        return SimBackend(topology, flows, clock=clock, tick_s=60.0, budget=None, initial=config)

    # -- access ----------------------------------------------------------------------------------
    def require_topology(self) -> Topology:
        if self.topology is None:
            raise ConflictError("no topology yet: PUT /v1/topology first")
        return self.topology

    def require_backend(self) -> Backend:
        self.require_topology()
        if self.backend is None:
            raise BackendUnavailableError(
                self.backend_error or "backend not started", backend=self.backend_name
            )
        return self.backend

    def topology_document(self) -> dict[str, Any]:
        """The topology as NetJSON (built once per topology)."""
        from netscaffold.formats.netjson import netjson_document

        topology = self.require_topology()
        cached = self._document
        if cached is None or cached[0] is not topology:
            cached = (topology, netjson_document(topology))
            self._document = cached
        return cached[1]

    def tick(self) -> float:
        """Expire provisional items due by now (unix seconds); returns now.

        The sim holder's clock stays where it started: it replays no flows, so it never needs to advance
        (advancing would run the emulator over idle time), and items expire by ``expire(now)``."""
        now = self.now()
        if self.backend is not None:
            self.backend.expire(now)
        return now

    def current_config(self) -> NetworkConfig:
        with self.lock:
            backend = self.require_backend()
            self.tick()
            return backend.snapshot()

    def config_stale_at(self, config: NetworkConfig) -> float:
        """From when a copy of ``config`` (just read) may be out of date: the sim holder changes only by
        plans (committed transactions, which move the store's revision) and by expiry; the linux backend
        shows the kernel, which is read each time."""
        if self.backend_name != "sim":
            return -math.inf
        return min((i.expires_at for i in config if i.expires_at is not None), default=math.inf)

    def refresh_gauges(self) -> None:
        config = self.backend.snapshot() if self.backend is not None else NetworkConfig()
        reservations = [i for i in config if isinstance(i, Reservation)]
        self.metrics.reserved_bps.set(sum(i.rate_bps for i in reservations))
        used = self.last_step[1]
        unused = sum(max(0.0, i.rate_bps - used.get(i.flow_key, 0.0)) for i in reservations)
        self.metrics.unused_bps.set(unused)
        self.metrics.provisional_rules.clear()
        for device, count in provisional_entries_per_device(config).items():
            self.metrics.provisional_rules.labels(device=device).set(count)

    # -- mutations -------------------------------------------------------------------------------
    def put_topology(self, document: dict[str, Any], actor: str) -> Topology:
        from netscaffold.formats.netjson import read_netjson, to_netjson

        topology = read_netjson(json.dumps(document), Path("body"))
        with self.lock:
            config = self.backend.snapshot() if self.backend is not None else NetworkConfig()
            try:
                Plan.between(NetworkConfig(), config, allow_confirmed_changes=True).validate(topology)
            except PlanError as exc:
                raise ConflictError(f"the current config does not fit the new topology: {exc}") from None
            now = self.now()
            with self.store.transaction() as conn:
                put_kv(conn, "topology", to_netjson(topology))
                put_kv(conn, "config", json.dumps(configjson.config_json(config)))
                audit(
                    conn,
                    now,
                    actor,
                    "topology.put",
                    target=topology.name,
                    detail=f"{len(topology.nodes)} nodes",
                )
            self.topology = topology
            self._start_backend(topology, config)
            self.store.changed()
        return topology

    def put_settings(self, settings: StrategySettings, actor: str) -> StrategySettings:
        with self.lock, self.store.transaction() as conn:
            put_kv(conn, "settings", settings.model_dump_json())
            audit(conn, self.now(), actor, "settings.put", target="", detail=settings.model_dump_json())
            self.settings = settings
        return settings

    def close(self) -> None:
        with self.lock:
            if self.backend is not None:
                self.backend.close()
            self.store.close()
            self.analytics.close()


def _linux_backend(topology: Topology, config: NetworkConfig, lab: str, budget: ProvisionalBudget) -> Backend:
    try:
        from netscaffold.backends.linux.backend import LinuxBackend
    except ImportError as exc:
        raise BackendUnavailableError(f"the linux backend cannot be loaded: {exc}", backend="linux") from None
    try:
        backend: Backend = LinuxBackend(topology, lab=lab, budget=budget, clock=_UnixClock())
        if len(config):
            backend.apply(Plan.between(backend.snapshot(), config, allow_confirmed_changes=True))
    except NetscaffoldError as exc:
        raise BackendUnavailableError(str(exc), backend="linux") from None
    except OSError as exc:
        raise BackendUnavailableError(f"cannot program the kernel: {exc}", backend="linux") from None
    return backend


class _UnixClock:
    def now(self) -> float:
        return time.time()
