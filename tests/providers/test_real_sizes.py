"""Real image sizes from a real HTTP upstream: a 2.4 MB PNG and 4K images.

What the hub hands back must be exactly the bytes the upstream sent, decoded once and never
re-encoded when the format already matches: these tests assert on what the code did (the image
worker's calls, a spy on the encoders), never on timings.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator
from io import BytesIO
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image

from imagehub import imaging
from imagehub.api import create_app
from imagehub.hub import Hub
from imagehub.providers.http import Answer, UpstreamHTTP
from imagehub.tenancy.keys import make_key
from tests.providers.conftest import TENANT, hub_for, provider_settings, run_task
from tests.providers.fake_upstream import FakeUpstream, Reply, Seen
from tests.providers.wire import g_answer, g_image, g_text, o_answer

ADMIN_KEY = "ih_test_real_sizes"


def _noisy(size: tuple[int, int], fmt: str, grain: int, seed: int) -> bytes:
    """A photo-like image that does not compress away: a gradient under seeded noise."""
    rng = random.Random(seed)
    width, height = size
    noise = Image.frombytes("L", size, rng.randbytes(width * height)).point(
        lambda v: v * grain // 255
    )
    base = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", (base, noise, Image.blend(base, noise, 0.5)))
    buffer = BytesIO()
    image.save(buffer, fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 92}))
    return buffer.getvalue()


#: about 2.4 MB: a 1024x1536 PNG from GPT Image at high quality
PNG_2_4MB = _noisy((1024, 1536), "PNG", 100, 1)
#: 4K (3840x2160, GPT Image 2's largest), as a PNG and as a JPEG
PNG_4K = _noisy((3840, 2160), "PNG", 40, 2)
JPEG_4K = _noisy((3840, 2160), "JPEG", 120, 3)


def test_the_payloads_are_real_sizes():
    assert 2_300_000 <= len(PNG_2_4MB) <= 2_600_000
    assert imaging.header(PNG_4K) == (3840, 2160, "image/png") and len(PNG_4K) > 8_000_000
    assert imaging.header(JPEG_4K) == (3840, 2160, "image/jpeg") and len(JPEG_4K) > 2_000_000


def _answering(image: bytes) -> Any:
    def handler(seen: Seen) -> Reply:
        return Reply(200, o_answer([image] * int(seen.json().get("n", 1))))

    return handler


@pytest.fixture
def no_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any base64 or image encoding in this process fails the test (the worker processes
    are watched through the hub's `work.calls`)."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("re-encoded an image that was already in the right format")

    monkeypatch.setattr(imaging, "encode", forbidden)
    monkeypatch.setattr(imaging, "b64", forbidden)
    monkeypatch.setattr(imaging, "data_uri", forbidden)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the upstream bodies the JSON parser was given."""
    sizes: list[int] = []
    real = UpstreamHTTP.json

    def spy(self: UpstreamHTTP, response: Answer) -> dict[str, Any]:
        sizes.append(len(response.content))
        return real(self, response)

    monkeypatch.setattr(UpstreamHTTP, "json", spy)
    return sizes


@pytest.mark.parametrize("image", [PNG_2_4MB, PNG_4K], ids=["2.4MB", "4K"])
async def test_a_png_is_stored_as_the_upstream_sent_it(
    upstream, make_hub, no_encoding, parsed, image
):
    upstream.handler = _answering(image)
    hub = await make_hub(**provider_settings("openai", upstream, "/v1"))
    task = await run_task(hub, "gpt-image-2", {"prompt": "big", "output_format": "png"})
    assert task.status == "succeeded", task.error
    [output] = task.output.images
    assert await hub.file(output.file_id) == image
    assert (output.width, output.height, output.file_size) == (
        *imaging.header(image)[:2],
        len(image),
    )
    assert not hub.work.calls  # no transcode, no decode: nothing went to the image workers
    # the base64 was decoded from the bytes read: the JSON parser never saw the megabytes
    assert parsed and max(parsed) < 10_000


@pytest.mark.parametrize("image", [PNG_2_4MB, PNG_4K], ids=["2.4MB", "4K"])
async def test_sync_mode_hands_back_the_upstreams_own_base64(
    upstream, make_hub, no_encoding, image
):
    upstream.handler = _answering(image)
    hub = await make_hub(**provider_settings("openai", upstream, "/v1"))
    task = await run_task(hub, "gpt-image-2", {"prompt": "big", "sync_mode": True})
    assert task.status == "succeeded", task.error
    [output] = task.output.images
    sent = upstream.seen[0]
    assert sent.path == "/v1/images/generations"
    assert output.data_uri == "data:image/png;base64," + base64.b64encode(image).decode()
    assert output.file_id is None and not hub.work.calls


@pytest.mark.timeout(60)  # a 4K PNG encode, and a worker process started, on a loaded machine
async def test_a_4k_jpeg_asked_as_png_is_transcoded_once_in_a_worker_process(upstream, make_hub):
    upstream.handler = _answering(JPEG_4K)
    hub = await make_hub(**provider_settings("openai", upstream, "/v1"))
    task = await run_task(hub, "gpt-image-2", {"prompt": "big", "output_format": "png"})
    assert task.status == "succeeded", task.error
    [output] = task.output.images
    stored = await hub.file(output.file_id)
    assert imaging.header(stored) == (3840, 2160, "image/png")
    assert hub.work.calls == {"transcoded": 1}
    assert hub.work.pids and import_pid() not in hub.work.pids


def import_pid() -> int:
    import os

    return os.getpid()


async def test_the_upstreams_base64_is_kept_only_for_a_waiter_here(upstream, make_hub, monkeypatch):
    """A finished task's wake-up carries the upstream's base64 only when someone in this
    process waits for it: otherwise the upstream's answer is not held a moment longer."""
    upstream.handler = _answering(PNG_2_4MB)
    hub = await make_hub(**provider_settings("openai", upstream, "/v1"))
    carried: list[dict[str, bytes]] = []
    finished = asyncio.Event()
    real = hub.notifier.task_finished

    def spy(task: Any, base64: Any = None) -> None:
        carried.append({file_id: bytes(text) for file_id, text in (base64 or {}).items()})
        real(task, *([base64] if base64 is not None else []))
        finished.set()

    monkeypatch.setattr(hub.notifier, "task_finished", spy)
    await hub.submit(TENANT, "gpt-image-2", {"prompt": "nobody waits"})
    await asyncio.wait_for(finished.wait(), 30)
    waited = await run_task(hub, "gpt-image-2", {"prompt": "a waiter"})
    [image] = waited.output.images
    assert carried == [{}, {image.file_id: base64.b64encode(PNG_2_4MB)}]


# ---------------------------------------------------------------- through the HTTP API


@pytest.fixture
async def api(upstream: FakeUpstream) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    upstream.handler = _answering(PNG_4K)
    hub = hub_for(**provider_settings("openai", upstream, "/v1"))  # the app's lifespan starts it
    app = create_app(hub=hub)
    async with LifespanManager(app) as manager:
        await hub.store.add_key(make_key(TENANT, name="admin", admin=True, key=ADMIN_KEY)[1])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://hub.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=60,
        ) as client:
            yield hub, client


async def test_b64_json_answers_splice_the_upstreams_own_base64(api, no_encoding, monkeypatch):
    """The task finished in this process while the answer waited: the upstream's base64 is
    sent as it came, neither the files read back nor anything encoded."""
    hub, client = api
    encoded: list[int] = []
    monkeypatch.setattr(imaging, "b64_bytes", lambda data: encoded.append(len(data)) or b"")
    response = await client.post(
        "/v1/images/generations",
        json={"model": "gpt-image-2", "prompt": "big", "n": 2, "response_format": "b64_json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = orjson.loads(response.content)
    assert [base64.b64decode(d["b64_json"]) for d in body["data"]] == [PNG_4K, PNG_4K]
    assert body["size"] == "3840x2160" and body["output_format"] == "png"
    assert encoded == [] and not hub.work.calls


async def test_a_replayed_b64_json_answer_encodes_the_stored_files(
    api, upstream, no_encoding, monkeypatch
):
    """No upstream answer at hand (the task finished before this request): the stored files
    are read and encoded, once per image."""
    _, client = api
    encoded: list[int] = []
    real = imaging.b64_bytes

    def counting(data: bytes) -> bytes:
        encoded.append(len(data))
        return real(data)

    monkeypatch.setattr(imaging, "b64_bytes", counting)
    request = {"model": "gpt-image-2", "prompt": "big", "n": 2, "response_format": "b64_json"}
    first = await client.post(
        "/v1/images/generations", json=request, headers={"Idempotency-Key": "k1"}
    )
    assert first.status_code == 200 and encoded == []
    again = await client.post(
        "/v1/images/generations", json=request, headers={"Idempotency-Key": "k1"}
    )
    assert again.status_code == 200, again.text
    assert again.headers["x-imagehub-task-id"] == first.headers["x-imagehub-task-id"]
    assert again.content == first.content
    assert encoded == [len(PNG_4K), len(PNG_4K)]
    assert len(upstream.seen) == 1


async def test_native_sync_mode_answer_carries_the_upstreams_base64(api, no_encoding):
    hub, client = api
    response = await client.post(
        "/hub/v1/tasks",
        json={"model": "gpt-image-2", "input": {"prompt": "big", "sync_mode": True}},
        headers={"Prefer": "wait=60"},
    )
    assert response.status_code == 200, response.text
    [image] = orjson.loads(response.content)["output"]["images"]
    assert image["url"] == "data:image/png;base64," + base64.b64encode(PNG_4K).decode()
    assert not hub.work.calls


async def test_base64_with_escaped_slashes_is_read_too(upstream, make_hub):
    """JSON allows "\\/" for "/" (some encoders write it): such a string is parsed, not cut."""
    escaped = base64.b64encode(PNG_2_4MB).replace(b"/", b"\\/")
    assert b"\\/" in escaped
    body = b'{"created": 1, "data": [{"b64_json": "' + escaped + b'"}], "usage": {}}'
    upstream.handler = lambda seen: Reply(200, body, {"Content-Type": "application/json"})
    hub = await make_hub(**provider_settings("openai", upstream, "/v1"))
    task = await run_task(hub, "gpt-image-2", {"prompt": "big"})
    assert task.status == "succeeded", task.error
    assert await hub.file(task.output.images[0].file_id) == PNG_2_4MB


async def test_a_gemini_answer_at_real_size_is_stored_as_sent(upstream, make_hub, no_encoding):
    draft = _noisy((1024, 1536), "PNG", 100, 9)  # a thought image: read past, never kept
    answer = g_answer(g_image(draft, thought=True), g_text("Here it is."), g_image(PNG_2_4MB))
    upstream.handler = lambda seen: Reply(200, answer)
    hub = await make_hub(**provider_settings("gemini", upstream, "/v1beta"))
    task = await run_task(hub, "nano-banana-2", {"prompt": "big", "output_format": "png"})
    assert task.status == "succeeded", task.error
    [output] = task.output.images
    assert await hub.file(output.file_id) == PNG_2_4MB
    assert task.output.description == "Here it is." and not hub.work.calls
