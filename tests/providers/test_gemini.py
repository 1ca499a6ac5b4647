"""Gemini generateContent (API key) and Vertex AI (bearer token): exact requests and outcomes."""

from __future__ import annotations

import importlib.util

import pytest

from imagehub import render
from imagehub.catalog import Catalog
from imagehub.hub import Hub
from imagehub.media import MemoryMedia
from imagehub.providers.gemini import VertexProvider
from imagehub.routing.router import Route, Router
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.tasks import Grounding, Source
from imagehub.wiring import build_hub
from tests.providers.conftest import (
    FAST,
    KEYS,
    app_headers,
    assert_no_secret,
    provider_settings,
    run_task,
)
from tests.providers.fake_upstream import Reply
from tests.providers.golden import GEMINI_BODIES, INPUTS, NANO_BANANA, UPSTREAM_IDS
from tests.providers.wire import BLUE, GREEN, RED, g_answer, g_image, g_text, gemini_ok


def _by_seed(bodies: list[dict]) -> list[dict]:
    return sorted(bodies, key=lambda b: b["generationConfig"].get("seed", -1), reverse=True)


@pytest.mark.parametrize("model", NANO_BANANA)
async def test_gemini_api_golden_request_and_outcome(model, upstream, make_hub):
    upstream.handler = gemini_ok
    hub = await make_hub(**provider_settings("gemini", upstream, "/v1beta"))
    task = await run_task(hub, model, INPUTS[model])

    expected = GEMINI_BODIES[model]
    seen = upstream.seen
    assert len(seen) == len(expected)
    for request in seen:
        assert request.method == "POST"
        assert request.path == f"/v1beta/models/{UPSTREAM_IDS[model]}:generateContent"
        assert app_headers(request) == {
            "x-goog-api-key": KEYS["gemini"],
            "content-type": "application/json",
        }
    assert _by_seed([r.json() for r in seen]) == _by_seed(expected)

    assert task.status == "succeeded" and task.provider == "gemini"
    assert len(task.output.images) == len(expected)
    assert task.output.description == "\n".join(["Here it is."] * len(expected))
    assert task.usage.input_tokens == 100 * len(expected)
    assert task.usage.output_tokens == 1290 * len(expected)
    assert task.usage.cost_usd > 0
    assert task.usage.basis == "per_image"  # Google direct: per image, not its tokens
    fmt = INPUTS[model].get("output_format", "png")
    assert {i.content_type for i in task.output.images} == {f"image/{fmt}"}


class StaticTokens:
    def __init__(self) -> None:
        self.calls = 0

    async def token(self) -> str:
        self.calls += 1
        return "ya29.vertex-token"


@pytest.mark.parametrize("model", NANO_BANANA)
async def test_vertex_golden_request(model, upstream):
    upstream.handler = gemini_ok
    catalog = Catalog.load()
    vertex = VertexProvider(
        project="my-proj",
        location="europe-west4",
        tokens=StaticTokens(),
        base_url=upstream.url + "/v1",
        timeout=10,
    )
    routes = {m: [Route(vertex, UPSTREAM_IDS[m])] for m in NANO_BANANA}
    hub = build_hub(
        Settings(demo=False, **FAST),
        store=MemoryStore(),
        media=MemoryMedia(),
        catalog=catalog,
        router=Router(routes),
    )
    await hub.start()
    try:
        task = await run_task(hub, model, INPUTS[model])
    finally:
        await hub.stop()
    assert task.status == "succeeded" and task.provider == "vertex"
    for request in upstream.seen:
        assert request.path == (
            "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/"
            f"{UPSTREAM_IDS[model]}:generateContent"
        )
        assert app_headers(request) == {
            "authorization": "Bearer ya29.vertex-token",
            "content-type": "application/json",
        }
    assert _by_seed([r.json() for r in upstream.seen]) == _by_seed(GEMINI_BODIES[model])


def test_vertex_url_forms():
    tokens = StaticTokens()
    regional = VertexProvider(project="p", location="us-central1", tokens=tokens, timeout=1)
    global_ = VertexProvider(project="p", tokens=tokens, timeout=1)
    assert regional.url("m") == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1"
        "/publishers/google/models/m:generateContent"
    )
    assert global_.url("m") == (
        "https://aiplatform.googleapis.com/v1/projects/p/locations/global"
        "/publishers/google/models/m:generateContent"
    )


@pytest.fixture
async def gemini_hub(upstream, make_hub) -> Hub:
    return await make_hub(**provider_settings("gemini", upstream, "/v1beta"), max_attempts=3)


NB2 = {"prompt": "a fox", "thinking_level": "high", "limit_generations": False}


async def test_thought_parts_are_dropped_and_the_final_image_kept(upstream, gemini_hub):
    upstream.then(
        Reply(
            200,
            g_answer(
                g_text("Planning the fox", thought=True),
                g_image(GREEN, thought=True),
                g_image(BLUE, thought=True),
                g_text("A fox in snow."),
                g_image(RED),
                usage=(120, 1120, 300),
            ),
        )
    )
    task = await run_task(gemini_hub, "nano-banana-2", NB2)
    assert task.status == "succeeded"
    assert len(task.output.images) == 1
    stored = await gemini_hub.media.get(task.output.images[0].file_id)
    assert stored == RED
    assert task.output.description == "A fox in snow."
    assert task.usage.output_tokens == 1120 + 300  # thinking is billed as output


@pytest.mark.parametrize(("limit", "kept"), [(True, [BLUE]), (False, [GREEN, BLUE])])
async def test_limit_generations_keeps_one_final_image_per_call(upstream, gemini_hub, limit, kept):
    upstream.then(Reply(200, g_answer(g_image(GREEN), g_text("and another"), g_image(BLUE))))
    task = await run_task(gemini_hub, "nano-banana-2", {**NB2, "limit_generations": limit})
    stored = [await gemini_hub.media.get(i.file_id) for i in task.output.images]
    assert stored == kept


async def test_prompt_feedback_block_is_a_content_policy_violation(upstream, gemini_hub):
    upstream.then(Reply(200, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}))
    task = await run_task(gemini_hub, "nano-banana", {"prompt": "something bad"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "content_policy_violation"
    assert "PROHIBITED_CONTENT" in task.error.message
    assert task.error.retryable is False


@pytest.mark.parametrize(
    ("finish", "code"),
    [
        ("SAFETY", "content_policy_violation"),
        ("IMAGE_SAFETY", "content_policy_violation"),
        ("PROHIBITED_CONTENT", "content_policy_violation"),
        ("IMAGE_PROHIBITED_CONTENT", "content_policy_violation"),
        ("RECITATION", "content_policy_violation"),
        ("NO_IMAGE", "no_image_generated"),
        ("OTHER", "no_image_generated"),
        ("IMAGE_OTHER", "no_image_generated"),
        ("STOP", "no_image_generated"),
        ("MAX_TOKENS", "no_image_generated"),
    ],
)
async def test_200_without_an_image_is_a_failure(upstream, gemini_hub, finish, code):
    upstream.then(Reply(200, g_answer(g_text("I can only describe it."), finish=finish)))
    task = await run_task(gemini_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == code
    assert finish in task.error.message


async def test_only_thought_images_is_no_image(upstream, gemini_hub):
    upstream.then(Reply(200, g_answer(g_image(GREEN, thought=True), g_text("done"))))
    task = await run_task(gemini_hub, "nano-banana-2", NB2)
    assert task.error.code == "no_image_generated"


async def test_a_blocked_fan_out_call_keeps_the_others_with_a_warning(upstream, gemini_hub):
    upstream.then(
        Reply(200, g_answer(g_image(RED))),
        Reply(200, g_answer(finish="IMAGE_SAFETY")),
    )
    task = await run_task(gemini_hub, "nano-banana", {"prompt": "two foxes", "num_images": 2})
    assert task.status == "succeeded" and len(task.output.images) == 1
    assert any("1 of 2 images were not generated" in w for w in task.warnings)
    assert task.usage.cost_usd == pytest.approx(0.039)


async def test_invalid_argument_fails_without_retry(upstream, gemini_hub):
    upstream.then(
        Reply(
            400,
            {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Bad imageSize"}},
        )
    )
    task = await run_task(gemini_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1 and len(upstream.seen) == 1
    assert task.error.code == "upstream_error"
    assert "INVALID_ARGUMENT" in task.error.message and "Bad imageSize" in task.error.message


async def test_bad_key_fails_with_a_helpful_message_and_no_key(upstream, gemini_hub):
    upstream.then(
        Reply(
            403,
            {
                "error": {
                    "code": 403,
                    "status": "PERMISSION_DENIED",
                    "message": f"API key not valid: {KEYS['gemini']}",
                }
            },
        )
    )
    task = await run_task(gemini_hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "upstream_error" and task.error.retryable is False
    assert "credentials" in task.error.message and "API key" in task.error.message
    assert_no_secret(task)


async def test_countTokens_live_check(upstream, gemini_hub):
    upstream.then(Reply(200, {"totalTokens": 1}))
    route = gemini_hub.router.routes(gemini_hub.catalog.get("nano-banana"))[0]
    said = await route.provider.check(route.upstream_model)
    assert said == "gemini-2.5-flash-image: ok (1 tokens)"
    assert upstream.seen[0].path == "/v1beta/models/gemini-2.5-flash-image:countTokens"


def _google_auth_installed() -> bool:
    try:
        return importlib.util.find_spec("google.auth") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(_google_auth_installed(), reason="google-auth is installed here")
async def test_vertex_without_google_auth_fails_with_the_install_hint(upstream, make_hub, tmp_path):
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f'[[routes]]\nprovider = "vertex"\nproject = "p"\nbase_url = "{upstream.url}/v1"\n'
    )
    hub = await make_hub(routes)
    task = await run_task(hub, "nano-banana", {"prompt": "x"})
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "upstream_error"
    assert "pip install 'imagehub[vertex]'" in task.error.message
    assert upstream.seen == []


def _grounded(query: str, *pages: tuple[str, str]) -> dict:
    answer = g_answer(g_text("Here it is."), g_image(RED))
    answer["candidates"][0]["groundingMetadata"] = {
        "webSearchQueries": [query],
        "searchEntryPoint": {"renderedContent": f"<div class='chips'>{query}</div>"},
        "groundingChunks": [{"web": {"uri": uri, "title": title}} for uri, title in pages],
        "groundingSupports": [{"segment": {"endIndex": 11}, "groundingChunkIndices": [0]}],
    }
    return answer


async def test_web_search_grounding_is_returned_with_the_output(upstream, make_hub):
    pages = [("https://example.org/weather", "example.org"), ("https://news.test/a", "news.test")]
    upstream.then(
        Reply(200, _grounded("weather paris today", *pages)),
        Reply(200, _grounded("paris forecast", pages[1], ("https://third.test/", "third.test"))),
    )
    hub = await make_hub(**provider_settings("gemini", upstream, "/v1beta"))
    task = await run_task(
        hub,
        "nano-banana-2",
        {"prompt": "today's weather in Paris", "enable_web_search": True, "num_images": 2},
    )
    assert task.status == "succeeded"
    assert all(r.json()["tools"] == [{"googleSearch": {}}] for r in upstream.seen)
    grounding = render.task_out(task, "http://hub").model_dump()["output"]["grounding"]
    # the two calls' searches, each page once; the entry point of whichever answered first
    assert sorted(grounding["queries"]) == ["paris forecast", "weather paris today"]
    assert grounding["search_entry_point"] in {
        "<div class='chips'>weather paris today</div>",
        "<div class='chips'>paris forecast</div>",
    }
    assert sorted(s["uri"] for s in grounding["sources"]) == [
        "https://example.org/weather",
        "https://news.test/a",
        "https://third.test/",
    ]
    assert {"uri": "https://news.test/a", "title": "news.test"} in grounding["sources"]


async def test_an_answer_without_grounding_has_none(upstream, make_hub):
    upstream.handler = gemini_ok
    hub = await make_hub(**provider_settings("gemini", upstream, "/v1beta"))
    task = await run_task(hub, "nano-banana", {"prompt": "x"})
    assert task.output.grounding is None
    assert render.task_out(task, "http://hub").output.grounding is None  # type: ignore[union-attr]
    assert "grounding" not in task.output.to_dict()


async def test_malformed_grounding_is_read_as_far_as_it_goes(upstream, make_hub):
    answer = g_answer(g_image(RED))
    answer["candidates"][0]["groundingMetadata"] = {
        "webSearchQueries": "not a list",
        "groundingChunks": [{"web": {"uri": "https://ok.test/"}}, {"web": 7}, "junk"],
    }
    upstream.then(Reply(200, answer))
    hub = await make_hub(**provider_settings("gemini", upstream, "/v1beta"))
    task = await run_task(hub, "nano-banana", {"prompt": "x"})
    assert task.status == "succeeded"
    assert task.output.grounding == Grounding(sources=(Source("https://ok.test/"),))
