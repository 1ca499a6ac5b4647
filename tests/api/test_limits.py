"""Every limit answers with a clear 4xx: per-key rates, concurrency and budget (429 with
Retry-After and the limit named), and the size of everything a client sends."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets

import httpx
import pytest

from imagehub.errors import ContentPolicyViolation, RateLimited
from imagehub.hub import Hub
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider, memory_hub, tiny_png
from tests.api.conftest import LOOPBACK, _client
from tests.api.test_tenancy import bearer, new_key

TASK = {"model": "nano-banana", "input": {"prompt": "a fox"}}  # $0.039 an image
OPENAI = {"model": "nano-banana", "prompt": "a fox"}


@pytest.fixture
def hub(provider: ScriptedProvider) -> Hub:
    return memory_hub(
        provider, poll_seconds=0.1, fetch_allow_private=LOOPBACK, shutdown_grace_seconds=0.2
    )


def assert_429(answer: httpx.Response, words: str) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    assert words in answer.json()["error"]["message"]


async def limited(client: httpx.AsyncClient, **limits: object) -> dict[str, str]:
    return bearer((await new_key(client, "acme", limits=limits))["key"])


async def usage(client: httpx.AsyncClient, headers: dict[str, str]) -> dict:
    usage_now: dict = (await client.get("/hub/v1/key", headers=headers)).json()["usage"]
    return usage_now


# ---------------------------------------------------------------- requests per minute


async def test_requests_per_minute_are_counted_on_every_route(client):
    key = await limited(client, requests_per_minute=3)
    assert (await client.get("/hub/v1/models", headers=key)).status_code == 200
    assert (await client.post("/hub/v1/tasks", json=TASK, headers=key)).status_code == 202
    assert (await client.get("/hub/v1/tasks", headers=key)).status_code == 200
    answer = await client.get("/hub/v1/tasks", headers=key)
    assert_429(answer, "limit of 3 requests per minute")
    assert answer.json()["error"]["code"] == "rate_limited"
    assert int(answer.headers["Retry-After"]) <= 20
    assert (await client.get("/hub/v1/tasks")).status_code == 200, "other keys are not slowed"


async def test_the_openai_routes_answer_429_in_openais_shape(client):
    key = await limited(client, requests_per_minute=1)
    assert (await client.get("/hub/v1/key", headers=key)).status_code == 200
    answer = await client.post("/v1/images/generations", json=OPENAI, headers=key)
    assert answer.status_code == 429 and "Retry-After" in answer.headers
    assert "requests per minute" in answer.json()["error"]["message"]


async def test_the_rate_limit_can_be_lifted(client):
    created = await new_key(client, "acme", limits={"requests_per_minute": 1})
    key = bearer(created["key"])
    await client.get("/hub/v1/key", headers=key)
    assert (await client.get("/hub/v1/key", headers=key)).status_code == 429
    await client.patch(f"/hub/v1/admin/keys/{created['id']}", json={"requests_per_minute": None})
    assert (await client.get("/hub/v1/key", headers=key)).status_code == 200


async def test_the_limit_is_shared_by_processes_through_redis(redis_url, provider):
    """Two hubs (as two processes) with one Redis: a key's requests count together."""
    channel = f"ih_test_{secrets.token_hex(4)}"
    hubs = [
        memory_hub(provider, redis_url=redis_url, wakeup_channel=channel, wakeups="off")
        for _ in range(2)
    ]
    record = dataclasses.replace(make_key("acme")[1], rpm_limit=2)
    refused = []
    try:
        for hub in (*hubs, hubs[0]):
            try:
                await hub.accounts.check_rate(record)
            except RateLimited as exc:
                refused.append(exc.retry_after)
            else:
                refused.append(0.0)
    finally:
        for hub in hubs:
            await hub.accounts.aclose()
    assert refused[:2] == [0.0, 0.0]
    assert 0 < refused[2] <= 30, "the second hub's request counted for the first"


# ---------------------------------------------------------------- tasks in flight


async def test_the_concurrency_limit_answers_429_until_a_task_finishes(client, provider):
    provider.delay = 0.5
    key = await limited(client, concurrent_tasks=1)
    first = await client.post("/hub/v1/tasks", json=TASK, headers=key)
    assert first.status_code == 202
    assert_429(
        await client.post("/hub/v1/tasks", json=TASK, headers=key),
        "limit of 1 concurrent task at once",
    )
    assert (await usage(client, key))["active_tasks"] == 1
    await client.get(f"/hub/v1/tasks/{first.json()['task_id']}?wait=10", headers=key)
    assert (await client.post("/hub/v1/tasks", json=TASK, headers=key)).status_code == 202


async def test_a_cancel_frees_a_slot(client, provider):
    provider.delay = 10
    key = await limited(client, concurrent_tasks=1)
    first = (await client.post("/hub/v1/tasks", json=TASK, headers=key)).json()
    await client.post(f"/hub/v1/tasks/{first['task_id']}/cancel", headers=key)
    assert (await client.post("/hub/v1/tasks", json=TASK, headers=key)).status_code == 202


async def test_an_openai_request_counts_as_a_task_in_flight(client, provider):
    provider.delay = 0.5
    key = await limited(client, concurrent_tasks=1)
    held = asyncio.create_task(client.post("/v1/images/generations", json=OPENAI, headers=key))
    await asyncio.sleep(0.2)
    assert_429(await client.post("/hub/v1/tasks", json=TASK, headers=key), "concurrent task")
    assert (await held).status_code == 200


# ---------------------------------------------------------------- spend


async def test_the_budget_reserves_the_price_and_settles_the_cost(client, provider):
    provider.delay = 0.3
    key = await limited(client, budget_usd=0.1)
    first = (await client.post("/hub/v1/tasks", json=TASK, headers=key)).json()
    assert await usage(client, key) == {"active_tasks": 1, "reserved_usd": 0.039, "spent_usd": 0}
    two = {"model": "nano-banana", "input": {"prompt": "x", "num_images": 2}}
    answer = await client.post("/hub/v1/tasks", json=two, headers=key)
    assert_429(answer, "spend budget of $0.10")
    assert "$0.08" in answer.json()["error"]["message"]  # the price of this one
    done = await client.get(f"/hub/v1/tasks/{first['task_id']}?wait=10", headers=key)
    assert done.json()["usage"]["cost_usd"] == 0.039
    assert done.json()["usage"]["basis"] == "per_image"
    assert await usage(client, key) == {"active_tasks": 0, "reserved_usd": 0, "spent_usd": 0.039}
    assert (await client.post("/hub/v1/tasks", json=TASK, headers=key)).status_code == 202
    assert_429(await client.post("/hub/v1/tasks", json=two, headers=key), "budget")


async def test_a_failed_task_costs_nothing(client, provider):
    provider.script = [ContentPolicyViolation("no")]
    key = await limited(client, budget_usd=0.05)
    task = (await client.post("/hub/v1/tasks", json=TASK, headers=key)).json()
    done = await client.get(f"/hub/v1/tasks/{task['task_id']}?wait=10", headers=key)
    assert done.json()["status"] == "failed"
    assert await usage(client, key) == {"active_tasks": 0, "reserved_usd": 0, "spent_usd": 0}


async def test_the_free_demo_provider_reserves_nothing():
    async for client in _client(memory_hub(None, poll_seconds=0.1)):
        key = await limited(client, budget_usd=0)
        answer = await client.post("/hub/v1/tasks", json=TASK, headers=key)
        assert answer.status_code == 202
        await client.get(f"/hub/v1/tasks/{answer.json()['task_id']}?wait=10", headers=key)
        assert (await usage(client, key))["spent_usd"] == 0


async def test_a_replayed_submit_is_not_charged_twice(client):
    key = await limited(client, budget_usd=0.05)
    headers = {**key, "Idempotency-Key": "once"}
    first = await client.post("/hub/v1/tasks", json=TASK, headers=headers)
    again = await client.post("/hub/v1/tasks", json=TASK, headers=headers)
    assert again.status_code == 200 and again.json()["task_id"] == first.json()["task_id"]
    await client.get(f"/hub/v1/tasks/{first.json()['task_id']}?wait=10", headers=key)
    assert (await usage(client, key))["spent_usd"] == 0.039


# ---------------------------------------------------------------- everything a client sends


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "nano-banana", "input": {"prompt": "x" * 50_001}}, "prompt"),
        ({"model": "gpt-image-2", "input": {"prompt": "x" * 32_001}}, "prompt"),
        (
            {
                "model": "nano-banana/edit",
                "input": {"prompt": "x", "image_urls": ["https://a/b"] * 11},
            },
            "image_urls",
        ),
        (
            {"model": "nano-banana", "input": {"prompt": "x"}, "metadata": {"a": "x" * 5000}},
            "metadata",
        ),
        (
            {
                "model": "nano-banana",
                "input": {"prompt": "x"},
                "webhook_url": "https://a/" + "b" * 2100,
            },
            "webhook_url",
        ),
        ({"model": "nano-banana", "input": {"prompt": "x", "num_images": 5}}, "num_images"),
    ],
)
async def test_oversized_fields_are_422_naming_the_field(client, body, field):
    answer = await client.post("/hub/v1/tasks", json=body)
    assert answer.status_code == 422, answer.text
    assert field in json.dumps(answer.json()["error"]["details"])
    assert (await client.get("/hub/v1/tasks")).json()["data"] == [], "nothing stored"


async def test_deeply_nested_json_is_400_not_a_crash(client):
    answer = await client.post("/hub/v1/tasks", content=b"[" * 100_000 + b"]" * 100_000)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_json"
    nested = (
        '{"model":"nano-banana","input":{"prompt":"x"},"metadata":'
        + '{"a":' * 5000
        + "1"
        + "}" * 5001
    )
    assert (await client.post("/hub/v1/tasks", content=nested)).status_code in (400, 422)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"nano-banana","input":{"prompt":"x"},"metadata":{"a":NaN}}',
        b'{"model":"nano-banana","input":{"prompt":"x"},"metadata":{"a":-Infinity}}',
        b'{"model":"nano-banana","input":{"prompt":"x"},"metadata":{"\\ud800":"\\udfff"}}',
        b'{"model":"nano-banana","input":{"prompt":"\\udc00"}}',
        b"\xff\xfe{}",
    ],
)
async def test_json_that_cannot_be_answered_back_is_400(client, raw):
    answer = await client.post("/hub/v1/tasks", content=raw)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "url", ["http://\u0000/", "https://exa mple.com/h", "https://example.com/\nh", "http://[::1"]
)
async def test_a_webhook_url_with_control_characters_is_422(client, url):
    body = {"model": "nano-banana", "input": {"prompt": "x"}, "webhook_url": url}
    answer = await client.post("/hub/v1/tasks", json=body)
    assert answer.status_code == 422


async def test_an_idempotency_key_over_255_characters_is_422(client):
    answer = await client.post("/hub/v1/tasks", json=TASK, headers={"Idempotency-Key": "k" * 256})
    assert answer.status_code == 422


async def test_an_oversized_body_is_413():
    hub = memory_hub(ScriptedProvider(), max_body_bytes=10_000)
    async for client in _client(hub):
        answer = await client.post("/hub/v1/files", content=b"\0" * 20_000)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "payload_too_large"


async def test_an_oversized_or_bomb_image_is_refused(client):
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")  # 400 megapixels in a few kB
    bomb = await client.post("/hub/v1/files", content=buffer.getvalue())
    assert bomb.status_code == 422 and "pixels" in bomb.json()["error"]["message"]
    html = await client.post("/hub/v1/files", content=b"<html></html>")
    assert html.status_code == 422
    assert (await client.post("/hub/v1/files", content=tiny_png())).status_code == 201


async def test_long_polls_per_key_are_capped_with_429(provider):
    provider.delay = 30
    hub = memory_hub(provider, poll_seconds=0.1, max_streams_per_key=2, shutdown_grace_seconds=0.2)
    async for client in _client(hub):
        task_id = (await client.post("/hub/v1/tasks", json=TASK)).json()["task_id"]
        url = f"/hub/v1/tasks/{task_id}"
        polls = [asyncio.create_task(client.get(f"{url}?wait=20")) for _ in range(2)]
        await asyncio.sleep(0.3)  # both long-polls hold their slot
        over = await client.get(f"{url}?wait=1")
        assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
        assert "long-polls" in over.json()["error"]["message"]
        held = await client.post("/hub/v1/tasks", json=TASK, headers={"Prefer": "wait=1"})
        assert held.status_code == 429
        assert len((await client.get("/hub/v1/tasks")).json()["data"]) == 1, "none stored"
        # a plain read, and another key's long-poll, are not affected
        assert (await client.get(url)).status_code == 200
        other = bearer((await new_key(client, "acme"))["key"])
        theirs = (await client.post("/hub/v1/tasks", json=TASK, headers=other)).json()
        answer = await client.get(f"/hub/v1/tasks/{theirs['task_id']}?wait=0.2", headers=other)
        assert answer.status_code == 200
        await client.post(f"{url}/cancel")
        assert [(await p).status_code for p in polls] == [200, 200]
        assert (await client.get(f"{url}?wait=1")).status_code == 200, "the slots are free"
        assert hub.accounts.streams.held((await client.get("/hub/v1/key")).json()["id"]) == 0
