"""``forecast train --ray``: Ray Train DDP on a local two-node cluster writes a single-process-format
checkpoint and reports its NMAE beside the single-process one; ``forecast evaluate --ray`` gives the scores
of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.distributed.test_inference import synthetic

from netscaffold.distributed.train import evaluate_on_ray, validation_nmae
from netscaffold.errors import TrafficError
from netscaffold.predict.checkpoint import load_checkpoint
from netscaffold.predict.evaluate import evaluate_models
from netscaffold.predict.registry import make_forecaster

MIB = 1024 * 1024


def write_tm(path: Path, steps: int = 300, nodes: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    base = 20.0 + 8.0 * np.sin(2 * np.pi * t / 24)
    tm = (
        base[:, None, None]
        * rng.uniform(0.2, 2.0, (1, nodes, nodes))
        * rng.lognormal(0, 0.1, (steps, nodes, nodes))
    )
    tm[:, np.arange(nodes), np.arange(nodes)] = 0.0
    names = np.array([f"r{i}" for i in range(nodes)])
    np.savez(path, tm=tm, nodes=names, unit=np.array("Mbit/s"), interval_s=np.array(3600.0))
    return path


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[str]:
    """Two Ray nodes on 127.0.0.1 (one CPU, a 100 MiB object store each); yields the head's address."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from netscaffold.distributed.connection import _loopback_only

    node_args = {"num_cpus": 1, "object_store_memory": 100 * MIB, "node_ip_address": "127.0.0.1"}
    # The raylets' memory monitor kills workers when the *machine* is short of memory, which on a shared
    # test machine is other jobs' doing; these workers hold a few MiB, so it is off for this cluster.
    with pytest.MonkeyPatch.context() as monkey:
        monkey.setenv("RAY_memory_monitor_refresh_ms", "0")
        with _loopback_only(ray):
            head_args = {**node_args, "include_dashboard": False}
            cluster = Cluster(initialize_head=True, connect=False, head_node_args=head_args)
            cluster.add_node(**node_args)
    try:
        cluster.wait_for_nodes()
        yield str(cluster.address)
    finally:
        cluster.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_forecast_train_ray_ddp_on_two_nodes(two_node_cluster: str, tmp_path: Path) -> None:
    tm = write_tm(tmp_path / "tm.npz")
    out = tmp_path / "ddp.ckpt"
    command = [
        sys.executable, "-m", "netscaffold.cli.main", "forecast", "train", "--tm", str(tm), "--model", "lstm",
        "--epochs", "3", "--seed", "0", "--ray", two_node_cluster, "--ray-workers", "2", "--compare",
        "--out", str(out), "--json",
    ]  # fmt: skip
    # Join the loopback cluster as the loopback address: without this, Ray swaps 127.0.0.1 for the
    # machine's routable address when a driver connects (see connection._loopback_only).
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=420, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout)
    assert payload["ray"]["workers"] == 2
    ddp, single = payload["val_nmae"], payload["single_process"]["val_nmae"]
    print(f"DDP val NMAE {ddp:.6f}, single-process {single:.6f}, Ray Train {payload['ray']['train_s']:.1f} s")
    assert 0.0 < ddp < 1.0
    assert abs(ddp - single) <= 0.1 * single  # DDP may differ, but not by much on the same data and seed
    model = load_checkpoint(out)  # the single-process format: what `forecast predict` reads
    assert model.name == "lstm"
    from netscaffold.formats.traffic import load_traffic
    from netscaffold.predict.series import PairSeries

    series = PairSeries.from_tm(load_traffic(tm))
    assert validation_nmae(model, series) == pytest.approx(ddp)
    forecast = model.predict(series, 3)
    assert forecast.quantiles.shape == (1, 3, series.n_pairs, 3)


@pytest.mark.ray
def test_evaluate_on_ray_gives_the_single_process_scores(ray_local: object) -> None:
    series = synthetic(steps=260, n_pairs=30)
    lstm = {"epochs": 1, "hidden": 8, "windows_per_epoch": 1024, "device": "cpu"}
    args = {"train_fraction": 0.7, "seed": 0, "model_kwargs": {"lstm": lstm}}
    names, horizons = ["naive", "ewma", "lstm"], [1, 3]
    on_ray = evaluate_on_ray(series, names, horizons, "local", **args)
    alone = evaluate_models(series, names, horizons, **args)
    assert on_ray["models"] == alone["models"]
    assert on_ray["best_baseline"] == alone["best_baseline"]
    assert on_ray["split"] == alone["split"]
    with pytest.raises(TrafficError, match=r"no validation origin"):
        evaluate_on_ray(series.slice(0, 12), ["meank"], [1], "local", **args)


def test_validation_nmae_scores_the_last_fifteen_percent() -> None:
    series = synthetic(steps=200, n_pairs=10)
    model = make_forecaster("naive", horizon=2).fit(series)
    value = validation_nmae(model, series)
    split = round(200 * 0.85)
    origins = series.origins(1, 2, start=split)
    point = model.predict_at(series, origins, 2).point
    actual = series.values[origins[:, None] + np.arange(2)[None, :]]
    expected = np.mean(np.abs(point - actual).sum(axis=(0, 2)) / actual.sum(axis=(0, 2)))
    assert value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "ewma", "--ray", "local"], "--ray trains the LSTM data-parallel"),
        (["--model", "lstm", "--ray", "nowhere"], "is not auto, local, HOST:PORT"),
    ],
)
def test_cli_ray_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from netscaffold.cli.main import main

    tm = write_tm(tmp_path / "tm.npz", steps=80, nodes=3)
    with pytest.raises(SystemExit) as exited:
        main(["forecast", "train", "--tm", str(tm), "--out", str(tmp_path / "m.ckpt"), *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
