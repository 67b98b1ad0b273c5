"""The event loop's memory layout changes nothing it computes.

A flow's links are copied beside its slot when it starts (``e_link``, ``s_nh``) and rebuilt when the
slot arrays grow; arrivals take their ECMP path from ``f_ecmp``, computed in batches ahead of them
(``kernel._ecmp_ahead``). These tests pin both: growing slots from the smallest size gives the same
figures as never growing (to rounding: slot numbers order some sums), and every reactive flow takes the
documented hash-chosen ECMP path.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.test_sim_components import mixed_flows, two_switches

from netscaffold.backends.sim import SimBackend, kernel, state
from netscaffold.backends.sim.routing import EcmpTable, flow_uniforms
from netscaffold.formats.generators import fat_tree
from netscaffold.model import Endpoint
from netscaffold.model.flows import FlowTable
from netscaffold.model.topology import Topology


def run_to_end(topology: Topology, flows: FlowTable, seed: int) -> tuple[SimBackend, dict[str, object]]:
    backend = SimBackend(topology, flows, seed=seed, tick_s=0.5)
    backend.advance(float(flows.start_s[-1]) + 60.0)
    result = backend.result()
    figures = {
        "completion_s": result.completion_s,
        "setup_delay_s": result.setup_delay_s,
        "path": result.path,
        "load_bps": result.load_bps,
        "sent_bytes": result.sent_bytes,
    }
    return backend, figures


@pytest.mark.parametrize("seed", [0, 1])
def test_growing_slots_relinks_the_copied_links(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    flows = mixed_flows(600, seed)
    _, reference = run_to_end(two_switches(), flows, seed)
    monkeypatch.setattr(state, "_INITIAL_SLOTS", 2)  # doubled many times, with flows active
    grown, figures = run_to_end(two_switches(), flows, seed)
    assert grown._state.slots > 2
    assert int(np.isfinite(figures["completion_s"]).sum()) > 500  # type: ignore[call-overload]
    # slot numbers (and so the order of some sums) differ after growth: equal up to rounding
    np.testing.assert_array_equal(figures["path"], reference["path"])
    for name in ("completion_s", "setup_delay_s", "load_bps", "sent_bytes"):
        np.testing.assert_allclose(figures[name], reference[name], rtol=1e-9, atol=1e-6, err_msg=name)


def test_reactive_flows_take_the_hash_chosen_ecmp_path() -> None:
    bare = fat_tree(4, 1e9)
    topology = bare.with_endpoints(
        Endpoint(f"e{i}", host, f"198.18.1.{i + 1}") for i, host in enumerate(bare.hosts())
    )
    rng = np.random.default_rng(3)
    n = 5 * kernel.ECMP_AHEAD + 7  # several batches and a partial last one
    names = tuple(sorted(topology.endpoints))
    src = rng.integers(0, len(names), n)
    dst = (src + rng.integers(1, len(names), n)) % len(names)
    flows = FlowTable.build(
        start_s=np.sort(rng.uniform(0.0, 2.0, n)),
        src=src,
        dst=dst,
        size_bytes=np.full(n, 1e5),
        endpoints=names,
    )
    backend, figures = run_to_end(topology, flows, seed=5)
    ecmp = EcmpTable(topology)
    pick = flow_uniforms(n, 5, 2)
    paths = figures["path"]
    assert isinstance(paths, np.ndarray)
    for i in range(n):
        options = ecmp.paths(topology.endpoints[names[src[i]]].host, topology.endpoints[names[dst[i]]].host)
        chosen = options[min(int(pick[i] * len(options)), len(options) - 1)]
        assert backend._paths.paths[int(paths[i])] == chosen, f"flow {i}"
    assert backend._state.counter(kernel.C_ECMP) == n
