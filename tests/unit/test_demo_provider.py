"""The offline demo provider: sizes, formats, determinism, and edits derived from the inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from io import BytesIO
from typing import Any

import pytest
from PIL import Image, ImageStat

from imagehub import imaging
from imagehub.catalog import Catalog, Validator
from imagehub.imagework import ImageWork
from imagehub.providers.base import GenerationRequest, GenerationResult, InputImage, Provider
from imagehub.providers.demo import DemoProvider

CATALOG = Catalog.load()
VALIDATOR = Validator(CATALOG)
RED = (200, 30, 30)
BLUE = (30, 30, 200)


def _request(
    model_id: str,
    raw: dict[str, Any],
    images: Sequence[InputImage] = (),
    mask: InputImage | None = None,
) -> GenerationRequest:
    model = CATALOG.get(model_id)
    assert model is not None
    if images:
        raw = {"image_urls": [f"https://example.com/{i}.png" for i in range(len(images))], **raw}
    params = VALIDATOR.validate(model_id, raw).params
    return GenerationRequest(model=model, params=params, images=tuple(images), mask=mask)


def _input(
    color: tuple[int, ...] = RED, size: tuple[int, int] = (1024, 1024), mode: str = "RGB"
) -> InputImage:
    buffer = BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return imaging.decode_input(buffer.getvalue(), max_bytes=50_000_000, max_pixels=40_000_000)


def _image(data: bytes) -> Image.Image:
    with Image.open(BytesIO(data)) as image:
        return image.convert("RGB")


async def _generate(
    model_id: str,
    raw: dict[str, Any],
    images: Sequence[InputImage] = (),
    mask: InputImage | None = None,
) -> GenerationResult:
    return await DemoProvider(CATALOG).generate(_request(model_id, raw, images, mask))


async def _one(
    model_id: str,
    raw: dict[str, Any],
    images: Sequence[InputImage] = (),
    mask: InputImage | None = None,
) -> bytes:
    result = await _generate(model_id, raw, images, mask)
    assert len(result.images) == 1
    return result.images[0].data


def _middle(image: Image.Image) -> Image.Image:
    """The central band, clear of the label, the thumbnails and the prompt banner."""
    w, h = image.size
    return image.crop((w // 8, h * 3 // 8, w * 7 // 8, h * 5 // 8))


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("model_id", "raw", "size"),
    [
        ("nano-banana", {"aspect_ratio": "16:9"}, (1344, 768)),
        ("nano-banana", {}, (1024, 1024)),
        ("nano-banana-2", {"aspect_ratio": "21:9", "resolution": "2K"}, (3168, 1344)),
        ("nano-banana-2", {"aspect_ratio": "16:9", "resolution": "0.5K"}, (688, 384)),
        ("nano-banana-2", {"aspect_ratio": "8:1"}, (2944, 368)),
        ("nano-banana-2", {}, (1024, 1024)),  # auto without an input is square
        ("nano-banana-pro", {"aspect_ratio": "9:16"}, (768, 1376)),
        ("gpt-image-2", {"image_size": {"width": 1536, "height": 1024}}, (1536, 1024)),
        ("gpt-image-2", {"image_size": "portrait_16_9"}, (720, 1280)),
        ("gpt-image-2", {}, (1024, 768)),
    ],
)
async def test_text_to_image_size(model_id, raw, size):
    data = await _one(model_id, {"prompt": "a red fox", **raw})
    assert imaging.measure(data) == (*size, "image/png")


async def test_4k_output():
    data = await _one(
        "nano-banana-2", {"prompt": "a red fox", "resolution": "4K", "aspect_ratio": "16:9"}
    )
    assert imaging.measure(data) == (5504, 3072, "image/png")


@pytest.mark.parametrize(
    ("model_id", "raw", "input_size", "size"),
    [
        # gpt-image-2 auto: the input's shape at about one megapixel, sides multiples of 16
        ("gpt-image-2/edit", {}, (1600, 900), (1360, 768)),
        ("gpt-image-2/edit", {}, (600, 900), (832, 1248)),
        ("gpt-image-2/edit", {"image_size": "square"}, (1600, 900), (832, 832)),
        # Nano Banana auto: the table's ratio nearest the input's
        ("nano-banana-2/edit", {}, (1000, 420), (1584, 672)),
        ("nano-banana-2/edit", {"resolution": "2K"}, (300, 400), (1792, 2400)),
        ("nano-banana/edit", {}, (1000, 1000), (1024, 1024)),
        ("nano-banana/edit", {"aspect_ratio": "3:2"}, (500, 1000), (1248, 832)),
    ],
)
async def test_edit_size(model_id, raw, input_size, size):
    data = await _one(model_id, {"prompt": "snow", **raw}, [_input(size=input_size)])
    assert imaging.measure(data) == (*size, "image/png")


# ---------------------------------------------------------------- format, count, determinism


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
async def test_output_format_is_honoured(fmt):
    result = await _generate("nano-banana", {"prompt": "a fox", "output_format": fmt})
    content_type = imaging.CONTENT_TYPES[fmt]
    assert result.images[0].content_type == content_type
    assert imaging.measure(result.images[0].data) == (1024, 1024, content_type)


async def test_num_images_are_made_and_differ():
    result = await _generate("nano-banana", {"prompt": "a fox", "num_images": 3})
    assert len(result.images) == 3
    assert len({image.data for image in result.images}) == 3


async def test_image_i_uses_seed_plus_i():
    pair = await _generate("nano-banana", {"prompt": "a fox", "seed": 5, "num_images": 2})
    assert pair.images[1].data == await _one("nano-banana", {"prompt": "a fox", "seed": 6})


@pytest.mark.parametrize("raw", [{"prompt": "a fox", "seed": 42}, {"prompt": "a fox"}])
async def test_same_input_gives_the_same_bytes(raw):
    assert await _one("nano-banana", raw) == await _one("nano-banana", raw)


def test_default_seed_does_not_depend_on_the_hash_salt():
    code = (
        "import asyncio, hashlib, sys\n"
        "from imagehub.catalog import Catalog\n"
        "from imagehub.providers.base import GenerationRequest\n"
        "from imagehub.providers.demo import DemoProvider\n"
        "catalog = Catalog.load()\n"
        "params = {'prompt': 'a fox', 'output_format': 'jpeg'}\n"
        "request = GenerationRequest(model=catalog.get('nano-banana'), params=params)\n"
        "result = asyncio.run(DemoProvider(catalog).generate(request))\n"
        "sys.stdout.write(hashlib.sha256(result.images[0].data).hexdigest())\n"
    )
    digests = set()
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(run.stdout)
    assert len(digests) == 1


async def test_seed_and_prompt_change_the_image():
    base = await _one("nano-banana", {"prompt": "a fox", "seed": 1})
    assert await _one("nano-banana", {"prompt": "a fox", "seed": 2}) != base
    assert await _one("nano-banana", {"prompt": "a wolf", "seed": 1}) != base


async def test_text_to_image_is_not_blank():
    image = _image(await _one("nano-banana", {"prompt": "a fox"}))
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 100
    assert max(ImageStat.Stat(_middle(image)).stddev) > 5


async def test_description_names_the_prompt_and_stays_short():
    result = await _generate("nano-banana", {"prompt": "a red fox " * 100})
    assert result.description.startswith("demo image for: a red fox a red fox")
    assert len(result.description) < 200
    edit = await _generate("nano-banana/edit", {"prompt": "snow"}, [_input()])
    assert edit.description == "demo edit of 1 input image(s) for: snow"


async def test_provider_protocol_and_worker_processes():
    work = ImageWork(processes=1, budget_pixels=10**8)
    try:
        provider: Provider = DemoProvider(CATALOG, work)
        assert provider.name == "demo"
        result = await provider.generate(_request("nano-banana", {"prompt": "a fox"}))
        await provider.aclose()
    finally:
        work.close()
    assert imaging.measure(result.images[0].data) == (1024, 1024, "image/png")
    assert work.calls == {"draw": 1}


# ---------------------------------------------------------------- edits


async def test_edit_is_derived_from_the_input_and_changes_it():
    from_red = _middle(_image(await _one("nano-banana/edit", {"prompt": "snow"}, [_input(RED)])))
    from_blue = _middle(_image(await _one("nano-banana/edit", {"prompt": "snow"}, [_input(BLUE)])))
    red_mean = ImageStat.Stat(from_red).mean
    blue_mean = ImageStat.Stat(from_blue).mean
    assert red_mean[0] > blue_mean[0] + 40
    assert blue_mean[2] > red_mean[2] + 40
    assert from_red.getpixel((10, 10)) != RED  # visibly edited, not a copy


async def test_edit_depends_on_the_prompt():
    images = [_input(RED)]
    snow = await _one("nano-banana/edit", {"prompt": "snow", "seed": 3}, images)
    assert await _one("nano-banana/edit", {"prompt": "rain", "seed": 3}, images) != snow
    assert await _one("nano-banana/edit", {"prompt": "snow", "seed": 3}, images) == snow


async def test_mask_limits_the_edit_to_transparent_areas():
    mask = Image.new("RGBA", (512, 512), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 256, 512))  # left half transparent: edit there only
    buffer = BytesIO()
    mask.save(buffer, format="PNG")
    decoded_mask = imaging.decode_input(
        buffer.getvalue(), max_bytes=50_000_000, max_pixels=40_000_000
    )
    data = await _one("gpt-image-2/edit", {"prompt": "snow"}, [_input(RED)], decoded_mask)
    image = _image(data)
    assert image.size == (1024, 1024)
    assert image.getpixel((768, 500)) == RED
    assert image.getpixel((256, 500)) != RED


async def test_other_inputs_appear_as_thumbnails():
    green = (30, 200, 30)
    data = await _one("nano-banana/edit", {"prompt": "mix"}, [_input(RED), _input(green)])
    image = _image(data)
    assert image.getpixel((image.width - 100, 100)) == green
    assert image.getpixel((image.width // 2, image.height // 2)) != green
