"""Performance metrics a backend reports per tick, as columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netscaffold.model.topology import LinkKey

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class PerformanceSample:
    """Averages over the tick that ended at ``time_s``.

    Per link: carried load, reserved rate, and the part of the reserved rate actually used by the flows it
    was reserved for. Per (src endpoint, dst endpoint) pair: bytes carried in the tick.
    """

    time_s: float
    interval_s: float
    link_keys: tuple[LinkKey, ...]
    load_bps: FloatArray
    reserved_bps: FloatArray
    reserved_used_bps: FloatArray
    pair_keys: tuple[tuple[str, str], ...]
    pair_bytes: FloatArray

    def __post_init__(self) -> None:
        n_links = len(self.link_keys)
        for name in ("load_bps", "reserved_bps", "reserved_used_bps"):
            if getattr(self, name).shape != (n_links,):
                raise ValueError(f"{name} must have shape ({n_links},)")
        if self.pair_bytes.shape != (len(self.pair_keys),):
            raise ValueError("pair_bytes must have one value per pair key")

    @classmethod
    def empty(cls, time_s: float, interval_s: float) -> PerformanceSample:
        none = np.zeros(0)
        return cls(time_s, interval_s, (), none, none, none, (), none)
