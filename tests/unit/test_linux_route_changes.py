"""Folding the route changes a Linux backend holds for drain_routing_info (no kernel needed): each route's
last change, at its time, in apply order; bounded by the routes touched, not by the applies."""

from __future__ import annotations

from netscaffold.backends.linux.backend import fold_route_changes
from netscaffold.formats.render.objects import KernelRoute


def route(destination: str, gateway: str = "198.19.0.1") -> KernelRoute:
    return KernelRoute("r1", 254, destination, 200, ((gateway, 1),))


def test_fold_keeps_each_routes_last_change_in_apply_order() -> None:
    a, b, c = route("198.18.0.1/32"), route("198.18.0.2/32"), route("198.18.0.3/32")
    b2 = route("198.18.0.2/32", "198.19.0.9")  # b moved to another gateway
    changes = [
        (1.0, [a, b], []),
        (2.0, [c], [a]),  # a withdrawn
        (3.0, [b2], []),
        (4.0, [], []),
    ]
    folded = fold_route_changes(changes)
    assert folded == [(2.0, [c], [a]), (3.0, [b2], [])]
    assert fold_route_changes(folded) == folded  # folding again changes nothing


def test_fold_is_bounded_by_the_routes_touched() -> None:
    routes = [route(f"198.18.{i // 250}.{i % 250}/32") for i in range(40)]
    changes = [(float(t), routes[t % 40 :: 7], routes[(t + 3) % 40 :: 11]) for t in range(5_000)]
    folded = fold_route_changes(changes)
    assert sum(len(a) + len(w) for _, a, w in folded) == len({r.ident for _, a, w in changes for r in a + w})
    last_time: dict[tuple[str, ...], float] = {}
    for now, announced, withdrawn in changes:
        for r in announced + withdrawn:
            last_time[r.ident] = now
    for now, announced, withdrawn in folded:
        assert all(last_time[r.ident] == now for r in announced + withdrawn)
