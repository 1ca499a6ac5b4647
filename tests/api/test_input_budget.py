"""Input images cost bounded memory: named twice, decoded once; a task's pixels capped; a
process's decodes in flight capped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from imagehub.hub import Hub
from imagehub.imaging import PixelBudget, pixels
from imagehub.media import MemoryMedia
from imagehub.testing import ScriptedProvider, memory_hub, tiny_png

from .conftest import _client


class CountingMedia(MemoryMedia):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def get(self, file_id: str) -> bytes | None:
        self.reads.append(file_id)
        return await super().get(file_id)


async def test_the_budget_never_holds_more_than_its_limit() -> None:
    budget, peak = PixelBudget(100), 0

    async def decode(size: int) -> None:
        nonlocal peak
        async with budget.hold(size):
            peak = max(peak, budget.used)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(decode(40) for _ in range(10)), decode(500))
    assert peak == 100  # two of 40 fit beside each other; the huge one held it all, alone
    assert budget.used == 0


def test_pixels_reads_the_header_only() -> None:
    assert pixels(tiny_png(30, 20)) == 600
    assert pixels(b"not an image") == 0


@pytest.fixture
async def budget_client(provider: ScriptedProvider) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    hub = memory_hub(provider, retry_base_seconds=0.01, max_task_input_pixels=1000)
    hub.media = CountingMedia()
    assert hub.worker is not None
    hub.worker.media = hub.media
    hub.fetcher.media = hub.media
    async for client in _client(hub):
        yield hub, client


async def _upload(client: httpx.AsyncClient, png: bytes) -> str:
    response = await client.post("/hub/v1/files", content=png)
    assert response.status_code == 201, response.text
    return str(response.json()["url"])


async def test_an_image_named_sixteen_times_is_read_and_decoded_once(
    budget_client: tuple[Hub, httpx.AsyncClient], provider: ScriptedProvider
) -> None:
    hub, client = budget_client
    url = await _upload(client, tiny_png(20, 20))
    assert isinstance(hub.media, CountingMedia)
    hub.media.reads.clear()
    body = {"model": "gpt-image-2/edit", "input": {"prompt": "x", "image_urls": [url] * 16}}
    created = await client.post("/hub/v1/tasks", json=body, headers={"Prefer": "wait=10"})
    assert created.json()["status"] == "succeeded", created.text
    assert len(hub.media.reads) == 1
    assert len(provider.requests[-1].images) == 16


async def test_a_task_whose_inputs_decode_to_too_many_pixels_fails_before_decoding(
    budget_client: tuple[Hub, httpx.AsyncClient], provider: ScriptedProvider
) -> None:
    _, client = budget_client
    urls = [await _upload(client, tiny_png(20, 20, (i, 0, 0))) for i in range(3)]
    body = {"model": "gpt-image-2/edit", "input": {"prompt": "x", "image_urls": urls}}
    task = (await client.post("/hub/v1/tasks", json=body, headers={"Prefer": "wait=10"})).json()
    assert task["status"] == "failed"
    assert task["error"]["code"] == "invalid_input_image"
    assert "1,200 pixels together; the limit is 1,000" in task["error"]["message"]
    assert provider.requests == []
