"""SQLite's group commit: the writes queued while the writer is busy share one transaction,
yet each keeps its own outcome, its order, and is reported only once committed; and a waiter
takes a task finished in this process from its wake-up instead of reading it again.

Statements are counted with a `sqlite3` trace callback, never timed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from imagehub.hub import Hub
from imagehub.routing import Router
from imagehub.settings import Settings
from imagehub.store.connector import Executor
from imagehub.store.sqlite import SQLiteConnector
from imagehub.testing import ScriptedProvider
from imagehub.wiring import build_hub

SCHEMA = [
    "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, parent_id INTEGER"
    " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
]


class Trace:
    """Every statement the hub's SQLite connections run, with the thread that ran it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def callback(self, sql: str) -> None:
        with self.lock:
            self.seen.append((threading.current_thread().name, " ".join(sql.split())))

    def since(self, mark: int) -> list[tuple[str, str]]:
        with self.lock:
            return self.seen[mark:]

    def mark(self) -> int:
        with self.lock:
            return len(self.seen)


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Trace:
    found = Trace()
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(*args, **kwargs)
        conn.set_trace_callback(found.callback)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    return found


@pytest.fixture
async def connector(tmp_path: Path, trace: Trace) -> AsyncIterator[SQLiteConnector]:
    db = SQLiteConnector(tmp_path / "hub.db")
    await db.open()
    await db.on_writer(lambda conn: conn.execute("PRAGMA foreign_keys = ON"))
    for statement in SCHEMA:
        await db.execute(statement)
    try:
        yield db
    finally:
        await db.close()


async def _held(db: SQLiteConnector) -> tuple[threading.Event, asyncio.Future[Any]]:
    """Hold the writer thread until the returned event is set: writes queue up meanwhile."""
    entered, release = threading.Event(), threading.Event()

    def hold(_: sqlite3.Connection) -> None:
        entered.set()
        release.wait(5)

    held = asyncio.ensure_future(db.on_writer(hold))
    await asyncio.to_thread(entered.wait, 5)
    assert entered.is_set()
    return release, held


def _insert(name: str, *, then_fail: bool = False) -> Callable[[Executor], Any]:
    async def write(tx: Executor) -> str:
        await tx.execute("INSERT INTO item (name) VALUES (:name)", {"name": name})
        await tx.execute("INSERT INTO item (name) VALUES (:name)", {"name": name + "-2"})
        if then_fail:
            raise ValueError(f"{name} changed its mind")
        return name

    return write


async def _names(db: SQLiteConnector) -> list[str]:
    return [row[0] for row in await db.fetch_all("SELECT name FROM item ORDER BY id")]


def _commits(statements: list[tuple[str, str]]) -> int:
    return sum(1 for _, sql in statements if sql.upper().startswith("COMMIT"))


async def test_writes_queued_together_commit_once_and_a_failing_one_is_undone_alone(
    connector: SQLiteConnector, trace: Trace
) -> None:
    release, held = await _held(connector)
    mark = trace.mark()
    writes = asyncio.gather(
        connector.transaction(_insert("a")),
        connector.transaction(_insert("b", then_fail=True)),
        connector.execute("INSERT INTO item (name) VALUES ('c')"),
        # a constraint error in a single statement: only that statement is undone
        connector.execute("INSERT INTO item (name) VALUES ('a')"),
        connector.transaction(_insert("d")),
        return_exceptions=True,
    )
    await asyncio.sleep(0.05)  # every write is queued behind the held writer
    release.set()
    a, b, c, duplicate, d = await writes
    await held
    assert (a, c, d) == ("a", 1, "d")
    assert isinstance(b, ValueError)
    assert isinstance(duplicate, sqlite3.IntegrityError)
    statements = trace.since(mark)
    assert _commits(statements) == 1, "the five writes were one batch: one commit"
    assert {thread for thread, _ in statements} == {"imagehub-sqlite-writer"}
    assert await _names(connector) == ["a", "a-2", "c", "d", "d-2"]


async def test_writes_of_one_batch_apply_in_the_order_they_were_queued(
    connector: SQLiteConnector,
) -> None:
    release, held = await _held(connector)
    names = [f"n{i}" for i in range(40)]
    writes = asyncio.gather(
        *(connector.execute("INSERT INTO item (name) VALUES (:n)", {"n": n}) for n in names)
    )
    renamed = asyncio.ensure_future(
        connector.execute("UPDATE item SET name = 'last' WHERE name = 'n39'")
    )
    await asyncio.sleep(0.05)
    release.set()
    await writes
    assert await renamed == 1, "the update ran after the insert queued before it"
    await held
    assert await _names(connector) == [*names[:-1], "last"]


async def test_a_write_is_reported_only_once_committed_and_a_group_that_cannot_commit_is_split(
    connector: SQLiteConnector, tmp_path: Path, trace: Trace
) -> None:
    """A foreign key checked at COMMIT fails the group's commit: nothing of the group was
    reported yet; each write then commits alone, and only the offending one fails."""
    other = sqlite3.connect(tmp_path / "hub.db")  # another process's view of the file
    seen_by_other: dict[str, list[str]] = {}

    async def then_look(name: str, write: asyncio.Future[Any]) -> Any:
        result = await write
        rows = other.execute("SELECT name FROM item ORDER BY id").fetchall()
        seen_by_other[name] = [row[0] for row in rows]
        return result

    try:
        release, held = await _held(connector)
        mark = trace.mark()
        writes = asyncio.gather(
            then_look("a", asyncio.ensure_future(connector.transaction(_insert("a")))),
            then_look(
                "orphan",
                asyncio.ensure_future(
                    connector.execute("INSERT INTO item (name, parent_id) VALUES ('x', 99)")
                ),
            ),
            then_look("c", asyncio.ensure_future(connector.transaction(_insert("c")))),
            return_exceptions=True,
        )
        await asyncio.sleep(0.05)
        release.set()
        a, orphan, c = await writes
        await held
        assert (a, c) == ("a", "c")
        assert isinstance(orphan, sqlite3.IntegrityError)
        # when a write's caller hears of it, every other connection already sees it
        assert "a" in seen_by_other["a"] and "c" in seen_by_other["c"]
        assert await _names(connector) == ["a", "a-2", "c", "c-2"]
        statements = [sql.upper() for _, sql in trace.since(mark)]
        assert statements.count("ROLLBACK") >= 1, "the group's transaction was rolled back"
    finally:
        other.close()


async def test_point_reads_run_on_the_event_loop_without_a_hop(
    connector: SQLiteConnector, trace: Trace
) -> None:
    await connector.execute("INSERT INTO item (name) VALUES ('a')")
    mark = trace.mark()
    assert await connector.fetch_one("SELECT name FROM item WHERE id = 1") == ("a",)
    assert trace.since(mark) == [
        (threading.current_thread().name, "SELECT name FROM item WHERE id = 1")
    ]


async def test_at_rest_a_turns_writes_run_on_the_loop_in_one_transaction(
    connector: SQLiteConnector, trace: Trace
) -> None:
    mark = trace.mark()
    a, failed, c = await asyncio.gather(
        connector.transaction(_insert("a")),
        connector.transaction(_insert("b", then_fail=True)),
        connector.execute("INSERT INTO item (name) VALUES ('c')"),
        return_exceptions=True,
    )
    assert (a, c) == ("a", 1)
    assert isinstance(failed, ValueError)
    statements = trace.since(mark)
    assert {thread for thread, _ in statements} == {threading.current_thread().name}
    assert _commits(statements) == 1
    assert await _names(connector) == ["a", "a-2", "c"]


async def test_a_write_alone_in_its_transaction_takes_no_savepoint_and_fails_whole(
    connector: SQLiteConnector, trace: Trace
) -> None:
    mark = trace.mark()
    assert await connector.transaction(_insert("a")) == "a"
    with pytest.raises(ValueError, match="changed its mind"):
        await connector.transaction(_insert("b", then_fail=True))
    with pytest.raises(sqlite3.IntegrityError):
        await connector.execute("INSERT INTO item (name) VALUES ('a')")
    statements = [sql.split()[0].upper() for _, sql in trace.since(mark)]
    assert statements == [
        *("BEGIN", "INSERT", "INSERT", "COMMIT"),
        *("BEGIN", "INSERT", "INSERT", "ROLLBACK"),
        *("BEGIN", "INSERT", "ROLLBACK"),
    ]
    assert await _names(connector) == ["a", "a-2"], "nothing of the failed writes was kept"


async def test_a_write_lock_held_elsewhere_is_waited_for_on_the_writer_thread_not_the_loop(
    connector: SQLiteConnector, tmp_path: Path, trace: Trace
) -> None:
    other = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)  # another process
    other.execute("BEGIN IMMEDIATE")
    try:
        mark = trace.mark()
        write = asyncio.ensure_future(connector.execute("INSERT INTO item (name) VALUES ('w')"))
        ticks = 0
        while not write.done() and ticks < 10:  # the loop runs on while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not write.done() and ticks == 10
        other.execute("COMMIT")
        assert await write == 1
        inserts = [thread for thread, sql in trace.since(mark) if sql.startswith("INSERT")]
        assert inserts == ["imagehub-sqlite-writer"]
    finally:
        other.close()
    # the writer thread has answered: the next writes run on the loop again
    mark = trace.mark()
    await connector.execute("INSERT INTO item (name) VALUES ('x')")
    assert {thread for thread, _ in trace.since(mark)} == {threading.current_thread().name}


async def test_a_write_lock_held_elsewhere_for_a_moment_is_waited_for_on_the_loop(
    connector: SQLiteConnector, tmp_path: Path, trace: Trace
) -> None:
    """`serve --workers N`: another process commits for a moment; the loop tries again, no
    hand-off to the writer thread, and the next turns' writes queue behind in order."""
    other = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)  # another process
    other.execute("BEGIN IMMEDIATE")
    try:
        mark = trace.mark()
        first = asyncio.ensure_future(connector.execute("INSERT INTO item (name) VALUES ('one')"))
        for _ in range(3):  # its turn ends: it finds the lock taken
            await asyncio.sleep(0)
        second = asyncio.ensure_future(
            connector.execute("UPDATE item SET name = 'two' WHERE name = 'one'")
        )
        await asyncio.sleep(0)
        assert not first.done()
        other.execute("COMMIT")
        assert (await first, await second) == (1, 1)
    finally:
        other.close()
    writes = [thread for thread, sql in trace.since(mark) if sql.startswith(("INSERT", "UPDATE"))]
    assert writes == [threading.current_thread().name] * 2
    assert await _names(connector) == ["two"]


async def test_writes_never_overtake_those_still_on_the_writer_thread(
    connector: SQLiteConnector,
) -> None:
    release, held = await _held(connector)
    first = asyncio.ensure_future(connector.execute("INSERT INTO item (name) VALUES ('one')"))
    await asyncio.sleep(0.02)  # its own turn: handed to the (held) writer thread
    second = asyncio.ensure_future(
        connector.execute("UPDATE item SET name = 'two' WHERE name = 'one'")
    )
    await asyncio.sleep(0.02)
    assert not second.done(), "the update waits for the insert before it"
    release.set()
    assert (await first, await second) == (1, 1)
    await held
    assert await _names(connector) == ["two"]


async def test_the_write_ahead_log_is_checkpointed_off_the_loop_and_off_the_writer(
    connector: SQLiteConnector, trace: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("imagehub.store.sqlite.CHECKPOINT_EVERY", 4)
    mark = trace.mark()
    for i in range(12):
        await connector.execute("INSERT INTO item (name) VALUES (:n)", {"n": f"n{i}"})
        await asyncio.sleep(0.01)  # a checkpoint runs meanwhile
    checkpoints = [thread for thread, sql in trace.since(mark) if "wal_checkpoint" in sql]
    assert checkpoints
    assert all(thread.startswith("imagehub-sqlite-reader") for thread in checkpoints)


async def test_a_checkpoint_holds_up_no_write(connector: SQLiteConnector, trace: Trace) -> None:
    """The loop writes on at rest while a checkpoint runs, and after it."""
    for i in range(20):
        await connector.execute("INSERT INTO item (name) VALUES (:n)", {"n": f"n{i}"})
    mark = trace.mark()
    connector._checkpoint()
    await connector.transaction(_insert("during"))
    await asyncio.sleep(0.05)
    await connector.transaction(_insert("after"))
    writes = [t for t, sql in trace.since(mark) if sql.startswith("INSERT")]
    assert writes == [threading.current_thread().name] * 4
    assert (await _names(connector))[-4:] == ["during", "during-2", "after", "after-2"]


# ---------------------------------------------------------------- the wait path


@pytest.fixture
async def hub(tmp_path: Path, trace: Trace) -> AsyncIterator[Hub]:
    settings = Settings(data_dir=tmp_path, admin_key=SecretStr("ih_test"), demo=False)
    the_hub = build_hub(settings, router=Router({}, fallback=ScriptedProvider(delay=0.05)))
    await the_hub.start()
    try:
        yield the_hub
    finally:
        await the_hub.stop()


def _task_reads(statements: list[tuple[str, str]]) -> int:
    return sum(1 for _, sql in statements if sql.startswith("SELECT") and "FROM tasks" in sql)


async def test_a_wait_from_the_submitted_task_reads_nothing_it_is_handed_the_finished_task(
    hub: Hub, trace: Trace
) -> None:
    task, _ = await hub.submit("tenant-a", "gpt-image-2", {"prompt": "a fox"})
    mark = trace.mark()
    done = await hub.wait("tenant-a", task.id, 10, known=task)
    assert done.status == "succeeded"
    assert _task_reads(trace.since(mark)) == 0
    # what the wake-up carried is the task as stored
    assert done == await hub.store.get(task.id)


async def test_a_wait_without_the_task_reads_it_once(hub: Hub, trace: Trace) -> None:
    task, _ = await hub.submit("tenant-a", "gpt-image-2", {"prompt": "a fox"})
    mark = trace.mark()
    done = await hub.wait("tenant-a", task.id, 10)
    assert done.status == "succeeded"
    assert _task_reads(trace.since(mark)) == 1


async def test_a_wait_with_another_tenants_task_reads_it_and_finds_nothing(
    hub: Hub, trace: Trace
) -> None:
    from imagehub.errors import NotFound

    task, _ = await hub.submit("tenant-a", "gpt-image-2", {"prompt": "a fox"})
    with pytest.raises(NotFound):
        await hub.wait("tenant-b", task.id, 1, known=task)
