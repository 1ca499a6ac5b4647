"""One reading of a mask for every provider: transparent, or white when it has no alpha,
marks the area to change."""

from __future__ import annotations

import os
from io import BytesIO

import pytest
from PIL import Image

from imagehub import imaging
from imagehub.catalog import Catalog
from imagehub.providers import GenerationRequest, InputImage
from imagehub.providers.demo import DemoProvider
from imagehub.providers.images import mask_alpha

RED = (200, 30, 30)


def _input(image: Image.Image) -> InputImage:
    buffer = BytesIO()
    image.save(buffer, "PNG")
    return imaging.decode_input(buffer.getvalue(), max_bytes=10**8, max_pixels=10**8)


def _left_half(mode: str) -> InputImage:
    if mode == "alpha":
        mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
        mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
    else:  # black and white, no alpha: white marks the change
        mask = Image.new("RGB", (64, 64), (0, 0, 0))
        mask.paste((255, 255, 255), (0, 0, 32, 64))
    return _input(mask)


@pytest.mark.parametrize("mode", ["alpha", "black-and-white"])
def test_mask_alpha_marks_the_left_half_at_any_size(mode):
    alpha = mask_alpha(_left_half(mode), (128, 32))
    assert alpha.size == (128, 32)
    assert alpha.getpixel((10, 10)) == 0 and alpha.getpixel((100, 10)) == 255


@pytest.mark.parametrize("mode", ["alpha", "black-and-white"])
async def test_the_demo_edits_where_the_openai_route_would(mode):
    catalog = Catalog.load()
    model = catalog.get("gpt-image-2/edit")
    params = {"prompt": "snow", "image_size": "square_hd", "output_format": "png"}
    request = GenerationRequest(
        model=model,
        params=params,
        images=(_input(Image.new("RGB", (256, 256), RED)),),
        mask=_left_half(mode),
    )
    result = await DemoProvider(catalog).generate(request)
    image = Image.open(BytesIO(result.images[0].data)).convert("RGB")
    assert image.getpixel((768, 500)) == RED  # right half kept
    assert image.getpixel((256, 500)) != RED  # left half edited


async def test_a_mask_that_would_reach_openai_at_4_mb_or_more_is_refused():
    from imagehub.errors import InvalidInputImage
    from imagehub.providers.openai import MAX_MASK_BYTES, edit_form

    catalog = Catalog.load()
    size = (2400, 2000)  # random grey levels: its alpha PNG cannot compress under 4 MB
    noise = Image.frombytes("L", size, os.urandom(size[0] * size[1]))
    first = InputImage(b"jpeg bytes", "image/jpeg", *size)
    request = GenerationRequest(
        model=catalog.get("gpt-image-2/edit"),
        params={"prompt": "x"},
        images=(first,),
        mask=_input(noise),
    )
    with pytest.raises(InvalidInputImage, match="OpenAI takes masks under 4,194,304 bytes"):
        await edit_form(request, catalog)
    small = GenerationRequest(
        model=request.model, params={"prompt": "x"}, images=(first,), mask=_left_half("alpha")
    )
    _, files = await edit_form(small, catalog)
    assert files[-1][0] == "mask" and len(files[-1][1][1]) < MAX_MASK_BYTES
