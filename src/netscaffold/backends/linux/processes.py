"""CPU and memory of the application processes that run in a lab's namespaces, per node and process.

A process belongs to the lab node whose network namespace it lives in (``/proc/PID/ns/net`` is the same
namespace file as ``/run/netns/NAME``: same device and inode). Each :meth:`LabProcesses.sample` reads, for
every such process, ``/proc/PID/stat`` (user + system CPU time, start time) and ``/proc/PID/statm``
(resident pages): ``cpu`` is the cores it kept busy since the previous sample (since it started, for a
process the previous sample did not see, or on the first sample), ``memory`` its resident set in bytes.
A process that exits between the directory scan and the reads is skipped. Processes outside the lab
(the run itself, the traffic child, which opens its sockets in the namespaces from outside) are not
counted."""

from __future__ import annotations

import os
from dataclasses import dataclass

from netscaffold.backends.linux import tools
from netscaffold.formats.render.layout import LabLayout

CLOCK_TICKS_S = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One process of a lab node at ``time_s``: cores busy since the previous sample, resident bytes."""

    time_s: float
    node: str
    pid: int
    name: str
    cpu: float
    memory: int


def _uptime_s() -> float:
    with open("/proc/uptime", encoding="ascii") as f:
        return float(f.read().split()[0])


def _read_process(pid: int) -> tuple[str, float, float, int] | None:
    """(name, cpu seconds used, start time in seconds since boot, resident bytes); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    open_paren, close_paren = stat.find("("), stat.rfind(")")
    fields = stat[close_paren + 2 :].split()  # fields 3.. of proc(5), after "pid (comm) "
    if open_paren < 0 or len(fields) < 20:
        return None
    used_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_S  # utime, stime (fields 14, 15)
    started_s = int(fields[19]) / CLOCK_TICKS_S  # starttime (field 22)
    return stat[open_paren + 1 : close_paren], used_s, started_s, resident_pages * PAGE_BYTES


class LabProcesses:
    """``LabProcesses(layout).sample(now_s)``: the lab's processes, per node, since the last sample."""

    def __init__(self, layout: LabLayout) -> None:
        self.layout = layout
        self._used_s: dict[int, tuple[float, float]] = {}  # pid -> (start time, cpu seconds) last seen
        self._last_uptime_s: float | None = None

    def _node_of_namespace(self) -> dict[tuple[int, int], str]:
        out: dict[tuple[int, int], str] = {}
        for node, netns in self.layout.namespaces.items():
            try:
                info = os.stat(os.path.join(tools.NETNS_DIR, netns))
            except OSError:
                continue  # a namespace that is gone has no processes
            out[(info.st_dev, info.st_ino)] = node
        return out

    def sample(self, now_s: float) -> list[ProcessSample]:
        node_of = self._node_of_namespace()
        uptime_s = _uptime_s()
        previous, self._used_s = self._used_s, {}
        out: list[ProcessSample] = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                info = os.stat(f"/proc/{entry.name}/ns/net")
            except OSError:
                continue
            node = node_of.get((info.st_dev, info.st_ino))
            if node is None:
                continue
            pid = int(entry.name)
            read = _read_process(pid)
            if read is None:
                continue
            name, used_s, started_s, resident = read
            self._used_s[pid] = (started_s, used_s)
            before = previous.get(pid)
            if before is not None and before[0] == started_s and self._last_uptime_s is not None:
                busy_s, span_s = used_s - before[1], uptime_s - self._last_uptime_s
            else:  # first seen (or a new process under a reused pid): since it started
                busy_s, span_s = used_s, uptime_s - started_s
            cpu = busy_s / span_s if span_s > 0 else 0.0
            out.append(ProcessSample(now_s, node, pid, name, max(cpu, 0.0), resident))
        self._last_uptime_s = uptime_s
        out.sort(key=lambda s: (s.node, s.pid))
        return out
