"""Real traffic in a lab: a workload's flows played as packets between endpoint addresses.

A workload has far more flows than a Python sender can play in real time (the microservices workload
starts hundreds a second), and only the first flow of a pair after an idle gap meets a network without
its path: later flows of the pair reuse it (the emulator charges reactive setup the same way, once per
idle pair). :func:`transfers` therefore plays one **transfer** per pair and tick: the first one of an
activation (no traffic of the pair in the previous ``idle_s``) is a **probe**, whose first datagram's
one-way latency is the pair's first-packet latency; its bytes are what the pair's flows carry in that tick,
capped (``cap_bytes``).

The sender is a child process (``python -m netscaffold.backends.linux.traffic SPEC``): it opens a UDP
receiver bound to every destination endpoint's address inside its host's namespace and, per transfer,
a UDP sender bound to the source endpoint's address in its namespace; the first datagram of a transfer
carries its number, send and receive times are read on one monotonic clock (CLOCK_MONOTONIC, shared with
the parent's :class:`~netscaffold.backends.protocol.WallClock`). Transfers of at least ``bulk_bytes`` go
through ``iperf3`` (a server bound to the destination address in its namespace) after the probe datagram.
Every transfer is reported as one JSON line on stdout: ``{"i", "sent", "latency_s", "bytes"}``
(``latency_s`` null when the first datagram was lost).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from netscaffold.errors import BackendError
from netscaffold.model.flows import FlowTable

DATAGRAM_BYTES = 1200
PROBE_PORT = 47000
IPERF_PORT = 47100
LOST_AFTER_S = 2.0


@dataclass(frozen=True)
class Transfer:
    """One pair's traffic in one tick; ``probe``: the first of an activation (path possibly missing)."""

    start_s: float
    src: str
    dst: str
    bytes: int
    probe: bool


def transfers(
    flows: FlowTable,
    *,
    tick_s: float,
    idle_s: float,
    cap_bytes: int = 64_000,
    until_s: float | None = None,
) -> list[Transfer]:
    """The transfers that play ``flows`` (see the module docstring), in start order."""
    if len(flows.start_s) == 0:
        return []
    keep = np.ones(len(flows.start_s), dtype=bool) if until_s is None else flows.start_s < until_s
    start, src, dst = flows.start_s[keep], flows.src[keep], flows.dst[keep]
    size = np.nan_to_num(flows.size_bytes[keep], nan=float(DATAGRAM_BYTES))
    tick = np.floor(start / tick_s).astype(np.int64)
    order = np.lexsort((start, dst, src, tick))
    out: list[Transfer] = []
    last_seen: dict[tuple[int, int], float] = {}
    index = 0
    while index < len(order):
        first = order[index]
        key = (int(src[first]), int(dst[first]), int(tick[first]))
        end = index
        total = 0.0
        while end < len(order) and (int(src[order[end]]), int(dst[order[end]]), int(tick[order[end]])) == key:
            total += float(size[order[end]])
            end += 1
        pair = key[:2]
        begin = float(start[first])
        previous = last_seen.get(pair)
        probe = previous is None or begin - previous > idle_s
        last_seen[pair] = float(start[order[end - 1]])
        sent = int(min(max(total, DATAGRAM_BYTES), cap_bytes))
        out.append(Transfer(begin, flows.endpoints[pair[0]], flows.endpoints[pair[1]], sent, probe))
        index = end
    out.sort(key=lambda t: (t.start_s, t.src, t.dst))
    return out


@dataclass(frozen=True)
class Placement:
    """Where an endpoint lives in the lab: its namespace and address."""

    netns: str
    address: str


def spec_document(
    plan: Sequence[Transfer],
    placement: dict[str, Placement],
    *,
    origin_monotonic: float,
    bulk_bytes: int,
) -> dict[str, Any]:
    """What the sender child reads: endpoints and transfers (times relative to ``origin_monotonic``)."""
    used = sorted({t.src for t in plan} | {t.dst for t in plan})
    missing = [ep for ep in used if ep not in placement]
    if missing:
        raise BackendError(f"transfers name endpoints without a place in the lab: {missing[:3]}")
    return {
        "origin": origin_monotonic,
        "bulk_bytes": bulk_bytes,
        "endpoints": {ep: [placement[ep].netns, placement[ep].address] for ep in used},
        "transfers": [[t.start_s, t.src, t.dst, t.bytes, t.probe] for t in plan],
    }


# -- the sender child --------------------------------------------------------------------------------
def _in_namespace(netns: str, family: int, kind: int, address: str, port: int) -> socket.socket:
    from netscaffold.backends.linux.session import open_in_namespace

    def make() -> socket.socket:
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        return sock

    return open_in_namespace(netns, make)


class _Receivers:
    """A UDP receiver per destination address; records the arrival time of each transfer's first
    datagram (its number is the datagram's first 8 bytes)."""

    def __init__(self, endpoints: dict[str, list[str]], destinations: set[str]) -> None:
        self.arrived: dict[int, float] = {}
        self.sockets = []
        for ep in sorted(destinations):
            netns, address = endpoints[ep]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = _in_namespace(netns, family, socket.SOCK_DGRAM, address, PROBE_PORT)
            sock.settimeout(0.2)
            self.sockets.append(sock)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self.sockets]
        for thread in self.threads:
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            if len(data) >= 8:
                self.arrived.setdefault(int.from_bytes(data[:8], "big"), now)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=1.0)
        for sock in self.sockets:
            sock.close()


def _iperf_servers(endpoints: dict[str, list[str]], destinations: set[str]) -> list[subprocess.Popen[bytes]]:
    servers = []
    for ep in sorted(destinations):
        netns, address = endpoints[ep]
        argv = ["ip", "netns", "exec", netns, "iperf3", "-s", "-B", address, "-p", str(IPERF_PORT)]
        servers.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return servers


def _send(
    index: int, size: int, src: list[str], dst: list[str], bulk_bytes: int
) -> tuple[float, int, subprocess.Popen[bytes] | None]:
    """Send one transfer: its first datagram, then the rest as datagrams or (from ``bulk_bytes``) an
    iperf3 client left running; returns (monotonic time of the first datagram, bytes sent, client)."""
    family = socket.AF_INET6 if ":" in src[1] else socket.AF_INET
    sock = _in_namespace(src[0], family, socket.SOCK_DGRAM, src[1], 0)
    try:
        payload = index.to_bytes(8, "big") + b"\0" * (DATAGRAM_BYTES - 8)
        sent_at = time.monotonic()
        sock.sendto(payload, (dst[1], PROBE_PORT))
        sent = DATAGRAM_BYTES
        if size < bulk_bytes:
            while sent < size:
                sock.sendto(payload, (dst[1], PROBE_PORT))
                sent += DATAGRAM_BYTES
            return sent_at, sent, None
    finally:
        sock.close()
    argv = ["ip", "netns", "exec", src[0], "iperf3", "-c", dst[1], "-B", src[1], "-p", str(IPERF_PORT)]
    argv += ["-n", str(size)]
    client = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return sent_at, sent, client


def play(spec: dict[str, Any]) -> None:
    """Play every transfer at its time and print one JSON line per transfer (the child's main); an
    iperf3 transfer's bytes follow in a line ``{"i", "bulk_bytes"}`` when its client ends (0 if refused)."""
    endpoints: dict[str, list[str]] = spec["endpoints"]
    plan = spec["transfers"]
    origin, bulk_bytes = float(spec["origin"]), int(spec["bulk_bytes"])
    receivers = _Receivers(endpoints, {t[2] for t in plan})
    servers = _iperf_servers(endpoints, {t[2] for t in plan if t[3] >= bulk_bytes})
    pending: list[tuple[int, float, int]] = []
    clients: list[tuple[int, int, subprocess.Popen[bytes]]] = []
    try:
        _emit({"ready": True})
        for index, (start_s, src, dst, size, _) in enumerate(plan):
            wait_s = origin + start_s - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            sent_at, sent, client = _send(index, int(size), endpoints[src], endpoints[dst], bulk_bytes)
            if client is not None:
                clients.append((index, int(size), client))
            pending.append((index, sent_at, sent))
            pending = _report(pending, receivers, origin, final=False)
            clients = _bulk_done(clients, wait=False)
        deadline = time.monotonic() + LOST_AFTER_S
        while pending and time.monotonic() < deadline:
            time.sleep(0.05)
            pending = _report(pending, receivers, origin, final=False)
        _report(pending, receivers, origin, final=True)
        _bulk_done(clients, wait=True)
    finally:
        receivers.close()
        for _, _, client in clients:
            if client.poll() is None:
                client.kill()
                client.wait(timeout=5)
        for server in servers:
            server.terminate()
            server.wait(timeout=5)


def _bulk_done(
    clients: list[tuple[int, int, subprocess.Popen[bytes]]], *, wait: bool
) -> list[tuple[int, int, subprocess.Popen[bytes]]]:
    left = []
    for index, size, client in clients:
        if wait:
            try:
                client.wait(timeout=30)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait(timeout=5)
        code = client.poll()
        if code is None:
            left.append((index, size, client))
            continue
        _emit({"i": index, "bulk_bytes": size if code == 0 else 0})
    return left


def _report(
    pending: list[tuple[int, float, int]], receivers: _Receivers, origin: float, *, final: bool
) -> list[tuple[int, float, int]]:
    left = []
    now = time.monotonic()
    for index, sent_at, sent in pending:
        arrived = receivers.arrived.get(index)
        if arrived is None and not final and now - sent_at < LOST_AFTER_S:
            left.append((index, sent_at, sent))
            continue
        latency = None if arrived is None else arrived - sent_at
        line = {"i": index, "sent": sent_at - origin, "latency_s": latency, "bytes": sent}
        _emit(line)
    return left


def _emit(line: dict[str, Any]) -> None:
    """One report line on stdout (the parent reads them as they come)."""
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m netscaffold.backends.linux.traffic SPEC.json\n")
        return 2
    with open(args[0], encoding="utf-8") as handle:
        spec = json.load(handle)
    play(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
