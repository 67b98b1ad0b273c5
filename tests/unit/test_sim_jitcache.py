"""The emulator's guard against numba cache entries compiled from older versions of inlined modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from netscaffold.backends.sim.jitcache import drop_if_sources_changed

_DEP = """
import numba as nb

@nb.njit(cache=True, inline="always")
def step(x):
    return x + {step}
"""
_MOD = """
import numba as nb
from jitdep import step

@nb.njit(cache=True)
def run(x):
    return step(x)
"""


def _load(folder: Path, name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_an_inlined_module_that_changed_drops_the_stale_entries(tmp_path: Path) -> None:
    (tmp_path / "jitdep.py").write_text(_DEP.format(step=1))
    (tmp_path / "jitmod.py").write_text(_MOD)
    sys.path.insert(0, str(tmp_path))
    try:
        _load(tmp_path, "jitdep")
        mod: object = _load(tmp_path, "jitmod")
        sources = [tmp_path / "jitmod.py", tmp_path / "jitdep.py"]
        run = mod.run  # type: ignore[attr-defined]
        assert not drop_if_sources_changed(run, sources)  # nothing cached yet: records the digest
        assert run(1) == 2
        entries = list((tmp_path / "__pycache__").glob("jitmod.*.nb[ic]"))
        assert entries
        assert not drop_if_sources_changed(run, sources)  # unchanged sources keep the entries
        assert all(entry.exists() for entry in entries)

        (tmp_path / "jitdep.py").write_text(_DEP.format(step=10))
        assert drop_if_sources_changed(run, sources)
        assert not any(entry.exists() for entry in entries)
        assert not drop_if_sources_changed(run, sources)
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("jitdep", "jitmod"):
            sys.modules.pop(name, None)


def test_the_kernel_records_its_inlined_sources() -> None:
    from netscaffold.backends.sim import kernel

    run: Any = kernel.run
    record = Path(run._cache._cache_path) / "kernel.sources"
    assert record.exists()
    assert not drop_if_sources_changed(
        run, [Path(kernel.__file__).with_name(name) for name in kernel.INLINED_SOURCES]
    )
