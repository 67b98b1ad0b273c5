"""The microservices workload: determinism, call graph, QoS, autoscaling, deployments, failures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from netscaffold.formats.generators import leaf_spine
from netscaffold.model.topology import Topology
from netscaffold.telemetry.callgraph import SERVICES
from netscaffold.telemetry.microservices import MicroservicesConfig, microservices
from netscaffold.telemetry.replicas import ClusterConfig, expected_calls
from netscaffold.telemetry.workload import Workload

PORTS = {svc.name: svc.port for svc in SERVICES}


@pytest.fixture(scope="module")
def fabric() -> Topology:
    return leaf_spine(2, 4, 4, 10e9)


@pytest.fixture(scope="module")
def busy(fabric: Topology) -> Workload:
    """Low scale-up threshold and frequent failures, so every mechanism shows within 120 s."""
    cluster = ClusterConfig(scale_up_util=0.5, failures_per_hour=120.0, deployments=2)
    return microservices(fabric, seed=5, config=MicroservicesConfig(duration_s=120.0, cluster=cluster))


def _endpoint_flows(workload: Workload, endpoint: str) -> np.ndarray:
    index = workload.flows.endpoints.index(endpoint)
    flows = workload.flows
    return flows.start_s[(flows.src == index) | (flows.dst == index)]


def test_same_seed_same_workload_other_seed_differs(fabric: Topology) -> None:
    config = MicroservicesConfig(duration_s=40.0)
    a = microservices(fabric, seed=1, config=config)
    b = microservices(fabric, seed=1, config=config)
    c = microservices(fabric, seed=2, config=config)
    for name in ("start_s", "src", "dst", "size_bytes", "qos", "dst_port"):
        np.testing.assert_array_equal(getattr(a.flows, name), getattr(b.flows, name))
    assert a.events == b.events
    assert a.placement == b.placement
    np.testing.assert_array_equal(a.telemetry.apps().cpu, b.telemetry.apps().cpu)
    assert len(a.flows) != len(c.flows) or not np.array_equal(a.flows.start_s, c.flows.start_s)


def test_calls_follow_the_graph_with_ports_and_qos(busy: Workload) -> None:
    flows = busy.flows
    apps = [busy.topology.endpoints[e].app_name for e in flows.endpoints]
    src_app = np.array(apps)[flows.src]
    dst_app = np.array(apps)[flows.dst]
    requests = flows.dst_port > 0
    assert requests.sum() == (~requests).sum()  # every call is a request and a reply
    for app, port in PORTS.items():
        assert (flows.dst_port[requests & (dst_app == app)] == port).all()
    qos = np.array(flows.qos_names)[flows.qos]
    assert set(dst_app[qos == "storage"]) == {"user-db", "catalog-db", "order-db"}
    assert set(src_app[qos == "storage-reply"]) == {"user-db", "catalog-db", "order-db"}
    assert set(dst_app[qos == "payment"]) == {"payment"}
    assert ("ingress", "frontend") in set(zip(src_app.tolist(), dst_app.tolist(), strict=True))
    assert busy.qos.lookup("order", "payment").max_latency_s is not None
    assert busy.qos.lookup("catalog", "catalog-db").min_bandwidth_bps > 0
    assert busy.qos.lookup("catalog-db", "catalog").allowed_ports == ()
    assert busy.qos.lookup("frontend", "api").name == "best-effort"


def test_scale_out_adds_an_endpoint_that_serves_only_once_ready(busy: Workload) -> None:
    outs = [e for e in busy.events if e.kind == "scale-out"]
    assert outs, "the low threshold must trigger scale-outs"
    cpu = busy.telemetry.apps().cpu
    served_after = 0
    for event in outs:
        endpoint = str(event.detail["endpoint"])
        assert endpoint in busy.topology.endpoints
        starts = _endpoint_flows(busy, endpoint)
        ready_s = float(event.detail["ready_s"])
        assert (starts >= ready_s - 1e-9).all()
        served_after += int(starts.size > 0)
        assert float(event.detail["cpu"]) > 0.5
        # the telemetry shows the busy service before the new pairs appear: CPU leads the traffic
        tick = int(event.time_s)
        siblings = [i for i, e in enumerate(busy.telemetry.endpoints) if e.startswith(f"{event.subject}-")]
        assert max(cpu[tick, i] for i in siblings) > 0.4  # (a fresh replica's CPU ramps up from zero)
        assert ready_s - event.time_s >= 8.0
    assert served_after > 0


def test_failed_replica_gets_no_calls_while_down(busy: Workload) -> None:
    failures = [e for e in busy.events if e.kind == "failure"]
    assert failures
    for event in failures:
        back = next(e for e in busy.events if e.kind == "recovery" and e.subject == event.subject)
        starts = _endpoint_flows(busy, event.subject)
        during = (starts >= event.time_s + 1e-3) & (starts < back.time_s)
        assert not during.any()
        cpu = busy.telemetry.apps().cpu[:, busy.telemetry.index_of(event.subject)]
        assert (cpu[int(event.time_s) : int(back.time_s)] == 0).all()


def test_deployment_replaces_replicas_with_the_next_version(busy: Workload) -> None:
    deploys = [e for e in busy.events if e.kind == "deploy"]
    assert len(deploys) == 2
    for deploy in deploys:
        replaced = [e for e in busy.events if e.kind == "replace" and e.subject == deploy.subject]
        assert replaced
        for event in replaced:
            assert event.detail["version"] == deploy.detail["version"]
            old_starts = _endpoint_flows(busy, str(event.detail["old"]))
            assert (old_starts < float(event.detail["ready_s"]) + 0.01).all()


def test_versions_shift_the_call_pattern() -> None:
    v1 = expected_calls({"browse": 100.0}, {})
    v2 = expected_calls({"browse": 100.0}, {"catalog": {2: 1.0}})
    half = expected_calls({"browse": 100.0}, {"catalog": {1: 0.5, 2: 0.5}})
    assert v1["catalog-db"] == pytest.approx(25.0)
    assert v2["catalog-db"] == pytest.approx(8.0)
    assert half["catalog-db"] == pytest.approx(16.5)
    assert v1["frontend"] == pytest.approx(100.0)
    assert expected_calls({"browse": 100.0}, {"recommend": {2: 1.0}})["catalog"] > v1["catalog"]


def test_telemetry_matches_the_flows(busy: Workload) -> None:
    store = busy.telemetry
    apps = store.apps()
    assert store.endpoints == busy.flows.endpoints
    assert apps.tx_bytes.sum() == pytest.approx(busy.flows.size_bytes.sum(), rel=1e-6)
    np.testing.assert_allclose(apps.tx_bytes.sum(axis=1), store.pair_matrix().sum(axis=(1, 2)))
    assert (apps.cpu >= 0).all()
    assert apps.cpu.max() > 0.3
    front = [store.index_of(e) for e in store.endpoints if e.startswith("frontend-")]
    assert (apps.memory[:, front].max(axis=0) > 384e6).all()  # session state on top of the base


def test_a_backbone_without_hosts_places_on_every_node() -> None:
    from netscaffold.model.topology import Link, Node

    nodes = [Node(n) for n in "abc"]
    links = [Link(s, d, 1e9) for s, d in ("ab", "ba", "bc", "cb")]
    workload = microservices(
        Topology.build(nodes, links), seed=0, config=replace(MicroservicesConfig(), duration_s=10.0)
    )
    assert {ep.host for ep in workload.topology.endpoints.values()} <= {"a", "b", "c"}
    assert len(workload.flows) > 0
