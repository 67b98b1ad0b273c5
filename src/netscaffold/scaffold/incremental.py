"""The scaffolder's tick memo: plan the next tick from the last one, re-pricing only what changed.

A steady tick differs from the last in a few pairs' forecasts, in the items whose expiry no longer covers
the horizon and in what the refiner or an expiry changed in the current config. The memo keeps, from the
last plan, each pair's candidate, the candidates' contributions to the budget (slots per device, rate per
link), which admitted pairs produce each item and feed each route, and the desired config; a tick then
re-prices the changed pairs, recomputes only the items they (and renewals, and config changes) touch, and
diffs and validates only those. Pairs are matched by name, so a pair list that changes between ticks is
followed. It answers only when every candidate fits the budget (greedy admission then admits all of them,
whatever the order); otherwise, or when the horizon or step changed, the scaffolder plans from scratch.
The result is the same plan as planning from scratch (tested with hypothesis over random tick sequences):
route weights are re-added in admission order, and limits are checked on what changed with a float margin,
falling back to the full :meth:`Plan.validate` near one. A route with one next hop has weight 1 on it
whatever its feeders' masses, so it is rebuilt only when its feeders come or go or its next hops change;
the desired config is edited in place and handed out as a :class:`DesiredSnapshot` (no copy per tick).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections import defaultdict
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from netscaffold.model.config import (
    ConfigItem,
    FirewallRule,
    ItemKey,
    NetworkConfig,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
    split_flow_key,
)
from netscaffold.model.plan import OpKind, Plan, PlanOp, firewall_conflict
from netscaffold.model.predicted import PredictedGraph
from netscaffold.model.qos import QosProfile
from netscaffold.model.topology import Endpoint, LinkKey
from netscaffold.scaffold import items as mk

if TYPE_CHECKING:
    from netscaffold.scaffold.planner import Scaffolder, ScaffoldResult

Path = tuple[str, ...]
Pair = tuple[str, str]
RouteKey = tuple[str, str]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Status of a pair at one tick: why it is not a candidate, or that it is one.
NOT_LIKELY, UNPLACED, NO_PATH, NOT_WORTH, PLACED = range(5)
_SKIP_REASONS = {
    UNPLACED: "unplaced or local pair",
    NO_PATH: "no path within the latency bound",
    NOT_WORTH: "cost above benefit",
}
_MARGIN = 1e-9
"""Relative room below a limit within which float sums in another order cannot cross it."""


@dataclass
class Candidate:
    src: Endpoint
    dst: Endpoint
    probability: float
    paths: list[tuple[Path, float]]
    rate_bps: float
    items: list[ConfigItem]
    routes: dict[str, dict[str, float]]
    destination: str
    net_benefit_s: float
    rank: tuple[float, str, str] = field(init=False)
    """Admission order: best net benefit first, then by pair."""

    def __post_init__(self) -> None:
        self.rank = (-self.net_benefit_s, self.src.id, self.dst.id)

    @property
    def pair(self) -> Pair:
        return (self.src.id, self.dst.id)

    def order(self) -> tuple[float, str, str]:
        return self.rank


def skip_counts(status: IntArray) -> dict[str, int]:
    counts = np.bincount(status, minlength=PLACED + 1)
    return {reason: int(counts[code]) for code, reason in _SKIP_REASONS.items() if counts[code]}


@dataclass
class PairTable:
    """What depends only on the pair list: endpoints, QoS, risk, and the quantile each pair reserves at."""

    pairs: tuple[Pair, ...]
    quantile_levels: tuple[float, ...]
    index: dict[Pair, int]
    src: list[Endpoint | None]
    dst: list[Endpoint | None]
    qos: list[QosProfile | None]
    valid: BoolArray
    min_probability: FloatArray
    quantile_index: IntArray
    needs_pin: BoolArray
    dst_code: IntArray
    by_prefixes: dict[tuple[str, str], list[int]]

    @classmethod
    def of(cls, scaffolder: Scaffolder, predicted: PredictedGraph) -> PairTable:
        endpoints = scaffolder.topology.endpoints
        levels = predicted.quantile_levels
        n = len(predicted.pairs)
        src = [endpoints.get(s) for s, _ in predicted.pairs]
        dst = [endpoints.get(d) for _, d in predicted.pairs]
        qos_of: list[QosProfile | None] = [None] * n
        valid = np.zeros(n, dtype=bool)
        min_probability = np.full(n, np.inf)
        quantile_index = np.zeros(n, dtype=np.int64)
        needs_pin = np.zeros(n, dtype=bool)
        codes: dict[str, int] = {}
        dst_code = np.array([codes.setdefault(d, len(codes)) for _, d in predicted.pairs], dtype=np.int64)
        by_prefixes: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, (s, d) in enumerate(zip(src, dst, strict=True)):
            if s is None or d is None or s.host == d.host:
                continue
            qos = qos_of[i] = scaffolder.qos.lookup(s.app_name, d.app_name)
            risk = scaffolder.policy.risk(qos.name)
            valid[i] = True
            min_probability[i] = risk.min_probability
            quantile_index[i] = predicted.nearest_quantile_index(risk.reserve_quantile)
            needs_pin[i] = qos.needs_reservation or qos.needs_circuit
            by_prefixes[(mk.host_prefix(s.address), mk.host_prefix(d.address))].append(i)
        return cls(
            predicted.pairs,
            levels,
            predicted.pair_index(),
            src,
            dst,
            qos_of,
            valid,
            min_probability,
            quantile_index,
            needs_pin,
            dst_code,
            dict(by_prefixes),
        )

    def fits(self, predicted: PredictedGraph) -> bool:
        return self.quantile_levels == predicted.quantile_levels and (
            predicted.pairs is self.pairs or predicted.pairs == self.pairs
        )

    def producers_of(self, key: ItemKey) -> list[Pair]:
        """Pairs whose candidate may hold an item with ``key`` (routes aside)."""
        if key[0] in ("reservation", "circuit"):
            fkey = key[1].removeprefix("vc:") if key[0] == "circuit" else key[1]
            return [split_flow_key(fkey)]
        if key[0] == "firewall":
            return [self.pairs[i] for i in self.by_prefixes.get((key[2], key[3]), [])]
        return []


@dataclass
class PairInputs:
    """Everything a pair's candidate depends on at one tick, per pair (columns)."""

    table: PairTable
    horizon: int
    step_s: float
    probability: FloatArray
    placed: BoolArray
    pinned: BoolArray
    forecast_bps: FloatArray
    given: dict[int, tuple[tuple[Path, float], ...]]

    @property
    def horizon_s(self) -> float:
        return self.horizon * self.step_s

    @classmethod
    def of(cls, table: PairTable, predicted: PredictedGraph) -> PairInputs:
        probability = predicted.any_activity()
        placed = table.valid & (probability > 0.0) & (probability >= table.min_probability)
        pinned_codes = np.unique(table.dst_code[placed & table.needs_pin])
        pinned = np.isin(table.dst_code, pinned_codes)
        forecast = np.zeros(len(table.pairs))
        if predicted.horizon > 0:
            for q in np.unique(table.quantile_index).tolist():
                chosen = table.quantile_index == q
                forecast[chosen] = predicted.bandwidth_bps[0, :, q][chosen]  # the coming tick
        given: dict[int, list[tuple[Path, float]]] = defaultdict(list)
        if predicted.paths and predicted.path_pair is not None and predicted.path_prob is not None:
            for path, pair, prob in zip(
                predicted.paths, predicted.path_pair.tolist(), predicted.path_prob.tolist(), strict=True
            ):
                given[pair].append((path, prob))
        return cls(
            table,
            predicted.horizon,
            predicted.step_s,
            probability,
            placed,
            pinned,
            forecast,
            {pair: tuple(rows) for pair, rows in given.items()},
        )

    def changed_since(self, last: PairInputs) -> set[int]:
        """Pairs (indices into this tick's pairs) whose candidate may differ from ``last``'s."""
        if self.table is last.table:
            before = np.arange(len(self.table.pairs))
            known = np.ones(len(before), dtype=bool)
        else:
            lookup = last.table.index
            before = np.array([lookup.get(pair, -1) for pair in self.table.pairs], dtype=np.int64)
            known = before >= 0
            before = np.where(known, before, 0)
        placed = self.placed
        if len(last.placed):
            was_placed = known & last.placed[before]
            same = known & (
                (placed == was_placed)
                & (
                    ~placed
                    | (
                        (self.probability == last.probability[before])
                        & (self.forecast_bps == last.forecast_bps[before])
                        & (self.pinned == last.pinned[before])
                    )
                )
            )
        else:
            was_placed = same = np.zeros(len(placed), dtype=bool)
        out = set(np.flatnonzero((placed | was_placed) & ~same).tolist())
        if self.given or last.given:
            out.update(
                i
                for i in np.flatnonzero(placed & same).tolist()
                if self.given.get(i) != last.given.get(int(before[i]))
            )
        return out


_ATTACHED_SNAPSHOTS = 4
"""Snapshots the memo keeps up to date at most; older ones still held get a copy of their own."""


class DesiredSnapshot(Mapping[ItemKey, ConfigItem]):
    """The memo's desired config as it stood when a plan was handed out, without a copy per tick: the
    memo edits its dict in place and, while this snapshot is alive, first records here the value each key
    had (None: absent). Copying 24,000 items each tick cost more in garbage-collector scans of the copy
    than in the copy itself. The first whole-config read after such a change makes a private copy."""

    __slots__ = ("__weakref__", "_before", "_detached", "_live")

    def __init__(self, live: dict[ItemKey, ConfigItem]) -> None:
        self._live = live
        self._before: dict[ItemKey, ConfigItem | None] = {}
        self._detached = False

    @property
    def detached(self) -> bool:
        """Whether this snapshot holds a copy of its own (the memo need no longer tell it anything)."""
        return self._detached

    def detach(self) -> None:
        """Take a private copy, so that the memo need no longer tell this snapshot what changes."""
        frozen = self._frozen()
        if not self._detached:
            self._live, self._detached = dict(frozen), True

    def keep(self, key: ItemKey, value: ConfigItem | None) -> None:
        """The memo is about to change ``key``, which holds ``value`` (None: absent)."""
        if not self._detached:
            self._before.setdefault(key, value)

    def _frozen(self) -> dict[ItemKey, ConfigItem]:
        """The whole config (the memo's dict itself while nothing changed since)."""
        if self._before:
            out = dict(self._live)
            for key, held in self._before.items():
                if held is None:
                    out.pop(key, None)
                else:
                    out[key] = held
            self._live, self._before, self._detached = out, {}, True
        return self._live

    def __getitem__(self, key: ItemKey) -> ConfigItem:
        before = self._before
        if before and key in before:
            held = before[key]
            if held is None:
                raise KeyError(key)
            return held
        return self._live[key]

    def __contains__(self, key: object) -> bool:
        before = self._before
        if before and key in before:
            return before[key] is not None
        return key in self._live

    def __iter__(self) -> Iterator[ItemKey]:
        return iter(list(self._frozen()))

    def __len__(self) -> int:
        return len(self._frozen())

    def keys(self) -> KeysView[ItemKey]:
        return self._frozen().keys()

    def values(self) -> ValuesView[ConfigItem]:
        return self._frozen().values()

    def items(self) -> ItemsView[ItemKey, ConfigItem]:
        return self._frozen().items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DesiredSnapshot):
            other = other._frozen()
        if not isinstance(other, Mapping):
            return NotImplemented
        mine = self._frozen()
        return mine == other if isinstance(other, dict) else mine == dict(other.items())

    __hash__ = None  # type: ignore[assignment]


class _FixedView(Mapping[ItemKey, ConfigItem]):
    """The non-provisional items of a config, without copying them out (``in`` is all candidates ask)."""

    def __init__(self, items: Mapping[ItemKey, ConfigItem]) -> None:
        self._items = items

    def __getitem__(self, key: ItemKey) -> ConfigItem:
        item = self._items[key]
        if item.origin is Origin.PREDICTED:
            raise KeyError(key)
        return item

    def __contains__(self, key: object) -> bool:
        item = self._items.get(key)  # type: ignore[call-overload]
        return item is not None and item.origin is not Origin.PREDICTED

    def __iter__(self) -> Iterator[ItemKey]:
        return (k for k, v in self._items.items() if v.origin is not Origin.PREDICTED)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _is_fixed(item: ConfigItem | None) -> bool:
    return item is not None and item.origin is not Origin.PREDICTED


def _commits(item: ConfigItem | None) -> bool:
    return isinstance(item, Reservation | VirtualCircuit)


@dataclass(frozen=True)
class _Tick:
    scaffolder: Scaffolder
    now_s: float
    horizon_s: float
    expires_at: float


@dataclass
class _Touched:
    devices: set[str] = field(default_factory=set)
    links: set[LinkKey] = field(default_factory=set)


@dataclass
class TickMemo:
    """What the last plan decided, kept so that the next tick can redo only what changed."""

    inputs: PairInputs
    status: IntArray
    candidates: dict[Pair, Candidate]
    eligible: set[Pair]
    admitted: set[Pair]
    desired: dict[ItemKey, ConfigItem]
    # budget use of the eligible candidates (all of which the last tick admitted when they fit)
    item_slots: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    route_users: defaultdict[RouteKey, int] = field(default_factory=lambda: defaultdict(int))
    route_slots: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    fixed_routes: set[RouteKey] = field(default_factory=set)
    prov_rates: defaultdict[LinkKey, dict[Pair, float]] = field(default_factory=lambda: defaultdict(dict))
    fixed_rates: defaultdict[LinkKey, dict[ItemKey, float]] = field(default_factory=lambda: defaultdict(dict))
    over: set[str | LinkKey] = field(default_factory=set)
    # who makes what among the admitted
    feeders: defaultdict[RouteKey, set[Pair]] = field(default_factory=lambda: defaultdict(set))
    vias: defaultdict[RouteKey, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    """Per route, how many admitted pairs feed each next hop."""
    producers: defaultdict[ItemKey, set[Pair]] = field(default_factory=lambda: defaultdict(set))
    # the desired config, indexed for renewal and validation
    cohorts: defaultdict[float, set[ItemKey]] = field(default_factory=lambda: defaultdict(set))
    occupancy: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    committed: defaultdict[LinkKey, dict[ItemKey, tuple[float, bool]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    drops: defaultdict[str, dict[ItemKey, FirewallRule]] = field(default_factory=lambda: defaultdict(dict))
    suppressed: set[Pair] = field(default_factory=set)
    handed_out: list[weakref.ref[DesiredSnapshot]] = field(default_factory=list)
    desired_ids: set[int] = field(default_factory=set)
    """``id()`` of every item in ``desired`` (which keeps them alive, so the ids are theirs alone)."""
    """The desired configs of earlier ticks that callers still hold (views of ``desired``)."""

    # -- building from a plan made from scratch ------------------------------------------------------
    @classmethod
    def build(
        cls,
        scaffolder: Scaffolder,
        *,
        inputs: PairInputs,
        status: IntArray,
        candidates: list[Candidate],
        eligible: list[Candidate],
        admitted: list[Candidate],
        desired: dict[ItemKey, ConfigItem],
    ) -> TickMemo:
        memo = cls(
            inputs,
            status,
            {c.pair: c for c in candidates},
            {c.pair for c in eligible},
            {c.pair for c in admitted},
            dict(desired),  # the memo edits its own copy in place; ``desired`` went out with the plan
        )
        memo.suppressed = {c.pair for c in candidates} - memo.eligible
        touched = _Touched()
        memo.desired_ids = {id(item) for item in memo.desired.values()}
        for key, item in desired.items():
            if _is_fixed(item):
                memo._fix(key, None, item, touched)
            memo._index_desired(key, None, item, touched)
        for cand in eligible:
            memo._add_eligible(cand, touched)
        for cand in admitted:
            memo._add_admitted(cand)
        memo._recheck(scaffolder, touched)
        return memo

    # -- one tick ----------------------------------------------------------------------------------
    def replan(
        self,
        scaffolder: Scaffolder,
        inputs: PairInputs,
        current: NetworkConfig,
        now_s: float,
        suppressed: Mapping[Pair, float],
    ) -> ScaffoldResult | None:
        """The plan for this tick, or None where it must be planned from scratch (the memo is then
        stale)."""
        last = self.inputs
        if (inputs.horizon, inputs.step_s) != (last.horizon, last.step_s):
            return None
        cur = current.items
        touched = _Touched()
        config_changed = self._config_changes(cur)
        invalid = self._fixed_changes(config_changed, cur, touched)
        expires_at = now_s + inputs.horizon_s + scaffolder.policy.ttl_margin_s
        changed = inputs.changed_since(last)
        gone: set[Pair] = set()
        if inputs.table is not last.table:
            gone = set(last.table.index.keys() - inputs.table.index.keys())
            self.status = _carried_status(inputs, last, self.status)
        index = inputs.table.index
        changed.update(index[pair] for pair in invalid if pair in index)
        replaced = self._reprice(scaffolder, inputs, changed, gone, cur=cur, expires_at=expires_at)
        self.inputs = inputs
        reshaped = {pair for pair, old in replaced.items() if not self._same_shape_as(pair, old)}
        moved = self._reselect(replaced, reshaped, suppressed, now_s, touched)
        self._recheck(scaffolder, touched)
        if self.over:
            return None  # the budget binds: admission order matters, plan from scratch
        dirty = config_changed | self._readmit(moved, replaced, reshaped)
        threshold = now_s + inputs.horizon_s
        for expiry, keys in self.cohorts.items():
            if expiry < threshold:
                dirty |= keys
        return self._finish(scaffolder, current, dirty, now_s, expires_at)

    def _config_changes(self, cur: Mapping[ItemKey, ConfigItem]) -> set[ItemKey]:
        """Keys where the current config differs from the last desired one (an expiry, the refiner, a
        refused plan)."""
        last, held = self.desired, self.desired_ids
        # By identity first: an item of the last desired config that is still in the current one is
        # unchanged (configs are keyed by item key). This reads the dicts' entries but none of the keys or
        # items they point to, where comparing the dicts hashes and compares every key. An equal item
        # that is another object counts as changed: its key is recomputed, to the same result.
        if len(cur) == len(last) and all(map(held.__contains__, map(id, cur.values()))):
            return set()  # every item of the current config is one of the last desired, and no more
        changed = {key for key, item in cur.items() if id(item) not in held}
        kept = len(cur) - len(changed) + sum(1 for key in changed if key in last)
        if kept < len(last):  # some keys of the last desired config are gone from the current one
            changed |= last.keys() - cur.keys()
        return changed

    def _fixed_changes(
        self, changed: set[ItemKey], cur: Mapping[ItemKey, ConfigItem], touched: _Touched
    ) -> set[Pair]:
        """Account for confirmed / static items that came, went or changed; the pairs to re-price."""
        invalid: set[Pair] = set()
        for key in changed:
            old, new = self.desired.get(key), cur.get(key)
            old_fixed = old if _is_fixed(old) else None
            new_fixed = new if _is_fixed(new) else None
            if old_fixed is None and new_fixed is None:
                continue
            self._fix(key, old_fixed, new_fixed, touched)
            invalid.update(self.inputs.table.producers_of(key))
        return invalid

    def _reprice(
        self,
        scaffolder: Scaffolder,
        inputs: PairInputs,
        changed: set[int],
        gone: set[Pair],
        *,
        cur: Mapping[ItemKey, ConfigItem],
        expires_at: float,
    ) -> dict[Pair, Candidate | None]:
        """New candidates for the changed pairs (indices), none for the ``gone`` ones (no longer
        forecast); returns their previous candidates."""
        fixed = _FixedView(cur)
        replaced: dict[Pair, Candidate | None] = {pair: self.candidates.pop(pair, None) for pair in gone}
        table = inputs.table
        for index in changed:
            pair = table.pairs[index]
            replaced[pair] = self.candidates.pop(pair, None)
            if inputs.placed[index]:
                code, cand = scaffolder.pair_candidate(inputs, index, fixed, expires_at)
            else:
                code, cand = (NOT_LIKELY if table.valid[index] else UNPLACED), None
            self.status[index] = code
            if cand is not None:
                self.candidates[pair] = cand
        return replaced

    def _same_shape_as(self, pair: Pair, old: Candidate | None) -> bool:
        new = self.candidates.get(pair)
        return old is not None and new is not None and _same_shape(old, new)

    def _reselect(
        self,
        replaced: dict[Pair, Candidate | None],
        reshaped: set[Pair],
        suppressed: Mapping[Pair, float],
        now_s: float,
        touched: _Touched,
    ) -> set[Pair]:
        """Update the eligible set (candidates not suppressed) and its budget use; the pairs it moved."""
        supp = {pair for pair, until in suppressed.items() if until > now_s and pair in self.candidates}
        moved = set(replaced) | (supp ^ self.suppressed)
        self.suppressed = supp
        for i in moved:
            old = replaced[i] if i in replaced else self.candidates.get(i)
            new = self.candidates.get(i)
            stays = i in self.eligible and new is not None and i not in supp
            if stays and i not in reshaped:
                continue  # the same entries, slots and rates: the budget use is unchanged
            if i in self.eligible:
                assert old is not None
                self._remove_eligible(old, touched)
                self.eligible.discard(i)
            if new is not None and i not in supp:
                self._add_eligible(new, touched)
                self.eligible.add(i)
        return moved | (self.admitted ^ self.eligible)

    def _readmit(
        self, moved: set[Pair], replaced: dict[Pair, Candidate | None], reshaped: set[Pair]
    ) -> set[ItemKey]:
        """Every eligible pair is admitted (the budget holds them all); the item keys that moved."""
        dirty: set[ItemKey] = set()
        for i in moved:
            if i in self.admitted:
                old = replaced[i] if i in replaced else self.candidates.get(i)
                assert old is not None
                if i in self.eligible and i not in reshaped:
                    # the same items and routes: only their values may differ, and a route with one next
                    # hop has weight 1 on it whatever the masses
                    dirty |= self._value_keys(old)
                    continue
                dirty |= self._remove_admitted(old)
                self.admitted.discard(i)
            if i in self.eligible:
                dirty |= self._add_admitted(self.candidates[i])
                self.admitted.add(i)
        return dirty

    def _finish(
        self,
        scaffolder: Scaffolder,
        current: NetworkConfig,
        dirty: set[ItemKey],
        now_s: float,
        expires_at: float,
    ) -> ScaffoldResult:
        from netscaffold.scaffold.planner import ScaffoldResult

        cur = current.items
        desired = self.desired  # edited in place: the configs handed out earlier keep what they held
        desired_ids = self.desired_ids
        handed_out = [snapshot for ref in self.handed_out if (snapshot := ref()) is not None]
        while len(handed_out) > _ATTACHED_SNAPSHOTS:  # a caller that keeps many: copy the oldest
            handed_out.pop(0).detach()
        ops: list[PlanOp] = []
        touched = _Touched()
        tick = _Tick(scaffolder, now_s, self.inputs.horizon_s, expires_at)
        for key in dirty:
            existing = cur.get(key)
            new = self._desired_item(tick, key, existing)
            old = desired.get(key)
            if new is not old:
                self._index_desired(key, old, new, touched)
                for snapshot in handed_out:
                    snapshot.keep(key, old)
                if old is not None:
                    desired_ids.discard(id(old))
                if new is None:
                    del desired[key]
                else:
                    desired[key] = new
                    desired_ids.add(id(new))
            op = _op(existing, new)
            if op is not None:
                ops.append(op)
        plan = Plan.of(ops)
        self._validate(scaffolder, plan, current, touched)
        snapshot = DesiredSnapshot(desired)
        self.handed_out = [weakref.ref(held) for held in (*handed_out, snapshot) if not held.detached]
        skipped = skip_counts(self.status)
        if self.suppressed:
            skipped["suppressed by the refiner"] = len(self.suppressed)
        return ScaffoldResult(
            plan=plan,
            desired=NetworkConfig(snapshot),
            admitted_pairs=len(self.admitted),
            candidate_pairs=len(self.eligible),
            occupancy={d: n for d, n in self.occupancy.items() if n > 0},
            skipped=skipped,
        )

    # -- the desired item for one key ----------------------------------------------------------------
    def _desired_item(self, tick: _Tick, key: ItemKey, existing: ConfigItem | None) -> ConfigItem | None:
        if _is_fixed(existing):
            return existing
        if key[0] == "route":
            return self._route(tick, key, existing)
        makers = self.producers.get(key)
        if not makers:
            return None
        # materialised in admission order: the last pair that makes the item wins
        best = max(makers, key=lambda pair: self.candidates[pair].rank)
        item = next(it for it in self.candidates[best].items if it.key == key)
        if item.expires_at != tick.expires_at:
            item = replace(item, expires_at=tick.expires_at)
        return tick.scaffolder.keep_if_close(existing, item, tick.now_s, tick.horizon_s)

    def _route(self, tick: _Tick, key: ItemKey, existing: ConfigItem | None) -> ConfigItem | None:
        device, destination = key[1], key[2]
        users = self.feeders.get((device, destination))
        if not users:
            return None
        vias = self.vias[(device, destination)]
        if len(vias) == 1:
            hops = _single_hop(next(iter(vias)))  # what quantising one next hop gives, whatever its mass
        else:
            masses: dict[str, float] = {}
            candidates = self.candidates
            # next-hop masses added in admission order, as planning from scratch adds them
            for pair in sorted(users, key=lambda pair: candidates[pair].rank):
                for via, mass in candidates[pair].routes[device].items():
                    masses[via] = masses.get(via, 0.0) + mass
            hops = mk.quantised(masses, tick.scaffolder.policy.weight_resolution)
        if (
            isinstance(existing, Route)
            and existing.origin is Origin.PREDICTED
            and existing.expires_at is not None
            and existing.expires_at >= tick.now_s + tick.horizon_s
            and existing.next_hops == hops
        ):
            return existing  # what keep_if_close decides, without building the route
        # keep_if_close would keep only a route with these hops that covers the horizon: not ``existing``
        return Route(device, destination, hops, Origin.PREDICTED, tick.expires_at)

    # -- validation ----------------------------------------------------------------------------------
    def _validate(
        self, scaffolder: Scaffolder, plan: Plan, current: NetworkConfig, touched: _Touched
    ) -> None:
        """Plan.validate's checks on what changed; the full check where a limit is near."""
        plan.check_ops(scaffolder.topology)
        budget = scaffolder.policy.budget
        near = any(self.occupancy[d] > budget.slots_for(d) for d in touched.devices)
        links = scaffolder.topology.links
        for link_key in touched.links:
            link = links.get(link_key)
            items = self.committed.get(link_key)
            if link is None or not items:
                continue
            total = math.fsum(rate for rate, _ in items.values())
            provisional = math.fsum(rate for rate, prov in items.values() if prov)
            near = near or total > link.capacity_bps or provisional > budget.link_fraction * link.capacity_bps
        if self.drops and not near:
            near = any(self._conflicts(op) for op in plan.ops)
        if near:
            plan.validate(scaffolder.topology, budget, current)

    def _conflicts(self, op: PlanOp) -> bool:
        rule = op.item
        if op.kind is OpKind.REMOVE or not isinstance(rule, FirewallRule):
            return False
        return firewall_conflict(rule, self.drops.get(rule.device, {}).values()) is not None

    # -- bookkeeping -------------------------------------------------------------------------------
    def _fix(self, key: ItemKey, old: ConfigItem | None, new: ConfigItem | None, touched: _Touched) -> None:
        """A confirmed / static item ``old`` became ``new`` (either may be None)."""
        if key[0] == "route":
            route_key = (key[1], key[2])
            was, now = route_key in self.fixed_routes, new is not None
            if was != now and self.route_users.get(route_key, 0) > 0:
                self.route_slots[key[1]] += -1 if now else 1
                touched.devices.add(key[1])
            if now:
                self.fixed_routes.add(route_key)
            else:
                self.fixed_routes.discard(route_key)
        for item, sign in ((old, -1), (new, 1)):
            if isinstance(item, Reservation | VirtualCircuit):
                for link in item.link_keys():
                    if sign > 0:
                        self.fixed_rates[link][key] = item.rate_bps
                    else:
                        self.fixed_rates[link].pop(key, None)
                    touched.links.add(link)

    def _add_eligible(self, cand: Candidate, touched: _Touched) -> None:
        for item in cand.items:
            for device in item.devices():
                self.item_slots[device] += 1
                touched.devices.add(device)
            if isinstance(item, Reservation | VirtualCircuit):
                for link in item.link_keys():
                    rates = self.prov_rates[link]
                    rates[cand.pair] = rates.get(cand.pair, 0.0) + item.rate_bps
                    touched.links.add(link)
        for device in cand.routes:
            route_key = (device, cand.destination)
            users = self.route_users[route_key]
            self.route_users[route_key] = users + 1
            if users == 0 and route_key not in self.fixed_routes:
                self.route_slots[device] += 1
                touched.devices.add(device)

    def _remove_eligible(self, cand: Candidate, touched: _Touched) -> None:
        for item in cand.items:
            for device in item.devices():
                self.item_slots[device] -= 1
                touched.devices.add(device)
            if isinstance(item, Reservation | VirtualCircuit):
                for link in item.link_keys():
                    self.prov_rates[link].pop(cand.pair, None)
                    touched.links.add(link)
        for device in cand.routes:
            route_key = (device, cand.destination)
            users = self.route_users[route_key] - 1
            if users:
                self.route_users[route_key] = users
                continue
            del self.route_users[route_key]
            if route_key not in self.fixed_routes:
                self.route_slots[device] -= 1
                touched.devices.add(device)

    def _add_admitted(self, cand: Candidate) -> set[ItemKey]:
        """Index ``cand`` as admitted; the keys whose desired item may change (its items; its routes
        unless the route already had feeders, keeps its one next hop and so its weights)."""
        keys: set[ItemKey] = set()
        for item in cand.items:
            self.producers[item.key].add(cand.pair)
            keys.add(item.key)
        for device, hops in cand.routes.items():
            route_key = (device, cand.destination)
            users = self.feeders[route_key]
            changed = not users
            users.add(cand.pair)
            counts = self.vias[route_key]
            for via in hops:
                seen = counts.get(via, 0)
                counts[via] = seen + 1
                changed = changed or not seen
            if changed or len(counts) > 1:
                keys.add(("route", device, cand.destination))
        return keys

    def _remove_admitted(self, cand: Candidate) -> set[ItemKey]:
        """Un-index ``cand``; the keys whose desired item may change (as for :meth:`_add_admitted`)."""
        keys: set[ItemKey] = set()
        for item in cand.items:
            makers = self.producers[item.key]
            makers.discard(cand.pair)
            if not makers:
                del self.producers[item.key]
            keys.add(item.key)
        for device, hops in cand.routes.items():
            route_key = (device, cand.destination)
            users = self.feeders[route_key]
            users.discard(cand.pair)
            changed = not users
            if changed:
                del self.feeders[route_key]
            counts = self.vias[route_key]
            for via in hops:
                left = counts[via] - 1
                if left:
                    counts[via] = left
                else:
                    del counts[via]
                    changed = True
            if not counts:
                del self.vias[route_key]
            if changed or len(counts) > 1:
                keys.add(("route", device, cand.destination))
        return keys

    def _value_keys(self, cand: Candidate) -> set[ItemKey]:
        """The keys of an admitted candidate whose values follow its forecast: its items, and its routes
        that split over more than one next hop."""
        keys: set[ItemKey] = {item.key for item in cand.items}
        vias = self.vias
        keys.update(
            ("route", device, cand.destination)
            for device in cand.routes
            if len(vias[(device, cand.destination)]) > 1
        )
        return keys

    def _recheck(self, scaffolder: Scaffolder, touched: _Touched) -> None:
        """Which devices and links the eligible candidates would over-fill (with a float margin)."""
        budget = scaffolder.policy.budget
        for device in touched.devices:
            used = self.item_slots.get(device, 0) + self.route_slots.get(device, 0)
            if used > budget.slots_for(device):
                self.over.add(device)
            else:
                self.over.discard(device)
        links = scaffolder.topology.links
        for link_key in touched.links:
            link = links.get(link_key)
            rates = self.prov_rates.get(link_key)
            if link is None or not rates:
                self.over.discard(link_key)
                continue
            provisional = math.fsum(rates.values())
            total = provisional + math.fsum(self.fixed_rates.get(link_key, {}).values())
            room = 1.0 - _MARGIN
            if (
                provisional > budget.link_fraction * link.capacity_bps * room
                or total > link.capacity_bps * room
            ):
                self.over.add(link_key)
            else:
                self.over.discard(link_key)

    def _index_desired(
        self, key: ItemKey, old: ConfigItem | None, new: ConfigItem | None, touched: _Touched
    ) -> None:
        for item, sign in ((old, -1), (new, 1)):
            if item is None:
                continue
            provisional = item.origin is Origin.PREDICTED
            if provisional:
                assert item.expires_at is not None
                self._cohort(key, item.expires_at, sign)
                for device in item.devices():
                    self.occupancy[device] += sign
                    touched.devices.add(device)
            if isinstance(item, Reservation | VirtualCircuit):
                for link in item.link_keys():
                    if sign > 0:
                        self.committed[link][key] = (item.rate_bps, provisional)
                    else:
                        self.committed[link].pop(key, None)
                    touched.links.add(link)
            elif isinstance(item, FirewallRule) and item.action == "drop" and not provisional:
                if sign > 0:
                    self.drops[item.device][key] = item
                else:
                    self.drops[item.device].pop(key, None)
                    if not self.drops[item.device]:
                        del self.drops[item.device]

    def _cohort(self, key: ItemKey, expires_at: float, sign: int) -> None:
        if sign > 0:
            self.cohorts[expires_at].add(key)
            return
        keys = self.cohorts.get(expires_at)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.cohorts[expires_at]


def _same_shape(old: Candidate, new: Candidate) -> bool:
    """Whether two candidates of a pair hold the same item keys on the same devices and paths at the same
    rates, and feed the same next hops of the same routes (so the indexes need no update)."""
    if old is new:
        return True
    if old.destination != new.destination or len(old.items) != len(new.items):
        return False
    if old.paths is not new.paths:  # the same (cached, never mutated) paths feed the same next hops
        if old.routes.keys() != new.routes.keys():
            return False
        if any(hops.keys() != new.routes[device].keys() for device, hops in old.routes.items()):
            return False
    return all(
        a.key == b.key and a.devices() == b.devices() and _path_rate(a) == _path_rate(b)
        for a, b in zip(old.items, new.items, strict=True)
    )


def _path_rate(item: ConfigItem) -> tuple[Path, float] | None:
    if isinstance(item, Reservation | VirtualCircuit):
        return item.path, item.rate_bps
    return None


@functools.lru_cache(maxsize=1 << 14)
def _single_hop(via: str) -> tuple[NextHop, ...]:
    return (NextHop(via, 1.0),)


def _carried_status(inputs: PairInputs, last: PairInputs, status: IntArray) -> IntArray:
    """The last tick's pair statuses, laid out on this tick's pairs (new pairs: not yet priced)."""
    out = np.where(inputs.table.valid, NOT_LIKELY, UNPLACED).astype(np.int64)
    lookup = last.table.index
    for index, pair in enumerate(inputs.table.pairs):
        before = lookup.get(pair)
        if before is not None:
            out[index] = status[before]
    return out


def _op(old: ConfigItem | None, new: ConfigItem | None) -> PlanOp | None:
    """The step from ``old`` to ``new`` as :meth:`Plan.between` would make it."""
    if old is None:
        return None if new is None else PlanOp(OpKind.ADD, new)
    if new is None:
        return PlanOp(OpKind.REMOVE, old)
    if old is new or old == new:
        return None
    return PlanOp(OpKind.UPDATE, new, previous=old)
