"""``gc_paused``: what is built while the collector is off skips the young generations afterwards."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from netscaffold.backends.gc_pause import gc_paused


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector enabled for the test and left as it was found afterwards."""
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


class _Node:
    """A tracked object that can sit in a cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.other: object = None


@pytest.mark.usefixtures("collector")
def test_objects_built_while_paused_go_to_the_oldest_generation() -> None:
    gc.collect()  # every generation's count at 0: no collection of its own during the test
    with gc_paused():
        kept = [(_Node(), i) for i in range(1000)]
    counts = gc.get_count()
    gc.disable()  # look without collecting
    generation = [{id(obj) for obj in gc.get_objects(generation=g)} for g in range(3)]
    # no young collection scanned them on the way out (it would have moved them to generation 1)
    assert counts[0] < 100
    assert all(id(node) in generation[2] for node, _ in kept)
    assert not any(id(node) in generation[0] | generation[1] for node, _ in kept)
    assert gc.get_freeze_count() == 0  # nothing is left frozen


@pytest.mark.usefixtures("collector")
def test_a_cycle_made_while_paused_is_still_collected() -> None:
    with gc_paused():
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        watch = weakref.ref(a)
        del a, b
    assert watch() is not None  # a cycle: no reference count reaches 0
    gc.collect()
    assert watch() is None


@pytest.mark.usefixtures("collector")
def test_a_disabled_collector_stays_disabled_and_untouched() -> None:
    gc.disable()
    with gc_paused():
        young = _Node()
    assert not gc.isenabled()
    assert any(obj is young for obj in gc.get_objects(generation=0))


@pytest.mark.usefixtures("collector")
def test_objects_frozen_by_someone_else_stay_frozen() -> None:
    gc.freeze()  # as a pre-forking server does
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with gc_paused():
            young = _Node()
        assert gc.get_freeze_count() == frozen
        gc.disable()  # look without collecting
        assert not any(obj is young for obj in gc.get_objects(generation=2))  # not moved on: young as usual
    finally:
        gc.unfreeze()
