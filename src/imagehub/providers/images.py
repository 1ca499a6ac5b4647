"""Image payloads on the wire: base64 in, base64 out, checked before they reach the worker.

Upstreams return images as base64 (inline JSON or `data:` URIs). A truncated or damaged payload
is caught here, while the attempt can still be retried, rather than stored as a broken file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from io import BytesIO

from PIL import Image, ImageOps

from imagehub.errors import UpstreamUnavailable
from imagehub.imaging import (
    CONTENT_TYPES,
    OUTPUT_FORMATS,
    GeneratedImage,
    InputImage,
    data_uri_payload,
    image_end,
    unb64,
)
from imagehub.providers.base import ResultFetcher

#: the largest image an upstream may hand back by URL (a 4K PNG is some 30 MB)
MAX_RESULT_BYTES = 64 * 1024 * 1024
#: payloads up to this size are decoded on the event loop: a thread hop would cost more
_INLINE_CHARS = 64 * 1024
#: a lifted string's stand-in: "@" is not base64, so no upstream value can be mistaken for it
_STAND_IN = "@{}"
_SPACE = b" \t\r\n"


def lift_base64(content: bytes, key: bytes) -> tuple[bytes, list[memoryview]]:
    """An upstream's JSON with each long string under `key` (a base64 image) cut out and
    replaced by a stand-in ("@0", "@1"...), and the cut strings, as views of `content`.

    A JSON parser would copy megabytes of base64 into a str (and spend milliseconds on it)
    only for the str to be decoded into bytes again; the views decode straight from the bytes
    read off the socket. A string with an escape in it is left in place: the parser reads it.
    """
    quoted = b'"' + key + b'"'
    pieces: list[bytes] = []
    lifted: list[memoryview] = []
    view = memoryview(content)
    done = 0
    at = content.find(quoted)
    while at >= 0:
        value = _string_after(content, at + len(quoted))
        if value is not None and value[1] - value[0] > _INLINE_CHARS:
            start, end = value
            pieces += [content[done:start], _STAND_IN.format(len(lifted)).encode()]
            lifted.append(view[start:end])
            done = end
        # on from the value's end: never a search through megabytes of base64
        at = content.find(quoted, value[1] if value is not None else at + len(quoted))
    if not lifted:
        return content, []
    pieces.append(content[done:])
    return b"".join(pieces), lifted


def _string_after(content: bytes, pos: int) -> tuple[int, int] | None:
    """Where the JSON string value after a key (from `pos`: spaces, ":", spaces) starts and
    ends, quotes excluded; None when it is not a plain string without escapes."""
    while pos < len(content) and content[pos] in _SPACE:
        pos += 1
    if content[pos : pos + 1] != b":":
        return None
    pos += 1
    while pos < len(content) and content[pos] in _SPACE:
        pos += 1
    if content[pos : pos + 1] != b'"':
        return None
    end = content.find(b'"', pos + 1)
    if end < 0 or content.find(b"\\", pos + 1, end) >= 0:
        return None
    return pos + 1, end


def lifted_payload(value: str, lifted: Sequence[memoryview]) -> str | memoryview:
    """The base64 a stand-in of `lift_base64` stands for, else the value itself."""
    if value.startswith("@") and value[1:].isdigit() and int(value[1:]) < len(lifted):
        return lifted[int(value[1:])]
    return value


async def decode_b64_image(payload: str | memoryview, label: str) -> GeneratedImage:
    """Decode and check one base64 image (off the event loop unless it is small)."""
    if len(payload) <= _INLINE_CHARS:
        return _decode_checked(payload, label)
    return await asyncio.to_thread(_decode_checked, payload, label)


async def fetch_linked(url: str, fetcher: ResultFetcher, label: str) -> GeneratedImage:
    """An image an upstream linked by URL rather than sent: fetched safely, capped, checked."""
    data = await fetcher.fetch_result(url, label, max_bytes=MAX_RESULT_BYTES)
    return GeneratedImage(data, await asyncio.to_thread(check_image, data, label))


async def decode_data_uri(uri: str, label: str) -> GeneratedImage:
    payload = data_uri_payload(uri)
    if payload is None:
        raise UpstreamUnavailable(f"{label} returned an image that is not a base64 data URI")
    return await decode_b64_image(payload, label)


def _decode_checked(payload: str | memoryview, label: str) -> GeneratedImage:
    """Decoded once; the payload is kept for a `data:` URI of the same bytes."""
    try:
        data = unb64(payload)
    except ValueError:
        raise UpstreamUnavailable(
            f"{label} returned an image whose base64 is invalid or truncated"
        ) from None
    return GeneratedImage(data=data, content_type=check_image(data, label), base64=payload)


def check_image(data: bytes, label: str) -> str:
    """The content type of complete PNG, JPEG or WebP bytes; raise if damaged or truncated.

    The header is read, and how the image ends: a PNG's chunks are walked to its IEND (their
    CRCs are not computed: that took 0.9 ms for 2.4 MB, and a cut file fails the walk anyway).
    """
    try:
        with Image.open(BytesIO(data), formats=OUTPUT_FORMATS) as image:
            kind = str(image.format)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UpstreamUnavailable(f"{label} returned a damaged or truncated image") from None
    complete = (
        (kind != "PNG" or image_end(data) is not None)
        and (kind != "JPEG" or data.rstrip(b"\x00").endswith(b"\xff\xd9"))
        and (kind != "WEBP" or int.from_bytes(data[4:8], "little") + 8 <= len(data))
    )
    if not complete:
        raise UpstreamUnavailable(f"{label} returned an image that is truncated")
    return CONTENT_TYPES[kind.lower()]


async def alpha_mask(mask: InputImage, size: tuple[int, int]) -> bytes:
    """The mask as OpenAI wants it: a PNG of `size` whose transparent pixels mark the edit."""
    return await asyncio.to_thread(_alpha_mask, mask, size)


def mask_alpha(mask: InputImage, size: tuple[int, int]) -> Image.Image:
    """The mask's alpha channel at `size`: 0 where the image should change.

    A mask without transparency is read as black and white, white marking the change.
    """
    with Image.open(BytesIO(mask.data)) as opened:
        if opened.mode in ("RGBA", "LA") or "transparency" in opened.info:
            alpha = opened.convert("RGBA").getchannel("A")
        else:
            alpha = ImageOps.invert(opened.convert("L"))
    if alpha.size != size:
        alpha = alpha.resize(size, Image.Resampling.NEAREST)
    return alpha


def _alpha_mask(mask: InputImage, size: tuple[int, int]) -> bytes:
    out = Image.new("RGBA", size, (0, 0, 0, 255))
    out.putalpha(mask_alpha(mask, size))
    buffer = BytesIO()
    out.save(buffer, format="PNG")
    return buffer.getvalue()
