"""The OpenAI-compatible image endpoints, driven by the official `openai` package."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image

from imagehub.api import create_app, openai_images
from imagehub.errors import ContentPolicyViolation
from imagehub.hub import Hub
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider, memory_hub, tiny_png
from tests.api.conftest import ADMIN_KEY


@dataclass
class Env:
    hub: Hub
    openai: openai.AsyncOpenAI
    http: httpx.AsyncClient


async def _env(hub: Hub) -> AsyncIterator[Env]:
    app = create_app(hub=hub)
    async with LifespanManager(app) as manager:
        await hub.store.add_key(make_key(name="admin", admin=True, key=ADMIN_KEY)[1])
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://hub.test"
        )
        client = openai.AsyncOpenAI(
            base_url="http://hub.test/v1", api_key=ADMIN_KEY, http_client=http, max_retries=0
        )
        async with http:
            yield Env(hub, client, http)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """The OpenAI SDK against a hub in process, served by the offline demo provider."""
    async for e in _env(memory_hub(None, poll_seconds=0.2)):
        yield e


@pytest.fixture
async def scripted_env(provider: ScriptedProvider) -> AsyncIterator[Env]:
    async for e in _env(memory_hub(provider, poll_seconds=0.2)):
        yield e


def decoded(b64: str | None) -> Image.Image:
    assert b64 is not None
    return Image.open(io.BytesIO(base64.b64decode(b64)))


async def history(env: Env) -> list[dict]:
    response = await env.http.get("/hub/v1/tasks", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    return response.json()["data"]


async def test_generations_answer_b64_json_images_of_the_requested_size(env: Env):
    result = await env.openai.images.generate(
        model="gpt-image-2", prompt="a lighthouse at dusk", size="1536x1024", n=2, quality="low"
    )
    assert result.data is not None and len(result.data) == 2
    image = decoded(result.data[0].b64_json)
    assert image.format == "PNG" and image.size == (1536, 1024)
    assert result.size == "1536x1024" and result.quality == "low"
    assert result.output_format == "png"
    assert result.usage is not None and result.usage.total_tokens == 0
    [task] = await history(env)
    assert task["model"] == "gpt-image-2" and task["status"] == "succeeded"
    assert task["input"]["image_size"] == {"width": 1536, "height": 1024}
    assert task["input"]["num_images"] == 2 and task["input"]["quality"] == "low"


async def test_generations_answer_urls_that_serve_the_image(env: Env):
    result = await env.openai.images.generate(
        model="gpt-image-1", prompt="x", response_format="url", output_format="webp"
    )
    assert result.data is not None
    url = result.data[0].url
    assert url is not None and url.startswith("http://hub.test/hub/v1/files/")
    file = await env.http.get(url)
    assert file.status_code == 200 and file.headers["content-type"] == "image/webp"
    [task] = await history(env)
    assert task["model"] == "gpt-image-2" and task["input"]["image_size"] == "auto"


async def test_a_gemini_model_id_runs_on_nano_banana_with_the_size_mapped(env: Env):
    result = await env.openai.images.generate(
        model="gemini-3.1-flash-image", prompt="wide", size="2752x1536"
    )
    assert result.data is not None
    assert decoded(result.data[0].b64_json).size == (2752, 1536)
    [task] = await history(env)
    assert task["model"] == "nano-banana-2"
    assert task["input"]["aspect_ratio"] == "16:9" and task["input"]["resolution"] == "2K"


async def test_hub_parameters_pass_through_extra_body(env: Env):
    await env.openai.images.generate(
        model="nano-banana-2", prompt="x", extra_body={"aspect_ratio": "4:1", "seed": 7}
    )
    [task] = await history(env)
    assert task["input"]["aspect_ratio"] == "4:1" and task["input"]["seed"] == 7


async def test_edits_take_several_images_and_a_mask(env: Env):
    result = await env.openai.images.edit(
        model="gpt-image-2",
        image=[("a.png", tiny_png(64, 32), "image/png"), ("b.png", tiny_png(32, 32), "image/png")],
        mask=("mask.png", tiny_png(64, 32), "image/png"),
        prompt="combine them",
        size="1024x1024",
    )
    assert result.data is not None
    assert decoded(result.data[0].b64_json).size == (1024, 1024)
    [task] = await history(env)
    assert task["model"] == "gpt-image-2/edit"
    assert len(task["input"]["image_urls"]) == 2 and task["input"]["mask_url"]


async def test_an_edit_with_one_image_on_a_nano_banana_alias_answers_a_url(env: Env):
    result = await env.openai.images.edit(
        model="gemini-2.5-flash-image",
        image=("in.png", tiny_png(120, 60), "image/png"),
        prompt="make it snowy",
        response_format="url",
    )
    assert result.data is not None and result.data[0].url
    [task] = await history(env)
    assert task["model"] == "nano-banana/edit" and task["input"]["aspect_ratio"] == "auto"


async def test_bad_input_is_a_bad_request_error_in_openai_shape(env: Env):
    with pytest.raises(openai.BadRequestError) as caught:
        await env.openai.images.generate(model="gpt-image-2", prompt="x", size="100x100")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error" and error["param"] == "size"
    assert "multiples of 16" in error["message"] and "size" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as caught:
        await env.openai.images.generate(model="dall-e-4", prompt="x")
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        await env.openai.images.generate(model="nano-banana", prompt="x", n=9)
    assert caught.value.param == "n"
    with pytest.raises(openai.BadRequestError) as caught:
        await env.openai.images.generate(prompt="x", extra_body={"colour": "red"})
    assert caught.value.code == "unknown_parameter" and caught.value.param == "colour"
    assert await history(env) == [], "nothing is stored for a bad request"


async def test_an_edit_without_an_image_file_or_with_a_bad_one_is_refused(env: Env):
    with pytest.raises(openai.BadRequestError) as caught:
        await env.openai.images.edit(
            model="nano-banana", image=("x.png", b"not an image", "image/png"), prompt="x"
        )
    assert caught.value.param == "image"
    with pytest.raises(openai.BadRequestError) as caught:
        await env.openai.images.edit(
            model="nano-banana",
            image=("x.png", tiny_png(), "image/png"),
            prompt="x",
            mask=("m.png", tiny_png(), "image/png"),
        )
    assert caught.value.param == "mask"


async def test_a_wrong_key_is_an_authentication_error(env: Env):
    stranger = openai.AsyncOpenAI(
        base_url="http://hub.test/v1", api_key="ih_wrong", http_client=env.http, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        await stranger.images.generate(model="gpt-image-2", prompt="x")
    assert caught.value.code == "invalid_api_key"


async def test_a_failed_task_answers_its_error_and_asks_not_to_retry(
    scripted_env: Env, provider: ScriptedProvider
):
    provider.script = [ContentPolicyViolation("blocked by the scripted provider")]
    with pytest.raises(openai.BadRequestError) as caught:
        await scripted_env.openai.images.generate(model="gpt-image-2", prompt="x")
    assert caught.value.code == "moderation_blocked"
    assert "blocked by the scripted provider" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    [task] = await history(scripted_env)
    assert task["status"] == "failed"
    assert caught.value.response.headers["x-imagehub-task-id"] == task["task_id"]


async def test_the_same_idempotency_key_answers_from_the_same_task(env: Env):
    headers = {"Idempotency-Key": "openai-1"}
    first = await env.openai.images.generate(prompt="x", extra_headers=headers)
    second = await env.openai.images.generate(prompt="x", extra_headers=headers)
    assert first.created == second.created and len(await history(env)) == 1


async def test_a_task_longer_than_one_wait_slice_is_still_answered(
    scripted_env: Env, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(openai_images, "_WAIT_SLICE_SECONDS", 0.05)
    provider.delay = 0.5
    result = await scripted_env.openai.images.generate(model="nano-banana", prompt="slow")
    assert result.data is not None and len(result.data) == 1
