"""Request load of the ``microservices`` workload: user sessions under a diurnal, bursty arrival rate.

A session arrives (Poisson, rate ``session_rate_per_s * diurnal(t) * burst(t)``), logs in, browses at
``browse_per_s`` for a lognormal time, and places an order at its end with ``order_probability``. The
number of active sessions therefore leads the order traffic by a session length: a signal that the
frontend's memory (session state) carries before the orders arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netscaffold.telemetry.workload import WorkloadEvent

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LoadConfig:
    session_rate_per_s: float = 1.0
    session_mean_s: float = 60.0
    browse_per_s: float = 0.5
    order_probability: float = 0.3
    day_s: float | None = None  # length of one diurnal cycle; None: the run's duration
    diurnal_amplitude: float = 0.5
    burst_every_s: float = 150.0
    burst_mean_s: float = 20.0
    burst_factor: tuple[float, float] = (2.0, 3.5)

    def requests_per_session(self) -> dict[str, float]:
        return {
            "login": 1.0,
            "browse": self.browse_per_s * self.session_mean_s,
            "order": self.order_probability,
        }


@dataclass(frozen=True, eq=False)
class Sessions:
    start_s: FloatArray
    end_s: FloatArray
    requests: dict[str, FloatArray]  # request type -> sorted request times
    bursts: tuple[WorkloadEvent, ...]

    def active_at(self, times_s: FloatArray) -> FloatArray:
        starts = np.sort(self.start_s)
        ends = np.sort(self.end_s)
        active = np.searchsorted(starts, times_s, side="right") - np.searchsorted(ends, times_s, side="right")
        return active.astype(np.float64)


def rate_multiplier(times_s: FloatArray, config: LoadConfig, duration_s: float) -> FloatArray:
    day_s = config.day_s or duration_s
    phase = 2.0 * math.pi * times_s / day_s - math.pi / 2.0
    return np.asarray(1.0 + config.diurnal_amplitude * np.sin(phase), dtype=np.float64)


def _bursts(
    config: LoadConfig, duration_s: float, rng: np.random.Generator
) -> tuple[list[tuple[float, float, float]], tuple[WorkloadEvent, ...]]:
    bursts: list[tuple[float, float, float]] = []
    t = float(rng.exponential(config.burst_every_s))
    while t < duration_s:
        length_s = float(rng.exponential(config.burst_mean_s))
        factor = float(rng.uniform(*config.burst_factor))
        bursts.append((t, t + length_s, factor))
        t += length_s + float(rng.exponential(config.burst_every_s))
    events = tuple(
        WorkloadEvent(round(a, 6), "burst", "load", {"factor": round(f, 3), "duration_s": round(b - a, 3)})
        for a, b, f in bursts
    )
    return bursts, events


def generate_sessions(
    config: LoadConfig, duration_s: float, tick_s: float, rng: np.random.Generator
) -> Sessions:
    """Sessions from ``-2 * session_mean_s`` (warm start) on; requests kept in ``[0, duration_s)``."""
    warm_s = 2.0 * config.session_mean_s
    edges = np.arange(-warm_s, duration_s + tick_s, tick_s)
    mid = edges[:-1] + tick_s / 2.0
    rate = config.session_rate_per_s * rate_multiplier(mid, config, duration_s)
    bursts, burst_events = _bursts(config, duration_s, rng)
    for a, b, factor in bursts:
        rate[(mid >= a) & (mid < b)] *= factor
    counts = rng.poisson(rate * tick_s)
    start = np.repeat(edges[:-1], counts) + rng.uniform(0.0, tick_s, int(counts.sum()))
    sigma = 0.6
    length = rng.lognormal(math.log(config.session_mean_s) - sigma**2 / 2.0, sigma, start.size)
    end = start + length
    browse_n = rng.poisson(config.browse_per_s * length)
    browse = np.repeat(start, browse_n) + rng.uniform(0.0, 1.0, int(browse_n.sum())) * np.repeat(
        length, browse_n
    )
    orders = end[rng.uniform(size=end.size) < config.order_probability]

    def window(times: FloatArray) -> FloatArray:
        return np.sort(times[(times >= 0.0) & (times < duration_s)])

    return Sessions(
        start_s=start,
        end_s=end,
        requests={"login": window(start), "browse": window(browse), "order": window(orders)},
        bursts=burst_events,
    )
