"""A global LSTM forecaster: one model shared by every pair (a new pair is forecast at once).

Inputs are level-invariant log1p windows (:mod:`netscaffold.predict.lstm_features`); all horizon steps come
from one head as a change added to the last value; the loss is pinball (L1 at the median) on the
back-transformed values, so it matches NMAE; early stopping keeps the epoch with the lowest validation
NMAE. Seeded and deterministic on CPU (fixed torch thread count, seeded). torch is
imported only inside methods, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

from netscaffold.errors import CheckpointError, ConfigError, TrafficError, ValidationError
from netscaffold.predict.base import Forecast, Forecaster
from netscaffold.predict.calibration import ActivityModel
from netscaffold.predict.lstm_features import (
    ContextTable,
    FeatureSpec,
    NetworkContext,
    Scaler,
    ends_in,
    pair_ends,
    standardised_log,
)
from netscaffold.predict.series import DAY_S, PairSeries

if TYPE_CHECKING:
    import torch

    from netscaffold.predict.lstm_net import QuantileLstm

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
INFER_CHUNK = 32_768
INFER_PAIR_CHUNK = 1024
"""Sequences per packed LSTM pass: gates ``[1024, 4 x 32]`` float32 (512 KiB) stay near L2."""
IDLE_SHARE_FOR_FLAGS = 0.1
ANCHOR_ALPHA_GRID = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2)
"""Smoothings of the window's anchor level tried on the training part (``anchor_alpha=-1``)."""
ANCHOR_MIN_GAIN = 0.1
"""Relative NMAE gain over the last value that a smoothed anchor needs to be chosen."""
SEASONAL_TWO_DAYS_MIN = 8
"""Periods of training part from which the seasonal hint averages two periods (``seasonal_days=-1``)."""
ACTIVITY_MIX_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
"""Weights of the transition-count activity model tried against the network's on validation."""
MAX_INFER_THREADS = 4
"""The most worker threads the packed inference takes by default (``infer_threads=-1``)."""
ACTIVITY_STRENGTH_GRID = (2.0, 5.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
"""Strengths of the group prior tried on validation when the series has pair groups (beside Laplace)."""


@contextlib.contextmanager
def torch_determinism(seed: int, threads: int) -> Iterator[None]:
    """A fixed thread count and a seeded generator, restored afterwards.

    CPU kernels of LSTM/Linear are deterministic for a fixed thread count (tested: same seed, same bytes).
    ``torch.use_deterministic_algorithms`` is not called: it imports torch's compiler (~10 s) and
    changes nothing for these CPU kernels."""
    import torch

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)


@functools.cache
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """numpy's BLAS (OpenBLAS) on one thread for the block, restored afterwards. OpenBLAS's worker threads
    busy-wait for a while after each call, and a feature step of the packed inference calls it (the
    window anchors: a product over the window of every pair); on two cores that spinning thread took a
    core from the LSTM's inference workers: a 10,100-pair forecast took 86-143 ms (median 98) against
    71-93 ms (median 76) with OpenBLAS on one thread, seven fresh processes each. The values are the same
    to float32 rounding (OpenBLAS may split one product's sum between its threads: 4% of a forecast's
    quantiles moved, by 6e-7 relative at most), and no longer depend on the machine's core count."""
    with _blas_threads().limit(limits=1, user_api="blas"):
        yield


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no GPU", field="device")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}", field="device")
    return device


class LstmForecaster(Forecaster):
    name = "lstm"

    def __init__(
        self,
        *,
        window: int = 24,
        hidden: int = 32,
        layers: int = 1,
        epochs: int = 15,
        batch_size: int = 512,
        lr: float = 2e-3,
        windows_per_epoch: int = 65_536,
        patience: int = 3,
        activity_weight: float | None = None,
        lr_decay: float = 0.85,
        median_weight: float = 1.0,
        pair_stats: bool = True,
        seasonal_lag: int = -1,
        activity_input: int = -1,
        anchor_alpha: float = -1.0,
        network_context: int = -1,
        seasonal_days: int = -1,
        context_seasonal: bool = True,
        device: str = "auto",
        threads: int = 1,
        infer_threads: int = -1,
        progress: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if infer_threads == 0 or infer_threads < -1:
            raise ConfigError(f"infer_threads must be >= 1 or -1 (auto), got {infer_threads}", element="lstm")
        if window < 2 or hidden < 1 or layers < 1 or epochs < 1 or batch_size < 1 or threads < 1:
            raise ConfigError(
                "window >= 2 and hidden, layers, epochs, batch_size, threads >= 1", element="lstm"
            )
        if anchor_alpha > 1.0 or anchor_alpha == 0.0:
            raise ConfigError(
                f"anchor_alpha must be in (0, 1] or -1 (auto), got {anchor_alpha}", element="lstm"
            )
        if seasonal_days == 0 or seasonal_days < -1:
            raise ConfigError(f"seasonal_days must be >= 1 or -1 (auto), got {seasonal_days}", element="lstm")
        if activity_weight is not None and activity_weight < 0:
            raise ConfigError(f"activity_weight must be >= 0, got {activity_weight}", element="lstm")
        self.hyper: dict[str, Any] = {
            "window": window, "hidden": hidden, "layers": layers, "epochs": epochs, "batch_size": batch_size,
            "lr": lr, "windows_per_epoch": windows_per_epoch, "patience": patience,
            "activity_weight": activity_weight, "threads": threads, "lr_decay": lr_decay,
            "median_weight": median_weight, "pair_stats": pair_stats, "seasonal_lag": seasonal_lag,
            "activity_input": activity_input, "anchor_alpha": anchor_alpha,
            "network_context": network_context, "seasonal_days": seasonal_days,
            "context_seasonal": context_seasonal, "infer_threads": infer_threads,
        }  # fmt: skip
        self.device_request = device
        self.progress = progress
        self.scaler = Scaler(np.zeros(0), np.zeros(0), 0.0)
        self.context: NetworkContext | None = None
        """Node totals' scaling and the pairs' ends, with the network context input."""
        self.spec = self._spec(())
        self.history_log: list[dict[str, float]] = []
        self.train_windows = 0
        self._net: QuantileLstm | None = None
        self.activity_counts = ActivityModel()
        self.activity_mix = 0.0
        """Weight of the transition counts in the activity forecast of a pair idle at ``o-1`` (tuned on
        validation by log loss)."""
        self.activity_mix_active = 0.0
        """The same for a pair active at ``o-1``."""
        self.activity_mix_absent = 0.0
        """The same for a pair one of whose ends did not exist at ``o-1`` (counts with the absent state)."""

    @property
    def min_context(self) -> int:
        return self.spec.min_context

    @property
    def inference_workers(self) -> int:
        """Worker threads of the packed CPU inference (:meth:`predict_at`): ``infer_threads``, or with -1
        (auto) one per core, at most ``MAX_INFER_THREADS``. Unlike ``threads`` (training's), it changes no
        weight and no forecast: the workers share independent chunks and give the same bytes as one
        (tested). Each runs torch on one thread with the numba kernel without the GIL, so no OpenMP team
        spins for a core another process holds."""
        wanted = int(self.hyper.get("infer_threads", -1))
        return wanted if wanted >= 1 else max(1, min(MAX_INFER_THREADS, os.cpu_count() or 1))

    @property
    def features(self) -> tuple[str, ...]:
        return self.spec.names()

    def _spec(self, exog_names: tuple[str, ...]) -> FeatureSpec:
        return FeatureSpec(
            window=int(self.hyper["window"]),
            horizon=self.horizon,
            seasonal_lag=max(int(self.hyper["seasonal_lag"]), 0),
            pair_stats=bool(self.hyper["pair_stats"]),
            exog_names=exog_names,
            activity_flag=int(self.hyper.get("activity_input", 0)) > 0,
            anchor_alpha=float(self.hyper.get("anchor_alpha", 1.0)),
            network_context=int(self.hyper.get("network_context", 0)) > 0,
            seasonal_days=max(int(self.hyper.get("seasonal_days", 1)), 1),
            context_seasonal=bool(self.hyper.get("context_seasonal", False)),
        )

    def _resolve_seasonal_lag(self, history: PairSeries, split: int) -> None:
        """``-1`` (auto): one day of steps when the training part holds at least four days, else none."""
        if int(self.hyper["seasonal_lag"]) >= 0:
            return
        day_steps = round(DAY_S / history.interval_s)
        self.hyper["seasonal_lag"] = day_steps if day_steps >= self.horizon and split >= 4 * day_steps else 0

    def _resolve_seasonal_days(self, split: int) -> None:
        """``-1`` (auto): the seasonal hint averages the last two periods when the training part holds at
        least ``SEASONAL_TWO_DAYS_MIN`` periods (six of them with two periods of context before them), else
        one period. One period earlier alone is noisier: on Abilene (seed 0, with the network context) it
        took h=6 from 0.948x to 0.944x EWMA."""
        if int(self.hyper["seasonal_days"]) > 0:
            return
        lag = int(self.hyper["seasonal_lag"])
        self.hyper["seasonal_days"] = 2 if lag > 0 and split >= SEASONAL_TWO_DAYS_MIN * lag else 1

    def _resolve_activity_input(self, history: PairSeries, split: int) -> None:
        """``-1`` (auto): feed the window's on/off flags when pairs go idle (at least
        ``IDLE_SHARE_FOR_FLAGS`` of the training values are 0), which the level-invariant traffic input
        hides; series that are always on (traffic matrices) get no such input."""
        if int(self.hyper["activity_input"]) >= 0:
            return
        idle_share = float(np.mean(history.values[:split] <= 0.0))
        self.hyper["activity_input"] = int(idle_share >= IDLE_SHARE_FOR_FLAGS)

    def _resolve_network_context(self, history: PairSeries) -> None:
        """``-1`` (auto): feed the network context (node and network totals) for traffic matrices: series
        whose pairs are always on (no on/off input) and whose pairs' ends are nodes of the series."""
        if int(self.hyper["network_context"]) >= 0:
            return
        matrix = pair_ends(history) is not None and len(history.nodes) >= 3
        self.hyper["network_context"] = int(matrix and int(self.hyper["activity_input"]) == 0)

    def _resolve_activity_weight(self) -> None:
        """``None`` (auto): the activity loss weighs 1.0 beside the pinball loss where pairs go idle (the
        on/off input is on), 0.05 where they are always on (there the activity is nearly certain and the
        quantiles are what matters)."""
        if self.hyper["activity_weight"] is None:
            self.hyper["activity_weight"] = 1.0 if int(self.hyper["activity_input"]) > 0 else 0.05

    def _resolve_anchor_alpha(self, history: PairSeries, split: int) -> None:
        """``-1`` (auto): the smoothing whose anchor, taken as the forecast itself, has the lowest NMAE
        over the horizon on the training part, if that is at least ``ANCHOR_MIN_GAIN`` below the last
        value's; else the last value (1.0). The network sees the window and learns short-range smoothing
        itself, and a smoothed anchor lags a level shift: it pays where the last value is a poor level
        (traffic bursty tick to tick: the default run's RPC pairs, 23% lower), not on smooth aggregates
        (Abilene: 6% lower, and the LSTM's h=6 NMAE over seeds 0-4 went from 0.949x to 0.951x EWMA)."""
        if float(self.hyper["anchor_alpha"]) > 0.0:
            return
        scaler = Scaler.fit(history.values[:split])
        origins = history.origins(int(self.hyper["window"]), self.horizon, stop=split)
        if origins.size == 0:
            self.hyper["anchor_alpha"] = 1.0
            return
        picked = origins[:: max(1, origins.size // 512)]
        scaled = scaler.standardise(history.values[:split])  # every window and target ends before split
        steps = picked[:, None] + np.arange(-int(self.hyper["window"]), 0)[None, :]
        level = scaled[steps].astype(np.float64)  # [O, W, P]
        actual = history.values[picked[:, None] + np.arange(self.horizon)[None, :]]  # [O, H, P]
        scores = []
        for alpha in ANCHOR_ALPHA_GRID:
            anchor = self._spec_with(alpha).anchor(level, axis=1)  # [O, P]
            point = np.expm1(np.clip(anchor * scaler.sd + scaler.mu, 0.0, scaler.max_log))
            scores.append(float(np.abs(point[:, None, :] - actual).sum() / max(np.abs(actual).sum(), 1e-12)))
        best = int(np.argmin(scores))
        gain = 1.0 - scores[best] / scores[0] if scores[0] > 0 else 0.0  # ANCHOR_ALPHA_GRID[0] is 1.0
        self.hyper["anchor_alpha"] = float(ANCHOR_ALPHA_GRID[best]) if gain >= ANCHOR_MIN_GAIN else 1.0

    def _spec_with(self, alpha: float) -> FeatureSpec:
        return FeatureSpec(window=int(self.hyper["window"]), horizon=self.horizon, anchor_alpha=alpha)

    def prepare(self, history: PairSeries, split: int) -> None:
        """Resolve the automatic hyper-parameters from the training part and fix the inputs (before any
        training: in process or data-parallel on Ray)."""
        self._resolve_seasonal_lag(history, split)
        self._resolve_seasonal_days(split)
        self._resolve_activity_input(history, split)
        self._resolve_activity_weight()
        self._resolve_anchor_alpha(history, split)
        self._resolve_network_context(history)
        self.spec = self._spec(history.exog_names)
        self.context = NetworkContext.fit(history, split) if self.spec.network_context else None

    def context_of(self, series: PairSeries, rows: IntArray | None = None) -> ContextTable | None:
        """The network context inputs ``[T, P, 3]`` of ``series``, gathered on demand (None without that
        input); ``rows``: the steps that will be read, summed at once."""
        if not self.spec.network_context:
            return None
        if self.context is None:
            raise ValidationError("the LSTM has no network context scaling: fit it first", element="lstm")
        return self.context.build(series, rows)

    # -- fitting ---------------------------------------------------------------------------------
    def _fit(self, history: PairSeries, split: int) -> None:
        self.prepare(history, split)
        window, horizon = self.min_context, self.horizon
        train_origins = history.origins(window, horizon, stop=split)
        val_origins = history.origins(window, horizon, start=split)
        if train_origins.size == 0 or val_origins.size == 0:
            raise TrafficError(
                f"model 'lstm' needs training and validation origins with {window} steps of history and "
                f"{horizon} targets; the history ({history.steps} steps) is too short",
                field="tm",
            )
        self.scaler = Scaler.fit(history.values[:split])
        with torch_determinism(self.seed, self.hyper["threads"]):
            self._net = self._new_net()
            self._train(
                history, train_origins, val_origins, int(self.hyper["epochs"]), float(self.hyper["lr"])
            )
        self.tune_activity_mix(history, split, val_origins)

    def tune_activity_mix(self, history: PairSeries, split: int, val_origins: IntArray) -> None:
        """Combine the network's activity forecast with per-pair transition counts, with the count model
        and the weights that give the lowest log loss on validation.

        A network trained with cross-entropy on a few rare events (a pair waking after an hour of silence,
        once in the training part) drives their probability to ~1e-6, where the counts say ~1e-3; log loss
        is the score that notices (Brier barely does), and the scaffolder's ``min_probability`` reads
        exactly that tail. The count models tried: the baselines' Laplace-smoothed counts and, when some
        pair group of the series holds more than one pair, counts shrunk towards their group's pooled rate
        at each strength of ``ACTIVITY_STRENGTH_GRID``, with a third state (one end does not exist) when
        the series' telemetry reports memory (:meth:`PairSeries.live`); each with one weight per state of
        the pair at ``o-1`` (the losses are separate sums, so each weight is chosen on its own). The
        chosen counts are then refitted on the whole history."""
        with torch_determinism(self.seed, self.hyper["threads"]):
            network = self._infer(history, val_origins, self.horizon)[1]
        active = history.values[val_origins[:, None] + np.arange(self.horizon)[None, :]] > 0.0
        best: tuple[float, ActivityModel, list[float]] | None = None
        for model in _activity_candidates(history):
            model.fit(history.slice(0, split), self.horizon)
            counted = model.predict(history, val_origins, self.horizon)
            state = np.broadcast_to(model.state_before(history, val_origins)[:, None, :], active.shape)
            chosen = [_best_mix(network, counted, active, state == s) for s in range(model.states)]
            loss = sum(part for _, part in chosen) / max(active.size, 1)
            if best is None or loss < best[0] - 1e-12:
                best = (loss, model, [w for w, _ in chosen])
        assert best is not None
        _, self.activity_counts, weights = best
        self.activity_mix, self.activity_mix_active = weights[0], weights[1]
        self.activity_mix_absent = weights[2] if len(weights) > 2 else 0.0
        self.activity_counts.fit(history, self.horizon)

    def _partial_fit(self, recent: PairSeries) -> None:
        origins = recent.origins(self.min_context, self.horizon)
        if origins.size == 0:
            raise TrafficError(
                f"partial_fit needs at least {self.min_context + self.horizon} contiguous steps", field="tm"
            )
        with torch_determinism(self.seed + 1 + len(self.history_log), self.hyper["threads"]):
            self._train(recent, origins, None, 1, float(self.hyper["lr"]) * 0.2)
        if self.activity_counts.counts.size:
            self.activity_counts.update(recent)

    def _new_net(self) -> QuantileLstm:
        from netscaffold.predict.lstm_net import QuantileLstm

        return QuantileLstm(
            len(self.spec.sequence_names()),
            len(self.spec.static_names()),
            hidden=self.hyper["hidden"],
            layers=self.hyper["layers"],
            horizon=self.horizon,
            levels=self.levels,
        )

    def _train(
        self, series: PairSeries, origins: IntArray, val_origins: IntArray | None, epochs: int, lr: float
    ) -> None:

        from netscaffold.predict.lstm_train import Adam, TrainBatchMaker, progress_bar

        net = self._require_net()
        device = resolve_device(self.device_request)
        net.to(device)
        maker = TrainBatchMaker(self, series, origins, device)
        optimiser = Adam(net.parameters(), lr=lr)
        rng = np.random.default_rng(self.seed + len(self.history_log))
        best = (float("inf"), {k: v.detach().clone() for k, v in net.state_dict().items()})
        stale = 0
        with progress_bar(self.progress, epochs) as advance:
            for epoch in range(epochs):
                start_s = time.perf_counter()
                train_loss = maker.run_epoch(net, optimiser, rng)
                record = {
                    "epoch": float(epoch), "train_loss": train_loss, "epoch_s": 0.0,
                    "train_s": time.perf_counter() - start_s, "windows": float(maker.last_epoch),
                }  # fmt: skip
                if val_origins is not None:
                    record["val_nmae"] = self._val_nmae(series, val_origins)
                record["epoch_s"] = time.perf_counter() - start_s
                self.history_log.append(record)
                advance(record)
                optimiser.lr *= float(self.hyper["lr_decay"])
                if val_origins is None:
                    continue
                if record["val_nmae"] < best[0] - 1e-5:
                    best, stale = (record["val_nmae"], _clone_state(net)), 0
                else:
                    stale += 1
                    if stale >= int(self.hyper["patience"]):
                        break
        if val_origins is not None:
            net.load_state_dict(best[1])
        self.train_windows += maker.seen

    def _val_nmae(self, series: PairSeries, origins: IntArray) -> float:
        point = self._infer(series, origins, self.horizon)[0][..., self.levels.index(0.5)]
        actual = series.values[origins[:, None] + np.arange(self.horizon)[None, :]]
        per_step = np.abs(point - actual).sum(axis=(0, 2)) / np.maximum(actual.sum(axis=(0, 2)), 1e-12)
        return float(per_step.mean())

    def _require_net(self) -> QuantileLstm:
        if self._net is None:
            raise ValidationError("the LSTM has no network: fit or load it first", element="lstm")
        return self._net

    # -- inference -------------------------------------------------------------------------------
    def _predict_at(self, series: PairSeries, origins: IntArray, horizon: int) -> Forecast:
        if horizon > self.horizon:
            raise ValidationError(
                f"the LSTM was trained for horizon {self.horizon}, asked for {horizon}", field="horizon"
            )
        given = self._spec(series.exog_names).names()
        if given != self.features:
            raise TrafficError(
                f"the model was trained with features {list(self.features)}, the input has {list(given)}",
                field="features",
            )
        on_cpu = next(self._require_net().parameters()).device.type == "cpu"
        # on CPU the packed path's worker threads run torch on one thread each, and so does this one
        # (an OpenMP team beside them would spin for cores that they hold)
        with torch_determinism(self.seed, 1 if on_cpu else self.hyper["threads"]), single_threaded_blas():
            quantiles, activity = self._infer(series, origins, horizon, packed=True)
        activity = self.calibrated_activity(series, origins, activity)
        return Forecast(origins=origins, levels=self.levels, quantiles=quantiles, activity=activity)

    def calibrated_activity(self, series: PairSeries, origins: IntArray, network: FloatArray) -> FloatArray:
        """The network's activity ``[O, H, P]`` mixed with the transition counts at ``activity_mix`` for
        pairs idle at ``o-1`` and ``activity_mix_active`` for pairs active then (see
        :meth:`tune_activity_mix`; ``activity_mix_absent`` for pairs with an end that did not exist then);
        the network's own where every weight is 0."""
        weights = np.array([self.activity_mix, self.activity_mix_active, self.activity_mix_absent])
        if not np.any(weights > 0.0):
            return network
        counts = self.activity_counts
        counted = counts.predict(series, origins, network.shape[1])
        weight = weights[counts.state_before(series, origins)][:, None, :]
        return (1.0 - weight) * network + weight * counted

    def _infer(
        self, series: PairSeries, origins: IntArray, horizon: int, *, packed: bool = False
    ) -> tuple[FloatArray, FloatArray]:
        """Quantiles ``[O, H, P, Q]`` and activity ``[O, H, P]``: every pair of a chunk of origins in one
        forward pass. Only the steps the windows read are scaled (not the whole history).

        ``packed`` (what :meth:`predict_at` uses on CPU) runs the LSTM through
        :class:`~netscaffold.predict.lstm_net.PackedLstm`, ``INFER_PAIR_CHUNK`` sequences at a time on
        :attr:`inference_workers` threads: the same forecasts up to float rounding (tested), 2.4-3x faster
        here. Training's validation keeps ``nn.LSTM`` (``packed=False``), so trained weights do not change."""
        import torch

        from netscaffold.predict.lstm_net import PackedLstm

        net = self._require_net()
        device = next(net.parameters()).device
        runner = PackedLstm(net.lstm) if packed and device.type == "cpu" else None
        first = int(origins.min()) - self.min_context if origins.size else 0
        part = series.slice(first, int(origins.max()) if origins.size else 0)
        local = origins - first
        rows = self.spec.rows_read(local)
        scaled = _standardise_rows(self.scaler, part.values, rows, torch_log1p=runner is not None)
        context = self.context_of(part, rows)
        n_pairs = series.n_pairs
        per_chunk = max(1, INFER_CHUNK // max(n_pairs, 1))
        quantiles = np.empty((origins.size, horizon, n_pairs, len(self.levels)))
        activity = np.empty((origins.size, horizon, n_pairs))
        net.eval()
        with torch.inference_mode():
            for lo in range(0, origins.size, per_chunk):
                chunk = local[lo : lo + per_chunk]
                if runner is None:
                    inputs, static, last = self.spec.build_all_pairs(
                        part, scaled, self.scaler, chunk, context=context
                    )
                    deltas, logits = net(
                        torch.from_numpy(inputs).to(device), torch.from_numpy(static).to(device)
                    )
                else:
                    inputs, static, last = self.spec.build_all_pairs_time_major(
                        part, scaled, self.scaler, chunk, context=context
                    )
                    hidden = runner.run(
                        torch.from_numpy(inputs), chunk=INFER_PAIR_CHUNK, threads=self.inference_workers
                    )
                    deltas, logits = _decode_in_chunks(net, hidden, torch.from_numpy(static))
                pair_idx = np.tile(np.arange(n_pairs, dtype=np.int64), chunk.size)
                z = self.back_transform(torch.from_numpy(last).to(device), deltas, pair_idx)[:, :horizon]
                prob = torch.sigmoid(logits[:, :horizon])
                shape = (chunk.size, n_pairs, horizon)
                quantiles[lo : lo + chunk.size] = z.cpu().numpy().reshape(*shape, -1).transpose(0, 2, 1, 3)
                activity[lo : lo + chunk.size] = prob.cpu().numpy().reshape(shape).transpose(0, 2, 1)
        return _monotone_in_place(quantiles), activity

    def back_transform(self, last: torch.Tensor, deltas: torch.Tensor, pair_idx: IntArray) -> torch.Tensor:
        """Values in the series unit from standardised deltas ``[B, H, Q]`` added to ``last[B]``."""
        import torch

        mu = torch.from_numpy(self.scaler.mu[pair_idx].astype(np.float32)).to(deltas.device)
        sd = torch.from_numpy(self.scaler.sd[pair_idx].astype(np.float32)).to(deltas.device)
        logged = (last[:, None, None] + deltas) * sd[:, None, None] + mu[:, None, None]
        return torch.expm1(torch.clamp(logged, 0.0, self.scaler.max_log))

    # -- persistence -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            **self.base_config(),
            "hyper": self.hyper,
            "features": list(self.features),
            "exog_names": list(self.spec.exog_names),
            "max_log": self.scaler.max_log,
            "train_windows": self.train_windows,
            "history": self.history_log,
            "activity_mix": self.activity_mix,
            "activity_mix_active": self.activity_mix_active,
            "activity_mix_absent": self.activity_mix_absent,
            "activity_absent": self.activity_counts.absent,
            "activity_strength": None
            if self.activity_counts.groups is None
            else self.activity_counts.strength,
        }

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        state = {f"net.{k}": v.detach().cpu().numpy() for k, v in self._require_net().state_dict().items()}
        scaler: dict[str, npt.NDArray[Any]] = {"scaler.mu": self.scaler.mu, "scaler.sd": self.scaler.sd}
        if self.scaler.active_share is not None:
            scaler["scaler.active_share"] = self.scaler.active_share
        if self.context is not None:
            scaler["context.mu"], scaler["context.sd"] = self.context.mu, self.context.sd
        if self.activity_counts.counts.size:
            scaler["activity_counts"] = self.activity_counts.counts
        counts = self.activity_counts
        if counts.groups is not None and counts.prior is not None:
            scaler["activity_groups"] = counts.groups
            scaler["activity_prior"] = counts.prior
        return {**scaler, **state}

    def restore(self, config: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
        import torch

        if int(self.hyper.get("activity_input", -1)) < 0:
            self.hyper["activity_input"] = 0  # checkpoints from before the on/off input
        if float(self.hyper.get("anchor_alpha", -1.0)) <= 0.0:
            self.hyper["anchor_alpha"] = 1.0  # checkpoints from before the smoothed anchor: the last value
        if int(self.hyper.get("seasonal_days", -1)) < 0:
            # what the checkpoint resolved; one period in checkpoints from before the multi-period hint
            self.hyper["seasonal_days"] = int(config.get("hyper", {}).get("seasonal_days", 1))
        if int(self.hyper.get("network_context", -1)) < 0:
            # what the checkpoint resolved; 0 in checkpoints from before the network context input
            self.hyper["network_context"] = int(config.get("hyper", {}).get("network_context", 0))
        self.spec = self._spec(tuple(config.get("exog_names", ())))
        if tuple(config["features"]) != self.features:
            raise CheckpointError(
                f"feature list {config['features']} does not match the model", element="lstm"
            )
        share = arrays.get("scaler.active_share")  # absent in checkpoints without the on/off input
        self.scaler = Scaler(arrays["scaler.mu"], arrays["scaler.sd"], float(config["max_log"]), share)
        if self.spec.activity_flag and self.spec.pair_stats and share is None:
            raise CheckpointError("the pairs' active shares are missing", element="lstm")
        shapes = {a.shape for a in (self.scaler.mu, self.scaler.sd, share) if a is not None}
        if shapes != {(len(self.pairs),)}:
            raise CheckpointError("scalers do not match the checkpoint's pairs", element="lstm")
        self.context = self._restored_context(arrays)
        self.history_log = list(config.get("history", []))
        self.train_windows = int(config.get("train_windows", 0))
        self._restore_activity_mix(config, arrays)
        net = self._new_net()
        state = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        net.load_state_dict(state, strict=True)
        self._net = net.to(resolve_device(self.device_request))

    def _restored_context(self, arrays: dict[str, npt.NDArray[Any]]) -> NetworkContext | None:
        """The network context's scaling (its pairs' ends from the checkpoint's pairs and nodes)."""
        if not self.spec.network_context:
            return None
        mu, sd = arrays.get("context.mu"), arrays.get("context.sd")
        if mu is None or sd is None:
            raise CheckpointError("the network context's scaling is missing", element="lstm")
        ends = ends_in(self.pairs, tuple(self.nodes))
        if ends is None:
            raise CheckpointError(
                "the network context needs pairs between the checkpoint's nodes", element="lstm"
            )
        shape = (2 * len(self.nodes) + 1,)
        if mu.shape != shape or sd.shape != shape or not np.all(np.isfinite(mu)) or not np.all(sd > 0):
            raise CheckpointError(
                f"network context scaling of shape {mu.shape} / {sd.shape} does not match {len(self.nodes)} "
                "nodes (or is not finite and positive)",
                element="lstm",
            )
        return NetworkContext(*ends, np.asarray(mu, np.float64), np.asarray(sd, np.float64))

    def _restore_activity_mix(self, config: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
        """The counts, their weights and their group prior; checkpoints from before the mix have none
        (weights 0), those from before the per-state weights one weight for both states and Laplace
        counts."""
        mix = float(config.get("activity_mix", 0.0))
        weights = {
            "activity_mix": mix,
            "activity_mix_active": float(config.get("activity_mix_active", mix)),
            "activity_mix_absent": float(config.get("activity_mix_absent", 0.0)),
        }
        for name, value in weights.items():
            if not 0.0 <= value <= 1.0:
                raise CheckpointError(f"{name} must be within 0..1, got {value}", element="lstm")
        counts = arrays.get("activity_counts")
        if max(weights.values()) > 0.0 and counts is None:
            raise CheckpointError("activity_mix is set but the activity counts are missing", element="lstm")
        model = self._restored_counts(config, arrays)
        if counts is not None:
            shape = (len(self.pairs), model.states, 2)
            if counts.ndim != 4 or counts.shape[1:] != shape or counts.shape[0] < 1:
                raise CheckpointError(
                    f"activity counts of shape {counts.shape} do not match {len(self.pairs)} pairs and "
                    f"{model.states} states",
                    element="lstm",
                )
            model.counts = np.asarray(counts, dtype=np.float64)
            if model.prior is not None and model.prior.shape != counts.shape[:3]:
                raise CheckpointError(
                    f"activity prior of shape {model.prior.shape} does not match the counts {counts.shape}",
                    element="lstm",
                )
        self.activity_counts = model
        self.activity_mix = weights["activity_mix"]
        self.activity_mix_active = weights["activity_mix_active"]
        self.activity_mix_absent = weights["activity_mix_absent"]

    def _restored_counts(self, config: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> ActivityModel:
        """Laplace counts, or group-pooled ones when the checkpoint names a prior strength."""
        strength = config.get("activity_strength")
        absent = bool(config.get("activity_absent", False))
        if strength is None:
            return ActivityModel(absent=absent)
        groups, prior = arrays.get("activity_groups"), arrays.get("activity_prior")
        if groups is None or prior is None:
            raise CheckpointError(
                "activity_strength is set but the activity groups or prior are missing", element="lstm"
            )
        if groups.shape != (len(self.pairs),):
            raise CheckpointError(
                f"activity groups of shape {groups.shape} do not match {len(self.pairs)} pairs",
                element="lstm",
            )
        try:
            model = ActivityModel(
                groups=np.asarray(groups, dtype=np.int64), strength=float(strength), absent=absent
            )
        except TrafficError as exc:
            raise CheckpointError(str(exc), element="lstm") from None
        model.prior = np.asarray(prior, dtype=np.float64)
        return model


def _activity_candidates(history: PairSeries) -> list[ActivityModel]:
    """Laplace counts, and group-pooled counts at each strength when some group of the series holds more
    than one pair (with the absent state when the telemetry tells which endpoints exist): a pair alone in
    its group has nothing to pool with."""
    codes = history.group_codes()
    if codes is None or int(np.bincount(codes).max()) < 2:
        return [ActivityModel()]
    absent = history.live() is not None
    return [
        ActivityModel(),
        *(ActivityModel(groups=codes, strength=a, absent=absent) for a in ACTIVITY_STRENGTH_GRID),
    ]


def _best_mix(
    network: FloatArray, counted: FloatArray, active: npt.NDArray[np.bool_], where: npt.NDArray[np.bool_]
) -> tuple[float, float]:
    """The weight of ``ACTIVITY_MIX_GRID`` with the lowest log loss summed over the entries ``where``, and
    that sum (the lowest weight on a tie)."""
    if not where.any():
        return 0.0, 0.0
    net, counts, target = network[where], counted[where], active[where]
    losses = [_log_loss((1.0 - w) * net + w * counts, target) * target.size for w in ACTIVITY_MIX_GRID]
    best = int(np.argmin(losses))
    return float(ACTIVITY_MIX_GRID[best]), float(losses[best])


def _log_loss(prob: FloatArray, active: npt.NDArray[np.bool_]) -> float:
    p = np.clip(prob, 1e-12, 1.0 - 1e-12)
    return float(-np.mean(np.where(active, np.log(p), np.log1p(-p))))


def _clone_state(net: QuantileLstm) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _decode_in_chunks(
    net: QuantileLstm, hidden: torch.Tensor, static: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``net.decode`` ``INFER_PAIR_CHUNK`` rows at a time: small temporaries that the allocator reuses
    (whole-batch ones are fresh pages each call, ~1 ms per operation at 10,000 rows)."""
    import torch

    parts = [
        net.decode(hidden[lo : lo + INFER_PAIR_CHUNK], static[lo : lo + INFER_PAIR_CHUNK], contiguous=True)
        for lo in range(0, hidden.shape[0], INFER_PAIR_CHUNK)
    ]
    return torch.cat([d for d, _ in parts]), torch.cat([g for _, g in parts])


def _standardise_torch(scaler: Scaler, values: FloatArray) -> npt.NDArray[np.float32]:
    """:meth:`Scaler.standardise` with torch's vectorised ``log1p`` (numpy's is a scalar loop, ~3x slower);
    the same up to the last bit of the float64 logarithm."""
    import torch

    def torch_log1p(x: FloatArray) -> FloatArray:
        return np.asarray(torch.log1p(torch.from_numpy(x)).numpy())

    return standardised_log(values, scaler.mu, scaler.sd, torch_log1p)


def _standardise_rows(
    scaler: Scaler, values: FloatArray, rows: IntArray, *, torch_log1p: bool
) -> npt.NDArray[np.float32]:
    """The standardised ``values`` (``torch_log1p``: :func:`_standardise_torch`, else
    :meth:`Scaler.standardise`) at the steps ``rows``; the other rows are zero (never read). A forecast
    from one origin reads ~40 of the 290 steps its slice holds with a one-day seasonal hint."""
    standardise = functools.partial(_standardise_torch, scaler) if torch_log1p else scaler.standardise
    if 2 * rows.size >= values.shape[0]:
        return standardise(values)
    out = np.zeros(values.shape, np.float32)
    out[rows] = standardise(values[rows])
    return out


def _monotone_in_place(quantiles: FloatArray) -> FloatArray:
    """:func:`~netscaffold.predict.base.monotone` (non-negative, non-crossing along the last axis) with the
    same values, in place and one level at a time: ``np.maximum.accumulate`` over a last axis of 3 takes
    ~9 ms on the benchmark's 300,000 values, this ~0.5 ms."""
    np.maximum(quantiles, 0.0, out=quantiles)
    for level in range(1, quantiles.shape[-1]):
        np.maximum(quantiles[..., level], quantiles[..., level - 1], out=quantiles[..., level])
    return quantiles
