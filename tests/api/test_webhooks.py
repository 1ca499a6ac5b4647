"""Webhooks: signed as Standard Webhooks says, checked here by the independent
`standardwebhooks` package, against a real receiver on loopback; retries; the secret."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagehub.hub import Hub
from imagehub.testing import ScriptedProvider, memory_hub
from tests.api.conftest import LOOPBACK, other_tenant_key
from tests.webhook_receiver import Receiver

FAST_RETRIES = [0.05, 0.05, 0.05]


@pytest.fixture
def hub(provider: ScriptedProvider) -> Hub:
    return memory_hub(
        provider,
        poll_seconds=0.1,
        fetch_allow_private=LOOPBACK,
        webhook_retry_delays=FAST_RETRIES,
        webhook_timeout_seconds=5,
    )


async def submit(client: httpx.AsyncClient, webhook_url: str, **input: object) -> dict:
    body = {"model": "nano-banana", "input": {"prompt": "a fox", **input}}
    answer = await client.post("/hub/v1/tasks", json={**body, "webhook_url": webhook_url})
    assert answer.status_code == 202, answer.text
    return answer.json()


async def delivery_when(
    client: httpx.AsyncClient, task_id: str, *states: str, headers: dict | None = None
) -> dict:
    for _ in range(300):
        answer = await client.get(f"/hub/v1/tasks/{task_id}/webhook", headers=headers)
        assert answer.status_code == 200, answer.text
        if answer.json()["state"] in states:
            return answer.json()
        await asyncio.sleep(0.02)
    raise AssertionError(f"the delivery never reached {states}: {answer.json()}")


async def secret(client: httpx.AsyncClient) -> str:
    answer = await client.get("/hub/v1/webhooks/secret")
    assert answer.status_code == 200
    value: str = answer.json()["secret"]
    return value


async def test_a_ready_task_is_posted_signed_to_its_webhook(client, receiver: Receiver):
    task = await submit(client, receiver.url)
    delivery = await delivery_when(client, task["task_id"], "succeeded")
    [got] = receiver.received
    payload = Webhook(await secret(client)).verify(got.body, got.headers)
    assert payload == (await client.get(f"/hub/v1/tasks/{task['task_id']}")).json()
    assert payload["status"] == "succeeded" and payload["ready"] is True
    assert payload["output"]["images"][0]["url"].startswith("http://hub.test/hub/v1/files/f_")
    assert got.headers["webhook-id"] == delivery["webhook_id"] == f"msg_{task['task_id']}"
    assert got.headers["Content-Type"] == "application/json"
    assert (delivery["attempts"], [a["status"] for a in delivery["history"]]) == (1, [200])


async def test_a_signature_under_another_secret_does_not_verify(client, receiver: Receiver):
    task = await submit(client, receiver.url)
    await delivery_when(client, task["task_id"], "succeeded")
    [got] = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(got.body, got.headers)
    tampered = got.body.replace(b"succeeded", b"failed")
    with pytest.raises(WebhookVerificationError):
        Webhook(await secret(client)).verify(tampered, got.headers)


async def test_failed_attempts_are_retried_with_the_same_webhook_id(client, receiver: Receiver):
    receiver.script = [500, (503, {"Retry-After": "0"}), 302]
    task = await submit(client, receiver.url)
    delivery = await delivery_when(client, task["task_id"], "succeeded")
    assert [a["status"] for a in delivery["history"]] == [500, 503, 302, 200]
    assert delivery["attempts"] == 4
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {f"msg_{task['task_id']}"}
    key = Webhook(await secret(client))
    assert all(key.verify(r.body, r.headers) for r in receiver.received)


async def test_delivery_gives_up_after_the_schedule(client, receiver: Receiver):
    receiver.script = [500] * 10
    task = await submit(client, receiver.url)
    delivery = await delivery_when(client, task["task_id"], "failed")
    assert len(delivery["history"]) == 1 + len(FAST_RETRIES) == len(receiver.received)
    assert delivery["next_attempt_at"] is None


async def test_410_gone_stops_at_once(client, receiver: Receiver):
    receiver.script = [410]
    task = await submit(client, receiver.url)
    delivery = await delivery_when(client, task["task_id"], "failed")
    assert [a["status"] for a in delivery["history"]] == [410]


async def test_a_canceled_task_is_delivered_too(client, provider, receiver: Receiver):
    provider.delay = 5
    task = await submit(client, receiver.url)
    await client.post(f"/hub/v1/tasks/{task['task_id']}/cancel")
    await delivery_when(client, task["task_id"], "succeeded")
    payload = json.loads(receiver.received[0].body)
    assert payload["status"] == "canceled" and payload["error"]["code"] == "canceled"


async def test_a_sync_mode_webhook_carries_no_image_bytes(client, receiver: Receiver):
    task = await submit(client, receiver.url, sync_mode=True)
    await delivery_when(client, task["task_id"], "succeeded")
    payload = json.loads(receiver.received[0].body)
    assert payload["output"]["images"] == [] and payload["output"]["output_purged"] is True
    assert b"data:image" not in receiver.received[0].body
    polled = (await client.get(f"/hub/v1/tasks/{task['task_id']}")).json()
    assert polled["output"]["images"][0]["url"].startswith("data:image/png;base64,")


async def test_the_secret_is_stable_and_a_rotation_signs_with_both(client, receiver: Receiver):
    first = await secret(client)
    assert first.startswith("whsec_") and await secret(client) == first
    rotated = (await client.post("/hub/v1/webhooks/secret/rotate")).json()
    assert rotated["secret"] != first
    assert [p["secret"] for p in rotated["previous"]] == [first]
    assert rotated["previous"][0]["expires_at"] is not None
    task = await submit(client, receiver.url)
    await delivery_when(client, task["task_id"], "succeeded")
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for key in (first, rotated["secret"]):
        Webhook(key).verify(got.body, got.headers)


async def test_each_tenant_has_its_own_secret(client, hub):
    other = {"Authorization": f"Bearer {await other_tenant_key(hub)}"}
    theirs = (await client.get("/hub/v1/webhooks/secret", headers=other)).json()["secret"]
    assert theirs != await secret(client)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:169.254.169.254]/",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
        "not a url",
    ],
)
async def test_a_webhook_url_that_can_never_be_sent_to_is_refused_at_submit(client, url):
    body = {"model": "nano-banana", "input": {"prompt": "x"}, "webhook_url": url}
    answer = await client.post("/hub/v1/tasks", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["loc"] == ["webhook_url"]
    assert (await client.get("/hub/v1/tasks")).json()["data"] == []


async def test_a_name_that_resolves_to_a_private_address_is_refused_when_sending(
    receiver: Receiver,
):
    from tests.api.conftest import _client

    strict = memory_hub(ScriptedProvider(), poll_seconds=0.1, webhook_retry_delays=[60])
    async for client in _client(strict):
        port = receiver.url.split(":")[2].split("/")[0]
        # `localhost` is refused at submit; the machine's own name resolves to a private address
        task = await submit(client, f"http://{_private_name()}:{port}/hook")
        # pending from the start: wait for its first attempt (a sleep lets the sender run)
        for _ in range(300):
            delivery = await delivery_when(client, task["task_id"], "pending")
            if delivery["history"]:
                break
            await asyncio.sleep(0.02)
        [attempt] = delivery["history"]
        assert attempt["status"] is None and "not a public address" in attempt["error"]
        assert "127.0.0.1" not in attempt["error"]
    assert receiver.received == []


def _private_name() -> str:
    import ipaddress
    import socket

    name = socket.gethostname()
    address = ipaddress.ip_address(socket.getaddrinfo(name, 80)[0][4][0])
    if address.is_global:
        pytest.skip("this machine's name resolves to a public address")
    return name


async def test_deliveries_are_listed_newest_first(client, receiver: Receiver):
    first = await submit(client, receiver.url)
    second = await submit(client, receiver.url)
    await delivery_when(client, second["task_id"], "succeeded")
    listed = (await client.get("/hub/v1/webhooks/deliveries?limit=1")).json()
    assert [d["task_id"] for d in listed["data"]] == [second["task_id"]]
    rest = await client.get(f"/hub/v1/webhooks/deliveries?cursor={listed['next_cursor']}")
    assert [d["task_id"] for d in rest.json()["data"]] == [first["task_id"]]


async def test_a_task_without_a_webhook_has_no_delivery(client):
    answer = await client.post(
        "/hub/v1/tasks", json={"model": "nano-banana", "input": {"prompt": "x"}}
    )
    missing = await client.get(f"/hub/v1/tasks/{answer.json()['task_id']}/webhook")
    assert missing.status_code == 404
