"""PostgreSQL: keys and their limits, request rates, webhook deliveries and secrets.

`PostgresTenancy` is the half of `PostgresStore` for these; the functions below run inside
the task statements' own transactions. Counters move by guarded single-statement updates
(`... WHERE active_tasks < concurrency_limit`), which PostgreSQL re-checks on the row it locks,
so concurrent submits from many processes never overshoot a limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

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

Conn = AsyncConnection[TupleRow]

#: the database clock, as epoch seconds like every stored time
NOW = "extract(epoch FROM clock_timestamp())::float8"
_pg = sql.postgres_dialect
_INSERT_DELIVERY = _pg(sql.INSERT_DELIVERY)
_INSERT_SPEND = _pg(sql.INSERT_SPEND)
_RESERVE = _pg(sql.RESERVE)
_SETTLE = _pg(sql.SETTLE)
_SETTLE_KEY = _pg(sql.SETTLE_KEY)
_ACTIVATE = _pg(sql.ACTIVATE_DELIVERY).replace("next_attempt_at = %s", f"next_attempt_at = {NOW}")
_FINISH_DELIVERY = _pg(sql.FINISH_DELIVERY)
_CLAIM = f"""
    UPDATE webhook_deliveries SET lease_owner = %s, lease_expires_at = {NOW} + %s,
        lease_token = lease_token + 1, attempts = attempts + 1
    WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending'
                 AND next_attempt_at <= {NOW}
                 AND (lease_expires_at IS NULL OR lease_expires_at < {NOW})
                 ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING {sql.DELIVERY_COLUMNS}"""
_RATE = f"""
    INSERT INTO rate_limits (key_id, tat) VALUES (%s, {NOW} + %s)
    ON CONFLICT (key_id) DO UPDATE SET tat = GREATEST(rate_limits.tat, {NOW}) + %s
    WHERE GREATEST(rate_limits.tat, {NOW}) + %s - {NOW} <= 60
    RETURNING tat"""
_ACTIVE_SECRETS = f"""
    SELECT {sql.SECRET_COLUMNS} FROM webhook_secrets
    WHERE tenant_id = %s AND (expires_at IS NULL OR expires_at > {NOW})
    ORDER BY created_at DESC"""
_SECRET_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('webhook-secret:' || %s, 0))"
_INSERT_SECRET = f"INSERT INTO webhook_secrets ({sql.SECRET_COLUMNS}) VALUES (%s, %s, %s, %s)"


async def submitted(conn: Conn, task: Task, submission: Submission | None) -> None:
    """What a submit writes after its task row: the key's reservation, the waiting delivery."""
    if submission is not None and submission.key_id is not None:
        await reserve(conn, task.id, submission.key_id, submission.reserve_micros)
    if task.webhook_url is not None:
        base_url = submission.base_url if submission else ""
        delivery = sql.new_delivery(task, base_url)
        await conn.execute(_INSERT_DELIVERY, sql.delivery_to_row(delivery))


async def reserve(conn: Conn, task_id: str, key_id: str, amount: int) -> None:
    cur = await conn.execute(_RESERVE, (amount, key_id, amount))
    if cur.rowcount:
        await conn.execute(_INSERT_SPEND, (task_id, key_id, amount))
        return
    cur = await conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = %s", (key_id,))
    row = await cur.fetchone()
    if row is None:
        return  # not a stored key: nothing to count against
    key = key_from_row(row)
    limit = key.concurrency_limit
    raise OverLimit(
        "concurrency" if limit is not None and key.active_tasks >= limit else "budget", key
    )


async def finished(conn: Conn, tasks: list[tuple[str, int]], webhooks: bool = True) -> None:
    """Settle the reservations (task id, cost) and activate the deliveries of final tasks.

    `webhooks=False` when none of them has a webhook_url: one statement less per task.
    """
    for task_id, cost in tasks:
        cur = await conn.execute(_SETTLE, (cost, task_id))
        row = await cur.fetchone()
        if row is not None:
            await conn.execute(_SETTLE_KEY, (row[1], cost, row[0]))
        if webhooks:
            await conn.execute(_ACTIVATE, (task_id,))


class PostgresTenancy:
    """Keys and limits, rates and webhooks, over the store's pooled connections."""

    def _connection(self) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError

    async def _all(self, sql_text: str, params: Sequence[Any] = ()) -> list[TupleRow]:
        raise NotImplementedError

    async def _one(self, sql_text: str, params: Sequence[Any] = ()) -> TupleRow | None:
        raise NotImplementedError

    async def _count(self, sql_text: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    async def _keys(self, where: str, args: tuple[Any, ...]) -> list[ApiKey]:
        query = f"SELECT {KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, id"
        return [key_from_row(row) for row in await self._all(query, args)]

    async def add_key(self, key: ApiKey) -> None:
        placeholders = ", ".join(["%s"] * KEY_COUNT)
        await self._count(
            f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({placeholders})", key_to_row(key)
        )

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        if tenant_id is None:
            return await self._keys("", ())
        return await self._keys("WHERE tenant_id = %s", (tenant_id,))

    async def get_key_by_id(self, key_id: str) -> ApiKey | None:
        found = await self._keys("WHERE id = %s", (key_id,))
        return found[0] if found else None

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        await self._count(_pg(sql.REVOKE_KEY), (utcnow().timestamp(), key_id))
        return await self.get_key_by_id(key_id)

    async def restore_key(self, key_id: str) -> ApiKey | None:
        await self._count(_pg(sql.RESTORE_KEY), (key_id,))
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
        await self._count(_pg(sql.SET_LIMITS), args)
        return await self.get_key_by_id(key_id)

    async def rate_hit(self, key_id: str, per_minute: int) -> float:
        interval = 60.0 / per_minute
        if await self._one(_RATE, (key_id, interval, interval, interval)) is not None:
            return 0.0
        row = await self._one(f"SELECT tat, {NOW} FROM rate_limits WHERE key_id = %s", (key_id,))
        if row is None:
            return 0.0
        return sql.gcra(row[0], row[1], per_minute)[1]

    # -- webhooks

    async def claim_deliveries(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[Delivery]:
        rows = await self._all(_CLAIM, (owner, lease_seconds, limit))
        return [sql.delivery_from_row(row) for row in rows]

    async def finish_delivery(self, delivery: Delivery) -> bool:
        return bool(await self._count(_FINISH_DELIVERY, sql.finish_delivery_params(delivery)))

    async def get_delivery(self, task_id: str, tenant_id: str) -> Delivery | None:
        row = await self._one(
            f"SELECT {sql.DELIVERY_COLUMNS} FROM webhook_deliveries "
            "WHERE task_id = %s AND tenant_id = %s",
            (task_id, tenant_id),
        )
        return sql.delivery_from_row(row) if row else None

    async def list_deliveries(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        where, args = "tenant_id = %s", [tenant_id]
        params: list[Any] = list(args)
        if cursor is not None:
            created, last_id = decode_cursor(cursor)
            where += " AND (created_at < %s OR (created_at = %s AND id < %s))"
            params += [created, created, last_id]
        rows = await self._all(
            f"SELECT {sql.DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {where} "
            "ORDER BY created_at DESC, id DESC LIMIT %s",
            (*params, limit + 1),
        )
        found = [sql.delivery_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return found, encode_cursor(found[-1].created_at, found[-1].id) if more else None

    async def webhook_secrets(self, tenant_id: str) -> list[WebhookSecret]:
        return [sql.secret_from_row(r) for r in await self._all(_ACTIVE_SECRETS, (tenant_id,))]

    async def ensure_webhook_secret(self, secret: WebhookSecret) -> list[WebhookSecret]:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_SECRET_LOCK, (secret.tenant_id,))
            cur = await conn.execute(_ACTIVE_SECRETS, (secret.tenant_id,))
            if await cur.fetchone() is None:
                await conn.execute(_INSERT_SECRET, sql.secret_to_row(secret))
        return await self.webhook_secrets(secret.tenant_id)

    async def rotate_webhook_secret(
        self, secret: WebhookSecret, overlap_seconds: float
    ) -> list[WebhookSecret]:
        now = utcnow()
        until = (now + timedelta(seconds=overlap_seconds)).timestamp()
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_SECRET_LOCK, (secret.tenant_id,))
            await conn.execute(
                "DELETE FROM webhook_secrets WHERE tenant_id = %s AND expires_at <= %s",
                (secret.tenant_id, now.timestamp()),
            )
            await conn.execute(
                "UPDATE webhook_secrets SET expires_at = %s WHERE tenant_id = %s "
                "AND (expires_at IS NULL OR expires_at > %s)",
                (until, secret.tenant_id, until),
            )
            await conn.execute(_INSERT_SECRET, sql.secret_to_row(secret))
        return await self.webhook_secrets(secret.tenant_id)
