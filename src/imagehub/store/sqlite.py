"""SQLite store: the embedded default (WAL, one writer connection on its own thread).

Writes go through a single thread and connection (as datasette does): SQLite has one writer
anyway, and a claim is one `UPDATE ... RETURNING` statement, so no other writer can hold the
rows it takes. Reads run on a small pool of their own connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from imagehub.store import tenancy
from imagehub.store.base import (
    ApiKey,
    DuplicateTask,
    Page,
    Submission,
)
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
from imagehub.store.sqlite_tenancy import SQLiteTenancy, finished, submitted, transaction
from imagehub.tasks import Task, TaskStatus, utcnow

T = TypeVar("T")

#: Versioned schema: entry N upgrades a database at user_version N to N + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        model TEXT NOT NULL,
        input TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        provider TEXT,
        warnings TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        metadata TEXT,
        webhook_url TEXT,
        idempotency_key TEXT,
        request_hash TEXT,
        usage TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        run_after REAL NOT NULL,
        lease_owner TEXT,
        lease_expires_at REAL,
        lease_token INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX tasks_idempotency ON tasks (tenant_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tasks_queue ON tasks (run_after, created_at) WHERE status = 'queued';
    CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE status = 'running';
    CREATE INDEX tasks_history ON tasks (tenant_id, created_at DESC, id DESC);
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        admin INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
    # heartbeats and releases select a worker's running tasks by owner
    "CREATE INDEX tasks_owner ON tasks (lease_owner) WHERE status = 'running'",
    # key limits and spend, request rates, webhook deliveries and secrets
    tenancy.SCHEMA,
]

_INSERT = f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * 23)})"
_CLAIM = f"""
    UPDATE tasks SET status = 'running', lease_owner = ?, lease_expires_at = ?,
        lease_token = lease_token + 1, attempts = attempts + 1,
        started_at = COALESCE(started_at, ?)
    WHERE id IN (SELECT id FROM tasks WHERE status = 'queued' AND run_after <= ?
                 ORDER BY run_after, created_at LIMIT ?)
    RETURNING {TASK_COLUMNS}"""
_FINISH = """
    UPDATE tasks SET status = ?, output = ?, error = ?, provider = ?, warnings = ?, usage = ?,
        finished_at = ?, run_after = ?, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ? AND lease_token = ? AND status = 'running'"""
_REAP = f"""
    UPDATE tasks SET
        status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
        error = CASE WHEN attempts >= max_attempts THEN ? ELSE error END,
        finished_at = CASE WHEN attempts >= max_attempts THEN ? ELSE NULL END,
        run_after = ?, lease_owner = NULL, lease_expires_at = NULL
    WHERE status = 'running' AND lease_expires_at < ?
    RETURNING {TASK_COLUMNS}"""
_CANCEL = """
    UPDATE tasks SET status = 'canceled', finished_at = ?, lease_owner = NULL,
        lease_expires_at = NULL,
        error = '{"code":"canceled","message":"The task was canceled.","retryable":false}'
    WHERE id = ? AND tenant_id = ? AND status IN ('queued', 'running')"""


class SQLiteStore(SQLiteTenancy):
    """Tasks and keys in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._writer = ThreadPoolExecutor(1)
        self._readers = ThreadPoolExecutor(1)
        self._local = threading.local()
        self._write_conn: sqlite3.Connection | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- plumbing

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        _enable_wal(conn)
        # NORMAL in WAL mode: a power loss may drop the last commits, a process crash never
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._write_conn
        assert conn is not None, "store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, conn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            return fn(self._reader())

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="imagehub-sqlite-writer")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="imagehub-sqlite-reader")
        self._local = threading.local()
        self._reader_conns = []
        loop = asyncio.get_running_loop()
        self._write_conn = await loop.run_in_executor(self._writer, self._connect)
        await self._write(migrate)

    async def close(self) -> None:
        if self._write_conn is not None:
            await self._write(lambda conn: conn.close())
            self._write_conn = None
        for conn in self._reader_conns:
            conn.close()
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    # -- tasks

    async def create(self, task: Task, submission: Submission | None = None) -> None:
        def insert(conn: sqlite3.Connection) -> Task | None:
            try:
                conn.execute(_INSERT, task_to_row(task))
            except sqlite3.IntegrityError:
                row = conn.execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks WHERE tenant_id = ? AND idempotency_key = ?",
                    (task.tenant_id, task.idempotency_key),
                ).fetchone()
                if row is None:
                    raise
                return task_from_row(row)
            submitted(conn, task, submission)
            return None

        existing = await self._write(lambda conn: transaction(conn, insert))
        if existing is not None:
            raise DuplicateTask(existing)

    async def get(self, task_id: str, tenant_id: str | None = None) -> Task | None:
        def select(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()

        row = await self._read(select)
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
        sql, args = history_query("?", tenant_id, model, status, cursor, limit)
        rows = await self._read(lambda conn: conn.execute(sql, args).fetchall())
        return history_page(rows, limit)

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Task]:
        now = utcnow().timestamp()
        rows = await self._write(
            lambda conn: conn.execute(
                _CLAIM, (owner, now + lease_seconds, now, now, limit)
            ).fetchall()
        )
        return sorted((task_from_row(row) for row in rows), key=lambda t: t.created_at)

    async def heartbeat(self, owner: str, lease_seconds: float) -> set[str]:
        until = utcnow().timestamp() + lease_seconds
        rows = await self._write(
            lambda conn: conn.execute(
                "UPDATE tasks SET lease_expires_at = ? WHERE lease_owner = ? "
                "AND status = 'running' RETURNING id",
                (until, owner),
            ).fetchall()
        )
        return {row[0] for row in rows}

    async def finish(self, task: Task) -> bool:
        params = (*outcome_params(task), task.id, task.lease_token)
        if not task.ready:
            return bool(await self._write(lambda conn: conn.execute(_FINISH, params).rowcount))

        def write(conn: sqlite3.Connection) -> int:
            count: int = conn.execute(_FINISH, params).rowcount
            if count:
                cost = tenancy.cost_micros(task)
                finished(conn, [(task.id, cost)], webhooks=task.webhook_url is not None)
            return count

        return bool(await self._write(lambda conn: transaction(conn, write)))

    async def release(self, owner: str) -> int:
        now = utcnow().timestamp()
        return await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE tasks SET status = 'queued', lease_owner = NULL, "
                    "lease_expires_at = NULL, run_after = ? "
                    "WHERE lease_owner = ? AND status = 'running'",
                    (now, owner),
                ).rowcount
            )
        )

    async def reap(self) -> list[Task]:
        now = utcnow().timestamp()

        def write(conn: sqlite3.Connection) -> list[Task]:
            rows = conn.execute(_REAP, (LOST_WORKER_ERROR, now, now, now)).fetchall()
            reaped = [task_from_row(row) for row in rows]
            finished(conn, [(t.id, 0) for t in reaped if t.ready])
            return reaped

        return await self._write(lambda conn: transaction(conn, write))

    async def cancel(self, task_id: str, tenant_id: str) -> Task | None:
        now = utcnow().timestamp()

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(_CANCEL, (now, task_id, tenant_id)).rowcount:
                finished(conn, [(task_id, 0)])

        await self._write(lambda conn: transaction(conn, write))
        return await self.get(task_id, tenant_id)

    async def purge_output(self, task_id: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE tasks SET output = json_set(json_set(output, '$.images', json('[]')),"
                " '$.purged', json('true')) WHERE id = ? AND output IS NOT NULL",
                (task_id,),
            )
        )

    # -- keys

    async def get_key(self, key_hash: str) -> ApiKey | None:
        row = await self._read(
            lambda conn: conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
        )
        return key_from_row(row) if row else None

    async def count_keys(self) -> int:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"
            ).fetchone()
        )
        return int(row[0])


def _enable_wal(conn: sqlite3.Connection, timeout: float = 10.0) -> None:
    """Switch to WAL, retrying while another connection holds the lock.

    On a fresh file, processes opening at once race to convert it; SQLite may answer BUSY
    without calling the busy handler (a lock upgrade that could deadlock), so retry here.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date, one version per transaction; return the version."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;"
            )
        except sqlite3.Error:
            # another process may have applied this step between our read of user_version
            # and our BEGIN IMMEDIATE: then the script fails (table exists) and is rolled back
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if conn.execute("PRAGMA user_version").fetchone()[0] < number:
                raise
    return len(MIGRATIONS)
