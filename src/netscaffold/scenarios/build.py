"""From a scenario to the objects a run needs: the topology and the workload."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netscaffold.errors import ConfigError
from netscaffold.model.topology import NodeKind, Topology
from netscaffold.scenarios.spec import Scenario, TopologySpec
from netscaffold.telemetry.workload import Workload


def build_topology(spec: TopologySpec, base_dir: Path | None = None) -> Topology:
    from netscaffold.formats import generators
    from netscaffold.formats.loader import load_topology

    if spec.file is not None:
        topology = load_topology(_resolve(spec.file, base_dir))
    elif spec.generate == "fat-tree":
        topology = generators.fat_tree(spec.k, spec.link_bps)
    else:
        topology = generators.leaf_spine(
            spec.spines, spec.leaves, spec.hosts_per_leaf, spec.link_bps, host_link_bps=spec.host_link_bps
        )
    return with_firewalls(topology, spec.firewalls)


def with_firewalls(topology: Topology, firewalls: tuple[str, ...]) -> Topology:
    if not firewalls:
        return topology
    for node_id in firewalls:
        if node_id not in topology.nodes:
            raise ConfigError(
                f"firewall {node_id!r} is not a node of the topology", field="topology.firewalls"
            )
    nodes = [
        replace(node, kind=NodeKind.FIREWALL) if node.id in firewalls else node
        for node in topology.nodes.values()
    ]
    return Topology.build(nodes, topology.links.values(), topology.endpoints.values(), name=topology.name)


def _resolve(path: str, base_dir: Path | None) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None and not candidate.exists():
        candidate = base_dir / candidate
    return candidate


def build_workload(scenario: Scenario, topology: Topology, base_dir: Path | None = None) -> Workload:
    from netscaffold.telemetry.registry import WorkloadOptions, make_workload

    spec = scenario.workload

    def path(value: str | None) -> Path | None:
        return None if value is None else _resolve(value, base_dir)

    options = WorkloadOptions(
        duration_s=scenario.duration_s,
        tick_s=scenario.tick_s,
        tm=path(spec.tm),
        flows=path(spec.flows),
        app_telemetry=path(spec.app_telemetry),
        interval_s=spec.interval_s,
        flow_rate_per_s=spec.flow_rate,
        flow_share=spec.flow_share,
        **spec.options,
    )
    return make_workload(spec.kind, topology, options, seed=scenario.seed)
