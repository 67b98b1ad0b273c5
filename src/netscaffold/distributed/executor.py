"""Running comparisons: in this process, or strategy by strategy as Ray tasks.

Under Ray each strategy of each comparison is one task. The driver builds every
:class:`~netscaffold.scenarios.runner.ScenarioRunner` once (topology and workload; the same objects a
single-process run uses) and puts it in the object store; ``reactive`` returns its run and the recorded
foresight, which the ``oracle`` task takes as an argument, so Ray starts the oracle only when its reactive
run is done (the order dependency of a single-process run); every ``scaffold:<forecaster>`` runs beside
them. Forecasters fix their own torch thread count, so each figure equals the single-process one exactly.

A task whose worker dies is retried by Ray (``max_retries``); errors raised on purpose inside a task reach
the caller as the same :class:`~netscaffold.errors.NetscaffoldError`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from netscaffold.distributed.connection import RaySession
from netscaffold.errors import BackendError, ConfigError, NetscaffoldError
from netscaffold.scenarios.runner import Comparison, ProgressFn, ScenarioRunner, StrategyRun

DoneFn = Callable[[int, int], None]
"""Called with (tasks done, tasks in all) as Ray tasks finish."""

DEFAULT_MAX_RETRIES = 3


def run_local(runners: Sequence[ScenarioRunner], progress: ProgressFn | None = None) -> list[Comparison]:
    """Every comparison in this process, one after the other."""
    return [runner.run(progress) for runner in runners]


def _unpickled_runner(blob: bytes) -> ScenarioRunner:
    """The runner from its pickle, with ordinary writable arrays.

    Ray hands numpy arrays out of its object store as read-only views, and numba compiles (and caches) a
    separate specialisation for read-only arrays: every fresh worker would spend tens of seconds in the
    compiler. Shipping the runner as pickled bytes gives each task its own writable copy instead.
    """
    runner = pickle.loads(blob)  # noqa: S301 (bytes the driver pickled just before; Ray pickles anyway)
    if not isinstance(runner, ScenarioRunner):  # pragma: no cover - only this module puts these
        raise TypeError(f"expected a ScenarioRunner, got {type(runner).__name__}")
    return runner


def _reactive_task(blob: bytes) -> tuple[StrategyRun, Any]:
    runner = _unpickled_runner(blob)
    recorder = runner.new_recorder()
    return runner.run_strategy("reactive", recorder), recorder


def _strategy_task(blob: bytes, name: str, recorder: Any) -> StrategyRun:
    runner = _unpickled_runner(blob)
    return runner.run_strategy(name, recorder if recorder is not None else runner.new_recorder())


def run_on_ray(
    session: RaySession,
    runners: Iterable[ScenarioRunner],
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
    on_done: DoneFn | None = None,
) -> list[Comparison]:
    """Every strategy of every comparison as a Ray task; the comparisons in the order given.

    ``runners`` may be a generator: each comparison's tasks are submitted as soon as its runner is built,
    so building the next workload overlaps with the tasks already running.
    """
    if max_retries < 0:
        raise ConfigError(f"max_retries must be >= 0, got {max_retries}", field="max_retries")
    ray = session.ray
    reactive = ray.remote(num_cpus=1, max_retries=max_retries, num_returns=2)(_reactive_task)
    strategy = ray.remote(num_cpus=1, max_retries=max_retries)(_strategy_task)
    pending: dict[Any, tuple[int, str]] = {}
    submitted: list[ScenarioRunner] = []
    for position, runner in enumerate(runners):
        if runner.scenario.backend != "sim":
            raise ConfigError(
                f"scenario {runner.scenario.name!r}: --ray runs the embedded emulator only "
                f"(backend {runner.scenario.backend!r})",
                field="backend",
            )
        submitted.append(runner)
        runner_ref = ray.put(pickle.dumps(runner, protocol=pickle.HIGHEST_PROTOCOL))
        reactive_ref, recorder_ref = reactive.remote(runner_ref)
        pending[reactive_ref] = (position, "reactive")
        for name in runner.strategy_order()[1:]:
            ref = strategy.remote(runner_ref, name, recorder_ref if name == "oracle" else None)
            pending[ref] = (position, name)
    results = _gather(ray, pending, on_done)
    comparisons = []
    for position, runner in enumerate(submitted):
        comparison = Comparison(runner.scenario, runner.workload, runner.measure_from_s, runner.index)
        for name in runner.strategy_order():  # the single-process insertion order
            if name in runner.scenario.strategies:
                comparison.runs[name] = results[(position, name)]
        comparisons.append(comparison)
    return comparisons


def _gather(
    ray: Any, pending: dict[Any, tuple[int, str]], on_done: DoneFn | None
) -> dict[tuple[int, str], Any]:
    total = len(pending)
    results: dict[tuple[int, str], Any] = {}
    waiting = list(pending)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        for ref in ready:
            results[pending[ref]] = _get(ray, ref, pending[ref])
        if on_done is not None:
            on_done(len(results), total)
    return results


def _get(ray: Any, ref: Any, where: tuple[int, str]) -> Any:
    from ray import exceptions as ray_errors  # lazy: only a Ray run imports Ray

    try:
        return ray.get(ref)
    except ray_errors.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, NetscaffoldError):
            raise cause from None
        raise BackendError(f"strategy {where[1]!r} failed in a Ray task: {cause!r}", backend="ray") from exc
    except (ray_errors.WorkerCrashedError, ray_errors.NodeDiedError, ray_errors.ObjectLostError) as exc:
        raise BackendError(
            f"strategy {where[1]!r}: its Ray worker died and the retries ran out ({type(exc).__name__})",
            backend="ray",
        ) from exc
