"""The predicted network graph: what the forecaster expects for the next horizon.

Numpy-backed. For ``P`` pairs, ``H`` horizon steps and ``Q`` quantile levels:
``activity[H, P]`` (probability that the pair is active), ``bandwidth_bps[H, P, Q]`` (non-decreasing along
Q), ``latency_bound_s[P]`` (NaN where the QoS sets none). Candidate paths are flat: ``paths[C]`` node
tuples, ``path_pair[C]`` the pair each belongs to, ``path_prob[C]`` summing to 1 per pair that has paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netscaffold.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Pair = tuple[str, str]
_PROB_TOLERANCE = 1e-6


@dataclass(frozen=True, eq=False)
class PredictedGraph:
    t0_s: float
    step_s: float
    pairs: tuple[Pair, ...]
    quantile_levels: tuple[float, ...]
    activity: FloatArray
    bandwidth_bps: FloatArray
    latency_bound_s: FloatArray
    paths: tuple[tuple[str, ...], ...] = ()
    path_pair: IntArray | None = None
    path_prob: FloatArray | None = None

    def __post_init__(self) -> None:
        n_pairs, n_q = len(self.pairs), len(self.quantile_levels)
        if self.step_s <= 0:
            raise ValidationError(f"step_s must be > 0, got {self.step_s}", field="step_s")
        if len(set(self.pairs)) != n_pairs:
            raise ValidationError("duplicate pair", field="pairs")
        levels = np.asarray(self.quantile_levels)
        if n_q == 0 or np.any(np.diff(levels) <= 0) or levels[0] <= 0 or levels[-1] >= 1:
            raise ValidationError(
                f"quantile levels must be increasing within (0, 1), got {self.quantile_levels}",
                field="quantile_levels",
            )
        if self.activity.ndim != 2 or self.activity.shape[1] != n_pairs:
            raise ValidationError(
                f"activity must be [H, {n_pairs}], got {self.activity.shape}", field="activity"
            )
        horizon = self.activity.shape[0]
        if self.bandwidth_bps.shape != (horizon, n_pairs, n_q):
            raise ValidationError(
                f"bandwidth_bps must be {(horizon, n_pairs, n_q)}, got {self.bandwidth_bps.shape}",
                field="bandwidth_bps",
            )
        if self.latency_bound_s.shape != (n_pairs,):
            raise ValidationError("latency_bound_s must be [P]", field="latency_bound_s")
        if np.any(~np.isfinite(self.activity)) or np.any((self.activity < 0) | (self.activity > 1)):
            raise ValidationError("activity must be probabilities in [0, 1]", field="activity")
        if np.any(~np.isfinite(self.bandwidth_bps)) or np.any(self.bandwidth_bps < 0):
            raise ValidationError("bandwidth_bps must be finite and >= 0", field="bandwidth_bps")
        if n_q > 1 and np.any(np.diff(self.bandwidth_bps, axis=2) < -1e-9):
            raise ValidationError("bandwidth quantiles cross", field="bandwidth_bps")
        self._check_paths(n_pairs)

    def _check_paths(self, n_pairs: int) -> None:
        n_paths = len(self.paths)
        if n_paths == 0:
            return
        if self.path_pair is None or self.path_prob is None:
            raise ValidationError("paths need path_pair and path_prob", field="paths")
        if self.path_pair.shape != (n_paths,) or self.path_prob.shape != (n_paths,):
            raise ValidationError("path_pair and path_prob must be [C]", field="paths")
        if np.any((self.path_pair < 0) | (self.path_pair >= n_pairs)):
            raise ValidationError("path_pair index out of range", field="path_pair")
        if np.any((self.path_prob < 0) | (self.path_prob > 1 + _PROB_TOLERANCE)):
            raise ValidationError("path probabilities must be in [0, 1]", field="path_prob")
        sums = np.bincount(self.path_pair, weights=self.path_prob, minlength=n_pairs)
        has = np.bincount(self.path_pair, minlength=n_pairs) > 0
        bad = np.flatnonzero(has & (np.abs(sums - 1.0) > _PROB_TOLERANCE))
        if bad.size:
            pair = self.pairs[int(bad[0])]
            raise ValidationError(
                f"path probabilities sum to {sums[bad[0]]:.6g}, not 1",
                element=f"pair {pair[0]}->{pair[1]}",
            )

    @property
    def horizon(self) -> int:
        return int(self.activity.shape[0])

    def pair_index(self) -> dict[Pair, int]:
        return {pair: i for i, pair in enumerate(self.pairs)}

    def quantile_index(self, level: float) -> int:
        for i, q in enumerate(self.quantile_levels):
            if abs(q - level) < 1e-9:
                return i
        raise ValidationError(f"quantile {level} not among {self.quantile_levels}", field="quantile_levels")

    def nearest_quantile_index(self, level: float) -> int:
        """The index of the quantile level closest to ``level`` (the first one on a tie)."""
        return nearest_quantile(self.quantile_levels, level)

    def paths_of(self, pair_idx: int) -> list[tuple[tuple[str, ...], float]]:
        if not self.paths or self.path_pair is None or self.path_prob is None:
            return []
        rows = np.flatnonzero(self.path_pair == pair_idx)
        return [(self.paths[int(r)], float(self.path_prob[int(r)])) for r in rows]

    def any_activity(self) -> FloatArray:
        """P(the pair is active at least once in the horizon), steps treated as independent."""
        return any_activity(self.activity)


def any_activity(activity: npt.ArrayLike) -> FloatArray:
    """Per pair, P(active at least once) from per-step probabilities ``[H, P]`` (steps independent)."""
    return np.asarray(1.0 - np.prod(1.0 - np.asarray(activity), axis=0), dtype=np.float64)


def nearest_quantile(levels: tuple[float, ...], wanted: float) -> int:
    """The index in ``levels`` closest to ``wanted`` (the first one on a tie)."""
    return int(np.argmin([abs(level - wanted) for level in levels]))
