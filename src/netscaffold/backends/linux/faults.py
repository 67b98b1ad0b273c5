"""Fault injection for the reliability tests and ``benchmarks/reliability_linux.py``: a ``before_step``
hook that breaks one step of an apply in one of several ways.

- ``raise``: the step is refused before it runs (a failing netlink call);
- ``bad-line``: a line the tool rejects is slipped into the middle of an ip/tc batch (the lines before
  it are applied), or an element of a missing set into an nft transaction (nothing of it commits);
- ``kill-nft``: the nft transaction is sent to a namespace that does not exist, so it fails before
  committing anything (for ip/tc steps: like ``bad-line``);
- ``sigkill``: the whole process is killed with SIGKILL at that step (kill -9 mid-apply).
"""

from __future__ import annotations

import os
import signal
from typing import Literal

from netscaffold.backends.linux.converge import Step, StepHook
from netscaffold.errors import BackendError
from netscaffold.formats.render.objects import KernelElement, KernelRoute

FaultMode = Literal["raise", "bad-line", "kill-nft", "sigkill"]
FAULT_MODES: tuple[FaultMode, ...] = ("raise", "bad-line", "kill-nft")
"""The modes a process survives (``sigkill`` is tested on its own, in a child process)."""
MISSING_NAMESPACE = "ns-netscaffold-no-such-namespace"


def _bad_line(step: Step) -> None:
    if step.tool == "netlink":  # a gateway on no link: the kernel refuses this one route
        unreachable = KernelRoute(step.node, 254, "198.18.7.7/32", 201, (("203.0.113.1", 1),))
        step.ops.insert(len(step.ops) // 2, ("replace", unreachable))
        step.owners.insert(len(step.owners) // 2, unreachable.ident)
    elif step.tool in ("ip", "ip6"):
        step.lines.insert(len(step.lines) // 2 + 1, "route add 198.18.7.7/32 via 203.0.113.1")
    elif step.tool == "tc":
        step.lines.insert(
            len(step.lines) // 2 + 1, "class add dev nosuchdev parent 1: classid 1:5 htb rate 1kbit"
        )
    else:
        missing = KernelElement(step.node, "nosuchset", (1,), None, "", None)
        step.elements.append(("add", missing))  # the kernel refuses the set: nothing of it commits
        step.owners.append(missing.ident)


def fault_at(target: int, mode: FaultMode) -> StepHook:
    """A hook that breaks step ``target`` (by index in the apply's step list) as ``mode`` says."""

    def hook(index: int, step: Step) -> None:
        if index != target:
            return
        if mode == "raise":
            raise BackendError("injected failure", backend="fault-injection")
        if mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "kill-nft" and step.tool == "nft":
            step.netns = MISSING_NAMESPACE
            return
        _bad_line(step)

    return hook


def step_counter(seen: list[int]) -> StepHook:
    """A hook that only records the index of every step (to pick a fault position)."""

    def hook(index: int, _step: Step) -> None:
        seen.append(index)

    return hook
