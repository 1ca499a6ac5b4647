"""Partial images live: `imagehub serve` with an OpenAI route to a loopback fake that streams
partial images and holds the final image until the test lets it go. The partial images must
reach the client (as hub `partial_image` events, and as OpenAI's own events through the official
`openai` package) while the image is still being drawn.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from imagehub.client import Client
from tests.acceptance.conftest import KEY, Server
from tests.acceptance.test_routing_truth import ThreadedUpstream
from tests.providers.fake_upstream import FakeUpstream
from tests.providers.wire import OpenAIStreaming

OPENAI_KEY = "sk-acceptance-openai"


class Live:
    """The fake in its thread's loop, with a gate the test opens from this thread."""

    def __init__(self, threaded: ThreadedUpstream, fake: OpenAIStreaming) -> None:
        self.threaded = threaded
        self.fake = fake

    def hold(self) -> None:
        """Hold the next streams' final image until `release`."""
        self.fake.gate = asyncio.Event()

    def release(self) -> None:
        gate = self.fake.gate
        assert gate is not None
        self.threaded.loop.call_soon_threadsafe(gate.set)


@pytest.fixture
def live() -> Iterator[tuple[Live, FakeUpstream]]:
    fake = OpenAIStreaming()
    threaded = ThreadedUpstream(FakeUpstream(fake))
    with threaded as upstream:
        yield Live(threaded, fake), upstream


@pytest.fixture
def server(server_factory: type[Server], tmp_path, live) -> Server:
    _, upstream = live
    env = {"IMAGEHUB_OPENAI_API_KEY": OPENAI_KEY, "IMAGEHUB_OPENAI_BASE_URL": upstream.url + "/v1"}
    return server_factory(tmp_path / "data", env).start()


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs as the lines of a server-sent event stream arrive."""
    fields: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            yield fields["event"], json.loads(fields["data"])
            fields = {}


def test_hub_events_carry_the_partial_images_before_the_image_is_done(server: Server, live):
    gate, upstream = live
    gate.hold()
    with server.client() as client:
        body = {"model": "gpt-image-2", "input": {"prompt": "a harbour"}, "partial_images": 2}
        created = client.post("/hub/v1/tasks", json=body)
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        kinds: list[str] = []
        with client.stream("GET", f"/hub/v1/tasks/{task_id}/events") as stream:
            events = sse_events(stream.iter_lines())
            partials = []
            for kind, data in events:
                kinds.append(kind)
                if kind == "partial_image":
                    partials.append(data)
                    if len(partials) == 2:
                        break
            # the upstream still holds the image: the partial images came while it was drawn
            assert "done" not in kinds
            running = client.get(f"/hub/v1/tasks/{task_id}").json()
            assert running["status"] == "running"
            assert [p["index"] for p in running["partials"]] == [0, 1]
            for partial, drawn in zip(partials, gate.fake.partials, strict=False):
                assert client.get(partial["url"]).content == drawn
            gate.release()
            rest = [(kind, data) for kind, data in events]
        assert [kind for kind, _ in rest][-1] == "done"
        done = rest[-1][1]
        assert done["status"] == "succeeded"
        image = client.get(done["output"]["images"][0]["url"])
        assert image.content == gate.fake.final
    (request,) = upstream.requests("POST", "/images/generations")
    assert (request.json()["stream"], request.json()["partial_images"]) == (True, 2)


def test_the_openai_package_streams_partial_images_as_they_are_drawn(server: Server, live):
    gate, _ = live
    gate.hold()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    stream = client.images.generate(
        model="gpt-image-2", prompt="a harbour", stream=True, partial_images=2, quality="low"
    )
    kinds = []
    with stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "image_generation.partial_image":
                index = event.partial_image_index
                assert base64.b64decode(event.b64_json) == gate.fake.partials[index]
                if index == 1:  # both partial images are here, the image is still held upstream
                    gate.release()
            else:
                assert event.type == "image_generation.completed"
                assert base64.b64decode(event.b64_json) == gate.fake.final
                assert event.usage.output_tokens == 4160
    assert kinds == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]


def test_the_hub_sdk_asks_for_partial_images_and_reads_them_on_the_task(server: Server, live):
    _, upstream = live
    with Client(server.url, KEY) as hub:
        task = hub.submit("gpt-image-2", prompt="a harbour", partial_images=1)
        assert task.partial_images == 1
        done = hub.wait(task.task_id, 60)
    assert done.status == "succeeded"
    (partial,) = done.partials
    assert (partial.index, partial.width, partial.height) == (0, 1024, 1024)
    (request,) = upstream.requests("POST", "/images/generations")
    assert request.json()["partial_images"] == 1
