"""PostgreSQL store: many API and worker processes on many machines share one database.

Claims take due rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each
other nor take the same task. Every statement runs on its own pooled connection in autocommit
and gives it back at once: no connection is held across an upstream call. Lease times use the
database clock, so workers on machines with drifting clocks agree on when a lease expires.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from imagehub.errors import Overloaded
from imagehub.store import postgres_schema, tenancy
from imagehub.store.base import (
    ApiKey,
    DuplicateTask,
    Page,
    Submission,
)
from imagehub.store.postgres_tenancy import PostgresTenancy, finished, submitted
from imagehub.store.rows import (
    KEY_COLUMNS,
    LOST_WORKER_ERROR,
    TASK_COLUMNS,
    history_page,
    history_query,
    key_from_row,
    outcome_params,
    task_from_row,
    task_to_row,
)
from imagehub.tasks import Task, TaskStatus

log = logging.getLogger("imagehub.store")

#: the database clock, as epoch seconds like every stored time
_NOW = "extract(epoch FROM clock_timestamp())::float8"
_INSERT = f"""
    INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({", ".join(["%s"] * 23)})
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id"""
_CLAIM = f"""
    UPDATE tasks SET status = 'running', lease_owner = %s, lease_expires_at = {_NOW} + %s,
        lease_token = lease_token + 1, attempts = attempts + 1,
        started_at = COALESCE(started_at, {_NOW})
    WHERE id IN (SELECT id FROM tasks WHERE status = 'queued' AND run_after <= {_NOW}
                 ORDER BY run_after, created_at LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING {TASK_COLUMNS}"""
_HEARTBEAT = f"""
    UPDATE tasks SET lease_expires_at = {_NOW} + %s
    WHERE lease_owner = %s AND status = 'running' RETURNING id"""
_FINISH = """
    UPDATE tasks SET status = %s, output = %s, error = %s, provider = %s, warnings = %s,
        usage = %s, finished_at = %s, run_after = %s, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = %s AND lease_token = %s AND status = 'running'"""
_RELEASE = f"""
    UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
        run_after = {_NOW}
    WHERE lease_owner = %s AND status = 'running'"""
_REAP = f"""
    UPDATE tasks SET
        status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
        error = CASE WHEN attempts >= max_attempts THEN %s ELSE error END,
        finished_at = CASE WHEN attempts >= max_attempts THEN {_NOW} ELSE NULL END,
        run_after = {_NOW}, lease_owner = NULL, lease_expires_at = NULL
    WHERE status = 'running' AND lease_expires_at < {_NOW}
    RETURNING {TASK_COLUMNS}"""
_CANCEL = f"""
    UPDATE tasks SET status = 'canceled', finished_at = {_NOW}, lease_owner = NULL,
        lease_expires_at = NULL,
        error = '{{"code":"canceled","message":"The task was canceled.","retryable":false}}'
    WHERE id = %s AND tenant_id = %s AND status IN ('queued', 'running')"""
_PURGE = """
    UPDATE tasks SET output = jsonb_set(jsonb_set(output::jsonb, '{images}', '[]'::jsonb),
        '{purged}', 'true'::jsonb)::text
    WHERE id = %s AND output IS NOT NULL"""


class PostgresStore(PostgresTenancy):
    """Tasks and keys in PostgreSQL, through a small pool of autocommit connections."""

    def __init__(
        self, url: str, *, pool_size: int = 10, migrate: bool = True, wait_seconds: float = 10.0
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.migrate_on_open = migrate
        #: how long a statement waits for a connection before the store counts as unavailable
        self.wait_seconds = wait_seconds
        self._pool: AsyncConnectionPool[AsyncConnection[TupleRow]] | None = None

    # -- plumbing

    async def open(self) -> None:
        pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True},
            # a connection broken by a database restart is replaced before it is handed out
            check=AsyncConnectionPool.check_connection,
            timeout=self.wait_seconds,
            open=False,
        )
        await pool.open(wait=True, timeout=30.0)
        self._pool = pool
        try:
            async with pool.connection() as conn:
                if self.migrate_on_open:
                    await postgres_schema.upgrade(conn)
                else:
                    await postgres_schema.check(conn)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """A pooled connection; an unreachable database becomes `Overloaded` (503)."""
        pool = self._pool
        assert pool is not None, "store is not open"
        try:
            async with pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("database unavailable: %s", exc)
            raise Overloaded("The task store is unavailable; try again shortly.") from exc

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[TupleRow]:
        async with self._connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> TupleRow | None:
        async with self._connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchone()

    async def _count(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(sql, params)
            return cur.rowcount

    async def ping(self) -> None:
        await self._one("SELECT 1")

    # -- tasks

    async def create(self, task: Task, submission: Submission | None = None) -> None:
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(_INSERT, task_to_row(task))
            if await cur.fetchone() is not None:
                await submitted(conn, task, submission)
                return
        row = await self._one(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE tenant_id = %s AND idempotency_key = %s",
            (task.tenant_id, task.idempotency_key),
        )
        if row is None:  # rows are never deleted: a clash always finds its task
            raise RuntimeError(f"task {task.id} clashed with a task that no longer exists")
        raise DuplicateTask(task_from_row(row))

    async def get(self, task_id: str, tenant_id: str | None = None) -> Task | None:
        row = await self._one(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %s", (task_id,))
        if row is None or (tenant_id is not None and row[1] != tenant_id):
            return None
        return task_from_row(row)

    async def list_tasks(
        self,
        tenant_id: str,
        *,
        model: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        sql, args = history_query("%s", tenant_id, model, status, cursor, limit)
        rows = await self._all(sql, tuple(args))
        return history_page(rows, limit)

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Task]:
        rows = await self._all(_CLAIM, (owner, lease_seconds, limit))
        return sorted((task_from_row(row) for row in rows), key=lambda t: t.created_at)

    async def heartbeat(self, owner: str, lease_seconds: float) -> set[str]:
        rows = await self._all(_HEARTBEAT, (lease_seconds, owner))
        return {row[0] for row in rows}

    async def finish(self, task: Task) -> bool:
        params = (*outcome_params(task), task.id, task.lease_token)
        if not task.ready:
            return bool(await self._count(_FINISH, params))
        async with self._connection() as conn, conn.transaction():
            written = (await conn.execute(_FINISH, params)).rowcount
            if written:
                cost = tenancy.cost_micros(task)
                await finished(conn, [(task.id, cost)], webhooks=task.webhook_url is not None)
        return bool(written)

    async def release(self, owner: str) -> int:
        return await self._count(_RELEASE, (owner,))

    async def reap(self) -> list[Task]:
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(_REAP, (LOST_WORKER_ERROR,))
            reaped = [task_from_row(row) for row in await cur.fetchall()]
            await finished(conn, [(t.id, 0) for t in reaped if t.ready])
        return reaped

    async def cancel(self, task_id: str, tenant_id: str) -> Task | None:
        async with self._connection() as conn, conn.transaction():
            if (await conn.execute(_CANCEL, (task_id, tenant_id))).rowcount:
                await finished(conn, [(task_id, 0)])
        return await self.get(task_id, tenant_id)

    async def purge_output(self, task_id: str) -> None:
        await self._count(_PURGE, (task_id,))

    # -- keys

    async def get_key(self, key_hash: str) -> ApiKey | None:
        row = await self._one(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = %s", (key_hash,)
        )
        return key_from_row(row) if row else None

    async def count_keys(self) -> int:
        row = await self._one("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")
        return int(row[0]) if row else 0

    async def migrate(self) -> int:
        """Bring the schema up to date (whatever `migrate` was set to); return the version."""
        async with self._connection() as conn:
            return await postgres_schema.upgrade(conn)
