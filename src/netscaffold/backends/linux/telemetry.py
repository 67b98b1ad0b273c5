"""Per-link counters read from the lab's kernel over the namespaces' netlink sockets: carried load (tx
bytes of each link's egress port between two samples), reserved rate (our HTB reservation classes' rates)
and the reserved rate actually used (bytes sent by those classes between two samples, capped at their
rate: what the reserved flows carried, not an estimate)."""

from __future__ import annotations

import time

import numpy as np

from netscaffold.backends.linux.session import SessionPool
from netscaffold.formats.render.layout import LabLayout
from netscaffold.formats.render.tc import DEFAULT_MINOR, ROOT_MINOR
from netscaffold.model.metrics import PerformanceSample


class LinkCounters:
    def __init__(self, layout: LabLayout, sessions: SessionPool) -> None:
        self.layout = layout
        self.sessions = sessions
        self.link_keys = tuple(sorted(layout.topology.links))
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._last_wall_s = 0.0

    def _read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per link: tx bytes, reserved rate (bit/s), bytes sent by reservation classes."""
        n = len(self.link_keys)
        tx, reserved, used = np.zeros(n), np.zeros(n), np.zeros(n)
        index = {key: i for i, key in enumerate(self.link_keys)}
        for node, netns in self.layout.namespaces.items():
            netlink = self.sessions.get(netns).netlink
            sent = netlink.tx_bytes()
            ifindex = netlink.links()
            for port in self.layout.egress_ports(node):
                i = index.get((node, port.peer))
                if i is None or port.ifname not in ifindex:
                    continue
                tx[i] = sent.get(port.ifname, 0)
                for msg in netlink.classes(ifindex[port.ifname]):
                    minor = msg.handle & 0xFFFF
                    if (
                        msg.kind == "htb"
                        and msg.handle >> 16 == 1
                        and minor not in (ROOT_MINOR, DEFAULT_MINOR)
                    ):
                        reserved[i] += msg.rate_bytes_s * 8
                        used[i] += msg.sent_bytes
        return tx, reserved, used

    def sample(self, time_s: float) -> PerformanceSample:
        wall_s = time.monotonic()
        tx, reserved, used_bytes = self._read()
        interval_s = wall_s - self._last_wall_s if self._last is not None else 0.0
        zeros = np.zeros(len(self.link_keys))
        if self._last is not None and interval_s > 0:
            load = np.maximum(tx - self._last[0], 0) * 8 / interval_s
            used = np.minimum(np.maximum(used_bytes - self._last[1], 0) * 8 / interval_s, reserved)
        else:
            load, used = zeros, zeros.copy()
        self._last, self._last_wall_s = (tx, used_bytes), wall_s
        none = np.zeros(0)
        return PerformanceSample(time_s, interval_s, self.link_keys, load, reserved, used, (), none)
