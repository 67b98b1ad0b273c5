"""The Linux backend in real time with real traffic: what ``netscaffold run --backend linux`` drives.

:class:`LiveLab` = a lab (:class:`~netscaffold.backends.linux.backend.LinuxBackend` on a wall clock),
the reactive controller on its routers (a first packet whose path is missing is queued, the path is
installed in-process, the packet released) and a traffic child playing the workload's flows as packets
between the endpoints' addresses (:mod:`netscaffold.backends.linux.traffic`). It implements the backend
protocol by delegating to the lab and adds what the engine needs from a real network:

- ``drain_routing_info``: route updates from the netlink route monitor (:mod:`.monitor`: the
  scaffolder's, the controller's and anyone's changes to routes of our protocols) plus one
  :class:`FlowRequest` per **probe** (the first transfer of a pair after an idle gap) whose outcome is
  known: ``setup_delay_s`` = the measured one-way latency of its first datagram (lost:
  :data:`~netscaffold.backends.linux.traffic.LOST_AFTER_S`), ``scaffolded`` = the controller did not
  see that datagram (its path was in place, whoever put it there; an apply in progress holds the
  controller back, as one writer per lab);
- ``drain_routing_info`` also reports the flows that **conntrack** announced on the lab's hosts (the
  lab's ``watch_flows``) and that are not the traffic child's own (those are the probes above, measured
  better): one :class:`FlowRequest` per new connection between endpoints that some other process in the
  lab opened, ``scaffolded`` = the controller held none of the pair's packets around its start,
  ``setup_delay_s`` = how long the controller held the packet when it did (measured: install, then
  release). So applications run in the lab's namespaces are seen as a real deployment would see them;
  ``kernel_flows`` counts the traffic child's connections that conntrack confirmed;
- ``performance``: link loads and reservation use from the kernel's counters, and per-pair bytes as the
  traffic child reports sending them (application-side counters); each call also samples the CPU and
  memory of every process running in the lab's namespaces (:mod:`.processes`) into
  ``process_samples``, which the run writes as ``lab_processes.csv``.

The controller installs what it installs as ``confirmed`` with an idle expiry, so that the scaffolder
(which evicts provisional items it no longer wants) leaves paths in use alone; ``expire`` removes them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import replace

import numpy as np

from netscaffold.backends.linux.backend import LinuxBackend
from netscaffold.backends.linux.conntrack import ConntrackBytes
from netscaffold.backends.linux.monitor import RouteMonitor
from netscaffold.backends.linux.processes import LabProcesses, ProcessSample
from netscaffold.backends.linux.reactive import ReactiveController
from netscaffold.backends.linux.traffic import (
    IPERF_PORT,
    LOST_AFTER_S,
    PROBE_PORT,
    Placement,
    spec_document,
    transfers,
)
from netscaffold.backends.protocol import ApplyReport
from netscaffold.backends.sim.costs import PROFILES, SetupCostProfile
from netscaffold.errors import BackendError, PlanError
from netscaffold.formats.render.layout import kernel_address
from netscaffold.model.config import ConfigItem, NetworkConfig, Origin
from netscaffold.model.events import FlowRequest, RoutingInfo
from netscaffold.model.flows import FlowTable
from netscaffold.model.metrics import PerformanceSample
from netscaffold.model.plan import Plan, ProvisionalBudget
from netscaffold.model.topology import Topology

log = logging.getLogger(__name__)
START_DELAY_S = 3.0
"""Time given to the traffic child to open its sockets before the run's clock starts."""
MISS_WINDOW_S = 0.05
"""Slack when matching a probe with the controller's record of the packets it handled."""
OWN_PORTS = frozenset({PROBE_PORT, IPERF_PORT})
"""Destination ports of the traffic child's connections (probes and bulk transfers)."""


class StartClock:
    """Monotonic seconds since ``origin`` (a ``time.monotonic()`` value shared with the traffic child)."""

    def __init__(self, origin_monotonic: float) -> None:
        self.origin = origin_monotonic

    def now(self) -> float:
        return time.monotonic() - self.origin


class LiveLab:
    """``LiveLab(topology, flows, lab="r1")``: bring the lab up, start the controller and the traffic
    (clock 0 = the first flow's time origin); ``close()`` stops both and tears the lab down."""

    name = "linux"

    def __init__(
        self,
        topology: Topology,
        flows: FlowTable,
        *,
        lab: str,
        duration_s: float,
        tick_s: float = 1.0,
        idle_s: float = 10.0,
        budget: ProvisionalBudget | None = None,
        cap_bytes: int = 64_000,
        bulk_bytes: int = 1 << 30,
        profile: SetupCostProfile | None = None,
    ) -> None:
        self.topology = topology
        self.profile = profile if profile is not None else PROFILES["linux-local"]
        """The cost model the scaffolder weighs setup delay with (measured here: ``linux-local``)."""
        self.tick_s = tick_s
        origin = time.monotonic() + START_DELAY_S
        self._clock = StartClock(origin)
        self.lab = LinuxBackend(topology, lab=lab, clock=self._clock, budget=budget)
        self.controller: ReactiveController | None = None
        self.monitor: RouteMonitor | None = None
        self.conntrack_bytes: ConntrackBytes | None = None
        """Bytes per endpoint pair of the connections the traffic child did not open (conntrack's
        counters: IP length, both directions)."""
        self._child: subprocess.Popen[str] | None = None
        self._spec_path: str | None = None
        self._lock = threading.Lock()
        self._probes: dict[int, tuple[str, str, int]] = {}
        self._requests: list[FlowRequest] = []
        self._pair_bytes: dict[tuple[str, str], float] = defaultdict(float)
        self.lost = 0
        self.kernel_flows = 0
        """Connections of the traffic child that conntrack announced (its probes and transfers)."""
        self.refused_applies: list[str] = []
        self.first_packet_s: list[tuple[bool, float]] = []
        """(scaffolded, measured first-packet latency) of every probe that arrived."""
        self.processes = LabProcesses(self.lab.layout)
        self.process_samples: list[ProcessSample] = []
        """CPU and memory of the processes in the lab's namespaces, one sample per tick."""
        try:
            self.monitor = RouteMonitor(self.lab.layout)
            self.lab.watch_flows()  # conntrack on every host, before the first packet
            self.conntrack_bytes = ConntrackBytes(self.lab.layout, skip_ports=OWN_PORTS)
            self.controller = ReactiveController(self.lab, idle_s=idle_s, origin=Origin.CONFIRMED).start()
            plan = transfers(flows, tick_s=tick_s, idle_s=idle_s, cap_bytes=cap_bytes, until_s=duration_s)
            host = {ep.id: ep.host for ep in topology.endpoints.values()}
            self._plan = [t for t in plan if host[t.src] != host[t.dst]]  # same host: no network
            self._start_child(origin, bulk_bytes)
            self._wait_until_origin()
        except BaseException:
            self.close()
            raise

    # -- start-up ---------------------------------------------------------------------------------
    def _placement(self) -> dict[str, Placement]:
        layout = self.lab.layout
        return {
            ep.id: Placement(layout.namespace(ep.host), ep.address) for ep in self.topology.endpoints.values()
        }

    def _start_child(self, origin: float, bulk_bytes: int) -> None:
        document = spec_document(
            self._plan, self._placement(), origin_monotonic=origin, bulk_bytes=bulk_bytes
        )
        for index, transfer in enumerate(self._plan):
            self._probes[index] = (transfer.src, transfer.dst, transfer.bytes)
        handle, self._spec_path = tempfile.mkstemp(prefix="netscaffold-traffic-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out)
        argv = [sys.executable, "-m", "netscaffold.backends.linux.traffic", self._spec_path]
        self._child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read_child, name="traffic-reader", daemon=True)
        self._ready = threading.Event()
        self._reader.start()

    def _wait_until_origin(self) -> None:
        if not self._ready.wait(timeout=START_DELAY_S + 30.0):
            raise BackendError("the traffic generator did not start", backend=self.name)
        child = self._child
        if child is not None and child.poll() is not None and not self._ready.is_set():
            raise BackendError(f"the traffic generator exited ({child.returncode})", backend=self.name)
        left_s = -self._clock.now()
        if left_s > 0:
            time.sleep(left_s)

    def _read_child(self) -> None:
        child = self._child
        assert child is not None
        assert child.stdout is not None
        for text in child.stdout:
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if line.get("ready"):
                self._ready.set()
            elif "bulk_bytes" in line:
                self._add_bytes(int(line["i"]), float(line["bulk_bytes"]))
            elif "latency_s" in line:
                self._transfer_done(line)
        self._ready.set()  # an exited child: nobody waits for it

    def _add_bytes(self, index: int, sent: float) -> None:
        src, dst, _ = self._probes[index]
        with self._lock:
            self._pair_bytes[(src, dst)] += sent

    def _transfer_done(self, line: dict[str, object]) -> None:
        index = int(line["i"])  # type: ignore[call-overload]
        transfer = self._plan[index]
        self._add_bytes(index, float(line["bytes"]))  # type: ignore[arg-type]
        if not transfer.probe:
            return
        sent = float(line["sent"])  # type: ignore[arg-type]
        latency = line["latency_s"]
        missed = self._controller_saw(transfer.src, transfer.dst, sent, latency)
        delay = LOST_AFTER_S if latency is None else float(latency)  # type: ignore[arg-type]
        request = FlowRequest(
            sent,
            transfer.src,
            transfer.dst,
            float(transfer.bytes),
            scaffolded=not missed,
            setup_delay_s=delay,
        )
        with self._lock:
            self._requests.append(request)
            if latency is None:
                self.lost += 1
            else:
                self.first_packet_s.append((not missed, delay))

    def _controller_saw(self, src: str, dst: str, sent: float, latency: object) -> bool:
        until = sent + (LOST_AFTER_S if latency is None else float(latency))  # type: ignore[arg-type]
        return bool(self._misses_of(src, dst, sent, until))

    def _misses_of(self, src: str, dst: str, since_s: float, until_s: float) -> list[int]:
        """Indices in the controller's ``misses`` of the packets of ``src -> dst`` it held between
        ``since_s`` and ``until_s`` (each widened by :data:`MISS_WINDOW_S`)."""
        controller = self.controller
        if controller is None:
            return []
        addresses = (
            kernel_address(self.topology.endpoints[src].address),
            kernel_address(self.topology.endpoints[dst].address),
        )
        since_s, until_s = since_s - MISS_WINDOW_S, until_s + MISS_WINDOW_S
        return [
            i
            for i, (a, b, at) in enumerate(controller.misses)
            if (a, b) == addresses and since_s <= at <= until_s
        ]

    # -- the backend protocol -----------------------------------------------------------------------
    @property
    def clock(self) -> StartClock:
        return self._clock

    def snapshot(self) -> NetworkConfig:
        return self.lab.snapshot()

    def apply(self, plan: Plan) -> ApplyReport:
        """The lab's apply; a plan the kernel refused (rolled back) is a :class:`PlanError` here, so that
        the engine skips it for this tick and plans again from the kernel's state at the next one (the
        refusal is logged and counted in ``refused_applies``)."""
        try:
            return self.lab.apply(plan)
        except BackendError as exc:
            if "rollback failed" in exc.reason:
                raise
            self.refused_applies.append(str(exc))
            log.warning("linux: plan of %d ops refused by the kernel and rolled back: %s", len(plan), exc)
            raise PlanError(f"refused by the kernel, rolled back: {exc.reason}", element=exc.item) from exc

    def advance(self, until_s: float) -> None:
        self.lab.advance(until_s)

    def expire(self, now: float) -> list[ConfigItem]:
        return self.lab.expire(now)

    def drain_routing_info(self) -> list[RoutingInfo]:
        # the route monitor sees the lab's route updates, and the controller's too: keep only its flows
        kernel = [r for r in self.lab.drain_routing_info() if isinstance(r, FlowRequest)]
        info: list[RoutingInfo] = []
        if self.monitor is not None:
            info += self.monitor.poll(self._clock.now())
        foreign = self._foreign_flows(kernel)
        with self._lock:
            requests, self._requests = self._requests, []
        requests += foreign
        requests.sort(key=lambda r: r.time_s)
        return [*info, *requests]

    def _foreign_flows(self, kernel: list[FlowRequest]) -> list[FlowRequest]:
        """Conntrack's new connections that the traffic child did not open, each with what the
        controller measured for it (conntrack reports a flow when the run polls, so the controller's
        record is looked up over the tick before)."""
        out: list[FlowRequest] = []
        for request in kernel:
            if request.dst_port in OWN_PORTS:
                self.kernel_flows += 1
                continue
            held = self._controller_held(request.src, request.dst, request.time_s)
            out.append(replace(request, scaffolded=held is None, setup_delay_s=held or 0.0))
        return out

    def _controller_held(self, src: str, dst: str, polled_s: float) -> float | None:
        """Seconds the controller held the pair's packet in the tick before ``polled_s``; None when it
        held none (the path was in place)."""
        misses = self._misses_of(src, dst, polled_s - self.tick_s, polled_s)
        controller = self.controller
        if not misses or controller is None or misses[0] >= len(controller.held_s):
            return None  # nothing held, or the controller still holds it (its time is not known yet)
        return controller.held_s[misses[0]]

    def performance(self) -> PerformanceSample:
        sample = self.lab.performance()
        self.process_samples += self.processes.sample(sample.time_s)
        with self._lock:
            carried, self._pair_bytes = self._pair_bytes, defaultdict(float)
        if self.conntrack_bytes is not None:
            for pair, counted in self.conntrack_bytes.take(sample.time_s).items():
                carried[pair] += counted
        keys = tuple(sorted(carried))
        return replace(sample, pair_keys=keys, pair_bytes=np.array([carried[k] for k in keys], dtype=float))

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            if child.poll() is None:
                child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        if self._spec_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._spec_path)
            self._spec_path = None
        try:
            if self.controller is not None:
                self.controller.stop()
                self.controller = None
            if self.monitor is not None:
                self.monitor.close()
                self.monitor = None
            if self.conntrack_bytes is not None:
                self.conntrack_bytes.close()
                self.conntrack_bytes = None
        finally:
            self.lab.close()

    def __enter__(self) -> LiveLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
