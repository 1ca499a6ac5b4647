"""`imagehub serve` with only a Gemini key: Gemini runs the Nano Banana models, and no placeholder
stands in for GPT Image 2, which is refused at submit with 503 `model_unavailable`.

The Gemini upstream is a loopback fake in a thread of its own (the server is another process).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from tests.acceptance.conftest import Server
from tests.acceptance.test_serve import wait_ready
from tests.providers.fake_upstream import FakeUpstream, Reply, Seen
from tests.providers.wire import RED, g_answer, g_image

GEMINI_KEY = "acceptance-gemini-key"


class ThreadedUpstream:
    """A `FakeUpstream` served by an event loop in a background thread."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeUpstream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.upstream.start(), self.loop).result(10)
        return self.upstream

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.upstream.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _gemini(seen: Seen) -> Reply:
    return Reply(200, g_answer(g_image(RED)))


@pytest.fixture
def gemini() -> Iterator[FakeUpstream]:
    with ThreadedUpstream(FakeUpstream(_gemini)) as upstream:
        yield upstream


def test_only_a_gemini_key_runs_nano_banana_on_gemini_and_refuses_gpt(
    server_factory: type[Server], tmp_path, gemini: FakeUpstream
):
    env = {
        "IMAGEHUB_GEMINI_API_KEY": GEMINI_KEY,
        "IMAGEHUB_GEMINI_BASE_URL": gemini.url + "/v1beta",
    }
    server = server_factory(tmp_path / "data", env).start("--log-level", "info")
    with server.client() as client:
        refused = client.post(
            "/hub/v1/tasks", json={"model": "gpt-image-2", "input": {"prompt": "a cat"}}
        )
        assert refused.status_code == 503
        assert refused.json()["error"] == {
            "code": "model_unavailable",
            "message": "no route serves gpt-image-2: set IMAGEHUB_OPENAI_API_KEY or "
            "IMAGEHUB_FAL_KEY, or add a route in IMAGEHUB_ROUTES_FILE",
        }
        created = client.post(
            "/hub/v1/tasks", json={"model": "nano-banana-2", "input": {"prompt": "a fox"}}
        )
        assert created.status_code in (200, 201, 202), created.text
        task = wait_ready(client, created.json()["task_id"])
        assert task["status"] == "succeeded", task
        assert task["provider"] == "gemini"
        assert [t["model"] for t in client.get("/hub/v1/tasks").json()["data"]] == ["nano-banana-2"]
        models = {m["id"]: m for m in client.get("/hub/v1/models").json()["data"]}
        assert (models["gpt-image-2"]["available"], models["gpt-image-2"]["providers"]) == (
            False,
            [],
        )
        assert models["nano-banana-2"]["providers"] == ["gemini"]
    seen = gemini.requests("POST", ":generateContent")
    assert [s.path for s in seen] == ["/v1beta/models/gemini-3.1-flash-image:generateContent"]
    assert seen[0].headers["x-goog-api-key"] == GEMINI_KEY
    server.stop()
    log = server.log.read_text()
    assert "nano-banana-2 -> gemini (gemini)" in log
    assert "gpt-image-2 -> NONE (refused: model_unavailable)" in log
