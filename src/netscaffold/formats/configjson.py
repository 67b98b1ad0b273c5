"""NetworkConfig as JSON, both directions, in one place: the item bodies (pydantic; unknown fields refused)
that the service's API, the run report, the exporters and the distributed agents' checkpoints share, and
the conversions between them and the model (items, configs, plan operations)."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from netscaffold.errors import ValidationError
from netscaffold.model.config import (
    ConfigItem,
    FirewallRule,
    FlowMatch,
    NetworkConfig,
    NextHop,
    Origin,
    Reservation,
    Route,
    VirtualCircuit,
)
from netscaffold.model.plan import OpKind, Plan, PlanOp

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
OriginName = Literal["static", "predicted", "confirmed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NextHopBody(Strict):
    via: Name
    weight: Positive = 1.0


class RouteBody(Strict):
    kind: Literal["route"]
    device: Name
    destination: Name
    next_hops: Annotated[list[NextHopBody], Field(min_length=1, max_length=64)]
    origin: OriginName = "static"
    expires_at: Finite | None = None


class MatchBody(Strict):
    src: Name | None = None
    dst: Name | None = None
    proto: Literal["tcp", "udp", "icmp"] | None = None
    dst_port: Annotated[int, Field(ge=1, le=65535)] | None = None


class FirewallBody(Strict):
    kind: Literal["firewall"]
    device: Name
    match: MatchBody
    action: Literal["accept", "drop"] = "accept"
    origin: OriginName = "static"
    expires_at: Finite | None = None


class ReservationBody(Strict):
    kind: Literal["reservation"]
    flow_key: Name
    path: Annotated[list[Name], Field(min_length=2, max_length=64)]
    rate_bps: Positive
    origin: OriginName = "static"
    expires_at: Finite | None = None


class CircuitBody(Strict):
    kind: Literal["circuit"]
    circuit_id: Name
    flow_key: Name
    path: Annotated[list[Name], Field(min_length=2, max_length=64)]
    rate_bps: Positive
    origin: OriginName = "static"
    expires_at: Finite | None = None


ItemBody = Annotated[RouteBody | FirewallBody | ReservationBody | CircuitBody, Field(discriminator="kind")]


def _life(body: Any) -> dict[str, Any]:
    return {"origin": Origin(body.origin), "expires_at": body.expires_at}


def item_from_body(body: ItemBody) -> ConfigItem:
    if isinstance(body, RouteBody):
        hops = tuple(NextHop(h.via, h.weight) for h in body.next_hops)
        return Route(body.device, body.destination, hops, **_life(body))
    if isinstance(body, FirewallBody):
        m = body.match
        return FirewallRule(
            body.device, FlowMatch(m.src, m.dst, m.proto, m.dst_port), body.action, **_life(body)
        )
    if isinstance(body, ReservationBody):
        return Reservation(body.flow_key, tuple(body.path), body.rate_bps, **_life(body))
    return VirtualCircuit(body.circuit_id, body.flow_key, tuple(body.path), body.rate_bps, **_life(body))


def config_from_bodies(bodies: list[ItemBody], field_name: str = "desired") -> NetworkConfig:
    """The config the bodies describe; a bad item is a ValidationError naming ``desired[i]``."""
    items: list[ConfigItem] = []
    for index, body in enumerate(bodies):
        try:
            items.append(item_from_body(body))
        except ValidationError as exc:
            raise exc.at(field=f"{field_name}[{index}]") from None
    return NetworkConfig.of(items)


def item_json(item: ConfigItem) -> dict[str, Any]:
    life = {"origin": item.origin.value, "expires_at": item.expires_at}
    if isinstance(item, Route):
        hops = [{"via": h.via, "weight": h.weight} for h in item.next_hops]
        return {
            "kind": "route",
            "device": item.device,
            "destination": item.destination,
            "next_hops": hops,
            **life,
        }
    if isinstance(item, FirewallRule):
        m = item.match
        match = {"src": m.src, "dst": m.dst, "proto": m.proto, "dst_port": m.dst_port}
        return {"kind": "firewall", "device": item.device, "match": match, "action": item.action, **life}
    if isinstance(item, Reservation):
        return {
            "kind": "reservation",
            "flow_key": item.flow_key,
            "path": list(item.path),
            "rate_bps": item.rate_bps,
            **life,
        }
    return {
        "kind": "circuit",
        "circuit_id": item.circuit_id,
        "flow_key": item.flow_key,
        "path": list(item.path),
        "rate_bps": item.rate_bps,
        **life,
    }


@cache
def _item_adapter() -> TypeAdapter[ItemBody]:
    return TypeAdapter(ItemBody)  # built once: building one costs more than validating many items


def item_from_json(data: dict[str, Any]) -> ConfigItem:
    return item_from_body(_item_adapter().validate_python(data))


def key_text(item: ConfigItem) -> str:
    return "/".join(item.key)


def op_json(op: PlanOp) -> dict[str, Any]:
    out: dict[str, Any] = {"op": op.kind.value, "key": key_text(op.item), "item": item_json(op.item)}
    if op.previous is not None:
        out["previous"] = item_json(op.previous)
    return out


def plan_from_json(ops: list[dict[str, Any]]) -> Plan:
    parsed = [
        PlanOp(
            OpKind(op["op"]),
            item_from_json(op["item"]),
            item_from_json(op["previous"]) if "previous" in op else None,
        )
        for op in ops
    ]
    return Plan.of(parsed, allow_confirmed_changes=True)


def config_json(config: NetworkConfig) -> list[dict[str, Any]]:
    return [item_json(item) for item in config.sorted_items()]


def config_from_json(items: list[dict[str, Any]]) -> NetworkConfig:
    return NetworkConfig.of(item_from_json(item) for item in items)
