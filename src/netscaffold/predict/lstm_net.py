"""The network of the global LSTM (imported only by :mod:`netscaffold.predict.lstm`, lazily: torch).

One LSTM over the input window; one head (fed its last state and the static features) for every
horizon step: per step, quantile deltas in
standardised log space (anchored at the median, the others reached by softplus increments, so quantiles
never cross) and one activity logit.

:class:`PackedLstm` is the CPU inference path of the same LSTM (see its docstring for why it is faster
than ``nn.LSTM`` here and how far its results may differ).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from netscaffold.errors import ConfigError, ValidationError


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
        return self.decode(out[:, -1], static)

    def decode(
        self, last_hidden: torch.Tensor, static: torch.Tensor, *, contiguous: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The head: the LSTM's last hidden state ``[B, hidden]`` and ``static[B, S]`` -> (deltas, logits)
        as :meth:`forward` returns them. ``contiguous`` (inference) copies the softplus inputs first:
        torch's softplus takes a scalar loop on strided views (~5x slower here) and the vectorised one
        on contiguous ones, which rounds differently in the last bit (so training keeps the views)."""
        raw = self.head(torch.cat([last_hidden, static], dim=-1)).view(-1, self.horizon, self.n_levels + 1)
        m = self.median
        above, below_median = raw[..., m + 1 : self.n_levels], raw[..., :m]
        if contiguous:
            above, below_median = above.contiguous(), below_median.contiguous()
        center = raw[..., m : m + 1]
        up = center + torch.cumsum(functional.softplus(above), dim=-1)
        below = torch.flip(functional.softplus(below_median), dims=[-1])
        down = center - torch.flip(torch.cumsum(below, dim=-1), dims=[-1])
        return torch.cat([down, center, up], dim=-1), raw[..., -1]


# Rational tanh: odd degree-13 over even degree-6 polynomial, clamped where float32 tanh is +-1 (the
# approximation Eigen and XLA vectorise; measured within 5 ulp of tanh over [-12, 12], tested).
_TANH_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = (
    np.float32(v)
    for v in (
        4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
        -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16,
    )
)  # fmt: skip
_B0, _B2, _B4, _B6 = (
    np.float32(v)
    for v in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
)
_HALF = np.float32(0.5)
_FASTMATH = {"nnan", "ninf", "nsz", "contract"}  # vectorisable min/max and FMAs; no approximate division


@nb.njit(cache=True, inline="always", fastmath=_FASTMATH, error_model="numpy")
def rational_tanh(x: np.float32) -> np.float32:
    x = _TANH_CLAMP if x > _TANH_CLAMP else x
    x = -_TANH_CLAMP if x < -_TANH_CLAMP else x
    x2 = x * x
    p = x2 * (x2 * (x2 * (x2 * (x2 * (x2 * _A13 + _A11) + _A9) + _A7) + _A5) + _A3) + _A1
    q = x2 * (x2 * (x2 * _B6 + _B4) + _B2) + _B0
    return x * p / q


@nb.njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
def rational_tanh_array(values: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
    """:func:`rational_tanh` of each value (what the tests compare with ``numpy.tanh``)."""
    for k in range(values.size):
        out[k] = rational_tanh(values[k])


@nb.njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_pointwise(
    gates: npt.NDArray[np.float32],
    cell: npt.NDArray[np.float32],
    joined: npt.NDArray[np.float32],
    hidden: int,
) -> None:
    """One LSTM step after the products, for a chunk of sequences, in one pass over flat C-order buffers:
    ``gates[B x 4H]`` (pre-activations, PyTorch's order i, f, g, o), ``cell[B x H]`` updated in place,
    and the new hidden state written to the first ``H`` columns of each row of ``joined[B x (H + F)]``.

    Each row's results go to two fresh local rows first and are copied out after: computed straight into
    ``cell`` and ``joined``, the loop carried LLVM's runtime alias checks, which sent it to the scalar
    loop (~5x slower, measured) for some placements of the arrays relative to each other."""
    n_gates, row = 4 * hidden, joined.size // (cell.size // hidden)
    new_cell, new_hidden = np.empty(hidden, np.float32), np.empty(hidden, np.float32)
    for b in range(cell.size // hidden):
        g0, c0, h0 = b * n_gates, b * hidden, b * row
        for j in range(hidden):
            in_gate = _HALF * rational_tanh(_HALF * gates[g0 + j]) + _HALF  # sigmoid(x) = (1 + tanh(x/2)) / 2
            forget = _HALF * rational_tanh(_HALF * gates[g0 + hidden + j]) + _HALF
            candidate = rational_tanh(gates[g0 + 2 * hidden + j])
            out_gate = _HALF * rational_tanh(_HALF * gates[g0 + 3 * hidden + j]) + _HALF
            c = forget * cell[c0 + j] + in_gate * candidate
            new_cell[j] = c
            new_hidden[j] = out_gate * rational_tanh(c)
        for j in range(hidden):
            cell[c0 + j] = new_cell[j]
            joined[h0 + j] = new_hidden[j]


class PackedLstm:
    """Inference-only CPU forward of an ``nn.LSTM`` (batch of independent sequences, zero initial state):
    the last hidden state of the last layer, from a time-major input.

    Why it is faster than ``nn.LSTM`` (oneDNN) on this CPU, where that spends ~150-200 ms on 10,000 pairs
    x 24 steps: (1) it runs ``chunk`` sequences at a time with buffers reused across steps and layers, so
    the working set (gates ``[chunk, 4 x hidden]``) stays near L2 and nothing of the size of the whole
    batch is allocated (fresh multi-MB buffers cost page faults here, e.g. oneDNN's all-steps output);
    (2) the input and recurrent products are one GEMM per step (``[h | x] @ [W_hh | W_ih]^T``, bias
    added by ``addmm``); (3) the gates, the cell update and the new hidden state are one numba pass
    (:func:`lstm_pointwise`) with a vectorised rational ``tanh`` (and ``sigmoid(x) = (1 + tanh(x/2))
    / 2``), where torch's ``sigmoid`` / ``tanh`` cost ~1 / ~3 ns per value and six more tensor
    operations each read and write the chunk. Chunks are independent, so ``threads`` workers give the
    same bytes as one; the result differs from ``nn.LSTM`` by float rounding only (about 1e-6 on the
    hidden state, tested)."""

    def __init__(self, lstm: nn.LSTM) -> None:
        if lstm.proj_size or lstm.bidirectional or not lstm.batch_first:
            raise ConfigError(
                "PackedLstm supports a plain, unidirectional, batch-first nn.LSTM", element="lstm"
            )
        hidden = lstm.hidden_size
        self.hidden, self.n_features = hidden, lstm.input_size
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            for layer in range(lstm.num_layers):
                w_ih = getattr(lstm, f"weight_ih_l{layer}").detach().cpu()
                w_hh = getattr(lstm, f"weight_hh_l{layer}").detach().cpu()
                bias = torch.zeros(4 * hidden)
                if lstm.bias:
                    bias = (getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")).cpu()
                self.layers.append((torch.cat([w_hh, w_ih], dim=1).t().contiguous(), bias.contiguous()))

    def _layout(self, batch: int) -> tuple[list[int], list[int]]:
        """Sizes and 64-byte-aligned offsets (in floats) of the buffers of a ``batch``: the gates, then per
        layer the cell and ``[h | x]`` (the previous hidden state beside this step's input: one GEMM
        operand)."""
        h = self.hidden
        sizes = [4 * h * batch] + [
            n for weight, _ in self.layers for n in (h * batch, weight.shape[0] * batch)
        ]
        return sizes, [int(x) for x in np.cumsum([0] + [-(-n // 16) * 16 for n in sizes])]

    def new_block(self, batch: int) -> npt.NDArray[np.float32]:
        """Room for :meth:`last_hidden`'s buffers of up to ``batch`` sequences (reusable across calls)."""
        return np.empty(self._layout(batch)[1][-1] + 16, np.float32)

    def last_hidden(
        self, sequence: torch.Tensor, block: npt.NDArray[np.float32] | None = None
    ) -> torch.Tensor:
        """``sequence[T, B, F]`` (time-major, float32) -> the last layer's hidden state ``[B, H]``, with its
        buffers in ``block`` (from :meth:`new_block`; a new one when absent or too small).

        One block holds every buffer, each part 64-byte aligned, and is reused across chunks (a fresh
        one per chunk costs page faults)."""
        steps, batch, _ = sequence.shape
        h = self.hidden
        sizes, starts = self._layout(batch)
        if block is None or block.size < starts[-1] + 16:
            block = self.new_block(batch)
        first = (-block.ctypes.data // 4) % 16
        parts = [block[first + lo : first + lo + n] for lo, n in zip(starts[:-1], sizes, strict=True)]
        flat_gates, cells, flat_joined = parts[0], parts[1::2], parts[2::2]
        for part in parts[1:]:
            part.fill(0.0)  # zero initial state (the gates are written before they are read)
        gates = torch.from_numpy(flat_gates).view(batch, 4 * h)
        joined = [torch.from_numpy(j).view(batch, -1) for j in flat_joined]
        for t in range(steps):
            joined[0][:, h:].copy_(sequence[t])
            for layer, (weight, bias) in enumerate(self.layers):
                torch.addmm(bias, joined[layer], weight, out=gates)
                lstm_pointwise(flat_gates, cells[layer], flat_joined[layer], h)
                if layer + 1 < len(self.layers):
                    joined[layer + 1][:, h:].copy_(joined[layer][:, :h])
        return joined[-1][:, :h].clone()

    def run(self, sequence: torch.Tensor, *, chunk: int, threads: int = 1) -> torch.Tensor:
        """:meth:`last_hidden` of ``sequence[T, N, F]`` in chunks of ``chunk`` sequences, on ``threads``
        worker threads (each running torch on one thread, with its own buffers; torch and the numba
        kernel release the GIL)."""
        if chunk < 1 or threads < 1:
            raise ConfigError(f"chunk and threads must be >= 1, got {chunk} and {threads}", element="lstm")
        if sequence.ndim != 3 or sequence.shape[2] != self.n_features:
            raise ValidationError(
                f"the LSTM reads [steps, sequences, {self.n_features}] inputs, got {list(sequence.shape)}",
                field="sequence",
            )
        n_seq = sequence.shape[1]
        out = torch.empty(n_seq, self.hidden)
        bounds = [(lo, min(lo + chunk, n_seq)) for lo in range(0, n_seq, chunk)]
        blocks: dict[int, npt.NDArray[np.float32]] = {}

        def one(lo_hi: tuple[int, int]) -> None:
            lo, hi = lo_hi
            torch.set_num_threads(1)  # per calling thread (OpenMP), and what the caller set anyway
            block = blocks.get(threading.get_ident())
            if block is None:
                block = blocks[threading.get_ident()] = self.new_block(min(chunk, n_seq))
            with torch.inference_mode():
                out[lo:hi] = self.last_hidden(sequence[:, lo:hi], block)

        old_threads = torch.get_num_threads()
        try:
            if threads == 1 or len(bounds) < 2:
                for lo_hi in bounds:
                    one(lo_hi)
            else:
                with ThreadPoolExecutor(min(threads, len(bounds))) as pool:
                    list(pool.map(one, bounds))
        finally:
            torch.set_num_threads(old_threads)
        return out
