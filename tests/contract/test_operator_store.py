"""What an operator reads and changes across tenants (store/base.py `OperatorStore`,
`RouteStateStore`), over every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from imagehub.store.base import RouteState, TaskFilter
from imagehub.tasks import TaskFailure, TaskStatus, Usage, utcnow
from imagehub.webhooks.types import DeliveryAttempt
from tests.contract.test_store import (
    BASE,
    PAST_SHORT_LEASE,
    SHORT_LEASE,
    due_delivery,
    make_task,
    output,
)

# ---------------------------------------------------------------- tasks across tenants


async def test_find_tasks_lists_every_tenant_newest_first_by_pages(store):
    made = [make_task(tenant=f"t{i % 2}", offset=i) for i in range(5)]
    for task in made:
        await store.create(task)
    page = await store.find_tasks(TaskFilter(), limit=3)
    assert [t.id for t in page.tasks] == [made[4].id, made[3].id, made[2].id]
    assert page.next_cursor is not None
    rest = await store.find_tasks(TaskFilter(), limit=3, cursor=page.next_cursor)
    assert [t.id for t in rest.tasks] == [made[1].id, made[0].id]
    assert rest.next_cursor is None


async def test_find_tasks_filters_by_tenant_model_status_provider_and_time(store):
    a = make_task(tenant="alpha", offset=0, model="nano-banana")
    b = make_task(tenant="beta", offset=10, model="gpt-image-2")
    c = make_task(tenant="beta", offset=20, model="nano-banana")
    for task in (a, b, c):
        await store.create(task)
    [claimed] = await store.claim("w1", 1, 60)
    assert claimed.id == a.id
    done = claimed.replace(status=TaskStatus.SUCCEEDED, output=output(), provider="vertex")
    assert await store.finish(done)

    async def found(**where: object) -> list[str]:
        return [t.id for t in (await store.find_tasks(TaskFilter(**where))).tasks]

    assert await found(tenant_id="beta") == [c.id, b.id]
    assert await found(model="nano-banana") == [c.id, a.id]
    assert await found(status=TaskStatus.SUCCEEDED) == [a.id]
    assert await found(provider="vertex") == [a.id]
    assert await found(provider="gemini") == []
    window = {"since": BASE + timedelta(seconds=5), "until": BASE + timedelta(seconds=20)}
    assert await found(**window) == [b.id]
    assert await found(tenant_id="beta", model="nano-banana", status=TaskStatus.QUEUED) == [c.id]


# ---------------------------------------------------------------- deliveries across tenants


async def test_find_deliveries_across_tenants_and_by_state(store):
    first = await due_delivery(store, tenant="alpha", offset=0)
    second = await due_delivery(store, tenant="beta", offset=5)
    waiting = make_task(tenant="beta", offset=9, webhook_url="https://example.com/w")
    await store.create(waiting)
    [leased] = await store.claim_deliveries("s1", 1, 60)
    assert leased.task_id == first.id
    failed = dataclasses.replace(
        leased, state="failed", history=(DeliveryAttempt(utcnow(), 500, None),)
    )
    assert await store.finish_delivery(failed)

    async def found(**where: object) -> list[str]:
        return [d.task_id for d in (await store.find_deliveries(**where))[0]]

    assert await found() == [waiting.id, second.id, first.id]
    assert await found(tenant_id="alpha") == [first.id]
    assert await found(state="failed") == [first.id]
    assert await found(state="failing") == [first.id]
    assert await found(state="pending") == [second.id]
    assert await found(state="waiting") == [waiting.id]
    page, cursor = await store.find_deliveries(limit=2)
    assert [d.task_id for d in page] == [waiting.id, second.id] and cursor is not None
    rest, end = await store.find_deliveries(limit=2, cursor=cursor)
    assert ([d.task_id for d in rest], end) == ([first.id], None)


async def test_retry_delivery_makes_a_failed_delivery_due_now_and_fences_the_old_lease(store):
    task = await due_delivery(store)
    [leased] = await store.claim_deliveries("s1", 1, 60)
    failed = dataclasses.replace(leased, state="failed", next_attempt_at=None)
    assert await store.finish_delivery(failed)
    assert await store.claim_deliveries("s1", 1, 60) == []
    retried = await store.retry_delivery(leased.id)
    assert retried is not None
    assert (retried.state, retried.lease_owner) == ("pending", None)
    assert retried.lease_token == leased.lease_token + 1
    assert retried == await store.get_delivery_by_id(leased.id)
    [again] = await store.claim_deliveries("s2", 1, 60)
    assert (again.task_id, again.attempts) == (task.id, 2)


async def test_retry_delivery_refuses_a_leased_succeeded_waiting_or_unknown_delivery(store):
    await due_delivery(store)
    [leased] = await store.claim_deliveries("s1", 1, 60)
    assert await store.retry_delivery(leased.id) is None, "a sender holds it now"
    done = dataclasses.replace(leased, state="succeeded")
    assert await store.finish_delivery(done)
    assert await store.retry_delivery(leased.id) is None, "delivered already"
    waiting = make_task(webhook_url="https://example.com/w")
    await store.create(waiting)
    [d], _ = await store.find_deliveries(state="waiting")
    assert await store.retry_delivery(d.id) is None, "its task is not finished"
    assert await store.retry_delivery("msg_missing") is None
    assert await store.get_delivery_by_id("msg_missing") is None


async def test_retry_delivery_takes_an_expired_lease_whose_holder_then_writes_nothing(store):
    await due_delivery(store)
    [leased] = await store.claim_deliveries("s1", 1, SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    assert await store.retry_delivery(leased.id) is not None
    late = dataclasses.replace(leased, state="succeeded")
    assert await store.finish_delivery(late) is False


# ---------------------------------------------------------------- route states


def state(process: str, route: str, ago: float = 0.0, **fields: object) -> RouteState:
    body = {"healthy": True, "in_flight": 0, **fields}
    return RouteState(process, route, "nano-banana", body, utcnow() - timedelta(seconds=ago))


async def test_route_states_of_every_process_are_read_back_since_a_time(store):
    now = utcnow()
    await store.publish_route_states("p1", [state("p1", "gemini", in_flight=2)])
    await store.publish_route_states("p2", [state("p2", "gemini", healthy=False)])
    rows = await store.route_states(now - timedelta(seconds=30))
    assert [(r.process_id, r.route, r.model) for r in rows] == [
        ("p1", "gemini", "nano-banana"),
        ("p2", "gemini", "nano-banana"),
    ]
    assert rows[0].state == {"healthy": True, "in_flight": 2}
    assert rows[1].state["healthy"] is False
    assert abs((rows[0].updated_at - now).total_seconds()) < 5


async def test_publishing_replaces_a_process_rows_and_old_rows_are_not_live(store):
    await store.publish_route_states("p1", [state("p1", "gemini"), state("p1", "vertex")])
    await store.publish_route_states("p1", [state("p1", "vertex", in_flight=1)])
    await store.publish_route_states("p2", [state("p2", "gemini", ago=120)])
    live = await store.route_states(utcnow() - timedelta(seconds=30))
    assert [(r.process_id, r.route, r.state["in_flight"]) for r in live] == [("p1", "vertex", 1)]
    every = await store.route_states(utcnow() - timedelta(minutes=5))
    assert [(r.process_id, r.route) for r in every] == [("p2", "gemini"), ("p1", "vertex")]


# ---------------------------------------------------------------- usage rows


async def test_usage_rows_read_cost_and_images_of_the_range_newest_first(store):
    two = make_task(offset=0, input={"prompt": "a fox", "num_images": 2})
    synced = make_task(offset=10, input={"prompt": "a fox", "num_images": 3, "sync_mode": True})
    failed = make_task(offset=20, model="gpt-image-2", tenant="beta")
    late = make_task(offset=3600)
    for task in (two, synced, failed, late):
        await store.create(task)
    claimed = {t.id: t for t in await store.claim("w1", 4, 60)}
    pair = dataclasses.replace(output(), images=output().images * 2)
    assert await store.finish(
        claimed[two.id].replace(
            status=TaskStatus.SUCCEEDED,
            output=pair,
            provider="gemini",
            usage=Usage(cost_usd=0.078),
            finished_at=utcnow(),
        )
    )
    assert await store.finish(
        claimed[synced.id].replace(
            status=TaskStatus.SUCCEEDED,
            output=output(),
            usage=Usage(cost_usd=0.117),
            finished_at=utcnow(),
        )
    )
    await store.purge_output(synced.id)  # a sync_mode task read once: its images are gone
    assert await store.finish(
        claimed[failed.id].replace(
            status=TaskStatus.FAILED,
            error=TaskFailure("content_policy_violation", "no", False),
            usage=Usage(cost_usd=0.5),
            finished_at=utcnow(),
        )
    )
    rows = await store.usage_rows(BASE, BASE + timedelta(seconds=60), 10)
    assert [(r.model, r.tenant_id, r.status) for r in rows] == [
        ("gpt-image-2", "beta", "failed"),
        ("nano-banana", "tenant-a", "succeeded"),
        ("nano-banana", "tenant-a", "succeeded"),
    ]
    assert [(r.images, r.cost_usd) for r in rows] == [(0, 0.0), (3, 0.117), (2, 0.078)]
    assert rows[2].provider == "gemini" and rows[2].finished_at is not None
    assert rows[2].created_at == pytest.approx(two.created_at.timestamp())
    assert len(await store.usage_rows(BASE, BASE + timedelta(hours=2), 2)) == 2
