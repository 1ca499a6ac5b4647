"""The page's price, availability and example response per model, in both languages, and
`price` in /hub/v1/models: from the price book, on the routes this hub has."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from imagehub.catalog import Catalog, output_size
from imagehub.hub import Hub
from imagehub.media import MemoryMedia
from imagehub.routing.config import build_router
from imagehub.schemas import TaskOut
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.wiring import build_hub
from tests.api.conftest import _client
from tests.api.test_page import code_block
from tests.api.test_page_languages import text_of


def routed_hub(**keys: str) -> Hub:
    """A hub whose routes come from provider keys, as in production (no call is made)."""
    settings = Settings(demo=False, **{k: SecretStr(v) for k, v in keys.items()})
    catalog = Catalog.load()
    return build_hub(
        settings,
        catalog=catalog,
        router=build_router(settings, catalog),
        store=MemoryStore(),
        media=MemoryMedia(),
    )


@pytest.fixture
async def routed() -> AsyncIterator[httpx.AsyncClient]:
    """Gemini for the Nano Banana family, OpenAI for GPT Image 2."""
    hub = routed_hub(gemini_api_key="k-gemini", openai_api_key="k-openai")
    async for client in _client(hub):
        yield client


@pytest.fixture
async def gemini_only() -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(routed_hub(gemini_api_key="k-gemini")):
        yield client


def card(page: str, model_id: str) -> str:
    anchor = "model-" + model_id.replace("/", "--")
    match = re.search(rf'<details class="model-card" id="{anchor}".*?\n    </details>', page, re.S)
    assert match, f"no card for {model_id}"
    return match.group(0)


async def models(client: httpx.AsyncClient) -> dict[str, dict]:
    answer = await client.get("/hub/v1/models")
    assert answer.status_code == 200
    return {m["id"]: m for m in answer.json()["data"]}


async def test_models_carry_the_price_on_each_route(routed):
    found = await models(routed)
    [nb2] = found["nano-banana-2"]["price"]
    assert (nb2["route"], nb2["provider"], nb2["basis"]) == ("gemini", "gemini", "per_image")
    assert (nb2["usd_per_image"], nb2["min_usd_per_image"], nb2["max_usd_per_image"]) == (
        0.067,
        0.045,
        0.151,
    )
    assert nb2["varies_by"] == "resolution" and nb2["token_rates"] is None
    assert nb2["description"].startswith("$0.067 per image")
    [gpt] = found["gpt-image-2"]["price"]
    assert (gpt["route"], gpt["basis"], gpt["varies_by"]) == ("openai", "tokens", "size")
    assert gpt["token_rates"]["image_out"] == 30.0
    assert "tokens" in gpt["description"]
    [nb] = found["nano-banana"]["price"]
    assert (nb["usd_per_image"], nb["varies_by"]) == (0.039, "")
    one = (await routed.get("/hub/v1/models/nano-banana-2")).json()
    assert one["price"] == found["nano-banana-2"]["price"]


async def test_an_unserved_model_has_no_price_and_is_unavailable(gemini_only):
    found = await models(gemini_only)
    assert found["gpt-image-2"]["available"] is False and found["gpt-image-2"]["price"] == []
    assert found["nano-banana"]["available"] is True and found["nano-banana"]["price"]


async def test_the_demo_route_is_free(demo_client):
    found = await models(demo_client)
    [price] = found["nano-banana-pro"]["price"]
    assert (price["route"], price["usd_per_image"], price["max_usd_per_image"]) == ("demo", 0, 0)
    assert price["description"] == "free"


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "en",
            {
                "heading": "Price per image",
                "available": "available",
                "from": "from $0.067 per image",
                "range": "$0.045 to $0.151 by resolution",
                "tokens": "charged by the tokens the upstream reports: $30.00 per million",
                "sizes": "$0.01 to $0.41 by size and quality",
                "example": "Example response",
            },
        ),
        (
            "zh",
            {
                "heading": "每张图片价格",
                "available": "可用",
                "from": "每张 $0.067 起",
                "range": "按分辨率 $0.045 到 $0.151",
                "tokens": "按上游报告的 token 计费:图像输出每百万 token $30.00",
                "sizes": "按尺寸和质量 $0.01 到 $0.41",
                "example": "响应示例",
            },
        ),
    ],
)
async def test_the_page_shows_price_availability_and_example(routed, lang, words):
    page = (await routed.get("/", params={"lang": lang})).text
    nb2 = text_of(card(page, "nano-banana-2"))
    gpt = text_of(card(page, "gpt-image-2"))
    assert words["heading"] in nb2 and words["available"] in nb2
    assert words["range"] in nb2 and "$0.067" in nb2
    assert words["from"] in nb2
    assert words["tokens"] in gpt and words["sizes"] in gpt
    assert words["example"] in nb2


@pytest.mark.parametrize(("lang", "unavailable"), [("en", "unavailable"), ("zh", "不可用")])
async def test_the_page_says_a_model_without_a_route_is_unavailable(gemini_only, lang, unavailable):
    page = (await gemini_only.get("/", params={"lang": lang})).text
    gpt = card(page, "gpt-image-2")
    assert 'class="availability" data-available="false"' in gpt
    assert unavailable in text_of(gpt)
    assert 'class="prices"' not in gpt
    assert 'class="availability" data-available="true"' in card(page, "nano-banana")


@pytest.mark.parametrize("model_id", [m.id for m in Catalog.load()])
async def test_each_models_example_response_is_a_finished_task_of_its_example(routed, model_id):
    catalog = Catalog.load()
    spec = catalog.get(model_id)
    assert spec is not None
    page = (await routed.get("/")).text
    response = json.loads(code_block(page, "model-" + model_id.replace("/", "--") + "-response"))
    task = TaskOut.model_validate(response)  # the API's own answer shape
    assert (task.model, task.status, task.ready) == (model_id, "succeeded", True)
    for name, value in spec.example.items():
        assert task.input[name] == value
    assert task.output is not None
    assert len(task.output.images) == task.input.get("num_images", 1)
    width, height = output_size(catalog, spec, task.input)
    assert {(i.width, i.height) for i in task.output.images} == {(width, height)}
    assert all(i.url.startswith("http://hub.test/hub/v1/files/") for i in task.output.images)
    [price] = (await models(routed))[model_id]["price"]
    assert task.provider == price["route"]
    assert task.usage is not None
    # what the example request costs: each image at its price for the example's own input
    each = task.usage.cost_usd / len(task.output.images)
    assert price["min_usd_per_image"] <= each <= price["max_usd_per_image"]
    if price["varies_by"] == "":
        assert each == pytest.approx(price["usd_per_image"])


async def test_an_example_response_costs_what_its_input_asks_for(routed):
    """nano-banana-2's example asks for 2K: it costs the 2K price, not the default 1K one."""
    page = (await routed.get("/")).text
    task = json.loads(code_block(page, "model-nano-banana-2-response"))
    assert task["input"]["resolution"] == "2K"
    assert task["usage"]["cost_usd"] == pytest.approx(0.101 * task["input"]["num_images"])
