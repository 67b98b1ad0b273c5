"""Plans through the service: create (dry-run or pending), apply, rollback; each state change is one
committed transaction with its audit row, and per-item realization timestamps (unix seconds) are kept."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from netscaffold.errors import BackendError, PlanError, ValidationError
from netscaffold.formats import configjson
from netscaffold.model.config import NetworkConfig
from netscaffold.model.plan import Plan
from netscaffold.service.core import ConflictError, NotFoundError, ServiceCore, config_digest
from netscaffold.service.schemas import PlanRequest
from netscaffold.service.store import audit, put_kv

_KEYS = (
    "id", "created_at", "status", "source", "base_digest", "result_digest",
    "ops", "realized", "applied_at", "rolled_back_at", "error",
)  # fmt: skip
_SELECT = (
    "SELECT id, created_at, status, source, base_digest, result_digest, ops, realized, applied_at, "
    "rolled_back_at, error FROM plans"
)
_BY_ID = _SELECT + " WHERE id = ?"
_BY_STATUS = _SELECT + " WHERE status = ? ORDER BY id DESC LIMIT ?"
_LATEST = _SELECT + " ORDER BY id DESC LIMIT ?"
_MARK = {
    "applied": "UPDATE plans SET status = ?, applied_at = ?, realized = ?, error = NULL WHERE id = ?",
    "rolled-back": "UPDATE plans SET status = ?, rolled_back_at = ?, realized = ?, error = NULL WHERE id = ?",
}


def _row_json(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_KEYS, row, strict=True))
    out["ops"] = json.loads(out["ops"])
    out["realized"] = json.loads(out["realized"])
    return out


def _desired(
    core: ServiceCore, request: PlanRequest, current: NetworkConfig, now_s: float
) -> tuple[Plan, str]:
    if request.source == "scaffold":
        from netscaffold.service.forecast import scaffold_plan

        return scaffold_plan(core, current, now_s), "scaffold"
    if request.desired is None:
        raise ValidationError("give the desired config (or source: scaffold)", field="desired")
    desired = configjson.config_from_bodies(request.desired)
    return Plan.between(current, desired, allow_confirmed_changes=True), "desired"


def create_plan(core: ServiceCore, request: PlanRequest, actor: str) -> dict[str, Any]:
    """Validate a plan against the topology, budget and current config; store it unless a dry run."""
    with core.lock:
        topology = core.require_topology()
        current = core.current_config()
        now = core.now()
        plan, source = _desired(core, request, current, now)
        try:
            result = plan.validate(topology, core.budget, current)
        except PlanError as exc:
            raise exc.at(field="desired") from None
        record: dict[str, Any] = {
            "id": None,
            "created_at": now,
            "status": "dry-run" if request.dry_run else "pending",
            "source": source,
            "base_digest": config_digest(current),
            "result_digest": config_digest(result),
            "ops": [configjson.op_json(op) for op in plan.ops],
            "realized": {},
            "applied_at": None,
            "rolled_back_at": None,
            "error": None,
        }
        if request.dry_run:
            return record
        with core.store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO plans (created_at, status, source, base_digest, result_digest, ops) "
                "VALUES (?,?,?,?,?,?)",
                (
                    now,
                    "pending",
                    source,
                    record["base_digest"],
                    record["result_digest"],
                    json.dumps(record["ops"]),
                ),
            )
            record["id"] = cursor.lastrowid
            audit(conn, now, actor, "plan.create", target=f"plan {record['id']}", detail=f"{len(plan)} ops")
    core.events.publish("plan.created", now, {"plan": record["id"], "ops": len(plan)})
    return record


def get_plan(core: ServiceCore, plan_id: int) -> dict[str, Any]:
    with core.store.reading() as conn:
        row = conn.execute(_BY_ID, (plan_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no plan {plan_id}")
    return _row_json(row)


def list_plans(core: ServiceCore, status: str | None, limit: int) -> list[dict[str, Any]]:
    with core.store.reading() as conn:
        if status is None:
            rows = conn.execute(_LATEST, (limit,)).fetchall()
        else:
            rows = conn.execute(_BY_STATUS, (status, limit)).fetchall()
    return [_row_json(row) for row in rows]


def _run(core: ServiceCore, plan: Plan, plan_id: int, kind: str, actor: str) -> dict[str, float]:
    """Apply ``plan`` on the backend and commit the resulting config; returns realized unix times."""
    backend = core.require_backend()
    started_wall = core.now()
    started_clock = backend.clock.now()
    t0 = time.perf_counter()
    try:
        report = backend.apply(plan)
    except (BackendError, PlanError) as exc:
        core.metrics.apply_failures.inc()
        with core.store.transaction() as conn:
            conn.execute("UPDATE plans SET error = ? WHERE id = ?", (str(exc), plan_id))
            audit(conn, core.now(), actor, f"plan.{kind}.failed", target=f"plan {plan_id}", detail=str(exc))
        core.events.publish("plan.failed", core.now(), {"plan": plan_id, "error": str(exc)})
        raise
    core.metrics.apply_latency.observe(time.perf_counter() - t0)
    return {
        "/".join(key): started_wall + max(0.0, at - started_clock) for key, at in report.realized_at.items()
    }


def _load(conn: sqlite3.Connection, plan_id: int) -> dict[str, Any]:
    row = conn.execute(_BY_ID, (plan_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no plan {plan_id}")
    return _row_json(row)


def apply_plan(core: ServiceCore, plan_id: int, actor: str) -> dict[str, Any]:
    with core.lock:
        record = get_plan(core, plan_id)
        if record["status"] != "pending":
            raise ConflictError(f"plan {plan_id} is {record['status']}, not pending")
        current = core.current_config()
        if config_digest(current) != record["base_digest"]:
            raise ConflictError(
                f"plan {plan_id} was made for another config (it changed since): make a new plan"
            )
        realized = _run(core, configjson.plan_from_json(record["ops"]), plan_id, "apply", actor)
        return _commit(core, plan_id, "applied", realized, actor)


def rollback_plan(core: ServiceCore, plan_id: int, actor: str) -> dict[str, Any]:
    with core.lock:
        record = get_plan(core, plan_id)
        if record["status"] != "applied":
            raise ConflictError(f"plan {plan_id} is {record['status']}, not applied")
        current = core.current_config()
        if config_digest(current) != record["result_digest"]:
            raise ConflictError(f"the config changed since plan {plan_id} was applied: cannot roll it back")
        inverse = configjson.plan_from_json(record["ops"]).inverse()
        realized = _run(core, inverse, plan_id, "rollback", actor)
        return _commit(core, plan_id, "rolled-back", realized, actor)


def _commit(
    core: ServiceCore, plan_id: int, status: str, realized: dict[str, float], actor: str
) -> dict[str, Any]:
    backend = core.require_backend()
    now = core.now()
    config_text = json.dumps(configjson.config_json(backend.snapshot()))
    with core.store.transaction() as conn:
        put_kv(conn, "config", config_text)
        conn.execute(_MARK[status], (status, now, json.dumps(realized), plan_id))
        if status == "applied":
            conn.execute(
                "UPDATE plans SET status = 'superseded' WHERE status = 'pending' AND id != ?", (plan_id,)
            )
        audit(conn, now, actor, f"plan.{status}", target=f"plan {plan_id}", detail=f"{len(realized)} items")
        record = _load(conn, plan_id)
    core.refresh_gauges()
    core.events.publish(f"plan.{status}", now, {"plan": plan_id, "items": len(realized)})
    return record
