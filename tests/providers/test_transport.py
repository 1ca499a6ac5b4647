"""Every provider against the same misbehaving upstream: the task outcome of each failure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.providers.conftest import assert_no_secret, provider_settings, run_task
from tests.providers.fake_upstream import FakeUpstream, Hang, Reply, Reset, Truncate
from tests.providers.wire import (
    RED,
    FalQueue,
    b64,
    c_answer,
    chat_ok,
    fal_output,
    g_answer,
    gemini_ok,
    openai_ok,
)

CUT = b64(RED)[:-6]  # base64 of a PNG, cut short


@dataclass
class Protocol:
    kind: str
    model: str
    base_path: str
    #: installs the protocol's normal answers on the fake upstream
    install: Callable[[FakeUpstream], Any]
    #: a 200 answer whose image base64 is cut short
    cut_image: Callable[[FakeUpstream], Any]


def _fal(upstream: FakeUpstream) -> FalQueue:
    queue = FalQueue(url=upstream.url, states=["IN_PROGRESS", "COMPLETED"])
    upstream.handler = queue
    return queue


def _fal_cut(upstream: FakeUpstream) -> None:
    queue = _fal(upstream)
    output = fal_output([RED])
    output["images"][0]["url"] = "data:image/png;base64," + CUT
    queue.result = Reply(200, output)


def _handler(handler: Any) -> Callable[[FakeUpstream], Any]:
    def install(upstream: FakeUpstream) -> None:
        upstream.handler = handler

    return install


def _cut(body: dict[str, Any]) -> Callable[[FakeUpstream], Any]:
    def install(upstream: FakeUpstream) -> None:
        upstream.handler = lambda seen: Reply(200, body)

    return install


GEMINI_CUT = g_answer({"inlineData": {"mimeType": "image/png", "data": CUT}})
OPENAI_CUT = {"data": [{"b64_json": CUT}]}
CHAT_CUT = c_answer(["data:image/png;base64," + CUT])

PROTOCOLS = [
    Protocol("gemini", "nano-banana", "/v1beta", _handler(gemini_ok), _cut(GEMINI_CUT)),
    Protocol("openai", "gpt-image-2", "/v1", _handler(openai_ok), _cut(OPENAI_CUT)),
    Protocol("openrouter", "nano-banana", "/api/v1", _handler(chat_ok), _cut(CHAT_CUT)),
    Protocol("fal", "nano-banana", "", _fal, _fal_cut),
]
IDS = [p.kind for p in PROTOCOLS]
INPUT = {"prompt": "a small red square"}


@pytest.fixture(params=PROTOCOLS, ids=IDS)
def protocol(request) -> Protocol:
    return request.param


async def _hub(make_hub, upstream, protocol: Protocol, **settings: Any):
    config = provider_settings(protocol.kind, upstream, protocol.base_path)
    return await make_hub(**config, **settings)


async def test_success(upstream, make_hub, protocol):
    protocol.install(upstream)
    hub = await _hub(make_hub, upstream, protocol)
    task = await run_task(hub, protocol.model, INPUT)
    assert task.status == "succeeded" and task.attempts == 1
    assert task.provider == protocol.kind
    assert await hub.media.get(task.output.images[0].file_id) == RED


@pytest.mark.parametrize(
    "first",
    [Reply(503, {"error": {"message": "overloaded"}}), Reset(), Reply(200, b"{not json")],
    ids=["503", "reset", "malformed-json"],
)
async def test_a_retryable_failure_then_success(upstream, make_hub, protocol, first):
    protocol.install(upstream)
    upstream.then(first)
    hub = await _hub(make_hub, upstream, protocol)
    task = await run_task(hub, protocol.model, INPUT)
    assert task.status == "succeeded" and task.attempts == 2
    assert task.error is None


async def test_429_retry_after_is_honoured(upstream, make_hub, protocol):
    protocol.install(upstream)
    upstream.then(Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"}))
    hub = await _hub(make_hub, upstream, protocol)
    task = await run_task(hub, protocol.model, INPUT)
    assert task.status == "succeeded" and task.attempts == 2
    first, second = upstream.seen[0], upstream.seen[1]
    assert second.at - first.at >= 0.9  # the retry waited as long as the upstream asked


@pytest.mark.parametrize(
    ("script", "code", "words"),
    [
        (Hang(10), "upstream_timeout", "within 0.3 s"),
        (Reset(), "upstream_unavailable", "cut the connection"),
        (Reply(200, b"{not json"), "upstream_unavailable", "malformed"),
        (Truncate(b'{"data": [1, 2, 3]}'), "upstream_unavailable", "cut the connection"),
        (Reply(503, {"error": {"message": "overloaded"}}), "upstream_unavailable", "HTTP 503"),
        (Reply(429, {"error": {"message": "slow"}}), "upstream_rate_limited", "HTTP 429"),
    ],
    ids=["hang", "reset", "malformed-json", "truncated-body", "503", "429"],
)
async def test_failures_finish_with_the_api_error_code(
    upstream, make_hub, protocol, script, code, words
):
    protocol.install(upstream)
    upstream.then(script)
    # a short timeout only where the hang needs one: a slow machine must not turn others into it
    timeout = 0.3 if isinstance(script, Hang) else 30
    hub = await _hub(make_hub, upstream, protocol, max_attempts=1, upstream_timeout_seconds=timeout)
    task = await run_task(hub, protocol.model, INPUT)
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == code and task.error.retryable is False  # gave up
    assert words in task.error.message and "gave up after 1 attempt" in task.error.message
    assert "Traceback" not in task.error.message
    assert_no_secret(task)


async def test_truncated_base64_is_retried_then_reported(upstream, make_hub, protocol):
    protocol.cut_image(upstream)
    hub = await _hub(make_hub, upstream, protocol, max_attempts=2)
    task = await run_task(hub, protocol.model, INPUT)
    assert task.status == "failed" and task.attempts == 2
    assert task.error.code == "upstream_unavailable"
    assert "truncated" in task.error.message
