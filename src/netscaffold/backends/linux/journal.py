"""The apply journal: the kernel objects read before a plan, written before the first change and removed
after success or rollback. A journal left behind means the process died mid-apply; ``lab repair``
converges the kernel back to it."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from netscaffold.backends.linux.lab import STATE_DIR, journal_file
from netscaffold.errors import BackendError
from netscaffold.formats.render.objects import (
    KernelClass,
    KernelElement,
    KernelFilter,
    KernelObject,
    KernelRoute,
    KernelRule,
    fields_of,
)

_TYPES: dict[str, type[KernelObject]] = {
    cls.__name__: cls for cls in (KernelRoute, KernelRule, KernelElement, KernelClass, KernelFilter)
}


def encode(obj: KernelObject) -> dict[str, Any]:
    return {"type": type(obj).__name__, **fields_of(obj)}


def decode(data: dict[str, Any]) -> KernelObject:
    fields = dict(data)
    fields.pop("ident", None)  # derived from the other fields
    cls = _TYPES.get(str(fields.pop("type", "")))
    if cls is None:
        raise BackendError(f"journal holds an unknown object type in {data!r}", backend="linux")
    if cls is KernelRoute:
        fields["next_hops"] = tuple((str(via), int(weight)) for via, weight in fields["next_hops"])
    if cls is KernelElement:
        fields["key"] = tuple(fields["key"])
    return cls(**fields)


def write_journal(lab: str, before: dict[tuple[str, ...], KernelObject]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = journal_file(lab)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([encode(obj) for obj in before.values()]))
    tmp.replace(path)


def read_journal(lab: str) -> dict[tuple[str, ...], KernelObject] | None:
    try:
        raw = json.loads(journal_file(lab).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise BackendError(f"journal {journal_file(lab)} is corrupt: {exc}", backend="linux") from None
    objects = [decode(entry) for entry in raw]
    return {obj.ident: obj for obj in objects}


def clear_journal(lab: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        journal_file(lab).unlink()
