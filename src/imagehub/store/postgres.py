"""PostgreSQL: many API and worker processes on many machines share one database.

Claims take due rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each
other nor take the same task. Every statement runs on its own pooled connection in autocommit
and gives it back at once: no connection is held across an upstream call. A task costs three
commits, each one statement (one round trip): its submit (whose WITH clause writes the fair
place, the task, its key's reservation and spend, its delivery), its claim, its finish (the
outcome, the journal, the spend and the delivery, the same way); two when the submit hands it to
its own process's worker (stored running: no claim). Under load a process's submits and
finishes share commits (`imagehub.store.group_commit`). Reads are single autocommit statements
(no BEGIN/COMMIT round trips). A transaction (cancel, reap, secrets, route states) runs in
pipeline mode: it waits only for the results it reads, so BEGIN travels with its first
statement and the writes whose outcome nobody reads (`send`) travel with its COMMIT. Lease
times use the database clock, so workers on machines with drifting clocks agree on when a
lease expires.

No check runs on a checkout (psycopg_pool's `check` is off: it would cost a round trip per
statement). A connection broken meanwhile (a database restart, a terminated backend) is found
by the statement that uses it: the pool then checks its idle connections (dropping the broken
ones, opening new ones) and the statement runs once more. That retry is safe because a
statement that may have run on the broken connection either is idempotent or is fenced:

- reads, `heartbeat`, `release`, `purge_output`, key revoke/restore/limits: idempotent;
- `finish` and `finish_delivery`: fenced by the lease token (every write of a final finish
  joins the task's fenced update), a second run changes nothing (the worker then hears "lease
  lost" for a write that was made);
- `claim` and `claim_deliveries`: rows a lost first run leased are not lost: the worker's
  heartbeat finds tasks it holds but does not run and hands them back; a delivery's lease
  expires and it is claimed again;
- `create` (a submit): a second run inserts nothing (its task's id clashes) and answers with
  the task the first run stored;
- `add_key`: a second run fails on the key's unique id (the caller sees an error for a key
  that was stored; keys are added by hand, rarely);
- `rate_hit`: a second run counts the request twice (errs towards limiting);
- transactions (cancel, reap, secrets): run again whole when the connection broke
  before their COMMIT was sent (the server rolled them back); one lost after it is the
  caller's `Overloaded`.

A database that stays unreachable is `Overloaded` (503).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, AsyncPipeline
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from imagehub.errors import Overloaded
from imagehub.store.base import Lease
from imagehub.store.connector import NO_PARAMS, POSTGRES, Executor, Locks, Params, Row
from imagehub.store.group_commit import GroupCommit
from imagehub.store.schema import migrations
from imagehub.store.sql import SQLStore
from imagehub.tasks import Task
from imagehub.tenancy.types import Submission

log = logging.getLogger("imagehub.store")

T = TypeVar("T")
Conn = AsyncConnection[TupleRow]

MIGRATIONS = migrations(POSTGRES)

#: pg_advisory_lock key of schema upgrades ("imagehub" in ASCII, as a bigint)
_LOCK_KEY = 0x696D616765687562
_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""


class SchemaOutdated(Exception):
    """The database schema is older than this version of the hub needs."""


class _Statements:
    """Statements on one connection (a transaction's)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        return (await self.conn.execute(POSTGRES.render(sql), params)).rowcount

    async def fetch_one(self, sql: str, params: Params = NO_PARAMS) -> Row | None:
        return await (await self.conn.execute(POSTGRES.render(sql), params)).fetchone()

    async def fetch_all(self, sql: str, params: Params = NO_PARAMS) -> list[Row]:
        return await (await self.conn.execute(POSTGRES.render(sql), params)).fetchall()


class _Pipelined(_Statements):
    """A transaction's statements in pipeline mode: sent at once, waited for only when their
    result is read (`send` never waits), so BEGIN travels with the first statement and the
    statements nobody reads travel with COMMIT."""

    def __init__(self, conn: Conn, pipeline: AsyncPipeline) -> None:
        super().__init__(conn)
        self.pipeline = pipeline

    async def send(self, sql: str, params: Params = NO_PARAMS) -> None:
        await self.conn.execute(POSTGRES.render(sql), params)

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        cur = await self.conn.execute(POSTGRES.render(sql), params)
        await self.pipeline.sync()  # a row count comes with no row to fetch: ask for it
        return cur.rowcount


class _CommitUnknown(Exception):
    """The connection broke after COMMIT was sent: the transaction may have been committed."""


async def _pipelined(conn: Conn, fn: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
    """`fn`'s statements in one transaction on `conn`, pipelined."""
    committing = False
    try:
        async with conn.pipeline() as pipeline:
            await conn.execute(b"BEGIN")
            try:
                result = await fn(_Pipelined(conn, pipeline))
            except BaseException:
                await _undo(conn, pipeline)
                raise
            committing = True
            await conn.execute(b"COMMIT")
        return result  # the pipeline's end waited for every result, COMMIT's included
    except psycopg.OperationalError as exc:
        if committing:
            raise _CommitUnknown(str(exc)) from exc
        raise


async def _undo(conn: Conn, pipeline: AsyncPipeline) -> None:
    """Roll back a transaction whose function raised (a statement's error, or its own)."""
    if conn.broken:
        return  # the server ends a broken session's transaction itself
    with contextlib.suppress(psycopg.Error):
        await pipeline.sync()  # past a failed statement, the server skips all until a sync
    with contextlib.suppress(psycopg.Error):
        await conn.execute(b"ROLLBACK")


class PostgresConnector:
    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        wait_seconds: float = 10.0,
        synchronous_commit: bool = True,
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        #: False: `synchronous_commit=off` on this pool's sessions (the server's setting stays)
        self.synchronous_commit = synchronous_commit
        #: how long a statement waits for a connection before the store counts as unavailable
        self.wait_seconds = wait_seconds
        self._pool: AsyncConnectionPool[Conn] | None = None

    async def open(self, *, migrate: bool = True) -> None:
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True, **_session_options(self.synchronous_commit)},
            timeout=self.wait_seconds,
            check=None,  # no round trip per checkout: see the module's docstring
            open=False,
        )
        await pool.open(wait=True, timeout=30.0)
        self._pool = pool
        try:
            await (self.migrate() if migrate else self.check())
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _on_connection(
        self, fn: Callable[[Conn, AsyncExitStack], Awaitable[T]], keep: AsyncExitStack
    ) -> T:
        """`fn` on a pooled connection; once more on another if that one was broken.

        `fn` may enter contexts on the connection's stack; `keep` holds them (and the
        connection) once `fn` succeeded. An unreachable database becomes `Overloaded` (503).
        """
        pool = self._pool
        assert pool is not None, "store is not open"
        for retry in (False, True):
            async with AsyncExitStack() as stack:
                conn: Conn | None = None
                try:
                    conn = await stack.enter_async_context(pool.connection())
                    result = await fn(conn, stack)
                except PoolTimeout as exc:
                    raise _unavailable(exc) from exc
                except psycopg.OperationalError as exc:
                    if conn is None or not conn.broken or retry:
                        raise _unavailable(exc) from exc
                    broken = exc
                else:
                    keep.push_async_exit(stack.pop_all())
                    return result
            # the broken connection is back in the pool, which drops it; its idle siblings
            # may be broken too (a restart breaks them all): the pool checks them first
            log.info("statement retried after a broken connection: %s", broken)
            with contextlib.suppress(Exception):
                await pool.check()
        raise AssertionError("unreachable")

    async def _once(self, fn: Callable[[_Statements], Awaitable[T]]) -> T:
        async with AsyncExitStack() as keep:
            return await self._on_connection(lambda conn, _: fn(_Statements(conn)), keep)

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        return await self._once(lambda s: s.execute(sql, params))

    async def fetch_one(self, sql: str, params: Params = NO_PARAMS) -> Row | None:
        return await self._once(lambda s: s.fetch_one(sql, params))

    async def fetch_all(self, sql: str, params: Params = NO_PARAMS) -> list[Row]:
        return await self._once(lambda s: s.fetch_all(sql, params))

    async def send(self, sql: str, params: Params = NO_PARAMS) -> None:
        await self.execute(sql, params)

    async def transaction(self, fn: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """`fn`'s statements pipelined: a round trip per result `fn` reads, and one to commit.

        On a connection found broken before COMMIT was sent (nothing of it was committed),
        `fn` runs once more on another; a connection lost after it, the outcome unknown, is
        the caller's `Overloaded`. Like SQLite's, `fn` must have no effects but its statements.
        """
        try:
            async with AsyncExitStack() as keep:
                return await self._on_connection(lambda conn, _: _pipelined(conn, fn), keep)
        except _CommitUnknown as exc:
            raise _unavailable(exc) from exc

    async def fetch_each(self, statements: Sequence[tuple[str, Params]]) -> list[Row | None]:
        """Each statement's first row, all of them in one transaction and one round trip.

        The statements are sent at once and their rows read after; one that fails undoes them
        all and raises (as does a connection lost after COMMIT was sent, as `Overloaded`).
        """

        async def run(tx: Executor) -> list[Row | None]:
            assert isinstance(tx, _Pipelined)
            sent = [await tx.conn.execute(POSTGRES.render(sql), args) for sql, args in statements]
            return [await cursor.fetchone() for cursor in sent]

        return await self.transaction(run)

    async def migrate(self) -> int:
        """Apply the missing steps, one transaction each; return the schema version.

        A session advisory lock serialises concurrent upgrades from many processes: the second
        one waits, then finds nothing left to do.
        """
        return await self._once(lambda s: _upgrade(s.conn))

    async def check(self) -> int:
        """The schema version; raise SchemaOutdated when steps are missing."""
        version = await self._once(lambda s: _version(s.conn))
        if version < len(MIGRATIONS):
            raise SchemaOutdated(
                f"the database schema is at version {version}, this hub needs "
                f"{len(MIGRATIONS)}: run `imagehub migrate` (or set IMAGEHUB_MIGRATE_ON_START=true)"
            )
        return version


def _session_options(synchronous_commit: bool) -> dict[str, str]:
    """Connection options: a commit that does not wait for its WAL flush, if so chosen."""
    return {} if synchronous_commit else {"options": "-c synchronous_commit=off"}


def _unavailable(exc: Exception) -> Overloaded:
    log.warning("database unavailable: %s", exc)
    return Overloaded("The task store is unavailable; try again shortly.")


async def _version(conn: Conn) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = 'schema_version'"
    )
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _upgrade(conn: Conn) -> int:
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        await conn.execute(_VERSION_TABLE)
        version = await _version(conn)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            log.info("database schema upgraded to version %d", number)
        return max(version, len(MIGRATIONS))
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


class PostgresStore(SQLStore):
    """Tasks, keys and webhooks in PostgreSQL, through a small pool of autocommit connections."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        migrate: bool = True,
        wait_seconds: float = 10.0,
        synchronous_commit: bool = True,
    ) -> None:
        connector = PostgresConnector(
            url,
            pool_size=pool_size,
            wait_seconds=wait_seconds,
            synchronous_commit=synchronous_commit,
        )
        super().__init__(connector, migrate=migrate)
        self.groups = GroupCommit(connector)

    async def close(self) -> None:
        await self.groups.drain()
        await super().close()

    async def _write_one(self, sql: str, params: Params, locks: Locks) -> Row | None:
        return await self.groups.fetch_one(sql, params, locks)

    async def _create_at_once(
        self, task: Task, submission: Submission | None, lease: Lease | None
    ) -> Task | None:
        while True:
            try:
                return await super()._create_at_once(task, submission, lease)
            except psycopg.errors.NotNullViolation as exc:
                if exc.diag.table_name != "spend":
                    raise
                # the key's last slot (or budget) was taken after the statement's snapshot
                # saw it free: nothing was written; run again on a fresh snapshot
                log.debug("submit of %s ran again: its key's limits changed meanwhile", task.id)
