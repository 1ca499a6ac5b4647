"""Reading an upstream's wait hints and keeping its secrets out of messages."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from imagehub.errors import (
    UpstreamConfigError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from imagehub.providers.http import (
    Answer,
    UpstreamHTTP,
    _json,
    parse_duration,
    retry_after_header,
)
from tests.providers.fake_upstream import Chunked, Reply


def _answer(status: int = 429, **headers: str) -> Answer:
    return Answer(status, {k.replace("_", "-"): v for k, v in headers.items()}, b"")


def test_retry_after_forms():
    assert retry_after_header(_answer(retry_after_ms="1500", retry_after="9")) == 1.5
    assert retry_after_header(_answer(retry_after="7")) == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_header(_answer(retry_after=later)) <= 30
    assert retry_after_header(_answer(retry_after="soon")) is None
    assert retry_after_header(_answer()) is None


def test_a_small_json_body_holds_only_its_own_size():
    # orjson's bytes keep a 4 KB buffer; aiohttp holds the body for the whole upstream call
    tracemalloc.start()
    try:
        body = _json({"model": "gpt-image-2", "prompt": "a lighthouse"})
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert body == b'{"model":"gpt-image-2","prompt":"a lighthouse"}'
    assert held < 512


def test_protobuf_durations():
    assert parse_duration("37s") == 37.0
    assert parse_duration("0.25s") == 0.25
    assert parse_duration("forever") is None
    assert parse_duration(12) is None


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, UpstreamRateLimited, True),
        (408, UpstreamTimeout, True),
        (504, UpstreamTimeout, True),
        (500, UpstreamUnavailable, True),
        (503, UpstreamUnavailable, True),
        (409, UpstreamUnavailable, True),
        (401, UpstreamConfigError, False),
        (403, UpstreamConfigError, False),
        (404, UpstreamConfigError, False),
        (402, UpstreamConfigError, False),
        (400, UpstreamError, False),
        (422, UpstreamError, False),
    ],
)
def test_every_status_has_one_meaning(status, kind, retryable):
    http = UpstreamHTTP(label="route-x", timeout=1, secrets=("sk-secret",))
    error = http.error(_answer(status), "said sk-secret " + "x" * 500)
    assert type(error) is kind and error.retryable is retryable
    assert "sk-secret" not in error.message and "route-x" in error.message
    assert len(error.message) < 450


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_answer_over_the_byte_cap_is_refused_without_reading_it_all(upstream, chunked):
    body = bytes(300_000)
    upstream.handler = lambda seen: Chunked(body) if chunked else Reply(200, body)
    http = UpstreamHTTP(label="route-x", timeout=5)
    try:
        fits = await http.request("GET", f"{upstream.url}/a", max_bytes=len(body))
        assert fits.content == body
        with pytest.raises(UpstreamError, match="route-x's answer is larger than 299,999 bytes"):
            await http.request("GET", f"{upstream.url}/b", max_bytes=len(body) - 1)
    finally:
        await http.aclose()
