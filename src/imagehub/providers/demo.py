"""An offline provider that draws labelled, deterministic placeholder images from the prompt."""

from __future__ import annotations

import asyncio
import hashlib
import random
import textwrap
from io import BytesIO
from typing import ClassVar

from PIL import Image, ImageDraw, ImageFont, ImageOps

from imagehub import imaging
from imagehub.catalog import Catalog, output_size
from imagehub.imagework import ImageWork
from imagehub.providers.base import (
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    InputImage,
)
from imagehub.providers.images import mask_alpha

_DRAFT_LONG_SIDE = 512  # backgrounds are drawn small and upscaled: 4K stays fast
_DRAFT_SHORT_SIDE = 160  # but extreme ratios keep some height
_PROMPT_CHARS = 240
_LABEL = "imagehub demo"
_Color = tuple[int, int, int]


class DemoProvider:
    """Draws images offline: text-to-image from the prompt, edits from the input images."""

    name = "demo"
    #: the route kind: tasks it serves are free (prices.toml)
    kind: ClassVar[str] = "demo"

    def __init__(self, catalog: Catalog, work: ImageWork | None = None) -> None:
        self.catalog = catalog
        #: where the drawing runs (worker processes); None: a thread of this process
        self._work = work

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Make `num_images` images of the requested size and format, off the event loop."""
        count = int(request.params.get("num_images", 1))
        jobs = [self._draw(request, i) for i in range(count)]
        images = await asyncio.gather(*jobs)
        return GenerationResult(images=tuple(images), description=_description(request))

    async def aclose(self) -> None:
        return None

    async def _draw(self, request: GenerationRequest, index: int) -> GeneratedImage:
        sketch = self.sketch(request, index)
        if self._work is None:
            return await asyncio.to_thread(draw, *sketch)
        width, height = sketch[2]
        return await self._work.run(draw, *sketch, pixels=width * height)

    def render(self, request: GenerationRequest, index: int = 0) -> GeneratedImage:
        """Draw and encode image `index` of a request (synchronous)."""
        return draw(*self.sketch(request, index))

    def sketch(self, request: GenerationRequest, index: int) -> _Sketch:
        """What `draw` needs, as plain values a worker process can receive."""
        prompt = str(request.params.get("prompt", ""))
        seed = _seed(request.params.get("seed"), prompt) + index
        first = request.images[0] if request.model.is_edit and request.images else None
        first_size = (first.width, first.height) if first else None
        size = output_size(self.catalog, request.model, request.params, first_size)
        images = request.images if first is not None else ()
        output_format = str(request.params.get("output_format", "png"))
        return prompt, seed, size, output_format, images, request.mask


_Sketch = tuple[str, int, tuple[int, int], str, tuple[InputImage, ...], InputImage | None]


def draw(
    prompt: str,
    seed: int,
    size: tuple[int, int],
    output_format: str,
    images: tuple[InputImage, ...] = (),
    mask: InputImage | None = None,
) -> GeneratedImage:
    """Draw and encode one image: from the prompt, or an edit of `images[0]` when given."""
    if not images:
        image = _draw_picture(prompt, seed, size)
    else:
        image = _draw_edit(images[0], mask, prompt, seed, size)
        _paste_thumbnails(image, images[1:])
    _draw_banner(image, prompt)
    data = imaging.encode(image, output_format)
    return GeneratedImage(data=data, content_type=imaging.CONTENT_TYPES[output_format])


def _description(request: GenerationRequest) -> str:
    prompt = " ".join(str(request.params.get("prompt", "")).split())
    short = textwrap.shorten(prompt, 120, placeholder="...")
    if request.model.is_edit:
        return f"demo edit of {len(request.images)} input image(s) for: {short}"
    return f"demo image for: {short}"


def _seed(seed: object, prompt: str) -> int:
    """The requested seed, else a stable one from the prompt (never the salted `hash()`)."""
    if isinstance(seed, int):
        return seed
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")


def _colors(prompt: str, seed: int) -> tuple[_Color, _Color, _Color]:
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    return (
        (digest[0], digest[1], digest[2]),
        (digest[3], digest[4], digest[5]),
        (digest[6], digest[7], digest[8]),
    )


def _draft_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, max(_DRAFT_LONG_SIDE / max(size), _DRAFT_SHORT_SIDE / min(size)))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _draw_picture(prompt: str, seed: int, size: tuple[int, int]) -> Image.Image:
    """A diagonal gradient with seeded shapes, colored by the prompt and seed."""
    start, end, accent = _colors(prompt, seed)
    draft = _draft_size(size)
    down = Image.linear_gradient("L")
    mask = Image.blend(down, down.transpose(Image.Transpose.ROTATE_90), 0.5).resize(draft)
    canvas = Image.composite(Image.new("RGB", draft, end), Image.new("RGB", draft, start), mask)
    draw = ImageDraw.Draw(canvas, "RGBA")
    rng = random.Random(seed)
    unit = min(draft)
    for _ in range(10):
        x, y = rng.randrange(draft[0]), rng.randrange(draft[1])
        r = rng.randint(unit // 12, unit // 4 + 1)
        fill = (*(rng.choice((accent, start, end))), rng.randint(90, 200))
        shape = draw.ellipse if rng.random() < 0.6 else draw.rectangle
        shape((x - r, y - r, x + r, y + r), fill=fill, outline=(255, 255, 255, 160))
    if draft == size:
        return canvas
    return canvas.resize(size, Image.Resampling.BILINEAR)


def _open_rgb(image: InputImage, mode: str = "RGB") -> Image.Image:
    with Image.open(BytesIO(image.data), formats=imaging.INPUT_FORMATS) as opened:
        return opened.convert(mode)


def _draw_edit(
    first: InputImage, mask: InputImage | None, prompt: str, seed: int, size: tuple[int, int]
) -> Image.Image:
    """The first input, cover-cropped to size, tinted and posterized where the mask allows."""
    base = ImageOps.fit(_open_rgb(first), size, Image.Resampling.BILINEAR)
    tint, _, _ = _colors(prompt, seed)
    edited = ImageOps.posterize(Image.blend(base, Image.new("RGB", size, tint), 0.4), 3)
    if mask is None:
        return edited
    # transparent (alpha 0) mask pixels are the ones to change, as on the OpenAI route
    where = mask_alpha(mask, size).point([255] + [0] * 255)
    return Image.composite(edited, base, where)


def _paste_thumbnails(image: Image.Image, others: tuple[InputImage, ...]) -> None:
    """The other inputs as a strip of small squares along the top right."""
    if not others:
        return
    pad = max(2, min(image.size) // 64)
    side = min(min(image.size) // 6, (image.width - pad) // len(others) - pad)
    if side < 4:
        return
    thumbs: dict[bytes, Image.Image] = {}  # an image named several times is decoded once
    for i, other in enumerate(others):
        thumb = thumbs.get(other.data)
        if thumb is None:
            thumb = ImageOps.fit(_open_rgb(other), (side, side), Image.Resampling.BILINEAR)
            thumbs[other.data] = thumb
        image.paste(thumb, (image.width - (i + 1) * (side + pad), pad))


def _draw_banner(image: Image.Image, prompt: str) -> None:
    """The prompt, wrapped, in a dark band at the bottom, and a small label at the top left."""
    width, height = image.size
    font_px = max(8, min(width // 28, height // 12))
    font = ImageFont.load_default(size=font_px)
    small = ImageFont.load_default(size=max(8, font_px * 2 // 3))
    pad = font_px // 2
    chars = max(8, int((width - 2 * pad) / max(1.0, font.getlength("abcdefghij") / 10)))
    text = " ".join(prompt.split())[:_PROMPT_CHARS]
    lines = textwrap.wrap(text, chars, max_lines=3, placeholder="...") or [""]
    band = len(lines) * (font_px + pad // 2) + 2 * pad
    draw = ImageDraw.Draw(image, "RGBA")
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 150))
    draw.multiline_text(
        (pad, height - band + pad), "\n".join(lines), font=font, fill="white", spacing=pad // 2
    )
    box = draw.textbbox((pad, pad), _LABEL, font=small)
    draw.rectangle((0, 0, box[2] + pad, box[3] + pad), fill=(0, 0, 0, 150))
    draw.text((pad, pad), _LABEL, font=small, fill=(255, 255, 255, 220))
