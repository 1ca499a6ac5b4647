"""Partial images across processes: a worker-only hub stores them, an API-only hub on the same
PostgreSQL database announces them. Both poll the store only every 30 s, longer than any wait
below: the API hub saw each partial image because the worker's hint (PostgreSQL NOTIFY, or
Redis) woke it, and the partial images are recorded on the task row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imagehub.hub import Hub
from imagehub.settings import Settings
from imagehub.tasks import Task
from imagehub.wiring import build_hub
from tests.providers.conftest import KEYS
from tests.providers.fake_upstream import FakeUpstream
from tests.providers.wire import OpenAIStreaming

TENANT = "tenant-a"


@pytest.fixture(params=["postgres", "redis"])
async def hubs(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> AsyncIterator[tuple[Hub, OpenAIStreaming]]:
    fake = OpenAIStreaming(gate=asyncio.Event())
    upstream = await FakeUpstream(fake).start()
    settings = Settings(
        database_url=postgres_url,
        redis_url=request.getfixturevalue("redis_url") if request.param == "redis" else None,
        wakeup_channel=f"imagehub_{Path(tmp_path).name.lower()[-20:].replace('-', '_')}",
        data_dir=tmp_path,
        poll_seconds=30,
        database_pool_size=3,
        demo=False,
        openai_api_key=KEYS["openai"],
        openai_base_url=upstream.url + "/v1",
    )
    api_hub = build_hub(settings, run_worker=False)
    worker_hub = build_hub(settings)
    await worker_hub.start()
    await api_hub.start()
    try:
        yield api_hub, fake
    finally:
        await api_hub.stop()
        await worker_hub.stop()
        await upstream.close()


async def _until_partials(hub: Hub, task_id: str, count: int) -> Task:
    async for task in hub.events(TENANT, task_id):
        if len(task.partials) >= count:
            return task
    raise AssertionError("the task finished before its partial images were seen")


async def test_the_api_process_sees_the_worker_process_partial_images(hubs):
    api, fake = hubs
    task, _ = await api.submit(TENANT, "gpt-image-2", {"prompt": "a harbour"}, partial_images=2)
    seen = await asyncio.wait_for(_until_partials(api, task.id, 2), 20)
    assert seen.status == "running"  # the worker's upstream still holds the image
    for partial, drawn in zip(seen.partials, fake.partials, strict=False):
        assert await api.file(partial.file_id) == drawn
    assert fake.gate is not None
    fake.gate.set()
    done = await api.wait(TENANT, task.id, 20)
    assert done.status == "succeeded" and done.partials == seen.partials
