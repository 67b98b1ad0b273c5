"""The batch workload: all-to-all shuffles among a job's workers, determinism, CPU before shuffles."""

from __future__ import annotations

import numpy as np
import pytest

from netscaffold.formats.generators import fat_tree
from netscaffold.telemetry.batch import BatchConfig, batch
from netscaffold.telemetry.workload import Workload


@pytest.fixture(scope="module")
def jobs() -> Workload:
    return batch(fat_tree(4, 10e9), seed=11, config=BatchConfig(duration_s=300.0))


def test_shuffles_are_all_to_all_within_each_job(jobs: Workload) -> None:
    flows = jobs.flows
    job_of = np.array([e.split("-")[0] for e in flows.endpoints])
    assert (job_of[flows.src] == job_of[flows.dst]).all()
    for event in (e for e in jobs.events if e.kind == "job-start"):
        workers = int(event.detail["workers"])
        members = [i for i, e in enumerate(flows.endpoints) if e.startswith(f"{event.subject}-")]
        assert len(members) == workers
        hosts = str(event.detail["hosts"]).split(",")
        assert len(set(hosts)) == workers  # distinct hosts (16 hosts >= 8 workers)
        mine = np.isin(flows.src, members)
        pairs = set(zip(flows.src[mine].tolist(), flows.dst[mine].tolist(), strict=True))
        if mine.any():
            assert len(pairs) == workers * (workers - 1)
            assert mine.sum() % (workers * (workers - 1)) == 0  # whole rounds


def test_same_seed_same_jobs() -> None:
    topology = fat_tree(4, 10e9)
    a = batch(topology, seed=3, config=BatchConfig(duration_s=120.0))
    b = batch(topology, seed=3, config=BatchConfig(duration_s=120.0))
    np.testing.assert_array_equal(a.flows.start_s, b.flows.start_s)
    np.testing.assert_array_equal(a.flows.size_bytes, b.flows.size_bytes)
    assert a.events == b.events


def test_cpu_is_busy_before_the_first_shuffle_and_bytes_add_up(jobs: Workload) -> None:
    store = jobs.telemetry
    cpu = store.apps().cpu
    flows = jobs.flows
    for worker in range(len(flows.endpoints)):
        sent = flows.start_s[flows.src == worker]
        if sent.size == 0:
            continue
        first_tick = int(sent.min())
        assert cpu[max(first_tick - 1, 0), worker] > 1.0  # computing just before it sends
    assert store.apps().tx_bytes.sum() == pytest.approx(flows.size_bytes.sum(), rel=1e-3)
    assert store.endpoints == flows.endpoints
