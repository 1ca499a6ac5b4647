"""The whole loop with the real offline demo provider, for all eight models."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from imagehub.testing import tiny_png
from tests.api.test_tasks import submit_and_wait


def png(width: int, height: int, color=(30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


async def upload(client, data: bytes) -> str:
    response = await client.post(
        "/hub/v1/files", content=data, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 201, response.text
    return response.json()["url"]


async def fetch_image(client, url: str) -> Image.Image:
    response = await client.get(url)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


@pytest.mark.parametrize(
    ("model", "extra", "size"),
    [
        ("nano-banana", {"aspect_ratio": "16:9"}, (1344, 768)),
        ("nano-banana-2", {"aspect_ratio": "21:9", "resolution": "0.5K"}, (792, 336)),
        ("nano-banana-pro", {"aspect_ratio": "3:4", "resolution": "2K"}, (1792, 2400)),
        ("gpt-image-2", {"image_size": {"width": 1536, "height": 1024}}, (1536, 1024)),
    ],
)
async def test_text_to_image_models_make_images_of_the_promised_size(
    demo_client, model, extra, size
):
    body = {"model": model, "input": {"prompt": "a red fox in snow", "num_images": 2, **extra}}
    task = await submit_and_wait(demo_client, body)
    assert task["status"] == "succeeded", task["error"]
    assert task["provider"] == "demo"
    images = task["output"]["images"]
    assert len(images) == 2
    for meta in images:
        image = await fetch_image(demo_client, meta["url"])
        assert image.size == size == (meta["width"], meta["height"])
        assert image.format == "PNG"


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
async def test_output_format_is_honoured(demo_client, fmt):
    body = {"model": "nano-banana", "input": {"prompt": "x", "output_format": fmt}}
    task = await submit_and_wait(demo_client, body)
    meta = task["output"]["images"][0]
    assert meta["content_type"] == f"image/{fmt}"
    assert (await fetch_image(demo_client, meta["url"])).format == fmt.upper()


@pytest.mark.parametrize(
    "model", ["nano-banana/edit", "nano-banana-2/edit", "nano-banana-pro/edit"]
)
async def test_gemini_edits_follow_the_first_inputs_shape(demo_client, image_server, model):
    first = await upload(demo_client, png(1600, 900))
    second = image_server.add("/second.png", png(300, 300, (250, 250, 0)))
    third = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    body = {
        "model": model,
        "input": {"prompt": "make it night", "image_urls": [first, second, third]},
    }
    task = await submit_and_wait(demo_client, body)
    assert task["status"] == "succeeded", task["error"]
    meta = task["output"]["images"][0]
    assert meta["width"] > meta["height"]  # 16:9 input -> the nearest wide ratio


async def test_gpt_edit_with_mask_and_auto_size(demo_client):
    image = await upload(demo_client, png(1024, 512))
    mask = "data:image/png;base64," + base64.b64encode(png(1024, 512)).decode()
    body = {
        "model": "gpt-image-2/edit",
        "input": {"prompt": "add a moon", "image_urls": [image], "mask_url": mask},
    }
    task = await submit_and_wait(demo_client, body)
    assert task["status"] == "succeeded", task["error"]
    meta = task["output"]["images"][0]
    assert meta["width"] % 16 == 0 and meta["width"] > meta["height"]


async def test_the_same_input_and_seed_give_the_same_bytes(demo_client):
    body = {
        "model": "nano-banana-2",
        "input": {"prompt": "a kite", "seed": 7, "resolution": "0.5K"},
    }
    first = await submit_and_wait(demo_client, body)
    second = await submit_and_wait(demo_client, body)
    a = await demo_client.get(first["output"]["images"][0]["url"])
    b = await demo_client.get(second["output"]["images"][0]["url"])
    assert a.content == b.content


async def test_an_unreachable_image_url_fails_the_task_with_image_download_error(
    demo_client, image_server
):
    url = image_server.url + "/missing.png"
    body = {"model": "nano-banana/edit", "input": {"prompt": "x", "image_urls": [url]}}
    task = await submit_and_wait(demo_client, body)
    assert task["status"] == "failed"
    assert task["error"]["code"] == "image_download_error"
    assert "image_urls[0]" in task["error"]["message"] and "404" in task["error"]["message"]


async def test_a_url_that_is_not_an_image_fails_with_invalid_input_image(demo_client, image_server):
    url = image_server.add("/page.html", b"<html>hello</html>", ctype="text/html")
    body = {"model": "nano-banana/edit", "input": {"prompt": "x", "image_urls": [url]}}
    task = await submit_and_wait(demo_client, body)
    assert task["status"] == "failed"
    assert task["error"]["code"] == "invalid_input_image"
    assert "image_urls[0]" in task["error"]["message"]


async def test_upload_accepts_multipart_and_refuses_non_images(demo_client):
    files = {"file": ("in.png", png(64, 64), "image/png")}
    response = await demo_client.post("/hub/v1/files", files=files)
    assert response.status_code == 201
    assert response.json()["file_id"].endswith(".png")
    response = await demo_client.post("/hub/v1/files", content=b"GIF89a-not-really")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    response = await demo_client.post("/hub/v1/files", content=b"")
    assert response.status_code == 422


async def test_unknown_files_are_404_without_auth(demo_client):
    response = await demo_client.get(
        "/hub/v1/files/f_aaaaaaaaaaaaaaaaaaaaaa.png", headers={"Authorization": ""}
    )
    assert response.status_code == 404
    assert (await demo_client.get("/hub/v1/files/../../etc/passwd")).status_code == 404
