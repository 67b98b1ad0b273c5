"""The LSTM's training loop pieces: sampled mini-batches, the loss, and an optional Rich progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional

from netscaffold.predict.lstm_features import sample_grid
from netscaffold.predict.series import PairSeries

if TYPE_CHECKING:
    from netscaffold.predict.lstm import LstmForecaster
    from netscaffold.predict.lstm_net import QuantileLstm

IntArray = npt.NDArray[np.int64]


class Adam:
    """Adam (Kingma & Ba 2015) in a few tensor operations.

    ``torch.optim.Optimizer.__init__`` imports torch's compiler stack (``torch._dynamo``: 10-20 s on this
    2-core machine), which would dominate short trainings, tests and ``forecast evaluate``."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999)):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.steps = lr, betas, 1e-8, 0
        self.first = [torch.zeros_like(p) for p in self.params]
        self.second = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        correction1, correction2 = 1.0 - beta1**self.steps, 1.0 - beta2**self.steps
        for p, first, second in zip(self.params, self.first, self.second, strict=True):
            if p.grad is None:
                continue
            first.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
            second.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
            denominator = (second / correction2).sqrt_().add_(self.eps)
            p.addcdiv_(first, denominator, value=-self.lr / correction1)


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norm = torch.sqrt(sum((g * g).sum() for g in grads))  # type: ignore[arg-type]
    if float(norm) > max_norm:
        for g in grads:
            g.mul_(max_norm / (float(norm) + 1e-6))


class TrainBatchMaker:
    """Samples ``windows_per_epoch`` (origin, pair) windows per epoch, in shuffled mini-batches."""

    def __init__(self, model: LstmForecaster, series: PairSeries, origins: IntArray, device: str) -> None:
        self.model, self.series, self.device = model, series, device
        self.orig_idx, self.pair_idx = sample_grid(origins, series.n_pairs)
        self.scaled = model.scaler.standardise(series.values)
        self.context = model.context_of(series)
        self.levels = torch.tensor(model.levels, dtype=torch.float32, device=device)
        train_mean = float(series.values[origins].mean()) if origins.size else 1.0
        self.norm = max(train_mean, 1e-9)
        self.seen = 0
        self.last_epoch = 0
        self.median = model.levels.index(0.5)
        self.median_extra = float(model.hyper["median_weight"]) - 1.0

    def run_epoch(self, net: QuantileLstm, optimiser: Adam, rng: np.random.Generator) -> float:
        hyper = self.model.hyper
        total = self.orig_idx.size
        take = min(total, int(hyper["windows_per_epoch"]))
        order = rng.permutation(total)[:take]
        net.train()
        self.last_epoch = take
        losses = []
        for lo in range(0, take, int(hyper["batch_size"])):
            rows = order[lo : lo + int(hyper["batch_size"])]
            loss = self._loss(net, self.orig_idx[rows], self.pair_idx[rows])
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            clip_grad_norm(optimiser.params, 1.0)
            optimiser.step()
            losses.append(float(loss.detach()))
            self.seen += rows.size
        return float(np.mean(losses)) if losses else float("nan")

    def _loss(self, net: QuantileLstm, origins: IntArray, pair_idx: IntArray) -> torch.Tensor:
        horizon = self.model.horizon
        inputs, static, last = self.model.spec.build(
            self.series, self.scaled, self.model.scaler, origins, pair_idx, context=self.context
        )
        actual_np = self.series.values[origins[:, None] + np.arange(horizon)[None, :], pair_idx[:, None]]
        actual = torch.from_numpy(actual_np.astype(np.float32)).to(self.device)
        deltas, logits = net(
            torch.from_numpy(inputs).to(self.device), torch.from_numpy(static).to(self.device)
        )
        predicted = self.model.back_transform(torch.from_numpy(last).to(self.device), deltas, pair_idx)
        error = actual[:, :, None] - predicted
        pinball = torch.maximum(self.levels * error, (self.levels - 1.0) * error)
        value_loss = (pinball.sum(dim=-1) + self.median_extra * pinball[..., self.median]).mean() / self.norm
        active = (actual > 0).float()
        activity_loss = functional.binary_cross_entropy_with_logits(logits, active)
        return value_loss + float(self.model.hyper["activity_weight"]) * activity_loss


@contextlib.contextmanager
def progress_bar(show: bool, epochs: int) -> Iterator[Callable[[dict[str, float]], None]]:
    """A Rich progress bar over epochs on stderr when ``show``; otherwise a no-op callback."""
    if not show:
        yield lambda _record: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("lstm"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=epochs)

        def advance(record: dict[str, float]) -> None:
            text = f"loss {record['train_loss']:.4f}"
            if "val_nmae" in record:
                text += f"  val NMAE {record['val_nmae']:.4f}"
            bar.update(task, advance=1, description=text)

        yield advance
