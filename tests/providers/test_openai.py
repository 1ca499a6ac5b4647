"""OpenAI Images API: generations (JSON), edits (multipart, alpha mask), usage, moderation."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image

from imagehub.testing import tiny_png
from tests.providers.conftest import (
    KEYS,
    app_headers,
    assert_no_secret,
    provider_settings,
    run_task,
)
from tests.providers.fake_upstream import Reply
from tests.providers.golden import INPUTS, MASK, PHOTO, SKETCH
from tests.providers.wire import RED, data_uri, decoded, o_answer, o_error, openai_ok


@pytest.fixture
async def openai_hub(upstream, make_hub):
    upstream.handler = openai_ok
    return await make_hub(**provider_settings("openai", upstream, "/v1"))


async def test_generation_golden_request_and_outcome(upstream, openai_hub):
    task = await run_task(openai_hub, "gpt-image-2", INPUTS["gpt-image-2"])
    (request,) = upstream.seen
    assert request.method == "POST" and request.path == "/v1/images/generations"
    assert app_headers(request) == {
        "authorization": f"Bearer {KEYS['openai']}",
        "content-type": "application/json",
    }
    assert request.json() == {
        "model": "gpt-image-2",
        "prompt": "a cafe menu",
        "n": 2,
        "size": "832x832",  # the hub's `square` preset, valid for gpt-image-2
        "quality": "high",  # the hub's default, sent explicitly (OpenAI's own is auto)
        "output_format": "webp",
    }
    assert task.status == "succeeded" and task.provider == "openai"
    assert len(task.output.images) == 2
    assert {i.content_type for i in task.output.images} == {"image/webp"}
    assert (task.usage.input_tokens, task.usage.output_tokens) == (50, 4160)
    # priced from the tokens OpenAI reports: 50 text tokens in at $5/1M, 4160 image tokens out
    # at $30/1M (no longer the per-size table, which is now only what a submit reserves)
    assert task.usage.cost_usd == pytest.approx((50 * 5 + 4160 * 30) / 1e6)
    assert task.usage.basis == "tokens"


async def test_edit_golden_multipart_request(upstream, openai_hub):
    task = await run_task(openai_hub, "gpt-image-2/edit", INPUTS["gpt-image-2/edit"])
    assert task.status == "succeeded", task.error
    (request,) = upstream.seen
    assert request.path == "/v1/images/edits"
    assert app_headers(request) == {
        "authorization": f"Bearer {KEYS['openai']}",
        "content-type": "multipart/form-data",
    }
    parts = request.form()
    fields = [(name, value.decode()) for name, filename, _, value in parts if filename is None]
    assert fields == [
        ("model", "gpt-image-2"),
        ("prompt", "replace the sky"),
        ("n", "1"),
        ("size", "1024x1536"),
        ("quality", "low"),
        ("output_format", "png"),
    ]
    files = [(name, filename, ctype) for name, filename, ctype, _ in parts if filename]
    assert files == [
        ("image[]", "image-0.png", "image/png"),
        ("image[]", "image-1.png", "image/png"),
        ("mask", "mask.png", "image/png"),
    ]
    images = [value for name, _, _, value in parts if name == "image[]"]
    assert images == [decoded(PHOTO), decoded(SKETCH)]
    mask = Image.open(BytesIO(parts[-1][3]))
    assert mask.mode == "RGBA" and mask.size == (40, 24)  # the first image's size
    # the white (no-alpha) mask marks everything for editing: fully transparent
    assert mask.getchannel("A").getextrema() == (0, 0)


def _png(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_mask_with_alpha_keeps_its_alpha_resized_to_the_first_image(upstream, openai_hub):
    mask = Image.new("RGBA", (20, 12), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 10, 12))  # left half: edit here
    body = {
        "prompt": "p",
        "image_urls": [data_uri(PHOTO)],
        "mask_url": data_uri(_png(mask)),
    }
    await run_task(openai_hub, "gpt-image-2/edit", body)
    sent = Image.open(BytesIO(upstream.seen[0].form()[-1][3]))
    assert sent.size == (40, 24)
    alpha = sent.getchannel("A")
    assert alpha.getpixel((5, 5)) == 0 and alpha.getpixel((35, 5)) == 255


async def test_edit_without_mask_and_auto_size(upstream, openai_hub):
    body = {"prompt": "p", "image_urls": [data_uri(MASK)]}
    await run_task(openai_hub, "gpt-image-2/edit", body)
    parts = upstream.seen[0].form()
    assert ("size", b"auto") in [(name, value) for name, _, _, value in parts]
    assert [name for name, *_ in parts if name in ("image[]", "mask")] == ["image[]"]


async def test_moderation_blocked_is_a_content_policy_violation(upstream, openai_hub):
    message = (
        "Your request was rejected by the safety system. safety_violations=[sexual]. "
        f"key {KEYS['openai']}"
    )
    upstream.then(o_error(400, "moderation_blocked", message, "image_generation_user_error"))
    task = await run_task(openai_hub, "gpt-image-2", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "content_policy_violation"
    assert "safety_violations=[sexual]" in task.error.message
    assert_no_secret(task)


async def test_invalid_request_is_not_retried(upstream, openai_hub):
    upstream.then(o_error(400, "invalid_value", "Invalid size '832x832'."))
    task = await run_task(openai_hub, "gpt-image-2", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1 and len(upstream.seen) == 1
    assert task.error.code == "upstream_error"
    assert "Invalid size" in task.error.message


async def test_insufficient_quota_is_final(upstream, openai_hub):
    upstream.then(
        o_error(429, "insufficient_quota", "You exceeded your quota.", "insufficient_quota")
    )
    task = await run_task(openai_hub, "gpt-image-2", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "upstream_error" and "quota" in task.error.message


async def test_retry_after_ms_is_honoured(upstream, openai_hub):
    upstream.then(
        Reply(429, {"error": {"code": "rate_limit_exceeded"}}, headers={"retry-after-ms": "400"})
    )
    task = await run_task(openai_hub, "gpt-image-2", {"prompt": "x"})
    assert task.status == "succeeded" and task.attempts == 2
    assert upstream.seen[1].at - upstream.seen[0].at >= 0.35


async def test_fewer_images_than_asked_is_a_warning(upstream, openai_hub):
    upstream.then(Reply(200, o_answer([RED])))
    task = await run_task(openai_hub, "gpt-image-2", {"prompt": "x", "num_images": 3})
    assert task.status == "succeeded" and len(task.output.images) == 1
    assert task.warnings == ("openai returned 1 of the 3 images requested",)


async def test_no_data_is_no_image(upstream, openai_hub):
    upstream.then(Reply(200, {"created": 1, "data": []}))
    task = await run_task(openai_hub, "gpt-image-2", {"prompt": "x"})
    assert task.error.code == "no_image_generated"


async def test_live_check_reads_the_model(upstream, openai_hub):
    upstream.then(Reply(200, {"id": "gpt-image-2", "object": "model"}))
    route = openai_hub.router.routes(openai_hub.catalog.get("gpt-image-2"))[0]
    assert await route.provider.check("gpt-image-2") == "gpt-image-2: ok"
    assert upstream.seen[0].method == "GET" and upstream.seen[0].path == "/v1/models/gpt-image-2"


async def test_a_look_alike_that_links_its_image_is_fetched_safely(upstream, make_hub):
    linked = tiny_png(640, 480, (9, 99, 199))

    def handler(seen):
        if seen.method == "GET":
            return Reply(200, linked, {"content-type": "image/png"})
        answer = o_answer([])
        answer["data"] = [{"url": f"{upstream.url}/img/abc.png", "revised_prompt": "x"}]
        return Reply(200, answer)

    upstream.handler = handler
    settings = provider_settings("openai", upstream, "/v1")
    hub = await make_hub(**settings, fetch_allow_private="127.0.0.1")
    task = await run_task(hub, "gpt-image-2", {"prompt": "x"})
    assert task.status == "succeeded", task.error
    assert await hub.media.get(task.output.images[0].file_id) == linked
    (download,) = upstream.requests("GET", "/img/")
    assert "authorization" not in download.headers


async def test_a_linked_image_on_a_private_address_is_not_fetched(upstream, openai_hub):
    answer = o_answer([])
    answer["data"] = [{"url": f"{upstream.url}/img/abc.png"}]
    upstream.then(Reply(200, answer))
    task = await run_task(openai_hub, "gpt-image-2", {"prompt": "x"})
    assert task.status == "failed" and task.error.code == "upstream_error"
    assert "may not connect" in task.error.message
    assert upstream.requests("GET") == []
