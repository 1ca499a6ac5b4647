"""SQLite: the embedded default (WAL, one writer connection on its own thread).

Writes go through a single thread and connection (as datasette does): SQLite has one writer
anyway, so a claim's `UPDATE ... RETURNING` needs no row locks. The writer commits in groups:
it takes every write queued since its last commit, runs them in one `BEGIN IMMEDIATE ..
COMMIT`, each transaction inside its own savepoint (so one that fails is undone alone), and
only after the COMMIT hands all their results back to the event loop in one wake-up. A hop to
the writer and a commit cost more than the statements themselves; under load a batch holds many
tasks' writes.

When nothing handed to the writer is still running and the database's write lock is free, a
turn's writes run on the event loop itself instead, on its own connection, in the same one
transaction: tens of microseconds of SQLite, where the hop costs the loop more (waking the
thread makes it take the GIL, which the loop then waits to take back). A lock held elsewhere
(another process) is never waited for on the loop: those writes try again on the loop a few
times, half a millisecond apart, then go to the writer thread, which waits for it.
Checkpoints of the write-ahead log run on a reader thread, every `CHECKPOINT_EVERY` groups.

Point reads (`fetch_one` of a SELECT) run on the event loop's own connection: in WAL mode a
reader never waits for the writer, and a hop would cost more than the read. Larger reads run on
a small pool of reader threads. Lease times are the `now` passed with each statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from imagehub.store.connector import NO_PARAMS, SQLITE, Executor, Params, Row
from imagehub.store.schema import migrations
from imagehub.store.sql import SQLStore
from imagehub.tasks import utcnow

T = TypeVar("T")

MIGRATIONS = migrations(SQLITE)

#: past this many writes a batch takes no more turns' writes: bounds the first one's wait
MAX_BATCH = 256
#: a checkpoint of the write-ahead log after this many groups committed on the loop (run on a
#: reader thread)
CHECKPOINT_EVERY = 64
#: a turn's writes that find the write lock held by another process (`serve --workers N`) try
#: again on the loop this often, at most this many times, before the writer thread, which waits
#: for the lock, takes them: its hand-off costs the loop more than a lock held for a moment
BUSY_RETRY_SECONDS = 0.0005
BUSY_RETRIES = 8


class _Busy(enum.Enum):
    BUSY = "busy"


_BUSY = _Busy.BUSY


class _Transaction:
    """The statements of one transaction, run at once on the connection of its group.

    Its methods never suspend, so a transaction function awaiting only them completes in one
    `send` (see `_drive`): the whole transaction runs at once, on the writer thread or the loop.
    """

    def __init__(self, connector: SQLiteConnector, conn: sqlite3.Connection) -> None:
        self.connector = connector
        self.conn = conn

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        return self.connector.statement(sql, params, lambda cur: cur.rowcount)(self.conn)

    async def send(self, sql: str, params: Params = NO_PARAMS) -> None:
        await self.execute(sql, params)

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


@dataclass(eq=False)
class _Write:
    """A write waiting for the writer thread, and where its result goes."""

    run: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    #: several statements: a savepoint makes them one within a group's transaction
    several: bool = False
    #: runs by itself, outside any transaction (schema steps, closing)
    alone: bool = False
    outcome: Any = None
    failure: BaseException | None = None


class _GroupLost(Exception):
    """The group's transaction was undone or could not commit: its writes run one by one."""


def _settle(writes: list[_Write]) -> None:
    """On the loop: hand each write its result (a waiter that gave up takes none)."""
    for write in writes:
        if write.future.done():
            continue
        if write.failure is not None:
            write.future.set_exception(write.failure)
        else:
            write.future.set_result(write.outcome)


class SQLiteConnector:
    dialect = SQLITE

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._queue: queue.SimpleQueue[list[_Write] | None] = queue.SimpleQueue()
        #: groups handed to the writer thread and not yet written (the loop writes none then)
        self._handed = 0
        #: how many times in a row the loop found the write lock held by another process
        self._busy_tries = 0
        self._groups = 0
        self._checkpointing = False
        #: writes made during this turn of the event loop, handed over at its end
        self._pending: list[_Write] = []
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(1)
        self._local = threading.local()
        self._write_conn: sqlite3.Connection | None = None
        self._loop_conn: sqlite3.Connection | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connect(self, busy_timeout_ms: int = 10000) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
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

    # -- the writer thread

    def _submit(
        self, run: Callable[[sqlite3.Connection], T], *, several: bool = False, alone: bool = False
    ) -> asyncio.Future[T]:
        assert self._writer is not None, "store is not open"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._pending:
            # the writes of this turn of the loop go over together, once it ends: waking the
            # writer thread makes it take the GIL, which the loop must then wait to take back
            loop.call_soon(self._hand_over)
        self._pending.append(_Write(run, loop, future, several=several, alone=alone))
        return future

    def _hand_over(self) -> None:
        pending, self._pending = self._pending, []
        if not self._handed:
            done = self._on_loop(pending)
            if done is True:
                self._busy_tries = 0
                self._groups += 1  # the writer thread's own commits checkpoint by themselves
                if self._groups % CHECKPOINT_EVERY == 0:
                    self._checkpoint()
                return
            if done is _BUSY and self._busy_tries < BUSY_RETRIES:
                # another process holds the write lock, for a moment: these writes try again
                # shortly on the loop, and the next turns' writes join them meanwhile
                self._busy_tries += 1
                self._pending = pending
                asyncio.get_running_loop().call_later(BUSY_RETRY_SECONDS, self._hand_over)
                return
        self._busy_tries = 0
        with self._lock:
            self._handed += 1
        self._queue.put(pending)

    def _on_loop(self, writes: list[_Write]) -> bool | _Busy:
        """Run `writes` as one group on the loop's connection; False (nothing done) when a
        write must run by itself, `_BUSY` when another connection holds the write lock."""
        conn = self._loop_conn
        loop = asyncio.get_running_loop()
        if conn is None or any(w.alone or w.loop is not loop for w in writes):
            return False
        try:
            conn.execute("BEGIN IMMEDIATE")  # this connection never waits for the lock
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return _BUSY
            for write in writes:
                write.failure = exc
        else:
            self._run_group(conn, writes)
        _settle(writes)
        return True

    def _checkpoint(self) -> None:
        """A checkpoint of the write-ahead log on a reader thread and its connection (the
        loop's makes none itself: one can take milliseconds). A passive one waits for no
        writer: the loop's writes go on meanwhile."""
        if self._checkpointing:
            return
        self._checkpointing = True

        def run() -> None:
            try:
                self._reader().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                self._checkpointing = False

        self._readers.submit(run).add_done_callback(lambda done: done.exception())

    async def on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the writer thread's connection, by itself and outside any transaction."""
        return await self._submit(fn, alone=True)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop, groups = first, False, 1
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch += more
                groups += 1
            try:
                self._write_batch(conn, batch)
            except BaseException as exc:  # the thread must answer every waiter, whatever broke
                for write in batch:
                    write.failure = exc
            with self._lock:  # before the answers: the loop may write again once they arrive
                self._handed -= groups
            self._answer(batch)
            if stop:
                return

    def _write_batch(self, conn: sqlite3.Connection, batch: list[_Write]) -> None:
        """Each run of writes between `alone` ones as one group; the `alone` ones by themselves."""
        group: list[_Write] = []
        for write in batch:
            if write.alone:
                self._commit_group(conn, group)
                group = []
                _attempt(write, lambda w=write: w.run(conn))
            else:
                group.append(write)
        self._commit_group(conn, group)

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Write]) -> None:
        if len(group) == 1:
            self._commit_one(conn, group[0])
            return
        if not group:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except Exception as exc:  # the file stayed locked by another process: all fail alike
            for write in group:
                write.failure = exc
            return
        self._run_group(conn, group)

    def _run_group(self, conn: sqlite3.Connection, group: list[_Write]) -> None:
        """The group's writes in the transaction just begun, then its COMMIT."""
        # alone in the transaction, a write needs no savepoint: its failure undoes the transaction
        # (two statements fewer a write, and at c=1 every write is alone)
        alone = len(group) == 1
        try:
            for write in group:
                if write.several and not alone:
                    _in_savepoint(conn, write)
                else:
                    _attempt(write, write.run, conn)
                # SQLite undoes the whole transaction on some errors (disk full, I/O, busy)
                if not conn.in_transaction:
                    raise _GroupLost()
            if alone and group[0].failure is not None:
                conn.execute("ROLLBACK")
                return
            conn.execute("COMMIT")
        except Exception:
            # nothing of the group was kept: each write again on its own, so that a write that
            # cannot commit fails alone and every other one is still reported only once stored
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            for write in group:
                write.failure = write.outcome = None
                self._commit_one(conn, write)

    @staticmethod
    def _commit_one(conn: sqlite3.Connection, write: _Write) -> None:
        if not write.several:  # one statement: SQLite commits it by itself
            _attempt(write, write.run, conn)
            return

        def whole(conn: sqlite3.Connection) -> Any:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = write.run(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        _attempt(write, whole, conn)

    @staticmethod
    def _answer(batch: list[_Write]) -> None:
        """One wake-up per event loop for the whole batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
        for write in batch:
            by_loop.setdefault(write.loop, []).append(write)
        for loop, writes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, writes)

    # -- statements

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
        return await self._submit(run)

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        return await self._run(sql, params, lambda cur: cur.rowcount)

    async def send(self, sql: str, params: Params = NO_PARAMS) -> None:
        await self.execute(sql, params)

    async def fetch_one(self, sql: str, params: Params = NO_PARAMS) -> Row | None:
        conn = self._loop_conn
        if conn is not None and sql.lstrip().startswith("SELECT"):
            run = self.statement(sql, params, lambda cur: cur.fetchone())
            try:
                row: Row | None = run(conn)
                return row
            except sqlite3.OperationalError as exc:
                # the loop's connection never waits (no busy timeout): a reader thread does
                if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
        return await self._run(sql, params, lambda cur: cur.fetchone())

    async def fetch_all(self, sql: str, params: Params = NO_PARAMS) -> list[Row]:
        return await self._run(sql, params, lambda cur: cur.fetchall())

    async def transaction(self, fn: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """`fn` whole, within the next group commit (on the writer thread or the loop).

        `fn` may run more than once (a group that cannot commit runs again write by write):
        only the statements of its last run are kept, so it must have no other effects.
        """
        return await self._submit(lambda conn: _drive(fn(_Transaction(self, conn))), several=True)

    # -- lifecycle

    async def open(self, *, migrate: bool = True) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="imagehub-sqlite-reader")
        self._local = threading.local()
        self._reader_conns = []
        self._queue = queue.SimpleQueue()
        self._pending = []
        loop = asyncio.get_running_loop()
        self._write_conn = conn = await loop.run_in_executor(self._readers, self._connect)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="imagehub-sqlite-writer", daemon=True
        )
        self._writer.start()
        await self.migrate()  # SQLite always migrates on open: the file is the hub's own
        self._loop_conn = self._connect(busy_timeout_ms=0)
        self._loop_conn.execute("PRAGMA wal_autocheckpoint = 0")  # see `_checkpoint`
        self._handed = self._groups = 0

    async def migrate(self) -> int:
        return await self.on_writer(migrate)

    async def close(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        if self._writer is not None:
            conn = self._write_conn
            if conn is not None:
                await self.on_writer(lambda _: conn.close())
            self._queue.put(None)
            self._writer.join()  # it has nothing left but the stop: a moment
            self._writer = None
            self._write_conn = None
        # the readers' work ends first: a checkpoint may still run on one of their connections,
        # and closing a connection under a running statement crashes the process
        self._readers.shutdown(wait=True)
        for reader in self._reader_conns:
            reader.close()


def _attempt(write: _Write, run: Callable[..., Any], *args: Any) -> None:
    try:
        write.outcome = run(*args)
    except Exception as exc:
        write.failure = exc


def _in_savepoint(conn: sqlite3.Connection, write: _Write) -> None:
    """A write of several statements within a group: undone alone if it fails."""
    conn.execute("SAVEPOINT write")
    _attempt(write, write.run, conn)
    if write.failure is not None and conn.in_transaction:
        conn.execute("ROLLBACK TO write")
    if conn.in_transaction:
        conn.execute("RELEASE write")


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
