"""SQLite: the embedded default (WAL, one writer connection on its own thread).

Writes go through a single thread and connection (as datasette does): SQLite has one writer
anyway, so a claim's `UPDATE ... RETURNING` needs no row locks, and a transaction runs whole
on that thread, in one hop. Reads (SELECTs outside a transaction) run on a small pool of their
own connections. Lease times are the `now` passed with each statement.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from imagehub.store.connector import NO_PARAMS, SQLITE, Executor, Params, Row
from imagehub.store.schema import migrations
from imagehub.store.sql import SQLStore
from imagehub.tasks import utcnow

T = TypeVar("T")

MIGRATIONS = migrations(SQLITE)


class _Transaction:
    """The statements of one transaction, run at once on the writer thread's connection.

    Its methods never suspend, so a transaction function awaiting only them completes in one
    `send` (see `_drive`): the whole transaction is one hop to the writer thread.
    """

    def __init__(self, connector: SQLiteConnector, conn: sqlite3.Connection) -> None:
        self.connector = connector
        self.conn = conn

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        return self.connector.statement(sql, params, lambda cur: cur.rowcount)(self.conn)

    async def fetch_one(self, sql: str, params: Params = NO_PARAMS) -> Row | None:
        row: Row | None = self.connector.statement(sql, params, lambda cur: cur.fetchone())(
            self.conn
        )
        return row

    async def fetch_all(self, sql: str, params: Params = NO_PARAMS) -> list[Row]:
        return self.connector.statement(sql, params, lambda cur: cur.fetchall())(self.conn)


def _drive(step: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends."""
    try:
        step.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    step.close()
    raise RuntimeError("a SQLite transaction awaited something other than its statements")


class SQLiteConnector:
    dialect = SQLITE

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._writer = ThreadPoolExecutor(1)
        self._readers = ThreadPoolExecutor(1)
        self._local = threading.local()
        self._write_conn: sqlite3.Connection | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

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

    async def on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._write_conn
        assert conn is not None, "store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, conn)

    def statement(
        self, sql: str, params: Params, result: Callable[[sqlite3.Cursor], T]
    ) -> Callable[[sqlite3.Connection], T]:
        """Running `sql` on a connection, with the lease clock's `now` when it uses it."""
        text = self.dialect.render(sql)
        args = {**params, "now": utcnow().timestamp()} if ":now" in text else dict(params)
        return lambda conn: result(conn.execute(text, args))

    async def _run(self, sql: str, params: Params, result: Callable[[sqlite3.Cursor], T]) -> T:
        run = self.statement(sql, params, result)
        if sql.lstrip().startswith("SELECT"):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._readers, lambda: run(self._reader()))
        return await self.on_writer(run)

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        return await self._run(sql, params, lambda cur: cur.rowcount)

    async def fetch_one(self, sql: str, params: Params = NO_PARAMS) -> Row | None:
        return await self._run(sql, params, lambda cur: cur.fetchone())

    async def fetch_all(self, sql: str, params: Params = NO_PARAMS) -> list[Row]:
        return await self._run(sql, params, lambda cur: cur.fetchall())

    async def transaction(self, fn: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = _drive(fn(_Transaction(self, conn)))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self.on_writer(run)

    async def open(self, *, migrate: bool = True) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="imagehub-sqlite-writer")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="imagehub-sqlite-reader")
        self._local = threading.local()
        self._reader_conns = []
        loop = asyncio.get_running_loop()
        self._write_conn = await loop.run_in_executor(self._writer, self._connect)
        await self.migrate()  # SQLite always migrates on open: the file is the hub's own

    async def migrate(self) -> int:
        return await self.on_writer(migrate)

    async def close(self) -> None:
        if self._write_conn is not None:
            await self.on_writer(lambda conn: conn.close())
            self._write_conn = None
        for conn in self._reader_conns:
            conn.close()
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)


class SQLiteStore(SQLStore):
    """Tasks, keys and webhooks in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(SQLiteConnector(path))


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
            continue
        logging.getLogger("imagehub.store").info("database schema upgraded to version %d", number)
    return len(MIGRATIONS)
