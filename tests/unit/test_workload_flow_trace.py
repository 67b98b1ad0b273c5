"""flow-trace: CSV replay, placement, size distributions, app telemetry alignment, errors with locations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netscaffold.errors import TopologyError, TrafficError
from netscaffold.formats.generators import leaf_spine
from netscaffold.model.topology import Topology
from netscaffold.telemetry.flow_trace import SizeDistribution, flow_trace

TRACE = """# recorded calls
time_s,src,dst,bytes,duration_s,qos
0.5,web,api,1000,,
0.7,api,db,,0.002,storage
3.2,api,web,2000,0.5,
40.0,web,api,,,
"""


@pytest.fixture
def fabric() -> Topology:
    return leaf_spine(1, 2, 2, 10e9)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_become_flows_with_drawn_sizes_and_pacing(tmp_path: Path, fabric: Topology) -> None:
    workload = flow_trace(fabric, _write(tmp_path, "f.csv", TRACE), size="const:512", seed=1)
    flows = workload.flows
    assert flows.endpoints == ("web", "api", "db")
    np.testing.assert_array_equal(flows.start_s, [0.5, 0.7, 3.2, 40.0])
    np.testing.assert_array_equal(flows.size_bytes, [1000, 512, 2000, 512])
    np.testing.assert_array_equal(flows.rate_bps, [np.inf, 512 * 8 / 0.002, 2000 * 8 / 0.5, np.inf])
    assert [flows.qos_names[q] for q in flows.qos] == ["best-effort", "storage", "best-effort", "best-effort"]
    assert [workload.topology.endpoints[n].host for n in flows.endpoints] == ["h000", "h001", "h002"]
    assert workload.qos.lookup("api", "db").min_bandwidth_bps > 0  # a built-in class keeps its profile
    assert workload.telemetry.ticks == 41  # the 36 s gap stays idle time
    assert workload.telemetry.pair_matrix()[5:40].sum() == 0


def test_random_and_file_placement(tmp_path: Path, fabric: Topology) -> None:
    trace = _write(tmp_path, "f.csv", TRACE)
    a = flow_trace(fabric, trace, placement="random", seed=3)
    b = flow_trace(fabric, trace, placement="random", seed=3)
    assert a.placement == b.placement
    placement = _write(tmp_path, "p.csv", "name,host,app\nweb,h003,frontend\napi,h003,api\ndb,h000,\n")
    placed = flow_trace(fabric, trace, placement=str(placement))
    assert placed.placement == {"web": "h003", "api": "h003", "db": "h000"}
    assert placed.topology.endpoints["web"].app == "frontend"


def test_app_telemetry_is_held_and_volume_spread(tmp_path: Path, fabric: Topology) -> None:
    trace = _write(tmp_path, "f.csv", "time_s,src,dst,bytes\n1,web,api,100\n")
    samples = _write(
        tmp_path,
        "a.csv",
        "time_s,app,cpu,memory,rx_bytes,tx_bytes\n-4,web,0.5,100,400,800\n0,web,0.7,120,40,80\n2,api,1.5,9,0,0\n",
    )
    workload = flow_trace(fabric, trace, app_telemetry=samples, tick_s=2.0)
    store = workload.telemetry
    assert store.start_s == -4.0
    np.testing.assert_array_equal(store.tick_times_s(), [-4.0, -2.0, 0.0, 2.0])  # to the last sample
    apps = store.apps()
    web, api = store.index_of("web"), store.index_of("api")
    np.testing.assert_array_equal(apps.cpu[:, web], [0.5, 0.5, 0.7, 0.7])  # held
    np.testing.assert_array_equal(apps.cpu[:, api], [0.0, 0.0, 0.0, 1.5])  # zero before its first sample
    np.testing.assert_array_equal(apps.memory[:, web], [100, 100, 120, 120])
    np.testing.assert_allclose(apps.rx_bytes[:, web], [200, 200, 20, 20])  # 400 over [-4, 0), 40 over 4 s
    np.testing.assert_allclose(apps.tx_bytes[:, web], [400, 400, 40, 40])
    assert store.pair_matrix().sum() == 100.0
    assert any("-4" in note for note in workload.notes)


@pytest.mark.parametrize(
    ("text", "line", "column", "match"),
    [
        ("time_s,src,dst,size\n0,a,b,1\n", 1, "size", "unknown column"),
        ("time_s,src\n0,a\n", 1, "dst", "missing column"),
        ("time_s,src,dst,bytes\n0,a,b,10\n1,a,b,-5\n", 3, "bytes", "must be >"),
        ("time_s,src,dst,bytes\n0,a,b,0\n", 2, "bytes", "must be >"),
        ("time_s,src,dst\n-1,a,b\n", 2, "time_s", "must be >="),
        ("time_s,src,dst\nsoon,a,b\n", 2, "time_s", "not a number"),
        ("time_s,src,dst\n0,a,a\n", 2, "dst", "same endpoint"),
        ("time_s,src,dst\n0,a,\n", 2, "dst", "missing value"),
        ("time_s,src,dst,dst_port\n0,a,b,70000\n", 2, "dst_port", "port"),
        ("time_s,src,dst\n0,a,b,9\n", 2, None, "values for 3 columns"),
        ("time_s,src,dst\n", None, None, "no flows"),
        ("", None, None, "empty file"),
    ],
)
def test_bad_flow_csv_names_file_line_and_column(
    tmp_path: Path, fabric: Topology, text: str, line: int | None, column: str | None, match: str
) -> None:
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(TrafficError, match=match) as caught:
        flow_trace(fabric, path)
    location = caught.value.location
    assert location.file == str(path)
    assert location.line == line
    assert location.field == column


def test_unknown_endpoints_are_refused_with_their_line(tmp_path: Path, fabric: Topology) -> None:
    trace = _write(tmp_path, "f.csv", "time_s,src,dst\n0,web,api\n1,web,cache\n")
    placement = _write(tmp_path, "p.csv", "name,host\nweb,h000\napi,h001\n")
    with pytest.raises(TrafficError, match="unknown endpoint 'cache'") as caught:
        flow_trace(fabric, trace, placement=str(placement))
    assert (caught.value.location.line, caught.value.location.field) == (3, "dst")
    samples = _write(
        tmp_path, "a.csv", "time_s,app,cpu,memory,rx_bytes,tx_bytes\n0,web,1,1,1,1\n5,db,1,1,1,1\n"
    )
    with pytest.raises(TrafficError, match="unknown endpoint 'db'") as caught:
        flow_trace(fabric, _write(tmp_path, "g.csv", "time_s,src,dst\n0,web,api\n"), app_telemetry=samples)
    assert (caught.value.location.file, caught.value.location.line) == (str(samples), 3)
    bad_host = _write(tmp_path, "q.csv", "name,host\nweb,h000\napi,h999\n")
    with pytest.raises(TopologyError, match="unknown host") as caught:
        flow_trace(fabric, _write(tmp_path, "h.csv", "time_s,src,dst\n0,web,api\n"), placement=str(bad_host))
    assert caught.value.location.line == 3


def test_bad_telemetry_values_and_duplicates(tmp_path: Path, fabric: Topology) -> None:
    trace = _write(tmp_path, "f.csv", "time_s,src,dst\n0,web,api\n")
    negative = _write(tmp_path, "a.csv", "time_s,app,cpu,memory,rx_bytes,tx_bytes\n0,web,-1,1,1,1\n")
    with pytest.raises(TrafficError, match="must be >= 0") as caught:
        flow_trace(fabric, trace, app_telemetry=negative)
    assert (caught.value.location.line, caught.value.location.field) == (2, "cpu")
    twice = _write(
        tmp_path, "b.csv", "time_s,app,cpu,memory,rx_bytes,tx_bytes\n0,web,1,1,1,1\n0,web,2,1,1,1\n"
    )
    with pytest.raises(TrafficError, match="same time") as caught:
        flow_trace(fabric, trace, app_telemetry=twice)
    assert caught.value.location.line == 3


@pytest.mark.parametrize("spec", ["normal:5", "lognormal", "lognormal:-1", "pareto:100:1", "const:x"])
def test_bad_size_distributions(spec: str) -> None:
    with pytest.raises(TrafficError, match="size distribution"):
        SizeDistribution.parse(spec)


@pytest.mark.parametrize("spec", ["lognormal:4096:1.0", "pareto:4096:1.5", "const:4096"])
def test_size_distributions_have_the_stated_mean(spec: str) -> None:
    sizes = SizeDistribution.parse(spec).sample(np.random.default_rng(0), 200_000)
    assert (sizes > 0).all()
    assert np.median(sizes) <= 4096.0 + 1e-9
    if spec.startswith("pareto"):
        assert sizes.min() == pytest.approx(4096 / 3, rel=1e-3)  # heavy tail: the sample mean is unstable
    else:
        assert sizes.mean() == pytest.approx(4096.0, rel=0.02)
