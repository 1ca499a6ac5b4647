"""An API-only hub and a worker-only hub on one PostgreSQL database, as two processes would be.

Both poll the store only every 30 s, longer than any wait below: a waiter that returns the
ready task, or a stream that ends, was woken by the other hub's hint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from imagehub.api import create_app
from imagehub.routing import Router
from imagehub.settings import Settings
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider
from imagehub.wiring import build_hub

KEY = "ih_scaleout"
BODY = {"model": "nano-banana", "input": {"prompt": "a harbour"}}


@pytest.fixture(params=["postgres", "redis"])
async def api(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API hub; a worker hub runs beside it on the same database."""
    settings = Settings(
        database_url=postgres_url,
        redis_url=request.getfixturevalue("redis_url") if request.param == "redis" else None,
        wakeup_channel=f"imagehub_{Path(tmp_path).name.lower()[-20:].replace('-', '_')}",
        data_dir=tmp_path,
        poll_seconds=30,
        database_pool_size=3,
        fetch_allow_private="127.0.0.1",  # the webhook receiver
    )
    router = Router({}, fallback=ScriptedProvider(delay=0.05))
    api_hub = build_hub(settings, run_worker=False, router=router)
    worker_hub = build_hub(settings, router=router)
    assert api_hub.worker is None and worker_hub.worker is not None
    await worker_hub.start()
    try:
        async with LifespanManager(create_app(hub=api_hub)) as manager:
            await api_hub.store.add_key(make_key(name="admin", admin=True, key=KEY)[1])
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app),
                base_url="http://hub.test",
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=20,
            ) as client:
                yield client
    finally:
        await worker_hub.stop()


async def test_a_long_poll_wakes_on_the_worker_process_finishing(api: httpx.AsyncClient):
    created = (await api.post("/hub/v1/tasks", json=BODY)).json()
    task = (await api.get(f"/hub/v1/tasks/{created['task_id']}", params={"wait": 20})).json()
    assert task["ready"] and task["status"] == "succeeded"
    assert len(task["output"]["images"]) == 1


async def test_prefer_wait_answers_with_the_ready_task(api: httpx.AsyncClient):
    answer = await api.post("/hub/v1/tasks", json=BODY, headers={"Prefer": "wait=20"})
    assert answer.status_code == 200
    assert answer.json()["status"] == "succeeded"
    image = answer.json()["output"]["images"][0]
    assert (await api.get(image["url"])).status_code == 200, "the API reads the worker's media"


async def test_the_event_stream_follows_a_task_run_by_the_worker_process(api: httpx.AsyncClient):
    created = (await api.post("/hub/v1/tasks", json=BODY)).json()
    events: list[tuple[str, dict]] = []
    # the in-process transport has no read timeout: bound the stream here, below the poll
    async with (
        asyncio.timeout(20),
        api.stream("GET", f"/hub/v1/tasks/{created['task_id']}/events") as stream,
    ):
        name = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    assert events[-1][0] == "done" and events[-1][1]["status"] == "succeeded"
    assert events[0][1]["status"] in ("queued", "running")


async def test_nul_characters_never_reach_postgresql(api: httpx.AsyncClient):
    """PostgreSQL refuses NUL in text: such ids and parameters are answered before the store."""
    for method, path in [
        ("GET", "/hub/v1/tasks/tsk%00x"),
        ("POST", "/hub/v1/tasks/tsk%00x/cancel"),
        ("GET", "/hub/v1/tasks/tsk%00x/events"),
        ("GET", "/hub/v1/tasks/tsk%00x/webhook"),
        ("GET", "/hub/v1/admin/keys/key%00"),
    ]:
        assert (await api.request(method, path)).status_code == 404, path
    for path in ("/hub/v1/tasks?model=a%00", "/hub/v1/admin/keys?tenant_id=%00"):
        assert (await api.get(path)).status_code == 422, path
    named = await api.post("/hub/v1/admin/keys", json={"tenant_id": "acme", "name": "a\u0000"})
    assert named.status_code == 422
    hooked = await api.post("/hub/v1/tasks", json={**BODY, "webhook_url": "https://a\u0000b/"})
    assert hooked.status_code == 422


async def test_the_worker_process_sends_the_webhook(api: httpx.AsyncClient, receiver):
    from standardwebhooks.webhooks import Webhook

    secret = (await api.get("/hub/v1/webhooks/secret")).json()["secret"]
    task = (await api.post("/hub/v1/tasks", json={**BODY, "webhook_url": receiver.url})).json()
    for _ in range(200):
        delivery = (await api.get(f"/hub/v1/tasks/{task['task_id']}/webhook")).json()
        if delivery["state"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert delivery["state"] == "succeeded"
    [got] = receiver.received
    assert Webhook(secret).verify(got.body, got.headers)["task_id"] == task["task_id"]
