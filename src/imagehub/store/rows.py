"""Mapping between `Task` and the flat rows both SQL backends store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from imagehub.store.base import ApiKey, Page, decode_cursor, encode_cursor
from imagehub.tasks import Task, TaskOutput, TaskStatus, Usage

TASK_COLUMNS = (
    "id, tenant_id, model, input, status, output, error, provider, warnings, attempts, "
    "max_attempts, metadata, webhook_url, idempotency_key, request_hash, usage, created_at, "
    "started_at, finished_at, run_after, lease_owner, lease_expires_at, lease_token"
)
KEY_COLUMNS = (
    "id, tenant_id, key_hash, prefix, name, admin, created_at, revoked_at, rpm_limit, "
    "concurrency_limit, budget_micros, active_tasks, reserved_micros, spent_micros"
)
KEY_COUNT = KEY_COLUMNS.count(",") + 1


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def task_to_row(task: Task) -> tuple[Any, ...]:
    return (
        task.id,
        task.tenant_id,
        task.model,
        _dumps(task.input),
        task.status.value,
        _dumps(task.output.to_dict() if task.output else None),
        _dumps(task.error),
        task.provider,
        _dumps(list(task.warnings)),
        task.attempts,
        task.max_attempts,
        _dumps(task.metadata),
        task.webhook_url,
        task.idempotency_key,
        task.request_hash,
        _dumps(task.usage.to_dict() if task.usage else None),
        ts(task.created_at),
        ts(task.started_at),
        ts(task.finished_at),
        ts(task.run_after),
        task.lease_owner,
        ts(task.lease_expires_at),
        task.lease_token,
    )


def task_from_row(row: Any) -> Task:
    output = _loads(row[5])
    usage = _loads(row[15])
    return Task(
        id=row[0],
        tenant_id=row[1],
        model=row[2],
        input=json.loads(row[3]),
        status=TaskStatus(row[4]),
        output=TaskOutput.from_dict(output) if output else None,
        error=_loads(row[6]),
        provider=row[7],
        warnings=tuple(json.loads(row[8])),
        attempts=row[9],
        max_attempts=row[10],
        metadata=_loads(row[11]),
        webhook_url=row[12],
        idempotency_key=row[13],
        request_hash=row[14],
        usage=Usage(**usage) if usage else None,
        created_at=dt(row[16]) or datetime.now(UTC),
        started_at=dt(row[17]),
        finished_at=dt(row[18]),
        run_after=dt(row[19]) or datetime.now(UTC),
        lease_owner=row[20],
        lease_expires_at=dt(row[21]),
        lease_token=row[22],
    )


def outcome_params(task: Task) -> tuple[Any, ...]:
    """The columns `finish` writes, in the order of its SET clause."""
    return (
        task.status.value,
        _dumps(task.output.to_dict() if task.output else None),
        _dumps(task.error),
        task.provider,
        _dumps(list(task.warnings)),
        _dumps(task.usage.to_dict() if task.usage else None),
        ts(task.finished_at),
        ts(task.run_after),
    )


def key_to_row(key: ApiKey) -> tuple[Any, ...]:
    return (
        key.id,
        key.tenant_id,
        key.key_hash,
        key.prefix,
        key.name,
        int(key.admin),
        ts(key.created_at),
        ts(key.revoked_at),
        key.rpm_limit,
        key.concurrency_limit,
        key.budget_micros,
        key.active_tasks,
        key.reserved_micros,
        key.spent_micros,
    )


def key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        id=row[0],
        tenant_id=row[1],
        key_hash=row[2],
        prefix=row[3],
        name=row[4],
        admin=bool(row[5]),
        created_at=dt(row[6]) or datetime.now(UTC),
        revoked_at=dt(row[7]),
        rpm_limit=row[8],
        concurrency_limit=row[9],
        budget_micros=row[10],
        active_tasks=row[11],
        reserved_micros=row[12],
        spent_micros=row[13],
    )


#: what a task that lost its worker on every attempt fails with, as stored
LOST_WORKER_ERROR = json.dumps(
    {
        "code": "internal_error",
        "message": "The worker running this task stopped responding on every attempt.",
        "retryable": False,
    }
)


def history_query(
    mark: str,
    tenant_id: str,
    model: str | None,
    status: TaskStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The history page's SELECT and its arguments; `mark` is the driver's placeholder.

    One row more than `limit` is asked for, to tell whether a next page exists.
    """
    where, args = [f"tenant_id = {mark}"], [tenant_id]
    if model is not None:
        where.append(f"model = {mark}")
        args.append(model)
    if status is not None:
        where.append(f"status = {mark}")
        args.append(status.value)
    params: list[Any] = list(args)
    if cursor is not None:
        created, last_id = decode_cursor(cursor)
        where.append(f"(created_at < {mark} OR (created_at = {mark} AND id < {mark}))")
        params += [created, created, last_id]
    sql = (
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
        f"ORDER BY created_at DESC, id DESC LIMIT {mark}"
    )
    return sql, [*params, limit + 1]


def history_page(rows: list[Any], limit: int) -> Page:
    """The page from `history_query`'s rows."""
    tasks = [task_from_row(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(tasks, encode_cursor(tasks[-1].created_at, tasks[-1].id) if more else None)
