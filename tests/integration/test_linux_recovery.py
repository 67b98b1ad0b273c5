"""Recovery on a real lab (root): a fresh backend reads the same config back from the kernel alone (in
another process), kill -9 mid-apply then `netscaffold lab repair`, and random plans with a fault at a
random step leave the pre-plan state with zero residue."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.converge import ObjectMap
from netscaffold.backends.linux.faults import FAULT_MODES, fault_at
from netscaffold.backends.linux.journal import read_journal
from netscaffold.backends.linux.plans import mixed_config
from netscaffold.backends.protocol import ManualClock
from netscaffold.errors import BackendError
from netscaffold.formats.netjson import to_netjson
from netscaffold.formats.render import records
from netscaffold.formats.render.objects import KernelElement, same
from netscaffold.model import NetworkConfig, Plan

from .test_linux_common import skip_without_facilities, small_topology, unique_lab

pytestmark = pytest.mark.root
CLI = Path(sys.executable).with_name("netscaffold")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[LinuxBackend, Path]]:
    skip_without_facilities()
    topology_file = tmp_path / "small.json"
    topology_file.write_text(to_netjson(small_topology()))
    be = LinuxBackend(
        small_topology(), lab=unique_lab("r"), clock=ManualClock(), topology_file=str(topology_file)
    )
    try:
        yield be, topology_file
    finally:
        be.close()


def _python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _equal_state(a: ObjectMap, b: ObjectMap) -> bool:
    """Same objects (set elements compared but for the time left on their timeouts)."""
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


ATTACH = """
    import json, sys
    from netscaffold.formats.loader import load_topology
    from netscaffold.backends.linux.backend import LinuxBackend
    from netscaffold.formats.render import records
    be = LinuxBackend(load_topology(sys.argv[1]), lab=sys.argv[2], create=False)
    print(json.dumps([records.encode_item(item) for item in be.snapshot().sorted_items()]))
    be.sessions.close()
"""


def test_a_fresh_process_reads_the_same_config_from_the_kernel(lab: tuple[LinuxBackend, Path]) -> None:
    be, topology_file = lab
    desired = mixed_config(be.topology, 60, seed=3, now_s=be.clock.now())
    be.apply(Plan.between(NetworkConfig(), desired))
    proc = _python(ATTACH, str(topology_file), be.layout.lab)
    assert proc.returncode == 0, proc.stderr
    seen = NetworkConfig.of(records.decode_item(raw) for raw in json.loads(proc.stdout))
    assert seen == desired
    assert LinuxBackend(be.topology, lab=be.layout.lab, create=False).snapshot() == desired


def test_an_item_whose_object_was_deleted_behind_our_back_is_absent(lab: tuple[LinuxBackend, Path]) -> None:
    be, _ = lab
    desired = mixed_config(be.topology, 30, seed=4, now_s=be.clock.now())
    be.apply(Plan.between(NetworkConfig(), desired))
    route = next(item for item in desired if item.key[0] == "route")
    netns = be.layout.namespace(route.key[1])
    subprocess.run(["ip", "-n", netns, "route", "delete", route.key[2]], check=True)
    assert be.snapshot() == NetworkConfig({k: v for k, v in desired.items.items() if k != route.key})
    assert any(isinstance(obj, KernelElement) for obj in be.residue().values())  # its record is left


KILLER = """
    import sys
    from netscaffold.formats.loader import load_topology
    from netscaffold.backends.linux.backend import LinuxBackend
    from netscaffold.backends.linux.faults import fault_at
    from netscaffold.backends.linux.plans import mixed_config
    from netscaffold.model import Plan
    topology = load_topology(sys.argv[1])
    hook = fault_at(int(sys.argv[3]), "sigkill")
    be = LinuxBackend(topology, lab=sys.argv[2], create=False, before_step=hook)
    plan = Plan.between(be.snapshot(), mixed_config(topology, 80, seed=7), allow_confirmed_changes=True)
    be.apply(plan)
"""


def test_kill_9_mid_apply_then_lab_repair_restores_the_pre_plan_state(
    lab: tuple[LinuxBackend, Path],
) -> None:
    be, topology_file = lab
    be.apply(Plan.between(NetworkConfig(), mixed_config(be.topology, 40, seed=5)))
    before = be.kernel_objects()
    proc = _python(KILLER, str(topology_file), be.layout.lab, "3")
    assert proc.returncode == -9, proc.stderr
    assert read_journal(be.layout.lab) is not None
    assert not _equal_state(be.kernel_objects(), before), "the killed apply changed nothing: no test"
    repair = subprocess.run(
        [str(CLI), "lab", "repair", "--topology", str(topology_file), "--name", be.layout.lab, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert repair.returncode == 0, repair.stderr
    assert json.loads(repair.stdout)["journal_found"] is True
    assert read_journal(be.layout.lab) is None
    assert _equal_state(be.kernel_objects(), before)
    assert be.residue() == {}


@pytest.mark.parametrize("seed", range(3))
def test_random_plans_with_a_fault_at_a_random_step_leave_zero_residue(
    lab: tuple[LinuxBackend, Path], seed: int
) -> None:
    be, _ = lab
    rng = np.random.default_rng(seed)
    be.apply(Plan.between(NetworkConfig(), mixed_config(be.topology, 30, seed=100 + seed)))
    before_objects, before_config = be.kernel_objects(), be.snapshot()
    plan = Plan.between(
        before_config, mixed_config(be.topology, 60, seed=200 + seed), allow_confirmed_changes=True
    )
    steps = be.dry_run(plan)
    be.before_step = fault_at(int(rng.integers(len(steps))), FAULT_MODES[seed % len(FAULT_MODES)])
    started = time.perf_counter()
    with pytest.raises(BackendError, match=r"rolled back|injected"):
        be.apply(plan)
    assert time.perf_counter() - started < 5.0
    be.before_step = None
    assert _equal_state(be.kernel_objects(), before_objects)
    assert be.snapshot() == before_config
    assert be.residue() == {}


SERVE = """
    import sys, time
    from netscaffold.formats.loader import load_topology
    from netscaffold.backends.linux.backend import LinuxBackend
    from netscaffold.backends.linux.plans import mixed_config
    from netscaffold.backends.linux.signals import graceful_shutdown
    from netscaffold.model import NetworkConfig, Plan
    topology = load_topology(sys.argv[1])
    be = LinuxBackend(topology, lab=sys.argv[2], topology_file=sys.argv[1])
    be.apply(Plan.between(NetworkConfig(), mixed_config(topology, 40, seed=11, now_s=be.clock.now())))
    with graceful_shutdown(be):
        print("ready", flush=True)
        time.sleep(60)
"""


def test_sigterm_withdraws_provisional_items_keeps_the_rest_and_exits_fast(tmp_path: Path) -> None:
    skip_without_facilities()
    topology_file = tmp_path / "small.json"
    topology_file.write_text(to_netjson(small_topology()))
    name = unique_lab("s")
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SERVE), str(topology_file), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        sent = time.perf_counter()
        proc.send_signal(15)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
        assert time.perf_counter() - sent < 5.0
        attached = LinuxBackend(small_topology(), lab=name, create=False)
        try:
            left = attached.snapshot()
            expected = mixed_config(small_topology(), 40, seed=11)
            assert len(left) > 0
            assert left == NetworkConfig({k: v for k, v in expected.items.items() if v.expires_at is None})
            assert attached.residue() == {}
        finally:
            attached.sessions.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        from netscaffold.backends.linux.lab import lab_down

        lab_down(name)
