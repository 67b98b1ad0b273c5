"""Exporters: nftables JSON checked by ``nft -c``, ip and tc batches run by the real tools in a scratch
namespace (root), NetworkPolicies against the shipped schema, and ``netscaffold export`` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from tests.helpers.topologies import two_tier
from typer.testing import CliRunner

from netscaffold.cli.main import app as cli_app
from netscaffold.errors import ValidationError
from netscaffold.formats.export import export_nodes, network_policies, policies_yaml, validate_policy
from netscaffold.formats.netjson import netjson_document
from netscaffold.model.config import (
    FirewallRule,
    FlowMatch,
    NetworkConfig,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
)
from netscaffold.service import plans
from netscaffold.service.core import ServiceCore
from netscaffold.service.schemas import PlanRequest

NOW = 1_800_000_000.0


def _config() -> NetworkConfig:
    p, until = Origin.PREDICTED, NOW + 30
    return NetworkConfig.of(
        [
            Route("h1", "198.18.0.3/32", (NextHop("l1"),), p, until),
            Route("l1", "198.18.0.3/32", (NextHop("s1", 0.5), NextHop("s2", 0.5)), p, until),
            FirewallRule("s1", FlowMatch("198.18.0.1/32", "198.18.0.3/32", "tcp", 443), "accept", p, until),
            FirewallRule("s1", FlowMatch("198.18.0.2/32", "198.18.0.4/32", "udp", 53), "accept", p, until),
            Reservation("e1->e3", ("h1", "l1", "s1"), 1e6, p, until),
            VirtualCircuit("vc:e1->e3", "e1->e3", ("h1", "l1", "s1"), 1e6, p, until),
        ]
    )


def test_every_node_gets_all_three_exports() -> None:
    nodes = {n.node: n for n in export_nodes(two_tier(), _config(), now_s=NOW)}
    assert set(nodes) == set(two_tier().nodes)
    l1 = nodes["l1"]
    assert any("nexthop via" in line and "weight 256" in line for line in l1.ip_lines)
    assert any(line.startswith("rule add") for line in l1.ip_lines)  # the circuit's policy rule
    assert any(line.startswith("filter replace") and "198.18.0.1/32" in line for line in l1.tc_lines)
    elements = [c for c in nodes["s1"].nft_document["nftables"] if "add" in c and "element" in c["add"]]
    assert {e["add"]["element"]["name"] for e in elements} >= {"permit4"}


def test_export_refuses_items_it_cannot_place() -> None:
    bad = NetworkConfig.of([Reservation("e1->nobody", ("h1", "l1"), 1e6)])
    with pytest.raises(ValidationError, match="flow key"):
        export_nodes(two_tier(), bad, now_s=NOW)


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed")
def test_nft_accepts_every_document(tmp_path: Path) -> None:
    for node in export_nodes(two_tier(), _config(), now_s=NOW):
        path = tmp_path / f"{node.node}.json"
        path.write_text(json.dumps(node.nft_document))
        done = subprocess.run(
            ["nft", "-c", "-j", "-f", str(path)], capture_output=True, text=True, check=False
        )
        if "Operation not permitted" in done.stderr:
            pytest.skip("nft -c needs CAP_NET_ADMIN here")
        assert done.returncode == 0, f"{node.node}: {done.stderr}"


@pytest.fixture
def scratch_netns() -> Iterator[Callable[[], str]]:
    """Makes uniquely named namespaces; every one is deleted at teardown, even on failure."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("ip/tc not installed")
    made: list[str] = []

    def make() -> str:
        name = f"nsx-export-{uuid.uuid4().hex[:10]}"
        done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {done.stderr.strip()}")
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


@pytest.mark.root
def test_ip_and_tc_batches_run_in_a_scratch_namespace(
    scratch_netns: Callable[[], str], tmp_path: Path
) -> None:
    for node in export_nodes(two_tier(), _config(), now_s=NOW):
        netns = scratch_netns()
        for ifname in node.interfaces:  # a veth whose peer stays in the scratch namespace stands in
            link = ["link", "add", ifname, "type", "veth", "peer", "name", f"p{ifname}"]
            subprocess.run(["ip", "-n", netns, *link], check=True)
        ip_file = tmp_path / f"{node.node}.ip"
        ip_file.write_text("\n".join(node.ip_lines) + "\n")
        done = subprocess.run(
            ["ip", "-n", netns, "-batch", str(ip_file)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{node.node} ip: {done.stderr}"
        tc_file = tmp_path / f"{node.node}.tc"
        tc_file.write_text("\n".join(node.tc_lines) + "\n")
        done = subprocess.run(
            ["tc", "-n", netns, "-batch", str(tc_file)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{node.node} tc: {done.stderr}"
        routes = subprocess.run(
            ["ip", "-n", netns, "route", "show", "proto", "202"], capture_output=True, text=True, check=True
        )
        wanted = [line for line in node.ip_lines if line.startswith("route replace") and "table 254" in line]
        installed = [line for line in routes.stdout.splitlines() if line and not line[0].isspace()]
        assert len(installed) == len(wanted), node.node


def test_network_policies_follow_the_permits() -> None:
    policies = network_policies(two_tier(), _config(), namespace="prod")
    by_name = {p["metadata"]["name"]: p for p in policies}
    assert set(by_name) == {"netscaffold-app3", "netscaffold-app4"}
    app4 = by_name["netscaffold-app4"]["spec"]["ingress"]
    assert app4 == [
        {
            "from": [{"podSelector": {"matchLabels": {"app": "app2"}}}],
            "ports": [{"protocol": "UDP", "port": 53}],
        }
    ]
    assert list(yaml.safe_load_all(policies_yaml(policies))) == policies


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["metadata"].update(name="Not_A_Name"), "metadata/name"),
        (
            lambda p: p["spec"]["ingress"][0].update(ports=[{"protocol": "ICMP"}]),
            "spec/ingress/0/ports/0/protocol",
        ),
        (lambda p: p.update(kind="Policy"), "kind"),
        (lambda p: p["spec"].update(extra=1), "spec"),
    ],
)
def test_schema_refuses_broken_policies(mutate: object, field: str) -> None:
    policy = network_policies(two_tier(), _config())[0]
    mutate(policy)  # type: ignore[operator]
    with pytest.raises(ValidationError) as caught:
        validate_policy(policy)
    assert caught.value.location.field == field


def test_cli_export_from_state_dir(tmp_path: Path) -> None:
    core = ServiceCore(tmp_path / "state")
    try:
        core.put_topology(netjson_document(two_tier()), "test")
        route = {
            "kind": "route",
            "device": "h1",
            "destination": "198.18.0.3/32",
            "next_hops": [{"via": "l1"}],
        }
        plan = plans.create_plan(core, PlanRequest.model_validate({"desired": [route]}), "test")
        plans.apply_plan(core, plan["id"], "test")
    finally:
        core.close()
    out = tmp_path / "out"
    result = CliRunner().invoke(cli_app, ["export", "--from", str(tmp_path / "state"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "route replace 198.18.0.3/32" in (out / "iproute2" / "h1.batch").read_text()
    assert json.loads((out / "nftables" / "s1.json").read_text())["nftables"][0] == {
        "metainfo": {"json_schema_version": 1}
    }
    assert (out / "topology.netjson").is_file()
    assert (out / "networkpolicy.yaml").is_file()
    missing = CliRunner().invoke(cli_app, ["export", "--from", str(tmp_path / "nothing"), "--out", str(out)])
    assert missing.exit_code != 0


def test_cli_export_from_a_run_folder(tmp_path: Path) -> None:
    from netscaffold.formats.configjson import config_json
    from netscaffold.formats.netjson import to_netjson

    run = tmp_path / "run"
    run.mkdir()
    (run / "topology.json").write_text(to_netjson(two_tier()))
    (run / "config.json").write_text(json.dumps(config_json(_config())))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli_app, ["export", "--from", str(run), "--out", str(out), "--namespace", "prod"]
    )
    assert result.exit_code == 0, result.output
    policies = list(yaml.safe_load_all((out / "networkpolicy.yaml").read_text()))
    assert {p["metadata"]["namespace"] for p in policies} == {"prod"}
    assert "filter replace" in (out / "tc" / "l1.batch").read_text()
