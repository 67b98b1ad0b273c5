"""The emulator's event loop, compiled whole by numba over packed arrays.

Events, in the documented tie-break order at equal times: a tick boundary (sample), then flow completions,
then flow starts (after a setup delay), both by flow index, then flow arrivals in row order. Rates are
recomputed exactly at every start and completion, for the component of flows the change can reach, or
for all active flows when that component grows past ``hybrid_fraction`` of them (a full recomputation is
then cheaper; 0 recomputes all flows at every event).

The component follows bottlenecks, not mere link sharing: every flow records the link that froze it in
the last solve (``s_bn``; -1 at its demand or floor) and ``l_bn`` counts them per link. A starting flow,
or the flows bottlenecked on a finished flow's links, seed it; a flow joins when its bottleneck is on a
member's path. Members are solved under the capacity that the others leave them; an outsider that the
solve shows must give way (it sends more than a member bottlenecked on a link they share, or the
members' floors do not fit beside it) joins, and the component is solved again. The result is the
max-min allocation of all flows (each flow at its demand or floor, or with a saturated link where no
flow that could give way sends more), to rounding (``_EPS``); tests compare it with full recomputation.

Memory: the loop keeps what it reads per event close together. A flow's links are copied beside its
slot when it starts (``e_link[s * hops_h + h]``, ``s_nh[s]`` hops, next to its list nodes), so the
component, residual, solve and settling read a few cache lines instead of the table of every interned
path (``k_off`` / ``k_links``: megabytes on a fat-tree k=8, reached at random); the solve gets its members'
links packed (``mm_off`` / ``mm_links``). Arrivals take their ECMP path from ``f_ecmp``, which
:func:`_ecmp_ahead` fills a batch ahead, one pass per link of the pair -> offsets -> path -> links chain,
so that those cache misses overlap instead of stalling one event each.

All state lives in arrays owned by :class:`netscaffold.backends.sim.state.SimState`; the parameter names of
:func:`run` are its attribute names, so the call is built from the signature. ``run`` returns a status:
``DONE`` (reached ``end_s``), ``GROW_SLOTS`` or ``GROW_ROWS`` (resize and call again: nothing was lost).
"""

# ruff: noqa: PLR0917  (numba nopython functions take their packed arrays positionally: no
# keyword-only parameters there)

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.backends.sim import heap
from netscaffold.backends.sim.intrinsics import borrowed, prefetch
from netscaffold.backends.sim.jitcache import compiled, drop_if_sources_changed
from netscaffold.backends.sim.maxmin import max_min

IA = npt.NDArray[np.int64]
FA = npt.NDArray[np.float64]
BA = npt.NDArray[np.bool_]

DONE = 0
GROW_SLOTS = 1
GROW_ROWS = 2

# counters (int64 array ``cnt``)
C_NEXT_ARRIVAL = 0
C_ACTIVE = 1
C_FREE = 2
C_EVENTS = 3
C_ROWS = 4
C_EPOCH = 5
C_TICK = 6
C_HEAP = 7
C_PARTIAL = 8
C_FULL = 9
C_STARTED = 10
C_DONE = 11
C_SOLVED = 12  # flows re-rated, summed over recomputations (partial and full)
C_ROUNDS = 13  # partial solves, counting the re-solves after a component grew
C_ECMP = 14  # flows whose ECMP path ``f_ecmp`` is computed (ahead of the arrivals, in batches)
N_COUNTERS = 15
# clock values (float64 array ``clk``)
K_ORIGIN = 0
K_TICK_S = 1
K_HYBRID = 2
K_IDLE_TIMEOUT = 3
N_CLOCK = 4
# kinds of scheduled slot events (second heap key)
EV_COMPLETE = 0
EV_START = 1
# setup-cost profile array ``prof``
P_RTT, P_COMPUTE, P_HOP, P_FIREWALL, P_ADMISSION = 0, 1, 2, 3, 4


FREE = 0
PENDING = 1
ACTIVE = 2


@compiled(inline="always")
def _link_insert(
    s: int,
    hops_h: int,
    path: int,
    k_off: IA,
    k_links: IA,
    e_next: IA,
    e_prev: IA,
    e_link: IA,
    s_nh: IA,
    l_head: IA,
) -> None:
    """Put slot ``s`` on the lists of its path's links, copying the links beside the list nodes
    (``e_link[s * hops_h + h]``, ``s_nh[s]`` hops): the loop then reads a flow's links from its slot,
    a few cache lines, instead of from the path table of every interned path (megabytes, random)."""
    first_hop = k_off[path]
    n_hops = k_off[path + 1] - first_hop
    s_nh[s] = n_hops
    for h in range(n_hops):
        link = k_links[first_hop + h]
        node = s * hops_h + h
        e_link[node] = link
        first = l_head[link]
        e_prev[node] = -1
        e_next[node] = first
        if first >= 0:
            e_prev[first] = node
        l_head[link] = node


@compiled(inline="always")
def _link_remove(s: int, hops_h: int, e_next: IA, e_prev: IA, e_link: IA, s_nh: IA, l_head: IA) -> None:
    for h in range(s_nh[s]):
        node = s * hops_h + h
        link = e_link[node]
        before = e_prev[node]
        after = e_next[node]
        if before >= 0:
            e_next[before] = after
        else:
            l_head[link] = after
        if after >= 0:
            e_prev[after] = before


@compiled(inline="always")
def _flush_link(link: int, t: float, l_sum: FA, l_last: FA, l_acc: FA) -> None:
    dt = t - l_last[link]
    if dt > 0.0:
        l_acc[link] += l_sum[link] * dt
    l_last[link] = t


@compiled(inline="always")
def _flush_group(g: int, t: float, g_rate: FA, g_sum: FA, g_last: FA, g_res_bits: FA, g_car_bits: FA) -> None:
    """Book group ``g``'s reserved bits and the bits its flows carried, up to ``t`` (in this tick)."""
    dt = t - g_last[g]
    if dt > 0.0:
        g_res_bits[g] += g_rate[g] * dt
        g_car_bits[g] += g_sum[g] * dt
    g_last[g] = t


@compiled()
def _close_groups(
    g_path: IA,
    g_res_bits: FA,
    g_car_bits: FA,
    k_off: IA,
    k_links: IA,
    l_res_acc: FA,
    l_used_acc: FA,
) -> None:
    """Book every group's tick onto its links: used = min(reserved bits, carried bits), then reset.

    A rate reservation is judged by the volume it carried over the tick (a token bucket of one tick):
    short flows that together carry the reserved volume use it fully, however briefly each one sends."""
    for g in range(g_path.shape[0]):
        reserved = g_res_bits[g]
        used = min(reserved, g_car_bits[g])
        p = g_path[g]
        for e in range(k_off[p], k_off[p + 1]):
            l_res_acc[k_links[e]] += reserved
            l_used_acc[k_links[e]] += used
        g_res_bits[g] = 0.0
        g_car_bits[g] = 0.0


# Relative slack for comparing rates computed by different solves (rounding, never a modelling choice).
_EPS = 1e-12
MAX_STRIDE = 1024  # the longest path the emulator takes, in hops


# log2 of the hop stride, which is a power of two (state.py): a slot's list nodes are s * hops_h + hop,
# and the node -> slot step of every list walk is then a shift rather than a 64-bit division
LOG2_STRIDE = np.array([max(0, (h - 1).bit_length()) for h in range(MAX_STRIDE + 1)], dtype=np.int64)


@compiled(inline="always")
def _slot_of(node: int, hops_h: int) -> int:
    return int(node >> LOG2_STRIDE[hops_h])


@compiled(inline="always")
def _take_bottlenecked(
    link: int, n: int, sepoch: int, hops_h: int, s_bn: IA, e_next: IA, l_head: IA, w_comp: IA, w_smark: IA
) -> int:
    """Add the flows whose bottleneck is ``link`` and that are not in the component yet; returns the size."""
    node = l_head[link]
    while node >= 0:
        other = _slot_of(node, hops_h)
        if s_bn[other] == link and w_smark[other] != sepoch:
            w_smark[other] = sepoch
            w_comp[n] = other
            n += 1
        node = e_next[node]
    return n


@compiled(inline="always")
def _component(
    i: int,
    n: int,
    sepoch: int,
    limit: int,
    hops_h: int,
    s_nh: IA,
    e_link: IA,
    s_bn: IA,
    l_bn: IA,
    e_next: IA,
    l_head: IA,
    w_comp: IA,
    w_smark: IA,
    w_lmark: IA,
) -> int:
    """Grow the component ``w_comp[:n]`` (members marked ``sepoch``), scanning from member ``i``: a flow
    whose bottleneck link a member crosses joins. Returns the size, or -1 past ``limit`` (then all active
    flows are recomputed).

    Why that suffices: a flow keeps its max-min rate while its bottleneck (a saturated link where no
    flow that could give way sends more) is unchanged, and only members change rates. The members are
    solved under the capacity the others leave; when that solve makes a member's bottleneck a link where
    an outsider sends more, the outsider joins and the component is solved again
    (:func:`_outsiders_to_yield`), so the result is the max-min allocation of all flows."""
    while i < n:
        member = w_comp[i]
        i += 1
        for h in range(s_nh[member]):
            link = e_link[member * hops_h + h]
            if w_lmark[link] == sepoch or l_bn[link] == 0:
                continue
            w_lmark[link] = sepoch
            n = _take_bottlenecked(link, n, sepoch, hops_h, s_bn, e_next, l_head, w_comp, w_smark)
            if n > limit:
                return -1
    return n


@compiled(inline="always")
def _floor_of(s: int, s_flow: IA, s_group: IA, f_dem_bps: FA, g_rate: FA, g_n: IA) -> float:
    """The guaranteed rate of the flow in slot ``s``: its share of its reservation, at most its demand."""
    g = s_group[s]
    return min(f_dem_bps[s_flow[s]], g_rate[g] / g_n[g]) if g >= 0 else 0.0


@compiled(inline="always")
def _residual(
    n: int,
    sepoch: int,
    lepoch: int,
    hops_h: int,
    s_rate: FA,
    mm_off: IA,
    mm_links: IA,
    l_cap: FA,
    e_next: IA,
    l_head: IA,
    mm_floor: FA,
    w_smark: IA,
    w_cmark: IA,
    w_links: IA,
    w_cap: FA,
    w_out: FA,
    w_new: FA,
) -> int:
    """For every link the component crosses (listed in ``w_links``; returns their count): the rate of
    the flows outside the component (``w_out``: they keep it), the capacity left to the component
    (``w_cap``) and the sum of the members' floors (in ``w_new``, until the solve). Member ``j``'s links
    are ``mm_links[mm_off[j]:mm_off[j + 1]]``."""
    nl = 0
    for j in range(n):
        for e in range(mm_off[j], mm_off[j + 1]):
            link = mm_links[e]
            if w_cmark[link] != lepoch:
                w_cmark[link] = lepoch
                w_links[nl] = link
                nl += 1
                outside = 0.0
                node = l_head[link]
                while node >= 0:
                    other = _slot_of(node, hops_h)
                    if w_smark[other] != sepoch:
                        outside += s_rate[other]
                    node = e_next[node]
                w_out[link] = outside
                w_cap[link] = max(l_cap[link] - outside, 0.0)
                w_new[link] = 0.0
            w_new[link] += mm_floor[j]
    return nl


@compiled(inline="always")
def _outsiders_to_yield(
    n: int,
    nl: int,
    sepoch: int,
    hops_h: int,
    after_solve: bool,
    s_flow: IA,
    s_rate: FA,
    s_group: IA,
    f_dem_bps: FA,
    g_rate: FA,
    g_n: IA,
    e_next: IA,
    l_head: IA,
    mm_rate: FA,
    mm_bn: IA,
    w_comp: IA,
    w_smark: IA,
    w_links: IA,
    w_cap: FA,
    w_out: FA,
    w_new: FA,
) -> int:
    """Add to the component the outsiders that must give way; returns the new size (``n``: none).

    Before the solve (``after_solve`` false, ``w_new`` holding the members' floors): on a link where the
    floors exceed what outsiders leave, every outsider above its own floor. After it: on a link that is
    a member's bottleneck, every outsider above its floor that sends more than that member (the member
    could take from it: not max-min). ``w_new`` then holds the lowest such member rate per link."""
    if after_solve:
        for i in range(nl):
            w_new[w_links[i]] = np.inf
        for j in range(n):
            if mm_bn[j] >= 0:
                w_new[mm_bn[j]] = min(w_new[mm_bn[j]], mm_rate[j])
    grown = n
    for i in range(nl):
        link = w_links[i]
        if w_out[link] <= 0.0:
            continue
        if after_solve:
            if w_new[link] == np.inf:
                continue  # no member's bottleneck: nobody here has to give way
            bar = w_new[link] * (1.0 + _EPS)
        elif w_new[link] > w_cap[link] * (1.0 + _EPS):
            bar = 0.0
        else:
            continue
        node = l_head[link]
        while node >= 0:
            other = _slot_of(node, hops_h)
            rate = s_rate[other]
            if (
                w_smark[other] != sepoch
                and rate > bar
                and rate > _floor_of(other, s_flow, s_group, f_dem_bps, g_rate, g_n) * (1.0 + _EPS)
            ):
                w_smark[other] = sepoch
                w_comp[grown] = other
                grown += 1
            node = e_next[node]
    return grown


@compiled(inline="always")
def _set_bottlenecks(nc: int, w_comp: IA, mm_bn: IA, s_bn: IA, l_bn: IA) -> None:
    """Record each re-rated flow's bottleneck link (-1: at its demand or floor) and count them per link."""
    for j in range(nc):
        s = w_comp[j]
        old = s_bn[s]
        new = mm_bn[j]
        if old != new:
            if old >= 0:
                l_bn[old] -= 1
            if new >= 0:
                l_bn[new] += 1
            s_bn[s] = new


@compiled(inline="always")
def _apply_rates(
    nc: int,
    t: float,
    w_comp: IA,
    mm_rate: FA,
    s_flow: IA,
    s_rate: FA,
    s_last: FA,
    s_rem: FA,
    s_group: IA,
    f_pair: IA,
    f_size_bits: FA,
    mm_off: IA,
    mm_links: IA,
    l_sum: FA,
    l_last: FA,
    l_acc: FA,
    g_rate: FA,
    g_sum: FA,
    g_last: FA,
    g_res_bits: FA,
    g_car_bits: FA,
    pair_acc: FA,
    h_heap: IA,
    h_pos: IA,
    h_t: FA,
    h_kind: IA,
    h_size: IA,
) -> None:
    """Settle the bytes sent at the old rates up to ``t``, then switch flows to their new rates."""
    for j in range(nc):
        s = w_comp[j]
        new = mm_rate[j]
        old = s_rate[s]
        if new == old:
            continue
        flow = s_flow[s]
        dt = t - s_last[s]
        if dt > 0.0 and old > 0.0:
            s_rem[s] -= old * dt
            pair_acc[f_pair[flow]] += old * dt
        s_last[s] = t
        for e in range(mm_off[j], mm_off[j + 1]):
            _flush_link(mm_links[e], t, l_sum, l_last, l_acc)
            l_sum[mm_links[e]] += new - old
        g = s_group[s]
        if g >= 0:
            _flush_group(g, t, g_rate, g_sum, g_last, g_res_bits, g_car_bits)
            g_sum[g] += new - old
        s_rate[s] = new
        if not np.isnan(f_size_bits[flow]):
            if s_rem[s] <= 0.0:
                h_t[s] = t
            elif new > 0.0:
                h_t[s] = t + s_rem[s] / new
            else:
                h_t[s] = np.inf
            heap.rekey(h_heap, h_pos, h_size, h_t, h_kind, s_flow, s)


# the arrays _recompute works on, packed in this order into one tuple ``rs`` (SimState builds it by name)
RATE_FIELDS = (
    "s_flow",
    "s_rate",
    "s_last",
    "s_rem",
    "s_group",
    "f_pair",
    "f_size_bits",
    "f_dem_bps",
    "l_cap",
    "e_next",
    "l_head",
    "a_list",
    "w_comp",
    "w_smark",
    "w_lmark",
    "l_sum",
    "l_last",
    "l_acc",
    "g_rate",
    "g_n",
    "g_sum",
    "g_last",
    "g_res_bits",
    "g_car_bits",
    "pair_acc",
    "h_heap",
    "h_pos",
    "h_t",
    "h_kind",
    "h_size",
    "mm_path",
    "mm_floor",
    "mm_dem",
    "mm_rate",
    "mm_state",
    "ev_lev",
    "ev_j",
    "ev_kind",
    "lk_base",
    "lk_n",
    "lk_key",
    "lk_heap",
    "lk_pos",
    "lk_zero",
    "lk_id",
    "lk_touched",
    "lk_mark",
    "lk_cnt",
    "lk_start",
    "lk_fill",
    "lk_flows",
    "ev_order",
    "lk_size",
    "w_cmark",
    "w_links",
    "w_cap",
    "w_out",
    "w_new",
    "mm_bn",
    "mm_capl",
    "s_bn",
    "l_bn",
    "s_nh",
    "e_link",
    "mm_off",
    "mm_links",
)
RateState = tuple[Any, ...]
Packed = tuple[Any, ...]  # arrays packed for an inlined helper (more than 30 arguments are a *args call)


@compiled(inline="always")
def _pack_members(
    nc: int,
    hops_h: int,
    w_comp: IA,
    s_nh: IA,
    e_link: IA,
    s_flow: IA,
    s_group: IA,
    f_dem_bps: FA,
    g_rate: FA,
    g_n: IA,
    mm_path: IA,
    mm_dem: FA,
    mm_floor: FA,
    mm_off: IA,
    mm_links: IA,
) -> None:
    """The solve's inputs for members ``w_comp[:nc]``: demand, floor and links, packed (CSR: member ``j``
    crosses ``mm_links[mm_off[j]:mm_off[j + 1]]``, ``mm_path[j] = j``) from their slots' link copies."""
    mm_off[0] = 0
    for j in range(nc):
        s = w_comp[j]
        at = mm_off[j]
        for h in range(s_nh[s]):
            mm_links[at + h] = e_link[s * hops_h + h]
        mm_off[j + 1] = at + s_nh[s]
        mm_path[j] = j
        mm_dem[j] = f_dem_bps[s_flow[s]]
        mm_floor[j] = _floor_of(s, s_flow, s_group, f_dem_bps, g_rate, g_n)


@compiled(inline="always")
def _recompute(nseed: int, t: float, cnt: IA, clk: FA, hops_h: int, rs: RateState) -> None:
    """New max-min rates for the component of the seeds ``w_comp[:nseed]``; ``nseed < 0``: all flows."""
    (
        s_flow,
        s_rate,
        s_last,
        s_rem,
        s_group,
        f_pair,
        f_size_bits,
        f_dem_bps,
        l_cap,
        e_next,
        l_head,
        a_list,
        w_comp,
        w_smark,
        w_lmark,
        l_sum,
        l_last,
        l_acc,
        g_rate,
        g_n,
        g_sum,
        g_last,
        g_res_bits,
        g_car_bits,
        pair_acc,
        h_heap,
        h_pos,
        h_t,
        h_kind,
        h_size,
        mm_path,
        mm_floor,
        mm_dem,
        mm_rate,
        mm_state,
        ev_lev,
        ev_j,
        ev_kind,
        lk_base,
        lk_n,
        lk_key,
        lk_heap,
        lk_pos,
        lk_zero,
        lk_id,
        lk_touched,
        lk_mark,
        lk_cnt,
        lk_start,
        lk_fill,
        lk_flows,
        ev_order,
        lk_size,
        w_cmark,
        w_links,
        w_cap,
        w_out,
        w_new,
        mm_bn,
        mm_capl,
        s_bn,
        l_bn,
        s_nh,
        e_link,
        mm_off,
        mm_links,
    ) = rs
    sepoch = cnt[C_EPOCH]  # members of the component are marked with it (by _start / _complete)
    limit = max(8, int(clk[K_HYBRID] * cnt[C_ACTIVE]))
    full = nseed < 0 or clk[K_HYBRID] <= 0.0
    nc = nseed
    scanned = 0
    while True:  # solve the component; grow it and solve again while outsiders must give way
        if not full:
            grown = _component(
                scanned, nc, sepoch, limit, hops_h, s_nh, e_link, s_bn, l_bn, e_next, l_head, w_comp,
                w_smark, w_lmark,
            )  # fmt: skip
            full = grown < 0
            nc = grown
        if full:
            nc = cnt[C_ACTIVE]
            w_comp[:nc] = a_list[:nc]
        if nc == 0:
            return
        _pack_members(
            nc, hops_h, w_comp, s_nh, e_link, s_flow, s_group, f_dem_bps, g_rate, g_n, mm_path, mm_dem,
            mm_floor, mm_off, mm_links,
        )  # fmt: skip
        cap = l_cap
        nl = 0
        if not full:
            cnt[C_EPOCH] += 1
            nl = _residual(
                nc, sepoch, cnt[C_EPOCH], hops_h, s_rate, mm_off, mm_links, l_cap, e_next, l_head, mm_floor,
                w_smark, w_cmark, w_links, w_cap, w_out, w_new,
            )  # fmt: skip
            cap = w_cap
            grown = _outsiders_to_yield(
                nc, nl, sepoch, hops_h, False, s_flow, s_rate, s_group, f_dem_bps, g_rate, g_n, e_next,
                l_head, mm_rate, mm_bn, w_comp, w_smark, w_links, w_cap, w_out, w_new,
            )  # fmt: skip
            if grown > nc:  # the members' floors do not fit beside the outsiders: widen first
                full = grown > limit
                scanned = nc
                nc = grown
                continue
        cnt[C_EPOCH] += 1
        max_min(
            nc,
            mm_path,
            mm_floor,
            mm_dem,
            mm_off,
            mm_links,
            cap,
            mm_rate,
            mm_state,
            mm_bn,
            mm_capl,
            ev_lev,
            ev_j,
            ev_kind,
            lk_base,
            lk_n,
            lk_key,
            lk_heap,
            lk_pos,
            lk_zero,
            lk_id,
            lk_touched,
            lk_mark,
            lk_cnt,
            lk_start,
            lk_fill,
            lk_flows,
            ev_order,
            lk_size,
            cnt[C_EPOCH],
        )
        cnt[C_SOLVED] += nc
        if full:
            cnt[C_FULL] += 1
            break
        cnt[C_ROUNDS] += 1
        grown = _outsiders_to_yield(
            nc, nl, sepoch, hops_h, True, s_flow, s_rate, s_group, f_dem_bps, g_rate, g_n, e_next, l_head,
            mm_rate, mm_bn, w_comp, w_smark, w_links, w_cap, w_out, w_new,
        )  # fmt: skip
        if grown == nc:
            cnt[C_PARTIAL] += 1
            break
        full = grown > limit
        scanned = nc
        nc = grown
    _set_bottlenecks(nc, w_comp, mm_bn, s_bn, l_bn)
    _apply_rates(
        nc,
        t,
        w_comp,
        mm_rate,
        s_flow,
        s_rate,
        s_last,
        s_rem,
        s_group,
        f_pair,
        f_size_bits,
        mm_off,
        mm_links,
        l_sum,
        l_last,
        l_acc,
        g_rate,
        g_sum,
        g_last,
        g_res_bits,
        g_car_bits,
        pair_acc,
        h_heap,
        h_pos,
        h_t,
        h_kind,
        h_size,
    )


@compiled(inline="always")
def _start(s: int, t: float, cnt: IA, hops_h: int, ss: Packed) -> None:
    """Flow in slot ``s`` starts sending at ``t``: it joins its links and its reservation group."""
    (
        s_state,
        s_flow,
        s_path,
        s_rate,
        s_last,
        s_rem,
        s_group,
        a_list,
        a_pos,
        f_pair,
        f_size_bits,
        f_dur_s,
        k_off,
        k_links,
        e_next,
        e_prev,
        e_link,
        s_nh,
        l_head,
        p_grp_off,
        p_grp_idx,
        g_path,
        g_rate,
        g_n,
        g_sum,
        g_last,
        g_res_bits,
        g_car_bits,
        h_heap,
        h_pos,
        h_t,
        h_kind,
        h_size,
        w_comp,
        w_smark,
    ) = ss
    if s_state[s] == PENDING:
        heap.remove(h_heap, h_pos, h_size, h_t, h_kind, s_flow, s)
    flow = s_flow[s]
    p = s_path[s]
    pair = f_pair[flow]
    s_state[s] = ACTIVE
    s_rate[s] = 0.0
    s_last[s] = t
    s_rem[s] = f_size_bits[flow]
    group = -1
    for at in range(p_grp_off[pair], p_grp_off[pair + 1]):
        if g_path[p_grp_idx[at]] == p:
            group = p_grp_idx[at]
            break
    if group >= 0:
        _flush_group(group, t, g_rate, g_sum, g_last, g_res_bits, g_car_bits)
        g_n[group] += 1
    s_group[s] = group
    _link_insert(s, hops_h, p, k_off, k_links, e_next, e_prev, e_link, s_nh, l_head)
    a_pos[s] = cnt[C_ACTIVE]
    a_list[cnt[C_ACTIVE]] = s
    cnt[C_ACTIVE] += 1
    h_kind[s] = EV_COMPLETE
    h_t[s] = t + f_dur_s[flow] if np.isnan(f_size_bits[flow]) else np.inf
    heap.push(h_heap, h_pos, h_size, h_t, h_kind, s_flow, s)
    cnt[C_STARTED] += 1
    cnt[C_EPOCH] += 1
    w_comp[0] = s
    w_smark[s] = cnt[C_EPOCH]


@compiled(inline="always")
def _complete(s: int, t: float, cnt: IA, hops_h: int, cs: Packed) -> int:
    """Flow in slot ``s`` finishes at ``t``; the flows that shared its links get new rates."""
    (
        s_state,
        s_flow,
        s_rate,
        s_last,
        s_rem,
        s_group,
        a_list,
        a_pos,
        f_pair,
        f_size_bits,
        s_nh,
        e_link,
        e_next,
        e_prev,
        l_head,
        g_rate,
        g_n,
        g_sum,
        g_last,
        g_res_bits,
        g_car_bits,
        l_sum,
        l_last,
        l_acc,
        pair_acc,
        h_heap,
        h_pos,
        h_t,
        h_kind,
        h_size,
        w_comp,
        w_smark,
        o_done_s,
        o_hit,
        r_active,
        r_idle_s,
        free,
        s_bn,
        l_bn,
    ) = cs
    heap.remove(h_heap, h_pos, h_size, h_t, h_kind, s_flow, s)
    flow = s_flow[s]
    pair = f_pair[flow]
    rate = s_rate[s]
    if np.isnan(f_size_bits[flow]):
        sent = rate * (t - s_last[s]) if rate > 0.0 and t > s_last[s] else 0.0
    else:
        sent = max(s_rem[s], 0.0)  # exactly the bytes still owed: conservation by construction
    pair_acc[pair] += sent
    base = s * hops_h
    n_hops = s_nh[s]
    for h in range(n_hops):
        _flush_link(e_link[base + h], t, l_sum, l_last, l_acc)
        l_sum[e_link[base + h]] -= rate
    g = s_group[s]
    if g >= 0:
        _flush_group(g, t, g_rate, g_sum, g_last, g_res_bits, g_car_bits)
        g_sum[g] -= rate
        g_n[g] -= 1
    _link_remove(s, hops_h, e_next, e_prev, e_link, s_nh, l_head)
    if s_bn[s] >= 0:
        l_bn[s_bn[s]] -= 1
        s_bn[s] = -1
    last = a_list[cnt[C_ACTIVE] - 1]
    a_list[a_pos[s]] = last
    a_pos[last] = a_pos[s]
    cnt[C_ACTIVE] -= 1
    o_done_s[flow] = t
    if not o_hit[flow]:
        r_active[pair] -= 1
        if r_active[pair] == 0:
            r_idle_s[pair] = t
    s_state[s] = FREE
    s_rate[s] = 0.0
    free[cnt[C_FREE]] = s
    cnt[C_FREE] += 1
    cnt[C_EVENTS] += 1
    cnt[C_DONE] += 1
    cnt[C_EPOCH] += 1
    n = 0  # the flows bottlenecked on its links may speed up: the others keep their bottlenecks
    for h in range(n_hops):  # (the slot's link copies outlive its removal from the lists)
        link = e_link[base + h]
        if l_bn[link] > 0:
            n = _take_bottlenecked(link, n, cnt[C_EPOCH], hops_h, s_bn, e_next, l_head, w_comp, w_smark)
    return n


@compiled(inline="always")
def _choose_path(
    i: int,
    t: float,
    pair: int,
    f_mask: IA,
    f_u1: FA,
    f_ecmp: IA,
    p_cand_off: IA,
    p_cand_path: IA,
    p_cand_cum: FA,
    p_cand_until: FA,
) -> tuple[int, bool]:
    """(path, hit): the scaffolded path drawn from the routes' weights when it is complete at ``t``,
    otherwise the hash-chosen ECMP path the reactive controller installs (``f_ecmp``, computed ahead
    by :func:`_ecmp_ahead`)."""
    c0 = p_cand_off[pair]
    c1 = p_cand_off[pair + 1]
    if c1 > c0:
        c = c0
        while c < c1 - 1 and f_u1[i] >= p_cand_cum[c]:
            c += 1
        if p_cand_path[c] >= 0 and t < p_cand_until[c, f_mask[i]]:
            return p_cand_path[c], True
    return f_ecmp[i], False


@compiled(inline="always")
def _reactive_delay(
    t: float,
    pair: int,
    path: int,
    mask: int,
    clk: FA,
    prof: FA,
    k_off: IA,
    k_fw: IA,
    r_ready_s: FA,
    r_active: IA,
    r_idle_s: FA,
) -> tuple[float, bool]:
    """(delay, paid): reuse the pair's reactive entries while installed, else pay the profile's cost."""
    ready = r_ready_s[pair]
    if ready < np.inf and (r_active[pair] > 0 or t - r_idle_s[pair] < clk[K_IDLE_TIMEOUT]):
        return max(0.0, ready - t), False
    delay = (
        prof[P_RTT]
        + prof[P_COMPUTE]
        + prof[P_HOP] * (k_off[path + 1] - k_off[path])
        + prof[P_FIREWALL] * k_fw[path]
        + (prof[P_ADMISSION] if mask != 0 else 0.0)
    )
    r_ready_s[pair] = t + delay
    return delay, True


@compiled()
def _tick(
    tb: float,
    cnt: IA,
    clk: FA,
    hops_h: int,
    s_flow: IA,
    s_nh: IA,
    e_link: IA,
    s_rate: FA,
    s_last: FA,
    s_rem: FA,
    s_group: IA,
    a_list: IA,
    f_pair: IA,
    k_off: IA,
    k_links: IA,
    l_sum: FA,
    l_last: FA,
    l_acc: FA,
    g_path: IA,
    g_rate: FA,
    g_sum: FA,
    g_last: FA,
    g_res_bits: FA,
    g_car_bits: FA,
    l_res_acc: FA,
    l_used_acc: FA,
    pair_acc: FA,
    pair_last_bytes: FA,
    t_end_s: FA,
    t_load_bps: FA,
    t_reserved_bps: FA,
    t_unused_bps: FA,
    t_sent_bytes: FA,
) -> None:
    """Close the tick ending at ``tb``: settle every flow, link and group, write one row, reset."""
    for a in range(cnt[C_ACTIVE]):
        s = a_list[a]
        dt = tb - s_last[s]
        if dt > 0.0 and s_rate[s] > 0.0:
            s_rem[s] -= s_rate[s] * dt
            pair_acc[f_pair[s_flow[s]]] += s_rate[s] * dt
        s_last[s] = tb
    for link in range(l_sum.shape[0]):
        _flush_link(link, tb, l_sum, l_last, l_acc)
    for g in range(g_path.shape[0]):
        _flush_group(g, tb, g_rate, g_sum, g_last, g_res_bits, g_car_bits)
    _close_groups(g_path, g_res_bits, g_car_bits, k_off, k_links, l_res_acc, l_used_acc)
    row = cnt[C_ROWS]
    tick_s = clk[K_TICK_S]
    t_end_s[row] = tb
    t_load_bps[row, :] = l_acc / tick_s
    t_reserved_bps[row, :] = l_res_acc / tick_s
    t_unused_bps[row, :] = np.maximum(l_res_acc - l_used_acc, 0.0) / tick_s
    t_sent_bytes[row] = pair_acc.sum() / 8.0
    for pair in range(pair_acc.shape[0]):  # (in place: no temporary per tick)
        pair_last_bytes[pair] = pair_acc[pair] / 8.0
    pair_acc[:] = 0.0
    l_acc[:] = 0.0
    l_res_acc[:] = 0.0
    l_used_acc[:] = 0.0
    cnt[C_ROWS] += 1
    cnt[C_TICK] += 1
    # re-sum the running rates exactly, so that incremental rounding never accumulates across ticks
    l_sum[:] = 0.0
    g_sum[:] = 0.0
    for a in range(cnt[C_ACTIVE]):
        s = a_list[a]
        for h in range(s_nh[s]):
            l_sum[e_link[s * hops_h + h]] += s_rate[s]
        if s_group[s] >= 0:
            g_sum[s_group[s]] += s_rate[s]


@compiled(inline="always")
def _arrive(i: int, t_arr: float, cnt: IA, clk: FA, ar: Packed) -> int:
    """Flow ``i`` arrives: choose its path, charge the setup delay, give it a slot. Returns the slot when
    the flow starts at once (the caller starts it), -1 when it waits for its setup (a start event)."""
    (
        f_mask,
        f_pair,
        f_u1,
        f_ecmp,
        free,
        h_heap,
        h_kind,
        h_pos,
        h_size,
        h_t,
        k_fw,
        k_off,
        o_delay_s,
        o_hit,
        o_path,
        o_reactive,
        p_cand_cum,
        p_cand_off,
        p_cand_path,
        p_cand_until,
        prof,
        r_active,
        r_idle_s,
        r_ready_s,
        s_flow,
        s_path,
        s_state,
    ) = ar
    pair = f_pair[i]
    path, hit = _choose_path(
        i,
        t_arr,
        pair,
        f_mask,
        f_u1,
        f_ecmp,
        p_cand_off,
        p_cand_path,
        p_cand_cum,
        p_cand_until,
    )
    delay = 0.0
    paid = False
    if not hit:
        delay, paid = _reactive_delay(
            t_arr, pair, path, f_mask[i], clk, prof, k_off, k_fw, r_ready_s, r_active, r_idle_s
        )
        r_active[pair] += 1
    o_delay_s[i] = delay
    o_hit[i] = hit
    o_reactive[i] = paid
    o_path[i] = path
    cnt[C_NEXT_ARRIVAL] += 1
    cnt[C_EVENTS] += 1
    cnt[C_FREE] -= 1
    s = free[cnt[C_FREE]]
    s_flow[s] = i
    s_path[s] = path
    if delay > 0.0:
        s_state[s] = PENDING
        h_t[s] = t_arr + delay
        h_kind[s] = EV_START
        heap.push(h_heap, h_pos, h_size, h_t, h_kind, s_flow, s)
        return -1
    return int(s)


ECMP_AHEAD = 32  # arrivals whose ECMP path one batch of _ecmp_ahead computes


@compiled(inline="always")
def _ecmp_ahead(i: int, n_flows: int, cnt: IA, eb: Packed) -> None:
    """Compute the ECMP path of the next ``ECMP_AHEAD`` arrivals into ``f_ecmp`` and prefetch what
    their arrivals and starts will read (their pair's entries, the path's offsets, firewall count and
    links).

    Per flow that is a chain of dependent loads into tables of megabytes reached at random (pair ->
    ECMP offsets -> path id -> path offsets -> links). Done one flow per event, each load waits for the
    one before; here each link of the chain is one pass over the batch, whose loads are independent of
    each other, so the CPU overlaps their cache misses. Called before every arrival ``i``; computes a
    batch when fewer than ``ECMP_AHEAD // 2`` arrivals from ``i`` on are computed (so a batch is ready
    before it is needed)."""
    (
        f_pair,
        f_u2,
        f_ecmp,
        p_ecmp_off,
        p_ecmp_path,
        k_off,
        k_fw,
        k_links,
        p_cand_off,
        p_grp_off,
        r_ready_s,
        r_active,
        r_idle_s,
        pair_acc,
    ) = eb
    begin = cnt[C_ECMP]
    if begin - i >= ECMP_AHEAD // 2 or begin >= n_flows:
        return
    end = min(n_flows, begin + ECMP_AHEAD)
    for j in range(begin, end):  # each pass issues independent loads whose lines the one before asked for
        pair = f_pair[j]
        prefetch(p_ecmp_off, pair)
        prefetch(p_ecmp_off, pair + 1)
    for j in range(begin, end):
        pair = f_pair[j]
        e0 = p_ecmp_off[pair]
        n = p_ecmp_off[pair + 1] - e0
        f_ecmp[j] = e0 + min(int(f_u2[j] * n), n - 1)  # (its entry in p_ecmp_path, until the next pass)
        prefetch(p_ecmp_path, f_ecmp[j])
        prefetch(p_cand_off, pair)
        prefetch(p_grp_off, pair)
        prefetch(r_ready_s, pair)
        prefetch(r_active, pair)
        prefetch(r_idle_s, pair)
        prefetch(pair_acc, pair)
    for j in range(begin, end):
        path = p_ecmp_path[f_ecmp[j]]
        f_ecmp[j] = path
        prefetch(k_off, path)
        prefetch(k_off, path + 1)
        prefetch(k_fw, path)
    for j in range(begin, end):
        path = f_ecmp[j]
        prefetch(k_links, k_off[path])
        prefetch(k_links, k_off[path + 1] - 1)  # (a path's links may straddle two cache lines)
    cnt[C_ECMP] = end


@compiled()
def run(
    end_s: float,
    cnt: IA,
    clk: FA,
    hops_h: int,
    rs: RateState,
    prof: FA,
    f_arr_s: FA,
    f_pair: IA,
    f_mask: IA,
    f_size_bits: FA,
    f_dur_s: FA,
    f_u1: FA,
    f_u2: FA,
    f_ecmp: IA,
    p_cand_off: IA,
    p_cand_path: IA,
    p_cand_cum: FA,
    p_cand_until: FA,
    p_ecmp_off: IA,
    p_ecmp_path: IA,
    p_grp_off: IA,
    p_grp_idx: IA,
    k_off: IA,
    k_links: IA,
    k_fw: IA,
    s_state: IA,
    s_flow: IA,
    s_path: IA,
    s_rate: FA,
    s_last: FA,
    s_rem: FA,
    s_group: IA,
    a_list: IA,
    a_pos: IA,
    free: IA,
    e_next: IA,
    e_prev: IA,
    e_link: IA,
    s_nh: IA,
    l_head: IA,
    l_sum: FA,
    l_last: FA,
    l_acc: FA,
    g_path: IA,
    g_rate: FA,
    g_n: IA,
    g_sum: FA,
    g_last: FA,
    g_res_bits: FA,
    g_car_bits: FA,
    l_res_acc: FA,
    l_used_acc: FA,
    pair_acc: FA,
    pair_last_bytes: FA,
    h_heap: IA,
    h_pos: IA,
    h_t: FA,
    h_kind: IA,
    h_size: IA,
    w_comp: IA,
    w_smark: IA,
    s_bn: IA,
    l_bn: IA,
    o_delay_s: FA,
    o_done_s: FA,
    o_hit: BA,
    o_reactive: BA,
    o_path: IA,
    r_ready_s: FA,
    r_active: IA,
    r_idle_s: FA,
    t_end_s: FA,
    t_load_bps: FA,
    t_reserved_bps: FA,
    t_unused_bps: FA,
    t_sent_bytes: FA,
) -> int:
    """Process every event before ``end_s`` and every tick boundary at or before it."""
    # unowned views for the loop: numba's atomic reference counting of every array bound per event was
    # about half the time (see intrinsics.py); the arguments stay alive for the whole call
    cnt, clk, rs = borrowed((cnt, clk, rs))
    h_heap, h_t, h_size, f_arr_s, t_end_s = borrowed((h_heap, h_t, h_size, f_arr_s, t_end_s))
    ss = (
        s_state,
        s_flow,
        s_path,
        s_rate,
        s_last,
        s_rem,
        s_group,
        a_list,
        a_pos,
        f_pair,
        f_size_bits,
        f_dur_s,
        k_off,
        k_links,
        e_next,
        e_prev,
        e_link,
        s_nh,
        l_head,
        p_grp_off,
        p_grp_idx,
        g_path,
        g_rate,
        g_n,
        g_sum,
        g_last,
        g_res_bits,
        g_car_bits,
        h_heap,
        h_pos,
        h_t,
        h_kind,
        h_size,
        w_comp,
        w_smark,
    )  # _start's arrays, in its unpacking order
    cs = (
        s_state,
        s_flow,
        s_rate,
        s_last,
        s_rem,
        s_group,
        a_list,
        a_pos,
        f_pair,
        f_size_bits,
        s_nh,
        e_link,
        e_next,
        e_prev,
        l_head,
        g_rate,
        g_n,
        g_sum,
        g_last,
        g_res_bits,
        g_car_bits,
        l_sum,
        l_last,
        l_acc,
        pair_acc,
        h_heap,
        h_pos,
        h_t,
        h_kind,
        h_size,
        w_comp,
        w_smark,
        o_done_s,
        o_hit,
        r_active,
        r_idle_s,
        free,
        s_bn,
        l_bn,
    )  # _complete's
    ar = (
        f_mask,
        f_pair,
        f_u1,
        f_ecmp,
        free,
        h_heap,
        h_kind,
        h_pos,
        h_size,
        h_t,
        k_fw,
        k_off,
        o_delay_s,
        o_hit,
        o_path,
        o_reactive,
        p_cand_cum,
        p_cand_off,
        p_cand_path,
        p_cand_until,
        prof,
        r_active,
        r_idle_s,
        r_ready_s,
        s_flow,
        s_path,
        s_state,
    )  # _arrive's
    eb = (
        f_pair,
        f_u2,
        f_ecmp,
        p_ecmp_off,
        p_ecmp_path,
        k_off,
        k_fw,
        k_links,
        p_cand_off,
        p_grp_off,
        r_ready_s,
        r_active,
        r_idle_s,
        pair_acc,
    )  # _ecmp_ahead's
    ss, cs, ar, eb = borrowed((ss, cs, ar, eb))
    n_flows = f_arr_s.shape[0]
    while True:
        next_tick = clk[K_ORIGIN] + (cnt[C_TICK] + 1) * clk[K_TICK_S]
        t_heap = h_t[h_heap[0]] if h_size[0] > 0 else np.inf
        i = cnt[C_NEXT_ARRIVAL]
        t_arr = f_arr_s[i] if i < n_flows else np.inf
        t_event = min(t_heap, t_arr)
        if next_tick <= t_event and next_tick <= end_s:
            if cnt[C_ROWS] >= t_end_s.shape[0]:
                return GROW_ROWS
            _tick(
                next_tick,
                cnt,
                clk,
                hops_h,
                s_flow,
                s_nh,
                e_link,
                s_rate,
                s_last,
                s_rem,
                s_group,
                a_list,
                f_pair,
                k_off,
                k_links,
                l_sum,
                l_last,
                l_acc,
                g_path,
                g_rate,
                g_sum,
                g_last,
                g_res_bits,
                g_car_bits,
                l_res_acc,
                l_used_acc,
                pair_acc,
                pair_last_bytes,
                t_end_s,
                t_load_bps,
                t_reserved_bps,
                t_unused_bps,
                t_sent_bytes,
            )
            continue
        if t_event >= end_s:
            return DONE
        seeds = 0  # flows whose component is re-rated after this event (one inlined recomputation)
        if t_heap <= t_arr:
            s = h_heap[0]
            if h_kind[s] == EV_COMPLETE:
                seeds = _complete(s, t_heap, cnt, hops_h, cs)
            else:
                _start(s, t_heap, cnt, hops_h, ss)
                seeds = 1
        elif cnt[C_FREE] == 0:
            return GROW_SLOTS
        else:
            _ecmp_ahead(i, n_flows, cnt, eb)
            s = _arrive(i, t_arr, cnt, clk, ar)
            if s < 0:  # it starts after its setup delay: its links are wanted then
                prefetch(k_links, k_off[o_path[i]])
            else:
                _start(s, t_arr, cnt, hops_h, ss)
                seeds = 1
        if seeds > 0:
            _recompute(seeds, t_event, cnt, clk, hops_h, rs)


@compiled()
def recompute_all(t: float, cnt: IA, clk: FA, hops_h: int, rs: RateState) -> None:
    """Re-rate every active flow at ``t`` (after floors or paths changed under them)."""
    cnt, clk, rs = borrowed((cnt, clk, rs))
    _recompute(-1, t, cnt, clk, hops_h, rs)


@compiled()
def settle_groups(
    t: float,
    g_path: IA,
    g_rate: FA,
    g_sum: FA,
    g_last: FA,
    g_res_bits: FA,
    g_car_bits: FA,
    k_off: IA,
    k_links: IA,
    l_res_acc: FA,
    l_used_acc: FA,
) -> None:
    """Book every reservation group's part of the current tick up to ``t`` (before the groups change):
    the part is judged on its own, as :func:`_close_groups` judges a whole tick."""
    for g in range(g_path.shape[0]):
        _flush_group(g, t, g_rate, g_sum, g_last, g_res_bits, g_car_bits)
    _close_groups(g_path, g_res_bits, g_car_bits, k_off, k_links, l_res_acc, l_used_acc)


@compiled()
def regroup(
    t: float,
    cnt: IA,
    s_flow: IA,
    s_path: IA,
    s_rate: FA,
    s_group: IA,
    a_list: IA,
    f_pair: IA,
    p_grp_off: IA,
    p_grp_idx: IA,
    g_path: IA,
    g_n: IA,
    g_sum: FA,
    g_last: FA,
) -> None:
    """Assign active flows to the (new) reservation groups of their pair and path."""
    g_n[:] = 0
    g_sum[:] = 0.0
    g_last[:] = t
    for a in range(cnt[C_ACTIVE]):
        s = a_list[a]
        pair = f_pair[s_flow[s]]
        s_group[s] = -1
        for at in range(p_grp_off[pair], p_grp_off[pair + 1]):
            if g_path[p_grp_idx[at]] == s_path[s]:
                s_group[s] = p_grp_idx[at]
                g_n[s_group[s]] += 1
                g_sum[s_group[s]] += s_rate[s]
                break


@compiled()
def relink(
    cnt: IA,
    hops_h: int,
    s_path: IA,
    a_list: IA,
    k_off: IA,
    k_links: IA,
    e_next: IA,
    e_prev: IA,
    e_link: IA,
    s_nh: IA,
    l_head: IA,
) -> None:
    """Rebuild the per-link flow lists (after the hop stride ``hops_h`` or the slot count changed)."""
    l_head[:] = -1
    for a in range(cnt[C_ACTIVE]):
        s = a_list[a]
        _link_insert(s, hops_h, s_path[s], k_off, k_links, e_next, e_prev, e_link, s_nh, l_head)


# numba tracks this file only; the loop also inlines these, and jitcache.py holds the compile options,
# which numba's cache key does not include (jitcache.py)
INLINED_SOURCES = ("kernel.py", "maxmin.py", "heap.py", "intrinsics.py", "jitcache.py")
drop_if_sources_changed(run, [Path(__file__).resolve().with_name(name) for name in INLINED_SOURCES])
