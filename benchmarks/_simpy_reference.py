"""A straightforward SimPy implementation of the emulator's model, for the benchmark's comparison.

Same model as ``netscaffold.backends.sim`` without scaffolding: each flow arrives (Poisson), pays the
profile's reactive setup unless its pair's reactive entries are still installed (idle timeout), then sends
over its hash-chosen ECMP path; every start and completion recomputes exact max-min rates over all active
flows with the textbook bottleneck algorithm, and the next completion is rescheduled.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from netscaffold.backends.sim.costs import SetupCostProfile


def max_min(paths: list[list[int]], capacity: list[float]) -> list[float]:
    """Textbook bottleneck filling: the link with the smallest fair share fixes its flows, repeat."""
    remaining = dict(enumerate(capacity))
    users: dict[int, set[int]] = {}
    for j, links in enumerate(paths):
        for link in links:
            users.setdefault(link, set()).add(j)
    rates = [0.0] * len(paths)
    live = set(range(len(paths)))
    while live:
        link, share = min(
            ((link, remaining[link] / len(js)) for link, js in users.items() if js), key=lambda x: x[1]
        )
        for j in list(users[link]):
            rates[j] = share
            live.discard(j)
            for other in paths[j]:
                remaining[other] -= share
                users[other].discard(j)
    return rates


class ReferenceEmulator:
    def __init__(
        self,
        arrivals_s: np.ndarray,
        pairs: np.ndarray,
        sizes_bits: np.ndarray,
        paths: list[list[int]],
        capacity_bps: list[float],
        setup_cost_s: np.ndarray,
        idle_timeout_s: float,
    ) -> None:
        self.env = simpy.Environment()
        self.arrivals_s, self.pairs, self.sizes_bits = arrivals_s, pairs, sizes_bits
        self.paths, self.capacity, self.setup_cost_s = paths, capacity_bps, setup_cost_s
        self.idle_timeout_s = idle_timeout_s
        self.active: dict[int, list[float]] = {}  # flow -> [remaining bits, rate]
        self.last_s = 0.0
        self.version = 0
        self.completion_s = np.full(len(arrivals_s), np.nan)
        self.ready_s: dict[int, float] = {}
        self.users: dict[int, int] = {}
        self.idle_since_s: dict[int, float] = {}
        self.events = 0

    def run(self) -> np.ndarray:
        self.env.process(self._arrivals())
        self.env.run()
        return self.completion_s

    def _arrivals(self) -> Generator[Any, Any, None]:
        for i, t in enumerate(self.arrivals_s):
            yield self.env.timeout(t - self.env.now)
            self.events += 1
            self.env.process(self._flow(i, self._setup_delay(i)))

    def _setup_delay(self, i: int) -> float:
        pair, now = int(self.pairs[i]), self.env.now
        ready = self.ready_s.get(pair, math.inf)
        live = (
            self.users.get(pair, 0) > 0 or now - self.idle_since_s.get(pair, -math.inf) < self.idle_timeout_s
        )
        self.users[pair] = self.users.get(pair, 0) + 1
        if ready < math.inf and live:
            return max(0.0, ready - now)
        self.ready_s[pair] = now + float(self.setup_cost_s[i])
        return float(self.setup_cost_s[i])

    def _flow(self, i: int, delay_s: float) -> Generator[Any, Any, None]:
        if delay_s > 0:
            yield self.env.timeout(delay_s)
        self._settle()
        self.active[i] = [float(self.sizes_bits[i]), 0.0]
        self._reallocate()

    def _settle(self) -> None:
        dt = self.env.now - self.last_s
        for state in self.active.values():
            state[0] -= state[1] * dt
        self.last_s = self.env.now

    def _reallocate(self) -> None:
        flows = list(self.active)
        rates = max_min([self.paths[f] for f in flows], self.capacity)
        for f, rate in zip(flows, rates, strict=True):
            self.active[f][1] = rate
        self.version += 1
        if flows:
            f, due = min(((f, s[0] / s[1]) for f, s in self.active.items()), key=lambda x: x[1])
            self.env.process(self._complete(f, max(due, 0.0), self.version))

    def _complete(self, flow: int, after_s: float, version: int) -> Generator[Any, Any, None]:
        yield self.env.timeout(after_s)
        if version != self.version:
            return  # rates changed since: a newer completion is scheduled
        self._settle()
        del self.active[flow]
        self.completion_s[flow] = self.env.now
        self.events += 1
        pair = int(self.pairs[flow])
        self.users[pair] -= 1
        if self.users[pair] == 0:
            self.idle_since_s[pair] = self.env.now
        self._reallocate()


def setup_costs(profile: SetupCostProfile, hops: np.ndarray) -> np.ndarray:
    return np.array([profile.setup_delay_s(int(h), 0, False) for h in hops])
