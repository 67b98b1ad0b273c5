"""Exact max-min fair rates with guaranteed floors and demand caps (progressive filling), for numba.

The allocation is the max-min fair point of ``{x : floor <= x <= demand, sum of x over each link <= its
capacity}``: a water level ``T`` rises from 0; an unfrozen flow sends ``max(floor, T)``; a flow freezes when
a link it crosses saturates (at ``T``, or at its floor when that is higher) or when ``T`` reaches its
demand. Levels are events: link saturations (an indexed heap keyed by ``base / riders``) and the sorted
floor and demand levels, so one call costs O(sum of hops x log links + flows x log flows).

Floors must be feasible (reservations never over-commit a link: plans are validated) and ``floor <=
demand``. A flow crossing no link gets its demand (``inf`` for an elastic flow).
"""

# ruff: noqa: PLR0917  (numba nopython functions take their packed arrays positionally: no
# keyword-only parameters there)

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from netscaffold.backends.sim import heap
from netscaffold.backends.sim.jitcache import compiled, drop_if_sources_changed

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

FLOORED = 0  # sending its floor, waiting for the level to reach it
RIDING = 1  # sending the level T
FROZEN = 2
_INSERTION_MAX = 24


@compiled(inline="always")
def _touch_links(
    nc: int,
    mm_path: IntArray,
    k_off: IntArray,
    k_links: IntArray,
    l_cap: FloatArray,
    lk_base: FloatArray,
    lk_n: IntArray,
    lk_pos: IntArray,
    lk_touched: IntArray,
    lk_mark: IntArray,
    lk_cnt: IntArray,
    lk_start: IntArray,
    lk_fill: IntArray,
    lk_flows: IntArray,
    epoch: int,
) -> int:
    """Reset the links the flows cross and index, per link, which flows cross it. Returns their count."""
    nt = 0
    for j in range(nc):
        p = mm_path[j]
        for e in range(k_off[p], k_off[p + 1]):
            link = k_links[e]
            if lk_mark[link] != epoch:
                lk_mark[link] = epoch
                lk_touched[nt] = link
                nt += 1
                lk_base[link] = l_cap[link]
                lk_n[link] = 0
                lk_cnt[link] = 0
                lk_pos[link] = -1
            lk_cnt[link] += 1
    at = 0
    for i in range(nt):
        link = lk_touched[i]
        lk_start[link] = at
        lk_fill[link] = at
        at += lk_cnt[link]
    for j in range(nc):
        p = mm_path[j]
        for e in range(k_off[p], k_off[p + 1]):
            link = k_links[e]
            lk_flows[lk_fill[link]] = j
            lk_fill[link] += 1
    return nt


@compiled(inline="always")
def _init_flows(
    nc: int,
    mm_path: IntArray,
    mm_floor: FloatArray,
    mm_dem: FloatArray,
    k_off: IntArray,
    k_links: IntArray,
    l_cap: FloatArray,
    lk_cnt: IntArray,
    mm_rate: FloatArray,
    mm_state: IntArray,
    mm_bn: IntArray,
    mm_capl: IntArray,
    ev_lev: FloatArray,
    ev_j: IntArray,
    ev_kind: IntArray,
    lk_base: FloatArray,
    lk_n: IntArray,
) -> int:
    """Start every flow at its floor (or riding from 0); list floor and demand levels. Returns their count.

    A link that only one of the flows crosses lowers that flow's demand to its capacity instead (the
    same constraint, as a sorted level rather than a heap entry: most links, on a sparse network)."""
    ne = 0
    for j in range(nc):
        p = mm_path[j]
        floor = mm_floor[j]
        demand = mm_dem[j]
        capl = -1  # the link that caps the demand (-1: the flow's own demand)
        for e in range(k_off[p], k_off[p + 1]):
            link = k_links[e]
            if lk_cnt[link] == 1 and l_cap[link] < demand:  # a link only j crosses: a cap on j
                demand = l_cap[link]
                capl = link
        mm_dem[j] = demand
        mm_capl[j] = capl
        mm_bn[j] = capl
        mm_rate[j] = 0.0
        if k_off[p] == k_off[p + 1] or demand <= floor:
            mm_rate[j] = demand if k_off[p] == k_off[p + 1] else floor
            mm_state[j] = FROZEN
            for e in range(k_off[p], k_off[p + 1]):
                lk_base[k_links[e]] -= demand
            continue
        if floor > 0.0:
            mm_state[j] = FLOORED
            for e in range(k_off[p], k_off[p + 1]):
                lk_base[k_links[e]] -= floor
            ev_lev[ne] = floor
            ev_j[ne] = j
            ev_kind[ne] = 0
            ne += 1
        else:
            mm_state[j] = RIDING
            for e in range(k_off[p], k_off[p + 1]):
                lk_n[k_links[e]] += 1
        if demand < np.inf:
            ev_lev[ne] = demand
            ev_j[ne] = j
            ev_kind[ne] = 1
            ne += 1
    return ne


@compiled(inline="always")
def _order_levels(ne: int, ev_lev: FloatArray, ev_order: IntArray) -> None:
    """``ev_order[:ne]``: the indices of ``ev_lev[:ne]`` by level, ties by index (a stable sort). Small
    sets (most components) by insertion in place; larger ones by numpy's merge sort (it allocates)."""
    if ne > _INSERTION_MAX:
        ev_order[:ne] = np.argsort(ev_lev[:ne], kind="mergesort")
        return
    for i in range(ne):
        level = ev_lev[i]
        k = i
        while k > 0 and ev_lev[ev_order[k - 1]] > level:
            ev_order[k] = ev_order[k - 1]
            k -= 1
        ev_order[k] = i


@compiled(inline="always")
def _shared_links(nt: int, lk_touched: IntArray, lk_cnt: IntArray) -> int:
    """Keep in ``lk_touched[:return]`` the links two or more of the flows cross (the heap's links)."""
    kept = 0
    for i in range(nt):
        link = lk_touched[i]
        if lk_cnt[link] > 1:
            lk_touched[kept] = link
            kept += 1
    return kept


@compiled(inline="always")
def _true_key(link: int, level: float, lk_base: FloatArray, lk_n: IntArray) -> float:
    """The level at which ``link`` saturates with its current riders (``inf``: no riders)."""
    if lk_n[link] <= 0:
        return np.inf
    key = lk_base[link] / lk_n[link]
    return key if key > level else level


@compiled(inline="always")
def _heapify(
    nt: int,
    lk_touched: IntArray,
    lk_base: FloatArray,
    lk_n: IntArray,
    lk_key: FloatArray,
    lk_heap: IntArray,
    lk_pos: IntArray,
    lk_zero: IntArray,
    lk_id: IntArray,
) -> None:
    for i in range(nt):
        link = lk_touched[i]
        lk_key[link] = _true_key(link, 0.0, lk_base, lk_n)
        lk_heap[i] = link
        lk_pos[link] = i
    for i in range(nt // 2 - 1, -1, -1):
        heap.sift_down(lk_heap, lk_pos, nt, lk_key, lk_zero, lk_id, i)


@compiled(inline="always")
def _lowest_link(
    level: float,
    lk_base: FloatArray,
    lk_n: IntArray,
    lk_key: FloatArray,
    lk_heap: IntArray,
    lk_pos: IntArray,
    lk_size: IntArray,
    lk_zero: IntArray,
    lk_id: IntArray,
) -> float:
    """The lowest saturation level among heap links. Stored keys are lower bounds (riders freezing only
    raise a link's level), so stale tops are corrected and sunk until the top is exact."""
    while lk_size[0] > 0:
        top = lk_heap[0]
        exact = _true_key(top, level, lk_base, lk_n)
        if exact <= lk_key[top]:
            return float(lk_key[top])
        lk_key[top] = exact
        heap.sift_down(lk_heap, lk_pos, lk_size[0], lk_key, lk_zero, lk_id, 0)
    return np.inf


@compiled(inline="always")
def _solve_alone(
    mm_path: IntArray,
    mm_floor: FloatArray,
    mm_dem: FloatArray,
    k_off: IntArray,
    k_links: IntArray,
    l_cap: FloatArray,
    mm_rate: FloatArray,
    mm_state: IntArray,
    mm_bn: IntArray,
    mm_capl: IntArray,
) -> None:
    """One flow (the commonest component): what the general solve gives it, without its heaps. Every link
    caps it, so it sends its demand lowered to the smallest capacity on its path (never under its floor),
    bottlenecked on the first link of that smallest capacity below its demand."""
    p = mm_path[0]
    demand = mm_dem[0]
    capl = -1
    for e in range(k_off[p], k_off[p + 1]):
        link = k_links[e]
        if l_cap[link] < demand:
            demand = l_cap[link]
            capl = link
    mm_dem[0] = demand
    mm_capl[0] = capl
    mm_bn[0] = capl
    mm_rate[0] = demand if demand > mm_floor[0] else mm_floor[0]
    mm_state[0] = FROZEN


@compiled(inline="always")
def max_min(  # noqa: C901, PLR0912, PLR0915  (one event loop: split, it would pass 25 arrays per call)
    nc: int,
    mm_path: IntArray,
    mm_floor: FloatArray,
    mm_dem: FloatArray,
    k_off: IntArray,
    k_links: IntArray,
    l_cap: FloatArray,
    mm_rate: FloatArray,
    mm_state: IntArray,
    mm_bn: IntArray,
    mm_capl: IntArray,
    ev_lev: FloatArray,
    ev_j: IntArray,
    ev_kind: IntArray,
    lk_base: FloatArray,
    lk_n: IntArray,
    lk_key: FloatArray,
    lk_heap: IntArray,
    lk_pos: IntArray,
    lk_zero: IntArray,
    lk_id: IntArray,
    lk_touched: IntArray,
    lk_mark: IntArray,
    lk_cnt: IntArray,
    lk_start: IntArray,
    lk_fill: IntArray,
    lk_flows: IntArray,
    ev_order: IntArray,
    lk_size: IntArray,
    epoch: int,
) -> None:
    """Write into ``mm_rate[:nc]`` the max-min fair rates of flows ``j`` on paths ``mm_path[j]``, and into
    ``mm_bn[:nc]`` the link that froze each (its bottleneck; -1 for a flow at its demand or floor)."""
    if nc == 1:
        _solve_alone(mm_path, mm_floor, mm_dem, k_off, k_links, l_cap, mm_rate, mm_state, mm_bn, mm_capl)
        return
    nt = _touch_links(
        nc,
        mm_path,
        k_off,
        k_links,
        l_cap,
        lk_base,
        lk_n,
        lk_pos,
        lk_touched,
        lk_mark,
        lk_cnt,
        lk_start,
        lk_fill,
        lk_flows,
        epoch,
    )
    ne = _init_flows(
        nc,
        mm_path,
        mm_floor,
        mm_dem,
        k_off,
        k_links,
        l_cap,
        lk_cnt,
        mm_rate,
        mm_state,
        mm_bn,
        mm_capl,
        ev_lev,
        ev_j,
        ev_kind,
        lk_base,
        lk_n,
    )
    nt = _shared_links(nt, lk_touched, lk_cnt)
    _order_levels(ne, ev_lev, ev_order)
    lk_size[0] = nt
    _heapify(nt, lk_touched, lk_base, lk_n, lk_key, lk_heap, lk_pos, lk_zero, lk_id)
    level = 0.0
    ptr = 0
    while True:
        lev_flow = ev_lev[ev_order[ptr]] if ptr < ne else np.inf
        lev_link = _lowest_link(level, lk_base, lk_n, lk_key, lk_heap, lk_pos, lk_size, lk_zero, lk_id)
        if lev_link == np.inf and lev_flow == np.inf:
            break
        if lev_link <= lev_flow:
            link = lk_heap[0]
            heap.remove(lk_heap, lk_pos, lk_size, lk_key, lk_zero, lk_id, link)
            level = max(level, lev_link)
            for at in range(lk_start[link], lk_start[link] + lk_cnt[link]):
                j = lk_flows[at]
                if mm_state[j] == FLOORED:
                    mm_rate[j] = mm_floor[j]
                    mm_state[j] = FROZEN
                    mm_bn[j] = link
                elif mm_state[j] == RIDING:
                    _settle(j, level, mm_path, k_off, k_links, mm_rate, mm_state, lk_base, lk_n)
                    mm_bn[j] = link
            continue
        j = ev_j[ev_order[ptr]]
        kind = ev_kind[ev_order[ptr]]
        ptr += 1
        level = max(level, lev_flow)
        if mm_state[j] == FROZEN:
            continue
        if kind == 1:
            _settle(j, mm_dem[j], mm_path, k_off, k_links, mm_rate, mm_state, lk_base, lk_n)
            mm_bn[j] = mm_capl[j]
            continue
        mm_state[j] = RIDING  # its floor reached: the only change that can lower a link's level
        p = mm_path[j]
        for e in range(k_off[p], k_off[p + 1]):
            link = k_links[e]
            lk_base[link] += mm_floor[j]
            lk_n[link] += 1
            if lk_pos[link] >= 0:
                lk_key[link] = _true_key(link, level, lk_base, lk_n)
                heap.sift_up(lk_heap, lk_pos, lk_key, lk_zero, lk_id, lk_pos[link])
    for j in range(nc):
        if mm_state[j] == FLOORED:
            mm_rate[j] = mm_floor[j]
        elif mm_state[j] == RIDING:
            mm_rate[j] = level


@compiled(inline="always")
def _settle(
    j: int,
    rate: float,
    mm_path: IntArray,
    k_off: IntArray,
    k_links: IntArray,
    mm_rate: FloatArray,
    mm_state: IntArray,
    lk_base: FloatArray,
    lk_n: IntArray,
) -> None:
    """Freeze riding flow ``j`` at ``rate``: it leaves the riders of every link it crosses (their levels
    can only rise: the heap catches up lazily)."""
    mm_rate[j] = rate
    mm_state[j] = FROZEN
    p = mm_path[j]
    for e in range(k_off[p], k_off[p + 1]):
        lk_base[k_links[e]] -= rate
        lk_n[k_links[e]] -= 1


class Workspace:
    """Scratch arrays for :func:`max_min` sized for ``flows`` flows, ``links`` links, ``entries`` hops."""

    def __init__(self, flows: int, links: int, entries: int) -> None:
        self.mm_path = np.zeros(flows, dtype=np.int64)
        self.mm_floor = np.zeros(flows)
        self.mm_dem = np.zeros(flows)
        self.mm_rate = np.zeros(flows)
        self.mm_state = np.zeros(flows, dtype=np.int64)
        self.mm_bn = np.full(flows, -1, dtype=np.int64)
        self.mm_capl = np.full(flows, -1, dtype=np.int64)
        self.ev_lev = np.zeros(2 * flows)
        self.ev_j = np.zeros(2 * flows, dtype=np.int64)
        self.ev_kind = np.zeros(2 * flows, dtype=np.int64)
        self.lk_base = np.zeros(links)
        self.lk_n = np.zeros(links, dtype=np.int64)
        self.lk_key = np.zeros(links)
        self.lk_heap = np.zeros(links, dtype=np.int64)
        self.lk_pos = np.full(links, -1, dtype=np.int64)
        self.lk_zero = np.zeros(links, dtype=np.int64)
        self.lk_id = np.arange(links, dtype=np.int64)
        self.lk_touched = np.zeros(links, dtype=np.int64)
        self.lk_mark = np.full(links, -1, dtype=np.int64)
        self.lk_cnt = np.zeros(links, dtype=np.int64)
        self.lk_start = np.zeros(links, dtype=np.int64)
        self.lk_fill = np.zeros(links, dtype=np.int64)
        self.lk_flows = np.zeros(max(entries, 1), dtype=np.int64)
        self.ev_order = np.zeros(2 * flows, dtype=np.int64)
        self.lk_size = np.zeros(1, dtype=np.int64)


def max_min_rates(
    paths: list[list[int]],
    capacities_bps: npt.ArrayLike,
    floors_bps: npt.ArrayLike | None = None,
    demands_bps: npt.ArrayLike | None = None,
) -> FloatArray:
    """Max-min fair rates of flows over ``paths`` (lists of link indices): the kernel, callable alone."""
    return max_min_solve(paths, capacities_bps, floors_bps, demands_bps)[0]


def max_min_solve(
    paths: list[list[int]],
    capacities_bps: npt.ArrayLike,
    floors_bps: npt.ArrayLike | None = None,
    demands_bps: npt.ArrayLike | None = None,
) -> tuple[FloatArray, IntArray]:
    """(rates, bottleneck link of each flow or -1) of :func:`max_min_rates`."""
    cap = np.asarray(capacities_bps, dtype=np.float64)
    n = len(paths)
    floors = np.zeros(n) if floors_bps is None else np.asarray(floors_bps, dtype=np.float64)
    demands = np.full(n, np.inf) if demands_bps is None else np.asarray(demands_bps, dtype=np.float64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(p) for p in paths], out=offsets[1:])
    links = np.array([i for p in paths for i in p], dtype=np.int64)
    ws = Workspace(n, cap.shape[0], int(offsets[-1]))
    ws.mm_path[:] = np.arange(n)
    ws.mm_floor[:] = np.minimum(floors, demands)
    ws.mm_dem[:] = demands
    max_min(
        n,
        ws.mm_path,
        ws.mm_floor,
        ws.mm_dem,
        offsets,
        links,
        cap,
        ws.mm_rate,
        ws.mm_state,
        ws.mm_bn,
        ws.mm_capl,
        ws.ev_lev,
        ws.ev_j,
        ws.ev_kind,
        ws.lk_base,
        ws.lk_n,
        ws.lk_key,
        ws.lk_heap,
        ws.lk_pos,
        ws.lk_zero,
        ws.lk_id,
        ws.lk_touched,
        ws.lk_mark,
        ws.lk_cnt,
        ws.lk_start,
        ws.lk_fill,
        ws.lk_flows,
        ws.ev_order,
        ws.lk_size,
        0,
    )
    return ws.mm_rate[:n].copy(), ws.mm_bn[:n].copy()


drop_if_sources_changed(
    max_min, [Path(__file__).resolve().with_name(name) for name in ("maxmin.py", "heap.py", "jitcache.py")]
)
