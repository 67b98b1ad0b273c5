"""`netscaffold run --backend linux --scenario small`: the engine in real time on a lab with real packets
(shortened), and the pure parts of the traffic plan (which transfers probe a pair's first packet)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.traffic import Placement, spec_document, transfers
from netscaffold.cli.main import main
from netscaffold.errors import BackendError
from netscaffold.model.flows import FlowTable

from .test_linux_common import skip_without_facilities


def _labs_of(pid: int) -> list[str]:
    """Namespaces of the labs a run in process ``pid`` made (other engineers' labs aside)."""
    return [name for name in tools.list_namespaces() if name.startswith(f"ns-run{pid % 10000}x")]


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _flows(starts: list[float], pairs: list[tuple[int, int]], sizes: list[float]) -> FlowTable:
    return FlowTable.build(
        start_s=starts,
        src=[a for a, _ in pairs],
        dst=[b for _, b in pairs],
        size_bytes=sizes,
        endpoints=("a", "b", "c"),
    )


def test_one_transfer_per_pair_and_tick_and_a_probe_after_each_idle_gap() -> None:
    flows = _flows(
        [0.1, 0.2, 0.3, 1.5, 5.0, 20.0, 0.4],
        [(0, 1), (0, 1), (1, 0), (0, 1), (0, 1), (0, 1), (0, 2)],
        [1000.0, 2000.0, 500.0, 100.0, 50_000.0, 10.0, 9e9],
    )
    plan = transfers(flows, tick_s=1.0, idle_s=10.0, cap_bytes=40_000)
    summary = [(t.start_s, t.src, t.dst, t.bytes, t.probe) for t in plan]
    assert summary == [
        (0.1, "a", "b", 3000, True),  # two flows of one tick: one transfer, their bytes
        (0.3, "b", "a", 1200, True),  # at least one datagram
        (0.4, "a", "c", 40_000, True),  # capped
        (1.5, "a", "b", 1200, False),  # the pair's path is in use: no probe
        (5.0, "a", "b", 40_000, False),
        (20.0, "a", "b", 1200, True),  # after an idle gap of more than 10 s: a probe again
    ]
    assert transfers(flows, tick_s=1.0, idle_s=10.0, until_s=1.0)[-1].start_s == 0.4


def test_spec_refuses_endpoints_without_a_place() -> None:
    plan = transfers(_flows([0.0], [(0, 1)], [1.0]), tick_s=1.0, idle_s=1.0)
    with pytest.raises(BackendError, match="without a place"):
        spec_document(plan, {"a": Placement("ns", "198.18.0.1")}, origin_monotonic=0.0, bulk_bytes=1)


def test_empty_workload_has_no_transfers() -> None:
    empty = FlowTable.build(start_s=np.zeros(0), src=[], dst=[], size_bytes=[], endpoints=("a",))
    assert transfers(empty, tick_s=1.0, idle_s=1.0) == []


@pytest.mark.root
@pytest.mark.slow
def test_run_small_on_linux_reports_first_packet_latency_per_strategy(tmp_path: Path) -> None:
    skip_without_facilities()
    out = tmp_path / "run"
    code = run_cli(["run", "--backend", "linux", "--scenario", "small", "--out", str(out)])
    assert code == 0
    doc = json.loads((out / "summary.json").read_text())
    for name in ("reactive", "scaffold:ewma"):
        figures = doc["strategies"][name]
        assert figures["flows"] > 0, name
        assert 0 < figures["setup_ms_p50"] <= figures["setup_ms_p99"], name
        assert figures["setup_ms_p50"] < 1000.0, name  # measured first packets, not lost ones
    assert doc["strategies"]["reactive"]["plan_ops_per_s"] == 0.0
    assert doc["strategies"]["scaffold:ewma"]["plan_ops_per_s"] > 0.0
    assert not _labs_of(os.getpid())  # every lab torn down


def test_run_linux_needs_root_or_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI is root: the refusal path is exercised by presenting a non-root effective uid to the check.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code = run_cli(["run", "--backend", "linux", "--scenario", "small", "--out", str(tmp_path)])
    assert code == 2
    assert "root" in capsys.readouterr().err


@pytest.mark.root
@pytest.mark.slow
def test_sigterm_ends_a_linux_run_within_5_s_and_removes_its_labs() -> None:
    skip_without_facilities()
    argv = [sys.executable, "-m", "netscaffold.cli.main", "run", "--backend", "linux", "--scenario", "small"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _labs_of(proc.pid):
            time.sleep(0.2)
        assert _labs_of(proc.pid), "no lab came up"
        time.sleep(4.0)  # the engine is running
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = proc.wait(timeout=15)
        assert time.monotonic() - sent < 5.0
        assert code == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _labs_of(proc.pid)
