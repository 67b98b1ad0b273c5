"""One capacity ledger for every shard: link capacity is granted in two phases so that two shards (or two
plans in flight) never over-commit one link.

The ledger knows, per reservation or circuit (its item key), the rate it holds on each link. A
transaction ``prepare``\\ s the holdings a plan changes; the ledger grants it only when every link it adds
to stays within ``capacity_fraction x capacity``, counting what is committed *and* what other prepared
transactions hold. While a transaction is pending, an item it resizes holds the larger of its old and new
rate on each link, and an item it removes keeps its capacity (released at commit), so an abort always
fits. An item may be changed by one pending transaction at a time. ``commit`` and ``abort`` carry the
transaction's changes, so a ledger restarted from its checkpoint (the committed holdings, written after
every commit) finishes a transaction it no longer remembers; both are idempotent.

:class:`CapacityLedger` is plain Python; :class:`~netscaffold.distributed.agents.PlanCoordinator` runs it as
one Ray actor.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from netscaffold.errors import CheckpointError, ConfigError, PlanError
from netscaffold.model.config import ItemKey, NetworkConfig, Reservation, VirtualCircuit
from netscaffold.model.plan import OpKind, Plan
from netscaffold.model.topology import LinkKey, Topology

Holding = tuple[tuple[LinkKey, float], ...]
"""Per link, the rate an item holds (bit/s)."""
Changes = dict[ItemKey, Holding | None]
"""What a transaction does: the new holding of each item it touches (``None``: released)."""
_RATE_TOLERANCE = 1e-9


def holding_of(item: Reservation | VirtualCircuit) -> Holding:
    per_link: dict[LinkKey, float] = defaultdict(float)
    for link in item.link_keys():
        per_link[link] += item.rate_bps
    return tuple(sorted(per_link.items()))


def plan_changes(plan: Plan) -> Changes:
    """The capacity a plan changes: its reservations and circuits (other items hold no capacity)."""
    changes: Changes = {}
    for op in plan.ops:
        if isinstance(op.item, Reservation | VirtualCircuit):
            changes[op.item.key] = None if op.kind is OpKind.REMOVE else holding_of(op.item)
    return changes


def config_holdings(config: NetworkConfig) -> dict[ItemKey, Holding]:
    return {item.key: holding_of(item) for item in config if isinstance(item, Reservation | VirtualCircuit)}


@dataclass(frozen=True)
class Grant:
    """A prepared transaction: the links it adds to and what each will then carry (bit/s)."""

    txn: str
    links: dict[LinkKey, float]


class CapacityLedger:
    def __init__(
        self,
        capacities: Mapping[LinkKey, float],
        *,
        capacity_fraction: float = 1.0,
        committed: Mapping[ItemKey, Holding] | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        if not 0.0 < capacity_fraction <= 1.0:
            raise ConfigError(
                f"capacity_fraction must be within (0, 1], got {capacity_fraction}", field="capacity_fraction"
            )
        self.capacities = dict(capacities)
        self.capacity_fraction = capacity_fraction
        self.checkpoint = checkpoint
        self.committed: dict[ItemKey, Holding] = dict(committed or {})
        if checkpoint is not None and checkpoint.is_file():
            self.committed = read_holdings(checkpoint)
        self.pending: dict[str, Changes] = {}
        self._check_links(self.committed.values(), "committed")
        self._rebuild_usage()

    @classmethod
    def for_topology(
        cls,
        topology: Topology,
        config: NetworkConfig | None = None,
        *,
        capacity_fraction: float = 1.0,
        checkpoint: Path | None = None,
    ) -> CapacityLedger:
        """A ledger over ``topology``'s links holding what ``config`` already reserves."""
        capacities = {key: link.capacity_bps for key, link in topology.links.items()}
        committed = config_holdings(config) if config is not None else None
        return cls(
            capacities, capacity_fraction=capacity_fraction, committed=committed, checkpoint=checkpoint
        )

    # -- two phases ------------------------------------------------------------------------------
    def prepare(self, txn: str, changes: Changes) -> Grant:
        """Grant ``changes`` or raise :class:`PlanError` naming the link (or the locked item).

        Costs O(links the changes touch + what other pending transactions hold), not O(committed)."""
        if txn in self.pending:
            if self.pending[txn] == changes:
                return Grant(txn, self._after(changes, include_self=False))
            raise PlanError(f"transaction {txn!r} is already prepared with other changes", element=txn)
        self._check_links((h for h in changes.values() if h is not None), f"transaction {txn}")
        for other, held in self.pending.items():
            locked = held.keys() & changes.keys()
            if locked:
                item = "/".join(sorted(locked)[0])
                raise PlanError(f"item is being changed by transaction {other!r}", element=item)
        mine = self._extra({txn: changes})
        after = self._after(changes, include_self=True)
        for link in sorted(after):
            limit = self.capacity_fraction * self.capacities[link]
            if mine.get(link, 0.0) > 0.0 and after[link] > limit * (1 + _RATE_TOLERANCE):
                raise PlanError(
                    f"link {link[0]}->{link[1]} would carry {after[link]:.6g} bit/s "
                    f"({after[link] - mine[link]:.6g} already granted), above {self.capacity_fraction:g} "
                    f"x capacity = {limit:.6g} bit/s",
                    element=f"link {link[0]}->{link[1]}",
                )
        self.pending[txn] = dict(changes)
        return Grant(txn, after)

    def commit(self, txn: str, changes: Changes) -> None:
        """Make ``changes`` the committed holdings (idempotent; works after a restart)."""
        self.pending.pop(txn, None)
        for key, holding in changes.items():
            self._add_usage(self.committed.get(key, ()), -1.0)
            if holding is None:
                self.committed.pop(key, None)
            else:
                self.committed[key] = holding
                self._add_usage(holding, 1.0)
        if self.checkpoint is not None:
            write_holdings(self.checkpoint, self.committed)

    def abort(self, txn: str) -> None:
        self.pending.pop(txn, None)

    # -- reading ---------------------------------------------------------------------------------
    def usage(self) -> dict[LinkKey, float]:
        """What each link carries, committed and pending (the larger of old and new while pending)."""
        total = dict(self._committed_usage)
        for link, extra in self._extra(self.pending).items():
            total[link] = total.get(link, 0.0) + extra
        return {link: rate for link, rate in total.items() if rate > 0.0}

    def committed_usage(self) -> dict[LinkKey, float]:
        return {link: rate for link, rate in self._committed_usage.items() if rate > 0.0}

    def _rebuild_usage(self) -> None:
        self._committed_usage: dict[LinkKey, float] = defaultdict(float)
        for holding in self.committed.values():
            self._add_usage(holding, 1.0)

    def _add_usage(self, holding: Holding, sign: float) -> None:
        for link, rate in holding:
            self._committed_usage[link] += sign * rate

    def _extra(self, pending: Mapping[str, Changes]) -> dict[LinkKey, float]:
        """What pending changes add on top of the committed holdings, per link: ``max(old, new) - old``
        for every item (a pending removal or shrink frees nothing until commit)."""
        extra: dict[LinkKey, float] = defaultdict(float)
        for changes in pending.values():
            for key, new in changes.items():
                old = dict(self.committed.get(key, ()))
                for link, rate in new or ():
                    extra[link] += max(rate - old.get(link, 0.0), 0.0)
        return extra

    def _after(self, changes: Changes, *, include_self: bool) -> dict[LinkKey, float]:
        """The links ``changes`` holds capacity on, with what each carries once they are granted."""
        others = {t: c for t, c in self.pending.items() if c is not changes}
        extra = self._extra({**others, "\0self": changes} if include_self else self.pending)
        links = {link for h in changes.values() for link, _ in h or ()}
        return {link: self._committed_usage.get(link, 0.0) + extra.get(link, 0.0) for link in links}

    def _check_links(self, holdings: Iterable[Holding], where: str) -> None:
        for holding in holdings:
            for link, _ in holding:
                if link not in self.capacities:
                    raise PlanError(f"link {link[0]}->{link[1]} is not in the topology", element=where)


def write_holdings(path: Path, holdings: Mapping[ItemKey, Holding]) -> None:
    rows = [
        {"key": list(key), "links": [[a, b, rate] for (a, b), rate in holding]}
        for key, holding in sorted(holdings.items())
    ]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows), encoding="utf-8")
    os.replace(tmp, path)


def read_holdings(path: Path) -> dict[ItemKey, Holding]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {
            tuple(str(k) for k in row["key"]): tuple(((str(a), str(b)), float(r)) for a, b, r in row["links"])
            for row in rows
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"unreadable ledger checkpoint ({type(exc).__name__})", file=str(path)
        ) from None
