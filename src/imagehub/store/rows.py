"""Row mappers, written once for every SQL engine: `Task`, `ApiKey`, `Delivery`, secrets.

A `*_row` function gives a statement's named parameters; a `*_from_row` reads a selected row
(columns in the order of the matching `*_COLUMNS`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from imagehub.store.connector import Row
from imagehub.tasks import Attempt, PartialImage, Task, TaskFailure, TaskOutput, TaskStatus, Usage
from imagehub.tenancy.types import ApiKey
from imagehub.webhooks.types import Delivery, DeliveryAttempt, WebhookSecret

TASK_COLUMNS = (
    "id, tenant_id, model, input, status, output, error, provider, warnings, attempts, "
    "max_attempts, metadata, webhook_url, idempotency_key, request_hash, usage, created_at, "
    "started_at, finished_at, run_after, lease_owner, lease_expires_at, lease_token, "
    "traceparent, partial_images, partials"
)
KEY_COLUMNS = (
    "id, tenant_id, key_hash, prefix, name, admin, created_at, revoked_at, rpm_limit, "
    "concurrency_limit, budget_micros, active_tasks, reserved_micros, spent_micros"
)
DELIVERY_COLUMNS = (
    "id, task_id, tenant_id, url, base_url, state, attempts, next_attempt_at, history, "
    "created_at, lease_owner, lease_expires_at, lease_token"
)
SECRET_COLUMNS = "tenant_id, secret, created_at, expires_at"
ATTEMPT_COLUMNS = (
    "task_id, tenant_id, number, model, route, provider, started_at, finished_at, outcome, "
    "message, shape"
)

TASK_FIELDS = TASK_COLUMNS.split(", ")
NO_VALUES: Mapping[str, str] = MappingProxyType({})
KEY_FIELDS = KEY_COLUMNS.split(", ")
DELIVERY_FIELDS = DELIVERY_COLUMNS.split(", ")
SECRET_FIELDS = SECRET_COLUMNS.split(", ")
ATTEMPT_FIELDS = ATTEMPT_COLUMNS.split(", ")


def insert(
    table: str, fields: list[str], values: Mapping[str, str] = NO_VALUES, source: str = ""
) -> str:
    """An INSERT of every field, as named parameters, or as the SQL expression `values` gives;
    with a `source` (a FROM list), one row per row of it."""
    params = ", ".join(values.get(name, f":{name}") for name in fields)
    rows = f"SELECT {params} FROM {source}" if source else f"VALUES ({params})"
    return f"INSERT INTO {table} ({', '.join(fields)}) {rows}"


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _at(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def dumps(value: Any) -> str | None:
    return None if value is None else _json(value)


def _json(value: Any) -> str:
    """Compact JSON text; orjson's (several times faster: rows are written on the event loop),
    or the standard library's for what orjson refuses (integers beyond 64 bits, surrogates)."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":"))


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def failure_json(failure: TaskFailure | None) -> str | None:
    """The one stored form of a task's failure."""
    return dumps(failure.to_dict() if failure else None)


def failure_from_json(value: str | None) -> TaskFailure | None:
    return TaskFailure.from_dict(json.loads(value)) if value else None


def outcome_row(task: Task) -> dict[str, Any]:
    """What `finish` writes of a task."""
    return {
        "id": task.id,
        "lease_token": task.lease_token,
        "status": task.status.value,
        "output": dumps(task.output.to_dict() if task.output else None),
        "error": failure_json(task.error),
        "provider": task.provider,
        "warnings": dumps(list(task.warnings)),
        "usage": dumps(task.usage.to_dict() if task.usage else None),
        "finished_at": ts(task.finished_at),
        "run_after": ts(task.run_after),
        "partials": partials_json(task),
    }


def partials_json(task: Task) -> str:
    """The one stored form of a task's partial images."""
    return _json([p.to_dict() for p in task.partials])


def task_row(task: Task) -> dict[str, Any]:
    return {
        **outcome_row(task),
        "tenant_id": task.tenant_id,
        "model": task.model,
        "input": dumps(task.input),
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "metadata": dumps(task.metadata),
        "webhook_url": task.webhook_url,
        "idempotency_key": task.idempotency_key,
        "request_hash": task.request_hash,
        "created_at": ts(task.created_at),
        "started_at": ts(task.started_at),
        "lease_owner": task.lease_owner,
        "lease_expires_at": ts(task.lease_expires_at),
        "traceparent": task.traceparent,
        "partial_images": task.partial_images,
    }


def _input(text: str) -> dict[str, Any]:
    """A stored input, its parameter names shared with every other task's (json gives each
    task strings of its own, and a claimed task holds its input for its whole run)."""
    return {sys.intern(name): value for name, value in json.loads(text).items()}


def task_from_row(row: Row) -> Task:
    output = _loads(row[5])
    usage = _loads(row[15])
    owner = row[20]
    return Task(
        id=row[0],
        # shared by many tasks: one string each, not one per task read
        tenant_id=sys.intern(row[1]),
        model=sys.intern(row[2]),
        input=_input(row[3]),
        status=TaskStatus(row[4]),
        output=TaskOutput.from_dict(output) if output else None,
        error=failure_from_json(row[6]),
        provider=row[7],
        warnings=tuple(json.loads(row[8])),
        attempts=row[9],
        max_attempts=row[10],
        metadata=_loads(row[11]),
        webhook_url=row[12],
        idempotency_key=row[13],
        request_hash=row[14],
        usage=Usage(**usage) if usage else None,
        created_at=_at(row[16]),
        started_at=dt(row[17]),
        finished_at=dt(row[18]),
        run_after=_at(row[19]),
        lease_owner=owner if owner is None else sys.intern(owner),
        lease_expires_at=dt(row[21]),
        lease_token=row[22],
        traceparent=row[23],
        partial_images=row[24],
        partials=tuple(PartialImage.from_dict(p) for p in json.loads(row[25])),
    )


def key_row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "tenant_id": key.tenant_id,
        "key_hash": key.key_hash,
        "prefix": key.prefix,
        "name": key.name,
        "admin": int(key.admin),
        "created_at": ts(key.created_at),
        "revoked_at": ts(key.revoked_at),
        "rpm_limit": key.rpm_limit,
        "concurrency_limit": key.concurrency_limit,
        "budget_micros": key.budget_micros,
        "active_tasks": key.active_tasks,
        "reserved_micros": key.reserved_micros,
        "spent_micros": key.spent_micros,
    }


def key_from_row(row: Row) -> ApiKey:
    return ApiKey(
        id=row[0],
        tenant_id=row[1],
        key_hash=row[2],
        prefix=row[3],
        name=row[4],
        admin=bool(row[5]),
        created_at=_at(row[6]),
        revoked_at=dt(row[7]),
        rpm_limit=row[8],
        concurrency_limit=row[9],
        budget_micros=row[10],
        active_tasks=row[11],
        reserved_micros=row[12],
        spent_micros=row[13],
    )


def history_json(history: tuple[DeliveryAttempt, ...]) -> str:
    return _json([a.to_dict() for a in history])


def delivery_row(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "task_id": d.task_id,
        "tenant_id": d.tenant_id,
        "url": d.url,
        "base_url": d.base_url,
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": ts(d.next_attempt_at),
        "history": history_json(d.history),
        "created_at": ts(d.created_at),
        "lease_owner": d.lease_owner,
        "lease_expires_at": ts(d.lease_expires_at),
        "lease_token": d.lease_token,
    }


def delivery_from_row(row: Row) -> Delivery:
    return Delivery(
        id=row[0],
        task_id=row[1],
        tenant_id=row[2],
        url=row[3],
        base_url=row[4],
        state=row[5],
        attempts=row[6],
        next_attempt_at=dt(row[7]),
        history=tuple(DeliveryAttempt.from_dict(a) for a in json.loads(row[8])),
        created_at=_at(row[9]),
        lease_owner=row[10],
        lease_expires_at=dt(row[11]),
        lease_token=row[12],
    )


def secret_row(s: WebhookSecret) -> dict[str, Any]:
    return {
        "tenant_id": s.tenant_id,
        "secret": s.secret,
        "created_at": ts(s.created_at),
        "expires_at": ts(s.expires_at),
    }


def secret_from_row(row: Row) -> WebhookSecret:
    return WebhookSecret(row[0], row[1], _at(row[2]), dt(row[3]))


def attempt_row(a: Attempt) -> dict[str, Any]:
    return {
        "task_id": a.task_id,
        "tenant_id": a.tenant_id,
        "number": a.number,
        "model": a.model,
        "route": a.route,
        "provider": a.provider,
        "started_at": ts(a.started_at),
        "finished_at": ts(a.finished_at),
        "outcome": a.outcome,
        "message": a.message,
        "shape": a.shape,
    }


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        task_id=row[0],
        tenant_id=row[1],
        number=row[2],
        model=row[3],
        route=row[4],
        provider=row[5],
        started_at=_at(row[6]),
        finished_at=_at(row[7]),
        outcome=row[8],
        message=row[9],
        shape=row[10],
    )
