"""One price book: each model on each kind of route, reserved at submit and settled at finish."""

from __future__ import annotations

from typing import Any

import pytest

from imagehub.catalog import Catalog, Validator
from imagehub.tenancy.pricing import Pricing, Tokens

CATALOG = Catalog.load()
PRICING = Pricing.load(CATALOG)
VALIDATOR = Validator(CATALOG)

NANO_BANANA = ["nano-banana", "nano-banana/edit"]
NANO_BANANA_2 = ["nano-banana-2", "nano-banana-2/edit"]
PRO = ["nano-banana-pro", "nano-banana-pro/edit"]
GPT = ["gpt-image-2", "gpt-image-2/edit"]
KINDS = ["gemini", "vertex", "openrouter", "openai_compatible", "fal", "openai", "demo", "other"]


def params(model: str, **values: Any) -> dict[str, Any]:
    """The validated input of a model, defaults applied."""
    body: dict[str, Any] = {"prompt": "a fox", **values}
    if model.endswith("/edit"):
        body["image_urls"] = ["https://example.com/a.png"]
    return VALIDATOR.validate(model, body).params


def each(kind: str, model: str, **values: Any) -> float:
    """The settled price of one image, in USD."""
    spec = CATALOG.get(model)
    assert spec is not None
    return PRICING.settle(kind, spec, params(model, **values), images=1).usd


# (route kinds, models, parameters, USD per image): every family on every table
GRID: list[tuple[list[str], list[str], dict[str, Any], float]] = [
    # Google direct, and the relays that pass Google's rates through
    (["gemini", "vertex", "openrouter", "openai_compatible"], NANO_BANANA, {}, 0.039),
    (["gemini", "vertex"], NANO_BANANA_2, {"resolution": "0.5K"}, 0.045),
    (["gemini", "vertex"], NANO_BANANA_2, {"resolution": "1K"}, 0.067),
    (["gemini", "vertex"], NANO_BANANA_2, {"resolution": "2K"}, 0.101),
    (["gemini", "vertex"], NANO_BANANA_2, {"resolution": "4K"}, 0.151),
    (["gemini", "vertex"], NANO_BANANA_2, {"thinking_level": "high"}, 0.067),
    (["gemini", "vertex"], PRO, {"resolution": "1K"}, 0.134),
    (["gemini", "vertex"], PRO, {"resolution": "2K"}, 0.134),
    (["gemini", "vertex"], PRO, {"resolution": "4K"}, 0.24),
    # fal, and a kind the book does not know (priced as fal lists the model)
    (["fal", "other"], NANO_BANANA, {"aspect_ratio": "16:9"}, 0.039),
    (["fal", "other"], NANO_BANANA_2, {"resolution": "0.5K"}, 0.06),
    (["fal", "other"], NANO_BANANA_2, {"resolution": "1K"}, 0.08),
    (["fal", "other"], NANO_BANANA_2, {"resolution": "2K"}, 0.12),
    (["fal", "other"], NANO_BANANA_2, {"resolution": "4K"}, 0.16),
    (["fal"], NANO_BANANA_2, {"enable_web_search": True}, 0.095),
    (["fal"], NANO_BANANA_2, {"thinking_level": "high"}, 0.082),
    (["fal"], NANO_BANANA_2, {"thinking_level": "minimal"}, 0.08),
    (["fal"], NANO_BANANA_2, {"resolution": "2K", "thinking_level": "high"}, 0.122),
    (["fal"], PRO, {"resolution": "2K"}, 0.15),
    (["fal"], PRO, {"resolution": "4K"}, 0.30),
    (["fal"], GPT, {"image_size": "square_hd", "quality": "low"}, 0.01),
    (["fal"], GPT, {"image_size": "square_hd", "quality": "medium"}, 0.06),
    (["fal"], GPT, {"image_size": "square_hd", "quality": "high"}, 0.22),
    (["fal"], GPT, {"image_size": "square_hd", "quality": "auto"}, 0.22),
    (["fal"], GPT, {"image_size": "landscape_16_9", "quality": "high"}, 0.15),
    (["fal"], GPT, {"image_size": {"width": 3840, "height": 2160}, "quality": "medium"}, 0.11),
    # OpenAI without reported tokens: its per-size table
    (["openai"], GPT, {"image_size": "square_hd", "quality": "high"}, 0.22),
    (["openai"], GPT, {"image_size": "portrait_16_9", "quality": "low"}, 0.01),
    # demo: free, whatever is asked
    (["demo"], NANO_BANANA + NANO_BANANA_2 + PRO + GPT, {}, 0.0),
    (["demo"], NANO_BANANA_2 + PRO, {"resolution": "4K"}, 0.0),
]

CASES = [
    pytest.param(kind, model, values, usd, id=f"{kind}-{model}-{values}")
    for kinds, models, values, usd in GRID
    for kind in kinds
    for model in models
]


@pytest.mark.parametrize(("kind", "model", "values", "usd"), CASES)
def test_the_price_of_each_model_on_each_route_kind(kind, model, values, usd):
    assert each(kind, model, **values) == pytest.approx(usd)


@pytest.mark.parametrize(("kind", "model", "values", "usd"), CASES)
def test_a_reservation_covers_the_settlement(kind, model, values, usd):
    spec = CATALOG.get(model)
    assert spec is not None
    valid = params(model, num_images=3, **values)
    reserved = PRICING.reserve(spec, valid, [kind])
    assert reserved >= round(3 * usd * 1_000_000)
    for made in (0, 1, 2, 3):
        assert PRICING.settle(kind, spec, valid, images=made).micros <= reserved


def test_each_image_made_is_charged_per_image():
    spec = CATALOG.get("nano-banana-2")
    assert spec is not None
    valid = params("nano-banana-2", resolution="2K", num_images=4)
    cost = PRICING.settle("fal", spec, valid, images=3)
    assert (cost.micros, cost.basis) == (360_000, "per_image")
    assert PRICING.settle("gemini", spec, valid, images=3).micros == 303_000


def test_openai_settles_on_its_reported_tokens_by_kind():
    spec = CATALOG.get("gpt-image-2/edit")
    assert spec is not None
    valid = params("gpt-image-2/edit", image_size="square_hd", quality="high")
    tokens = Tokens(input=1200, output=6208, input_image=1160, output_text=8)
    cost = PRICING.settle("openai", spec, valid, images=1, tokens=tokens)
    # text in $5, image in $8, text out $10, image out $30 per million
    usd = (40 * 5 + 1160 * 8 + 8 * 10 + 6200 * 30) / 1e6
    assert (cost.micros, cost.basis) == (round(usd * 1e6), "tokens")


def test_tokens_without_their_split_are_billed_at_the_dearer_rate():
    spec = CATALOG.get("gpt-image-2")
    assert spec is not None
    valid = params("gpt-image-2")
    cost = PRICING.settle("openai", spec, valid, images=1, tokens=Tokens(100, 1000))
    assert cost.micros == round((100 * 8 + 1000 * 30) / 1e6 * 1e6)


@pytest.mark.parametrize("kind", ["fal", "gemini", "demo", "other"])
def test_only_token_billed_routes_settle_on_tokens(kind):
    spec = CATALOG.get("nano-banana")
    assert spec is not None
    cost = PRICING.settle(kind, spec, params("nano-banana"), images=1, tokens=Tokens(10, 1290))
    assert cost.basis == "per_image"
    assert cost.micros == (0 if kind == "demo" else 39_000)


@pytest.mark.parametrize("quality", ["low", "medium", "high", "auto"])
@pytest.mark.parametrize("size", ["square_hd", "landscape_4_3", "portrait_16_9"])
def test_openai_reserves_the_listed_price_and_the_prompt(quality, size):
    spec = CATALOG.get("gpt-image-2")
    assert spec is not None
    prompt = "a cafe menu with three coffees " * 20
    valid = params("gpt-image-2", prompt=prompt, image_size=size, quality=quality, num_images=2)
    listed = PRICING.settle("fal", spec, valid, images=2).micros
    reserved = PRICING.reserve(spec, valid, ["openai"])
    assert reserved == listed + round(len(prompt.encode()) * 5)
    # what OpenAI reports for such a task, every token its list price counts, stays within it
    tokens = Tokens(
        input=len(prompt) // 4,
        output=int(listed / 30),
        input_image=0,
        output_text=0,
    )
    assert PRICING.settle("openai", spec, valid, images=2, tokens=tokens).micros <= reserved


def test_a_submit_reserves_the_dearest_route_and_demo_alone_nothing():
    spec = CATALOG.get("nano-banana-2")
    assert spec is not None
    valid = params("nano-banana-2", resolution="4K")
    assert PRICING.reserve(spec, valid, ["gemini", "fal"]) == 160_000
    assert PRICING.reserve(spec, valid, ["gemini"]) == 151_000
    assert PRICING.reserve(spec, valid, ["demo"]) == 0
    assert PRICING.reserve(spec, valid, []) == 0


def test_the_book_fails_fast_on_a_kind_without_a_table():
    text = """
[kinds]
fal = "fal"
gemini = "missing"
[default]
table = "fal"
[tables.fal."*"]
per_image = 0.01
"""
    with pytest.raises(ValueError, match="gemini"):
        Pricing.load(CATALOG, text)


def test_the_book_fails_fast_when_its_default_table_misses_a_family():
    text = """
[kinds]
fal = "fal"
[default]
table = "fal"
[tables.fal.nano-banana]
per_image = 0.039
"""
    with pytest.raises(ValueError, match="gpt-image-2"):
        Pricing.load(CATALOG, text)


async def test_the_basis_survives_the_store(tmp_path):
    from imagehub.store import SQLiteStore
    from imagehub.tasks import Task, Usage

    store = SQLiteStore(tmp_path / "hub.db")
    await store.open()
    try:
        for i, usage in enumerate(
            (Usage(0.12505, 50, 4160, "tokens"), Usage(0.039, None, None, "per_image"))
        ):
            task = Task(id=f"tsk_{i}", tenant_id="t", model="gpt-image-2", input={}, usage=usage)
            await store.create(task)
            stored = await store.get(task.id)
            assert stored is not None and stored.usage == usage
    finally:
        await store.close()
    # a task finished before the basis was recorded reads back without one
    assert Usage(**{"cost_usd": 0.039, "input_tokens": 1, "output_tokens": 2}).basis is None
