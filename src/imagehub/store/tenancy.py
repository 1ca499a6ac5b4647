"""Tenancy tables shared by both SQL backends: key limits and spend, request rates, webhooks.

The schema step, the rows and the statements are written once with `?` placeholders and
SQLite's types; `postgres_dialect` adapts them. Times are epoch seconds, JSON is text, money
is integer micro-USD (exact sums), as everywhere in the store.
"""

from __future__ import annotations

import json
from typing import Any

from imagehub.store.base import Delivery, DeliveryAttempt, WebhookSecret, delivery_id
from imagehub.store.rows import dt, ts
from imagehub.tasks import Task, TaskStatus

#: the schema step that adds them (SQLite's types; see `postgres_dialect`)
SCHEMA = """
    ALTER TABLE api_keys ADD COLUMN rpm_limit INTEGER;
    ALTER TABLE api_keys ADD COLUMN concurrency_limit INTEGER;
    ALTER TABLE api_keys ADD COLUMN budget_micros BIGINT;
    ALTER TABLE api_keys ADD COLUMN active_tasks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE api_keys ADD COLUMN reserved_micros BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE api_keys ADD COLUMN spent_micros BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
    CREATE TABLE spend (
        task_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        reserved_micros BIGINT NOT NULL,
        cost_micros BIGINT,
        state TEXT NOT NULL
    );
    CREATE TABLE rate_limits (key_id TEXT PRIMARY KEY, tat REAL NOT NULL);
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        url TEXT NOT NULL,
        base_url TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        history TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        lease_owner TEXT,
        lease_expires_at REAL,
        lease_token BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
        WHERE state = 'pending';
    CREATE INDEX webhook_deliveries_tenant
        ON webhook_deliveries (tenant_id, created_at DESC, id DESC);
    CREATE TABLE webhook_secrets (
        tenant_id TEXT NOT NULL,
        secret TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        PRIMARY KEY (tenant_id, secret)
    )
"""

DELIVERY_COLUMNS = (
    "id, task_id, tenant_id, url, base_url, state, attempts, next_attempt_at, history, "
    "created_at, lease_owner, lease_expires_at, lease_token"
)
SECRET_COLUMNS = "tenant_id, secret, created_at, expires_at"

INSERT_DELIVERY = (
    f"INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) VALUES ({', '.join('?' * 13)})"
)
INSERT_SPEND = (
    "INSERT INTO spend (task_id, key_id, reserved_micros, state) VALUES (?, ?, ?, 'reserved')"
)
#: one slot and the estimate, only if the key's limits allow them
RESERVE = """
    UPDATE api_keys SET active_tasks = active_tasks + 1, reserved_micros = reserved_micros + ?
    WHERE id = ? AND (concurrency_limit IS NULL OR active_tasks < concurrency_limit)
        AND (budget_micros IS NULL OR spent_micros + reserved_micros + ? <= budget_micros)"""
SETTLE = """
    UPDATE spend SET state = 'settled', cost_micros = ?
    WHERE task_id = ? AND state = 'reserved' RETURNING key_id, reserved_micros"""
SETTLE_KEY = """
    UPDATE api_keys SET active_tasks = active_tasks - 1, reserved_micros = reserved_micros - ?,
        spent_micros = spent_micros + ?
    WHERE id = ?"""
ACTIVATE_DELIVERY = """
    UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?
    WHERE task_id = ? AND state = 'waiting'"""
FINISH_DELIVERY = """
    UPDATE webhook_deliveries SET state = ?, next_attempt_at = ?, history = ?,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ? AND lease_token = ? AND lease_owner = ? AND state = 'pending'"""
REVOKE_KEY = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?"
RESTORE_KEY = "UPDATE api_keys SET revoked_at = NULL, admin = 1 WHERE id = ?"
SET_LIMITS = """
    UPDATE api_keys SET rpm_limit = ?, concurrency_limit = ?, budget_micros = ? WHERE id = ?"""


def postgres_dialect(sql: str) -> str:
    """A statement above as PostgreSQL takes it."""
    return sql.replace("?", "%s").replace(" REAL", " DOUBLE PRECISION")


def micros(usd: float) -> int:
    return round(usd * 1_000_000)


def cost_micros(task: Task) -> int:
    """What a finished task is charged: its cost when it succeeded, else nothing."""
    if task.status != TaskStatus.SUCCEEDED or task.usage is None:
        return 0
    return micros(task.usage.cost_usd)


def new_delivery(task: Task, base_url: str) -> Delivery:
    assert task.webhook_url is not None
    return Delivery(
        id=delivery_id(task.id),
        task_id=task.id,
        tenant_id=task.tenant_id,
        url=task.webhook_url,
        base_url=base_url,
        created_at=task.created_at,
    )


def delivery_to_row(d: Delivery) -> tuple[Any, ...]:
    return (
        d.id,
        d.task_id,
        d.tenant_id,
        d.url,
        d.base_url,
        d.state,
        d.attempts,
        ts(d.next_attempt_at),
        history_json(d.history),
        ts(d.created_at),
        d.lease_owner,
        ts(d.lease_expires_at),
        d.lease_token,
    )


def delivery_from_row(row: Any) -> Delivery:
    created = dt(row[9])
    assert created is not None
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
        created_at=created,
        lease_owner=row[10],
        lease_expires_at=dt(row[11]),
        lease_token=row[12],
    )


def history_json(history: tuple[DeliveryAttempt, ...]) -> str:
    return json.dumps([a.to_dict() for a in history], separators=(",", ":"))


def finish_delivery_params(d: Delivery) -> tuple[Any, ...]:
    return (
        d.state,
        ts(d.next_attempt_at),
        history_json(d.history),
        d.id,
        d.lease_token,
        d.lease_owner,
    )


def secret_to_row(s: WebhookSecret) -> tuple[Any, ...]:
    return (s.tenant_id, s.secret, ts(s.created_at), ts(s.expires_at))


def secret_from_row(row: Any) -> WebhookSecret:
    created = dt(row[2])
    assert created is not None
    return WebhookSecret(row[0], row[1], created, dt(row[3]))


def gcra(tat: float | None, now: float, per_minute: int) -> tuple[float | None, float]:
    """One request against a GCRA limiter: (the new TAT or None if refused, seconds to wait).

    The burst is the whole minute's allowance: `per_minute` requests at once, then one every
    60 / per_minute seconds, as a token bucket of that size would allow.
    """
    interval = 60.0 / per_minute
    new_tat = max(tat if tat is not None else now, now) + interval
    wait = new_tat - 60.0 - now
    return (new_tat, 0.0) if wait <= 0 else (None, wait)
