"""The store contract, run over PostgreSQL next to the memory and SQLite stores.

Every protocol method behaves the same on each backend; PostgreSQL also shows that concurrent
claimers (several store instances, as several worker processes would be) never share a task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest

from imagehub.store import MemoryStore, SQLiteStore, Store
from imagehub.store.postgres import PostgresStore
from imagehub.tasks import (
    DuplicateTask,
    OutputImage,
    Task,
    TaskFailure,
    TaskOutput,
    TaskStatus,
    Usage,
    new_id,
    utcnow,
)
from imagehub.tenancy.types import ApiKey

BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    elif request.param == "sqlite":
        backend = SQLiteStore(tmp_path / "store.db")
    else:
        backend = PostgresStore(request.getfixturevalue("shared_postgres"), pool_size=4)
    await backend.open()
    yield backend
    await backend.close()


_clock = utcnow()


def make_task(tenant: str = "t1", **changes) -> Task:
    """A queued task; each one created a millisecond after the previous (a stable order)."""
    global _clock
    _clock += timedelta(milliseconds=1)
    base = Task(
        id=new_id("tsk_"),
        tenant_id=tenant,
        model="nano-banana",
        input={"prompt": "a lighthouse", "num_images": 1},
        created_at=_clock,
        run_after=utcnow() - timedelta(seconds=1),
    )
    return dataclasses.replace(base, **changes)


def succeeded(task: Task) -> Task:
    image = OutputImage("image/png", f"{task.id}-0.png", 10, 8, 8, file_id="f_x.png")
    return task.replace(
        status=TaskStatus.SUCCEEDED,
        output=TaskOutput(images=(image,), description="done"),
        provider="scripted",
        usage=Usage(0.039, 10, 1290),
        warnings=("one warning",),
        finished_at=utcnow(),
    )


# -- create, get, list


async def test_a_created_task_reads_back_with_every_field(store: Store):
    task = make_task(
        metadata={"ref": "x"},
        webhook_url="https://example.com/hook",
        idempotency_key="k1",
        request_hash="abc",
        warnings=("w",),
        max_attempts=5,
    )
    await store.create(task)
    got = await store.get(task.id)
    assert got is not None
    assert got.id == task.id and got.input == task.input and got.metadata == {"ref": "x"}
    assert got.status == TaskStatus.QUEUED and got.warnings == ("w",) and got.max_attempts == 5
    assert got.webhook_url == task.webhook_url and got.request_hash == "abc"
    assert abs((got.created_at - task.created_at).total_seconds()) < 1e-3
    assert got.lease_token == 0 and got.attempts == 0 and got.output is None


async def test_get_is_scoped_to_the_tenant(store: Store):
    task = make_task()
    await store.create(task)
    assert await store.get(task.id, "t1") is not None
    assert await store.get(task.id, "t2") is None
    assert await store.get("tsk_unknown") is None


async def test_a_reused_idempotency_key_raises_with_the_existing_task(store: Store):
    first = make_task(idempotency_key="same")
    await store.create(first)
    with pytest.raises(DuplicateTask) as raised:
        await store.create(make_task(idempotency_key="same"))
    assert raised.value.existing.id == first.id
    await store.create(make_task(tenant="t2", idempotency_key="same"))  # other tenant: fine
    await store.create(make_task())  # no key: never a clash
    await store.create(make_task())


async def test_history_is_newest_first_filtered_and_paged(store: Store):
    tasks = [make_task(model="nano-banana" if i % 2 else "gpt-image-2") for i in range(7)]
    for task in tasks:
        await store.create(task)
    await store.create(make_task(tenant="t2"))
    seen, cursor = [], None
    while True:
        page = await store.list_tasks("t1", limit=3, cursor=cursor)
        seen += [t.id for t in page.tasks]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [t.id for t in reversed(tasks)]
    only = await store.list_tasks("t1", model="gpt-image-2")
    assert [t.id for t in only.tasks] == [t.id for t in reversed(tasks) if t.model == "gpt-image-2"]
    await store.claim("w", 1, 30)
    running = await store.list_tasks("t1", status=TaskStatus.RUNNING)
    assert [t.id for t in running.tasks] == [tasks[0].id]
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError: the hub maps it to 422
        await store.list_tasks("t1", cursor="not a cursor!")


# -- claim, heartbeat, finish


async def test_claim_leases_due_tasks_oldest_first(store: Store):
    tasks = [make_task() for _ in range(3)]
    later = make_task(run_after=utcnow() + timedelta(hours=1))
    for task in [*tasks, later]:
        await store.create(task)
    claimed = await store.claim("w1", 2, 30)
    assert [t.id for t in claimed] == [tasks[0].id, tasks[1].id]
    for task in claimed:
        assert task.status == TaskStatus.RUNNING and task.lease_owner == "w1"
        assert task.lease_token == 1 and task.attempts == 1 and task.started_at is not None
        assert task.lease_expires_at is not None and task.lease_expires_at > utcnow()
    rest = await store.claim("w2", 10, 30)
    assert [t.id for t in rest] == [tasks[2].id], "not the claimed ones, not the future one"
    assert await store.claim("w3", 10, 30) == []


async def test_heartbeat_renews_only_the_owners_leases(store: Store):
    for _ in range(3):
        await store.create(make_task())
    mine = await store.claim("w1", 2, 5)
    theirs = await store.claim("w2", 1, 5)
    held = await store.heartbeat("w1", 60)
    assert held == {t.id for t in mine}
    renewed = await store.get(mine[0].id)
    assert renewed is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at > utcnow() + timedelta(seconds=30)
    other = await store.get(theirs[0].id)
    assert other is not None and other.lease_expires_at is not None
    assert other.lease_expires_at < utcnow() + timedelta(seconds=30)
    assert await store.heartbeat("nobody", 60) == set()


async def test_finish_writes_the_outcome_once_and_only_with_the_lease(store: Store):
    await store.create(make_task())
    (task,) = await store.claim("w1", 1, 30)
    stale = dataclasses.replace(task, lease_token=task.lease_token - 1)
    assert not await store.finish(succeeded(stale)), "a stale token writes nothing"
    assert await store.finish(succeeded(task))
    assert not await store.finish(succeeded(task)), "a second finish writes nothing"
    done = await store.get(task.id)
    assert done is not None and done.status == TaskStatus.SUCCEEDED and done.ready
    assert done.output is not None and done.output.images[0].file_id == "f_x.png"
    assert done.usage == Usage(0.039, 10, 1290) and done.provider == "scripted"
    assert done.warnings == ("one warning",) and done.lease_owner is None
    assert done.finished_at is not None


async def test_a_retry_goes_back_to_the_queue_until_its_time(store: Store):
    await store.create(make_task())
    (task,) = await store.claim("w1", 1, 30)
    error = TaskFailure("upstream_unavailable", "down", True)
    retry = task.replace(status=TaskStatus.QUEUED, error=error, run_after=utcnow())
    assert await store.finish(retry)
    again = await store.claim("w2", 1, 30)
    assert [t.id for t in again] == [task.id]
    assert again[0].attempts == 2 and again[0].lease_token == 2 and again[0].error == error
    assert again[0].started_at == task.started_at, "started_at is the first attempt's"
    later = again[0].replace(status=TaskStatus.QUEUED, run_after=utcnow() + timedelta(hours=1))
    assert await store.finish(later)
    assert await store.claim("w3", 1, 30) == []


# -- release, reap, cancel, purge


async def test_release_hands_the_owners_tasks_back(store: Store):
    for _ in range(3):
        await store.create(make_task())
    mine = await store.claim("w1", 2, 30)
    await store.claim("w2", 1, 30)
    assert await store.release("w1") == 2
    back = await store.claim("w3", 5, 30)
    assert {t.id for t in back} == {t.id for t in mine}
    assert all(t.lease_token == 2 for t in back)
    assert not await store.finish(succeeded(mine[0])), "the released lease is gone"


async def test_reap_requeues_expired_leases_or_fails_spent_tasks(store: Store):
    fresh = make_task(max_attempts=3)
    spent = make_task(max_attempts=1)
    alive = make_task()
    for task in (fresh, spent, alive):
        await store.create(task)
    expired = await store.claim("dead", 2, -1)
    await store.claim("alive", 1, 60)
    reaped = {t.id: t for t in await store.reap()}
    assert set(reaped) == {fresh.id, spent.id}
    assert reaped[fresh.id].status == TaskStatus.QUEUED
    failed = await store.get(spent.id)
    assert failed is not None and failed.status == TaskStatus.FAILED and failed.ready
    assert failed.error is not None and failed.error.code == "internal_error"
    assert failed.finished_at is not None
    assert await store.reap() == []
    for task in expired:
        assert not await store.finish(succeeded(task)), "a reaped lease writes nothing"
    (again,) = await store.claim("w2", 5, 30)
    assert again.id == fresh.id and again.attempts == 2


async def test_cancel_stops_queued_and_running_tasks_only(store: Store):
    await store.create(make_task())
    (running,) = await store.claim("w1", 1, 30)
    await store.create(make_task())
    (done,) = await store.claim("w1", 1, 30)
    assert await store.finish(succeeded(done))
    queued = make_task()
    await store.create(queued)

    canceled = await store.cancel(running.id, "t1")
    assert canceled is not None and canceled.status == TaskStatus.CANCELED and canceled.ready
    assert canceled.error is not None and canceled.error.code == "canceled"
    assert canceled.lease_owner is None and canceled.finished_at is not None
    assert not await store.finish(succeeded(running)), "the worker's result is dropped"
    assert await store.heartbeat("w1", 30) == set(), "the worker no longer holds it"
    canceled_queued = await store.cancel(queued.id, "t1")
    assert canceled_queued is not None and canceled_queued.status == TaskStatus.CANCELED
    finished = await store.cancel(done.id, "t1")
    assert finished is not None and finished.status == TaskStatus.SUCCEEDED
    assert await store.cancel(done.id, "t2") is None
    assert await store.cancel("tsk_unknown", "t1") is None
    assert await store.claim("w2", 5, 30) == []


async def test_purge_output_drops_the_images_and_marks_the_output(store: Store):
    await store.create(make_task(input={"prompt": "p", "sync_mode": True}))
    (task,) = await store.claim("w1", 1, 30)
    assert await store.finish(succeeded(task))
    await store.purge_output(task.id)
    purged = await store.get(task.id)
    assert purged is not None and purged.output is not None
    assert purged.output.images == () and purged.output.purged
    assert purged.output.description == "done"
    await store.purge_output("tsk_unknown")  # nothing to do, no error


# -- keys and plumbing


async def test_keys_are_found_by_hash_and_counted_unless_revoked(store: Store):
    key = ApiKey(id="key_1", tenant_id="t1", key_hash="h1", prefix="ih_abc", admin=True)
    revoked = ApiKey(
        id="key_2", tenant_id="t1", key_hash="h2", prefix="ih_def", revoked_at=utcnow()
    )
    assert await store.count_keys() == 0
    await store.add_key(key)
    await store.add_key(revoked)
    got = await store.get_key("h1")
    assert got is not None and got.admin and got.tenant_id == "t1" and got.prefix == "ih_abc"
    gone = await store.get_key("h2")
    assert gone is not None and gone.revoked_at is not None
    assert await store.get_key("h3") is None
    assert await store.count_keys() == 1
    await store.ping()


async def test_tasks_survive_closing_and_reopening(postgres_url: str):
    """The SQL stores are durable: a new store instance on the same database sees everything."""
    url = postgres_url
    first = PostgresStore(url, pool_size=2)
    await first.open()
    task = make_task()
    await first.create(task)
    await first.close()
    second = PostgresStore(url, pool_size=2)
    await second.open()
    try:
        got = await second.get(task.id)
        assert got is not None and got.input == task.input
    finally:
        await second.close()


# -- PostgreSQL: concurrent claimers


async def _drain(store: Store, owner: str) -> list[str]:
    taken: list[str] = []
    idle = 0
    while idle < 3:
        claimed = await store.claim(owner, 7, 30)
        taken += [t.id for t in claimed]
        idle = 0 if claimed else idle + 1
        await asyncio.sleep(0)
    return taken


async def test_concurrent_claimers_never_share_a_task(postgres_url: str):
    stores = [PostgresStore(postgres_url, pool_size=3) for _ in range(4)]
    for store in stores:
        await store.open()
    try:
        tasks = [make_task() for _ in range(400)]
        for task in tasks:
            await stores[0].create(task)
        results = await asyncio.gather(
            *(_drain(store, f"w{n}-{k}") for n, store in enumerate(stores) for k in range(3))
        )
        every = [task_id for taken in results for task_id in taken]
        assert len(every) == len(set(every)), "a task was claimed twice"
        assert set(every) == {t.id for t in tasks}, "a task was never claimed"
        assert sum(1 for taken in results if taken) > 1, "the work was spread"
    finally:
        for store in stores:
            await store.close()


async def test_a_claim_skips_rows_locked_by_another_transaction(postgres_url: str):
    store = PostgresStore(postgres_url, pool_size=2)
    await store.open()
    try:
        locked, free = make_task(), make_task()
        await store.create(locked)
        await store.create(free)
        async with await psycopg.AsyncConnection.connect(postgres_url) as other:
            await other.execute("SELECT id FROM tasks WHERE id = %s FOR UPDATE", (locked.id,))
            claimed = await asyncio.wait_for(store.claim("w1", 2, 30), 10)
            assert [t.id for t in claimed] == [free.id]
            await other.rollback()
        assert [t.id for t in await store.claim("w1", 2, 30)] == [locked.id]
    finally:
        await store.close()


async def test_purged_output_is_still_valid_json_on_postgres(postgres_url: str):
    store = PostgresStore(postgres_url, pool_size=1)
    await store.open()
    try:
        await store.create(make_task())
        (task,) = await store.claim("w1", 1, 30)
        await store.finish(succeeded(task))
        await store.purge_output(task.id)
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            cur = await conn.execute("SELECT output FROM tasks WHERE id = %s", (task.id,))
            row = await cur.fetchone()
        assert row is not None and json.loads(row[0])["images"] == []
    finally:
        await store.close()


async def _drop_connections(url: str) -> int:
    """End every other session on the test's database, as a database restart would."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_statements_on_connections_the_database_dropped_run_again(postgres_url: str):
    store = PostgresStore(postgres_url, pool_size=3)
    await store.open()
    try:
        # fill the pool: every one of its connections is idle in it when they are dropped
        await asyncio.gather(*(store.get("nothing") for _ in range(6)))
        assert await _drop_connections(postgres_url) >= 1
        task = make_task()
        await store.create(task)  # one statement: it finds the broken connections
        assert await _drop_connections(postgres_url) >= 1
        got = await store.get(task.id)  # a single statement
        assert got is not None and got.id == task.id
        assert await _drop_connections(postgres_url) >= 1
        assert [t.id for t in await store.claim("w1", 1, 30)] == [task.id]
    finally:
        await store.close()
