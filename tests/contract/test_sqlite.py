"""What only the SQLite backend promises: several processes on one file, schema versions, rows."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagehub.store import SQLiteStore
from imagehub.store.connector import Executor
from imagehub.store.rows import (
    KEY_FIELDS,
    TASK_FIELDS,
    insert,
    key_from_row,
    key_row,
    task_from_row,
    task_row,
)
from imagehub.store.sqlite import MIGRATIONS, SQLiteConnector, migrate
from imagehub.tasks import OutputImage, Task, TaskFailure, TaskOutput, TaskStatus, Usage, new_id
from imagehub.tenancy.types import ApiKey


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        conn.close()


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def _task(**changes: object) -> Task:
    past = datetime.now(UTC) - timedelta(minutes=5)
    fields: dict[str, object] = {
        "id": new_id("t_"),
        "tenant_id": "tenant-a",
        "model": "nano-banana",
        "input": {"prompt": "a fox"},
        "created_at": past,
        "run_after": past,
    }
    fields.update(changes)
    return Task(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- two processes, one file


async def test_two_stores_on_one_file_claim_every_task_exactly_once(tmp_path):
    path = tmp_path / "hub.db"
    first, second = SQLiteStore(path), SQLiteStore(path)
    await first.open()
    await second.open()
    try:
        tasks = [
            _task(created_at=datetime.now(UTC) - timedelta(seconds=300 - i)) for i in range(200)
        ]
        for task in tasks:
            await first.create(task)

        async def drain(store: SQLiteStore, owner: str) -> list[Task]:
            taken: list[Task] = []
            while batch := await store.claim(owner, 5, 60):
                taken += batch
                # let the other process's writer in between claims (SQLite's busy handler
                # backs off, so a tight loop could starve it); which side wins is not asserted
                await asyncio.sleep(0.001)
            return taken

        results = await asyncio.gather(
            drain(first, "p1-a"), drain(first, "p1-b"), drain(second, "p2-a"), drain(second, "p2-b")
        )
        claimed = [task.id for batch in results for task in batch]
        counts = Counter(claimed)
        assert [tid for tid, n in counts.items() if n > 1] == []
        assert set(claimed) == {task.id for task in tasks}
        # every task was leased once, to the owner that got it back from claim
        for owner, batch in zip(("p1-a", "p1-b", "p2-a", "p2-b"), results, strict=True):
            for task in batch:
                now = await second.get(task.id)
                assert now is not None
                assert (now.lease_owner, now.attempts, now.lease_token) == (owner, 1, 1)
    finally:
        await first.close()
        await second.close()


async def test_two_stores_opening_a_fresh_file_at_once_both_succeed(tmp_path):
    path = tmp_path / "fresh.db"
    stores = [SQLiteStore(path) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        task = _task()
        await stores[0].create(task)
        assert await stores[3].get(task.id) == task
    finally:
        for store in stores:
            await store.close()
    assert _user_version(path) == len(MIGRATIONS)


async def test_open_waits_while_another_process_holds_a_fresh_file_locked(tmp_path):
    """SQLite answers BUSY to the switch to WAL at once (no busy handler) in this case."""
    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None)
    store = SQLiteStore(path)
    opening: asyncio.Task[None] | None = None
    try:
        other.execute("BEGIN IMMEDIATE")
        opening = asyncio.create_task(store.open())
        await asyncio.sleep(0.3)
        assert not opening.done(), "open gave up instead of waiting for the lock"
        other.execute("COMMIT")
        await opening
        await store.ping()
    finally:
        other.close()
        if opening is not None and opening.done() and not opening.cancelled():
            opening.exception()  # retrieved: the assertion above reports the failure
        await store.close()
    assert _user_version(path) == len(MIGRATIONS)


def test_migrate_tolerates_another_process_applying_the_same_step_first(tmp_path):
    """Process A reads user_version 0, then waits for B's write lock; B migrates meanwhile."""
    path = tmp_path / "race.db"
    connector = SQLiteConnector(path)
    a, b = connector._connect(), connector._connect()
    errors: list[BaseException] = []
    results: list[int] = []

    def run_a() -> None:
        try:
            results.append(migrate(a))
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    try:
        b.execute("BEGIN IMMEDIATE")
        thread = threading.Thread(target=run_a)
        thread.start()
        time.sleep(0.3)  # A has read version 0 and now waits on BEGIN IMMEDIATE
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                b.execute(statement)
        b.execute("PRAGMA user_version = 1")
        b.execute("COMMIT")
        thread.join(timeout=20)
        assert not thread.is_alive()
        assert errors == []
        assert results == [len(MIGRATIONS)]
        assert not a.in_transaction
        assert a.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------- schema


async def test_reopening_a_database_keeps_its_data_and_schema_version(tmp_path):
    path = tmp_path / "hub.db"
    task = _task(idempotency_key="k1")
    key = ApiKey(id="k_1", tenant_id="tenant-a", key_hash="h1", prefix="ih_h1", admin=True)
    store = SQLiteStore(path)
    await store.open()
    await store.create(task)
    await store.add_key(key)
    await store.close()
    assert _user_version(path) == len(MIGRATIONS)

    again = SQLiteStore(path)
    await again.open()
    try:
        assert await again.get(task.id) == task
        assert await again.get_key("h1") == key
        assert await again.count_keys() == 1
    finally:
        await again.close()
    assert _user_version(path) == len(MIGRATIONS)


async def test_a_store_reopened_after_close_works_again(tmp_path):
    store = SQLiteStore(tmp_path / "hub.db")
    await store.open()
    task = _task()
    await store.create(task)
    await store.close()
    await store.open()
    try:
        assert await store.get(task.id) == task
    finally:
        await store.close()


def test_migrate_brings_an_empty_file_to_the_latest_version(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn) == len(MIGRATIONS)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert {"tasks", "api_keys"} <= _tables(conn)
        # a second run is a no-op, not an error
        assert migrate(conn) == len(MIGRATIONS)
        assert not conn.in_transaction
    finally:
        conn.close()


async def test_open_on_an_empty_file_creates_the_schema(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.ping()
        assert await store.count_keys() == 0
    finally:
        await store.close()
    assert _user_version(path) == len(MIGRATIONS)


# ---------------------------------------------------------------- rows


def _full_task(moment: datetime) -> Task:
    """A task in which no field has its default value."""
    at = moment
    return Task(
        id=new_id("t_"),
        tenant_id="tenant-ü",
        model="nano-banana-2/edit",
        input={
            "prompt": 'une île ✓ "quoted" \n line',
            "image_urls": ["https://example.com/a.png", "data:image/png;base64,AAAA"],
            "num_images": 2,
            "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
        },
        status=TaskStatus.RUNNING,
        output=TaskOutput(
            images=(
                OutputImage(
                    content_type="image/png",
                    file_name="image-0.png",
                    file_size=123_456,
                    width=1376,
                    height=768,
                    file_id="f_" + "b" * 22 + ".png",
                ),
                OutputImage(
                    content_type="image/webp",
                    file_name="image-1.webp",
                    file_size=99,
                    width=768,
                    height=1376,
                    data_uri="data:image/webp;base64,UklGRg==",
                ),
            ),
            description="two foxes",
            purged=True,
        ),
        error=TaskFailure("upstream_timeout", "slow", True),
        provider="demo",
        warnings=("first warning", "second ✓"),
        attempts=2,
        max_attempts=5,
        metadata={"order": 17, "tags": ["a", "b"]},
        webhook_url="https://example.com/hook?x=1",
        idempotency_key="idem-1",
        request_hash="sha256:abc",
        usage=Usage(cost_usd=0.123456, input_tokens=12, output_tokens=1290),
        created_at=at,
        started_at=at + timedelta(microseconds=1),
        finished_at=at + timedelta(seconds=1, microseconds=999_998),
        run_after=at + timedelta(microseconds=500_000),
        lease_owner="worker-7",
        lease_expires_at=at + timedelta(seconds=30, microseconds=7),
        lease_token=9,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )


MOMENTS = [
    datetime(2001, 9, 9, 1, 46, 40, 0, tzinfo=UTC),
    datetime(2025, 3, 4, 5, 6, 7, 1, tzinfo=UTC),
    datetime(2025, 3, 4, 5, 6, 7, 499_999, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2099, 1, 1, 0, 0, 0, 123_457, tzinfo=UTC),
]


def test_the_round_trip_task_sets_every_field_to_a_non_default_value():
    task = _full_task(MOMENTS[1])
    defaults = Task(id="x", tenant_id="x", model="x", input={})
    for f in dataclasses.fields(Task):
        if f.name in {"id", "tenant_id", "model", "input"}:
            continue
        assert getattr(task, f.name) != getattr(defaults, f.name), f.name


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_a_row_round_trips_every_field_of_a_task_exactly(moment):
    task = _full_task(moment)
    assert task_from_row(tuple(task_row(task)[f] for f in TASK_FIELDS)) == task


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
async def test_a_task_stored_in_sqlite_comes_back_exactly(tmp_path, moment):
    task = _full_task(moment)
    store = SQLiteStore(tmp_path / "hub.db")
    await store.open()
    try:
        await store.create(task)
        back = await store.get(task.id)
    finally:
        await store.close()
    assert back == task
    assert back is not None
    assert back.created_at.microsecond == moment.microsecond
    assert back.created_at.tzinfo is not None


def test_a_key_row_round_trips_every_field():
    key = ApiKey(
        id="k_1",
        tenant_id="tenant-a",
        key_hash="hash",
        prefix="ih_abcd",
        name="deploy",
        admin=True,
        created_at=MOMENTS[2],
        revoked_at=MOMENTS[3],
    )
    assert key_from_row(tuple(key_row(key)[f] for f in KEY_FIELDS)) == key


async def test_a_transaction_that_awaits_anything_but_its_statements_writes_nothing(tmp_path):
    """SQLite runs a transaction whole on its writer thread: it may not wait on the loop."""
    store = SQLiteStore(tmp_path / "hub.db")
    await store.open()
    try:
        task = Task(id=new_id("tsk_"), tenant_id="t1", model="nano-banana", input={})

        async def insert_then_wait(tx: Executor) -> None:
            await tx.execute(insert("tasks", TASK_FIELDS), task_row(task))
            await asyncio.sleep(0)

        with pytest.raises(RuntimeError, match="awaited something other"):
            await store.db.transaction(insert_then_wait)
        assert await store.get(task.id) is None
    finally:
        await store.close()
