"""CPU and memory of the processes in a lab's namespaces (root): a busy process and an idle one, each in
its lab node, and nothing from outside the lab."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.processes import LabProcesses

from .test_linux_common import small_lab

pytestmark = pytest.mark.root

BUSY = "b = bytearray(64 << 20)\nimport time\nend = time.time() + 20\nwhile time.time() < end: pass\n"


@pytest.fixture
def backend() -> Iterator[LinuxBackend]:
    with small_lab("pr") as be:
        yield be


def test_processes_are_sampled_per_lab_node(backend: LinuxBackend) -> None:
    exec_in = ["ip", "netns", "exec"]
    busy = subprocess.Popen([*exec_in, backend.layout.namespace("h1"), "python3", "-c", BUSY])
    idle = subprocess.Popen([*exec_in, backend.layout.namespace("h2"), "sleep", "30"])
    try:
        sampler = LabProcesses(backend.layout)
        time.sleep(0.5)
        sampler.sample(1.0)
        time.sleep(1.0)
        samples = sampler.sample(2.0)
        by_pid = {s.pid: s for s in samples}
        assert os.getpid() not in by_pid, "the test process lives outside the lab"
        hot, cold = by_pid[busy.pid], by_pid[idle.pid]
        assert (hot.node, hot.name, hot.time_s) == ("h1", "python3", 2.0)
        assert (cold.node, cold.name) == ("h2", "sleep")
        assert hot.cpu > 0.1 > 0.02 > cold.cpu  # cores busy over the second between the samples
        assert hot.memory > 60 << 20 > cold.memory
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait(timeout=5)
    assert all(s.pid not in (busy.pid, idle.pid) for s in sampler.sample(3.0)), "gone once they exit"
