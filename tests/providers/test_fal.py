"""The fal queue as an upstream: exact submits for all eight models, queue states, results,
errors, and cancellation of abandoned requests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from imagehub.testing import tiny_png
from tests.providers.conftest import KEYS, TENANT, app_headers, run_task
from tests.providers.fake_upstream import Reply
from tests.providers.golden import INPUTS, MASK, PHOTO, SKETCH
from tests.providers.wire import GREEN, RED, FalQueue, data_uri, decoded, fal_output

PHOTO_URI, SKETCH_URI = data_uri(decoded(PHOTO)), data_uri(decoded(SKETCH))
NB = {"num_images": 1, "sync_mode": True, "output_format": "png", "limit_generations": False}
NB2 = {**NB, "system_prompt": "", "enable_web_search": False, "limit_generations": True}
PRO = {**NB, "system_prompt": "", "resolution": "1K"}

#: model -> (submit path, the exact JSON body fal must receive)
SUBMITS: dict[str, tuple[str, dict[str, Any]]] = {
    "nano-banana": (
        "/fal-ai/nano-banana",
        {
            **NB,
            "prompt": "a lighthouse",
            "seed": 7,
            "aspect_ratio": "16:9",
            "safety_tolerance": "2",
            "output_format": "jpeg",
        },
    ),
    "nano-banana/edit": (
        "/fal-ai/nano-banana/edit",
        {
            **NB,
            "prompt": "add snow",
            "image_urls": [PHOTO_URI, SKETCH_URI],
            "aspect_ratio": "auto",
            "safety_tolerance": "4",
        },
    ),
    "nano-banana-2": (
        "/fal-ai/nano-banana-2",
        {
            **NB2,
            "prompt": "a poster",
            "seed": 2147483647,
            "num_images": 2,  # fal fans out itself
            "resolution": "0.5K",  # fal's own name: fal maps it for Gemini
            "aspect_ratio": "auto",
            "system_prompt": "You draw posters.",
            "thinking_level": "high",
            "safety_tolerance": "6",
            "enable_web_search": True,
        },
    ),
    "nano-banana-2/edit": (
        "/fal-ai/nano-banana-2/edit",
        {
            **NB2,
            "prompt": "make it night",
            "image_urls": [PHOTO_URI],
            "resolution": "4K",
            "aspect_ratio": "8:1",
            "thinking_level": "minimal",
            "safety_tolerance": "4",
        },
    ),
    "nano-banana-pro": (  # enable_web_search is ignored on this model: not sent
        "/fal-ai/nano-banana-pro",
        {
            **PRO,
            "prompt": "a travel poster",
            "resolution": "2K",
            "aspect_ratio": "1:1",
            "safety_tolerance": "5",
        },
    ),
    "nano-banana-pro/edit": (
        "/fal-ai/nano-banana-pro/edit",
        {
            **PRO,
            "prompt": "on a marble table",
            "image_urls": [PHOTO_URI, SKETCH_URI],
            "aspect_ratio": "auto",
            "safety_tolerance": "1",
        },
    ),
    "gpt-image-2": (
        "/openai/gpt-image-2",
        {
            "prompt": "a cafe menu",
            "quality": "high",
            "image_size": {"width": 832, "height": 832},  # the hub's preset, not fal's 512
            "num_images": 2,
            "output_format": "webp",
            "sync_mode": True,
        },
    ),
    "gpt-image-2/edit": (
        "/openai/gpt-image-2/edit",
        {
            "prompt": "replace the sky",
            "image_urls": [PHOTO_URI, SKETCH_URI],
            "mask_url": data_uri(decoded(MASK)),
            "quality": "low",
            "image_size": {"width": 1024, "height": 1536},
            "num_images": 1,
            "output_format": "png",
            "sync_mode": True,
        },
    ),
}


@pytest.fixture
def queue(upstream) -> FalQueue:
    queue = FalQueue(url=upstream.url)
    upstream.handler = queue
    return queue


async def _fal_hub(upstream, make_hub, tmp_path, route_timeout: float):
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f"""
[[routes]]
provider = "fal"
api_key = "{KEYS["fal"]}"
base_url = "{upstream.url}"
poll_seconds = 0.02
timeout_seconds = {route_timeout}
"""
    )
    return await make_hub(routes_file=routes, max_attempts=2)


@pytest.fixture
async def fal_hub(upstream, make_hub, tmp_path, queue):
    return await _fal_hub(upstream, make_hub, tmp_path, route_timeout=30)


@pytest.mark.parametrize("model", list(SUBMITS))
async def test_golden_submit_status_result(model, upstream, queue, fal_hub):
    path, body = SUBMITS[model]
    wanted = body["num_images"]
    queue.result = Reply(200, fal_output([RED] * wanted, description="done"))
    task = await run_task(fal_hub, model, INPUTS[model])

    submit, *polls, result = upstream.seen
    assert submit.method == "POST" and submit.path == path
    assert submit.json() == body
    app = "/".join(path.split("/")[:3])  # the sub-path (/edit) is for submits only
    assert [p.path for p in polls] == [f"{app}/requests/req-1/status"] * 3
    assert result.method == "GET" and result.path == f"{app}/requests/req-1"
    assert app_headers(submit) == {
        "authorization": f"Key {KEYS['fal']}",
        "content-type": "application/json",
    }
    for seen in [*polls, result]:
        assert app_headers(seen) == {"authorization": f"Key {KEYS['fal']}"}
    assert task.status == "succeeded" and task.provider == "fal"
    assert len(task.output.images) == wanted
    assert task.output.description == "done"
    assert task.usage.cost_usd > 0
    assert task.usage.basis == "per_image"


async def test_content_policy_from_the_result(upstream, queue, fal_hub):
    queue.result = Reply(
        422,
        {
            "detail": [
                {
                    "loc": ["body", "prompt"],
                    "msg": "The content was flagged by a content checker.",
                    "type": "content_policy_violation",
                }
            ]
        },
        headers={"X-Fal-Retryable": "false"},
    )
    task = await run_task(fal_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "content_policy_violation"
    assert "flagged by a content checker" in task.error.message


INFRA_TIMEOUT = {"detail": "Request timed out", "error_type": "request_timeout"}
NO_RUNNER = {"detail": "No runner", "error_type": "runner_scheduling_failure"}
MODEL_ERROR = {"detail": [{"loc": ["body"], "msg": "boom", "type": "internal_server_error"}]}


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply(504, INFRA_TIMEOUT), "upstream_timeout"),
        (Reply(503, NO_RUNNER), "upstream_unavailable"),
        (Reply(500, MODEL_ERROR), "upstream_unavailable"),
    ],
)
async def test_result_errors_are_retried_then_reported(upstream, queue, fal_hub, reply, code):
    queue.result = reply
    task = await run_task(fal_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 2
    assert task.error.code == code


async def test_a_request_stuck_in_the_queue_times_out_and_is_canceled(
    upstream, queue, make_hub, tmp_path
):
    queue.states = ["IN_QUEUE"]
    hub = await _fal_hub(upstream, make_hub, tmp_path, route_timeout=0.5)
    task = await run_task(hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.error.code == "upstream_timeout"
    cancels = upstream.requests("PUT")
    assert [c.path for c in cancels] == [
        "/fal-ai/nano-banana/requests/req-1/cancel",
        "/fal-ai/nano-banana/requests/req-2/cancel",
    ]


async def test_canceling_the_task_cancels_the_fal_request(upstream, queue, fal_hub):
    queue.states = ["IN_PROGRESS"]
    task, _ = await fal_hub.submit(TENANT, "nano-banana", {"prompt": "x"})
    for _ in range(1000):
        if upstream.requests("GET", "/status"):
            break
        await asyncio.sleep(0.01)
    await fal_hub.cancel(TENANT, task.id)
    for _ in range(1000):
        if upstream.requests("PUT"):
            break
        await asyncio.sleep(0.01)
    assert [c.path for c in upstream.requests("PUT")] == [
        "/fal-ai/nano-banana/requests/req-1/cancel"
    ]


async def test_a_stored_result_is_downloaded_without_the_key(upstream, queue, fal_hub):
    output = fal_output([RED])
    output["images"][0]["url"] = f"{upstream.url}/files/out.png"
    queue.result = Reply(200, output)

    def handler(seen):
        return (
            Reply(200, GREEN, {"content-type": "image/png"})
            if seen.path == "/files/out.png"
            else queue(seen)
        )

    upstream.handler = handler
    task = await run_task(fal_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "succeeded"
    assert await fal_hub.media.get(task.output.images[0].file_id) == GREEN
    (download,) = upstream.requests("GET", "/files/")
    assert "authorization" not in download.headers


async def test_live_check_does_not_generate(upstream, fal_hub):
    upstream.handler = lambda seen: Reply(404, {"detail": "Request not found"})
    route = fal_hub.router.routes(fal_hub.catalog.get("nano-banana/edit"))[0]
    said = await route.provider.check(route.upstream_model)
    assert said.startswith("fal-ai/nano-banana/edit: key accepted")
    assert [s.method for s in upstream.seen] == ["GET"]


async def test_a_stored_result_over_the_byte_cap_fails_cleanly(upstream, queue, fal_hub):
    big = tiny_png(1500, 1000, (10, 20, 30))
    output = fal_output([RED])
    output["images"][0]["url"] = f"{upstream.url}/files/big.png"
    queue.result = Reply(200, output)

    def handler(seen):
        if seen.path == "/files/big.png":
            return Reply(200, big, {"content-type": "image/png"})
        return queue(seen)

    upstream.handler = handler
    route = fal_hub.router.routes(fal_hub.catalog.get("nano-banana"))[0]
    route.provider.max_result_bytes = len(big) - 1
    task = await run_task(fal_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "upstream_error"
    assert f"larger than {len(big) - 1:,} bytes" in task.error.message
    assert task.output is None
