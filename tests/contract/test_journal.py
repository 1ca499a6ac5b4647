"""The attempts journal (store/base.py `finish`, `attempts`, `recent_attempts`), over every
backend: rows written with their task's outcome, in the same transaction, or not at all."""

from __future__ import annotations

from datetime import timedelta

import pytest

from imagehub.store import Store
from imagehub.tasks import SUCCEEDED, Attempt, Task, TaskFailure, TaskStatus, utcnow
from tests.contract.test_store import make_task, output


def call(
    task: Task, route: str = "gemini", *, ago: float = 0.0, seconds: float = 2.5, **changes: str
) -> Attempt:
    """A journal row of a route call of `task`'s current attempt, ended `ago` seconds ago."""
    finished = utcnow() - timedelta(seconds=ago)
    fields = {"outcome": SUCCEEDED, "message": "", "provider": route, **changes}
    return Attempt(
        task_id=task.id,
        tenant_id=task.tenant_id,
        number=task.attempts,
        model=task.model,
        route=route,
        started_at=finished - timedelta(seconds=seconds),
        finished_at=finished,
        **fields,
    )


async def claimed(store: Store, **changes: object) -> Task:
    await store.create(make_task(**changes))
    [task] = await store.claim("w1", 1, 60)
    return task


async def test_finish_writes_its_attempt_and_attempts_reads_it_back(store):
    task = await claimed(store)
    row = call(task, "vertex", seconds=3.25)
    done = task.replace(status=TaskStatus.SUCCEEDED, output=output(), finished_at=utcnow())
    assert await store.finish(done, row) is True
    [back] = await store.attempts(task.id)
    assert back == row
    assert back.seconds == pytest.approx(3.25, abs=1e-3)
    assert back.number == 1


async def test_the_latency_shape_round_trips_and_old_rows_read_as_no_shape(store):
    task = await claimed(store)
    shaped = call(task, "vertex", ago=2, outcome="upstream_timeout", shape="resolution=4K")
    plain = call(task, "gemini")
    done = task.replace(status=TaskStatus.SUCCEEDED, output=output(), finished_at=utcnow())
    assert await store.finish(done, [shaped, plain])
    assert [a.shape for a in await store.attempts(task.id)] == ["resolution=4K", ""]
    recent = await store.recent_attempts(utcnow() - timedelta(minutes=1))
    assert {(a.route, a.shape) for a in recent} == {("vertex", "resolution=4K"), ("gemini", "")}


async def test_a_failover_writes_every_route_call_in_order(store):
    task = await claimed(store)
    first = call(task, "gemini", ago=5, outcome="upstream_timeout", message="slow")
    second = call(task, "vertex", ago=1)
    done = task.replace(status=TaskStatus.SUCCEEDED, output=output(), finished_at=utcnow())
    assert await store.finish(done, [first, second])
    assert await store.attempts(task.id) == [first, second]


async def test_a_retry_writes_its_attempt_and_the_next_attempt_adds_to_it(store):
    task = await claimed(store, max_attempts=3)
    failed = call(task, ago=10, outcome="upstream_unavailable", message="503")
    retry = task.replace(
        status=TaskStatus.QUEUED,
        error=TaskFailure("upstream_unavailable", "503", True),
        run_after=utcnow(),
    )
    assert await store.finish(retry, failed)
    [again] = await store.claim("w2", 1, 60)
    assert again.attempts == 2
    ok = call(again)
    assert ok.number == 2
    assert await store.finish(again.replace(status=TaskStatus.SUCCEEDED, output=output()), ok)
    assert await store.attempts(task.id) == [failed, ok]


async def test_a_finish_whose_lease_is_lost_writes_no_journal_row(store):
    task = await claimed(store)
    await store.cancel(task.id, task.tenant_id)
    done = task.replace(status=TaskStatus.SUCCEEDED, output=output())
    assert await store.finish(done, call(task)) is False
    assert await store.attempts(task.id) == []


async def test_finish_without_an_attempt_writes_no_journal_row(store):
    task = await claimed(store)
    assert await store.finish(task.replace(status=TaskStatus.SUCCEEDED, output=output()))
    assert await store.attempts(task.id) == []


async def test_recent_attempts_are_newest_first_since_a_time_and_by_model(store):
    a = await claimed(store, model="nano-banana")
    b = await claimed(store, model="gpt-image-2")
    old = call(a, ago=7200, outcome="upstream_timeout")
    a_new = call(a, ago=60)
    b_new = call(b, "openai", ago=30)
    retry = a.replace(status=TaskStatus.QUEUED, run_after=utcnow() + timedelta(hours=1))
    assert await store.finish(retry, [old, a_new])
    assert await store.finish(b.replace(status=TaskStatus.SUCCEEDED, output=output()), b_new)
    hour_ago = utcnow() - timedelta(hours=1)
    assert await store.recent_attempts(hour_ago) == [b_new, a_new]
    assert await store.recent_attempts(hour_ago, model="nano-banana") == [a_new]
    assert await store.recent_attempts(hour_ago - timedelta(hours=2)) == [b_new, a_new, old]
    assert await store.recent_attempts(hour_ago, limit=1) == [b_new]


async def test_attempts_of_an_unknown_task_are_empty(store):
    assert await store.attempts("t_missing") == []
