"""The envelope every JSON output carries: schema version, package version, seed, input fingerprints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from netscaffold import __version__

SCHEMA_VERSION = 1


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprints(paths: Iterable[Path]) -> dict[str, str]:
    """sha256 of each input file (a directory contributes each file in it, sorted)."""
    out: dict[str, str] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                out[str(child)] = sha256_of(child)
        elif path.is_file():
            out[str(path)] = sha256_of(path)
    return out


def envelope(
    payload: Mapping[str, Any],
    *,
    seed: int | None = None,
    inputs: Iterable[Path] = (),
) -> dict[str, Any]:
    head: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "version": __version__}
    if seed is not None:
        head["seed"] = seed
    prints = fingerprints(inputs)
    if prints:
        head["inputs"] = prints
    return {**head, **payload}


def to_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, indent=2, sort_keys=False, default=_default)


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
