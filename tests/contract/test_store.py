"""The Store contract (store/base.py docstrings), one suite run against every backend."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from imagehub.store import MemoryStore, SQLiteStore, Store
from imagehub.tasks import (
    LOST_WORKER_ERROR,
    DuplicateTask,
    Grounding,
    OutputImage,
    PartialImage,
    QueueStats,
    Source,
    Task,
    TaskFailure,
    TaskOutput,
    TaskStatus,
    Usage,
    new_id,
    utcnow,
)
from imagehub.tenancy.types import ApiKey, OverLimit, Submission
from imagehub.webhooks.types import DeliveryAttempt, WebhookSecret, delivery_id

#: One factory per backend, given the test's request (for fixtures) and a fresh temporary
#: directory; the server backend (postgres) gets a fresh database of its own.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "memory": lambda request, tmp_path: MemoryStore(),
    "sqlite": lambda request, tmp_path: SQLiteStore(tmp_path / "hub.db"),
    "postgres": lambda request, tmp_path: _postgres(request.getfixturevalue("shared_postgres")),
}


def _postgres(url: str) -> Store:
    from imagehub.store.postgres import PostgresStore

    return PostgresStore(url, pool_size=4)


#: short leases for the expiry tests, with a sleep that safely outlasts them
SHORT_LEASE = 0.05
PAST_SHORT_LEASE = 0.1

#: an hour ago: tasks made by `make_task` are due, and their order is set by `offset`
BASE = utcnow() - timedelta(hours=1)


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


async def create_all(store: Store, tasks: list[Task]) -> list[Task]:
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


async def stored(store: Store, task_id: str) -> Task:
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


async def _all_pages(store: Store, limit: int, **filters: Any) -> list[list[Task]]:
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


async def test_a_tenants_claims_are_fifo_by_submit(store):
    tasks = [make_task(offset=i) for i in range(4)]
    submitted = [tasks[2], tasks[0], tasks[3], tasks[1]]
    await create_all(store, submitted)
    assert ids(await store.claim("w1", 2, 60)) == ids(submitted[:2])
    assert ids(await store.claim("w1", 2, 60)) == ids(submitted[2:])


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


# ---------------------------------------------------------------- partial images


def partials_of(count: int) -> tuple[PartialImage, ...]:
    return tuple(
        PartialImage(i, f"f_{'p' * 21}{i}.png", "image/png", 1024, 1024) for i in range(count)
    )


async def test_a_task_keeps_the_partial_images_it_asked_for_and_a_claim_starts_them_empty(store):
    [task] = await create_all(store, [make_task(partial_images=2)])
    assert (task.partial_images, task.partials) == (2, ())
    [claimed] = await store.claim("w1", 1, 60)
    assert await store.set_partials(claimed.replace(partials=partials_of(1))) is True
    assert await store.set_partials(claimed.replace(partials=partials_of(2))) is True
    got = await store.get(task.id)
    assert got is not None and got.partials == partials_of(2) and got.partial_images == 2
    # a success keeps them; nothing else of the task changed
    done = claimed.replace(status=TaskStatus.SUCCEEDED, output=output(), partials=partials_of(2))
    assert await store.finish(done) is True
    finished = await store.get(task.id)
    assert finished is not None and finished.partials == partials_of(2)


async def test_set_partials_is_fenced_by_the_lease(store):
    await create_all(store, [make_task(partial_images=1)])
    [first] = await store.claim("w1", 1, 60)
    await store.set_partials(first.replace(partials=partials_of(1)))
    assert await store.release("w1") == 1
    queued = await store.get(first.id)
    assert queued is not None and queued.partials == ()  # a requeue drops the attempt's
    assert await store.set_partials(first.replace(partials=partials_of(1))) is False
    [second] = await store.claim("w2", 1, 60)
    assert second.partials == ()
    assert await store.set_partials(first.replace(partials=partials_of(1))) is False  # stale token
    assert await store.set_partials(second.replace(partials=partials_of(1))) is True


async def test_a_retry_reap_or_cancel_drops_the_attempts_partial_images(store):
    tasks = await create_all(store, [make_task(offset=i, partial_images=1) for i in range(3)])
    claimed = await store.claim("w1", 3, SHORT_LEASE)
    for task in claimed:
        assert await store.set_partials(task.replace(partials=partials_of(1)))
    retry, reaped, canceled = claimed
    assert await store.finish(retry.replace(status=TaskStatus.QUEUED, run_after=utcnow()))
    assert await store.cancel(canceled.id, "tenant-a") is not None
    await asyncio.sleep(PAST_SHORT_LEASE)
    assert [t.id for t in await store.reap()] == [reaped.id]
    for task in tasks:
        got = await store.get(task.id)
        assert got is not None and got.partials == (), got.status


# ---------------------------------------------------------------- the fair queue


async def claim_one_by_one(store: Store, count: int) -> list[Task]:
    claimed = []
    for _ in range(count):
        claimed += await store.claim("w1", 1, 60)
    return claimed


def tenants(tasks: list[Task]) -> str:
    return "".join(t.tenant_id[-1] for t in tasks)


async def test_claims_interleave_tenants_each_oldest_in_turn(store):
    a = await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(6)])
    b = await create_all(store, [make_task(tenant="tenant-b", offset=10 + i) for i in range(2)])
    claimed = await claim_one_by_one(store, 8)
    assert tenants(claimed) == "ababaaaa"
    assert ids([t for t in claimed if t.tenant_id == "tenant-a"]) == ids(a)
    assert ids([t for t in claimed if t.tenant_id == "tenant-b"]) == ids(b)


async def test_a_batch_claim_takes_the_same_fair_order(store):
    await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(4)])
    await create_all(store, [make_task(tenant="tenant-b", offset=10 + i) for i in range(4)])
    assert tenants(await store.claim("w1", 4, 60)) == "abab"


async def test_a_tenant_idle_until_now_starts_level_with_the_queue_not_ahead(store):
    await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(10)])
    assert tenants(await claim_one_by_one(store, 5)) == "aaaaa"
    # b's first place is after the last claimed one: it alternates with a, no catching up
    await create_all(store, [make_task(tenant="tenant-b", offset=20 + i) for i in range(4)])
    assert tenants(await claim_one_by_one(store, 6)) == "ababab"


async def test_a_tenant_weighted_two_gets_two_claims_for_one(store):
    assert await store.priority("tenant-b") == 1.0
    await store.set_priority("tenant-b", 2.0)
    assert await store.priority("tenant-b") == 2.0
    assert await store.priority("tenant-a") == 1.0
    await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(6)])
    await create_all(store, [make_task(tenant="tenant-b", offset=10 + i) for i in range(8)])
    # places: b 0.5, 1, 1.5, 2, ...; a 1, 2, 3, ...; a tie goes to the older task
    assert tenants(await claim_one_by_one(store, 9)) == "babbabbab"


async def test_a_priority_change_keeps_the_tenants_last_place(store):
    await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(3)])
    await store.set_priority("tenant-a", 4.0)
    await store.set_priority("tenant-a", 0.5)
    assert await store.priority("tenant-a") == 0.5
    await create_all(store, [make_task(tenant="tenant-b", offset=10)])
    # a's three places were taken at weight 1: b's first place (1) ties with a's first
    assert tenants(await claim_one_by_one(store, 4)) == "abaa"


async def test_a_retry_keeps_its_place_ahead_of_later_submits(store):
    await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(3)])
    [first] = await store.claim("w1", 1, 60)
    retry = first.replace(
        status=TaskStatus.QUEUED, error=TaskFailure("upstream_timeout", "slow", True)
    )
    assert await store.finish(retry) is True
    await create_all(store, [make_task(tenant="tenant-b", offset=10)])
    [again] = await store.claim("w2", 1, 60)
    assert again.id == first.id
    assert (again.attempts, again.lease_token, again.lease_owner) == (2, 2, "w2")


async def test_a_released_task_keeps_its_place(store):
    a = await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(2)])
    await store.claim("w1", 1, 60)
    await store.release("w1")
    assert await store.queue_position(a[0].id) == 0
    assert await store.queue_position(a[1].id) == 1


async def test_queue_position_counts_the_tasks_a_claim_would_take_first(store):
    a = await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(5)])
    [b] = await create_all(store, [make_task(tenant="tenant-b", offset=10)])
    assert [await store.queue_position(t.id) for t in a] == [0, 2, 3, 4, 5]
    assert await store.queue_position(b.id) == 1
    [first] = await store.claim("w1", 1, 60)
    assert await store.queue_position(first.id) is None  # running: not queued
    assert await store.queue_position(b.id) == 0
    [second] = await store.claim("w1", 1, 60)
    assert second.id == b.id


async def test_queue_position_of_unknown_canceled_and_finished_tasks_is_none(store):
    a = await create_all(store, [make_task(offset=i) for i in range(3)])
    assert await store.queue_position("t_unknown") is None
    await store.cancel(a[1].id, "tenant-a")
    assert await store.queue_position(a[1].id) is None
    assert await store.queue_position(a[2].id) == 1
    [claimed] = await store.claim("w1", 1, 60)
    done = claimed.replace(status=TaskStatus.SUCCEEDED, output=output(), finished_at=utcnow())
    assert await store.finish(done) is True
    assert await store.queue_position(claimed.id) is None
    assert await store.queue_position(a[2].id) == 0


async def test_queue_place_counts_up_to_its_cap_and_places_come_in_claim_order(store):
    a = await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(4)])
    [b] = await create_all(store, [make_task(tenant="tenant-b", offset=10)])
    place = await store.queue_place(a[3].id)
    assert place is not None and place[2] == 4
    capped = await store.queue_place(a[3].id, 2)
    assert capped == (*place[:2], 2)
    assert await store.queue_place("t_unknown") is None
    places = await store.queue_places(10)
    assert places == sorted(places) and len(places) == 5
    assert await store.queue_places(2) == places[:2]
    b_place = await store.queue_place(b.id)
    assert b_place is not None and places[1] == b_place[:2]  # ties a's first, and is newer
    await store.claim("w1", 1, 60)
    assert await store.queue_place(a[0].id) is None
    assert await store.queue_places(10) == places[1:]


async def test_a_capped_queue_place_is_exact_below_its_cap_and_the_cap_from_it(store):
    # two tenants: the fair queue interleaves them, and their first tasks tie on their place
    tasks = [make_task(tenant=f"tenant-{'ab'[i % 2]}", offset=i) for i in range(8)]
    await create_all(store, tasks)
    exact = {task.id: (await store.queue_place(task.id)) for task in tasks}
    for task in tasks:
        place = exact[task.id]
        assert place is not None
        for cap in (1, 2, 3, 4, 7, 8, 9):
            assert await store.queue_place(task.id, cap) == (*place[:2], min(place[2], cap))
    assert sorted(place[2] for place in exact.values() if place) == list(range(8))


async def test_a_late_burst_cannot_pass_a_waiting_task(store):
    [b] = await create_all(store, [make_task(tenant="tenant-b")])
    await create_all(store, [make_task(tenant="tenant-a", offset=1 + i) for i in range(50)])
    assert await store.queue_position(b.id) == 0
    assert (await store.claim("w1", 1, 60))[0].id == b.id


async def test_a_single_task_after_a_burst_is_claimed_within_a_few(store):
    await create_all(store, [make_task(tenant="tenant-a", offset=i) for i in range(200)])
    await claim_one_by_one(store, 3)
    [b] = await create_all(store, [make_task(tenant="tenant-b", offset=500)])
    assert await store.queue_position(b.id) == 1
    claimed = await claim_one_by_one(store, 2)
    assert b.id in ids(claimed)


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
        error=TaskFailure("upstream_timeout", "slow", True),
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
        error=TaskFailure("content_policy_violation", "blocked", False),
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
    again = claimed.replace(status=TaskStatus.FAILED, error=TaskFailure("internal_error", ""))
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
    assert second.error == LOST_WORKER_ERROR
    assert second.error.code == "internal_error"
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
    assert canceled.error.code == "canceled"
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
    assert canceled.error.code == "canceled"
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


# ---------------------------------------------------------------- keys: listing, revoking, limits


async def test_list_keys_lists_a_tenants_keys_or_all_oldest_first(store):
    a1 = make_key("h1", created_at=BASE)
    b1 = make_key("h2", tenant_id="tenant-b", created_at=BASE + timedelta(seconds=1))
    a2 = make_key("h3", created_at=BASE + timedelta(seconds=2), revoked_at=BASE)
    for key in (a2, b1, a1):
        await store.add_key(key)
    assert await store.list_keys("tenant-a") == [a1, a2]
    assert await store.list_keys() == [a1, b1, a2]
    assert await store.list_keys("nobody") == []


async def test_get_key_by_id_and_unknown_ids(store):
    key = make_key("h1", rpm_limit=60, concurrency_limit=2, budget_micros=5_000_000)
    await store.add_key(key)
    assert await store.get_key_by_id(key.id) == key
    assert await store.get_key_by_id("k_missing") is None
    assert await store.revoke_key("k_missing") is None
    limits = {"rpm_limit": 1, "concurrency_limit": 1, "budget_micros": 1}
    assert await store.set_key_limits("k_missing", **limits) is None


async def test_revoke_key_sets_the_time_once(store):
    key = make_key("h1")
    await store.add_key(key)
    first = await store.revoke_key(key.id)
    assert first is not None and first.revoked_at is not None
    again = await store.revoke_key(key.id)
    assert again == first
    assert await store.get_key("h1") == first
    assert await store.count_keys() == 0


async def test_restore_key_makes_a_key_an_active_admin_again(store):
    key = make_key("h1")
    await store.add_key(key)
    await store.revoke_key(key.id)
    restored = await store.restore_key(key.id)
    assert restored == dataclasses.replace(key, admin=True, revoked_at=None)
    assert await store.get_key("h1") == restored
    assert await store.restore_key("k_missing") is None


async def test_set_key_limits_replaces_all_three(store):
    key = make_key("h1", rpm_limit=60)
    await store.add_key(key)
    changed = await store.set_key_limits(
        key.id, rpm_limit=None, concurrency_limit=3, budget_micros=2_500_000
    )
    expected = dataclasses.replace(
        key, rpm_limit=None, concurrency_limit=3, budget_micros=2_500_000
    )
    assert changed == expected
    assert await store.get_key("h1") == expected


# ---------------------------------------------------------------- request rates


async def test_rate_hit_allows_a_minutes_burst_then_says_how_long_to_wait(store):
    assert [await store.rate_hit("k1", 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await store.rate_hit("k1", 3)
    assert 0 < wait <= 20.0  # one request every 60 / 3 seconds
    assert await store.rate_hit("k2", 3) == 0.0, "each key has its own rate"
    assert 0 < await store.rate_hit("k1", 3) <= 20.0, "a refused request is not counted"


# ---------------------------------------------------------------- spend: reserve, settle, release


async def limited_key(store: Store, **limits: Any) -> ApiKey:
    key = make_key("h-" + new_id(""), **limits)
    await store.add_key(key)
    return key


async def usage_of(store: Store, key: ApiKey) -> tuple[int, int, int]:
    now = await store.get_key_by_id(key.id)
    assert now is not None
    return now.active_tasks, now.reserved_micros, now.spent_micros


def charged(key: ApiKey, micros: int, base_url: str = "") -> Submission:
    return Submission(key_id=key.id, reserve_micros=micros, base_url=base_url)


def succeeded_at(task: Task, cost: float) -> Task:
    return task.replace(
        status=TaskStatus.SUCCEEDED, output=output(), usage=Usage(cost), finished_at=utcnow()
    )


async def test_a_submit_reserves_and_a_success_settles_at_its_cost_once(store):
    key = await limited_key(store, budget_micros=1_000_000)
    task = make_task()
    await store.create(task, charged(key, 80_000))
    assert await usage_of(store, key) == (1, 80_000, 0)
    [claimed] = await store.claim("w1", 1, 60)
    assert await store.finish(succeeded_at(claimed, 0.039))
    assert await usage_of(store, key) == (0, 0, 39_000)
    # at-least-once: a repeat of the same outcome changes nothing, charges nothing
    assert not await store.finish(succeeded_at(claimed, 0.039))
    assert await usage_of(store, key) == (0, 0, 39_000)


async def test_a_retry_keeps_the_reservation_and_a_failure_releases_it(store):
    key = await limited_key(store)
    await store.create(make_task(), charged(key, 50_000))
    [claimed] = await store.claim("w1", 1, 60)
    retry = claimed.replace(status=TaskStatus.QUEUED, run_after=BASE)
    assert await store.finish(retry)
    assert await usage_of(store, key) == (1, 50_000, 0)
    [again] = await store.claim("w1", 1, 60)
    failed = again.replace(
        status=TaskStatus.FAILED, error=TaskFailure("x", ""), finished_at=utcnow()
    )
    assert await store.finish(failed)
    assert await usage_of(store, key) == (0, 0, 0)


async def test_cancel_and_reap_release_reservations(store):
    key = await limited_key(store)
    queued, running = make_task(offset=0), make_task(offset=1, max_attempts=1)
    await store.create(queued, charged(key, 10))
    await store.create(running, charged(key, 20))
    assert await usage_of(store, key) == (2, 30, 0)
    await store.cancel(queued.id, "tenant-a")
    assert await usage_of(store, key) == (1, 20, 0)
    await store.cancel(queued.id, "tenant-a")
    assert await usage_of(store, key) == (1, 20, 0), "released once"
    await store.claim("w1", 1, SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    [reaped] = await store.reap()
    assert reaped.status == TaskStatus.FAILED
    assert await usage_of(store, key) == (0, 0, 0)


async def test_the_concurrency_limit_refuses_a_task_and_stores_nothing(store):
    key = await limited_key(store, concurrency_limit=2)
    first, second, third = make_task(offset=0), make_task(offset=1), make_task(offset=2)
    await store.create(first, charged(key, 0))
    await store.create(second, charged(key, 0))
    with pytest.raises(OverLimit) as caught:
        await store.create(third, charged(key, 0))
    assert caught.value.limit == "concurrency"
    assert caught.value.key.active_tasks == 2
    assert await store.get(third.id) is None
    await store.cancel(first.id, "tenant-a")
    await store.create(third, charged(key, 0))
    assert await usage_of(store, key) == (2, 0, 0)


async def test_the_budget_counts_spent_and_reserved_and_refuses_past_it(store):
    key = await limited_key(store, budget_micros=100_000)
    first = make_task(offset=0)
    await store.create(first, charged(key, 60_000))
    with pytest.raises(OverLimit) as caught:
        await store.create(make_task(offset=1), charged(key, 60_000))
    assert caught.value.limit == "budget"
    [claimed] = await store.claim("w1", 1, 60)
    assert await store.finish(succeeded_at(claimed, 0.03))
    assert await usage_of(store, key) == (0, 0, 30_000)
    await store.create(make_task(offset=2), charged(key, 60_000))  # 30k spent + 60k <= 100k
    with pytest.raises(OverLimit):
        await store.create(make_task(offset=3), charged(key, 20_000))


async def test_concurrent_submits_never_overshoot_a_limit(store):
    key = await limited_key(store, concurrency_limit=3)
    tasks = [make_task(offset=i) for i in range(12)]
    results = await asyncio.gather(
        *(store.create(t, charged(key, 1)) for t in tasks), return_exceptions=True
    )
    assert sum(isinstance(r, Task) for r in results) == 3
    assert all(isinstance(r, OverLimit) for r in results if not isinstance(r, Task))
    assert await usage_of(store, key) == (3, 3, 0)


async def test_a_replayed_submit_reserves_nothing_more(store):
    key = await limited_key(store)
    first = make_task(idempotency_key="k1", webhook_url="https://example.com/h")
    await store.create(first, charged(key, 10))
    with pytest.raises(DuplicateTask):
        await store.create(
            make_task(idempotency_key="k1", webhook_url="https://example.com/h"), charged(key, 10)
        )
    assert await usage_of(store, key) == (1, 10, 0)
    assert [d.task_id for d in (await store.list_deliveries("tenant-a"))[0]] == [first.id]


async def test_a_submission_for_an_unknown_key_counts_nothing(store):
    task = make_task()
    await store.create(task, Submission(key_id="k_gone", reserve_micros=5))
    assert await store.get(task.id) == task


# ---------------------------------------------------------------- webhook deliveries


async def test_a_webhook_waits_for_its_task_then_is_due(store):
    task = make_task(webhook_url="https://example.com/hook")
    await store.create(task, Submission(base_url="https://hub.example"))
    waiting = await store.get_delivery(task.id, "tenant-a")
    assert waiting is not None
    assert (waiting.id, waiting.state, waiting.url) == (
        delivery_id(task.id),
        "waiting",
        "https://example.com/hook",
    )
    assert waiting.base_url == "https://hub.example"
    assert await store.claim_deliveries("s1", 10, 60) == []
    [claimed] = await store.claim("w1", 1, 60)
    assert await store.finish(succeeded_at(claimed, 0))
    due = await store.get_delivery(task.id, "tenant-a")
    assert due is not None and due.state == "pending" and due.next_attempt_at is not None
    [leased] = await store.claim_deliveries("s1", 10, 60)
    assert (leased.id, leased.attempts, leased.lease_owner) == (waiting.id, 1, "s1")
    assert leased.lease_token == waiting.lease_token + 1
    assert await store.claim_deliveries("s2", 10, 60) == [], "leased: nobody else takes it"


async def test_a_task_without_webhook_url_has_no_delivery(store):
    task = make_task()
    await store.create(task, Submission(base_url="https://hub.example"))
    assert await store.get_delivery(task.id, "tenant-a") is None


async def due_delivery(store: Store, *, tenant: str = "tenant-a", offset: float = 0.0):
    task = make_task(tenant=tenant, offset=offset, webhook_url="https://example.com/h")
    await store.create(task)
    await store.cancel(task.id, tenant)  # final: its delivery is due
    return task


async def test_finish_delivery_is_fenced_by_the_lease_token(store):
    task = await due_delivery(store)
    [leased] = await store.claim_deliveries("s1", 1, SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    [again] = await store.claim_deliveries("s2", 1, 60)  # the first sender's lease expired
    assert (again.id, again.attempts) == (leased.id, 2)
    attempt = DeliveryAttempt(utcnow().replace(microsecond=0), 200, None)
    late = dataclasses.replace(leased, state="succeeded", history=(attempt,))
    assert await store.finish_delivery(late) is False
    done = dataclasses.replace(again, state="succeeded", history=(attempt,))
    assert await store.finish_delivery(done) is True
    stored_now = await store.get_delivery(task.id, "tenant-a")
    assert stored_now is not None
    assert (stored_now.state, stored_now.history, stored_now.lease_owner) == (
        "succeeded",
        (attempt,),
        None,
    )
    assert await store.finish_delivery(done) is False, "finished: the token no longer matches"


async def test_a_retried_delivery_is_due_again_at_its_time(store):
    await due_delivery(store)
    [leased] = await store.claim_deliveries("s1", 1, 60)
    attempt = DeliveryAttempt(utcnow().replace(microsecond=0), None, "timed out")
    later = dataclasses.replace(
        leased, next_attempt_at=utcnow() + timedelta(minutes=5), history=(attempt,)
    )
    assert await store.finish_delivery(later)
    assert await store.claim_deliveries("s1", 1, 60) == []
    soon = dataclasses.replace(later, next_attempt_at=utcnow() - timedelta(seconds=1))
    assert not await store.finish_delivery(soon), "not leased any more"


async def test_deliveries_are_scoped_to_their_tenant_and_listed_newest_first(store):
    tasks = [await due_delivery(store, offset=i) for i in range(3)]
    other = await due_delivery(store, tenant="tenant-b", offset=9)
    assert await store.get_delivery(other.id, "tenant-a") is None
    page, cursor = await store.list_deliveries("tenant-a", limit=2)
    assert [d.task_id for d in page] == [tasks[2].id, tasks[1].id]
    assert cursor is not None
    rest, end = await store.list_deliveries("tenant-a", limit=2, cursor=cursor)
    assert ([d.task_id for d in rest], end) == ([tasks[0].id], None)
    assert [d.task_id for d in (await store.list_deliveries("tenant-b"))[0]] == [other.id]


# ---------------------------------------------------------------- webhook secrets


async def test_ensure_webhook_secret_adds_one_only_when_there_is_none(store):
    first = WebhookSecret("tenant-a", "whsec_one", BASE.replace(microsecond=0))
    assert await store.ensure_webhook_secret(first) == [first]
    second = WebhookSecret("tenant-a", "whsec_two", BASE.replace(microsecond=0))
    assert await store.ensure_webhook_secret(second) == [first]
    assert await store.webhook_secrets("tenant-b") == []


async def test_rotate_keeps_the_old_secret_signing_for_the_overlap(store):
    old = WebhookSecret("tenant-a", "whsec_old", BASE.replace(microsecond=0))
    await store.ensure_webhook_secret(old)
    new = WebhookSecret("tenant-a", "whsec_new", utcnow().replace(microsecond=0))
    active = await store.rotate_webhook_secret(new, 3600)
    assert [s.secret for s in active] == ["whsec_new", "whsec_old"]
    assert active[0].expires_at is None and active[1].expires_at is not None
    newest = WebhookSecret("tenant-a", "whsec_newest", utcnow().replace(microsecond=0))
    active = await store.rotate_webhook_secret(newest, 0)
    assert [s.secret for s in active] == ["whsec_newest"]


# ---------------------------------------------------------------- grounding


async def test_grounding_round_trips_and_survives_a_purge(store):
    await create_all(store, [make_task()])
    [claimed] = await store.claim("w1", 1, 60)
    grounding = Grounding(
        queries=("weather paris", "météo paris"),
        search_entry_point="<style>.chip{}</style><div class='chip'>weather paris</div>",
        sources=(Source("https://example.org/a?q=1", "example.org"), Source("https://b.test/")),
    )
    result = TaskOutput(images=output().images, description="sunny", grounding=grounding)
    done = claimed.replace(status=TaskStatus.SUCCEEDED, output=result, finished_at=utcnow())
    assert await store.finish(done)
    assert (await stored(store, claimed.id)).output == result
    await store.purge_output(claimed.id)
    after = await stored(store, claimed.id)
    assert after.output == TaskOutput(
        images=(), description="sunny", purged=True, grounding=grounding
    )


def test_an_output_without_grounding_is_stored_as_before():
    assert set(output().to_dict()) == {"images", "description", "purged"}
    assert TaskOutput.from_dict({"images": [], "description": "x"}).grounding is None


# ---------------------------------------------------------------- the queue's figures


async def test_queue_stats_count_live_tasks_by_model_and_the_oldest_due_wait(store):
    assert await store.queue_stats() == QueueStats({}, {}, 0, 0.0)
    later = utcnow() + timedelta(hours=1)  # queued for a retry, not due: no wait yet
    await create_all(
        store,
        [
            make_task(offset=0),
            make_task(offset=1),
            make_task(model="gpt-image-2", run_after=later),
            make_task(webhook_url="https://example.com/h", offset=2),
        ],
    )
    [running] = await store.claim("w1", 1, 60)
    assert running.model == "nano-banana"
    stats = await store.queue_stats()
    assert stats.tasks == {
        ("nano-banana", "queued"): 2,
        ("nano-banana", "running"): 1,
        ("gpt-image-2", "queued"): 1,
    }
    # every nano-banana task became due at BASE (an hour before this module was imported)
    assert set(stats.oldest_queued) == {"nano-banana"}
    waited = (utcnow() - BASE).total_seconds()
    assert waited - 60 < stats.oldest_queued["nano-banana"] <= waited
    # the delivery waits for its task: not pending yet
    assert (stats.webhooks_pending, stats.webhooks_oldest_due) == (0, 0.0)


async def test_queue_stats_count_pending_webhooks_and_how_long_the_oldest_waited(store):
    await due_delivery(store)
    stats = await store.queue_stats()
    assert stats.webhooks_pending == 1
    assert 0 <= stats.webhooks_oldest_due < 60
    assert stats.tasks == {}, "its task finished"
