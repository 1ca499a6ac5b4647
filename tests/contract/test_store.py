"""The TaskStore contract (store/base.py docstrings), one suite run against every backend."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from imagehub.store import ApiKey, DuplicateTask, MemoryStore, SQLiteStore, TaskStore
from imagehub.store.rows import LOST_WORKER_ERROR
from imagehub.tasks import OutputImage, Task, TaskOutput, TaskStatus, Usage, new_id, utcnow

#: One factory per backend, given a fresh temporary directory. A server backend (postgres) is
#: added here with its own factory; the fixture and every test stay as they are.
BACKENDS: dict[str, Callable[[Path], TaskStore]] = {
    "memory": lambda tmp_path: MemoryStore(),
    "sqlite": lambda tmp_path: SQLiteStore(tmp_path / "hub.db"),
}

#: short leases for the expiry tests, with a sleep that safely outlasts them
SHORT_LEASE = 0.05
PAST_SHORT_LEASE = 0.1

#: an hour ago: tasks made by `make_task` are due, and their order is set by `offset`
BASE = utcnow() - timedelta(hours=1)


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    backend = BACKENDS[request.param](tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def make_task(*, tenant: str = "tenant-a", offset: float = 0.0, **changes: Any) -> Task:
    """A queued, due task created `offset` seconds after BASE (all share run_after = BASE)."""
    fields: dict[str, Any] = {
        "id": new_id("t_"),
        "tenant_id": tenant,
        "model": "nano-banana",
        "input": {"prompt": "a red fox in the snow", "num_images": 1},
        "created_at": BASE + timedelta(seconds=offset),
        "run_after": BASE,
    }
    fields.update(changes)
    return Task(**fields)


async def create_all(store: TaskStore, tasks: list[Task]) -> list[Task]:
    for task in tasks:
        await store.create(task)
    return tasks


def ids(tasks: list[Task]) -> list[str]:
    return [t.id for t in tasks]


def output() -> TaskOutput:
    image = OutputImage(
        content_type="image/png",
        file_name="image-0.png",
        file_size=1234,
        width=1024,
        height=1024,
        file_id="f_" + "a" * 22 + ".png",
    )
    return TaskOutput(images=(image,), description="a fox")


async def stored(store: TaskStore, task_id: str) -> Task:
    task = await store.get(task_id)
    assert task is not None
    return task


# ---------------------------------------------------------------- create, get, ping


async def test_ping_succeeds_on_an_open_store(store):
    await store.ping()


async def test_create_then_get_returns_the_same_task(store):
    task = make_task(metadata={"job": 7}, webhook_url="https://example.com/hook")
    await store.create(task)
    assert await store.get(task.id) == task


async def test_get_of_an_unknown_id_returns_none(store):
    assert await store.get("t_missing") is None


async def test_get_is_scoped_to_the_tenant_when_one_is_given(store):
    task = make_task(tenant="tenant-a")
    await store.create(task)
    assert await store.get(task.id, "tenant-a") == task
    assert await store.get(task.id, "tenant-b") is None


async def test_create_with_a_reused_idempotency_key_raises_duplicate_with_the_existing(store):
    first = make_task(idempotency_key="key-1", request_hash="h1")
    await store.create(first)
    with pytest.raises(DuplicateTask) as caught:
        await store.create(make_task(idempotency_key="key-1", request_hash="h2"))
    assert caught.value.existing == first
    page = await store.list_tasks("tenant-a")
    assert ids(page.tasks) == [first.id]


async def test_the_same_idempotency_key_in_another_tenant_is_a_new_task(store):
    a = make_task(tenant="tenant-a", idempotency_key="key-1")
    b = make_task(tenant="tenant-b", idempotency_key="key-1")
    await create_all(store, [a, b])
    assert await store.get(a.id) == a
    assert await store.get(b.id) == b


async def test_tasks_without_idempotency_key_never_clash(store):
    tasks = await create_all(store, [make_task(offset=i) for i in range(3)])
    page = await store.list_tasks("tenant-a")
    assert sorted(ids(page.tasks)) == sorted(ids(tasks))


# ---------------------------------------------------------------- list_tasks


async def test_list_returns_only_the_tenants_tasks_newest_first(store):
    mine = await create_all(store, [make_task(offset=i) for i in (3, 1, 2)])
    await store.create(make_task(tenant="tenant-b", offset=5))
    page = await store.list_tasks("tenant-a")
    assert ids(page.tasks) == ids(sorted(mine, key=lambda t: t.created_at, reverse=True))
    assert page.next_cursor is None


async def test_list_of_a_tenant_without_tasks_is_empty(store):
    await store.create(make_task(tenant="tenant-a"))
    page = await store.list_tasks("tenant-b")
    assert page.tasks == []
    assert page.next_cursor is None


async def test_list_filters_by_model(store):
    banana = make_task(offset=1, model="nano-banana")
    gpt = make_task(offset=2, model="gpt-image-2")
    await create_all(store, [banana, gpt])
    assert ids((await store.list_tasks("tenant-a", model="gpt-image-2")).tasks) == [gpt.id]
    assert ids((await store.list_tasks("tenant-a", model="nano-banana")).tasks) == [banana.id]
    assert (await store.list_tasks("tenant-a", model="nano-banana-pro")).tasks == []


async def test_list_filters_by_status(store):
    running, canceled, queued = await create_all(store, [make_task(offset=i) for i in range(3)])
    assert ids(await store.claim("w1", 1, 60)) == [running.id]
    await store.cancel(canceled.id, "tenant-a")
    by_status = {
        status: ids((await store.list_tasks("tenant-a", status=status)).tasks)
        for status in TaskStatus
    }
    assert by_status == {
        TaskStatus.QUEUED: [queued.id],
        TaskStatus.RUNNING: [running.id],
        TaskStatus.CANCELED: [canceled.id],
        TaskStatus.SUCCEEDED: [],
        TaskStatus.FAILED: [],
    }


async def _all_pages(store: TaskStore, limit: int, **filters: Any) -> list[list[Task]]:
    pages, cursor = [], None
    while True:
        page = await store.list_tasks("tenant-a", limit=limit, cursor=cursor, **filters)
        pages.append(page.tasks)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


async def test_cursor_pagination_walks_every_task_once_in_order(store):
    tasks = await create_all(store, [make_task(offset=i * 0.25) for i in range(7)])
    pages = await _all_pages(store, limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    newest_first = sorted(tasks, key=lambda t: t.created_at, reverse=True)
    assert [t.id for page in pages for t in page] == ids(newest_first)


async def test_a_page_that_ends_the_list_has_no_cursor(store):
    await create_all(store, [make_task(offset=i) for i in range(4)])
    pages = await _all_pages(store, limit=2)
    assert [len(p) for p in pages] == [2, 2]


async def test_pagination_is_stable_when_tasks_share_created_at(store):
    same = [make_task(offset=10) for _ in range(5)]
    others = [make_task(offset=5), make_task(offset=20)]
    await create_all(store, [*same, *others])
    pages = await _all_pages(store, limit=2)
    seen = [t.id for page in pages for t in page]
    assert len(seen) == len(set(seen)) == 7
    # newest first; ties keep one fixed order (id descending) across page boundaries
    assert seen[0] == others[1].id
    assert seen[1:6] == sorted(ids(same), reverse=True)
    assert seen[6] == others[0].id


async def test_pagination_combines_with_a_filter(store):
    gpt = [make_task(offset=i, model="gpt-image-2") for i in range(5)]
    await create_all(store, [*gpt, *(make_task(offset=i + 0.5) for i in range(5))])
    pages = await _all_pages(store, limit=2, model="gpt-image-2")
    assert [t.id for page in pages for t in page] == ids(gpt[::-1])


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "%%%", _b64("no separator"), _b64("yesterday|t_abc"), "gA"],
)
async def test_a_malformed_cursor_raises_value_error(store, cursor):
    await store.create(make_task())
    with pytest.raises(ValueError):  # noqa: PT011 - the contract names only the type
        await store.list_tasks("tenant-a", cursor=cursor)


# ---------------------------------------------------------------- claim


async def test_claim_takes_only_due_queued_tasks(store):
    due = make_task(offset=1)
    later = make_task(offset=0, run_after=utcnow() + timedelta(minutes=10))
    canceled = make_task(offset=2)
    await create_all(store, [due, later, canceled])
    await store.cancel(canceled.id, "tenant-a")
    assert ids(await store.claim("w1", 10, 60)) == [due.id]
    assert (await stored(store, later.id)).status == TaskStatus.QUEUED
    assert (await stored(store, canceled.id)).status == TaskStatus.CANCELED


async def test_claim_of_an_empty_queue_returns_nothing(store):
    assert await store.claim("w1", 10, 60) == []


async def test_claim_respects_the_limit(store):
    await create_all(store, [make_task(offset=i) for i in range(5)])
    sizes = [len(await store.claim("w1", 2, 60)) for _ in range(4)]
    assert sizes == [2, 2, 1, 0]


async def test_claim_is_fifo_by_created_at(store):
    tasks = [make_task(offset=i) for i in range(4)]
    # inserted out of order, all due since the same instant
    await create_all(store, [tasks[2], tasks[0], tasks[3], tasks[1]])
    assert ids(await store.claim("w1", 2, 60)) == ids(tasks[:2])
    assert ids(await store.claim("w1", 2, 60)) == ids(tasks[2:])


async def test_claim_leases_the_task_to_the_owner(store):
    task = await create_all(store, [make_task()])
    before = utcnow()
    [claimed] = await store.claim("worker-1", 1, 30)
    after = utcnow()
    tolerance = timedelta(milliseconds=1)
    assert claimed.id == task[0].id
    assert claimed.status == TaskStatus.RUNNING
    assert claimed.lease_owner == "worker-1"
    assert claimed.attempts == 1
    assert claimed.lease_token == 1
    assert claimed.started_at is not None
    assert before - tolerance <= claimed.started_at <= after + tolerance
    assert claimed.lease_expires_at is not None
    lease = timedelta(seconds=30)
    assert before + lease - tolerance <= claimed.lease_expires_at <= after + lease + tolerance
    assert await store.get(claimed.id) == claimed


async def test_a_claimed_task_is_not_claimed_again(store):
    await create_all(store, [make_task()])
    assert len(await store.claim("w1", 10, 60)) == 1
    assert await store.claim("w1", 10, 60) == []
    assert await store.claim("w2", 10, 60) == []


async def test_each_claim_increments_attempts_and_lease_token_and_keeps_started_at(store):
    await create_all(store, [make_task()])
    [first] = await store.claim("w1", 1, 60)
    assert await store.release("w1") == 1
    [second] = await store.claim("w2", 1, 60)
    assert (second.attempts, second.lease_token) == (2, 2)
    assert second.lease_owner == "w2"
    assert second.started_at == first.started_at


# ---------------------------------------------------------------- heartbeat


async def test_heartbeat_extends_only_the_owners_leases_and_returns_their_ids(store):
    a1, a2, b1 = await create_all(store, [make_task(offset=i) for i in range(3)])
    claimed_a = await store.claim("A", 2, 60)
    assert ids(claimed_a) == [a1.id, a2.id]
    await store.claim("B", 1, 60)
    b_before = await stored(store, b1.id)
    start = utcnow()
    assert await store.heartbeat("A", 600) == {a1.id, a2.id}
    for old in claimed_a:
        renewed = await stored(store, old.id)
        assert renewed.lease_expires_at is not None
        assert renewed.lease_expires_at >= start + timedelta(seconds=599)
        assert renewed == dataclasses.replace(old, lease_expires_at=renewed.lease_expires_at)
    assert await store.get(b1.id) == b_before


async def test_heartbeat_keeps_a_short_lease_from_expiring(store):
    task = (await create_all(store, [make_task()]))[0]
    await store.claim("w1", 1, SHORT_LEASE)
    assert await store.heartbeat("w1", 60) == {task.id}
    await asyncio.sleep(PAST_SHORT_LEASE)
    assert await store.reap() == []
    assert (await stored(store, task.id)).status == TaskStatus.RUNNING


async def test_heartbeat_does_not_return_canceled_or_finished_tasks(store):
    kept, canceled, done = await create_all(store, [make_task(offset=i) for i in range(3)])
    claimed = {t.id: t for t in await store.claim("w1", 3, 60)}
    await store.cancel(canceled.id, "tenant-a")
    finished = claimed[done.id].replace(status=TaskStatus.SUCCEEDED, output=output())
    assert await store.finish(finished)
    assert await store.heartbeat("w1", 60) == {kept.id}


async def test_heartbeat_of_an_owner_without_leases_is_empty(store):
    await create_all(store, [make_task()])
    await store.claim("w1", 1, 60)
    assert await store.heartbeat("w2", 60) == set()


# ---------------------------------------------------------------- finish


async def test_finish_writes_a_success_and_clears_the_lease(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    outcome = claimed.replace(
        status=TaskStatus.SUCCEEDED,
        output=output(),
        provider="demo",
        usage=Usage(cost_usd=0.039, input_tokens=12, output_tokens=1290),
        warnings=("enable_web_search is disabled",),
        finished_at=utcnow(),
    )
    assert await store.finish(outcome) is True
    expected = dataclasses.replace(outcome, lease_owner=None, lease_expires_at=None)
    assert await store.get(claimed.id) == expected


async def test_finish_requeues_a_retry_until_its_run_after(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    retry = claimed.replace(
        status=TaskStatus.QUEUED,
        error={"code": "upstream_timeout", "message": "slow", "retryable": True},
        run_after=utcnow() + timedelta(minutes=5),
    )
    assert await store.finish(retry) is True
    now = await stored(store, claimed.id)
    assert now == dataclasses.replace(retry, lease_owner=None, lease_expires_at=None)
    assert now.attempts == 1
    assert await store.claim("w2", 10, 60) == []


async def test_finish_writes_a_failure_with_its_error(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    failed = claimed.replace(
        status=TaskStatus.FAILED,
        error={"code": "content_policy_violation", "message": "blocked", "retryable": False},
        finished_at=utcnow(),
    )
    assert await store.finish(failed) is True
    assert await store.get(claimed.id) == dataclasses.replace(
        failed, lease_owner=None, lease_expires_at=None
    )


async def test_finish_with_a_stale_token_returns_false_and_changes_nothing(store):
    await create_all(store, [make_task()])
    [old] = await store.claim("w1", 1, SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    assert len(await store.reap()) == 1
    [taken_over] = await store.claim("w2", 1, 60)
    assert taken_over.lease_token == old.lease_token + 1
    late = old.replace(status=TaskStatus.SUCCEEDED, output=output(), finished_at=utcnow())
    assert await store.finish(late) is False
    assert await store.get(old.id) == taken_over


async def test_finish_on_a_queued_task_returns_false_and_changes_nothing(store):
    queued = (await create_all(store, [make_task()]))[0]
    # never claimed: even its current token (0) does not allow a write
    forged = dataclasses.replace(queued, status=TaskStatus.SUCCEEDED, output=output())
    assert await store.finish(forged) is False
    assert await store.get(queued.id) == queued


async def test_finish_after_a_release_returns_false_although_the_token_matches(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    assert await store.release("w1") == 1
    released = await stored(store, claimed.id)
    assert released.lease_token == claimed.lease_token
    done = claimed.replace(status=TaskStatus.SUCCEEDED, output=output(), finished_at=utcnow())
    assert await store.finish(done) is False
    assert await store.get(claimed.id) == released


async def test_finish_twice_writes_only_once(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    done = claimed.replace(status=TaskStatus.SUCCEEDED, output=output(), finished_at=utcnow())
    assert await store.finish(done) is True
    after_first = await store.get(claimed.id)
    again = claimed.replace(status=TaskStatus.FAILED, error={"code": "internal_error"})
    assert await store.finish(again) is False
    assert await store.get(claimed.id) == after_first


# ---------------------------------------------------------------- release


async def test_release_hands_back_only_the_owners_running_tasks(store):
    a1, a2, b1 = await create_all(store, [make_task(offset=i) for i in range(3)])
    claimed_a = await store.claim("A", 2, 60)
    await store.claim("B", 1, 60)
    b_before = await stored(store, b1.id)
    assert await store.release("A") == 2
    for old in claimed_a:
        now = await stored(store, old.id)
        assert now.status == TaskStatus.QUEUED
        assert (now.lease_owner, now.lease_expires_at) == (None, None)
        assert (now.attempts, now.lease_token) == (old.attempts, old.lease_token)
    assert await store.get(b1.id) == b_before
    assert sorted(ids(await store.claim("C", 10, 60))) == sorted([a1.id, a2.id])


async def test_release_of_an_owner_without_tasks_returns_zero(store):
    await create_all(store, [make_task()])
    await store.claim("A", 1, 60)
    assert await store.release("B") == 0
    assert await store.release("A") == 1
    assert await store.release("A") == 0


# ---------------------------------------------------------------- reap


async def test_reap_requeues_an_expired_lease_and_keeps_its_attempts(store):
    task = (await create_all(store, [make_task()]))[0]
    await store.claim("w1", 1, SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    [reaped] = await store.reap()
    assert reaped.id == task.id
    assert reaped.status == TaskStatus.QUEUED
    assert reaped.attempts == 1
    assert (reaped.lease_owner, reaped.lease_expires_at) == (None, None)
    assert reaped.error is None
    assert await store.get(task.id) == reaped
    [again] = await store.claim("w2", 1, 60)
    assert (again.id, again.attempts) == (task.id, 2)


async def test_reap_fails_an_expired_task_out_of_attempts_with_the_lost_worker_error(store):
    task = (await create_all(store, [make_task(max_attempts=2)]))[0]
    await store.claim("w1", 1, SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    [first] = await store.reap()
    assert first.status == TaskStatus.QUEUED
    await store.claim("w2", 1, SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    [second] = await store.reap()
    assert second.status == TaskStatus.FAILED
    assert second.attempts == 2
    assert second.error == json.loads(LOST_WORKER_ERROR)
    assert second.error["code"] == "internal_error"
    assert second.finished_at is not None
    assert (second.lease_owner, second.lease_expires_at) == (None, None)
    assert await store.get(task.id) == second
    assert await store.claim("w3", 1, 60) == []


async def test_reap_leaves_live_leases_alone(store):
    live, expiring, queued = await create_all(store, [make_task(offset=i) for i in range(3)])
    await store.claim("w1", 1, 600)
    await store.claim("w2", 1, SHORT_LEASE)
    live_before = await stored(store, live.id)
    await asyncio.sleep(PAST_SHORT_LEASE)
    assert ids(await store.reap()) == [expiring.id]
    assert await store.get(live.id) == live_before
    assert await store.get(queued.id) == queued
    assert await store.reap() == []


# ---------------------------------------------------------------- cancel


async def test_cancel_of_a_queued_task_marks_it_canceled(store):
    task = (await create_all(store, [make_task()]))[0]
    canceled = await store.cancel(task.id, "tenant-a")
    assert canceled is not None
    assert canceled.status == TaskStatus.CANCELED
    assert canceled.error is not None
    assert canceled.error["code"] == "canceled"
    assert canceled.finished_at is not None
    assert await store.get(task.id) == canceled
    assert await store.claim("w1", 10, 60) == []


async def test_cancel_of_a_running_task_drops_its_lease_and_fences_the_worker(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    canceled = await store.cancel(claimed.id, "tenant-a")
    assert canceled is not None
    assert canceled.status == TaskStatus.CANCELED
    assert canceled.error is not None
    assert canceled.error["code"] == "canceled"
    assert (canceled.lease_owner, canceled.lease_expires_at) == (None, None)
    done = claimed.replace(status=TaskStatus.SUCCEEDED, output=output())
    assert await store.finish(done) is False
    assert await store.get(claimed.id) == canceled


async def test_cancel_of_a_finished_task_leaves_it_as_it_is(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    done = claimed.replace(status=TaskStatus.SUCCEEDED, output=output(), finished_at=utcnow())
    assert await store.finish(done)
    finished = await stored(store, claimed.id)
    assert await store.cancel(claimed.id, "tenant-a") == finished
    assert await store.get(claimed.id) == finished


async def test_cancel_with_another_tenant_returns_none_and_changes_nothing(store):
    task = (await create_all(store, [make_task(tenant="tenant-a")]))[0]
    assert await store.cancel(task.id, "tenant-b") is None
    assert await store.get(task.id) == task


async def test_cancel_of_an_unknown_task_returns_none(store):
    assert await store.cancel("t_missing", "tenant-a") is None


# ---------------------------------------------------------------- purge_output


async def test_purge_output_empties_the_images_and_marks_it_purged(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    inline = dataclasses.replace(
        output().images[0], file_id=None, data_uri="data:image/png;base64,iVBORw0KGgo="
    )
    done = claimed.replace(
        status=TaskStatus.SUCCEEDED,
        output=TaskOutput(images=(inline,), description="a fox"),
        finished_at=utcnow(),
    )
    assert await store.finish(done)
    before = await stored(store, claimed.id)
    await store.purge_output(claimed.id)
    after = await stored(store, claimed.id)
    assert after.output == TaskOutput(images=(), description="a fox", purged=True)
    assert dataclasses.replace(after, output=before.output) == before


async def test_purge_output_of_a_task_without_output_changes_nothing(store):
    task = (await create_all(store, [make_task()]))[0]
    await store.purge_output(task.id)
    await store.purge_output("t_missing")
    assert await store.get(task.id) == task


# ---------------------------------------------------------------- keys


def make_key(key_hash: str, **changes: Any) -> ApiKey:
    fields: dict[str, Any] = {
        "id": "k_" + key_hash,
        "tenant_id": "tenant-a",
        "key_hash": key_hash,
        "prefix": "ih_" + key_hash[:4],
        "name": "ci",
        "created_at": BASE + timedelta(microseconds=123_457),
    }
    fields.update(changes)
    return ApiKey(**fields)


async def test_add_key_then_get_key_returns_the_same_key(store):
    key = make_key("hash-admin", admin=True)
    await store.add_key(key)
    assert await store.get_key("hash-admin") == key


async def test_get_key_of_an_unknown_hash_returns_none(store):
    await store.add_key(make_key("hash-1"))
    assert await store.get_key("hash-2") is None


async def test_count_keys_counts_only_keys_not_revoked(store):
    assert await store.count_keys() == 0
    revoked = make_key("hash-3", revoked_at=BASE + timedelta(minutes=1))
    for key in (make_key("hash-1"), make_key("hash-2", tenant_id="tenant-b"), revoked):
        await store.add_key(key)
    assert await store.count_keys() == 2
    assert await store.get_key("hash-3") == revoked
