"""Input images as each upstream documents them, with real-size photos: the client's own bytes
and type when the upstream reads the format, re-encoded or downscaled only to fit a documented
limit, and then with a task warning. The fakes refuse what the real upstreams refuse."""

from __future__ import annotations

import base64
import json
import os
from io import BytesIO
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

from imagehub.catalog import Catalog
from imagehub.errors import UpstreamError
from imagehub.imaging import InputImage
from imagehub.media import MemoryMedia
from imagehub.providers import GenerationRequest, Provider
from imagehub.providers.fal import FalProvider
from imagehub.providers.gemini import GeminiProvider, VertexProvider
from imagehub.providers.inputs import InlineLimits, fit
from imagehub.providers.openai import OpenAIProvider
from imagehub.providers.openai_compatible import OpenRouterProvider
from imagehub.routing.router import Route, Router
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.tasks import Task
from imagehub.wiring import build_hub
from tests.providers.conftest import FAST, KEYS, TENANT
from tests.providers.fake_upstream import FakeUpstream, Seen
from tests.providers.wire import (
    GEMINI_MAX_REQUEST,
    VERTEX_MAX_INLINE,
    FalQueue,
    chat_ok,
    data_uri,
    gemini_ok,
    gemini_refusal,
    openai_ok,
)

KINDS = ["gemini", "vertex", "openai", "openrouter", "fal"]
CATALOG = Catalog.load()


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A 12-megapixel JPEG like a phone's, about 6 MB: under every upstream's limits."""
    base = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    grain = Image.effect_noise((4000, 3000), 40).convert("RGB")
    return _jpeg(Image.blend(base, grain, 0.5), 90)


@pytest.fixture(scope="module")
def noise() -> bytes:
    """A 12-megapixel JPEG of pure noise, about 11 MB: over Vertex AI's 7 MB even re-encoded."""
    return _jpeg(Image.frombytes("RGB", (4000, 3000), os.urandom(4000 * 3000 * 3)), 90)


class _Tokens:
    async def token(self) -> str:
        return "ya29.vertex-token"


def _provider(kind: str, url: str) -> tuple[Provider, str, str]:
    """A provider of `kind` on the fake upstream, the hub model and the upstream model id."""
    edit, gemini_id = "nano-banana/edit", "gemini-2.5-flash-image"
    if kind == "gemini":
        key = SecretStr(KEYS["gemini"])
        return GeminiProvider(api_key=key, base_url=url, timeout=30), edit, gemini_id
    if kind == "vertex":
        vertex = VertexProvider(project="p", tokens=_Tokens(), base_url=url, timeout=30)
        return vertex, edit, gemini_id
    if kind == "openai":
        key = SecretStr(KEYS["openai"])
        openai = OpenAIProvider(api_key=key, base_url=url, catalog=CATALOG, timeout=30)
        return openai, "gpt-image-2/edit", "gpt-image-2"
    if kind == "openrouter":
        key = SecretStr(KEYS["openrouter"])
        return OpenRouterProvider(api_key=key, base_url=url, timeout=30), edit, gemini_id
    key = SecretStr(KEYS["fal"])
    fal = FalProvider(api_key=key, base_url=url, catalog=CATALOG, timeout=30, poll_seconds=0.02)
    return fal, edit, "fal-ai/nano-banana/edit"


def _answering(kind: str, upstream: FakeUpstream) -> None:
    handlers = {"gemini": gemini_ok, "vertex": gemini_ok, "openai": openai_ok}
    handlers["openrouter"] = chat_ok
    upstream.handler = handlers.get(kind) or FalQueue(url=upstream.url)


async def _run(kind: str, upstream: FakeUpstream, images: list[bytes]) -> Task:
    provider, model, upstream_model = _provider(kind, upstream.url)
    _answering(kind, upstream)
    hub = build_hub(
        Settings(demo=False, **FAST),
        store=MemoryStore(),
        media=MemoryMedia(),
        catalog=CATALOG,
        router=Router({model: [Route(provider, upstream_model)]}),
    )
    await hub.start()
    try:
        refs = [data_uri(data, "image/jpeg") for data in images]
        task, _ = await hub.submit(TENANT, model, {"prompt": "x", "image_urls": refs})
        return await hub.wait(TENANT, task.id, 60)
    finally:
        await hub.stop()


def _sent(kind: str, upstream: FakeUpstream) -> list[tuple[str, bytes]]:
    """The input images the upstream received: (content type, bytes), in order."""
    request = next(s for s in upstream.seen if s.method == "POST")
    if kind in ("gemini", "vertex"):
        parts = request.json()["contents"][0]["parts"]
        blobs = [p["inlineData"] for p in parts if "inlineData" in p]
        return [(b["mimeType"], base64.b64decode(b["data"])) for b in blobs]
    if kind == "openai":
        return [(ctype, data) for name, _, ctype, data in request.form() if name == "image[]"]
    if kind == "openrouter":
        content = request.json()["messages"][-1]["content"]
        uris = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    else:
        uris = request.json()["image_urls"]
    return [_parse_data_uri(uri) for uri in uris]


def _parse_data_uri(uri: str) -> tuple[str, bytes]:
    head, payload = uri.split(",", 1)
    return head.removeprefix("data:").removesuffix(";base64"), base64.b64decode(payload)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_jpeg_goes_upstream_as_the_same_jpeg(kind, upstream, photo):
    task = await _run(kind, upstream, [photo])
    assert task.status == "succeeded", task.error
    assert _sent(kind, upstream) == [("image/jpeg", photo)]
    assert task.warnings == ()


async def test_vertex_gets_an_oversized_image_under_its_7_mb_with_a_warning(upstream, noise):
    assert len(noise) > VERTEX_MAX_INLINE
    task = await _run("vertex", upstream, [noise])
    assert task.status == "succeeded", task.error
    ((ctype, sent),) = _sent("vertex", upstream)
    assert ctype == "image/jpeg" and len(sent) <= 7_000_000
    with Image.open(BytesIO(sent)) as image:
        width, height = image.size
    assert width < 4000 and width * 3 == pytest.approx(height * 4, abs=4)  # same proportions
    (warning,) = task.warnings
    said = f"image_urls[0] was re-encoded as JPEG and downscaled from 4000x3000 to {width}x{height}"
    assert warning.startswith(said)
    assert "Vertex AI" in warning


async def test_gemini_api_gets_images_under_its_20_mb_request_with_warnings(upstream, noise, photo):
    task = await _run("gemini", upstream, [noise, photo, noise])
    assert task.status == "succeeded", task.error
    (request,) = upstream.requests("POST")
    assert len(request.body) <= GEMINI_MAX_REQUEST
    sent = _sent("gemini", upstream)
    assert [ctype for ctype, _ in sent] == ["image/jpeg"] * 3
    assert len(task.warnings) == 3  # 11 + 6 + 11 MB: each must give way
    assert all("the Gemini API's limits" in w for w in task.warnings)


def _gemini_seen(path: str, data: bytes, mime: str = "image/jpeg") -> Seen:
    part = {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "x"}, part]}]}
    return Seen("POST", path, {}, {}, json.dumps(body).encode())


def test_the_fake_refuses_what_gemini_documents_it_refuses(noise):
    vertex = "/v1/projects/p/locations/global/publishers/google/models/m:generateContent"
    api = "/v1beta/models/m:generateContent"
    assert gemini_refusal(_gemini_seen(vertex, noise)) is not None
    assert gemini_refusal(_gemini_seen(api, noise)) is None
    assert gemini_refusal(_gemini_seen(api, noise * 2)) is not None  # 30 MB as base64
    assert gemini_refusal(_gemini_seen(api, b"GIF89a", "image/gif")) is not None


def _images(*sizes: int) -> tuple[InputImage, ...]:
    return tuple(InputImage(b"x" * size, "image/jpeg", 10, 10) for size in sizes)


async def test_images_within_the_limits_are_left_alone():
    images = _images(5_000_000, 6_000_000)
    limits = InlineLimits("X", each_bytes=7_000_000, total_b64=20_000_000)
    assert await fit(images, limits, "r") == (images, ())


async def test_too_many_images_for_the_upstream_fail_before_any_call():
    limits = InlineLimits("OpenAI", count=16)
    with pytest.raises(UpstreamError, match="takes at most 16 input images; 17 were given"):
        await fit(_images(*[10] * 17), limits, "openai")


async def test_an_openai_edit_with_17_images_is_refused_before_any_call(upstream):
    provider, model, upstream_model = _provider("openai", upstream.url)
    _answering("openai", upstream)
    request = GenerationRequest(
        model=CATALOG.get(model),  # type: ignore[arg-type]
        params={"prompt": "x", "image_urls": ["u"] * 17},
        images=_images(*[10] * 17),
        upstream_model=upstream_model,
    )
    with pytest.raises(UpstreamError):
        await provider.generate(request)
    assert upstream.seen == []
    await provider.aclose()


async def test_a_request_budget_is_shared_and_small_images_keep_their_bytes():
    # 4 MB as base64 in all: the 0.3 MB image fits its share, the two large ones split the rest
    limits = InlineLimits("X", total_b64=4_000_000)
    small = Image.new("RGB", (300, 200), (1, 2, 3))
    large = Image.frombytes("RGB", (1600, 1200), os.urandom(1600 * 1200 * 3))
    images = tuple(
        InputImage(_jpeg(img, 95), "image/jpeg", *img.size) for img in (large, small, large)
    )
    fitted, warnings = await fit(images, limits, "r")
    assert fitted[1] is images[1]
    assert sum(len(base64.b64encode(i.data)) for i in fitted) <= 4_000_000
    assert [w.split(" ")[0] for w in warnings] == ["image_urls[0]", "image_urls[2]"]
