"""The SDK's `on_progress`: called while a task is queued or running, progress never back."""

from __future__ import annotations

import asyncio

import httpx

from imagehub.client import Client, TaskOut
from imagehub.testing import ScriptedProvider, memory_hub
from tests.sdk.conftest import _in_process
from tests.sdk.test_client_unit import TASK, scripted


def answer(**fields: object) -> httpx.Response:
    return httpx.Response(200, json={**TASK, **fields})


def test_sync_wait_calls_on_progress_on_each_read_until_ready_never_going_back():
    transport, seen = scripted(
        answer(queue_position=2, eta_seconds=30.0, progress=0.0),
        answer(queue_position=0, eta_seconds=10.0, progress=0.0),
        answer(status="running", eta_seconds=6.0, progress=0.4),
        # a revised estimate (another process, a newer reading of the journal)
        answer(status="running", eta_seconds=7.0, progress=0.3),
        answer(status="succeeded", ready=True),
    )
    calls: list[TaskOut] = []
    with Client("http://hub.test", "k", transport=transport) as client:
        done = client.wait("tsk_1", on_progress=calls.append)
    assert done.status == "succeeded"
    assert [(t.status, t.queue_position, t.progress) for t in calls] == [
        ("queued", 2, 0.0),
        ("queued", 0, 0.0),
        ("running", None, 0.4),
        ("running", None, 0.4),
    ]
    # each long-poll is short enough for a steady rate of calls
    assert all(float(r.url.params["wait"]) <= 1.0 for r in seen)


def test_sync_wait_without_on_progress_long_polls_as_before():
    transport, seen = scripted(answer(), answer(status="succeeded", ready=True))
    with Client("http://hub.test", "k", transport=transport) as client:
        client.wait("tsk_1", timeout=30)
    assert float(seen[0].url.params["wait"]) > 1.0


async def test_async_generate_and_wait_call_sync_and_async_callbacks():
    provider = ScriptedProvider(delay=1.5)
    hub = memory_hub(provider, poll_seconds=0.05, estimate_default_seconds=1.0)
    async for env in _in_process(hub):
        plain: list[TaskOut] = []
        task = await env.client.generate("nano-banana", prompt="a fox", on_progress=plain.append)
        assert task.status == "succeeded"
        assert plain and {t.status for t in plain} <= {"queued", "running"}
        values = [t.progress for t in plain if t.progress is not None]
        assert values == sorted(values) and all(0 <= v < 1 for v in values)

        awaited: list[TaskOut] = []

        async def record(task: TaskOut, into: list[TaskOut] = awaited) -> None:
            await asyncio.sleep(0)
            into.append(task)

        submitted = await env.client.submit("nano-banana", prompt="a hare")
        done = await env.client.wait(submitted.task_id, on_progress=record)
        assert done.ready and awaited
        assert all(t.task_id == submitted.task_id and not t.ready for t in awaited)
