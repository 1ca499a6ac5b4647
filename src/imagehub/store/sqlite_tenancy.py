"""SQLite: keys and their limits, request rates, webhook deliveries and secrets.

`SQLiteTenancy` is the half of `SQLiteStore` for these; the functions below run inside the
task statements' own transactions (a submit's reservation, a final status's settlement).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from imagehub.store import tenancy as sql
from imagehub.store.base import (
    ApiKey,
    Delivery,
    OverLimit,
    Submission,
    WebhookSecret,
    decode_cursor,
    encode_cursor,
)
from imagehub.store.rows import KEY_COLUMNS, KEY_COUNT, key_from_row, key_to_row
from imagehub.tasks import Task, utcnow

T = TypeVar("T")

_CLAIM = f"""
    UPDATE webhook_deliveries SET lease_owner = ?, lease_expires_at = ?,
        lease_token = lease_token + 1, attempts = attempts + 1
    WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending'
                 AND next_attempt_at <= ? AND (lease_expires_at IS NULL OR lease_expires_at < ?)
                 ORDER BY next_attempt_at LIMIT ?)
    RETURNING {sql.DELIVERY_COLUMNS}"""
_RATE = """
    INSERT INTO rate_limits (key_id, tat) VALUES (?, ?)
    ON CONFLICT (key_id) DO UPDATE SET tat = max(rate_limits.tat, ?) + ?
    WHERE max(rate_limits.tat, ?) + ? - ? <= 60
    RETURNING tat"""
_ACTIVE_SECRETS = f"""
    SELECT {sql.SECRET_COLUMNS} FROM webhook_secrets
    WHERE tenant_id = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at DESC"""


def transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` in one write transaction (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def submitted(conn: sqlite3.Connection, task: Task, submission: Submission | None) -> None:
    """What a submit writes after its task row: the key's reservation, the waiting delivery."""
    if submission is not None and submission.key_id is not None:
        reserve(conn, task.id, submission.key_id, submission.reserve_micros)
    if task.webhook_url is not None:
        base_url = submission.base_url if submission else ""
        conn.execute(sql.INSERT_DELIVERY, sql.delivery_to_row(sql.new_delivery(task, base_url)))


def reserve(conn: sqlite3.Connection, task_id: str, key_id: str, amount: int) -> None:
    if conn.execute(sql.RESERVE, (amount, key_id, amount)).rowcount:
        conn.execute(sql.INSERT_SPEND, (task_id, key_id, amount))
        return
    row = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    if row is None:
        return  # not a stored key: nothing to count against
    key = key_from_row(row)
    limit = key.concurrency_limit
    raise OverLimit(
        "concurrency" if limit is not None and key.active_tasks >= limit else "budget", key
    )


def finished(conn: sqlite3.Connection, tasks: list[tuple[str, int]], webhooks: bool = True) -> None:
    """Settle the reservations (task id, cost) and activate the deliveries of final tasks.

    `webhooks=False` when none of them has a webhook_url: one statement less per task.
    """
    now = utcnow().timestamp()
    for task_id, cost in tasks:
        row = conn.execute(sql.SETTLE, (cost, task_id)).fetchone()
        if row is not None:
            conn.execute(sql.SETTLE_KEY, (row[1], cost, row[0]))
        if webhooks:
            conn.execute(sql.ACTIVATE_DELIVERY, (now, task_id))


class SQLiteTenancy:
    """Keys and limits, rates and webhooks, over the store's reader and writer connections."""

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _key_where(self, where: str, args: tuple[Any, ...]) -> list[ApiKey]:
        query = f"SELECT {KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, id"
        rows = await self._read(lambda conn: conn.execute(query, args).fetchall())
        return [key_from_row(row) for row in rows]

    async def add_key(self, key: ApiKey) -> None:
        query = f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({', '.join('?' * KEY_COUNT)})"
        await self._write(lambda conn: conn.execute(query, key_to_row(key)))

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        if tenant_id is None:
            return await self._key_where("", ())
        return await self._key_where("WHERE tenant_id = ?", (tenant_id,))

    async def get_key_by_id(self, key_id: str) -> ApiKey | None:
        found = await self._key_where("WHERE id = ?", (key_id,))
        return found[0] if found else None

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        now = utcnow().timestamp()
        await self._write(lambda conn: conn.execute(sql.REVOKE_KEY, (now, key_id)))
        return await self.get_key_by_id(key_id)

    async def restore_key(self, key_id: str) -> ApiKey | None:
        await self._write(lambda conn: conn.execute(sql.RESTORE_KEY, (key_id,)))
        return await self.get_key_by_id(key_id)

    async def set_key_limits(
        self,
        key_id: str,
        *,
        rpm_limit: int | None,
        concurrency_limit: int | None,
        budget_micros: int | None,
    ) -> ApiKey | None:
        args = (rpm_limit, concurrency_limit, budget_micros, key_id)
        await self._write(lambda conn: conn.execute(sql.SET_LIMITS, args))
        return await self.get_key_by_id(key_id)

    async def rate_hit(self, key_id: str, per_minute: int) -> float:
        interval = 60.0 / per_minute

        def hit(conn: sqlite3.Connection) -> float:
            now = utcnow().timestamp()
            args = (key_id, now + interval, now, interval, now, interval, now)
            if conn.execute(_RATE, args).fetchone() is not None:
                return 0.0
            row = conn.execute("SELECT tat FROM rate_limits WHERE key_id = ?", (key_id,)).fetchone()
            return sql.gcra(row[0], now, per_minute)[1]

        return await self._write(hit)

    # -- webhooks

    async def claim_deliveries(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[Delivery]:
        now = utcnow().timestamp()
        args = (owner, now + lease_seconds, now, now, limit)
        rows = await self._write(lambda conn: conn.execute(_CLAIM, args).fetchall())
        return [sql.delivery_from_row(row) for row in rows]

    async def finish_delivery(self, delivery: Delivery) -> bool:
        args = sql.finish_delivery_params(delivery)
        return bool(
            await self._write(lambda conn: conn.execute(sql.FINISH_DELIVERY, args).rowcount)
        )

    async def get_delivery(self, task_id: str, tenant_id: str) -> Delivery | None:
        query = (
            f"SELECT {sql.DELIVERY_COLUMNS} FROM webhook_deliveries "
            "WHERE task_id = ? AND tenant_id = ?"
        )
        row = await self._read(lambda conn: conn.execute(query, (task_id, tenant_id)).fetchone())
        return sql.delivery_from_row(row) if row else None

    async def list_deliveries(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        where, args = "tenant_id = ?", [tenant_id]
        if cursor is not None:
            created, last_id = decode_cursor(cursor)
            where += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            args += [created, created, last_id]  # type: ignore[list-item]
        query = (
            f"SELECT {sql.DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {where} "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        rows = await self._read(lambda conn: conn.execute(query, (*args, limit + 1)).fetchall())
        found = [sql.delivery_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return found, encode_cursor(found[-1].created_at, found[-1].id) if more else None

    async def webhook_secrets(self, tenant_id: str) -> list[WebhookSecret]:
        now = utcnow().timestamp()
        rows = await self._read(
            lambda conn: conn.execute(_ACTIVE_SECRETS, (tenant_id, now)).fetchall()
        )
        return [sql.secret_from_row(row) for row in rows]

    async def ensure_webhook_secret(self, secret: WebhookSecret) -> list[WebhookSecret]:
        def ensure(conn: sqlite3.Connection) -> None:
            now = utcnow().timestamp()
            if not conn.execute(_ACTIVE_SECRETS, (secret.tenant_id, now)).fetchone():
                _insert_secret(conn, secret)

        await self._write(lambda conn: transaction(conn, ensure))
        return await self.webhook_secrets(secret.tenant_id)

    async def rotate_webhook_secret(
        self, secret: WebhookSecret, overlap_seconds: float
    ) -> list[WebhookSecret]:
        def rotate(conn: sqlite3.Connection) -> None:
            now = utcnow()
            until = (now + timedelta(seconds=overlap_seconds)).timestamp()
            conn.execute(
                "DELETE FROM webhook_secrets WHERE tenant_id = ? AND expires_at <= ?",
                (secret.tenant_id, now.timestamp()),
            )
            conn.execute(
                "UPDATE webhook_secrets SET expires_at = ? WHERE tenant_id = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (until, secret.tenant_id, until),
            )
            _insert_secret(conn, secret)

        await self._write(lambda conn: transaction(conn, rotate))
        return await self.webhook_secrets(secret.tenant_id)


def _insert_secret(conn: sqlite3.Connection, secret: WebhookSecret) -> None:
    conn.execute(
        f"INSERT INTO webhook_secrets ({sql.SECRET_COLUMNS}) VALUES (?, ?, ?, ?)",
        sql.secret_to_row(secret),
    )
