"""Hand-offs (store/base.py `create` with a lease), over every backend: a submit stores its task
running and leased, as a claim would, only when no other task is due; everything a claimed task
has (fencing, heartbeats, reaping, cancel, spend, webhook) holds for it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from imagehub.store import Lease
from imagehub.tasks import DuplicateTask, TaskStatus, utcnow
from imagehub.tenancy.types import OverLimit, Submission
from tests.contract.test_store import (
    PAST_SHORT_LEASE,
    SHORT_LEASE,
    charged,
    limited_key,
    make_task,
    succeeded_at,
    usage_of,
)


async def test_a_hand_off_stores_the_task_running_and_leased_as_a_claim_would(store):
    task = make_task()
    before = utcnow()
    handed = await store.create(task, lease=Lease("worker-1", 30))
    after = utcnow()
    tolerance = timedelta(milliseconds=1)
    assert handed.id == task.id
    assert handed.status == TaskStatus.RUNNING
    assert (handed.lease_owner, handed.attempts, handed.lease_token) == ("worker-1", 1, 1)
    assert handed.started_at is not None and handed.lease_expires_at is not None
    assert before - tolerance <= handed.started_at <= after + tolerance
    lease = timedelta(seconds=30)
    assert before + lease - tolerance <= handed.lease_expires_at <= after + lease + tolerance
    assert await store.get(task.id) == handed
    assert await store.claim("worker-2", 10, 60) == []
    assert await store.queue_position(task.id) is None
    assert await store.heartbeat("worker-1", 30) == {task.id}


async def test_without_a_lease_create_returns_the_task_queued(store):
    task = make_task()
    assert await store.create(task) == task  # queued, as made


async def test_no_hand_off_while_a_due_task_waits_the_waiting_one_is_claimed_first(store):
    waiting = make_task(offset=0)
    await store.create(waiting)
    later = make_task(offset=1)
    stored = await store.create(later, lease=Lease("worker-1", 30))
    assert stored == later  # queued, as without a lease
    assert await store.get(later.id) == later
    assert await store.heartbeat("worker-1", 30) == set()
    assert [t.id for t in await store.claim("worker-1", 1, 30)] == [waiting.id]
    assert [t.id for t in await store.claim("worker-1", 1, 30)] == [later.id]


async def test_a_task_queued_for_later_does_not_hold_back_a_hand_off(store):
    await store.create(make_task(run_after=utcnow() + timedelta(minutes=10)))
    handed = await store.create(make_task(offset=1), lease=Lease("worker-1", 30))
    assert handed.status == TaskStatus.RUNNING


async def test_a_running_task_does_not_hold_back_a_hand_off(store):
    await store.create(make_task(offset=0))
    await store.claim("worker-1", 1, 30)
    handed = await store.create(make_task(offset=1), lease=Lease("worker-1", 30))
    assert handed.status == TaskStatus.RUNNING


async def test_a_handed_off_task_is_fenced_finished_and_settled_like_a_claimed_one(store):
    key = await limited_key(store, budget_micros=1_000_000)
    task = make_task(webhook_url="https://example.com/hook")
    handed = await store.create(task, charged(key, 80_000), Lease("worker-1", 30))
    assert await usage_of(store, key) == (1, 80_000, 0)
    stale = handed.replace(lease_token=handed.lease_token - 1)
    assert not await store.finish(succeeded_at(stale, 0.01))
    assert await store.finish(succeeded_at(handed, 0.039))
    assert await usage_of(store, key) == (0, 0, 39_000)
    delivery = await store.get_delivery(task.id, "tenant-a")
    assert delivery is not None and delivery.state == "pending"


async def test_a_hand_off_whose_worker_died_is_reaped_and_run_again(store):
    task = make_task()
    await store.create(task, lease=Lease("worker-1", SHORT_LEASE))
    await asyncio.sleep(PAST_SHORT_LEASE)
    [reaped] = await store.reap()
    assert (reaped.id, reaped.status, reaped.attempts) == (task.id, TaskStatus.QUEUED, 1)
    [again] = await store.claim("worker-2", 1, 60)
    assert (again.id, again.attempts, again.lease_token) == (task.id, 2, 2)


async def test_a_handed_off_task_is_canceled_and_its_worker_fenced(store):
    task = make_task()
    handed = await store.create(task, lease=Lease("worker-1", 30))
    canceled = await store.cancel(task.id, "tenant-a")
    assert canceled is not None and canceled.status == TaskStatus.CANCELED
    assert not await store.finish(succeeded_at(handed, 0))
    assert await store.heartbeat("worker-1", 30) == set()


async def test_a_replayed_submit_hands_nothing_off(store):
    first = make_task(idempotency_key="k1")
    await store.create(first)
    with pytest.raises(DuplicateTask) as caught:
        await store.create(make_task(offset=1, idempotency_key="k1"), lease=Lease("worker-1", 30))
    assert caught.value.existing == first
    assert await store.heartbeat("worker-1", 30) == set()
    [claimed] = await store.claim("worker-2", 10, 60)
    assert claimed.id == first.id


async def test_a_hand_off_over_a_limit_writes_nothing(store):
    key = await limited_key(store, concurrency_limit=1)
    await store.create(make_task(offset=0), charged(key, 0), Lease("worker-1", 30))
    refused = make_task(offset=1)
    with pytest.raises(OverLimit):
        await store.create(refused, charged(key, 0), Lease("worker-1", 30))
    assert await store.get(refused.id) is None
    assert await usage_of(store, key) == (1, 0, 0)
    assert len(await store.heartbeat("worker-1", 30)) == 1


async def test_a_released_hand_off_goes_back_to_the_queue(store):
    task = make_task()
    await store.create(task, Submission(), Lease("worker-1", 30))
    assert await store.release("worker-1") == 1
    [claimed] = await store.claim("worker-2", 1, 60)
    assert (claimed.id, claimed.attempts) == (task.id, 2)
