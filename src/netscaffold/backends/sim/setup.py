"""Checks and packing done once per emulation: endpoints, pairs, QoS masks, ECMP candidates."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from netscaffold.backends.gc_pause import gc_paused
from netscaffold.backends.sim.routing import EcmpTable, PathTable
from netscaffold.errors import TopologyError, TrafficError
from netscaffold.model.flows import FlowTable
from netscaffold.model.qos import QosPolicy, QosProfile
from netscaffold.model.topology import Endpoint, Topology

IntArray = npt.NDArray[np.int64]
EndpointPair = tuple[Endpoint, Endpoint]


def resolve_endpoints(topology: Topology, flows: FlowTable) -> list[Endpoint]:
    """The topology's endpoint for every name of the flow table; an unknown one names its first flow."""
    out: list[Endpoint] = []
    for index, name in enumerate(flows.endpoints):
        endpoint = topology.endpoints.get(name)
        if endpoint is None:
            used = np.flatnonzero((flows.src == index) | (flows.dst == index))
            where = f"flow {int(used[0])}" if used.size else f"endpoint {name!r}"
            column = "src" if used.size and flows.src[used[0]] == index else "dst"
            raise TrafficError(
                f"unknown endpoint {name!r}: not attached to topology {topology.name!r}",
                element=where,
                field=column if used.size else None,
            )
        out.append(endpoint)
    return out


def index_pairs(flows: FlowTable, endpoints: list[Endpoint]) -> tuple[IntArray, list[EndpointPair]]:
    """(pair index per flow, the pairs in order of first appearance by (src, dst) index)."""
    n_endpoints = max(len(endpoints), 1)
    code = flows.src.astype(np.int64) * n_endpoints + flows.dst.astype(np.int64)
    unique, inverse = np.unique(code, return_inverse=True)
    pairs = [(endpoints[int(c // n_endpoints)], endpoints[int(c % n_endpoints)]) for c in unique]
    return inverse.astype(np.int64).reshape(-1), pairs


def qos_masks(flows: FlowTable, endpoints: list[Endpoint], policy: QosPolicy) -> IntArray:
    """Per flow: bit 0 = its QoS needs a reservation, bit 1 = a circuit. A flow's ``qos`` name picks the
    policy profile of that name; an unnamed or unknown class falls back to the pair's app lookup."""
    by_name: dict[str, QosProfile] = {policy.default.name: policy.default}
    by_name.update({p.name: p for p in policy.per_app.values()})
    by_name.update({p.name: p for p in policy.per_pair.values()})

    def mask(profile: QosProfile) -> int:
        return int(profile.needs_reservation) | (int(profile.needs_circuit) << 1)

    named = np.array([mask(by_name[n]) if n in by_name else -1 for n in flows.qos_names], dtype=np.int64)
    out = named[flows.qos] if len(flows) else np.zeros(0, dtype=np.int64)
    for row in np.flatnonzero(out < 0):
        src = endpoints[int(flows.src[row])]
        dst = endpoints[int(flows.dst[row])]
        out[row] = mask(policy.lookup(src.app_name, dst.app_name))
    return out.astype(np.int64)


def ecmp_candidates(
    topology: Topology, pairs: list[EndpointPair], paths: PathTable, max_ecmp: int = 16
) -> tuple[IntArray, IntArray]:
    """CSR (offsets, path ids) of every pair's least-cost paths between its endpoints' nodes."""
    with gc_paused():
        return _ecmp_candidates(EcmpTable(topology, max_ecmp), pairs, paths)


def _ecmp_candidates(
    table: EcmpTable, pairs: list[EndpointPair], paths: PathTable
) -> tuple[IntArray, IntArray]:
    by_nodes: dict[tuple[str, str], list[int]] = {}
    offsets = [0]
    flat: list[int] = []
    for src, dst in pairs:
        key = (src.host, dst.host)
        ids = by_nodes.get(key)
        if ids is None:
            try:
                found = table.paths(src.host, dst.host)
            except TopologyError as exc:
                raise TopologyError(exc.reason, element=f"pair {src.id}->{dst.id}") from None
            ids = by_nodes[key] = [paths.intern(p) for p in found]
        flat.extend(ids)
        offsets.append(len(flat))
    return np.array(offsets, dtype=np.int64), np.array(flat, dtype=np.int64)
