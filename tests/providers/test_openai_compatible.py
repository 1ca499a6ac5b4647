"""OpenAI-compatible chat completions returning images: OpenRouter and self-hosted look-alikes."""

from __future__ import annotations

from typing import Any

import pytest

from imagehub.catalog import Catalog
from imagehub.errors import InvalidInput
from imagehub.providers import images
from imagehub.testing import tiny_png
from tests.providers.conftest import KEYS, TENANT, app_headers, provider_settings, run_task
from tests.providers.fake_upstream import Reply
from tests.providers.golden import INPUTS, NANO_BANANA, PHOTO_B64, SKETCH_B64
from tests.providers.wire import BLUE, GREEN, RED, c_answer, chat_ok, data_uri


def _user(text: str, *images_b64: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    content += [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
        for data in images_b64
    ]
    return {"role": "user", "content": content}


def _body(model: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "model": f"google/{model}",
        "modalities": ["image", "text"],
        "messages": messages,
        **extra,
    }


SYSTEM = {"role": "system", "content": "You draw posters."}
#: model -> the chat completion bodies (one per image) OpenRouter must receive
BODIES: dict[str, list[dict[str, Any]]] = {
    "nano-banana": [
        _body(
            "gemini-2.5-flash-image",
            [_user("a lighthouse")],
            image_config={"aspect_ratio": "16:9"},
            seed=7,
        )
    ],
    "nano-banana/edit": [
        _body("gemini-2.5-flash-image", [_user("add snow", PHOTO_B64, SKETCH_B64)])
    ],
    "nano-banana-2": [
        _body(
            "gemini-3.1-flash-image",
            [SYSTEM, _user("a poster")],
            image_config={"image_size": "512"},  # never "0.5K": Google refuses it
            seed=seed,
            reasoning={"effort": "high"},
        )
        for seed in (2147483647, 0)
    ],
    "nano-banana-2/edit": [
        _body(
            "gemini-3.1-flash-image",
            [_user("make it night", PHOTO_B64)],
            image_config={"aspect_ratio": "8:1", "image_size": "4K"},
            reasoning={"effort": "minimal"},
        )
    ],
    "nano-banana-pro": [
        _body(
            "gemini-3-pro-image",
            [_user("a travel poster")],
            image_config={"aspect_ratio": "1:1", "image_size": "2K"},
        )
    ],
    "nano-banana-pro/edit": [
        _body(
            "gemini-3-pro-image",
            [_user("on a marble table", PHOTO_B64, SKETCH_B64)],
            image_config={"image_size": "1K"},
        )
    ],
}


CATALOG = Catalog.load()


def _honourable(model: str) -> dict[str, Any]:
    """The golden input without what OpenRouter cannot honour: Google Search grounding and a
    safety setting (those are refused, see `test_what_openrouter_cannot_honour_is_refused`)."""
    spec = CATALOG.get(model)
    assert spec is not None
    cannot = {"safety_tolerance"} | ({"enable_web_search"} - set(spec.ignored))
    return {k: v for k, v in INPUTS[model].items() if k not in cannot}


async def openrouter_hub(upstream, make_hub, tmp_path, supports):
    """OpenRouter from a routes file whose `[routes.supports]` table is `supports` (TOML)."""
    upstream.handler = chat_ok
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f"""
[[routes]]
provider = "openrouter"
api_key = "{KEYS["openrouter"]}"
base_url = "{upstream.url}/api/v1"
[routes.supports]
{supports}
"""
    )
    return await make_hub(routes_file=routes)


@pytest.fixture
async def router_hub(upstream, make_hub, tmp_path):
    """OpenRouter from a routes file that says this route takes "512" for 0.5K."""
    return await openrouter_hub(
        upstream, make_hub, tmp_path, 'resolutions = ["0.5K", "1K", "2K", "4K"]'
    )


@pytest.mark.parametrize("model", NANO_BANANA)
async def test_openrouter_golden_request_and_outcome(model, upstream, router_hub):
    task = await run_task(router_hub, model, _honourable(model))
    for request in upstream.seen:
        assert request.method == "POST" and request.path == "/api/v1/chat/completions"
        assert app_headers(request) == {
            "authorization": f"Bearer {KEYS['openrouter']}",
            "content-type": "application/json",
        }
    bodies = sorted((r.json() for r in upstream.seen), key=lambda b: -b.get("seed", -1))
    assert bodies == BODIES[model]
    assert task.status == "succeeded" and task.provider == "openrouter"
    assert len(task.output.images) == len(BODIES[model])
    assert task.output.description == "\n".join(["Here you go."] * len(BODIES[model]))
    assert task.usage.input_tokens == 1300 * len(BODIES[model])
    assert not [w for w in task.warnings if "safety_tolerance" in w]


@pytest.mark.parametrize(
    ("model", "input", "message"),
    [
        (
            "nano-banana-2",
            {"resolution": "0.5K"},  # OpenRouter's guide lists 1K, 2K and 4K only
            "no configured route for nano-banana-2 supports resolution 0.5K",
        ),
        (
            "nano-banana-2",
            {"enable_web_search": True},  # its web search is not Google Search
            "no configured route for nano-banana-2 supports enable_web_search",
        ),
        (
            "nano-banana-pro/edit",
            {"image_urls": INPUTS["nano-banana-pro/edit"]["image_urls"], "safety_tolerance": 1},
            "no configured route for nano-banana-pro/edit supports safety_tolerance 1",
        ),
    ],
)
async def test_what_openrouter_cannot_honour_is_refused(upstream, make_hub, model, input, message):
    hub = await make_hub(**provider_settings("openrouter", upstream, "/api/v1"))
    with pytest.raises(InvalidInput) as caught:
        await hub.submit(TENANT, model, {"prompt": "p", **input})
    assert caught.value.message == message
    assert upstream.seen == []
    assert (await hub.list_tasks(TENANT)).tasks == []


async def test_web_search_on_a_route_that_says_it_supports_it_uses_the_server_tool(
    upstream, make_hub, tmp_path
):
    hub = await openrouter_hub(upstream, make_hub, tmp_path, "web_search = true")
    task = await run_task(hub, "nano-banana-2", {"prompt": "x", "enable_web_search": True})
    assert task.status == "succeeded"
    body = upstream.seen[0].json()
    assert body["tools"] == [{"type": "openrouter:web_search", "parameters": {"engine": "native"}}]
    assert "plugins" not in body


async def test_images_inside_the_text_content_are_found(upstream, router_hub):
    content = f"Here: ![image]({data_uri(GREEN)}) done"
    upstream.then(Reply(200, c_answer([], content=content)))
    task = await run_task(router_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "succeeded"
    assert await router_hub.media.get(task.output.images[0].file_id) == GREEN
    assert "base64" not in task.output.description


@pytest.mark.parametrize(("limit", "kept"), [(True, [BLUE]), (False, [GREEN, BLUE])])
async def test_limit_generations(upstream, router_hub, limit, kept):
    upstream.then(Reply(200, c_answer([data_uri(GREEN), data_uri(BLUE)])))
    task = await run_task(router_hub, "nano-banana", {"prompt": "x", "limit_generations": limit})
    assert [await router_hub.media.get(i.file_id) for i in task.output.images] == kept


@pytest.mark.parametrize(
    "choice",
    [{"finish_reason": "content_filter"}, {"native_finish_reason": "IMAGE_SAFETY"}],
)
async def test_content_filter_is_a_content_policy_violation(upstream, router_hub, choice):
    answer = c_answer([], content="")
    answer["choices"][0].update(choice)
    upstream.then(Reply(200, answer))
    task = await run_task(router_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "content_policy_violation"


async def test_text_only_answer_is_no_image(upstream, router_hub):
    upstream.then(Reply(200, c_answer([], content="I cannot draw that, but here is a poem.")))
    task = await run_task(router_hub, "nano-banana", {"prompt": "x"})
    assert task.error.code == "no_image_generated"
    assert "here is a poem" in task.error.message


async def test_a_200_with_an_error_object_is_classified(upstream, router_hub):
    upstream.then(Reply(200, {"error": {"code": 502, "message": "Provider returned error"}}))
    task = await run_task(router_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "succeeded" and task.attempts == 2


async def test_payment_required_is_a_route_error(upstream, router_hub):
    upstream.then(Reply(402, {"error": {"code": 402, "message": "Insufficient credits"}}))
    task = await run_task(router_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.error.code == "upstream_error"
    assert "Insufficient credits" in task.error.message


async def test_a_self_hosted_look_alike_from_the_routes_file(upstream, make_hub, tmp_path):
    upstream.handler = chat_ok
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f"""
[[routes]]
name = "local-banana"
provider = "openai_compatible"
base_url = "{upstream.url}/v1"
models = ["nano-banana-2"]
upstream_model = "my-local-banana"
headers = {{ "X-Title" = "imagehub" }}
"""
    )
    hub = await make_hub(routes_file=routes)
    task = await run_task(hub, "nano-banana-2", {"prompt": "x", "aspect_ratio": "4:1"})
    assert task.status == "succeeded" and task.provider == "local-banana"
    (request,) = upstream.seen
    assert request.path == "/v1/chat/completions"
    assert "authorization" not in request.headers and request.headers["x-title"] == "imagehub"
    assert request.json()["model"] == "my-local-banana"
    assert request.json()["image_config"] == {"aspect_ratio": "4:1", "image_size": "1K"}
    assert await hub.media.get(task.output.images[0].file_id) == RED


def _serving(upstream, files: dict[str, bytes]) -> None:
    """The fake answers chat completions, and GETs of `files` (a look-alike's image host)."""

    def handler(seen):
        if seen.method == "GET" and seen.path in files:
            return Reply(200, files[seen.path], {"content-type": "image/png"})
        return chat_ok(seen)

    upstream.handler = handler


@pytest.fixture
async def linking_hub(upstream, make_hub):
    """A hub that may fetch from loopback, as a deployment may allow its own network."""
    settings = provider_settings("openrouter", upstream, "/api/v1")
    return await make_hub(**settings, fetch_allow_private="127.0.0.1")


async def test_an_image_linked_by_url_is_fetched_without_the_key(upstream, linking_hub):
    big = tiny_png(1200, 900, (10, 20, 30))
    _serving(upstream, {"/out/1.png": big})
    upstream.then(Reply(200, c_answer([f"{upstream.url}/out/1.png", data_uri(GREEN)])))
    task = await run_task(linking_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "succeeded", task.error
    stored = [await linking_hub.media.get(i.file_id) for i in task.output.images]
    assert stored == [big, GREEN]
    (download,) = upstream.requests("GET", "/out/")
    assert "authorization" not in download.headers


async def test_a_linked_image_over_the_cap_fails_cleanly(upstream, linking_hub, monkeypatch):
    monkeypatch.setattr(images, "MAX_RESULT_BYTES", 1000)
    _serving(upstream, {"/out/big.png": tiny_png(1200, 900, (10, 20, 30)) + b"\0" * 2000})
    upstream.then(Reply(200, c_answer([f"{upstream.url}/out/big.png"])))
    task = await run_task(linking_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "upstream_error"
    assert "larger than 1,000 bytes" in task.error.message


async def test_a_link_to_a_private_address_is_refused(upstream, router_hub):
    _serving(upstream, {"/out/1.png": GREEN})
    upstream.then(Reply(200, c_answer([f"{upstream.url}/out/1.png"])))
    task = await run_task(router_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.error.code == "upstream_error"
    assert "may not connect" in task.error.message
    assert upstream.requests("GET") == []


async def test_a_linked_file_that_is_not_an_image_is_retried_then_fails(upstream, linking_hub):
    page = b"<html>" + b" " * 200 + b"</html>"

    def handler(seen):
        if seen.method == "GET":
            return Reply(200, page, {"content-type": "image/png"})
        return Reply(200, c_answer([f"{upstream.url}/out/page.png"]))

    upstream.handler = handler
    task = await run_task(linking_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.error.code == "upstream_unavailable"
    assert task.attempts > 1  # a broken link may work on a new attempt
    assert "not a PNG, JPEG, WebP or GIF" in task.error.message
