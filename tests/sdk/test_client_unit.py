"""The blocking Client against scripted answers: configuration, error mapping, retries."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from imagehub.client import Client, HubError, InvalidInput, RateLimited
from imagehub.client.config import DEFAULT_URL
from imagehub.errors import ClientError, IdempotencyKeyReused, PayloadTooLarge

TASK = {
    "task_id": "tsk_1",
    "model": "nano-banana",
    "status": "queued",
    "ready": False,
    "input": {"prompt": "x"},
    "output": None,
    "error": None,
    "provider": None,
    "warnings": [],
    "attempts": 0,
    "metadata": None,
    "created_at": "2026-01-01T00:00:00.000Z",
    "started_at": None,
    "finished_at": None,
}


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handle), seen


def test_importing_the_sdk_pulls_in_no_server_dependency():
    code = (
        "import sys, imagehub.client, imagehub.cli\n"
        "server = ('fastapi', 'starlette', 'PIL', 'uvicorn', 'sqlite3', 'pydantic_settings',\n"
        "          'prometheus_client', 'python_multipart', 'imagehub.hub', 'imagehub.store',\n"
        "          'imagehub.settings', 'imagehub.api', 'imagehub.worker')\n"
        "print([m for m in sys.modules if m in server or m.split('.')[0] in server])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_url_and_key_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("IMAGEHUB_URL", "http://hub.example:9000/")
    monkeypatch.setenv("IMAGEHUB_API_KEY", "ih_from_env")
    transport, seen = scripted(httpx.Response(200, json=TASK))
    with Client(transport=transport) as client:
        assert client.get("tsk_1").task_id == "tsk_1"
    assert str(seen[0].url) == "http://hub.example:9000/hub/v1/tasks/tsk_1"
    assert seen[0].headers["authorization"] == "Bearer ih_from_env"


def test_arguments_win_over_the_environment_and_the_default_is_local(monkeypatch):
    monkeypatch.setenv("IMAGEHUB_URL", "http://env.example")
    monkeypatch.setenv("IMAGEHUB_API_KEY", "ih_env")
    transport, seen = scripted(httpx.Response(200, json=TASK))
    with Client("http://arg.example", "ih_arg", transport=transport) as client:
        client.get("tsk_1")
    assert seen[0].url.host == "arg.example"
    assert seen[0].headers["authorization"] == "Bearer ih_arg"
    monkeypatch.delenv("IMAGEHUB_URL")
    monkeypatch.delenv("IMAGEHUB_API_KEY")
    with Client() as client:
        assert client.base_url == DEFAULT_URL


def test_submit_sends_the_body_and_a_fresh_uuid_idempotency_key():
    transport, seen = scripted(httpx.Response(202, json=TASK), httpx.Response(202, json=TASK))
    with Client("http://hub.test", "k", transport=transport) as client:
        client.submit("nano-banana", webhook_url="http://127.0.0.1/h", prompt="x", seed=3)
        client.submit("nano-banana", prompt="x", seed=3)
    body = json.loads(seen[0].content)
    assert body == {
        "model": "nano-banana",
        "input": {"prompt": "x", "seed": 3},
        "webhook_url": "http://127.0.0.1/h",
    }
    keys = [r.headers["idempotency-key"] for r in seen]
    assert len(keys[0]) == 36 and keys[0] != keys[1]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (413, {"error": {"code": "payload_too_large", "message": "big"}}, PayloadTooLarge),
        (422, {"error": {"code": "idempotency_key_reused", "message": "m"}}, IdempotencyKeyReused),
        (409, {"error": {"code": "something_new", "message": "m"}}, ClientError),
        (500, {"error": {"code": "internal_error", "message": "m"}}, HubError),
        (502, {"not": "an envelope"}, HubError),
    ],
)
def test_errors_map_to_the_class_of_their_code_else_their_status(status, body, expected):
    transport, _ = scripted(httpx.Response(status, json=body))
    client = Client("http://hub.test", "k", transport=transport, max_retries=0)
    with client, pytest.raises(expected) as caught:
        client.get("tsk_1")
    assert type(caught.value) is expected


def test_invalid_input_keeps_the_details_and_the_message():
    details = [{"loc": ["input", "seed"], "msg": "must be an integer", "type": "int_type"}]
    body = {"error": {"code": "invalid_input", "message": "1 field is invalid", "details": details}}
    transport, _ = scripted(httpx.Response(422, json=body))
    client = Client("http://hub.test", "k", transport=transport)
    with client, pytest.raises(InvalidInput) as caught:
        client.submit("nano-banana", prompt="x", seed="3")
    assert caught.value.details == details and caught.value.message == "1 field is invalid"


def test_rate_limited_carries_retry_after_and_is_not_retried():
    body = {"error": {"code": "rate_limited", "message": "slow down"}}
    transport, seen = scripted(httpx.Response(429, json=body, headers={"Retry-After": "7"}))
    client = Client("http://hub.test", "k", transport=transport)
    with client, pytest.raises(RateLimited) as caught:
        client.models()
    assert caught.value.retry_after == 7.0 and len(seen) == 1


def test_a_retried_submit_keeps_its_idempotency_key():
    overloaded = {"error": {"code": "overloaded", "message": "busy"}}
    transport, seen = scripted(
        httpx.Response(503, json=overloaded, headers={"Retry-After": "0"}),
        httpx.Response(202, json=TASK),
    )
    with Client("http://hub.test", "k", transport=transport) as client:
        assert client.submit("nano-banana", prompt="x").task_id == "tsk_1"
    assert len(seen) == 2
    assert seen[0].headers["idempotency-key"] == seen[1].headers["idempotency-key"]


def test_wait_long_polls_with_the_remaining_budget():
    ready = {**TASK, "status": "succeeded", "ready": True}
    transport, seen = scripted(httpx.Response(200, json=TASK), httpx.Response(200, json=ready))
    with Client("http://hub.test", "k", transport=transport) as client:
        assert client.wait("tsk_1", timeout=None).ready
    assert [float(r.url.params["wait"]) for r in seen] == [60.0, 60.0]
