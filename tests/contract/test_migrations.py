"""Schema migrations upgrade an existing database in place (from many processes at once:
tests/acceptance/test_migrate_processes.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from imagehub.store import SQLiteStore, migrate
from imagehub.store import sqlite as sqlite_backend
from imagehub.store.postgres import MIGRATIONS as PG_MIGRATIONS
from imagehub.store.postgres import PostgresStore, SchemaOutdated
from imagehub.store.rows import TASK_FIELDS, task_row
from imagehub.tasks import Task, new_id


def a_task() -> Task:
    return Task(id=new_id("tsk_"), tenant_id="t1", model="nano-banana", input={"prompt": "old"})


#: the task columns of the first release (later steps added the others)
FIRST_FIELDS = TASK_FIELDS[:23]
FIRST_COLUMNS = ", ".join(FIRST_FIELDS)


def as_row(task: Task) -> tuple[object, ...]:
    return tuple(task_row(task)[f] for f in FIRST_FIELDS)


# -- SQLite


def first_sqlite_schema(path: Path, task: Task) -> None:
    """A database as the first release left it: schema version 1, with a task in it."""
    conn = sqlite3.connect(path)
    conn.executescript(sqlite_backend.MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    marks = ", ".join("?" * len(FIRST_FIELDS))
    conn.execute(f"INSERT INTO tasks ({FIRST_COLUMNS}) VALUES ({marks})", as_row(task))
    conn.commit()
    conn.close()


def sqlite_version(path: Path) -> tuple[int, set[str]]:
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    return version, indexes


async def test_sqlite_upgrades_a_first_release_database_in_place(tmp_path: Path):
    path, task = tmp_path / "imagehub.db", a_task()
    first_sqlite_schema(path, task)
    store = SQLiteStore(path)
    await store.open()
    try:
        got = await store.get(task.id)
        assert got is not None and got.input == {"prompt": "old"}
        assert got.traceparent is None  # a column a later step added, empty on old rows
    finally:
        await store.close()
    version, indexes = sqlite_version(path)
    assert version == len(sqlite_backend.MIGRATIONS) > 1
    assert "tasks_owner" in indexes


async def test_sqlite_journal_rows_from_before_the_shape_step_read_as_no_shape(tmp_path: Path):
    path = tmp_path / "imagehub.db"
    steps = sqlite_backend.MIGRATIONS
    [before] = [n for n, step in enumerate(steps) if "attempts ADD COLUMN shape" in step]
    conn = sqlite3.connect(path)
    for step in steps[:before]:  # the schema just before the step that adds the shape
        conn.executescript(step)
    conn.execute(f"PRAGMA user_version = {before}")
    conn.execute(
        "INSERT INTO attempts (task_id, tenant_id, number, model, route, provider, started_at, "
        "finished_at, outcome) VALUES ('tsk_old', 't1', 1, 'nano-banana', 'r', 'demo', 1.0, 3.5, "
        "'succeeded')"
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        [old] = await store.attempts("tsk_old")
    finally:
        await store.close()
    assert (old.shape, old.seconds, old.route) == ("", 2.5, "r")
    assert sqlite_version(path)[0] == len(steps)


# -- PostgreSQL


def pg_versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY 1")]


def first_pg_schema(url: str, task: Task) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PG_MIGRATIONS[0])
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute(
            f"INSERT INTO tasks ({FIRST_COLUMNS}) VALUES ({', '.join(['%s'] * 23)})",
            as_row(task),
        )


async def test_postgres_fresh_database_gets_every_step_once(postgres_url: str):
    assert await migrate(postgres_url) == len(PG_MIGRATIONS)
    assert await migrate(postgres_url) == len(PG_MIGRATIONS), "a second run changes nothing"
    assert pg_versions(postgres_url) == list(range(1, len(PG_MIGRATIONS) + 1))


async def test_postgres_upgrades_an_older_schema_in_place(postgres_url: str):
    task = a_task()
    first_pg_schema(postgres_url, task)
    store = PostgresStore(postgres_url, pool_size=1)
    await store.open()
    try:
        got = await store.get(task.id)
        assert got is not None and got.input == {"prompt": "old"}
    finally:
        await store.close()
    assert pg_versions(postgres_url) == list(range(1, len(PG_MIGRATIONS) + 1))
    with psycopg.connect(postgres_url) as conn:
        indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes")}
    assert "tasks_owner" in indexes


async def test_postgres_without_migrate_on_start_refuses_an_outdated_schema(postgres_url: str):
    first_pg_schema(postgres_url, a_task())
    store = PostgresStore(postgres_url, pool_size=1, migrate=False)
    with pytest.raises(SchemaOutdated, match="imagehub migrate"):
        await store.open()
    await migrate(postgres_url)
    store = PostgresStore(postgres_url, pool_size=1, migrate=False)
    await store.open()
    await store.close()
