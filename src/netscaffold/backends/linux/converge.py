"""Converging the kernel to a target set of objects: read what is there, diff, run one batch per tool and
namespace (``tc -batch``; an nft transaction; routes and rules as one bulk of netlink messages). The same
function applies a plan and rolls one back (to the objects read before the plan), so rollback never
replays remembered steps.

A :class:`Step` is one tool run in one namespace; ``before_step`` (fault injection in tests and the
reliability benchmark) sees each step before it runs and may raise or alter it.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from netscaffold.backends.linux import tools
from netscaffold.backends.linux.netlink import route_message, rule_message, tc_delete_message
from netscaffold.backends.linux.readback import element_write, read_node
from netscaffold.backends.linux.session import SessionPool
from netscaffold.errors import NetscaffoldError
from netscaffold.formats.render import nftables as nft_render
from netscaffold.formats.render import tc as tc_render
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.objects import (
    KernelClass,
    KernelElement,
    KernelFilter,
    KernelObject,
    KernelRoute,
    KernelRule,
    same,
)

Tool = Literal["tc", "nft", "ip", "ip6", "netlink"]
NetlinkOp = tuple[Literal["replace", "add", "delete"], KernelRoute | KernelRule]
ElementOp = tuple[Literal["add", "delete"], KernelElement]
ObjectMap = dict[tuple[str, ...], KernelObject]


@dataclass
class Step:
    """One tool run: ``lines`` (ip/tc batch lines), set ``elements`` to add or delete (one nf_tables
    transaction) or ``ops`` on routes and policy rules (netlink messages sent in bulk from this process),
    and the object each line, element or op makes."""

    node: str
    netns: str
    tool: Tool
    lines: list[str] = field(default_factory=list)
    elements: list[ElementOp] = field(default_factory=list)
    tc_deletes: list[KernelFilter | KernelClass] = field(default_factory=list)
    """tc objects to delete before the batch lines run, as netlink messages (their owners come first)."""
    owners: list[tuple[str, ...]] = field(default_factory=list)
    ops: list[NetlinkOp] = field(default_factory=list)

    def run(self, sessions: SessionPool | None = None) -> None:
        if self.tool == "netlink":
            self._run_netlink(sessions)
        elif self.tool == "ip":
            tools.ip_batch(self.netns, self.lines)
        elif self.tool == "ip6":
            tools.ip_batch(self.netns, self.lines, family=6)
        elif self.tool == "tc":
            self._run_tc(sessions)
        elif self.elements:
            self._run_nft(sessions)

    def _run_tc(self, sessions: SessionPool | None) -> None:
        """Deletes over netlink (no process), then the batch lines through ``tc -batch``."""
        if self.tc_deletes:
            argv = ("tc", "netlink", self.netns)
            if sessions is None or not os.path.exists(os.path.join(tools.NETNS_DIR, self.netns)):
                raise tools.ToolError(argv, f"Error: namespace {self.netns} does not exist", None)
            netlink = sessions.get(self.netns).netlink
            index = netlink.links()
            messages: list[tuple[int, int, bytes]] = []
            for obj in self.tc_deletes:
                if obj.device not in index:
                    raise tools.ToolError(argv, f"Error: no device {obj.device}", len(messages) + 1)
                kind = "filter" if isinstance(obj, KernelFilter) else "class"
                messages.append(
                    tc_delete_message(kind, index[obj.device], obj.minor, tc_render.FILTER_PRIORITY)
                )
            failures = netlink.bulk(messages)
            if failures:
                at, errno = failures[0]
                reason = f"Error: delete {'/'.join(self.tc_deletes[at].ident)}: {os.strerror(errno)}"
                raise tools.ToolError(argv, reason, at + 1)
        try:
            tools.tc_batch(self.netns, self.lines)
        except tools.ToolError as exc:
            if exc.line is None or not self.tc_deletes:
                raise
            raise tools.ToolError(exc.argv, exc.stderr, exc.line + len(self.tc_deletes)) from exc

    def _run_nft(self, sessions: SessionPool | None) -> None:
        """One nf_tables batch over the namespace's netfilter socket: all or nothing, as ``nft -f``."""
        argv = ("nft", "netlink", self.netns)
        if sessions is None or not os.path.exists(os.path.join(tools.NETNS_DIR, self.netns)):
            raise tools.ToolError(argv, f"Error: namespace {self.netns} does not exist", None)
        writes = [element_write(action, element) for action, element in self.elements]
        failure = sessions.get(self.netns).nftnl.transaction(nft_render.TABLE, writes)
        if failure is not None:
            index, errno = failure
            action, element = self.elements[index]
            reason = f"Error: {action} element of set {element.set_name}: {os.strerror(errno)}"
            raise tools.ToolError(argv, reason, index + 1)

    def _run_netlink(self, sessions: SessionPool | None) -> None:
        argv = ("netlink", "rtnetlink", self.netns)
        if sessions is None or not os.path.exists(os.path.join(tools.NETNS_DIR, self.netns)):
            raise tools.ToolError(argv, f"Error: namespace {self.netns} does not exist", None)
        failures = sessions.get(self.netns).netlink.bulk([_message(op) for op in self.ops])
        if failures:
            index, errno = failures[0]
            action, obj = self.ops[index]
            what = obj.destination if isinstance(obj, KernelRoute) else f"rule {obj.priority}"
            reason = f"Error: {action} {what}: {os.strerror(errno)}"
            raise tools.ToolError(argv, reason, index + 1)

    @property
    def empty(self) -> bool:
        return not (self.lines or self.elements or self.ops or self.tc_deletes)


def _message(op: NetlinkOp) -> tuple[int, int, bytes]:
    action, obj = op
    if isinstance(obj, KernelRoute):
        return route_message(action, obj.destination, obj.next_hops, obj.protocol, obj.table)
    return rule_message(action, obj)


class StepError(Exception):
    """A step failed; ``ident`` is the object whose line failed (when the tool says which)."""

    def __init__(self, step: Step, ident: tuple[str, ...] | None, reason: str) -> None:
        self.step = step
        self.ident = ident
        self.reason = reason
        super().__init__(f"{step.tool} in {step.netns}: {reason}")


StepHook = Callable[[int, Step], None]


READ_WORKERS = 4
"""Threads reading namespaces: netlink receives and libnftables listings run without the GIL."""


def read_all(layout: LabLayout, sessions: SessionPool, nodes: Iterable[str] | None = None) -> ObjectMap:
    """Every object of ours in the lab (or on ``nodes`` only), read in-process over the sessions."""

    def one(node: str) -> list[KernelObject]:
        devices = [port.ifname for port in layout.egress_ports(node)]
        return read_node(node, sessions.get(layout.namespace(node)), devices)

    chosen = sorted(layout.namespaces if nodes is None else set(nodes))
    if len(chosen) > 1:
        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(chosen))) as pool:
            per_node = list(pool.map(one, chosen))
    else:
        per_node = [one(node) for node in chosen]
    return {obj.ident: obj for objects in per_node for obj in objects}


def diff(
    actual: Mapping[tuple[str, ...], KernelObject], target: Mapping[tuple[str, ...], KernelObject]
) -> tuple[list[KernelObject], list[KernelObject]]:
    """(objects to remove, objects to put): a changed object is put (replace) or, for set elements whose
    content changed, removed and put again."""
    remove = [obj for ident, obj in actual.items() if ident not in target]
    put = []
    for ident, obj in target.items():
        have = actual.get(ident)
        if have is None or not same(have, obj):
            put.append(obj)
            if isinstance(have, KernelElement | KernelRule):
                remove.append(have)
    return remove, put


def plan_steps(layout: LabLayout, remove: Sequence[KernelObject], put: Sequence[KernelObject]) -> list[Step]:
    """Per node: tc (capacity first), nft (permits, marks), then routes and rules over netlink."""
    by_node: dict[str, tuple[list[KernelObject], list[KernelObject]]] = defaultdict(lambda: ([], []))
    for obj in remove:
        by_node[obj.node][0].append(obj)
    for obj in put:
        by_node[obj.node][1].append(obj)
    steps: list[Step] = []
    for node in sorted(by_node):
        gone, new = by_node[node]
        netns = layout.namespace(node)
        node_steps = (
            _tc_step(node, netns, gone, new),
            _nft_step(node, netns, gone, new),
            _netlink_step(node, netns, gone, new),
        )
        steps.extend(step for step in node_steps if not step.empty)
    return steps


T = TypeVar("T", KernelClass, KernelFilter, KernelElement, KernelRoute, KernelRule)


def _of(kind: type[T], objects: Sequence[KernelObject]) -> list[T]:
    """The objects of one kind, in the order given (diff keeps the config's sorted order)."""
    return [o for o in objects if isinstance(o, kind)]


def _tc_step(node: str, netns: str, gone: list[KernelObject], new: list[KernelObject]) -> Step:
    """Filter deletes, class deletes (netlink), then class and filter replaces (``tc -batch``)."""
    step = Step(node, netns, "tc")
    step.tc_deletes = [*_of(KernelFilter, gone), *_of(KernelClass, gone)]
    pairs: list[tuple[str, tuple[str, ...]]] = []
    pairs += [(tc_render.class_line(o, "replace"), o.ident) for o in _of(KernelClass, new)]
    pairs += [(tc_render.filter_line(o, "replace"), o.ident) for o in _of(KernelFilter, new)]
    step.lines = [line for line, _ in pairs]
    step.owners = [o.ident for o in step.tc_deletes] + [ident for _, ident in pairs]
    return step


def _nft_step(node: str, netns: str, gone: list[KernelObject], new: list[KernelObject]) -> Step:
    """Deletes first, then adds (a changed element is deleted and added again), grouped by set."""
    step = Step(node, netns, "nft")
    removed = sorted(_of(KernelElement, gone), key=_set_of)
    added = sorted(_of(KernelElement, new), key=_set_of)
    step.elements = [("delete", o) for o in removed] + [("add", o) for o in added]
    step.owners = [o.ident for _, o in step.elements]
    return step


def _set_of(element: KernelElement) -> str:
    return element.set_name


def _netlink_step(node: str, netns: str, gone: list[KernelObject], new: list[KernelObject]) -> Step:
    """Rule deletes, route deletes, route replaces, rule adds (the order of the former ``ip -batch``)."""
    step = Step(node, netns, "netlink")
    step.ops = [("delete", o) for o in _of(KernelRule, gone)]
    step.ops += [("delete", o) for o in _of(KernelRoute, gone)]
    step.ops += [("replace", o) for o in _of(KernelRoute, new)]
    step.ops += [("add", o) for o in _of(KernelRule, new)]
    step.owners = [obj.ident for _, obj in step.ops]
    return step


EXEC_WORKERS = 8


def execute(
    steps: Sequence[Step],
    before_step: StepHook | None = None,
    sessions: SessionPool | None = None,
    started: set[str] | None = None,
) -> None:
    """Run the steps: each node's steps in order, nodes in parallel (the tools are processes, nft runs
    without the GIL). After the first failure no further step starts; the failure of the lowest step index
    is raised as :class:`StepError` (steps already done stay done: the caller converges back).
    ``started`` collects the nodes where a step began (the only ones that may have changed)."""
    by_node: dict[str, list[tuple[int, Step]]] = defaultdict(list)
    for index, step in enumerate(steps):
        by_node[step.node].append((index, step))
    failures: list[tuple[int, StepError]] = []
    stop = threading.Event()

    def run_node(node_steps: list[tuple[int, Step]]) -> None:
        for index, step in node_steps:
            if stop.is_set():
                return
            if started is not None:
                started.add(step.node)
            try:
                _run_one(index, step, before_step, sessions)
            except StepError as exc:
                failures.append((index, exc))
                stop.set()
                return

    groups = list(by_node.values())
    if len(groups) <= 1:
        for group in groups:
            run_node(group)
    else:
        with ThreadPoolExecutor(max_workers=min(EXEC_WORKERS, len(groups))) as pool:
            list(pool.map(run_node, groups))
    if failures:
        raise min(failures, key=lambda pair: pair[0])[1]


def _run_one(index: int, step: Step, before_step: StepHook | None, sessions: SessionPool | None) -> None:
    try:
        if before_step is not None:
            before_step(index, step)
        step.run(sessions)
    except tools.ToolError as exc:
        ident = None
        if exc.line is not None and 0 < exc.line <= len(step.owners):
            ident = step.owners[exc.line - 1]
        elif step.tool == "nft" and step.owners:
            ident = step.owners[0]
        raise StepError(step, ident, str(exc)) from exc
    except (NetscaffoldError, OSError) as exc:
        raise StepError(step, None, str(exc)) from exc


def converge(
    layout: LabLayout,
    target: Mapping[tuple[str, ...], KernelObject],
    sessions: SessionPool,
    before_step: StepHook | None = None,
) -> int:
    """Make the lab's objects equal ``target``; returns the number of objects changed."""
    remove, put = diff(read_all(layout, sessions), target)
    execute(plan_steps(layout, remove, put), before_step, sessions)
    return len(remove) + len(put)
