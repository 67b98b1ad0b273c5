"""Request and response bodies of the /v1 API (pydantic; unknown fields refused). Config items are the
shared JSON form of :mod:`netscaffold.formats.configjson`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from netscaffold.formats.configjson import (
    Finite,
    ItemBody,
    Name,
    NextHopBody,
    NonNegative,
    Positive,
    Strict,
)


class PlanRequest(Strict):
    """Either ``desired`` (the whole config wanted) or ``source: scaffold`` (from the predicted graph)."""

    source: Literal["desired", "scaffold"] = "desired"
    desired: Annotated[list[ItemBody], Field(max_length=100_000)] | None = None
    dry_run: bool = False


class TelemetryBatch(Strict):
    """Columns of samples: bytes carried from endpoint ``src[i]`` to ``dst[i]`` in the interval ending at
    ``time_s[i]`` (unix seconds)."""

    time_s: Annotated[list[Finite], Field(max_length=200_000)]
    src: Annotated[list[Name], Field(max_length=200_000)]
    dst: Annotated[list[Name], Field(max_length=200_000)]
    bytes: Annotated[list[NonNegative], Field(max_length=200_000)]


class FlowRequestBody(Strict):
    kind: Literal["flow_request"]
    time_s: Finite
    src: Name
    dst: Name
    size_bytes: NonNegative = 0.0
    qos: Name = "best-effort"
    dst_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    setup_delay_s: NonNegative = 0.0


class RouteUpdateBody(Strict):
    kind: Literal["route_update"]
    time_s: Finite
    device: Name
    destination: Name
    next_hops: Annotated[list[NextHopBody], Field(default_factory=list, max_length=64)]
    withdrawn: bool = False


class OrchestratorEventBody(Strict):
    """A replica change the orchestrator announced (Kubernetes: a pod scheduled, ready, gone), read by the
    forecast as :mod:`netscaffold.predict.lifecycle` says: ``scale-out`` (``endpoint``, ``ready_s``),
    ``replace`` (``new``, ``old``, ``ready_s``), ``scale-in`` (``endpoint``), ``failure`` and ``recovery``
    (``subject`` is the endpoint). ``subject`` is the application otherwise."""

    kind: Literal["orchestrator"]
    time_s: Finite
    event: Literal["scale-out", "replace", "scale-in", "failure", "recovery"]
    subject: Name
    endpoint: Name | None = None
    new: Name | None = None
    old: Name | None = None
    ready_s: Finite | None = None

    @model_validator(mode="after")
    def _fields_of_the_event(self) -> OrchestratorEventBody:
        needs = {"scale-out": "endpoint", "scale-in": "endpoint", "replace": "new"}.get(self.event)
        if needs is not None and getattr(self, needs) is None:
            raise ValueError(f"a {self.event} event needs {needs!r}")
        if self.ready_s is not None and self.ready_s < self.time_s:
            raise ValueError(f"ready_s {self.ready_s} is before time_s {self.time_s}")
        return self

    def endpoints(self) -> dict[str, str]:
        """Field name -> endpoint id, for every field that names an endpoint."""
        names = {"endpoint": self.endpoint, "new": self.new, "old": self.old}
        if self.event in ("failure", "recovery"):
            names["subject"] = self.subject
        return {field: name for field, name in names.items() if name is not None}

    def detail(self) -> dict[str, str | float]:
        """The event's details as :class:`netscaffold.telemetry.workload.WorkloadEvent` carries them."""
        fields = {"endpoint": self.endpoint, "new": self.new, "old": self.old, "ready_s": self.ready_s}
        return {key: value for key, value in fields.items() if value is not None}


RoutingBody = Annotated[
    FlowRequestBody | RouteUpdateBody | OrchestratorEventBody, Field(discriminator="kind")
]


class RoutingBatch(Strict):
    events: Annotated[list[RoutingBody], Field(max_length=100_000)]


class BudgetBody(Strict):
    rule_slots_per_device: Annotated[int, Field(ge=0, le=10_000_000)] = 1024
    link_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5


class StrategySettings(Strict):
    forecaster: Literal["naive", "ewma", "meank", "seasonal", "quantile"] = "ewma"
    step_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 1.0
    horizon: Annotated[int, Field(ge=1, le=256)] = 5
    history_steps: Annotated[int, Field(ge=2, le=10_000)] = 256
    min_activity: Annotated[float, Field(ge=0, le=1)] = 0.02
    ttl_margin_s: NonNegative = 2.0
    budget: BudgetBody = BudgetBody()


class TokenRequest(Strict):
    role: Literal["viewer", "operator", "admin"]
    ttl_s: Positive | None = None
    label: Annotated[str, Field(max_length=200)] = ""


class Ack(BaseModel):
    ok: bool = True
    detail: dict[str, Any] = {}
