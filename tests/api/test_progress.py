"""Where a task is: queue position, ETA and progress on the task, and the `progress` events of
its stream; a tenant's priority in the fair queue (admin)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from imagehub.estimates import shape_of
from imagehub.hub import Hub
from imagehub.store import MemoryStore
from imagehub.tasks import Attempt, utcnow
from imagehub.testing import ScriptedProvider, memory_hub
from tests.api.conftest import _client, other_tenant_key

NB = {"model": "nano-banana", "input": {"prompt": "a lighthouse at dusk"}}


@pytest.fixture
def idle_hub() -> Hub:
    """A hub that runs no worker: what is submitted stays queued."""
    return memory_hub(ScriptedProvider(), run_worker=False, estimate_refresh_seconds=0)


@pytest.fixture
async def idle(idle_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(idle_hub):
        yield c


def journal(hub: Hub, model: str, seconds: float, count: int, shape: str = "") -> None:
    """`count` successful attempts of `model` (of latency `shape`), each `seconds` long,
    finished just now."""
    assert isinstance(hub.store, MemoryStore)
    end = utcnow()
    hub.store.journal.extend(
        Attempt(
            task_id=f"t_{i}",
            tenant_id="tenant-x",
            number=1,
            model=model,
            route="scripted",
            provider="scripted",
            started_at=end - timedelta(seconds=seconds),
            finished_at=end,
            outcome="succeeded",
            shape=shape,
        )
        for i in range(count)
    )


async def submit(client: httpx.AsyncClient, body: dict = NB, **headers: str) -> dict:
    answer = await client.post("/hub/v1/tasks", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()


async def read(client: httpx.AsyncClient, task: dict, **headers: str) -> dict:
    answer = await client.get(f"/hub/v1/tasks/{task['task_id']}", headers=headers)
    assert answer.status_code == 200
    return answer.json()


async def test_a_queued_task_has_its_position_and_progress_zero(idle):
    tasks = [await submit(idle) for _ in range(3)]
    assert [t["queue_position"] for t in tasks] == [0, 1, 2]  # the submit's answer too
    read_back = [await read(idle, t) for t in tasks]
    assert [t["queue_position"] for t in read_back] == [0, 1, 2]
    assert {t["progress"] for t in read_back} == {0.0}


async def test_without_a_journal_only_the_first_in_line_has_an_eta(idle, idle_hub):
    first, second = await submit(idle), await submit(idle)
    assert (await read(idle, first))["eta_seconds"] == idle_hub.settings.estimate_default_seconds
    assert (await read(idle, second))["eta_seconds"] is None  # no telling how fast it moves


async def test_the_eta_of_a_queued_task_comes_from_the_journal(idle, idle_hub):
    # 90 attempts of 10 s finished in the 900 s window: the queue moves at 0.1 task a second
    journal(idle_hub, "nano-banana", 10.0, 90)
    journal(idle_hub, "gpt-image-2", 100.0, 0)
    tasks = [await submit(idle) for _ in range(3)]
    assert [(await read(idle, t))["eta_seconds"] for t in tasks] == [10.0, 20.0, 30.0]


async def test_one_model_at_two_resolutions_has_two_etas_from_the_journal(idle, idle_hub):
    def at(resolution: str) -> dict:
        return {"model": "nano-banana-2", "input": {"prompt": "a fox", "resolution": resolution}}

    big = await submit(idle, at("4K"))
    default = idle_hub.settings.estimate_default_seconds
    assert (await read(idle, big))["eta_seconds"] == default  # no journal yet
    # the journal's rows carry the shape of the tasks' normalized input, as the worker writes it
    journal(idle_hub, "nano-banana-2", 40.0, 3, shape_of(big["input"]))
    assert (await read(idle, big))["eta_seconds"] == 40.0
    assert (await idle.post(f"/hub/v1/tasks/{big['task_id']}/cancel")).status_code == 200
    small = await submit(idle, at("1K"))
    assert shape_of(small["input"]) != shape_of(big["input"])
    assert (await read(idle, small))["eta_seconds"] == 40.0  # its shape unknown: the model's
    journal(idle_hub, "nano-banana-2", 10.0, 3, shape_of(small["input"]))
    assert (await read(idle, small))["eta_seconds"] == 10.0
    # a third shape: the model's median over both (25), behind one task at 6 a window (900 s)
    other = await submit(idle, at("2K"))
    assert (await read(idle, other))["queue_position"] == 1
    assert (await read(idle, other))["eta_seconds"] == 900 / 6 + 25.0


async def test_another_tenants_single_task_waits_behind_few_of_a_burst(idle, idle_hub):
    burst = [await submit(idle) for _ in range(20)]
    other = {"Authorization": f"Bearer {await other_tenant_key(idle_hub)}"}
    single = await submit(idle, **other)
    assert single["queue_position"] == 1
    assert (await read(idle, burst[-1]))["queue_position"] == 20


async def test_a_running_task_has_progress_below_one_that_never_goes_back():
    provider = ScriptedProvider(delay=1.0)
    hub = memory_hub(provider, poll_seconds=0.05, estimate_default_seconds=0.5)
    async for client in _client(hub):
        task = await submit(client)
        seen = []
        while not (now := await read(client, task))["ready"]:
            if now["status"] == "running":
                assert now["queue_position"] is None
                assert now["eta_seconds"] is not None and now["eta_seconds"] >= 1.0
                seen.append(now["progress"])
            await asyncio.sleep(0.02)  # the worker runs on this loop too
        assert seen, "the task was never seen running"
        assert all(0.0 <= p < 1.0 for p in seen)
        assert seen == sorted(seen)
        assert (now["progress"], now["eta_seconds"], now["queue_position"]) == (None,) * 3


async def events_of(client: httpx.AsyncClient, task: dict) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    kind = ""
    async with client.stream("GET", f"/hub/v1/tasks/{task['task_id']}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    return events


async def test_the_stream_sends_progress_in_order_never_back_then_the_ready_task():
    provider = ScriptedProvider(delay=0.6)
    hub = memory_hub(
        provider, poll_seconds=0.05, progress_seconds=0.05, estimate_default_seconds=0.4
    )
    async for client in _client(hub):
        task = await submit(client)
        events = await events_of(client, task)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "task" and kinds[-1] == "done"
    assert kinds.count("done") == 1
    progress = [data for kind, data in events if kind == "progress"]
    assert progress, kinds
    assert {p["task_id"] for p in progress} == {task["task_id"]}
    assert {p["status"] for p in progress} <= {"queued", "running"}
    assert "running" in {p["status"] for p in progress}
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and all(0.0 <= v < 1.0 for v in values)
    elapsed = [p["elapsed_seconds"] for p in progress]
    assert elapsed == sorted(elapsed)
    statuses = [p["status"] for p in progress]
    assert statuses == sorted(statuses, key=["queued", "running"].index)  # no step back
    done = events[-1][1]
    assert done["ready"] and done["status"] == "succeeded" and done["progress"] is None


async def test_an_admin_sets_a_tenants_priority(idle, idle_hub):
    assert (await idle.get("/hub/v1/admin/tenants/tenant-b")).json() == {
        "tenant_id": "tenant-b",
        "priority": 1.0,
    }
    answer = await idle.patch("/hub/v1/admin/tenants/tenant-b", json={"priority": 3})
    assert answer.status_code == 200
    assert answer.json() == {"tenant_id": "tenant-b", "priority": 3.0}
    assert await idle_hub.store.priority("tenant-b") == 3.0
    # places: tenant-b's at 1/3, 2/3, 1; the admin tenant's at 1, 2 (a tie goes to the older)
    other = {"Authorization": f"Bearer {await other_tenant_key(idle_hub)}"}
    mine = [await submit(idle) for _ in range(2)]
    theirs = [await submit(idle, **other) for _ in range(3)]
    assert [(await read(idle, t))["queue_position"] for t in mine] == [2, 4]
    assert [(await read(idle, t, **other))["queue_position"] for t in theirs] == [0, 1, 3]


@pytest.mark.parametrize("priority", [0, -1, 1001, "high", None])
async def test_a_priority_out_of_range_is_422(idle, priority):
    answer = await idle.patch("/hub/v1/admin/tenants/tenant-b", json={"priority": priority})
    assert answer.status_code == 422


async def test_only_an_admin_reads_or_sets_priorities(idle, idle_hub):
    other = {"Authorization": f"Bearer {await other_tenant_key(idle_hub)}"}
    assert (await idle.get("/hub/v1/admin/tenants/tenant-b", headers=other)).status_code == 403
    answer = await idle.patch("/hub/v1/admin/tenants/tenant-b", json={"priority": 5}, headers=other)
    assert answer.status_code == 403
    assert await idle_hub.store.priority("tenant-b") == 1.0
