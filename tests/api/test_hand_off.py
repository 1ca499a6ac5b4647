"""A submit hands its task straight to this process's worker (Hub._create, Worker.hand_off):
stored running in the submit's own transaction, started with no claim and no wake-up, but only
while the worker has a free slot, is not stopping, and no other task waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from imagehub import logs
from imagehub.hub import Hub
from imagehub.providers import GeneratedImage, GenerationRequest, GenerationResult
from imagehub.store import Lease
from imagehub.tasks import Task, TaskStatus, new_id
from imagehub.testing import ScriptedProvider, memory_hub
from tests.api.conftest import LOOPBACK, _client

NB = {"model": "nano-banana", "input": {"prompt": "a lighthouse at dusk"}}


def one_slot_hub(provider: ScriptedProvider, **settings: object) -> Hub:
    settings = {"poll_seconds": 0.2, **settings}
    return memory_hub(provider, worker_concurrency=1, fetch_allow_private=LOOPBACK, **settings)


@pytest.fixture
async def one_slot(provider: ScriptedProvider) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    hub = one_slot_hub(provider)
    async for client in _client(hub):
        yield hub, client


async def test_a_submit_to_an_idle_worker_answers_running_and_runs_once(client, hub, provider):
    provider.delay = 0.2
    claims = 0
    claim = hub.store.claim

    async def counted(owner: str, limit: int, lease_seconds: float) -> list[Task]:
        nonlocal claims
        found = await claim(owner, limit, lease_seconds)
        claims += len(found)
        return found

    hub.store.claim = counted  # type: ignore[method-assign]
    answer = await client.post("/hub/v1/tasks", json=NB)
    assert answer.status_code == 202
    task = answer.json()
    assert task["status"] == "running"
    done = (await client.get(f"/hub/v1/tasks/{task['task_id']}?wait=10")).json()
    assert done["status"] == "succeeded"
    assert claims == 0, "no claim took it: the submit handed it over"
    assert len(provider.requests) == 1
    [call] = await hub.store.attempts(task["task_id"])
    assert call.number == 1


async def test_prefer_wait_on_a_hand_off_answers_the_finished_task(client):
    answer = await client.post("/hub/v1/tasks", json=NB, headers={"Prefer": "wait=10"})
    assert answer.status_code == 200
    assert answer.json()["status"] == "succeeded"


async def test_a_watcher_of_a_handed_off_task_sees_it_running_then_finished(client, provider):
    provider.delay = 0.2
    task = (await client.post("/hub/v1/tasks", json=NB)).json()
    statuses = []
    async with client.stream("GET", f"/hub/v1/tasks/{task['task_id']}/events") as response:
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            if line.startswith("data: ") and kind != "progress":
                statuses.append(json.loads(line[6:])["status"])
    assert statuses[0] == "running" and statuses[-1] == "succeeded"
    assert "queued" not in statuses


async def test_a_handed_off_run_carries_its_task_id_not_its_submits_request_id(client, provider):
    seen: list[tuple[str | None, str | None]] = []

    def look(request: GenerationRequest) -> GenerationResult:
        seen.append((logs.request_id.get(), logs.task_id.get()))
        return GenerationResult(images=(GeneratedImage(provider.image, "image/png"),))

    provider.script = [look]
    answer = await client.post("/hub/v1/tasks", json=NB, headers={"Prefer": "wait=10"})
    assert answer.json()["status"] == "succeeded"
    assert seen == [(None, answer.json()["task_id"])]


async def test_a_full_worker_gets_no_hand_off_the_task_is_queued_and_run_after(one_slot, provider):
    hub, client = one_slot
    provider.delay = 0.3
    first = (await client.post("/hub/v1/tasks", json=NB)).json()
    second = (await client.post("/hub/v1/tasks", json=NB)).json()
    assert (first["status"], second["status"]) == ("running", "queued")
    for task in (first, second):
        done = (await client.get(f"/hub/v1/tasks/{task['task_id']}?wait=10")).json()
        assert done["status"] == "succeeded"
    stored = await hub.store.get(second["task_id"])
    assert stored is not None and stored.attempts == 1


async def test_a_replayed_submit_returns_the_task_and_hands_nothing_off(client, provider):
    headers = {"Idempotency-Key": "replay-1", "Prefer": "wait=10"}
    first = await client.post("/hub/v1/tasks", json=NB, headers=headers)
    again = await client.post("/hub/v1/tasks", json=NB, headers=headers)
    assert first.json()["task_id"] == again.json()["task_id"]
    assert again.json()["status"] == "succeeded"
    assert len(provider.requests) == 1


async def test_an_api_only_process_queues_as_before(provider):
    hub = memory_hub(provider, run_worker=False, poll_seconds=0.2)
    async for client in _client(hub):
        task = (await client.post("/hub/v1/tasks", json=NB)).json()
        assert task["status"] == "queued"
        assert provider.requests == []


async def test_slots_held_for_hand_offs_count_as_taken_and_a_stopping_worker_takes_none(
    one_slot,
):
    hub, _ = one_slot
    worker = hub.worker
    assert worker is not None
    with worker.hand_off("t_a") as held:
        assert held == Lease(worker.owner, hub.settings.lease_seconds)
        assert not worker.has_room()
        with worker.hand_off("t_b") as refused:
            assert refused is None
    assert worker.has_room()
    worker.stop()
    with worker.hand_off("t_c") as refused:
        assert refused is None


async def test_a_worker_not_yet_running_takes_no_hand_off(provider):
    worker = one_slot_hub(provider).worker
    assert worker is not None and worker.has_room()
    with worker.hand_off("t_a") as refused:
        assert refused is None


async def test_a_hand_off_stored_as_the_worker_stops_goes_back_to_the_queue(one_slot):
    hub, _ = one_slot
    worker = hub.worker
    assert worker is not None
    task = pending(hub)
    with worker.hand_off(task.id) as lease:
        stored = await hub.store.create(task, lease=lease)
        assert stored.status == TaskStatus.RUNNING
        worker.stop()
        await worker.take(stored)
    back = await hub.store.get(task.id)
    assert back is not None
    assert (back.status, back.lease_owner, back.attempts) == (TaskStatus.QUEUED, None, 1)


async def test_a_hand_off_whose_process_died_is_reaped_and_run_by_another_worker(client, hub):
    worker = hub.worker
    assert worker is not None
    task = pending(hub)
    await hub.store.create(task, lease=Lease("wrk_gone", 0.05))
    await asyncio.sleep(0.1)
    await worker.reap()
    done = await hub.wait(task.tenant_id, task.id, 10)
    assert (done.status, done.attempts) == (TaskStatus.SUCCEEDED, 2)


def pending(hub: Hub) -> Task:
    """A valid task, not yet stored."""
    valid = hub.validator.validate("nano-banana", {"prompt": "a lighthouse"})
    return Task(id=new_id("tsk_"), tenant_id="tenant-x", model="nano-banana", input=valid.params)


async def test_the_slots_a_claim_under_way_asked_for_get_no_hand_off(one_slot):
    hub, _ = one_slot
    worker = hub.worker
    assert worker is not None
    asked, answer = asyncio.Event(), asyncio.Event()
    claim = hub.store.claim

    async def slow(owner: str, limit: int, lease_seconds: float) -> list[Task]:
        asked.set()
        await answer.wait()
        return await claim(owner, limit, lease_seconds)

    hub.store.claim = slow  # type: ignore[method-assign]
    hub.notifier.nudge()  # the dispatch loop claims now
    await asyncio.wait_for(asked.wait(), 5)
    with worker.hand_off("t_a") as refused:
        assert refused is None
    answer.set()
    await asyncio.sleep(0.05)  # the claim answers: its slot is free again
    with worker.hand_off("t_b") as held:
        assert held is not None


async def test_a_full_worker_whose_tasks_all_came_by_hand_off_claims_nothing_as_they_finish(
    provider,
):
    """At full concurrency with nothing queued, a finished task frees its slot and wakes no
    claim: a claim would hold the slot the client's next submit is about to be handed, and
    find nothing."""
    hub = one_slot_hub(provider, poll_seconds=30)
    claims = []
    claim = hub.store.claim

    async def counted(owner: str, limit: int, lease_seconds: float) -> list[Task]:
        claims.append(limit)
        return await claim(owner, limit, lease_seconds)

    async for client in _client(hub):
        await asyncio.sleep(0.05)  # the dispatch loop's first claim, on start
        hub.store.claim = counted  # type: ignore[method-assign]
        for _ in range(5):
            answer = await client.post("/hub/v1/tasks", json=NB, headers={"Prefer": "wait=10"})
            assert answer.json()["status"] == "succeeded"
            # the finished task's slot is freed a turn of the loop after its waiter answers,
            # as a client over a network would send its next request
            await asyncio.sleep(0.01)
    assert claims == []


async def test_a_task_queued_while_the_worker_is_full_starts_once_a_slot_frees(provider):
    """The queued task's hint finds the worker full: the dispatch loop then waits for a slot,
    not for the next poll (30 s here), and claims the task as soon as one frees."""
    hub = one_slot_hub(provider, poll_seconds=30)
    provider.delay = 0.2
    async for client in _client(hub):
        first = (await client.post("/hub/v1/tasks", json=NB)).json()
        second = (await client.post("/hub/v1/tasks", json=NB)).json()
        assert (first["status"], second["status"]) == ("running", "queued")
        done = await client.get(f"/hub/v1/tasks/{second['task_id']}?wait=5")
        assert done.json()["status"] == "succeeded"
