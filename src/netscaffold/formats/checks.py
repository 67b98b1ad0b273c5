"""Checks and conversions shared by the topology readers, raising errors that say where."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from netscaffold.errors import TopologyError

DEFAULT_CAPACITY_BPS = 1e9
"""Capacity assumed for a link whose file gives none (flagged ``capacity_defaulted``)."""

FIBRE_SPEED_M_PER_S = 2.0e8
"""Signal speed in optical fibre (about two thirds of c): the basis of delays derived from coordinates."""
EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True, slots=True)
class Where:
    """A place in an input file, for error messages."""

    file: str
    line: int | None = None
    element: str | None = None

    def error(self, reason: str, field: str | None = None) -> TopologyError:
        return TopologyError(reason, file=self.file, line=self.line, element=self.element, field=field)


def parse_float(text: object, where: Where, field: str) -> float:
    """A finite float from text or a number; anything else raises naming the field."""
    if isinstance(text, bool):
        raise where.error(f"expected a number, got {text!r}", field)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise where.error(f"expected a number, got {text!r}", field) from None
    if not math.isfinite(value):
        raise where.error(f"expected a finite number, got {text!r}", field)
    return value


def positive(value: float, where: Where, field: str) -> float:
    if not value > 0:
        raise where.error(f"must be > 0, got {value:g}", field)
    return value


def non_negative(value: float, where: Where, field: str) -> float:
    if not value >= 0:
        raise where.error(f"must be >= 0, got {value:g}", field)
    return value


def great_circle_m(lon_a: float, lat_a: float, lon_b: float, lat_b: float) -> float:
    """Haversine distance in metres between two (longitude, latitude) points in degrees."""
    phi_a, phi_b = math.radians(lat_a), math.radians(lat_b)
    d_phi = phi_b - phi_a
    d_lambda = math.radians(lon_b - lon_a)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi_a) * math.cos(phi_b) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def propagation_delay_s(
    a: tuple[float | None, float | None], b: tuple[float | None, float | None]
) -> float | None:
    """Fibre propagation delay between two (longitude, latitude) points, or None if one is unknown."""
    lon_a, lat_a = a
    lon_b, lat_b = b
    if lon_a is None or lat_a is None or lon_b is None or lat_b is None:
        return None
    return great_circle_m(lon_a, lat_a, lon_b, lat_b) / FIBRE_SPEED_M_PER_S


def format_bps(rate_bps: float) -> str:
    """A rate for people: ``1e9`` -> ``"1 Gbit/s"``."""
    for factor, unit in ((1e12, "Tbit/s"), (1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if abs(rate_bps) >= factor:
            return f"{rate_bps / factor:g} {unit}"
    return f"{rate_bps:g} bit/s"


def defaulted_warning(count: int, default_capacity_bps: float, what: str = "link(s)") -> str:
    rate = format_bps(default_capacity_bps)
    return f"{count} {what} gave no capacity: assumed {rate} (marked capacity_defaulted)"


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that orders embedded numbers by value: ``"2" < "10"``, ``"h9" < "h10"``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part]
