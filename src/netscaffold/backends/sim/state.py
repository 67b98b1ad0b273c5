"""The emulator's packed state: every array the kernel reads or writes, with growth and rebuilds.

Attribute names are the kernel's parameter names: calls are assembled from the kernel signatures, so a
renamed or reordered parameter fails loudly instead of silently passing the wrong array.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import numpy.typing as npt

from netscaffold.backends.sim import kernel
from netscaffold.backends.sim.costs import SetupCostProfile
from netscaffold.backends.sim.maxmin import Workspace
from netscaffold.backends.sim.readiness import Readiness
from netscaffold.backends.sim.routing import PathTable, flow_uniforms
from netscaffold.errors import ConfigError
from netscaffold.model.flows import FlowTable

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_RUN_PARAMS = tuple(inspect.signature(getattr(kernel.run, "py_func", kernel.run)).parameters)[1:]
_RATE_PARAMS = kernel.RATE_FIELDS
_INITIAL_SLOTS = 256
_INITIAL_ROWS = 64
# slot arrays and the value a new slot starts with
_SLOT_FIELDS: dict[str, tuple[type, float]] = {
    "s_state": (np.int64, kernel.FREE),
    "s_flow": (np.int64, -1),
    "s_path": (np.int64, -1),
    "s_rate": (np.float64, 0.0),
    "s_last": (np.float64, 0.0),
    "s_rem": (np.float64, 0.0),
    "s_group": (np.int64, -1),
    "a_list": (np.int64, -1),
    "a_pos": (np.int64, -1),
    "h_heap": (np.int64, -1),
    "h_pos": (np.int64, -1),
    "h_t": (np.float64, np.inf),
    "h_kind": (np.int64, 0),
    "w_comp": (np.int64, -1),
    "w_smark": (np.int64, -1),
    "s_bn": (np.int64, -1),
    "s_nh": (np.int64, 0),
}

_ROW_FIELDS = ("t_load_bps", "t_reserved_bps", "t_unused_bps")


class SimState:
    """Arrays for one emulation; see :mod:`netscaffold.backends.sim.kernel` for their meaning."""

    # set through setattr by the growth helpers (slots, rows) and by set_readiness
    s_state: IntArray
    s_flow: IntArray
    s_path: IntArray
    s_rate: FloatArray
    s_last: FloatArray
    s_rem: FloatArray
    s_group: IntArray
    a_list: IntArray
    a_pos: IntArray
    h_heap: IntArray
    h_pos: IntArray
    h_t: FloatArray
    h_kind: IntArray
    w_comp: IntArray
    w_smark: IntArray
    s_bn: IntArray
    s_nh: IntArray
    free: IntArray
    e_next: IntArray
    e_prev: IntArray
    e_link: IntArray
    mm_off: IntArray
    mm_links: IntArray
    t_end_s: FloatArray
    t_sent_bytes: FloatArray
    t_load_bps: FloatArray
    t_reserved_bps: FloatArray
    t_unused_bps: FloatArray
    g_path: IntArray
    g_rate: FloatArray
    g_n: IntArray
    g_sum: FloatArray
    g_last: FloatArray
    g_res_bits: FloatArray
    g_car_bits: FloatArray
    k_off: IntArray
    k_links: IntArray
    k_fw: IntArray

    def __init__(
        self,
        *,
        flows: FlowTable,
        f_pair: IntArray,
        f_mask: IntArray,
        n_pairs: int,
        paths: PathTable,
        ecmp: tuple[IntArray, IntArray],
        profile: SetupCostProfile,
        idle_timeout_s: float,
        tick_s: float,
        origin_s: float,
        seed: int,
        hybrid_fraction: float = 0.8,
    ) -> None:
        n = len(flows)
        sized = np.isnan(flows.duration_s)
        self.f_arr_s = np.ascontiguousarray(flows.start_s, dtype=np.float64)
        self.f_pair = f_pair
        self.f_mask = f_mask
        self.f_size_bits = np.where(sized, flows.size_bytes * 8.0, np.nan)
        self.f_dur_s = np.ascontiguousarray(flows.duration_s, dtype=np.float64)
        self.f_dem_bps = np.ascontiguousarray(flows.rate_bps, dtype=np.float64)
        self.f_u1 = flow_uniforms(n, seed, 1)
        self.f_u2 = flow_uniforms(n, seed, 2)
        self.f_ecmp = np.full(n, -1, dtype=np.int64)  # filled by the kernel ahead of the arrivals
        self.prof = np.array(profile.as_array(), dtype=np.float64)
        self.cnt = np.zeros(kernel.N_COUNTERS, dtype=np.int64)
        self.h_size = np.zeros(1, dtype=np.int64)
        self.clk = np.array([origin_s, tick_s, hybrid_fraction, idle_timeout_s], dtype=np.float64)
        self.p_ecmp_off, self.p_ecmp_path = ecmp
        self._pairs_init(n_pairs)
        self._outputs_init(n)
        self.paths = paths
        self.l_cap = paths.capacities_bps()
        self._links_init(self.l_cap.shape[0], origin_s)
        self.hops_h = 1
        self.slots = 0
        self.rows = 0
        self._grow_slots(_INITIAL_SLOTS)
        self._grow_rows(_INITIAL_ROWS)

    # -- allocation ------------------------------------------------------------------------------
    def _pairs_init(self, n_pairs: int) -> None:
        self.r_ready_s = np.full(n_pairs, np.inf)
        self.r_active = np.zeros(n_pairs, dtype=np.int64)
        self.r_idle_s = np.full(n_pairs, -np.inf)
        self.pair_acc = np.zeros(n_pairs)
        self.pair_last_bytes = np.zeros(n_pairs)

    def _outputs_init(self, n: int) -> None:
        self.o_delay_s = np.full(n, np.nan)
        self.o_done_s = np.full(n, np.nan)
        self.o_hit = np.zeros(n, dtype=np.bool_)
        self.o_reactive = np.zeros(n, dtype=np.bool_)
        self.o_path = np.full(n, -1, dtype=np.int64)

    def _links_init(self, n_links: int, origin_s: float) -> None:
        self.l_sum = np.zeros(n_links)
        self.l_last = np.full(n_links, origin_s)
        self.l_acc = np.zeros(n_links)
        self.l_res_acc = np.zeros(n_links)
        self.l_used_acc = np.zeros(n_links)
        self.l_head = np.full(n_links, -1, dtype=np.int64)
        self.w_lmark = np.full(n_links, -1, dtype=np.int64)
        self.w_cmark = np.full(n_links, -1, dtype=np.int64)
        self.w_links = np.zeros(n_links, dtype=np.int64)
        self.w_cap = np.zeros(n_links)  # capacity left to a component by the flows outside it
        self.w_out = np.zeros(n_links)
        self.w_new = np.zeros(n_links)
        self.l_bn = np.zeros(n_links, dtype=np.int64)  # flows whose bottleneck each link is

    def _grow_slots(self, new_slots: int) -> None:
        old = self.slots
        for name, (dtype, fill) in _SLOT_FIELDS.items():
            grown: npt.NDArray[Any] = np.full(new_slots, fill, dtype=dtype)
            if old:
                grown[:old] = getattr(self, name)
            setattr(self, name, grown)
        free = np.arange(new_slots - 1, old - 1, -1, dtype=np.int64)
        self.free = np.concatenate([self.free[: self.cnt[kernel.C_FREE]], free]) if old else free
        self.free = np.concatenate([self.free, np.zeros(new_slots - self.free.shape[0], dtype=np.int64)])
        self.cnt[kernel.C_FREE] += new_slots - old
        self.slots = new_slots
        self._size_links_and_workspace()

    def _size_links_and_workspace(self) -> None:
        """(Re)allocate the per-(slot, hop) link lists and the max-min workspace, then relink."""
        self.e_next = np.full(self.slots * self.hops_h, -1, dtype=np.int64)
        self.e_prev = np.full(self.slots * self.hops_h, -1, dtype=np.int64)
        self.e_link = np.full(self.slots * self.hops_h, -1, dtype=np.int64)  # the link of each list node
        self.mm_off = np.zeros(self.slots + 1, dtype=np.int64)  # the re-rated flows' links, packed
        self.mm_links = np.zeros(self.slots * self.hops_h, dtype=np.int64)
        ws = Workspace(self.slots, self.l_cap.shape[0], self.slots * self.hops_h)
        for name, value in vars(ws).items():
            setattr(self, name, value)
        if hasattr(self, "k_off") and self.cnt[kernel.C_ACTIVE] > 0:  # else every list is empty already
            kernel.relink(
                self.cnt,
                self.hops_h,
                self.s_path,
                self.a_list,
                self.k_off,
                self.k_links,
                self.e_next,
                self.e_prev,
                self.e_link,
                self.s_nh,
                self.l_head,
            )

    def _grow_rows(self, new_rows: int) -> None:
        n_links = self.l_cap.shape[0]
        for name in _ROW_FIELDS:
            grown = np.zeros((new_rows, n_links))
            if self.rows:
                grown[: self.rows] = getattr(self, name)
            setattr(self, name, grown)
        for name in ("t_end_s", "t_sent_bytes"):
            grown_1d = np.zeros(new_rows)
            if self.rows:
                grown_1d[: self.rows] = getattr(self, name)
            setattr(self, name, grown_1d)
        self.rows = new_rows

    # -- configuration changes -------------------------------------------------------------------
    def set_readiness(self, ready: Readiness, now_s: float) -> None:
        """Install new candidates and reservation groups; re-rate the active flows if floors changed."""
        had_groups = hasattr(self, "g_path") and bool(self.g_path.shape[0] > 0)
        if had_groups:  # (each kernel entry point called costs a cache load at start-up: only when needed)
            kernel.settle_groups(
                now_s,
                self.g_path,
                self.g_rate,
                self.g_sum,
                self.g_last,
                self.g_res_bits,
                self.g_car_bits,
                self.k_off,
                self.k_links,
                self.l_res_acc,
                self.l_used_acc,
            )
        self.p_cand_off = ready.cand_off
        self.p_cand_path = ready.cand_path
        self.p_cand_cum = ready.cand_cum
        self.p_cand_until = ready.cand_until
        self.p_grp_off = ready.grp_off
        self.p_grp_idx = ready.grp_idx
        self.g_path = ready.g_path
        self.g_rate = ready.g_rate
        n_groups = ready.g_path.shape[0]
        self.g_n = np.zeros(n_groups, dtype=np.int64)
        self.g_sum = np.zeros(n_groups)
        self.g_last = np.full(n_groups, now_s)
        self.g_res_bits = np.zeros(n_groups)  # this tick: reserved bits and bits carried by the flows
        self.g_car_bits = np.zeros(n_groups)
        self.repack_paths()
        if self.cnt[kernel.C_ACTIVE] == 0:
            return  # no flow to regroup or re-rate: the fresh group arrays are already right
        kernel.regroup(
            now_s,
            self.cnt,
            self.s_flow,
            self.s_path,
            self.s_rate,
            self.s_group,
            self.a_list,
            self.f_pair,
            self.p_grp_off,
            self.p_grp_idx,
            self.g_path,
            self.g_n,
            self.g_sum,
            self.g_last,
        )
        if had_groups or n_groups:
            kernel.recompute_all(now_s, self.cnt, self.clk, self.hops_h, self._rate_args())

    def repack_paths(self) -> None:
        """Refresh the packed path arrays after new paths were interned (a longer one re-strides)."""
        self.k_off, self.k_links, self.k_fw = self.paths.packed()
        hops = max(1, self.paths.max_hops())
        if hops > kernel.MAX_STRIDE:
            raise ConfigError(
                f"a path of {hops} hops: the emulator takes at most {kernel.MAX_STRIDE}", field="paths"
            )
        if hops > self.hops_h:
            self.hops_h = 1 << (hops - 1).bit_length()  # a power of two (kernel.LOG2_STRIDE)
            self._size_links_and_workspace()

    # -- running ---------------------------------------------------------------------------------
    def _rate_args(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _RATE_PARAMS)

    def run_until(self, end_s: float) -> None:
        """Process events before ``end_s`` and ticks up to it, growing arrays as the kernel asks."""
        while True:
            args = [self._rate_args() if name == "rs" else getattr(self, name) for name in _RUN_PARAMS]
            run: Any = kernel.run
            status = run(end_s, *args)
            if status == kernel.DONE:
                return
            if status == kernel.GROW_SLOTS:
                self._grow_slots(self.slots * 2)
            else:
                self._grow_rows(self.rows * 2)

    def counter(self, index: int) -> int:
        return int(self.cnt[index])
