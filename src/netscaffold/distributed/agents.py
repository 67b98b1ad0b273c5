"""Per-host backend agents, one capacity ledger, and plans committed on every agent or on none.

**Partition.** A deployment has named agents, one per host that runs a backend (default: one per node of
kind ``host`` in the topology, named after it). Every topology node belongs to exactly one agent:

1. a node named like an agent belongs to that agent (a host node runs its own agent);
2. ``placement`` (node -> agent) pins any other node explicitly;
3. every other node (switches, routers, firewalls, hosts without an agent) goes to the owner of its id on
   a :class:`~netscaffold.distributed.sharding.HashRing` over the agent names, so adding an agent moves
   only the nodes it takes over.

A plan item belongs to the agent of its device (routes and firewall rules) or of the first node of its
path (reservations and circuits: the ingress, where the flow is classified). Each agent validates and
applies its part on its own backend (the emulator, :class:`~netscaffold.backends.sim.SimBackend`, over the
whole topology, holding only its items); no agent sees a whole link's commitment, so link capacity is
granted by the single :class:`~netscaffold.distributed.ledger.CapacityLedger`.

**Two-phase commit** (:meth:`PlanCoordinator.execute`): the ledger prepares the plan's capacity changes
(a refusal names the link), then every agent prepares its part (validation against its snapshot, nothing
applied); any refusal aborts the ledger and every agent and nothing is applied anywhere. Otherwise every
agent commits (applies, all or nothing, then checkpoints its :class:`NetworkConfig`) and the ledger
commits. ``commit`` carries the agent's part, and applying a plan twice is harmless, so a commit that Ray
retries on a restarted agent finishes the plan.

**Restart and repair.** Agents and the ledger are Ray actors with ``max_restarts`` and
``max_task_retries``. A restarted agent rebuilds its emulator from its checkpoint (the JSON snapshot of
its config, written atomically after every commit), so an agent killed mid-plan comes back with the state
it had committed, and the retried commit completes the plan.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from netscaffold.distributed.ledger import CapacityLedger, Changes, plan_changes
from netscaffold.distributed.sharding import HashRing
from netscaffold.errors import BackendError, CheckpointError, ConfigError, NetscaffoldError, PlanError
from netscaffold.model.config import ConfigItem, NetworkConfig, Reservation, VirtualCircuit
from netscaffold.model.flows import FlowTable
from netscaffold.model.plan import Plan, ProvisionalBudget
from netscaffold.model.topology import Topology

MAX_RESTARTS = 3


def default_agents(topology: Topology) -> tuple[str, ...]:
    """One agent per host node; two hashed agents (``agent-0``, ``agent-1``) when there is no host."""
    hosts = tuple(sorted(topology.hosts()))
    return hosts or ("agent-0", "agent-1")


def partition(
    topology: Topology, agents: Sequence[str] | None = None, *, placement: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``node -> agent`` by the rule in the module docstring."""
    names = tuple(agents) if agents is not None else default_agents(topology)
    ring = HashRing(names)  # refuses an empty or duplicated list
    pinned = dict(placement or {})
    for node, agent in pinned.items():
        if node not in topology.nodes:
            raise ConfigError(f"placement names unknown node {node!r}", field="placement")
        if agent not in names:
            raise ConfigError(f"placement puts {node!r} on unknown agent {agent!r}", field="placement")
    owner: dict[str, str] = {}
    for node in sorted(topology.nodes):
        owner[node] = node if node in names else pinned.get(node) or ring.owner(node)
    return owner


def item_owner_device(item: ConfigItem) -> str:
    if isinstance(item, Reservation | VirtualCircuit):
        return item.path[0]
    return item.device


def split_plan(plan: Plan, owner: Mapping[str, str]) -> dict[str, Plan]:
    """Each agent's part of ``plan`` (agents with nothing to do are absent)."""
    parts: dict[str, list[Any]] = defaultdict(list)
    for op in plan.ops:
        device = item_owner_device(op.item)
        if device not in owner:
            raise PlanError(f"device {device!r} is not in the topology", element=op.item.describe())
        parts[owner[device]].append(op)
    return {
        agent: Plan.of(ops, allow_confirmed_changes=plan.allow_confirmed_changes)
        for agent, ops in parts.items()
    }


def empty_flows() -> FlowTable:
    return FlowTable.build(start_s=np.zeros(0), src=np.zeros(0), dst=np.zeros(0), endpoints=())


class HostAgent:
    """One host's backend (the body of a Ray actor; plain Python so that it is testable alone)."""

    def __init__(
        self,
        name: str,
        topology: Topology,
        devices: frozenset[str],
        checkpoint: Path,
        budget: ProvisionalBudget | None = None,
    ) -> None:
        from netscaffold.backends.sim import SimBackend

        self.name, self.topology, self.devices = name, topology, devices
        self.checkpoint, self.budget = checkpoint, budget
        initial = read_config(checkpoint) if checkpoint.is_file() else None
        self.backend = SimBackend(topology, empty_flows(), budget=budget, initial=initial)
        self.pending: dict[str, Plan] = {}
        self.restored = initial is not None
        """Whether this incarnation rebuilt its emulator from a checkpoint."""

    def prepare(self, txn: str, part: Plan) -> int:
        """Check ``part`` against this agent's devices and snapshot; apply nothing. Returns its op count."""
        for op in part.ops:
            device = item_owner_device(op.item)
            if device not in self.devices:
                raise PlanError(
                    f"device {device!r} does not belong to agent {self.name!r}", element=op.item.describe()
                )
        part.validate(self.topology, self.budget, self.backend.snapshot())
        self.pending[txn] = part
        return len(part)

    def commit(self, txn: str, part: Plan) -> int:
        """Apply ``part`` (idempotent) and checkpoint the resulting config; returns the ops that changed."""
        report = self.backend.apply(part)
        write_config(self.checkpoint, self.backend.snapshot())
        self.pending.pop(txn, None)
        return report.applied_ops

    def abort(self, txn: str) -> None:
        self.pending.pop(txn, None)

    def snapshot(self) -> NetworkConfig:
        return self.backend.snapshot()

    def was_restarted(self) -> bool:
        """Whether this incarnation is a Ray restart of the actor (after a crash or a kill)."""
        import ray

        context = ray.get_runtime_context() if ray.is_initialized() else None
        return bool(context is not None and context.was_current_actor_reconstructed)


def write_config(path: Path, config: NetworkConfig) -> None:
    from netscaffold.formats.configjson import config_json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config_json(config)), encoding="utf-8")
    os.replace(tmp, path)


def read_config(path: Path) -> NetworkConfig:
    from netscaffold.formats.configjson import config_from_json

    try:
        return config_from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"unreadable agent checkpoint ({type(exc).__name__})", file=str(path)) from None


@dataclass(frozen=True)
class CommitReport:
    """A committed transaction: the ops each agent changed and the links the ledger granted."""

    txn: str
    applied_ops: dict[str, int]
    granted_links: int


class PlanCoordinator:
    """Starts the agents and the ledger as Ray actors and runs plans through two-phase commit."""

    def __init__(
        self,
        topology: Topology,
        state_dir: Path,
        *,
        agents: Sequence[str] | None = None,
        placement: Mapping[str, str] | None = None,
        initial: NetworkConfig | None = None,
        budget: ProvisionalBudget | None = None,
        capacity_fraction: float = 1.0,
        cpus_per_actor: float = 0.1,
    ) -> None:
        import ray

        if not ray.is_initialized():
            raise ConfigError(
                "Ray is not connected: call netscaffold.distributed.connection.connect first", field="ray"
            )
        self.topology = topology
        self.owner = partition(topology, agents, placement=placement)
        self.agent_names = tuple(sorted(set(self.owner.values()) | set(agents or ())))
        state_dir.mkdir(parents=True, exist_ok=True)
        self._seed_checkpoints(state_dir, initial or NetworkConfig())
        remote = ray.remote(num_cpus=cpus_per_actor, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)
        agent_actor = remote(HostAgent)
        devices: dict[str, set[str]] = defaultdict(set)
        for node, agent in self.owner.items():
            devices[agent].add(node)
        self.agents: dict[str, Any] = {  # Ray actor handles (Any: Ray's stubs do not type method .remote)
            name: agent_actor.remote(
                name, topology, frozenset(devices[name]), state_dir / f"agent-{name}.json", budget
            )
            for name in self.agent_names
        }
        capacities = {key: link.capacity_bps for key, link in topology.links.items()}
        self.ledger: Any = remote(CapacityLedger).remote(
            capacities,
            capacity_fraction=capacity_fraction,
            committed=None,
            checkpoint=state_dir / "ledger.json",
        )
        self._txn_ids = itertools.count()
        self._get([a.snapshot.remote() for a in self.agents.values()])  # started and restored

    def _seed_checkpoints(self, state_dir: Path, initial: NetworkConfig) -> None:
        """Write the starting state where the actors will read it (only where none exists yet)."""
        from netscaffold.distributed.ledger import config_holdings, write_holdings

        by_agent: dict[str, list[ConfigItem]] = defaultdict(list)
        for item in initial:
            by_agent[self.owner[item_owner_device(item)]].append(item)
        for name in self.agent_names:
            path = state_dir / f"agent-{name}.json"
            if not path.exists():
                write_config(path, NetworkConfig.of(by_agent[name]))
        ledger_path = state_dir / "ledger.json"
        if not ledger_path.exists():
            write_holdings(ledger_path, config_holdings(initial))

    # -- plans -----------------------------------------------------------------------------------
    def execute(self, plan: Plan, *, on_prepared: Callable[[str], None] | None = None) -> CommitReport:
        """Commit ``plan`` on every agent or on none (see the module docstring). ``on_prepared`` runs
        between the phases (fault-injection hook for tests)."""
        txn = f"txn-{os.getpid()}-{next(self._txn_ids)}"
        parts = split_plan(plan, self.owner)
        changes: Changes = plan_changes(plan)
        grant = self._get([self.ledger.prepare.remote(txn, changes)])[0]
        prepared = [(name, self.agents[name].prepare.remote(txn, part)) for name, part in parts.items()]
        failure = self._first_failure(prepared)
        if failure is not None:
            self._get(
                [self.agents[name].abort.remote(txn) for name in parts] + [self.ledger.abort.remote(txn)]
            )
            raise failure
        if on_prepared is not None:
            on_prepared(txn)
        committed = {name: self.agents[name].commit.remote(txn, part) for name, part in sorted(parts.items())}
        applied = dict(zip(committed, self._get(list(committed.values())), strict=True))
        self._get([self.ledger.commit.remote(txn, changes)])
        return CommitReport(txn, applied, len(grant.links))

    def snapshot(self) -> NetworkConfig:
        """The whole network: the union of every agent's snapshot."""
        items: list[ConfigItem] = []
        for config in self._get([a.snapshot.remote() for a in self.agents.values()]):
            items.extend(config)
        return NetworkConfig.of(items)

    def agent_snapshots(self) -> dict[str, NetworkConfig]:
        names = sorted(self.agents)
        return dict(zip(names, self._get([self.agents[n].snapshot.remote() for n in names]), strict=True))

    def link_usage(self) -> dict[tuple[str, str], float]:
        """What the ledger has committed and granted on each link (bit/s)."""
        return dict(self._get([self.ledger.usage.remote()])[0])

    def close(self) -> None:
        import ray

        for actor in [*self.agents.values(), self.ledger]:
            ray.kill(actor, no_restart=True)
        self.agents = {}

    def __enter__(self) -> PlanCoordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Ray plumbing ----------------------------------------------------------------------------
    def _first_failure(self, prepared: list[tuple[str, Any]]) -> NetscaffoldError | None:
        """Wait for every prepare; the first refusal (in agent order), named by agent."""
        import ray

        first: NetscaffoldError | None = None
        for name, ref in prepared:
            try:
                ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                error = (
                    cause if isinstance(cause, NetscaffoldError) else BackendError(str(cause), backend=name)
                )
                first = first or error
            except ray.exceptions.RayActorError as exc:
                first = first or BackendError(f"agent died during prepare: {exc}", backend=f"agent {name}")
        return first

    @staticmethod
    def _get(refs: list[Any]) -> list[Any]:
        import ray

        try:
            return list(ray.get(refs))
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, NetscaffoldError):
                raise exc.cause from None
            raise
        except ray.exceptions.RayActorError as exc:
            raise BackendError(
                f"an actor is gone after {MAX_RESTARTS} restarts: {exc}", backend="ray"
            ) from exc
