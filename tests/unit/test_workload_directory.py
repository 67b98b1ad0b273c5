"""The telemetry directory: write, load back exactly, replay through flow-trace; damaged input refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from netscaffold.errors import TrafficError
from netscaffold.formats.generators import leaf_spine
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.telemetry import (
    MicroservicesConfig,
    flow_trace,
    load_telemetry_dir,
    microservices,
    write_telemetry_dir,
)
from netscaffold.telemetry.workload import Workload

FIELDS = ("cpu", "memory", "tx_bytes", "rx_bytes")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workload, Path]:
    workload = microservices(leaf_spine(2, 2, 4, 10e9), seed=7, config=MicroservicesConfig(duration_s=30.0))
    out = tmp_path_factory.mktemp("telemetry")
    write_telemetry_dir(workload, out, source={"generate": "leaf-spine"})
    return workload, out


def test_files_and_meta(generated: tuple[Workload, Path]) -> None:
    workload, out = generated
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["flows.csv", "app_telemetry.csv", "pair_bytes.npz", "placement.csv", "meta.json"]
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["workload"] == "microservices"
    assert meta["seed"] == 7
    assert meta["placement"] == workload.placement
    assert len(meta["events"]) == len(workload.events)
    assert {q["class"] for q in meta["qos"]["per_pair"]} >= {"storage", "payment"}
    with np.load(out / "pair_bytes.npz") as npz:  # the traffic-matrix layout, loadable as a series
        series = TrafficMatrixSeries(
            npz["tm"], tuple(npz["nodes"]), float(npz["interval_s"]), str(npz["unit"])
        )
    assert series.tm.shape == (30, len(workload.flows.endpoints), len(workload.flows.endpoints))
    assert series.tm.sum() == pytest.approx(workload.telemetry.total_pair_bytes())


def test_load_gives_back_the_workload(generated: tuple[Workload, Path]) -> None:
    workload, out = generated
    loaded = load_telemetry_dir(out)
    assert loaded.seed == 7
    assert loaded.events == workload.events
    assert loaded.placement == workload.placement
    assert loaded.topology.fingerprint_data() == workload.topology.fingerprint_data()
    for name in ("start_s", "src", "dst", "size_bytes", "dst_port"):
        np.testing.assert_array_equal(getattr(loaded.flows, name), getattr(workload.flows, name))
    names = np.array(loaded.flows.qos_names)[loaded.flows.qos]
    np.testing.assert_array_equal(names, np.array(workload.flows.qos_names)[workload.flows.qos])
    np.testing.assert_array_equal(loaded.store.pair_matrix(), workload.telemetry.pair_matrix())
    for name in FIELDS:
        np.testing.assert_array_equal(
            getattr(loaded.store.apps(), name), getattr(workload.telemetry.apps(), name)
        )


def test_replaying_the_directory_through_flow_trace_reproduces_it(generated: tuple[Workload, Path]) -> None:
    workload, out = generated
    replay = flow_trace(
        leaf_spine(2, 2, 4, 10e9),
        out / "flows.csv",
        placement=str(out / "placement.csv"),
        app_telemetry=out / "app_telemetry.csv",
        duration_s=30.0,
    )
    assert replay.placement == workload.placement
    np.testing.assert_array_equal(replay.flows.size_bytes, workload.flows.size_bytes)
    np.testing.assert_allclose(replay.telemetry.pair_matrix(), workload.telemetry.pair_matrix(), rtol=1e-9)
    for name in FIELDS:
        np.testing.assert_allclose(
            getattr(replay.telemetry.apps(), name), getattr(workload.telemetry.apps(), name)
        )


def test_damaged_directories_are_refused(generated: tuple[Workload, Path], tmp_path: Path) -> None:
    _, out = generated
    with pytest.raises(TrafficError, match="does not exist"):
        load_telemetry_dir(tmp_path / "nope")
    (tmp_path / "meta.json").write_text('{"format": "something-else"}')
    with pytest.raises(TrafficError, match="not a telemetry directory"):
        load_telemetry_dir(tmp_path)
    meta = json.loads((out / "meta.json").read_text())
    meta["ticks"] = 31
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    for name in ("flows.csv", "app_telemetry.csv", "pair_bytes.npz"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    with pytest.raises(TrafficError, match=r"disagree with meta\.json") as caught:
        load_telemetry_dir(tmp_path)
    assert caught.value.location.file == str(tmp_path / "pair_bytes.npz")
