"""Plans: the ordered, validated difference between two network configurations.

A plan is data. The scaffolder and the refiner produce one; only a backend applies one. Applying is
idempotent: an add of an item that is already there unchanged, or a remove of an item already gone, is a
no-op, so the same plan applied twice gives the same config.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import itemgetter

from netscaffold.errors import PlanError, TopologyError
from netscaffold.model.config import (
    KIND_ORDER,
    ConfigItem,
    FirewallRule,
    FlowMatch,
    ItemKey,
    NetworkConfig,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
    is_provisional,
)
from netscaffold.model.topology import LinkKey, Topology

_RATE_TOLERANCE = 1e-9


class OpKind(StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class PlanOp:
    """One step. ``item`` is the new item (add, update) or the one removed; ``previous`` the old one."""

    kind: OpKind
    item: ConfigItem
    previous: ConfigItem | None = None

    def describe(self) -> str:
        return f"{self.kind.value} {self.item.describe()}"


@dataclass(frozen=True)
class ProvisionalBudget:
    """Limits on provisional (predicted) state.

    ``rule_slots_per_device``: provisional table entries a device may hold (``per_device`` overrides it);
    ``link_fraction``: the share of a link's capacity that provisional reservations and circuits may take.
    """

    rule_slots_per_device: int = 1024
    link_fraction: float = 0.5
    per_device: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule_slots_per_device < 0:
            raise PlanError(
                f"rule_slots_per_device must be >= 0, got {self.rule_slots_per_device}",
                field="rule_slots_per_device",
            )
        if not 0.0 <= self.link_fraction <= 1.0:
            raise PlanError(
                f"link_fraction must be within 0..1, got {self.link_fraction}",
                field="link_fraction",
            )
        for device, slots in self.per_device.items():
            if slots < 0:
                raise PlanError(f"slots must be >= 0, got {slots}", element=f"device {device!r}")

    def slots_for(self, device: str) -> int:
        return self.per_device.get(device, self.rule_slots_per_device)


_KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}


@dataclass(frozen=True)
class Plan:
    ops: tuple[PlanOp, ...] = ()
    allow_confirmed_changes: bool = False
    """Scaffolding plans may not touch confirmed or static items; refinement plans may."""

    @classmethod
    def between(
        cls,
        current: NetworkConfig,
        desired: NetworkConfig,
        *,
        allow_confirmed_changes: bool = False,
    ) -> Plan:
        removes: list[PlanOp] = []
        updates: list[PlanOp] = []
        adds: list[PlanOp] = []
        for key, item in current.items.items():
            if key not in desired.items:
                removes.append(PlanOp(OpKind.REMOVE, item))
        for key, item in desired.items.items():
            old = current.items.get(key)
            if old is None:
                adds.append(PlanOp(OpKind.ADD, item))
            elif old != item:
                updates.append(PlanOp(OpKind.UPDATE, item, previous=old))
        return cls.of(removes + updates + adds, allow_confirmed_changes=allow_confirmed_changes)

    @classmethod
    def of(cls, ops: Iterable[PlanOp], *, allow_confirmed_changes: bool = False) -> Plan:
        """Order ops deterministically: removes (routes first), updates, then adds (routes last)."""
        seen: set[ItemKey] = set()
        placed: list[tuple[tuple[int, int, ItemKey], PlanOp]] = []
        for op in ops:
            key = op.item.key  # built once per op: a property that makes a tuple
            if key in seen:
                raise PlanError("item appears twice in one plan", element=op.item.describe())
            seen.add(key)
            rank = _KIND_RANK[key[0]]
            if op.kind is OpKind.REMOVE:
                placed.append(((0, -rank, key), op))
            else:
                placed.append(((1 if op.kind is OpKind.UPDATE else 2, rank, key), op))
        placed.sort(key=itemgetter(0))  # keys are unique: no two places tie
        plan = cls(tuple(op for _, op in placed), allow_confirmed_changes)
        plan.__dict__["item_keys"] = tuple([place[2] for place, _ in placed])  # built above: kept
        return plan

    def __len__(self) -> int:
        return len(self.ops)

    @functools.cached_property
    def item_keys(self) -> tuple[ItemKey, ...]:
        """The key of each op's item, in op order (built once per plan: ``key`` is a property that makes
        a tuple, and :meth:`validate` and a backend's apply both need every one; :meth:`of` keeps the
        ones it builds to order the ops)."""
        return tuple([op.item.key for op in self.ops])

    @property
    def is_empty(self) -> bool:
        return not self.ops

    def count(self, kind: OpKind) -> int:
        return sum(1 for op in self.ops if op.kind is kind)

    def inverse(self) -> Plan:
        """The plan that undoes this one on the config it was made from."""
        undo: list[PlanOp] = []
        for op in self.ops:
            if op.kind is OpKind.ADD:
                undo.append(PlanOp(OpKind.REMOVE, op.item))
            elif op.kind is OpKind.REMOVE:
                undo.append(PlanOp(OpKind.ADD, op.item))
            else:
                assert op.previous is not None
                undo.append(PlanOp(OpKind.UPDATE, op.previous, previous=op.item))
        return Plan.of(undo, allow_confirmed_changes=True)

    def apply_to(self, config: NetworkConfig) -> NetworkConfig:
        """The config after this plan (pure). A stale plan raises :class:`PlanError`."""
        return self._apply_to(config, [op.item.key for op in self.ops])

    def _apply_to(self, config: NetworkConfig, keys: Sequence[ItemKey]) -> NetworkConfig:
        """:meth:`apply_to` with each op's item key given (``keys[i]`` of ``ops[i]``)."""
        items = dict(config.items)
        for op, key in zip(self.ops, keys, strict=True):
            present = items.get(key)
            if op.kind is OpKind.ADD:
                if present is not None and present != op.item:
                    raise PlanError(
                        "add of an item that exists with other values", element=op.item.describe()
                    )
                items[key] = op.item
            elif op.kind is OpKind.REMOVE:
                items.pop(key, None)
            else:
                if present is None:
                    raise PlanError("update of an item that is not there", element=op.item.describe())
                if present not in (op.previous, op.item):
                    raise PlanError(
                        "update of an item that changed since the plan was made",
                        element=op.item.describe(),
                    )
                items[key] = op.item
        return NetworkConfig(items)

    def validate(
        self,
        topology: Topology,
        budget: ProvisionalBudget | None = None,
        current: NetworkConfig | None = None,
    ) -> NetworkConfig:
        """Check this plan against ``current`` (default empty); return the resulting config.

        Refuses, naming the item: items on unknown devices or links, next hops that are not neighbours,
        links whose reservations and circuits exceed capacity (or, for provisional ones, the budget's
        share), provisional entries beyond a device's slots, and changes to confirmed/static items or
        permits that a confirmed drop forbids (unless ``allow_confirmed_changes``).
        """
        base = current if current is not None else NetworkConfig()
        fused = self._apply_checked(base, topology)
        if fused is None:  # something to refuse: each check in turn, which names it
            if not self.allow_confirmed_changes:
                self._check_confirmed_untouched()
            keys = self.item_keys
            result = self._apply_to(base, keys)
            touched = {key for op, key in zip(self.ops, keys, strict=True) if op.kind is not OpKind.REMOVE}
            self._check_items(topology)
        else:
            result, touched = fused
        _check_link_commitment(result, topology, budget, touched)
        if budget is not None:
            _check_device_slots(result, budget, touched)
        if not self.allow_confirmed_changes:
            _check_firewall_conflicts(self, result)
        return result

    def _apply_checked(
        self, base: NetworkConfig, topology: Topology
    ) -> tuple[NetworkConfig, set[ItemKey]] | None:
        """The first checks of :meth:`validate` (confirmed items untouched, the plan applies to ``base``,
        items on known devices and links) and the resulting config with the keys of the items added or
        updated, in one pass over the ops (an apply of 5,000 routes validates 5,000). None where an op
        touches a confirmed item or does not apply to ``base``: :meth:`validate` then runs each check
        in turn, which names what is wrong. Items that the inline checks do not pass are checked in
        full after the pass, in op order (as :meth:`_check_items` does)."""
        items = dict(base.items)
        touched: set[ItemKey] = set()
        guard = not self.allow_confirmed_changes
        guarded = (Origin.CONFIRMED, Origin.STATIC)
        add, remove = OpKind.ADD, OpKind.REMOVE
        held, put, note = items.get, items.__setitem__, touched.add
        inline = _InlineCheck(topology)
        others: list[ConfigItem] = []
        for op, key in zip(self.ops, self.item_keys, strict=True):
            item, kind = op.item, op.kind
            present = held(key)
            if kind is add:
                if present is not None and present != item:
                    return None
            elif kind is remove:
                if guard and item.origin in guarded:
                    return None
                items.pop(key, None)
                continue
            else:
                previous = op.previous
                if guard and previous is not None and previous.origin in guarded:
                    return None
                if present is None or (present is not previous and present not in (previous, item)):
                    return None
            put(key, item)
            note(key)
            if not inline.passes(item):
                others.append(item)
        for item in others:  # as _check_items: the full check, which names what is wrong
            _check_against_topology(item, topology)
        return NetworkConfig(items), touched

    def check_ops(self, topology: Topology) -> None:
        """The checks of :meth:`validate` that look at the ops alone (confirmed items untouched, items on
        known devices and links): a planner that checks the config-wide limits itself, on what changed,
        runs these first and the full :meth:`validate` only near a limit."""
        if not self.allow_confirmed_changes:
            self._check_confirmed_untouched()
        self._check_items(topology)

    def _check_items(self, topology: Topology) -> None:
        nodes, links = topology.nodes, topology.links
        for op in self.ops:
            if op.kind is OpKind.REMOVE:
                continue
            item = op.item
            # the common cases checked inline; anything else (and every refusal) by the full check,
            # which names what is wrong
            if type(item) is Route:
                device = item.device
                if device in nodes and all((device, hop.via) in links for hop in item.next_hops):
                    continue
            elif type(item) is FirewallRule and item.device in nodes:
                continue
            _check_against_topology(item, topology)

    def _check_confirmed_untouched(self) -> None:
        for op in self.ops:
            old = op.previous if op.kind is OpKind.UPDATE else op.item
            if op.kind is OpKind.ADD or old is None:
                continue
            if old.origin in (Origin.CONFIRMED, Origin.STATIC):
                raise PlanError(
                    f"would {op.kind.value} a {old.origin.value} item (only refinement plans may)",
                    element=old.describe(),
                )


class _InlineCheck:
    """The checks of routes and firewall rules against the topology that :meth:`Plan._check_items` makes
    inline, remembering per device the next hops found linked (one apply validates thousands of routes
    through a few)."""

    def __init__(self, topology: Topology) -> None:
        self.nodes, self.links = topology.nodes, topology.links
        self.linked: dict[str, set[str]] = {}

    def passes(self, item: ConfigItem) -> bool:
        """True where the item is a route or firewall rule on a known device (a route's next hops its
        neighbours); False for anything else, which the full check then decides."""
        kind = type(item)
        if kind is FirewallRule:
            return item.device in self.nodes  # type: ignore[union-attr]
        if kind is not Route:
            return False
        device = item.device  # type: ignore[union-attr]
        if device not in self.nodes:
            return False
        linked = self.linked.get(device)
        if linked is None:
            linked = self.linked[device] = set()
        for hop in item.next_hops:  # type: ignore[union-attr]
            via = hop.via
            if via not in linked:
                if (device, via) not in self.links:
                    return False
                linked.add(via)
        return True


def _check_against_topology(item: ConfigItem, topology: Topology) -> None:
    try:
        for device in item.devices():
            topology.node(device)
        if isinstance(item, Route):
            for hop in item.next_hops:
                if (item.device, hop.via) not in topology.links:
                    raise PlanError(
                        f"next hop {hop.via!r} is not a neighbour of {item.device!r}",
                        element=item.describe(),
                    )
        elif isinstance(item, Reservation | VirtualCircuit):
            topology.path_links(item.path)
    except TopologyError as exc:
        raise PlanError(f"{exc.location.element}: {exc.reason}", element=item.describe()) from None


def _check_link_commitment(
    result: NetworkConfig,
    topology: Topology,
    budget: ProvisionalBudget | None,
    touched: set[ItemKey],
) -> None:
    total: dict[LinkKey, float] = defaultdict(float)
    provisional: dict[LinkKey, float] = defaultdict(float)
    blame: dict[LinkKey, ConfigItem] = {}
    for item in result:
        if not isinstance(item, Reservation | VirtualCircuit):
            continue
        for link_key in item.link_keys():
            total[link_key] += item.rate_bps
            if is_provisional(item):
                provisional[link_key] += item.rate_bps
            if item.key in touched or link_key not in blame:
                blame[link_key] = item
    for link_key, committed in total.items():
        link = topology.links.get(link_key)
        if link is None:
            continue  # an untouched item on a vanished link is the refiner's business
        culprit = blame[link_key]
        if committed > link.capacity_bps * (1 + _RATE_TOLERANCE):
            raise PlanError(
                f"over-commits {link}: {committed:.6g} bit/s reserved > capacity "
                f"{link.capacity_bps:.6g} bit/s",
                element=culprit.describe(),
            )
        if budget is not None:
            share = budget.link_fraction * link.capacity_bps
            if provisional[link_key] > share * (1 + _RATE_TOLERANCE):
                raise PlanError(
                    f"provisional reservations on {link} reach {provisional[link_key]:.6g} bit/s, "
                    f"above the budget of {budget.link_fraction:g} x capacity = {share:.6g} bit/s",
                    element=culprit.describe(),
                )


def provisional_entries_per_device(config: NetworkConfig) -> dict[str, int]:
    """Provisional table entries held by each device."""
    counts: dict[str, int] = defaultdict(int)
    for item in config:
        if is_provisional(item):
            for device in item.devices():
                counts[device] += 1
    return dict(counts)


def _check_device_slots(result: NetworkConfig, budget: ProvisionalBudget, touched: set[ItemKey]) -> None:
    counts = provisional_entries_per_device(result)
    for device, used in counts.items():
        slots = budget.slots_for(device)
        if used > slots:
            culprit = next(
                (
                    item
                    for item in result
                    if item.key in touched and is_provisional(item) and device in item.devices()
                ),
                None,
            )
            raise PlanError(
                f"device {device!r} would hold {used} provisional entries, budget {slots}",
                element=culprit.describe() if culprit else f"device {device!r}",
            )


def _covers(broad: FlowMatch, narrow: FlowMatch) -> bool:
    return all(
        b is None or b == n
        for b, n in (
            (broad.src, narrow.src),
            (broad.dst, narrow.dst),
            (broad.proto, narrow.proto),
            (broad.dst_port, narrow.dst_port),
        )
    )


def _check_firewall_conflicts(plan: Plan, result: NetworkConfig) -> None:
    drops: dict[str, list[FirewallRule]] = defaultdict(list)
    for item in result:
        if (
            isinstance(item, FirewallRule)
            and item.action == "drop"
            and item.origin in (Origin.CONFIRMED, Origin.STATIC)
        ):
            drops[item.device].append(item)
    if not drops:
        return
    for op in plan.ops:
        rule = op.item
        if op.kind is OpKind.REMOVE or not isinstance(rule, FirewallRule):
            continue
        drop = firewall_conflict(rule, drops.get(rule.device, ()))
        if drop is not None:
            raise PlanError(
                f"conflicts with {drop.origin.value} rule: {drop.describe()}",
                element=rule.describe(),
            )


def firewall_conflict(rule: FirewallRule, drops: Iterable[FirewallRule]) -> FirewallRule | None:
    """The first of ``drops`` (confirmed / static drop rules on the rule's device) that covers the
    provisional accept ``rule``, if any."""
    if rule.action != "accept" or not is_provisional(rule):
        return None
    return next((drop for drop in drops if _covers(drop.match, rule.match)), None)
