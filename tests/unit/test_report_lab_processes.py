"""lab_processes.csv: written from the runs that sampled lab processes, and not at all otherwise."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from netscaffold.backends.linux.processes import ProcessSample
from netscaffold.scenarios.report import write_lab_processes


def _comparison(**runs: list[ProcessSample]) -> Any:
    return cast(Any, SimpleNamespace(runs={k: SimpleNamespace(lab_processes=v) for k, v in runs.items()}))


def test_lab_processes_csv_has_one_row_per_strategy_tick_and_process(tmp_path: Path) -> None:
    a = ProcessSample(1.0, "h1", 42, "iperf3", 0.25, 4096)
    b = ProcessSample(2.0, "h2", 43, "python3", 1.0, 8192)
    assert write_lab_processes(_comparison(reactive=[a], **{"scaffold:ewma": [a, b]}), tmp_path)
    with (tmp_path / "lab_processes.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["strategy", "time_s", "node", "pid", "name", "cpu", "memory"],
        ["reactive", "1.000", "h1", "42", "iperf3", "0.2500", "4096"],
        ["scaffold:ewma", "1.000", "h1", "42", "iperf3", "0.2500", "4096"],
        ["scaffold:ewma", "2.000", "h2", "43", "python3", "1.0000", "8192"],
    ]


def test_no_file_without_samples(tmp_path: Path) -> None:
    assert not write_lab_processes(_comparison(reactive=[], oracle=[]), tmp_path)
    assert not (tmp_path / "lab_processes.csv").exists()
