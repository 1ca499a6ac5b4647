"""OpenAI-compatible chat completions returning images: OpenRouter and self-hosted look-alikes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.providers.conftest import KEYS, app_headers, provider_settings, run_task
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
            plugins=[{"id": "web"}],
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


@pytest.fixture
async def router_hub(upstream, make_hub):
    upstream.handler = chat_ok
    return await make_hub(**provider_settings("openrouter", upstream, "/api/v1"))


@pytest.mark.parametrize("model", NANO_BANANA)
async def test_openrouter_golden_request_and_outcome(model, upstream, router_hub):
    task = await run_task(router_hub, model, INPUTS[model])
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
    tolerance = str(INPUTS[model].get("safety_tolerance", "4"))
    ignored = [w for w in task.warnings if "safety_tolerance" in w]
    assert bool(ignored) == (tolerance != "4")


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
