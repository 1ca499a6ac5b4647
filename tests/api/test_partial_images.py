"""Partial images at the API: the submit option, the `partial_image` events of /events, and
OpenAI's own stream events on /v1/images/*, read by the official `openai` package.

The hub runs the real OpenAI provider against a strict loopback fake of OpenAI's event stream.
(tests/acceptance/test_partial_images.py does the same against `imagehub serve`, live.)
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from asgi_lifespan import LifespanManager

from imagehub.api import create_app
from imagehub.hub import Hub
from imagehub.tenancy.keys import make_key
from imagehub.testing import memory_hub
from tests.api.conftest import ADMIN_KEY
from tests.providers.conftest import hub_for, provider_settings
from tests.providers.fake_upstream import FakeUpstream
from tests.providers.golden import PHOTO
from tests.providers.wire import OpenAIStreaming


@dataclass
class Env:
    hub: Hub
    http: httpx.AsyncClient
    openai: openai.AsyncOpenAI
    upstream: FakeUpstream
    fake: OpenAIStreaming


async def _env(hub: Hub, upstream: FakeUpstream, fake: OpenAIStreaming) -> AsyncIterator[Env]:
    app = create_app(hub=hub)
    async with LifespanManager(app) as manager:
        await hub.store.add_key(make_key(name="admin", admin=True, key=ADMIN_KEY)[1])
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://hub.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        )
        client = openai.AsyncOpenAI(
            base_url="http://hub.test/v1", api_key=ADMIN_KEY, http_client=http, max_retries=0
        )
        async with http:
            yield Env(hub, http, client, upstream, fake)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """The hub with an OpenAI route to the streaming fake."""
    fake = OpenAIStreaming()
    upstream = await FakeUpstream(fake).start()
    try:
        hub = hub_for(**provider_settings("openai", upstream, "/v1"), poll_seconds=0.2)
        async for e in _env(hub, upstream, fake):
            yield e
    finally:
        await upstream.close()


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a server-sent event stream."""
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        found.append((fields["event"], json.loads(fields["data"])))
    return found


async def test_the_event_stream_announces_each_partial_image_before_the_ready_task(env: Env):
    response = await env.http.post(
        "/hub/v1/tasks",
        json={"model": "gpt-image-2", "input": {"prompt": "a harbour"}, "partial_images": 2},
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    assert response.json()["partial_images"] == 2

    async with env.http.stream("GET", f"/hub/v1/tasks/{task_id}/events") as stream:
        text = "".join([chunk async for chunk in stream.aiter_text()])
    found = events(text)
    kinds = [kind for kind, _ in found]
    assert kinds[-1] == "done" and kinds.count("partial_image") == 2
    partials = [data for kind, data in found if kind == "partial_image"]
    assert [p["index"] for p in partials] == [0, 1]
    assert kinds.index("partial_image") > 0  # after the first task frame
    assert all(kinds.index("done") > i for i, k in enumerate(kinds) if k == "partial_image")
    for partial, drawn in zip(partials, env.fake.partials, strict=False):
        assert partial["task_id"] == task_id
        assert (partial["width"], partial["height"]) == (1024, 1024)
        got = await env.http.get(partial["url"])
        assert got.status_code == 200 and got.content == drawn

    done = found[-1][1]
    assert done["status"] == "succeeded"
    assert [p["url"] for p in done["partials"]] == [p["url"] for p in partials]


@pytest.mark.parametrize("count", [-1, 4, "2", True])
async def test_a_partial_images_out_of_range_is_a_422(env: Env, count):
    body = {"model": "gpt-image-2", "input": {"prompt": "p"}, "partial_images": count}
    response = await env.http.post("/hub/v1/tasks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"][-1] == "partial_images"
    assert not env.upstream.seen


async def test_a_model_no_route_streams_for_is_a_422_naming_the_option(env: Env):
    hub = memory_hub(None, poll_seconds=0.2)  # the offline demo serves every model
    async for demo in _env(hub, env.upstream, env.fake):
        body = {"model": "nano-banana-2", "input": {"prompt": "p"}, "partial_images": 1}
        response = await demo.http.post("/hub/v1/tasks", json=body)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["details"][0]["loc"] == ["partial_images"]
        assert error["details"][0]["type"] == "unsupported_by_routes"
        assert "no configured route for nano-banana-2 supports partial_images" in error["message"]


# -- OpenAI's own stream, through the official package


def png_of(b64_json: str) -> bytes:
    return base64.b64decode(b64_json)


async def test_openai_package_streams_a_generation_with_partial_images(env: Env):
    stream = await env.openai.images.generate(
        model="gpt-image-2", prompt="a harbour", stream=True, partial_images=2, quality="low"
    )
    got = [event async for event in stream]
    assert [e.type for e in got] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    first, second, completed = got
    assert isinstance(first, openai.types.ImageGenPartialImageEvent)
    assert [first.partial_image_index, second.partial_image_index] == [0, 1]
    assert [png_of(first.b64_json), png_of(second.b64_json)] == env.fake.partials[:2]
    assert isinstance(completed, openai.types.ImageGenCompletedEvent)
    assert png_of(completed.b64_json) == env.fake.final
    assert (completed.size, completed.quality, completed.output_format) == (
        "1024x1024",
        "low",
        "png",
    )
    assert (completed.usage.input_tokens, completed.usage.output_tokens) == (50, 4160)
    assert completed.usage.total_tokens == 4210
    (request,) = env.upstream.seen
    assert (request.json()["stream"], request.json()["partial_images"]) == (True, 2)


async def test_openai_package_streams_an_edit(env: Env):
    stream = await env.openai.images.edit(
        model="gpt-image-2",
        image=("photo.png", io.BytesIO(PHOTO), "image/png"),
        prompt="add a moon",
        stream=True,
        partial_images=1,
    )
    got = [event async for event in stream]
    assert [e.type for e in got] == ["image_edit.partial_image", "image_edit.completed"]
    assert png_of(got[1].b64_json) == env.fake.final


async def test_a_stream_without_partial_images_is_one_completed_event(env: Env):
    stream = await env.openai.images.generate(model="gpt-image-2", prompt="p", stream=True)
    got = [event async for event in stream]
    assert [e.type for e in got] == ["image_generation.completed"]
    (request,) = env.upstream.seen
    assert "stream" not in request.json()  # nothing to stream from the upstream


async def test_partial_images_where_no_route_streams_is_a_bad_request(env: Env):
    hub = memory_hub(None, poll_seconds=0.2)
    async for demo in _env(hub, env.upstream, env.fake):
        with pytest.raises(openai.BadRequestError) as caught:
            await demo.openai.images.generate(
                model="gemini-2.5-flash-image", prompt="p", stream=True, partial_images=2
            )
        assert caught.value.body["param"] == "partial_images"  # type: ignore[index]
        assert "supports partial_images" in caught.value.body["message"]  # type: ignore[index]


async def test_partial_images_without_stream_is_a_bad_request(env: Env):
    with pytest.raises(openai.BadRequestError) as caught:
        await env.openai.images.generate(model="gpt-image-2", prompt="p", partial_images=2)
    assert "needs stream: true" in str(caught.value)
    assert not env.upstream.seen


async def test_a_task_that_fails_ends_the_stream_with_an_error_event(env: Env):
    env.fake.cut_inside, env.fake.cuts = 0, 100  # every attempt breaks
    stream = await env.openai.images.generate(
        model="gpt-image-2", prompt="p", stream=True, partial_images=1
    )
    with pytest.raises(openai.APIError) as caught:
        async for _ in stream:
            pass
    assert "cut" in caught.value.message
