from __future__ import annotations

import asyncio
import json

import httpx

from imagehub.errors import ContentPolicyViolation, UpstreamUnavailable
from imagehub.hub import Hub
from imagehub.testing import ScriptedProvider
from tests.api.conftest import other_tenant_key

NB = {"model": "nano-banana", "input": {"prompt": "a lighthouse at dusk"}}


async def submit_and_wait(client: httpx.AsyncClient, body: dict, **headers: str) -> dict:
    response = await client.post("/hub/v1/tasks", json=body, headers={"Prefer": "wait=10"})
    assert response.status_code in (200, 202), response.text
    task = response.json()
    if not task["ready"]:
        task = (await client.get(f"/hub/v1/tasks/{task['task_id']}?wait=10")).json()
    return task


async def test_submit_answers_202_with_location_and_the_normalized_input(client):
    response = await client.post("/hub/v1/tasks", json=NB)
    assert response.status_code == 202
    task = response.json()
    assert response.headers["location"] == f"/hub/v1/tasks/{task['task_id']}"
    assert task["status"] in ("queued", "running", "succeeded")
    assert task["input"] == {
        "prompt": "a lighthouse at dusk",
        "num_images": 1,
        "sync_mode": False,
        "aspect_ratio": "1:1",
        "output_format": "png",
        "safety_tolerance": "4",
        "limit_generations": False,
    }


async def test_poll_until_ready_then_download_the_image(client):
    task_id = (await client.post("/hub/v1/tasks", json=NB)).json()["task_id"]
    for _ in range(200):
        task = (await client.get(f"/hub/v1/tasks/{task_id}")).json()
        if task["ready"]:
            break
        await asyncio.sleep(0.01)
    assert task["status"] == "succeeded" and task["provider"] == "scripted"
    assert task["error"] is None and task["attempts"] == 1
    image = task["output"]["images"][0]
    assert image["url"].startswith("http://hub.test/hub/v1/files/f_")
    file = await client.get(image["url"], headers={"Authorization": ""})
    assert file.status_code == 200
    assert file.headers["content-type"] == "image/png"
    assert "max-age" in file.headers["cache-control"]
    assert len(file.content) == image["file_size"]
    assert task["created_at"].endswith("Z") and task["finished_at"] >= task["started_at"]


async def test_prefer_wait_answers_200_with_the_ready_task(client):
    response = await client.post("/hub/v1/tasks", json=NB, headers={"Prefer": "wait=10"})
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"


async def test_every_request_needs_a_valid_key(client):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer ih_wrong"}):
        response = await client.get("/hub/v1/models", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


async def test_422_lists_every_bad_field_and_stores_nothing(client, hub: Hub):
    body = {
        "model": "nano-banana",
        "input": {"prompt": "x", "aspect_ratio": "7:3", "num_images": 9, "colour": "red"},
    }
    response = await client.post("/hub/v1/tasks", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert {tuple(d["loc"]) for d in error["details"]} == {
        ("input", "aspect_ratio"),
        ("input", "num_images"),
        ("input", "colour"),
    }
    assert (await client.get("/hub/v1/tasks")).json()["data"] == []


async def test_unknown_model_and_malformed_bodies(client):
    response = await client.post("/hub/v1/tasks", json={"model": "dall-e", "input": {}})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["model"]
    response = await client.post("/hub/v1/tasks", content=b"{not json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_json")
    response = await client.post(
        "/hub/v1/tasks", json={"model": "nano-banana", "input": {"prompt": "x"}, "x": 1}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["x"]
    response = await client.post("/hub/v1/tasks", json=["nano-banana"])
    assert response.status_code == 422


async def test_a_body_over_the_limit_is_413(client, hub: Hub):
    big = {"model": "nano-banana", "input": {"prompt": "x" * (hub.settings.max_body_bytes + 1)}}
    response = await client.post("/hub/v1/tasks", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_metadata_is_echoed_and_capped(client):
    task = await submit_and_wait(client, {**NB, "metadata": {"user_ref": "abc"}})
    assert task["metadata"] == {"user_ref": "abc"}
    response = await client.post("/hub/v1/tasks", json={**NB, "metadata": {"x": "y" * 5000}})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["metadata"]


async def test_idempotency_key_replays_the_same_task_and_refuses_another_body(client):
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/hub/v1/tasks", json=NB, headers=headers)
    again = await client.post("/hub/v1/tasks", json=NB, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["task_id"] == first.json()["task_id"]
    other = {"model": "nano-banana", "input": {"prompt": "something else"}}
    clash = await client.post("/hub/v1/tasks", json=other, headers=headers)
    assert clash.status_code == 422
    assert clash.json()["error"]["code"] == "idempotency_key_reused"
    assert len((await client.get("/hub/v1/tasks")).json()["data"]) == 1


async def test_unknown_task_and_another_tenants_task_are_404(client, hub: Hub):
    assert (await client.get("/hub/v1/tasks/tsk_nope")).status_code == 404
    task = await submit_and_wait(client, NB)
    other = {"Authorization": f"Bearer {await other_tenant_key(hub)}"}
    for method, path in (
        ("GET", f"/hub/v1/tasks/{task['task_id']}"),
        ("GET", f"/hub/v1/tasks/{task['task_id']}?wait=1"),
        ("POST", f"/hub/v1/tasks/{task['task_id']}/cancel"),
        ("GET", f"/hub/v1/tasks/{task['task_id']}/events"),
    ):
        response = await client.request(method, path, headers=other)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/hub/v1/tasks", headers=other)).json()["data"] == []


async def test_history_is_newest_first_with_cursor_pages_and_filters(client):
    ids = []
    for i in range(5):
        model = "nano-banana" if i % 2 else "gpt-image-2"
        body = {"model": model, "input": {"prompt": f"p{i}"}}
        ids.append((await submit_and_wait(client, body))["task_id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/hub/v1/tasks", params=params)).json()
        seen += [t["task_id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    only = (await client.get("/hub/v1/tasks", params={"model": "nano-banana"})).json()["data"]
    assert [t["task_id"] for t in only] == [ids[3], ids[1]]
    done = (await client.get("/hub/v1/tasks", params={"status": "succeeded"})).json()["data"]
    assert len(done) == 5
    bad = await client.get("/hub/v1/tasks", params={"status": "weird"})
    assert bad.status_code == 422
    bad = await client.get("/hub/v1/tasks", params={"cursor": "!!"})
    assert bad.status_code == 422


async def test_cancel_a_running_task_abandons_it_and_a_ready_one_is_409(client, provider):
    provider.delay = 5
    task = (await client.post("/hub/v1/tasks", json=NB)).json()
    await asyncio.sleep(0.05)
    canceled = await client.post(f"/hub/v1/tasks/{task['task_id']}/cancel")
    assert canceled.status_code == 200
    body = canceled.json()
    assert (body["status"], body["ready"], body["error"]["code"]) == ("canceled", True, "canceled")
    again = await client.post(f"/hub/v1/tasks/{task['task_id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_finished"
    assert f"task {task['task_id']} was already canceled" in again.json()["error"]["message"]


async def test_canceling_a_succeeded_task_says_it_has_already_succeeded(client):
    task = await submit_and_wait(client, NB)
    again = await client.post(f"/hub/v1/tasks/{task['task_id']}/cancel")
    assert again.status_code == 409
    message = again.json()["error"]["message"]
    assert message.startswith(f"task {task['task_id']} has already succeeded")


async def test_a_wait_out_of_range_is_refused_in_plain_words(client):
    task = (await client.post("/hub/v1/tasks", json=NB)).json()
    for wait in ("100", "-1", "soon"):
        bad = await client.get(f"/hub/v1/tasks/{task['task_id']}", params={"wait": wait})
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert error["message"] == "wait must be between 0 and 60 seconds"
        assert error["details"][0]["loc"] == ["query", "wait"]


async def test_events_stream_every_change_and_end_with_the_ready_task(client, provider):
    provider.delay = 0.2
    task = (await client.post("/hub/v1/tasks", json=NB)).json()
    events = []
    async with client.stream("GET", f"/hub/v1/tasks/{task['task_id']}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            if line.startswith("data: ") and kind != "progress":  # tests/api/test_progress.py
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "succeeded" and events[-1]["ready"]
    assert all(not e["ready"] for e in events[:-1])
    assert "running" in [e["status"] for e in events]


async def test_a_retryable_upstream_failure_is_retried(client, provider: ScriptedProvider):
    provider.script = [UpstreamUnavailable()]
    task = await submit_and_wait(client, NB)
    assert task["status"] == "succeeded"
    assert task["attempts"] == 2


async def test_a_final_failure_carries_the_error_code(client, provider: ScriptedProvider):
    provider.script = [ContentPolicyViolation("the prompt was blocked")]
    task = await submit_and_wait(client, NB)
    assert task["status"] == "failed" and task["ready"] and task["output"] is None
    assert task["error"] == {
        "code": "content_policy_violation",
        "message": "the prompt was blocked",
        "retryable": False,
    }


async def test_retries_stop_at_the_budget(client, provider: ScriptedProvider, hub: Hub):
    provider.script = [UpstreamUnavailable() for _ in range(hub.settings.max_attempts)]
    task = await submit_and_wait(client, NB)
    assert task["status"] == "failed"
    assert task["attempts"] == hub.settings.max_attempts
    assert task["error"]["code"] == "upstream_unavailable"


async def test_sync_mode_returns_data_uris_once_then_purges(client, hub: Hub):
    body = {"model": "nano-banana", "input": {"prompt": "x", "sync_mode": True}}
    task = await submit_and_wait(client, body)
    images = task["output"]["images"]
    assert images and images[0]["url"].startswith("data:image/png;base64,")
    again = (await client.get(f"/hub/v1/tasks/{task['task_id']}")).json()
    assert again["output"]["images"] == [] and again["output"]["output_purged"] is True
    listed = (await client.get("/hub/v1/tasks")).json()["data"][0]
    assert listed["output"]["images"] == []


async def test_pro_web_search_is_accepted_with_a_warning(client):
    body = {"model": "nano-banana-pro", "input": {"prompt": "x", "enable_web_search": True}}
    task = await submit_and_wait(client, body)
    assert task["status"] == "succeeded"
    assert any("disabled on this platform" in w for w in task["warnings"])
