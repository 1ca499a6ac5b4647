"""Input images as each upstream documents them: their own bytes when it reads their format,
re-encoded or downscaled only to fit a documented limit, and every such change a task warning.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from imagehub.errors import UpstreamError
from imagehub.imagework import ImageWork
from imagehub.imaging import FORMATS, InputImage, b64_length, shrink

#: what every upstream the hub speaks to reads (HEIC too on Gemini, but inputs never are HEIC)
COMMON_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
_MB = 1_000_000


@dataclass(frozen=True, slots=True)
class InlineLimits:
    """What an upstream documents for the input images of one request."""

    #: the rule's owner, for warnings ("Vertex AI")
    owner: str
    #: content types it reads; others are re-encoded
    types: frozenset[str] = COMMON_TYPES
    #: the most bytes one image may have
    each_bytes: int | None = None
    #: the most base64 characters all images together may take in the request
    total_b64: int | None = None
    #: the most images one request may carry
    count: int | None = None


#: Gemini API: a request is at most 20 MB in all; 1 MB is left for the prompt and the JSON
GEMINI_API = InlineLimits("the Gemini API", total_b64=19 * _MB)
#: Vertex AI: inline image data at most 7 MB per image
VERTEX_AI = InlineLimits("Vertex AI", each_bytes=7 * _MB)
#: OpenAI image edits: at most 16 images, each under 50 MB
OPENAI_EDITS = InlineLimits("OpenAI", each_bytes=50 * _MB - 1, count=16)
#: data: URIs on fal and OpenRouter: PNG, JPEG and WebP
DATA_URIS = InlineLimits("the upstream")


async def fit(
    images: tuple[InputImage, ...],
    limits: InlineLimits,
    route: str,
    work: ImageWork | None = None,
) -> tuple[tuple[InputImage, ...], tuple[str, ...]]:
    """The images as the upstream accepts them, and a warning for each one changed (the
    shrinking on `work`'s processes when given, else on a thread)."""
    if limits.count is not None and len(images) > limits.count:
        raise UpstreamError(
            f"route {route} takes at most {limits.count} input images; {len(images)} were given"
        )
    targets = _targets(images, limits)
    if not any(target is not None for target in targets):
        return images, ()
    if work is None:
        return await asyncio.to_thread(_fitted, images, targets, limits)
    pixels = sum(i.width * i.height for i, t in zip(images, targets, strict=True) if t is not None)
    return await work.run(_fitted, images, targets, limits, pixels=pixels)


def _targets(images: tuple[InputImage, ...], limits: InlineLimits) -> list[int | None]:
    """For each image, the most bytes it may keep (None: it goes as it is)."""
    sizes = [len(image.data) for image in images]
    caps = [limits.each_bytes] * len(images)
    if limits.total_b64 is not None and sum(b64_length(s) for s in sizes) > limits.total_b64:
        shares = _shares(sizes, limits.total_b64 * 3 // 4)
        caps = [_smaller(cap, share) for cap, share in zip(caps, shares, strict=True)]
    targets: list[int | None] = []
    for image, size, cap in zip(images, sizes, caps, strict=True):
        if cap is not None and size > cap:
            targets.append(cap)
        else:  # a format the upstream does not read is re-encoded, no larger than it was
            targets.append(size if image.content_type not in limits.types else None)
    return targets


def _shares(sizes: list[int], budget: int) -> list[int]:
    """Bytes each image may keep for all to fit in `budget`: the smaller ones keep their size,
    the others split what is left evenly."""
    shares = [0] * len(sizes)
    left = budget
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    for done, i in enumerate(order):
        shares[i] = min(sizes[i], left // (len(order) - done) - 3)  # 3: room for base64 padding
        left -= shares[i]
    return shares


def _smaller(a: int | None, b: int) -> int:
    return b if a is None else min(a, b)


def _fitted(
    images: tuple[InputImage, ...], targets: list[int | None], limits: InlineLimits
) -> tuple[tuple[InputImage, ...], tuple[str, ...]]:
    fitted: list[InputImage] = []
    warnings: list[str] = []
    for i, (image, target) in enumerate(zip(images, targets, strict=True)):
        if target is None:
            fitted.append(image)
            continue
        new = shrink(image, target)
        fitted.append(new)
        warnings.append(_said(f"image_urls[{i}]", image, new, limits))
    return tuple(fitted), tuple(warnings)


def _said(label: str, old: InputImage, new: InputImage, limits: InlineLimits) -> str:
    fmt = FORMATS[new.content_type].upper()
    how = f"re-encoded as {fmt}"
    if (new.width, new.height) != (old.width, old.height):
        how += f" and downscaled from {old.width}x{old.height} to {new.width}x{new.height}"
    sizes = f"{len(old.data) / _MB:.1f} MB to {len(new.data) / _MB:.1f} MB"
    return f"{label} was {how} ({sizes}) to fit {limits.owner}'s limits on input images"
