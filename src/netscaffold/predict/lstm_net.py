"""The network of the global LSTM (imported only by :mod:`netscaffold.predict.lstm`, lazily: torch).

One LSTM over the input window; one head (fed its last state and the static features) for every
horizon step: per step, quantile deltas in
standardised log space (anchored at the median, the others reached by softplus increments, so quantiles
never cross) and one activity logit.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class QuantileLstm(nn.Module):
    def __init__(
        self,
        n_features: int,
        n_static: int,
        *,
        hidden: int,
        layers: int,
        horizon: int,
        levels: tuple[float, ...],
    ):
        super().__init__()
        self.horizon = horizon
        self.n_levels = len(levels)
        self.median = min(range(len(levels)), key=lambda i: abs(levels[i] - 0.5))
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(hidden + n_static, hidden), nn.ReLU(), nn.Linear(hidden, horizon * (self.n_levels + 1))
        )

    def forward(self, window: torch.Tensor, static: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``window[B, W, F]``, ``static[B, S]`` -> (deltas ``[B, H, Q]`` non-decreasing along Q, activity
        logits ``[B, H]``)."""
        out, _ = self.lstm(window)
        raw = self.head(torch.cat([out[:, -1], static], dim=-1)).view(-1, self.horizon, self.n_levels + 1)
        m = self.median
        center = raw[..., m : m + 1]
        up = center + torch.cumsum(functional.softplus(raw[..., m + 1 : self.n_levels]), dim=-1)
        below = torch.flip(functional.softplus(raw[..., :m]), dims=[-1])
        down = center - torch.flip(torch.cumsum(below, dim=-1), dims=[-1])
        return torch.cat([down, center, up], dim=-1), raw[..., -1]
