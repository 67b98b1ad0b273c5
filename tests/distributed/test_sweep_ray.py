"""`run --ray` and sweeps on Ray: the same numbers as one process, and a killed worker is retried."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from netscaffold.cli.main import main
from netscaffold.distributed.connection import RaySession
from netscaffold.distributed.sweep import run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TASK_TITLES = (b"ray::_strategy_task", b"ray::_reactive_task")


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.timeout(1200)  # two runs of the default scenario; minutes on a loaded 2-core machine
def test_run_on_ray_writes_the_single_process_summary_byte_for_byte(
    ray_local: RaySession, tmp_path: Path
) -> None:
    # The shortened default scenario with the LSTM (it trains inside one task) and the oracle (its task
    # waits for the reactive task's foresight).
    args = ["run", "--duration", "90", "--strategies", "reactive,scaffold:lstm,oracle"]
    assert run_cli([*args, "--out", str(tmp_path / "one")]) == 0
    assert run_cli([*args, "--out", str(tmp_path / "ray"), "--ray", "local"]) == 0
    assert ray_local.ray.is_initialized()  # the CLI reused the session and left it open
    single = (tmp_path / "one" / "summary.json").read_text()
    spread = (tmp_path / "ray" / "summary.json").read_text()
    assert '"scaffold:lstm"' in single
    assert spread == single


def _ancestors(pid: int) -> set[int]:
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rpartition(")")[2].split()[1])
    return seen


def _kill_one_task_worker(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first worker of this test session's Ray that is running one of our strategy tasks."""
    me = os.getpid()
    while not stop.is_set() and not killed:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            pid = int(entry.name)
            if title.startswith(TASK_TITLES) and me in _ancestors(pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        stop.wait(0.05)


def test_sweep_survives_a_killed_worker_and_equals_the_sequential_sweep(ray_local: RaySession) -> None:
    overrides = {"duration_s": 30.0, "strategies": ["reactive", "scaffold:ewma", "oracle"]}
    sequential = run_sweep(["small"], overrides, (0, 1))
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_one_task_worker, args=(stop, killed), daemon=True)
    killer.start()
    try:
        spread = run_sweep(["small"], overrides, (0, 1), ray_spec="local")
    finally:
        stop.set()
        killer.join(5)
    assert killed, "no strategy task was seen running, so none was killed"
    assert spread == sequential
    assert [(run["scenario"], run["seed"]) for run in spread["runs"]] == [("small", 0), ("small", 1)]
