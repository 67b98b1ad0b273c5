"""Keep numba's disk cache honest about the modules a compiled function inlines.

Numba invalidates a cached function when the file that defines it changes, not when a module whose
functions it inlines does: the event loop in ``kernel.py`` inlines ``maxmin.py``, ``heap.py`` and
``intrinsics.py``, so an edit (or an upgrade) of those alone would silently run the old compiled code.
:func:`drop_if_sources_changed` records a digest of all of them beside the cache and, when it differs,
removes that module's cache entries before anything loads them (numba then compiles afresh).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numba as nb

F = TypeVar("F", bound=Callable[..., Any])


def compiled(**options: Any) -> Callable[[F], F]:
    """``numba.njit`` as the emulator compiles every function: cached on disk, and with numpy's error model
    (a division by zero gives inf / nan as numpy does instead of raising ``ZeroDivisionError``), which
    drops the zero test numba puts before each division and modulo; the kernel divides by a count, rate
    or capacity it has checked or that cannot be zero, and no run of the test suite or the benchmarks
    divided by zero under the raising model. Same results bit for bit (checked on the benchmark's three
    loads); 5-15% more events per second on the median at ~30 active flows (docs/benchmarks.md)."""
    return nb.njit(cache=True, error_model="numpy", **options)  # type: ignore[no-any-return]


def drop_if_sources_changed(dispatcher: Any, sources: list[Path]) -> bool:
    """Remove the cached entries of ``dispatcher``'s module when ``sources`` changed since they were
    recorded. Returns whether anything was dropped. A cache folder that cannot be written is left alone
    (numba then does not cache there either)."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    module_file = Path(dispatcher.py_func.__code__.co_filename)
    cache_dir = Path(dispatcher._cache._cache_path)  # numba has no public accessor
    record = cache_dir / f"{module_file.stem}.sources"
    try:
        if record.read_text() == digest.hexdigest():
            return False
    except OSError:
        pass  # no record yet: the entries (if any) are of unknown provenance
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        stale = [p for p in cache_dir.glob(f"{module_file.stem}.*") if p.suffix in {".nbi", ".nbc"}]
        for entry in stale:
            entry.unlink(missing_ok=True)
        record.write_text(digest.hexdigest())
    except OSError:
        return False
    return bool(stale)
