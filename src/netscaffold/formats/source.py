"""Reading input files with the checks every format shares: missing, unreadable, empty, binary.

Each reader names the file in its error; the error class is the caller's (a topology file raises
:class:`~netscaffold.errors.TopologyError`, a traffic file :class:`~netscaffold.errors.TrafficError`).
"""

from __future__ import annotations

import re
from pathlib import Path

from netscaffold.errors import Location, TopologyError, ValidationError

BINARY_PROBE_BYTES = 8192
_TEXT_CONTROL = set(range(32)) - {9, 10, 12, 13}


def read_bytes(path: Path, error: type[ValidationError] = TopologyError) -> bytes:
    """The file's bytes; a missing, unreadable or empty file raises ``error`` naming it."""
    where = str(path)
    if not path.exists():
        raise error("file does not exist", file=where)
    if path.is_dir():
        raise error("is a directory, not a file", file=where)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", file=where) from None
    if not data.strip():
        raise error("empty file", file=where)
    return data


def looks_binary(data: bytes) -> bool:
    """True when the head of ``data`` holds NUL bytes or many control characters (not text)."""
    head = data[:BINARY_PROBE_BYTES]
    if b"\x00" in head:
        return True
    controls = sum(1 for byte in head if byte in _TEXT_CONTROL)
    return controls > max(8, len(head) // 100)


def decode_text(data: bytes, path: Path, error: type[ValidationError] = TopologyError) -> str:
    """UTF-8 text of a file (a BOM is dropped); a binary or non-UTF-8 file raises ``error``."""
    if looks_binary(data):
        raise error("binary file, not a text format", file=str(path))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"not UTF-8 text (byte {exc.start})", file=str(path), line=line) from None


def read_text(path: Path, error: type[ValidationError] = TopologyError) -> str:
    return decode_text(read_bytes(path, error), path, error)


# Characters that would break "one line" (str.splitlines splits on all of these).
_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def escape_controls(text: str | None) -> str | None:
    """``text`` with control characters written as escapes (``\\n``), so it stays on one line."""
    if text is None:
        return None
    return _LINE_BREAKERS.sub(lambda match: repr(match.group())[1:-1], text)


def located(exc: ValidationError, path: Path) -> ValidationError:
    """``exc`` with the file filled in and any control character from the input escaped."""
    exc.reason = escape_controls(exc.reason) or ""
    where = exc.location
    exc.location = Location(
        file=where.file if where.file is not None else str(path),
        line=where.line,
        element=escape_controls(where.element),
        field=escape_controls(where.field),
    )
    return exc.at()
