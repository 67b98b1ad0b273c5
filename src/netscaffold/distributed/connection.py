"""Connecting to Ray: ``--ray auto|local|ADDRESS``.

``connect(spec)`` returns a :class:`RaySession` (also a context manager) for one of:

- ``local``: a private Ray started by this process, bound to 127.0.0.1, with a capped object store and no
  dashboard; it is shut down when the session closes.
- ``ADDRESS`` (``HOST:PORT`` of a head started with ``ray start --head``, or ``ray://HOST:PORT`` for Ray
  Client): connects after a TCP probe, so an unreachable address fails within ``timeout_s`` with
  :class:`~netscaffold.errors.BackendUnavailableError` instead of Ray's long retry loop.
- ``auto``: ``RAY_ADDRESS`` when set, else the cluster that ``ray start`` last recorded on this machine
  when it answers, else ``local``.

When Ray is already initialised in this process (a test fixture, an outer command), the session reuses that
connection and leaves it open on close. Ray is imported here only, inside functions, so that importing
netscaffold (and ``netscaffold --help``) never pays for it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Literal

from netscaffold.errors import BackendUnavailableError, ConfigError

MIB = 1024 * 1024
DEFAULT_OBJECT_STORE_BYTES = 256 * MIB
DEFAULT_CONNECT_TIMEOUT_S = 10.0
RAY_CLIENT_SCHEME = "ray://"
SpecKind = Literal["auto", "local", "address"]
LOCAL_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node address 127.0.0.1, not the routable one
    "RAY_USAGE_STATS_ENABLED": "0",  # nothing leaves the machine
    # Ray's memory monitor kills workers when the *machine's* memory is above 95%, whoever uses it; on a
    # shared machine that kills our tasks for other people's processes. The kernel's OOM killer remains.
    "RAY_memory_monitor_refresh_ms": "0",
}


@dataclass(frozen=True, slots=True)
class RaySpec:
    """A parsed ``--ray`` value: ``kind`` and, for ``address``, where the head listens."""

    kind: SpecKind
    address: str | None = None
    host: str | None = None
    port: int | None = None


def parse_ray_spec(spec: str, *, option: str = "--ray") -> RaySpec:
    """``auto``, ``local``, ``HOST:PORT`` or ``ray://HOST:PORT``; :class:`ConfigError` otherwise."""
    text = spec.strip()
    if text in ("auto", "local"):
        return RaySpec(kind=text)  # type: ignore[arg-type]  # narrowed by the membership test
    if not text:
        raise ConfigError(
            "empty Ray address; expected auto, local, HOST:PORT or ray://HOST:PORT", field=option
        )
    bare = text.removeprefix(RAY_CLIENT_SCHEME)
    host, sep, port_text = bare.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"Ray address {text!r} is not auto, local, HOST:PORT or ray://HOST:PORT", field=option
        )
    return RaySpec(kind="address", address=text, host=host, port=int(port_text))


def probe(host: str, port: int, timeout_s: float) -> None:
    """Open and close one TCP connection; :class:`BackendUnavailableError` when nothing answers in time."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise BackendUnavailableError(
            f"no Ray cluster answers at {host}:{port} within {timeout_s:g} s ({reason}); start one with "
            "`ray start --head` or use --ray local",
            backend="ray",
        ) from exc


def recorded_cluster_address() -> str | None:
    """The address ``ray start`` last wrote on this machine (``<tmp>/ray/ray_current_cluster``), if any."""
    temp_root = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir()))
    try:
        text = (temp_root / "ray" / "ray_current_cluster").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


class RaySession:
    """One connection to Ray; closing it shuts down what it started and nothing else."""

    def __init__(self, ray: ModuleType, *, spec: RaySpec, owned: bool) -> None:
        self.ray = ray
        self.spec = spec
        self.owned = owned
        self._closed = False

    @property
    def address(self) -> str:
        """The GCS address of the cluster (``HOST:PORT``)."""
        return str(self.ray.get_runtime_context().gcs_address)

    @property
    def num_cpus(self) -> int:
        """CPUs the cluster offers in total."""
        return int(self.ray.cluster_resources().get("CPU", 0))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()

    def __enter__(self) -> RaySession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RaySession(kind={self.spec.kind!r}, owned={self.owned})"


def _import_ray() -> ModuleType:
    try:
        import ray  # lazy on purpose: only --ray pays for it
    except ImportError as exc:  # pragma: no cover - ray is a declared extra
        raise BackendUnavailableError(
            "Ray is not installed; install the extra: pip install 'netscaffold[ray]'", backend="ray"
        ) from exc
    return ray


@contextlib.contextmanager
def _loopback_only(ray: ModuleType) -> Iterator[None]:
    """Make Ray pick 127.0.0.1 as this node's address while a local cluster starts.

    Ray resolves ``127.0.0.1`` to the machine's routable address unless clustering is off
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read at import and by the processes it spawns), so both the
    imported constant and the environment of the spawned processes are switched for the start only, with
    the rest of :data:`LOCAL_RAY_ENV`.
    """
    constants = ray._private.ray_constants
    saved_flag = getattr(constants, "ENABLE_RAY_CLUSTER", True)
    saved_env = {name: os.environ.get(name) for name in LOCAL_RAY_ENV}
    constants.ENABLE_RAY_CLUSTER = False
    os.environ.update(LOCAL_RAY_ENV)
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_flag
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start_local(
    ray: ModuleType, spec: RaySpec, *, num_cpus: int | None, object_store_bytes: int
) -> RaySession:
    with _loopback_only(ray):
        try:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                object_store_memory=object_store_bytes,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                configure_logging=False,
            )
        except Exception as exc:  # Ray raises bare Exception when its processes start too slowly
            ray.shutdown()  # stops whatever part did start
            raise BackendUnavailableError(f"could not start a local Ray: {exc}", backend="ray") from exc
    return RaySession(ray, spec=spec, owned=True)


def check_gcs(ray: ModuleType, address: str, timeout_s: float) -> None:
    """Ask the GCS at ``address`` for its cluster id, giving up after ``timeout_s``.

    A port that accepts TCP but is not a Ray head (a proxy, another service) would otherwise keep
    ``ray.init`` retrying for tens of seconds; the client runs in a daemon thread so the wait is bounded.
    """
    outcome: list[BaseException | None] = []

    def ask() -> None:
        try:
            ray._raylet.GcsClient(address=address)
        except Exception as exc:  # any failure means "not a usable Ray head"
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=ask, name="netscaffold-ray-gcs-check", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        raise BackendUnavailableError(
            f"the Ray head at {address} did not answer within {timeout_s:g} s", backend="ray"
        )
    if outcome[0] is not None:
        raise BackendUnavailableError(
            f"{address} does not answer as a Ray head ({outcome[0]}); is `ray start --head` running there?",
            backend="ray",
        ) from outcome[0]


def _check_reachable(ray: ModuleType, spec: RaySpec, address: str, timeout_s: float) -> None:
    joined = parse_ray_spec(address, option="RAY_ADDRESS" if spec.kind == "auto" else "--ray")
    if joined.host is None or joined.port is None:  # pragma: no cover - an address spec has both
        raise ConfigError(f"Ray address {address!r} has no HOST:PORT", field="--ray")
    started = time.monotonic()
    probe(joined.host, joined.port, timeout_s)
    if not address.startswith(RAY_CLIENT_SCHEME):
        check_gcs(ray, address, max(0.5, timeout_s - (time.monotonic() - started)))


def _join(ray: ModuleType, spec: RaySpec, address: str, timeout_s: float) -> RaySession:
    _check_reachable(ray, spec, address, timeout_s)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise BackendUnavailableError(
            f"cannot join the Ray cluster at {address}: {exc}", backend="ray"
        ) from exc
    return RaySession(ray, spec=spec, owned=True)


def connect(
    spec: str,
    *,
    num_cpus: int | None = None,
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES,
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> RaySession:
    """Connect to Ray as ``spec`` (``auto``, ``local``, ``HOST:PORT``, ``ray://HOST:PORT``) says.

    ``num_cpus`` and ``object_store_bytes`` apply to a cluster this call starts (``local``, or ``auto``
    with no cluster to join). Bad specs raise :class:`ConfigError`; a cluster that does not answer within
    ``timeout_s`` raises :class:`BackendUnavailableError`.
    """
    parsed = parse_ray_spec(spec)
    if num_cpus is not None and num_cpus < 1:
        raise ConfigError(f"num_cpus must be >= 1, got {num_cpus}", field="num_cpus")
    if object_store_bytes < 75 * MIB:  # Ray's own floor for the object store
        raise ConfigError(
            f"object store must be >= 75 MiB, got {object_store_bytes} bytes", field="object_store"
        )
    ray = _import_ray()
    if ray.is_initialized():
        session = RaySession(ray, spec=parsed, owned=False)
        if parsed.kind == "address" and parsed.address not in (session.address, None):
            assert parsed.address is not None
            _check_reachable(ray, parsed, parsed.address, timeout_s)  # an unreachable one says so first
            raise ConfigError(
                f"this process is already connected to the Ray cluster at {session.address}; it cannot "
                f"also join {parsed.address}",
                field="--ray",
            )
        return session
    if parsed.kind == "local":
        return _start_local(ray, parsed, num_cpus=num_cpus, object_store_bytes=object_store_bytes)
    if parsed.kind == "address":
        assert parsed.address is not None
        return _join(ray, parsed, parsed.address, timeout_s)
    env_address = os.environ.get("RAY_ADDRESS", "").strip()
    if env_address:
        return _join(ray, parsed, env_address, timeout_s)
    recorded = recorded_cluster_address()
    if recorded is not None:
        with contextlib.suppress(BackendUnavailableError, ConfigError):
            # A stale record (the cluster has stopped) falls through to a local start.
            return _join(ray, parsed, recorded, min(timeout_s, 2.0))
    return _start_local(ray, parsed, num_cpus=num_cpus, object_store_bytes=object_store_bytes)
