"""The Linux backend: a NetworkConfig realised in the kernel of this machine, one namespace per node.

Every apply reads the kernel, renders the resulting config to kernel objects, converges (nodes in
parallel), and reads back the nodes it touched; on any failure it converges those nodes again to the objects
it read before the plan (the kernel's actual state, not a replay of steps) and raises naming the failing
item. ``snapshot()`` comes from the kernel alone: each item's record (an nft element comment on its first
device, see :mod:`netscaffold.formats.render.records`) says what the item is, and the item counts as
present only when all its kernel objects are there as rendered. A backend attached to a running lab by
another process therefore sees the same config. All reads go over per-namespace netlink sockets and
libnftables contexts (:mod:`netscaffold.backends.linux.session`); writes are one bulk of tc netlink
messages, one nf_tables transaction and one bulk of netlink messages (routes and rules) per touched node,
and the read-back takes what they wrote by its bytes (:func:`~netscaffold.backends.linux.converge.read_all`).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from netscaffold.backends.gc_pause import gc_paused
from netscaffold.backends.linux import lab as lab_ops
from netscaffold.backends.linux.conntrack import ConntrackMonitor
from netscaffold.backends.linux.converge import (
    ObjectMap,
    ReadScope,
    Step,
    StepError,
    StepHook,
    diff,
    execute,
    plan_steps,
    read_all,
    written_objects,
    written_scopes,
)
from netscaffold.backends.linux.journal import clear_journal, write_journal
from netscaffold.backends.linux.session import SessionPool
from netscaffold.backends.linux.telemetry import LinkCounters
from netscaffold.backends.protocol import ApplyReport, Clock, WallClock
from netscaffold.errors import BackendError, NetscaffoldError, ValidationError
from netscaffold.formats.render import records
from netscaffold.formats.render.desired import Allocation, explained, render_config, render_item
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.objects import KernelElement, KernelRoute, same
from netscaffold.model.config import ConfigItem, ItemKey, NetworkConfig, NextHop
from netscaffold.model.events import RouteUpdate, RoutingInfo
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import OpKind, Plan, PlanOp, ProvisionalBudget
from netscaffold.model.topology import Topology


class LinuxBackend:
    """``LinuxBackend(topology, lab="t1")`` brings a lab up (refusing a name clash) and tears it down on
    ``close()``; ``create=False`` attaches to a running lab and ``close()`` then withdraws our items only."""

    name = "linux"

    def __init__(
        self,
        topology: Topology,
        *,
        lab: str,
        clock: Clock | None = None,
        budget: ProvisionalBudget | None = None,
        create: bool = True,
        topology_file: str | None = None,
        before_step: StepHook | None = None,
    ) -> None:
        self.topology = topology
        self.clock: Clock = clock if clock is not None else WallClock()
        self.budget = budget
        self.layout = LabLayout.of(lab, topology)
        self.before_step = before_step
        self.sessions = SessionPool()
        self.last_kernel_ops = 0
        """Kernel objects removed or written by the last successful apply."""
        self.last_rollback_s: float | None = None
        """Seconds the last rollback took (read back, converge), None before any."""
        self.last_phases_s: dict[str, float] = {}
        """Seconds of each phase of the last successful apply (read, decode, validate, render, diff,
        journal, write, read_back, verify, realized): where an apply's time goes."""
        self._route_changes: list[RouteChanges] = []
        """Per apply that changed routes: (clock time, routes announced, routes withdrawn)."""
        self._pending_routes = 0
        """Routes in ``_route_changes`` (announced and withdrawn)."""
        self.route_fold_at = MAX_PENDING_ROUTE_CHANGES
        """When ``_pending_routes`` passes it, the pending changes are folded (:func:`fold_route_changes`)."""
        self._flows: ConntrackMonitor | None = None
        self._counters = LinkCounters(self.layout, self.sessions)
        self._owns_lab = create
        self.write_lock = threading.RLock()
        """Held by every apply from its first read to its read-back, and by the reactive controller's
        installs: two writers in one lab would each verify against objects the other changed."""
        self._closed = False
        if create:
            lab_ops.lab_up(self.layout, owner_pid=os.getpid(), topology_file=topology_file)

    # -- reading ---------------------------------------------------------------------------------
    def kernel_objects(self, nodes: Iterable[str] | None = None) -> ObjectMap:
        """Every object of ours in the lab's kernel state (or on ``nodes``), by identity."""
        return read_all(self.layout, self.sessions, nodes)

    def _config_from(self, objects: ObjectMap) -> NetworkConfig:
        alloc = Allocation.from_kernel(self.layout, objects.values())
        now = self.clock.now()
        elements = [obj for obj in objects.values() if isinstance(obj, KernelElement)]
        present: dict[ItemKey, ConfigItem] = {}
        for item in records.items_from_elements(elements):
            try:
                wanted = render_item(item, self.layout, alloc, now)  # memoised for routes, permits
            except NetscaffoldError:
                continue  # a record naming what this topology lacks: residue, not an item
            if item.key not in present and explained(objects, wanted):
                present[item.key] = item
        return NetworkConfig(present)

    def snapshot(self) -> NetworkConfig:
        self._check_open()
        return self._config_from(self.kernel_objects())

    def residue(self) -> ObjectMap:
        """Objects of ours that no item of the snapshot explains (after a crash, say)."""
        objects = self.kernel_objects()
        config = self._config_from(objects)
        wanted, _ = render_config(
            config, self.layout, Allocation.from_kernel(self.layout, objects.values()), self.clock.now()
        )
        return {ident: obj for ident, obj in objects.items() if ident not in wanted}

    # -- applying --------------------------------------------------------------------------------
    def apply(self, plan: Plan) -> ApplyReport:
        """``applied_ops`` counts the plan's ops that changed the config (0 for a plan already in
        place); ``last_kernel_ops`` the kernel objects removed or written. Holds ``write_lock``."""
        self._check_open()
        with self.write_lock, gc_paused():
            return self._apply(plan)

    def _apply(self, plan: Plan) -> ApplyReport:
        started = time.perf_counter()
        phases = PhaseTimer()
        before = self.kernel_objects()
        phases.lap("read")
        current = self._config_from(before)
        phases.lap("decode")
        result = plan.validate(self.topology, self.budget, current)
        phases.lap("validate")
        alloc = Allocation.from_kernel(self.layout, before.values())
        target, owner = render_config(result, self.layout, alloc, self.clock.now())
        phases.lap("render")
        remove, put = diff(before, target)
        steps = plan_steps(self.layout, remove, put)
        phases.lap("diff")
        touched: set[str] = set()
        if steps:
            write_journal(self.layout.lab, before)
        phases.lap("journal")
        try:
            execute(steps, self.before_step, self.sessions, touched)
            phases.lap("write")
            scopes = {node: scope for node, scope in written_scopes(steps).items() if node in touched}
            written = written_objects(steps)
            read = read_all(self.layout, self.sessions, touched, scopes, written)
            after = {**unread(before, scopes), **read}
            phases.lap("read_back")
            self._verify(after, target, owner)
            phases.lap("verify")
        except (StepError, NetscaffoldError, OSError) as exc:
            rollback_started = time.perf_counter()
            self._rollback(before, touched)
            self.last_rollback_s = time.perf_counter() - rollback_started
            raise self._failure(exc, owner) from exc
        if steps:
            clear_journal(self.layout.lab)
        self._record_route_updates(before, after)
        keys = plan.item_keys  # the very tuples validate built (and the result's dict holds)
        realized_at = self._realized(plan, keys)
        self.last_kernel_ops = len(remove) + len(put)
        phases.lap("realized")
        self.last_phases_s = phases.laps
        return ApplyReport(_changed(keys, current, result), time.perf_counter() - started, realized_at)

    def dry_run(self, plan: Plan) -> list[Step]:
        """The steps ``apply(plan)`` would run now (validated and rendered, nothing executed)."""
        self._check_open()
        before = self.kernel_objects()
        result = plan.validate(self.topology, self.budget, self._config_from(before))
        alloc = Allocation.from_kernel(self.layout, before.values())
        target, _ = render_config(result, self.layout, alloc, self.clock.now())
        return plan_steps(self.layout, *diff(before, target))

    def _verify(
        self,
        after: ObjectMap,
        target: Mapping[tuple[str, ...], object],
        owner: Mapping[tuple[str, ...], ConfigItem],
    ) -> None:
        read_back = after.get
        for ident, obj in target.items():
            have = read_back(ident)
            if have is obj or have == obj:  # the object written itself, where the read-back matched it
                continue
            if have is None or not same(have, obj):  # type: ignore[arg-type]
                item = owner.get(ident)
                held = "nothing" if have is None else repr(have)
                raise BackendError(
                    f"kernel does not hold {'/'.join(ident)} as written (it holds {held:.200})",
                    item=item.describe() if item else None,
                    backend=self.name,
                )

    def _failure(self, exc: BaseException, owner: Mapping[tuple[str, ...], ConfigItem]) -> NetscaffoldError:
        if isinstance(exc, BackendError | ValidationError):
            return exc
        if isinstance(exc, StepError):
            item = owner.get(exc.ident) if exc.ident else None
            described = item.describe() if item else (f"{exc.step.tool} in {exc.step.netns}")
            return BackendError(f"{exc.reason} (rolled back)", item=described, backend=self.name)
        return BackendError(f"{exc} (rolled back)", backend=self.name)

    def _rollback(self, before: ObjectMap, touched: set[str]) -> None:
        """Converge the touched nodes to the objects read before the plan; a second try on failure (over
        every node), then give up loudly."""
        for attempt in (1, 2):
            nodes = touched if attempt == 1 else set(self.layout.namespaces)
            try:
                remove, put = diff(self.kernel_objects(nodes), _on(before, nodes))
                execute(plan_steps(self.layout, remove, put), None, self.sessions)
            except (StepError, NetscaffoldError) as exc:
                if attempt == 2:
                    raise BackendError(
                        f"rollback failed ({exc}); the journal is kept: run `netscaffold lab repair`",
                        backend=self.name,
                    ) from exc
                continue
            clear_journal(self.layout.lab)
            return

    def _realized(self, plan: Plan, keys: Sequence[ItemKey]) -> dict[ItemKey, float]:
        """Per added or updated item (``keys``: of the plan's ops), the clock time at which all its objects
        were read back (all of them were: the verification before this found every object of the target
        in the read-back)."""
        now = self.clock.now()
        removed = OpKind.REMOVE
        return {key: now for key, op in zip(keys, plan.ops, strict=True) if op.kind is not removed}

    def _record_route_updates(self, before: ObjectMap, after: ObjectMap) -> None:
        """Note the routes the apply announced (new or changed) and withdrew; they become
        :class:`RouteUpdate` objects when drained (an apply of 5,000 new routes would otherwise build
        5,000 of them, and the collector would scan them, before anyone asks). The routes noted are
        the read-back's, which for the routes it matched by their bytes are the objects written (the
        renderer's memo holds them anyway)."""
        held = {ident: obj for ident, obj in before.items() if type(obj) is KernelRoute}
        if held:
            had = held.get
            announced = [o for ident, o in after.items() if type(o) is KernelRoute and had(ident) != o]
        else:  # no route before (a first apply): every route read back is new, no ident to look up
            announced = [obj for obj in after.values() if type(obj) is KernelRoute]
        withdrawn = [obj for ident, obj in held.items() if ident not in after]
        if announced or withdrawn:
            self._route_changes.append((self.clock.now(), announced, withdrawn))
            self._pending_routes += len(announced) + len(withdrawn)
            if self._pending_routes > self.route_fold_at:
                self._route_changes = fold_route_changes(self._route_changes)
                self._pending_routes = sum(len(a) + len(w) for _, a, w in self._route_changes)
                # distinct routes past the bound: fold again only once their count has doubled
                self.route_fold_at = max(self.route_fold_at, 2 * self._pending_routes)

    def _route_updates(self) -> list[RoutingInfo]:
        """The noted route changes as updates, in apply order and, within an apply, by route ident."""
        out: list[RoutingInfo] = []
        for now, announced, withdrawn in self._route_changes:
            updates = [
                (obj.ident, RouteUpdate(now, obj.node, obj.destination, _next_hops(obj.next_hops)))
                for obj in announced
            ]
            updates += [
                (obj.ident, RouteUpdate(now, obj.node, obj.destination, (), withdrawn=True))
                for obj in withdrawn
            ]
            updates.sort(key=_first)
            out.extend(update for _, update in updates)
        self._route_changes = []
        self._pending_routes = 0
        self.route_fold_at = MAX_PENDING_ROUTE_CHANGES
        return out

    # -- time --------------------------------------------------------------------------------------
    def advance(self, until_s: float) -> None:
        self._check_open()
        setter = getattr(self.clock, "set", None)
        if callable(setter):
            if until_s > self.clock.now():
                setter(until_s)
        else:
            while (left_s := until_s - self.clock.now()) > 0:
                time.sleep(min(left_s, 0.5))
        self.expire(until_s)

    def expire(self, now: float) -> list[ConfigItem]:
        self._check_open()
        expired = self.snapshot().expired(now)
        if expired:
            ops = [PlanOp(OpKind.REMOVE, item) for item in expired]
            self.apply(Plan.of(ops, allow_confirmed_changes=True))
        return expired

    # -- observation -------------------------------------------------------------------------------
    def drain_routing_info(self) -> list[RoutingInfo]:
        """Route updates of our applies and, once :meth:`watch_flows` was called, a flow request per
        new flow between endpoints that conntrack announced since the last call."""
        drained = self._route_updates()
        if self._flows is not None:
            drained += self._flows.requests(self.clock.now())
        return drained

    def watch_flows(self, nodes: Iterable[str] | None = None) -> None:
        """Report new flows (conntrack events on ``nodes``, every host by default) as routing
        information from now on; idempotent."""
        self._check_open()
        if self._flows is None:
            self._flows = ConntrackMonitor(self.layout, nodes)

    def performance(self) -> PerformanceSample:
        self._check_open()
        return self._counters.sample(self.clock.now())

    # -- teardown ----------------------------------------------------------------------------------
    def shutdown(self, *, teardown: bool = False) -> list[ConfigItem]:
        """Withdraw provisional items, keep confirmed and static ones; the lab stays up unless
        ``teardown``. Returns the withdrawn items. Idempotent; the backend is closed afterwards."""
        if self._closed:
            return []
        withdrawn: list[ConfigItem] = []
        try:
            withdrawn = self.snapshot().provisional()
            if withdrawn:
                self.apply(Plan.of([PlanOp(OpKind.REMOVE, item) for item in withdrawn]))
        finally:
            self._closed = True
            self._close_monitors()
            self.sessions.close()
            if teardown:
                lab_ops.lab_down(self.layout.lab)
        return withdrawn

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._owns_lab:
                target, _ = render_config(NetworkConfig(), self.layout, Allocation(), self.clock.now())
                remove, put = diff(self.kernel_objects(), target)
                execute(plan_steps(self.layout, remove, put), None, self.sessions)
        finally:
            self._close_monitors()
            self.sessions.close()
            if self._owns_lab:
                lab_ops.lab_down(self.layout.lab)

    def _close_monitors(self) -> None:
        if self._flows is not None:
            self._flows.close()
            self._flows = None

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("backend is closed", backend=self.name)

    def __enter__(self) -> LinuxBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PhaseTimer:
    """Seconds between successive ``lap(name)`` calls."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def _on(objects: ObjectMap, nodes: set[str]) -> ObjectMap:
    return {ident: obj for ident, obj in objects.items() if obj.node in nodes}


def unread(objects: ObjectMap, scopes: Mapping[str, ReadScope]) -> ObjectMap:
    """The objects of ``objects`` that a read-back over ``scopes`` does not cover (left as they were)."""
    out: ObjectMap = {}
    for ident, obj in objects.items():
        scope = scopes.get(obj.node)
        if scope is None or not scope.holds(obj):
            out[ident] = obj
    return out


def _changed(keys: Sequence[ItemKey], before: NetworkConfig, after: NetworkConfig) -> int:
    """How many of ``keys`` name an item that differs between the two configs (an item compared only
    where the two are not the very same object, or both there: comparing a route with nothing runs the
    dataclass's ``__eq__`` both ways)."""
    held, wanted = before.items.get, after.items.get
    changed = 0
    for key in keys:
        have, want = held(key), wanted(key)
        if have is not want and (have is None or want is None or have != want):
            changed += 1
    return changed


RouteChanges = tuple[float, list[KernelRoute], list[KernelRoute]]
"""(clock time, routes announced, routes withdrawn) of one apply."""
MAX_PENDING_ROUTE_CHANGES = 200_000
"""Route changes held for :meth:`LinuxBackend.drain_routing_info`; past it they are folded (a backend that
nobody drains would otherwise keep every apply's changes)."""


def fold_route_changes(changes: list[RouteChanges]) -> list[RouteChanges]:
    """``changes`` reduced to each route's last change, at the time of that change (a route announced and
    changed reports its last announcement; announced, then withdrawn, its withdrawal), in time order:
    what a route monitor's resync tells a reader that fell behind, and bounded by the routes touched, not
    by the applies."""
    last: dict[tuple[str, ...], tuple[int, float, KernelRoute, bool]] = {}
    for order, (now, announced, withdrawn) in enumerate(changes):
        for obj in announced:
            last[obj.ident] = (order, now, obj, False)
        for obj in withdrawn:
            last[obj.ident] = (order, now, obj, True)
    by_apply: dict[int, RouteChanges] = {}
    for order, now, obj, gone in last.values():
        _, announced, withdrawn = by_apply.setdefault(order, (now, [], []))
        (withdrawn if gone else announced).append(obj)
    return [by_apply[order] for order in sorted(by_apply)]


def _first(pair: tuple[tuple[str, ...], RouteUpdate]) -> tuple[str, ...]:
    return pair[0]


@functools.lru_cache(maxsize=4096)
def _next_hops(kernel_hops: tuple[tuple[str, int], ...]) -> tuple[NextHop, ...]:
    """Kernel (gateway, weight) next hops as the model's (routes through one node share a few sets)."""
    return tuple(NextHop(via, float(weight)) for via, weight in kernel_hops)
