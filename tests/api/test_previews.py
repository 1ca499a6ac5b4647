"""GET /hub/v1/files/{id}?w=: a preview of a stored image, for the page's history."""

from __future__ import annotations

from io import BytesIO

import httpx
import pytest
from PIL import Image

from imagehub.hub import Hub


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = BytesIO()
    Image.new(mode, (width, height), (51, 102, 204, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


async def upload(client: httpx.AsyncClient, data: bytes) -> str:
    response = await client.post(
        "/hub/v1/files", content=data, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 201, response.text
    return "/hub/v1/files/" + response.json()["file_id"]


@pytest.mark.parametrize("width", [128, 256, 512])
async def test_a_preview_is_a_webp_of_that_width_in_proportion(client, width: int):
    path = await upload(client, png(1200, 900))
    response = await client.get(path, params={"w": width}, headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    with Image.open(BytesIO(response.content)) as image:
        assert image.format == "WEBP"
        assert image.size == (width, width * 3 // 4)
    original = await client.get(path)
    assert len(response.content) < len(original.content)


async def test_a_preview_is_never_wider_than_the_original(client):
    path = await upload(client, png(200, 100, "RGBA"))
    response = await client.get(path, params={"w": 512})
    with Image.open(BytesIO(response.content)) as image:
        assert image.size == (200, 100)
        assert image.mode == "RGBA"  # transparency kept


async def test_a_preview_is_made_once_and_served_from_the_cache(client, hub: Hub):
    path = await upload(client, png(800, 600))
    first = await client.get(path, params={"w": 256})
    file_id = path.rsplit("/", 1)[1]
    assert hub.previews.size == len(first.content)
    # a cached preview no longer needs the original
    await hub.media.delete(file_id)
    again = await client.get(path, params={"w": 256})
    assert again.status_code == 200 and again.content == first.content
    # another width does: it is made from the original, which is gone
    other = await client.get(path, params={"w": 128})
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("width", ["100", "0", "-256", "256px", "1024", ""])
async def test_any_other_width_is_422(client, width: str):
    path = await upload(client, png(64, 64))
    response = await client.get(path, params={"w": width})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "128, 256 or 512" in error["details"][0]["msg"]
    assert error["details"][0]["loc"] == ["query", "w"]


async def test_the_preview_of_an_unknown_file_is_404(client):
    response = await client.get("/hub/v1/files/f_0000000000000000000000.png", params={"w": 256})
    assert response.status_code == 404


async def test_the_openapi_documents_the_widths(client):
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/hub/v1/files/{file_id}"]["get"]
    (w,) = [p for p in operation["parameters"] if p["name"] == "w"]
    assert w["in"] == "query" and not w.get("required", False)
    ref = w["schema"]["anyOf"][0]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][ref]["enum"] == [128, 256, 512]
    assert "image/webp" in operation["responses"]["200"]["content"]
