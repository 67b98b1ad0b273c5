"""tm-replay: Poisson arrivals at the network-wide rate, Pareto sizes, background so volume adds up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netscaffold.errors import TrafficError
from netscaffold.formats.generators import leaf_spine
from netscaffold.model.topology import Link, Node, Topology
from netscaffold.model.traffic import TrafficMatrixSeries
from netscaffold.telemetry.tm_replay import ReplayConfig, tm_replay


def _triangle() -> Topology:
    nodes = [Node(n) for n in ("A", "B", "C")]
    links = [Link(s, d, 10e9) for s, d in ("AB", "BA", "BC", "CB", "AC", "CA")]
    return Topology.build(nodes, links, name="triangle")


def _series(steps: int = 6) -> TrafficMatrixSeries:
    rng = np.random.default_rng(0)
    tm = rng.uniform(10.0, 200.0, (steps, 3, 3))
    tm[:, np.arange(3), np.arange(3)] = 0.0
    if steps > 2:
        tm[2, 0, 1] = 0.0  # a silent pair in one interval
    return TrafficMatrixSeries(tm, ("A", "B", "C"), 300.0, unit="Mbit/s")


def test_volume_adds_up_and_the_flow_rate_holds() -> None:
    series = _series()
    workload = tm_replay(
        _triangle(), series, seed=4, config=ReplayConfig(interval_s=10.0, flow_rate_per_s=200.0)
    )
    flows = workload.flows
    assert workload.duration_s == 60.0
    entry_bytes = series.tm.sum() * 1e6 * 10.0 / 8.0
    assert flows.size_bytes.sum() == pytest.approx(entry_bytes + workload.stats["overshoot_bytes"], rel=1e-9)
    elastic = np.isinf(flows.rate_bps)
    expected = 200.0 * 60.0
    assert abs(elastic.sum() - expected) < 5 * np.sqrt(expected)
    background = ~elastic
    assert background.sum() == workload.stats["background_flows"]
    assert (np.mod(flows.start_s[background], 10.0) == 0).all()  # one per pair and interval, at its start
    np.testing.assert_allclose(flows.size_bytes[background] * 8 / flows.rate_bps[background], 10.0)
    assert 0.3 < workload.stats["flow_bytes_share"] < 0.7
    silent = (flows.src == 0) & (flows.dst == 1) & (flows.start_s >= 20.0) & (flows.start_s < 30.0)
    assert not silent.any()
    assert any("x30" in note for note in workload.notes)


def test_telemetry_per_tick_follows_the_matrix() -> None:
    series = _series()
    workload = tm_replay(_triangle(), series, seed=1, config=ReplayConfig(flow_share=0.0))
    matrix = workload.telemetry.pair_matrix()  # no flows: only the paced background
    per_tick_expected = np.repeat(series.tm, 10, axis=0) * 1e6 / 8.0
    np.testing.assert_allclose(matrix, per_tick_expected, rtol=1e-6, atol=1e-3)


def test_matrix_nodes_missing_from_the_topology_go_round_robin() -> None:
    workload = tm_replay(leaf_spine(1, 2, 2, 10e9), _series(2), seed=0)
    assert [workload.topology.endpoints[n].host for n in ("A", "B", "C")] == ["h000", "h001", "h002"]
    assert any("round-robin" in note for note in workload.notes)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (ReplayConfig(interval_s=0.0), "interval_s"),
        (ReplayConfig(flow_share=1.5), "flow_share"),
        (ReplayConfig(start_step=9), "start step"),
        (ReplayConfig(duration_s=1000.0), "the series has 6"),
    ],
)
def test_bad_settings_are_refused(config: ReplayConfig, match: str) -> None:
    with pytest.raises(TrafficError, match=match):
        tm_replay(_triangle(), _series(), config=config)


def test_abilene_replay_on_the_abilene_topology(shared_data: Path) -> None:
    from netscaffold.formats.loader import load_topology
    from netscaffold.formats.traffic import load_traffic

    topology = load_topology(shared_data / "abilene" / "abilene_links.csv")
    series = load_traffic(shared_data / "abilene" / "abilene_tm_5min.npz")
    workload = tm_replay(topology, series, seed=0, config=ReplayConfig(duration_s=20.0, start_step=100))
    assert set(workload.flows.endpoints) == set(series.nodes)
    assert all(workload.topology.endpoints[n].host == n for n in series.nodes)
    volume = series.tm[100:102].sum() * 1e6 * 10.0 / 8.0
    assert workload.flows.size_bytes.sum() == pytest.approx(
        volume + workload.stats["overshoot_bytes"], rel=1e-9
    )
    assert abs(int(np.isinf(workload.flows.rate_bps).sum()) - 20_000) < 5 * np.sqrt(20_000)
