"""``forecast train --ray``: the global LSTM trained data-parallel with Ray Train (torch DDP).

Each Ray Train worker builds the same :class:`~netscaffold.predict.lstm.LstmForecaster` as single-process
training (same hyper-parameters, scaler from the same training part, same seeded initial weights), wraps
its network in ``DistributedDataParallel`` (gloo on CPU, nccl when the workers hold GPUs) and runs the
single-process epoch: the same seeded shuffled windows, each global mini-batch split across the workers
(so the effective batch, the learning rate and the number of optimiser steps per epoch are those of one
process; DDP averages the gradients). The validation NMAE is computed on each worker's share of the
validation origins and all-reduced, so every worker takes the same early-stopping decision. Rank 0 saves
the best epoch's network through :func:`netscaffold.predict.checkpoint.save_checkpoint`: the checkpoint is
the single-process format, loadable by ``forecast predict``.

The result is not byte-identical to single-process training (gradient all-reduce sums in another order,
per-worker threads); :func:`validation_nmae` scores both on the same validation origins so that the CLI
can report the DDP NMAE beside the single-process one.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from netscaffold.errors import ConfigError, TrafficError
from netscaffold.predict.base import Forecaster
from netscaffold.predict.series import PairSeries

if TYPE_CHECKING:
    import torch

    from netscaffold.predict.lstm import LstmForecaster

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
CHECKPOINT_NAME = "model.pt"


@dataclass(frozen=True)
class _Rank:
    """Where this Ray Train worker stands: its rank, the world size and its torch device."""

    rank: int
    world: int
    device: str


@dataclass(frozen=True)
class DdpResult:
    model: LstmForecaster
    workers: int
    device: str
    train_s: float
    val_nmae: float


def validation_nmae(model: Forecaster, series: PairSeries) -> float:
    """NMAE of the median over the validation part (the last ``validation_fraction`` of ``series``),
    averaged over horizon steps: the number early stopping uses, computed the same for any model."""
    split = round(series.steps * (1.0 - model.validation_fraction))
    origins = series.origins(model.min_context, model.horizon, start=split)
    if origins.size == 0:
        raise TrafficError("no validation origin to score", field="tm")
    point = model.predict_at(series, origins, model.horizon).point
    actual = series.values[origins[:, None] + np.arange(model.horizon)[None, :]]
    per_step = np.abs(point - actual).sum(axis=(0, 2)) / np.maximum(actual.sum(axis=(0, 2)), 1e-12)
    return float(per_step.mean())


def train_ddp(
    series: PairSeries,
    *,
    workers: int = 2,
    use_gpu: bool | None = None,
    storage_path: Path | None = None,
    **lstm_kwargs: Any,
) -> DdpResult:
    """Train the LSTM on ``series`` with ``workers`` Ray Train workers (Ray must be connected).
    ``use_gpu`` None: GPUs when the cluster offers at least ``workers`` of them."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from netscaffold.predict.checkpoint import load_checkpoint

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", field="ray-workers")
    if not ray.is_initialized():
        raise ConfigError("Ray is not connected: call netscaffold.distributed.connection.connect first")
    gpus = float(ray.cluster_resources().get("GPU", 0))  # type: ignore[no-untyped-call]
    gpu = gpus >= workers if use_gpu is None else use_gpu
    lstm_kwargs = {**lstm_kwargs, "device": "cuda" if gpu else "cpu", "progress": False}
    with tempfile.TemporaryDirectory(prefix="netscaffold-ddp-") as scratch:
        trainer = TorchTrainer(
            _train_loop,
            train_loop_config={"series": ray.put(series), "kwargs": lstm_kwargs},
            torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name="forecast-train", storage_path=str(storage_path or scratch)),
        )
        start = time.perf_counter()
        result = trainer.fit()
        train_s = time.perf_counter() - start
        if result.checkpoint is None:
            raise ConfigError("Ray Train finished without a checkpoint", field="ray")
        with result.checkpoint.as_directory() as folder:
            model = load_checkpoint(Path(folder) / CHECKPOINT_NAME)
    from netscaffold.predict.lstm import LstmForecaster

    assert isinstance(model, LstmForecaster)
    model.device_request = "auto"
    metrics = result.metrics or {}
    return DdpResult(model, workers, "cuda" if gpu else "cpu", train_s, float(metrics.get("val_nmae", "nan")))


# -- inside each Ray Train worker ---------------------------------------------------------------------
def _train_loop(config: dict[str, Any]) -> None:
    import ray
    import ray.train
    import ray.train.torch as train_torch
    import torch

    from netscaffold.predict.lstm import LstmForecaster
    from netscaffold.predict.lstm_features import Scaler

    series: PairSeries = ray.get(config["series"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    model = LstmForecaster(**config["kwargs"])
    split = round(series.steps * (1.0 - model.validation_fraction))
    model.prepare(series, split)  # the same preparation as LstmForecaster._fit
    train_origins = series.origins(model.min_context, model.horizon, stop=split)
    val_origins = series.origins(model.min_context, model.horizon, start=split)
    if train_origins.size == 0 or val_origins.size == 0:
        raise TrafficError(f"the history ({series.steps} steps) is too short for the LSTM", field="tm")
    model.scaler = Scaler.fit(series.values[:split])
    device = train_torch.get_device() if model.device_request == "cuda" else torch.device("cpu")
    torch.set_num_threads(1)
    torch.manual_seed(model.seed)
    net = model._new_net().to(device)  # the same seeded initial weights on every rank
    model._net = net
    device_ids = [device.index] if device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    where = _Rank(rank, world, str(device))
    best_nmae, best_state, records = _epochs(model, series, (train_origins, val_origins), ddp, where)
    net.load_state_dict(best_state)
    model.tune_activity_mix(series, split, val_origins)  # as LstmForecaster._fit does after training
    model.history_log = records
    model.pairs, model.nodes, model.fingerprint = series.pairs, series.nodes, series.fingerprint()
    model.fitted = True
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            model.save(Path(folder) / CHECKPOINT_NAME)
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report({"val_nmae": best_nmae, "epochs": len(records)}, checkpoint=checkpoint)


def _epochs(
    model: LstmForecaster,
    series: PairSeries,
    origins: tuple[IntArray, IntArray],
    ddp: Any,
    where: _Rank,
) -> tuple[float, dict[str, torch.Tensor], list[dict[str, float]]]:
    """The single-process epoch loop (``origins``: train, validation) with each global mini-batch split
    across ranks."""
    from netscaffold.predict.lstm_train import Adam, TrainBatchMaker, clip_grad_norm

    hyper = model.hyper
    train_origins, val_origins = origins
    maker = TrainBatchMaker(model, series, train_origins, where.device)
    optimiser = Adam(ddp.parameters(), lr=float(hyper["lr"]))
    rng = np.random.default_rng(model.seed)
    best: tuple[float, dict[str, Any]] = (float("inf"), _clone(ddp.module))
    records: list[dict[str, float]] = []
    stale = 0
    for epoch in range(int(hyper["epochs"])):
        start_s = time.perf_counter()
        total = maker.orig_idx.size
        order = rng.permutation(total)[: min(total, int(hyper["windows_per_epoch"]))]
        ddp.train()
        losses = []
        for lo in range(0, order.size, int(hyper["batch_size"])):
            rows = order[lo : lo + int(hyper["batch_size"])][where.rank :: where.world]
            if rows.size == 0:
                rows = order[lo : lo + 1]  # every rank must join each all-reduce
            loss = maker._loss(ddp, maker.orig_idx[rows], maker.pair_idx[rows])
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            clip_grad_norm(optimiser.params, 1.0)
            optimiser.step()
            losses.append(float(loss.detach()))
        val_nmae = _distributed_val_nmae(model, series, val_origins, where)
        record = {"epoch": float(epoch), "train_loss": float(np.mean(losses)), "val_nmae": val_nmae}
        records.append({**record, "epoch_s": time.perf_counter() - start_s, "windows": float(order.size)})
        optimiser.lr *= float(hyper["lr_decay"])
        if val_nmae < best[0] - 1e-5:
            best, stale = (val_nmae, _clone(ddp.module)), 0
        else:
            stale += 1
            if stale >= int(hyper["patience"]):
                break
    model.train_windows = sum(int(r["windows"]) for r in records)
    return best[0], best[1], records


def _distributed_val_nmae(
    model: LstmForecaster, series: PairSeries, origins: IntArray, where: _Rank
) -> float:
    """Per-step absolute-error and actual sums on this rank's origins, summed over ranks."""
    import torch
    import torch.distributed as dist

    mine = origins[where.rank :: where.world]
    sums = np.zeros((2, model.horizon))
    if mine.size:
        quantiles, _ = model._infer(series, mine, model.horizon)
        point = quantiles[..., model.levels.index(0.5)]
        actual = series.values[mine[:, None] + np.arange(model.horizon)[None, :]]
        sums[0] = np.abs(point - actual).sum(axis=(0, 2))
        sums[1] = actual.sum(axis=(0, 2))
    tensor = torch.from_numpy(sums).to(where.device)
    dist.all_reduce(tensor)
    total = tensor.cpu().numpy()
    return float((total[0] / np.maximum(total[1], 1e-12)).mean())


def _clone(net: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# -- what `forecast train | evaluate --ray` call ------------------------------------------------------
def train_on_ray(
    series: PairSeries, spec: str, *, workers: int, compare: bool, lstm_kwargs: dict[str, Any]
) -> tuple[Forecaster, dict[str, Any]]:
    """``forecast train --ray SPEC``: the DDP model and the payload fields that describe the run (its
    validation NMAE, and with ``compare`` the single-process model's beside it)."""
    from netscaffold.distributed.connection import connect
    from netscaffold.predict.registry import make_forecaster

    with connect(spec):
        result = train_ddp(series, workers=workers, **lstm_kwargs)
    info: dict[str, Any] = {
        "ray": {"workers": result.workers, "device": result.device, "train_s": result.train_s},
        "val_nmae": validation_nmae(result.model, series),
    }
    if compare:
        start = time.perf_counter()
        single = make_forecaster("lstm", **{**lstm_kwargs, "progress": False}).fit(series)
        info["single_process"] = {
            "val_nmae": validation_nmae(single, series),
            "train_s": time.perf_counter() - start,
        }
    return result.model, info


def evaluate_on_ray(
    series: PairSeries,
    names: list[str],
    horizons: list[int],
    spec: str,
    *,
    train_fraction: float,
    seed: int,
    model_kwargs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """``forecast evaluate --ray SPEC``: each model is fitted in its own Ray task (one CPU, the model's
    fixed thread count, as in one process), then scored here by the same
    :func:`netscaffold.predict.evaluate.score_fitted` that ``evaluate_models`` uses: the same numbers,
    fitted in parallel."""
    from netscaffold.distributed.connection import connect
    from netscaffold.distributed.inference import get_unwrapped
    from netscaffold.predict.base import check_horizon
    from netscaffold.predict.evaluate import score_fitted, train_split

    if not names:
        raise ConfigError("no model to evaluate", field="models")
    for h in horizons:
        check_horizon(h)
    max_h = max(horizons)
    split = train_split(series, train_fraction)
    with connect(spec) as session:
        ray = session.ray
        fit_task = ray.remote(num_cpus=1)(_fit_one)
        train_ref = ray.put(series.slice(0, split))
        refs = [
            fit_task.remote(name, train_ref, {"seed": seed, "horizon": max_h, **model_kwargs.get(name, {})})
            for name in names
        ]
        fitted_list = get_unwrapped(ray, refs)
    fitted = {name: model for name, (model, _) in zip(names, fitted_list, strict=True)}
    train_s = {name: seconds for name, (_, seconds) in zip(names, fitted_list, strict=True)}
    return {
        **score_fitted(series, fitted, train_s, split=split, horizons=horizons),
        "ray": {"tasks": len(names)},
    }


def _fit_one(name: str, train: PairSeries, kwargs: dict[str, Any]) -> tuple[Forecaster, float]:
    from netscaffold.predict.registry import make_forecaster

    model = make_forecaster(name, **kwargs)
    start = time.perf_counter()
    model.fit(train)
    return model, time.perf_counter() - start
