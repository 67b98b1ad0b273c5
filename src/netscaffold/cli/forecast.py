"""``netscaffold forecast train | evaluate | predict``: forecasters on traffic matrices or telemetry.

Heavy imports (numpy, torch) stay inside the commands so that ``netscaffold --help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netscaffold.cli.common import console, emit_json, settings_for
from netscaffold.errors import ConfigError

if TYPE_CHECKING:
    from netscaffold.predict.series import PairSeries

forecast_app = typer.Typer(help="Forecast pair traffic: train a model, compare models, predict.")

TmOption = Annotated[Path | None, typer.Option("--tm", help="traffic-matrix file (.npz or long CSV)")]
TelemetryOption = Annotated[
    Path | None, typer.Option("--telemetry", help="telemetry directory (flows.csv, pair_bytes.npz, ...)")
]
FirstSegment = Annotated[
    bool, typer.Option("--first-segment", help="use only the first contiguous segment (before any gap)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]
DeviceOption = Annotated[str | None, typer.Option(help="torch device for the LSTM: auto, cpu or cuda")]
RayOption = Annotated[
    str | None, typer.Option("--ray", help="run on Ray: auto, local or HOST:PORT (default: one process)")
]
RayWorkersOption = Annotated[int, typer.Option("--ray-workers", help="Ray Train workers for --ray")]


def load_series(tm: Path | None, telemetry: Path | None, first_segment: bool = False) -> PairSeries:
    """The pair series from exactly one of ``--tm`` or ``--telemetry``."""
    from netscaffold.predict.series import PairSeries

    if (tm is None) == (telemetry is None):
        raise ConfigError("give exactly one of --tm FILE or --telemetry DIR", field="input")
    if tm is not None:
        from netscaffold.formats.traffic import load_traffic

        series = PairSeries.from_tm(load_traffic(tm))
    else:
        from netscaffold.predict.telemetry_input import pair_series_from_telemetry

        assert telemetry is not None
        series = pair_series_from_telemetry(telemetry)
    if first_segment:
        series = series.first_segment()
    return series


def parse_ints(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"expected comma-separated integers, got {text!r}", field=option) from None
    if not values:
        raise ConfigError("give at least one value", field=option)
    return values


def parse_models(text: str) -> list[str]:
    from netscaffold.predict.registry import MODEL_NAMES

    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or not names:
        raise ConfigError(
            f"unknown model {unknown[0] if unknown else text!r} (known: {', '.join(MODEL_NAMES)})",
            field="models",
        )
    return names


def _lstm_kwargs(epochs: int | None, device: str, progress: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"device": device, "progress": progress}
    if epochs is not None:
        kwargs["epochs"] = epochs
    return kwargs


def _show_progress(ctx: typer.Context, as_json: bool) -> bool:
    return bool(settings_for(ctx)["progress"]) and sys.stderr.isatty() and not as_json


@forecast_app.command("train")
def train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="checkpoint file to write")],
    model: Annotated[str, typer.Option(help="lstm, naive, ewma, meank, seasonal or quantile")] = "lstm",
    tm: TmOption = None,
    telemetry: TelemetryOption = None,
    horizon: Annotated[int, typer.Option(help="horizon steps the model is fitted for")] = 10,
    epochs: Annotated[int | None, typer.Option(help="LSTM epochs (default 15, early stopping)")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of every random source")] = None,
    device: DeviceOption = None,
    first_segment: FirstSegment = False,
    as_json: JsonOption = False,
    ray: RayOption = None,
    ray_workers: RayWorkersOption = 2,
    compare: Annotated[
        bool, typer.Option("--compare", help="with --ray: also train in one process, report both NMAEs")
    ] = False,
) -> None:
    """Fit one model on the whole series (its last 15% tunes / early-stops) and write a checkpoint."""
    import time

    from netscaffold.predict.registry import make_forecaster

    effective = settings_for(ctx, seed=seed, device=device)
    parse_models(model)
    series = load_series(tm, telemetry, first_segment)
    kwargs: dict[str, Any] = {"seed": effective["seed"], "horizon": horizon}
    if model == "lstm":
        kwargs.update(_lstm_kwargs(epochs, effective["device"], _show_progress(ctx, as_json)))
    start, extra = time.perf_counter(), dict[str, Any]()
    if ray is not None:
        from netscaffold.distributed.train import train_on_ray

        if model != "lstm":
            raise ConfigError(
                "--ray trains the LSTM data-parallel; baselines fit in one process", field="ray"
            )
        forecaster, extra = train_on_ray(
            series, ray, workers=ray_workers, compare=compare, lstm_kwargs=kwargs
        )
    else:
        forecaster = make_forecaster(model, **kwargs).fit(series)
    train_s = time.perf_counter() - start
    forecaster.save(out)
    payload = {
        "model": model, "checkpoint": str(out), "train_s": train_s, "pairs": series.n_pairs,
        "steps": series.steps, "fingerprint": forecaster.fingerprint, "config": forecaster.config(), **extra,
    }  # fmt: skip
    if as_json:
        emit_json(payload, seed=effective["seed"], inputs=[p for p in (tm, telemetry) if p is not None])
        return
    console().print(
        f"trained [bold]{model}[/bold] on {series.steps} steps x {series.n_pairs} pairs in {train_s:.1f} s "
        f"-> {out}"
    )
    if "val_nmae" in extra:
        single = extra.get("single_process", {}).get("val_nmae")
        beside = f" (one process: {single:.4f})" if single is not None else ""
        console().print(f"validation NMAE with Ray Train DDP: {extra['val_nmae']:.4f}{beside}")


@forecast_app.command("evaluate")
def evaluate(
    ctx: typer.Context,
    tm: TmOption = None,
    telemetry: TelemetryOption = None,
    models: Annotated[str, typer.Option(help="comma-separated model names")] = (
        "naive,ewma,meank,seasonal,quantile,lstm"
    ),
    horizons: Annotated[str, typer.Option(help="comma-separated horizon steps to score")] = "1,6",
    train_fraction: Annotated[float, typer.Option(help="chronological share used for fitting")] = 0.7,
    epochs: Annotated[int | None, typer.Option(help="LSTM epochs (default 15, early stopping)")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of every random source")] = None,
    device: DeviceOption = None,
    first_segment: FirstSegment = False,
    as_json: JsonOption = False,
    ray: RayOption = None,
) -> None:
    """Fit each model on the first part, score rolling-origin on the rest, print a table."""
    from netscaffold.predict.evaluate import evaluate_models

    effective = settings_for(ctx, seed=seed, device=device)
    names, steps = parse_models(models), parse_ints(horizons, "horizons")
    series = load_series(tm, telemetry, first_segment)
    lstm = _lstm_kwargs(epochs, effective["device"], _show_progress(ctx, as_json))
    common: dict[str, Any] = {
        "train_fraction": train_fraction, "seed": effective["seed"], "model_kwargs": {"lstm": lstm}
    }  # fmt: skip
    if ray is not None:  # each model fits in its own Ray task; the scores are those of one process
        from netscaffold.distributed.train import evaluate_on_ray

        result = evaluate_on_ray(series, names, steps, ray, **common)
    else:
        result = evaluate_models(series, names, steps, **common)
    if as_json:
        emit_json(result, seed=effective["seed"], inputs=[p for p in (tm, telemetry) if p is not None])
        return
    _print_table(result, steps)


def _print_table(result: dict[str, Any], steps: list[int]) -> None:
    from rich.table import Table

    table = Table(title=f"rolling-origin evaluation ({result['split']['test_origins']} origins)")
    for column in ("model", "h", "NMAE", "MAE", "pinball", "cov q90", "cov q99", "train s"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, by_h in result["models"].items():
        for h in steps:
            m = by_h[str(h)]
            best = " *" if result["best_baseline"].get(str(h)) == name else ""
            table.add_row(
                name + best, str(h), f"{m['nmae']:.4f}", f"{m['mae']:.4g}", f"{m['pinball']:.4g}",
                f"{m.get('coverage_q90', float('nan')):.3f}", f"{m.get('coverage_q99', float('nan')):.3f}",
                f"{result['train_s'][name]:.1f}",
            )  # fmt: skip
    console().print(table)
    console().print("* best baseline at that horizon")


@forecast_app.command("predict")
def predict(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="checkpoint written by forecast train")],
    tm: TmOption = None,
    telemetry: TelemetryOption = None,
    horizon: Annotated[int, typer.Option(help="steps to forecast")] = 10,
    at: Annotated[
        int | None, typer.Option("--at", help="origin step: forecast steps at.. (default: the end)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Forecast the steps from ``--at`` on, from the history before it."""
    import numpy as np

    from netscaffold.predict.base import check_horizon
    from netscaffold.predict.checkpoint import load_checkpoint

    check_horizon(horizon)
    model = load_checkpoint(checkpoint)
    series = load_series(tm, telemetry)
    origin = series.steps if at is None else at
    if not 1 <= origin <= series.steps:
        raise ConfigError(f"--at must be within 1..{series.steps}, got {origin}", field="at")
    forecast = model.predict(series.slice(0, origin), horizon)
    quantiles_bps = forecast.quantiles[0] * series.bps_factor
    payload = {
        "model": model.name, "at": origin, "horizon": horizon, "levels": list(forecast.levels),
        "pairs": [f"{a}->{b}" for a, b in series.pairs],
        "quantiles_bps": np.round(quantiles_bps.transpose(1, 0, 2), 3),
        "activity": np.round(forecast.activity[0].T, 4),
    }  # fmt: skip
    if as_json:
        emit_json(payload, inputs=[p for p in (checkpoint, tm, telemetry) if p is not None])
        return
    _print_prediction(payload, quantiles_bps)


def _print_prediction(payload: dict[str, Any], quantiles_bps: Any) -> None:
    from rich.table import Table

    median = payload["levels"].index(0.5)
    top = quantiles_bps[0, :, median].argsort()[::-1][:20]
    table = Table(title=f"{payload['model']}: forecast from step {payload['at']} (20 largest pairs, step 1)")
    for column in ("pair", *(f"q{round(q * 100)} bit/s" for q in payload["levels"]), "P(active)"):
        table.add_column(column, justify="left" if column == "pair" else "right")
    for p in top:
        cells = [f"{v:.4g}" for v in quantiles_bps[0, p]]
        table.add_row(payload["pairs"][p], *cells, f"{payload['activity'][p][0]:.3f}")
    console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(forecast_app, name="forecast")
