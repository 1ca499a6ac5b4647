"""PostgreSQL's group commit (`imagehub.store.group_commit`): a process's concurrent submits and
finishes share transactions, keep each one's outcome, and lock rows in one order."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
import pytest

from imagehub.store import Lease
from imagehub.store.connector import Locks, Params, Row
from imagehub.store.postgres import PostgresStore
from imagehub.tasks import Task, TaskStatus
from imagehub.tenancy.types import OverLimit
from tests.contract.test_journal import call
from tests.contract.test_postgres_commits import until_a_session_waits_for_a_lock
from tests.contract.test_store import charged, limited_key, make_task, succeeded_at, usage_of

LANES = 24
#: a write that locks none of the hub's rows
NOTHING = Locks()


class Groups:
    """The size of each group a store commits together, in statements (its locks included)."""

    def __init__(self, store: PostgresStore) -> None:
        self.sizes: list[int] = []
        db = store.db
        fetch_each = db.fetch_each

        async def counted(statements: list[tuple[str, Params]]) -> list[Row | None]:
            self.sizes.append(len(statements))
            return await fetch_each(statements)

        db.fetch_each = counted  # type: ignore[method-assign]


@pytest.fixture
async def store(postgres_url: str) -> Any:
    store = PostgresStore(postgres_url, pool_size=4)
    await store.open()
    yield store
    await store.close()


async def _one_task(store: PostgresStore, key: Any, n: int) -> Task:
    task = await store.create(make_task(offset=n), charged(key, 50_000), Lease("w1", 60))
    done = succeeded_at(task, 0.02)
    assert await store.finish(done, call(done))
    return task


async def test_concurrent_submits_and_finishes_share_commits_and_keep_every_count(
    store: PostgresStore, caplog: Any
):
    groups = Groups(store)
    key = await limited_key(store, budget_micros=10_000_000)
    with caplog.at_level(logging.DEBUG, logger="imagehub.store"):
        tasks = await asyncio.gather(*(_one_task(store, key, n) for n in range(LANES)))
    assert not [r for r in caplog.records if "one by one" in r.getMessage()]
    # each group's writes came after its locks: at least one group held several writes
    assert groups.sizes and max(groups.sizes) > 3
    assert await usage_of(store, key) == (0, 0, LANES * 20_000)
    for task in tasks:
        stored = await store.get(task.id)
        assert stored is not None and stored.status == TaskStatus.SUCCEEDED
        assert [a.route for a in await store.attempts(task.id)] == ["gemini"]


async def test_a_group_of_submits_on_a_limited_key_admits_only_its_slots(store: PostgresStore):
    groups = Groups(store)
    key = await limited_key(store, concurrency_limit=3)
    outcomes = await asyncio.gather(
        *(store.create(make_task(offset=n), charged(key, 0)) for n in range(10)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, OverLimit)]
    stored = [o for o in outcomes if isinstance(o, Task)]
    assert (len(stored), len(refused)) == (3, 7)
    assert groups.sizes  # the submits after the first went together
    assert await usage_of(store, key) == (3, 0, 0)


async def test_a_failing_write_fails_alone_and_its_group_runs_again_one_by_one(
    store: PostgresStore, caplog: Any
):
    groups = Groups(store)
    store.groups.slots = 1  # the first write alone, then all the others in one group
    await store.db.execute("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
    insert = "INSERT INTO numbers (n) VALUES (:n) RETURNING n"
    with caplog.at_level(logging.DEBUG, logger="imagehub.store"):
        outcomes = await asyncio.gather(
            *(store.groups.fetch_one(insert, {"n": n}, NOTHING) for n in range(4)),
            store.groups.fetch_one(insert, {"n": 0}, NOTHING),  # the first one's number, taken
            *(store.groups.fetch_one(insert, {"n": n}, NOTHING) for n in range(4, 8)),
            return_exceptions=True,
        )
    assert groups.sizes == [8]  # the first went alone, the other eight together, and failed
    assert [r for r in caplog.records if "one by one" in r.getMessage()]
    assert isinstance(outcomes[4], psycopg.errors.UniqueViolation)
    assert [o for i, o in enumerate(outcomes) if i != 4] == [(n,) for n in range(8)]
    rows = await store.db.fetch_all("SELECT n FROM numbers ORDER BY n")
    assert rows == [(n,) for n in range(8)]


async def test_a_group_takes_its_tasks_rows_before_any_keys(postgres_url: str):
    """A group that will finish a task another session holds (a cancel under way: the task's
    row, then its key's) waits for that row before locking any key: the two never wait for
    each other in a cycle."""
    store = PostgresStore(postgres_url, pool_size=4)
    store.groups.slots = 1  # the first write alone, the next two in one group
    await store.open()
    try:
        key = await limited_key(store, budget_micros=10_000_000)
        held = await store.create(make_task(), charged(key, 10), Lease("w1", 60))
        async with await psycopg.AsyncConnection.connect(postgres_url) as other:
            await other.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", (held.id,))
            leader = asyncio.create_task(store.create(make_task(offset=1), charged(key, 10)))
            await asyncio.sleep(0)  # the leader runs alone; the next two wait for it
            done = succeeded_at(held, 0.01)
            finish = asyncio.create_task(store.finish(done, call(done)))
            submit = asyncio.create_task(store.create(make_task(offset=2), charged(key, 10)))
            await leader
            await until_a_session_waits_for_a_lock(postgres_url)
            async with await psycopg.AsyncConnection.connect(postgres_url) as probe:
                # the key is free: the group waits for the task's row and holds nothing else
                await probe.execute(
                    "SELECT 1 FROM api_keys WHERE id = %s FOR UPDATE NOWAIT", (key.id,)
                )
                await probe.rollback()
            await other.commit()
        assert await finish
        assert (await submit).status == TaskStatus.QUEUED
        assert await usage_of(store, key) == (2, 20, 10_000)
    finally:
        await store.close()


async def test_closing_the_store_waits_for_the_writes_handed_over(postgres_url: str):
    store = PostgresStore(postgres_url, pool_size=2)
    await store.open()
    key = await limited_key(store, budget_micros=10_000_000)
    submits = [
        asyncio.create_task(store.create(make_task(offset=n), charged(key, 10))) for n in range(8)
    ]
    await asyncio.sleep(0)
    await store.close()
    assert all(isinstance(task, Task) for task in await asyncio.gather(*submits))
    reopened = PostgresStore(postgres_url, pool_size=1)
    await reopened.open()
    try:
        assert await usage_of(reopened, key) == (8, 80, 0)
    finally:
        await reopened.close()


async def test_two_processes_finishing_tasks_of_several_keys_never_deadlock(
    postgres_url: str, caplog: Any
):
    """Two stores (two processes' worth) finish tasks charged to three keys, in orders that
    cross: each group locks its keys sorted, so no group waits for another in a cycle (a
    deadlock would end one after a second, and its writes would run again one by one)."""
    stores = [PostgresStore(postgres_url, pool_size=3) for _ in range(2)]
    for store in stores:
        await store.open()
    try:
        keys = [await limited_key(stores[0], budget_micros=10**9) for _ in range(3)]
        tasks = [
            await stores[0].create(make_task(offset=n), charged(keys[n % 3], 10), Lease("w", 60))
            for n in range(180)
        ]

        async def finish(store: PostgresStore, task: Task) -> bool:
            done = succeeded_at(task, 0.001)
            return await store.finish(done, call(done))

        with caplog.at_level(logging.DEBUG, logger="imagehub.store"):
            for start in range(0, len(tasks), 30):  # one process forwards, one backwards
                batch = tasks[start : start + 30]
                finished = await asyncio.gather(
                    *(finish(stores[0], task) for task in batch[:15]),
                    *(finish(stores[1], task) for task in batch[15:][::-1]),
                )
                assert all(finished)
        assert not [r for r in caplog.records if "one by one" in r.getMessage()]
        for key in keys:
            assert await usage_of(stores[0], key) == (0, 0, 60_000)
    finally:
        for store in stores:
            await store.close()


async def test_a_heartbeat_locks_its_tasks_rows_in_id_order(
    store: PostgresStore, postgres_url: str
):
    """As a group does: a heartbeat waiting for one of its worker's tasks (a group finishing it)
    holds none of the tasks after it, which that group may lock next."""
    later = await store.create(make_task(id="t_z-later"), None, Lease("w1", 60))  # first row
    first = await store.create(make_task(id="t_a-first"), None, Lease("w1", 60))
    async with await psycopg.AsyncConnection.connect(postgres_url) as other:
        await other.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", (first.id,))
        heartbeat = asyncio.create_task(store.heartbeat("w1", 60))
        await until_a_session_waits_for_a_lock(postgres_url)
        async with await psycopg.AsyncConnection.connect(postgres_url) as probe:
            await probe.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE NOWAIT", (later.id,))
            await probe.rollback()
        await other.commit()
    assert await heartbeat == {first.id, later.id}
