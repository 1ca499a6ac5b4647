"""Production truth over HTTP: a model no route serves answers 503 `model_unavailable`, a request
no route can honour answers 422, nothing is stored; `/hub/v1/models` and the page say which
routes serve each model. The hubs' routes come from settings, as in production; no upstream is
ever called (the refusals come first, and the model listing calls nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from imagehub.catalog import Catalog
from imagehub.hub import Hub
from imagehub.media import MemoryMedia
from imagehub.routing.config import build_router
from imagehub.schemas import ModelList
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.testing import tiny_png
from imagehub.wiring import build_hub
from tests.api.conftest import _client

#: a base URL nothing listens on: these tests must never reach an upstream
NOWHERE = "http://127.0.0.1:9"
KEY = SecretStr("k")
GEMINI = {"gemini_api_key": KEY, "gemini_base_url": NOWHERE}
OPENROUTER = {"openrouter_api_key": KEY, "openrouter_base_url": NOWHERE}


def _hub(**settings: Any) -> Hub:
    config = Settings(**settings)
    catalog = Catalog.load()
    router = build_router(config, catalog)
    return build_hub(
        config, router=router, catalog=catalog, store=MemoryStore(), media=MemoryMedia()
    )


@pytest.fixture
async def gemini_only() -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(_hub(**GEMINI)):
        yield c


@pytest.fixture
async def openrouter_only() -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(_hub(**OPENROUTER)):
        yield c


GPT_UNAVAILABLE = (
    "no route serves gpt-image-2: set IMAGEHUB_OPENAI_API_KEY or IMAGEHUB_FAL_KEY, "
    "or add a route in IMAGEHUB_ROUTES_FILE"
)


async def test_a_model_without_a_route_is_refused_and_nothing_is_stored(gemini_only):
    answer = await gemini_only.post(
        "/hub/v1/tasks", json={"model": "gpt-image-2", "input": {"prompt": "a cat"}}
    )
    assert answer.status_code == 503
    assert answer.json() == {"error": {"code": "model_unavailable", "message": GPT_UNAVAILABLE}}
    listed = await gemini_only.get("/hub/v1/tasks")
    assert listed.json()["data"] == []


OPENROUTER_REFUSALS = [
    (
        "nano-banana-2",
        {"resolution": "0.5K"},
        "resolution",
        "no configured route for nano-banana-2 supports resolution 0.5K",
    ),
    (
        "nano-banana-2",
        {"enable_web_search": True},
        "enable_web_search",
        "no configured route for nano-banana-2 supports enable_web_search",
    ),
    (
        "nano-banana/edit",
        {"image_urls": ["https://example.com/a.png"] * 4},
        "image_urls",
        "no configured route for nano-banana/edit supports 4 input images in image_urls "
        "(at most 3)",
    ),
    (
        "nano-banana",
        {"safety_tolerance": 1},
        "safety_tolerance",
        "no configured route for nano-banana supports safety_tolerance 1",
    ),
]


@pytest.mark.parametrize(("model", "input", "param", "message"), OPENROUTER_REFUSALS)
async def test_a_parameter_no_route_honours_is_refused_with_422(
    openrouter_only, model, input, param, message
):
    answer = await openrouter_only.post(
        "/hub/v1/tasks", json={"model": model, "input": {"prompt": "p", **input}}
    )
    assert answer.status_code == 422
    assert answer.json() == {
        "error": {
            "code": "invalid_input",
            "message": message,
            "details": [{"loc": ["input", param], "msg": message, "type": "unsupported_by_routes"}],
        }
    }
    assert (await openrouter_only.get("/hub/v1/tasks")).json()["data"] == []


async def test_the_openai_endpoints_answer_the_refusals_in_their_own_shape(gemini_only):
    answer = await gemini_only.post(
        "/v1/images/generations", json={"model": "gpt-image-2", "prompt": "a cat"}
    )
    assert answer.status_code == 503
    assert answer.json() == {
        "error": {
            "message": GPT_UNAVAILABLE,
            "type": "server_error",
            "param": None,
            "code": "model_unavailable",
        }
    }
    edit = await gemini_only.post(
        "/v1/images/edits",
        data={"model": "gpt-image-2", "prompt": "a cat"},
        files=[("image[]", ("a.png", _png(), "image/png"))],
    )
    assert edit.status_code == 503
    assert edit.json()["error"]["code"] == "model_unavailable"
    assert "no route serves gpt-image-2/edit" in edit.json()["error"]["message"]
    assert (await gemini_only.get("/hub/v1/tasks")).json()["data"] == []


async def test_models_say_whether_they_are_available_and_which_routes_serve_them(gemini_only):
    answer = await gemini_only.get("/hub/v1/models")
    served = {m["id"]: (m["available"], m["providers"]) for m in answer.json()["data"]}
    assert served == {
        "nano-banana": (True, ["gemini"]),
        "nano-banana-2": (True, ["gemini"]),
        "nano-banana-pro": (True, ["gemini"]),
        "gpt-image-2": (False, []),
        "nano-banana/edit": (True, ["gemini"]),
        "nano-banana-2/edit": (True, ["gemini"]),
        "nano-banana-pro/edit": (True, ["gemini"]),
        "gpt-image-2/edit": (False, []),
    }
    ModelList.model_validate(answer.json())  # the SDK's own schema reads it
    one = (await gemini_only.get("/hub/v1/models/gpt-image-2")).json()
    assert (one["available"], one["providers"]) == (False, [])


async def test_routes_are_listed_in_the_order_tried_and_the_demo_as_demo():
    hub = _hub(**GEMINI, **OPENROUTER, demo=True)
    async for client in _client(hub):
        data = (await client.get("/hub/v1/models")).json()["data"]
        served = {m["id"]: m["providers"] for m in data}
        assert served["nano-banana-2"] == ["gemini", "openrouter"]
        assert served["gpt-image-2"] == ["demo"]
        assert all(m["available"] for m in data)


async def test_the_model_reference_page_shows_what_serves_each_model(gemini_only):
    page = (await gemini_only.get("/")).text
    gpt = page.split('data-model="gpt-image-2"', 1)[1].split("</details>", 1)[0]
    assert 'data-available="false"' in gpt and "unavailable on this hub" in gpt
    banana = page.split('data-model="nano-banana-2"', 1)[1].split("</details>", 1)[0]
    assert 'data-available="true"' in banana and "<code>gemini</code>" in banana


def _png() -> bytes:
    return tiny_png(8, 8, (255, 0, 0))
