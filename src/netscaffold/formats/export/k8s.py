"""Kubernetes NetworkPolicy (networking.k8s.io/v1) for pod-level pairs: one policy per destination app,
allowing ingress from the source apps whose pairs the config permits (firewall accepts, or routes when the
path has no firewall), on the permitted ports. Pods are selected by the label ``app``."""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache
from importlib import resources
from typing import Any

from netscaffold.errors import ValidationError
from netscaffold.model.config import FirewallRule, NetworkConfig, Route
from netscaffold.model.topology import Endpoint, Topology

_DNS_LABEL_MAX = 63


def _by_address(topology: Topology) -> dict[str, Endpoint]:
    return {ep.address: ep for ep in topology.endpoints.values() if ep.app}


def _host(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    address, _, length = prefix.partition("/")
    return address if length in ("", "32", "128") else None


def _allowed(topology: Topology, config: NetworkConfig) -> dict[str, dict[str, set[tuple[str, int | None]]]]:
    """dst app -> src app -> {(protocol, port)}; port None = every port."""
    by_address = _by_address(topology)
    out: dict[str, dict[str, set[tuple[str, int | None]]]] = defaultdict(lambda: defaultdict(set))
    for item in config:
        if isinstance(item, FirewallRule) and item.action == "accept":
            src = by_address.get(_host(item.match.src) or "")
            dst = by_address.get(_host(item.match.dst) or "")
            if src and dst and item.match.proto != "icmp":  # a NetworkPolicy cannot name ICMP
                proto = (item.match.proto or "tcp").upper()
                out[dst.app][src.app].add((proto, item.match.dst_port))
        elif isinstance(item, Route):
            dst = by_address.get(_host(item.destination) or "")
            if dst is None:
                continue
            for src in topology.endpoints.values():
                if src.host == item.device and src.app and src.app != dst.app:
                    out[dst.app][src.app].add(("TCP", None))
    return out


def _name(app: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "-" else "-" for c in app.lower()).strip("-")
    return f"netscaffold-{cleaned}"[:_DNS_LABEL_MAX].rstrip("-")


def network_policies(
    topology: Topology, config: NetworkConfig, *, namespace: str = "default"
) -> list[dict[str, Any]]:
    policies = []
    for dst_app, sources in sorted(_allowed(topology, config).items()):
        rules = []
        for src_app, ports in sorted(sources.items()):
            rule: dict[str, Any] = {"from": [{"podSelector": {"matchLabels": {"app": src_app}}}]}
            if all(port is not None for _, port in ports):
                rule["ports"] = [{"protocol": proto, "port": port} for proto, port in sorted(ports, key=str)]
            rules.append(rule)
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {
                    "name": _name(dst_app),
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/managed-by": "netscaffold"},
                },
                "spec": {
                    "podSelector": {"matchLabels": {"app": dst_app}},
                    "policyTypes": ["Ingress"],
                    "ingress": rules,
                },
            }
        )
    for policy in policies:
        validate_policy(policy)
    return policies


@cache
def _schema() -> Any:
    import jsonschema_rs

    text = resources.files("netscaffold.formats.export").joinpath("networkpolicy.schema.json").read_text()
    return jsonschema_rs.validator_for(json.loads(text))


def validate_policy(policy: dict[str, Any]) -> None:
    """Check ``policy`` against the shipped NetworkPolicy schema; ValidationError naming the path."""
    errors = list(_schema().iter_errors(policy))
    if errors:
        first = errors[0]
        path = "/".join(str(p) for p in first.instance_path) or "(root)"
        name = policy.get("metadata", {}).get("name", "?") if isinstance(policy, dict) else "?"
        raise ValidationError(first.message, element=f"NetworkPolicy {name}", field=path)


def policies_yaml(policies: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(policies, sort_keys=False)
