"""Partial images: gpt-image-2 on an OpenAI route streams partial images (`stream: true`,
`partial_images`), each stored and recorded on the task as it arrives; routes that cannot
stream refuse the submit. The upstream is a strict loopback fake of OpenAI's event stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from imagehub.catalog import Catalog, Validator
from imagehub.errors import InvalidInput
from imagehub.hub import Hub
from imagehub.routing.config import RoutesConfigError, build_router
from imagehub.settings import Settings
from imagehub.tasks import Task
from tests.providers.conftest import TENANT, provider_settings
from tests.providers.fake_upstream import FakeUpstream
from tests.providers.golden import PHOTO
from tests.providers.wire import OpenAIStreaming, data_uri, noise_png

CATALOG = Catalog.load()
KEY = SecretStr("k")


@pytest.fixture
async def streaming(upstream) -> OpenAIStreaming:
    fake = OpenAIStreaming()
    upstream.handler = fake
    return fake


@pytest.fixture
async def openai_hub(upstream, streaming, make_hub) -> Hub:
    return await make_hub(**provider_settings("openai", upstream, "/v1"))


async def until(hub: Hub, task_id: str, seen) -> Task:
    """The task from its event stream, at the first change where `seen(task)` holds."""
    async for task in hub.events(TENANT, task_id):
        if seen(task):
            return task
    raise AssertionError("the task finished first")


async def test_partial_images_are_stored_and_recorded_while_the_image_is_drawn(
    upstream, streaming, openai_hub
):
    streaming.gate = asyncio.Event()  # the upstream holds the final image until the test says
    task, _ = await openai_hub.submit(
        TENANT, "gpt-image-2", {"prompt": "a harbour", "quality": "low"}, partial_images=2
    )
    assert task.partial_images == 2

    running = await asyncio.wait_for(until(openai_hub, task.id, lambda t: len(t.partials) == 2), 30)
    assert running.status == "running"  # the partial images are there before the image
    assert [p.index for p in running.partials] == [0, 1]
    for partial, drawn in zip(running.partials, streaming.partials, strict=False):
        assert await openai_hub.file(partial.file_id) == drawn
        assert (partial.content_type, partial.width, partial.height) == ("image/png", 1024, 1024)

    (request,) = upstream.seen
    assert request.path == "/v1/images/generations"
    assert request.headers["accept"] == "text/event-stream"
    assert request.json() == {
        "model": "gpt-image-2",
        "prompt": "a harbour",
        "n": 1,
        "size": "1024x768",  # the catalog's default landscape_4_3 preset
        "quality": "low",
        "output_format": "png",
        "stream": True,
        "partial_images": 2,
    }

    streaming.gate.set()
    done = await openai_hub.wait(TENANT, task.id, 30)
    assert done.status == "succeeded", done.error
    (image,) = done.output.images
    assert await openai_hub.file(image.file_id or "") == streaming.final
    assert (image.width, image.height) == (1024, 1024)
    assert (done.usage.input_tokens, done.usage.output_tokens) == (50, 4160)
    assert done.partials == running.partials  # a succeeded task keeps its partial images


async def test_an_edit_streams_with_form_fields(upstream, streaming, openai_hub):
    input = {"prompt": "add a moon", "image_urls": [data_uri(PHOTO)]}
    task, _ = await openai_hub.submit(TENANT, "gpt-image-2/edit", input, partial_images=3)
    done = await openai_hub.wait(TENANT, task.id, 30)
    assert done.status == "succeeded", done.error
    assert [p.index for p in done.partials] == [0, 1, 2]
    (request,) = upstream.seen
    assert request.path == "/v1/images/edits"
    fields = {name: value.decode() for name, filename, _, value in request.form() if not filename}
    assert (fields["stream"], fields["partial_images"]) == ("true", "3")


async def test_without_partial_images_nothing_is_streamed(upstream, streaming, openai_hub):
    task, _ = await openai_hub.submit(TENANT, "gpt-image-2", {"prompt": "a harbour"})
    done = await openai_hub.wait(TENANT, task.id, 30)
    assert done.status == "succeeded", done.error
    assert done.partials == ()
    (request,) = upstream.seen
    assert "stream" not in request.json() and "partial_images" not in request.json()


async def test_a_stream_cut_mid_way_is_retried_from_scratch(upstream, streaming, openai_hub):
    streaming.cut_inside = 1  # the first attempt breaks inside its second partial image
    task, _ = await openai_hub.submit(TENANT, "gpt-image-2", {"prompt": "p"}, partial_images=2)
    done = await openai_hub.wait(TENANT, task.id, 30)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and len(upstream.seen) == 2
    # only the succeeded attempt's partial images: the broken one's were dropped, files and all
    assert [p.index for p in done.partials] == [0, 1]
    media = openai_hub.media.files  # type: ignore[attr-defined]
    assert set(media) == {p.file_id for p in done.partials} | {done.output.images[0].file_id}


async def test_a_stream_that_always_breaks_fails_cleanly(upstream, streaming, openai_hub):
    streaming.cut_inside, streaming.cuts = 2, 100  # after both partial images, inside the image
    task, _ = await openai_hub.submit(TENANT, "gpt-image-2", {"prompt": "p"}, partial_images=2)
    done = await openai_hub.wait(TENANT, task.id, 30)
    assert done.status == "failed"
    assert done.error.code == "upstream_unavailable"
    assert "cut" in done.error.message
    assert done.attempts == done.max_attempts == len(upstream.seen)
    assert done.output is None and done.partials == ()
    assert openai_hub.media.files == {}  # type: ignore[attr-defined]


async def test_a_route_taking_over_mid_attempt_draws_its_own_partial_images(
    tmp_path, upstream, streaming, make_hub
):
    streaming.cut_inside, streaming.cuts = 1, 100  # the first route breaks after one partial
    backup_fake = OpenAIStreaming(partials=[noise_png(1024, 1024, seed) for seed in (5, 6)])
    backup = await FakeUpstream(backup_fake).start()
    try:
        routes = tmp_path / "routes.toml"
        routes.write_text(
            "".join(
                f'[[routes]]\nname = "{name}"\nprovider = "openai"\napi_key = "k"\n'
                f'base_url = "{url}/v1"\npriority = {priority}\n\n'
                for name, url, priority in (("first", upstream.url, 1), ("second", backup.url, 2))
            )
        )
        hub = await make_hub(routes)
        task, _ = await hub.submit(TENANT, "gpt-image-2", {"prompt": "p"}, partial_images=2)
        done = await hub.wait(TENANT, task.id, 30)
    finally:
        await backup.close()
    assert done.status == "succeeded", done.error
    assert (done.attempts, done.provider) == (1, "second")  # a failover, not a retry
    assert len(upstream.seen) == len(backup.seen) == 1
    # the second route's partial images only; the first route's was deleted
    assert [await hub.file(p.file_id) for p in done.partials] == backup_fake.partials
    media = hub.media.files  # type: ignore[attr-defined]
    assert set(media) == {p.file_id for p in done.partials} | {done.output.images[0].file_id}


async def test_a_look_alike_that_does_not_stream_fails_the_task(upstream, streaming, openai_hub):
    from tests.providers.fake_upstream import Reply
    from tests.providers.wire import o_answer

    streaming.failures = [Reply(200, o_answer([noise_png(1024, 1024, 4)]))]
    task, _ = await openai_hub.submit(TENANT, "gpt-image-2", {"prompt": "p"}, partial_images=1)
    done = await openai_hub.wait(TENANT, task.id, 30)
    assert done.status == "failed"
    assert done.error.code == "upstream_error"
    assert "supports.partial_images = false" in done.error.message


async def test_the_fake_is_strict_about_the_streaming_options(upstream, streaming):
    """The fake refuses what OpenAI documents it refuses, so the hub's requests are checked."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for body, wanted in [
            ({"model": "gpt-image-2", "prompt": "p", "partial_images": 2}, 400),
            ({"model": "gpt-image-2", "prompt": "p", "stream": True, "partial_images": 4}, 400),
            ({"model": "gpt-image-2", "prompt": "p", "stream": "yes"}, 400),
            ({"model": "dall-e-3", "prompt": "p", "stream": True}, 400),
            ({"model": "gpt-image-2", "prompt": "p", "stream": True, "partial_images": 0}, 200),
        ]:
            url = f"{upstream.url}/v1/images/generations"
            async with session.post(url, json=body) as response:
                assert response.status == wanted, body
                if wanted == 200:
                    assert response.content_type == "text/event-stream"
                    text = await response.text()
                    assert text.startswith("event: image_generation.completed\ndata: {")


# -- refused at submit: what cannot stream says so


VALIDATOR = Validator(CATALOG)

LOOK_ALIKE = """
[[routes]]
name = "look-alike"
provider = "openai"
api_key = "k"
base_url = "http://127.0.0.1:9/v1"
[routes.supports]
partial_images = false
"""


def _refusal(tmp_path: Path, settings: dict[str, Any], routes: str | None, model: str) -> str:
    path = None
    if routes is not None:
        path = tmp_path / "routes.toml"
        path.write_text(routes)
    router = build_router(Settings(routes_file=path, **settings), CATALOG)
    input: dict[str, Any] = {"prompt": "p"}
    if model.endswith("/edit"):
        input["image_urls"] = ["https://example.com/a.png"]
    spec = CATALOG.get(model)
    assert spec is not None
    with pytest.raises(InvalidInput) as caught:
        router.check(spec, VALIDATOR.validate(model, input).params, partial_images=2)
    assert caught.value.status == 422
    (detail,) = caught.value.details or []
    assert detail["loc"] == ["partial_images"]  # beside `input`, not in it
    assert detail["type"] == "unsupported_by_routes"
    return caught.value.message


@pytest.mark.parametrize(
    ("settings", "routes", "model"),
    [
        ({"gemini_api_key": KEY}, None, "nano-banana-2"),
        ({"gemini_api_key": KEY}, None, "nano-banana-pro/edit"),
        ({"openrouter_api_key": KEY}, None, "nano-banana"),
        ({"fal_key": KEY}, None, "gpt-image-2"),
        ({"demo": True}, None, "gpt-image-2"),
        ({}, LOOK_ALIKE, "gpt-image-2"),
    ],
)
def test_routes_that_cannot_stream_refuse_partial_images(tmp_path, settings, routes, model):
    message = _refusal(tmp_path, settings, routes, model)
    assert message == (
        f"no configured route for {model} supports partial_images "
        "(streamed while drawing: gpt-image-2 on OpenAI routes)"
    )


def test_an_openai_route_beside_one_that_cannot_takes_the_task(tmp_path):
    router = build_router(Settings(openai_api_key=KEY, fal_key=KEY), CATALOG)
    spec = CATALOG.get("gpt-image-2")
    assert spec is not None
    params = VALIDATOR.validate("gpt-image-2", {"prompt": "p"}).params
    router.check(spec, params, partial_images=3)
    assert [r.name for r in router.routes(spec, params, partial_images=3)] == ["openai"]
    assert {r.name for r in router.routes(spec, params)} == {"openai", "fal"}


def test_a_routes_file_cannot_claim_streaming_for_a_route(tmp_path):
    path = tmp_path / "routes.toml"
    path.write_text(LOOK_ALIKE.replace("partial_images = false", "partial_images = true"))
    with pytest.raises(RoutesConfigError, match="partial_images"):
        build_router(Settings(routes_file=path), CATALOG)


@pytest.mark.parametrize(
    ("input", "count", "words"),
    [
        ({"prompt": "p"}, 4, "must be between 0 and 3"),
        ({"prompt": "p"}, -1, "must be between 0 and 3"),
        ({"prompt": "p", "num_images": 2}, 2, "needs num_images 1"),
        ({"prompt": "p", "sync_mode": True}, 1, "cannot be combined with sync_mode"),
    ],
)
async def test_partial_images_out_of_its_rules_is_refused(
    upstream, openai_hub, input, count, words
):
    with pytest.raises(InvalidInput) as caught:
        await openai_hub.submit(TENANT, "gpt-image-2", input, partial_images=count)
    assert caught.value.status == 422
    assert caught.value.details and caught.value.details[0]["loc"] == ["partial_images"]
    assert words in caught.value.details[0]["msg"]
    assert not upstream.seen


async def test_a_partial_image_of_a_canceled_task_is_not_kept(upstream, streaming, openai_hub):
    streaming.gate = asyncio.Event()
    task, _ = await openai_hub.submit(TENANT, "gpt-image-2", {"prompt": "p"}, partial_images=1)
    await asyncio.wait_for(until(openai_hub, task.id, lambda t: len(t.partials) == 1), 30)
    media = openai_hub.media.files  # type: ignore[attr-defined]
    assert len(media) == 1
    assert openai_hub.worker is not None
    runner = openai_hub.worker._running[task.id]
    canceled = await openai_hub.cancel(TENANT, task.id)
    assert canceled.status == "canceled" and canceled.partials == ()
    await asyncio.wait([runner], timeout=10)
    assert runner.done()
    assert media == {}  # the abandoned attempt deleted the partial image it stored
    streaming.gate.set()
