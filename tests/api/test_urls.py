"""Every URL field (`image_urls`, `mask_url`, `webhook_url`) is vetted the same way at submit:
a URL the hub can never fetch, or a host it may not reach, is a 422 naming the field."""

from __future__ import annotations

import httpx
import pytest

from imagehub.testing import ScriptedProvider, memory_hub
from tests.api.conftest import _client

BAD = [
    "http://",
    "http://a\x00b/",
    "http://user:secret@example.com/a.png",
    "ftp://example.com/a.png",
    "http://localhost:9999/a.png",
    "http://sub.localhost/a.png",
    "http://127.0.0.1:9999/a.png",
    "http://127.1/a.png",
    "http://2130706433/a.png",
    "http://[::1]/a.png",
    "http://169.254.169.254/latest",
]


def edit(**input: object) -> dict[str, object]:
    return {"model": "nano-banana/edit", "input": {"prompt": "x", **input}}


@pytest.fixture
async def strict() -> object:
    """A hub with no allow-list: public addresses on ports 80 and 443 only."""
    async for client in _client(memory_hub(ScriptedProvider(), poll_seconds=0.1)):
        yield client


@pytest.mark.parametrize("url", BAD)
async def test_every_url_field_refuses_the_same_urls_at_submit(strict: httpx.AsyncClient, url):
    answers = {
        ("input", "image_urls", 1): await strict.post(
            "/hub/v1/tasks", json=edit(image_urls=["https://example.com/a.png", url])
        ),
        ("webhook_url",): await strict.post(
            "/hub/v1/tasks",
            json={**edit(image_urls=["https://example.com/a.png"]), "webhook_url": url},
        ),
    }
    for loc, answer in answers.items():
        assert answer.status_code == 422, (loc, url, answer.text)
        assert [tuple(d["loc"]) for d in answer.json()["error"]["details"]] == [loc]
    assert (await strict.get("/hub/v1/tasks")).json()["data"] == [], "nothing stored"


async def test_a_mask_url_is_vetted_too(strict: httpx.AsyncClient):
    body = edit(image_urls=["https://example.com/a.png"], mask_url="http://localhost/m.png")
    body["model"] = "gpt-image-2/edit"
    answer = await strict.post("/hub/v1/tasks", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["loc"] == ["input", "mask_url"]


async def test_hub_files_data_uris_and_public_names_stay_accepted(strict: httpx.AsyncClient):
    refs = [
        "http://127.0.0.1:8000/hub/v1/files/f_" + "a" * 22 + ".png",
        "data:image/png;base64,iVBORw0KGgo=",
        "https://images.example.com/a.png",
    ]
    answer = await strict.post("/hub/v1/tasks", json=edit(image_urls=refs))
    assert answer.status_code == 202, answer.text


async def test_an_allow_listed_localhost_is_accepted():
    hub = memory_hub(ScriptedProvider(), poll_seconds=0.1, fetch_allow_private="localhost")
    async for client in _client(hub):
        body = {**edit(image_urls=["https://example.com/a.png"])}
        body["webhook_url"] = "http://localhost:9999/hook"
        assert (await client.post("/hub/v1/tasks", json=body)).status_code == 202
