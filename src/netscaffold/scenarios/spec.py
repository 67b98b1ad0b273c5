"""Scenario files (YAML): what `netscaffold run` compares, validated by pydantic.

An unknown key or a wrong type is refused naming the key path and its line in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from netscaffold.errors import ConfigError

SCENARIO_DIR = Path(__file__).parent / "files"
KNOWN_FORECASTERS = ("naive", "ewma", "meank", "seasonal", "quantile", "lstm")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopologySpec(_Strict):
    generate: Literal["leaf-spine", "fat-tree"] | None = "leaf-spine"
    file: str | None = None
    spines: Annotated[int, Field(ge=1)] = 4
    leaves: Annotated[int, Field(ge=1)] = 8
    hosts_per_leaf: Annotated[int, Field(ge=1)] = 4
    k: Annotated[int, Field(ge=2)] = 4
    link_bps: Annotated[float, Field(gt=0)] = 10e9
    host_link_bps: Annotated[float, Field(gt=0)] | None = None
    firewalls: tuple[str, ...] = ()
    """Node ids to treat as firewalls (permits are scaffolded on them)."""


class WorkloadSpec(_Strict):
    kind: Literal["microservices", "batch", "tm-replay", "flow-trace"] = "microservices"
    tm: str | None = None
    flows: str | None = None
    app_telemetry: str | None = None
    interval_s: Annotated[float, Field(gt=0)] = 10.0
    flow_rate: Annotated[float, Field(gt=0)] = 1000.0
    flow_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    options: dict[str, Any] = Field(default_factory=dict)


class RiskSpec(_Strict):
    min_probability: Annotated[float, Field(ge=0, le=1)] = 0.3
    reserve_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.9


class BudgetSpec(_Strict):
    rule_slots_per_device: Annotated[int, Field(ge=0)] = 1024
    link_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5


class LifecycleSpec(_Strict):
    """Orchestrator events (scale-out, replace, failure, recovery, scale-in) adjusting the forecasts for
    young and gone replicas (:mod:`netscaffold.predict.lifecycle`); ``enabled: false`` ignores them."""

    enabled: bool = True
    settle_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0


class RefineSpec(_Strict):
    missed_threshold: Annotated[float, Field(ge=0)] = 0.2
    bandwidth_threshold: Annotated[float, Field(ge=0)] = 0.5
    confirm_idle_s: Annotated[float, Field(ge=0)] = 10.0
    unused_ticks: Annotated[int, Field(ge=1)] = 10
    keep_probability: Annotated[float | None, Field(ge=0, le=1)] = None
    """An idle provisional permit is kept while its pair's P(active within the horizon) is at least this;
    None: the lowest ``min_probability`` of the risk settings (what the scaffolder installs at), so the
    refiner never drops what the scaffolder would put straight back."""


class Scenario(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    duration_s: Annotated[float, Field(gt=0)] = 300.0
    tick_s: Annotated[float, Field(gt=0)] = 1.0
    horizon: Annotated[int, Field(ge=1, le=60)] = 5
    train_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5
    backend: Literal["sim", "linux"] = "sim"
    profile: str = "sdn-lan"
    idle_timeout_s: Annotated[float, Field(ge=0)] = 10.0
    topology: TopologySpec = Field(default_factory=TopologySpec)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    strategies: tuple[str, ...] = ("reactive", "scaffold:ewma", "scaffold:lstm", "oracle")
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    risk: RiskSpec = Field(default_factory=RiskSpec)
    risk_per_class: dict[str, RiskSpec] = Field(default_factory=dict)
    refine: RefineSpec = Field(default_factory=RefineSpec)
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)
    lstm: dict[str, Any] = Field(
        default_factory=lambda: {
            "epochs": 20,
            "windows_per_epoch": 32768,
            "patience": 4,
            "hidden": 32,
            "lr": 0.005,
            "activity_weight": 1.0,
        }
    )
    """Options of the LSTM forecaster (see `netscaffold.predict.lstm.LstmForecaster`)."""

    def all_risks(self) -> tuple[RiskSpec, ...]:
        """The default risk settings, then each QoS class's own."""
        return (self.risk, *self.risk_per_class.values())

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            check_strategy(name)
        if len(set(value)) != len(value):
            raise ValueError("a strategy is listed twice")
        return value


def check_strategy(name: str) -> str:
    if name in ("reactive", "oracle"):
        return name
    kind, _, forecaster = name.partition(":")
    if kind == "scaffold" and forecaster in KNOWN_FORECASTERS:
        return name
    known = ", ".join(["reactive", "oracle", *(f"scaffold:{f}" for f in KNOWN_FORECASTERS)])
    raise ValueError(f"unknown strategy {name!r} (known: {known})")


def _line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of its closest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            key = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                return line
            line = (key or match).start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_scenario(path: Path, overrides: dict[str, Any] | None = None) -> Scenario:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario: {exc.strerror}", file=where) from None
    except UnicodeDecodeError:
        raise ConfigError("scenario is not UTF-8 text", file=where) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=where,
            line=mark.line + 1 if mark else None,
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("a scenario must be a YAML mapping", file=where)
    data = {**data, **(overrides or {})}
    data.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc) or None
        raise ConfigError(first["msg"], file=where, line=_line_of(node, loc), field=field) from None


def scenario_path(name_or_file: str) -> Path:
    """A shipped scenario by name (``scenarios/files/NAME.yaml``) or a file path."""
    candidate = Path(name_or_file)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise ConfigError("scenario file does not exist", file=name_or_file)
        return candidate
    shipped = SCENARIO_DIR / f"{name_or_file}.yaml"
    if not shipped.is_file():
        names = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown scenario {name_or_file!r} (shipped: {', '.join(names)})")
    return shipped
