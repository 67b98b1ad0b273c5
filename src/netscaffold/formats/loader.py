"""``load_topology`` / ``save_topology``: one entry point over every topology format.

Detection (``format="auto"``): the content first (a GraphML or SNDlib XML root, a JSON object, the
Rocketfuel header, a links-CSV header), then the suffix (``.graphml``, ``.json``, ``.txt``, ``.csv``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from netscaffold.errors import TopologyError
from netscaffold.formats.checks import DEFAULT_CAPACITY_BPS
from netscaffold.formats.graphml import read_graphml, to_graphml
from netscaffold.formats.linkcsv import is_link_csv, read_link_csv
from netscaffold.formats.netjson import read_netjson, to_netjson
from netscaffold.formats.rocketfuel import ROCKETFUEL_UNIT_BPS, is_rocketfuel, read_rocketfuel
from netscaffold.formats.sndlib import SNDLIB_NS, read_sndlib
from netscaffold.formats.source import decode_text, located, looks_binary, read_bytes
from netscaffold.model.topology import Topology

FORMATS = ("graphml", "sndlib", "netjson", "rocketfuel", "abilene-csv")
_SUFFIX_FORMATS = {".graphml": "graphml", ".json": "netjson", ".netjson": "netjson", ".txt": "rocketfuel",
                   ".csv": "abilene-csv"}  # fmt: skip
_XML_ROOT = re.compile(rb"<(?:[\w.-]+:)?(graphml|network)[\s>/]")
_SNIFF_BYTES = 4096


def _sniff_xml(head: bytes) -> str | None:
    match = _XML_ROOT.search(head)
    if match is None:
        return None
    if match.group(1) == b"graphml":
        return "graphml"
    return "sndlib" if SNDLIB_NS.encode() in head else None


def _sniff_content(head: bytes) -> str | None:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        return _sniff_xml(stripped)
    if stripped.startswith(b"{"):
        return "netjson"
    text = stripped.decode("utf-8", errors="replace")
    if is_rocketfuel(text):
        return "rocketfuel"
    return "abilene-csv" if is_link_csv(text) else None


def detect_format(path: Path, data: bytes) -> str:
    """The format of ``data`` (the bytes of ``path``) by content, else by suffix."""
    found = _sniff_content(data[:_SNIFF_BYTES]) or _SUFFIX_FORMATS.get(path.suffix.lower())
    if found is None:
        raise TopologyError(
            f"cannot tell the topology format; pass --format (one of {', '.join(FORMATS)})", file=str(path)
        )
    return found


def load_topology(
    path: Path | str,
    format: str = "auto",
    *,
    default_capacity_bps: float = DEFAULT_CAPACITY_BPS,
    rocketfuel_unit_bps: float = ROCKETFUEL_UNIT_BPS,
) -> Topology:
    """Read a topology file; every problem is a :class:`TopologyError` naming the file and the place."""
    path = Path(path)
    if format != "auto" and format not in FORMATS:
        raise TopologyError(f"unknown format {format!r} (one of auto, {', '.join(FORMATS)})")
    data = read_bytes(path, TopologyError)
    if looks_binary(data):
        raise TopologyError("binary file, not a topology format", file=str(path))
    chosen = detect_format(path, data) if format == "auto" else format
    readers: dict[str, Callable[[], Topology]] = {
        "graphml": lambda: read_graphml(data, path, default_capacity_bps=default_capacity_bps),
        "sndlib": lambda: read_sndlib(data, path, default_capacity_bps=default_capacity_bps),
        "netjson": lambda: read_netjson(
            decode_text(data, path), path, default_capacity_bps=default_capacity_bps
        ),
        "rocketfuel": lambda: read_rocketfuel(
            decode_text(data, path), path, bandwidth_unit_bps=rocketfuel_unit_bps
        ),
        "abilene-csv": lambda: read_link_csv(decode_text(data, path), path),
    }
    try:
        return readers[chosen]()
    except TopologyError as exc:
        raise located(exc, path) from None


OUTPUT_FORMATS = {".json": "netjson", ".netjson": "netjson", ".graphml": "graphml", ".xml": "graphml"}


def save_topology(topology: Topology, path: Path | str) -> str:
    """Write ``topology`` as NetJSON or GraphML, chosen by the suffix; returns the format written."""
    path = Path(path)
    chosen = OUTPUT_FORMATS.get(path.suffix.lower())
    if chosen is None:
        raise TopologyError(
            f"cannot tell the output format from the suffix {path.suffix!r} "
            f"(one of {', '.join(OUTPUT_FORMATS)})",
            file=str(path),
        )
    text = to_netjson(topology) if chosen == "netjson" else to_graphml(topology)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TopologyError(f"cannot write: {exc.strerror or exc}", file=str(path)) from None
    return chosen
