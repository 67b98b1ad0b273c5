"""``gc_paused``: Python's cyclic collector off while a backend builds many short-lived, acyclic objects."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection for the duration; the collector is left as it was found, also on error.

    None of what the callers build forms cycles, yet every full collection would traverse all of it: a
    Linux apply allocates tens of thousands of objects (the collections cost about a fifth of a large
    apply), and the emulator's ECMP table on a fat-tree k=8 with every host pair interns 236k paths (2.4 s
    to build with the collector on, 1.3-1.7 s with it off).

    On the way out, what was built meanwhile and is still alive goes straight to the oldest generation
    (``gc.freeze()`` then ``gc.unfreeze()``: two list splices) instead of being scanned by the first
    young collection after the pause, then by the middle one: an apply of 5,000 routes keeps some
    30,000 tracked objects (its rendered kernel objects, held for the next apply), and that first scan
    cost 9-25 ms of it. A full collection still scans them, as it would have after their promotion;
    a cycle made by another thread during the pause is freed by that full collection, not a young one.
    Skipped when something else froze objects (``gc.unfreeze()`` would thaw those too)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
