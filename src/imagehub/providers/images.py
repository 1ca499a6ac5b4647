"""Image payloads on the wire: base64 in, base64 out, checked before they reach the worker.

Upstreams return images as base64 (inline JSON or `data:` URIs). A truncated or damaged payload
is caught here, while the attempt can still be retried, rather than stored as a broken file.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from io import BytesIO

import orjson
from PIL import Image, ImageOps

from imagehub.errors import UpstreamUnavailable
from imagehub.imaging import (
    GeneratedImage,
    InputImage,
    data_uri_payload,
    header,
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
_BACKSLASH = ord("\\")


def lift_base64(content: bytes, key: bytes) -> tuple[bytes, list[memoryview]]:
    """An upstream's JSON with each long string under `key` (a base64 image) cut out and
    replaced by a stand-in ("@0", "@1"...), and the cut strings, as views of `content`.

    A JSON parser would copy megabytes of base64 into a str (and spend milliseconds on it)
    only for the str to be decoded into bytes again; the views decode straight from the bytes
    read off the socket. Escapes (JSON allows "\\/" for "/") are not searched for in the
    megabytes: a string that holds one fails the strict decoding, and is then unescaped.
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
    ends, quotes excluded; None when it is not a string, or one with a quote escaped inside."""
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
    if end < 0 or content[end - 1] == _BACKSLASH:  # the string goes on: left to the parser
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
        payload = _unescaped(payload)
        try:
            data = unb64(payload)
        except ValueError:
            raise UpstreamUnavailable(
                f"{label} returned an image whose base64 is invalid or truncated"
            ) from None
    return GeneratedImage(data=data, content_type=check_image(data, label), base64=payload)


def _unescaped(payload: str | memoryview) -> str | memoryview:
    """A string `lift_base64` cut out with its JSON escapes read (else as it is)."""
    if isinstance(payload, str):  # the JSON parser read it: no escape is left
        return payload
    raw = payload.tobytes()
    if b"\\" not in raw:
        return payload
    try:
        text = orjson.loads(b'"' + raw + b'"')
    except orjson.JSONDecodeError:
        return payload
    return text if isinstance(text, str) else payload


def check_image(data: bytes, label: str) -> str:
    """The content type of complete PNG, JPEG or WebP bytes; raise if damaged or truncated.

    Read from the bytes' structure, without Pillow (whose WebP reader parses the whole file,
    ~4 ms at 2.7 MB): the header must give a size, and the image must end as its format says:
    a PNG's chunks are walked to its IEND (their CRCs are not computed: that took 0.9 ms for
    2.4 MB, and a cut file fails the walk anyway; the header's is), a WebP's chunks to the end
    of its RIFF, and a JPEG ends with its EOI marker.
    """
    measured = header(data)
    if measured is None or 0 in measured[:2] or not _sound_header(data, measured[2]):
        raise UpstreamUnavailable(f"{label} returned a damaged or truncated image")
    if not _complete(data, measured[2]):
        raise UpstreamUnavailable(f"{label} returned an image that is truncated")
    return measured[2]


def _sound_header(data: bytes, content_type: str) -> bool:
    """A PNG's IHDR as Pillow checks it: 13 bytes, its CRC right."""
    if content_type != "image/png":
        return True
    return data[8:12] == b"\x00\x00\x00\x0d" and zlib.crc32(data[12:29]) == int.from_bytes(
        data[29:33], "big"
    )


def _complete(data: bytes, content_type: str) -> bool:
    if content_type == "image/png":
        return image_end(data) is not None
    if content_type == "image/jpeg":
        # the EOI, not a walk of the scan (a Python loop over every 0xFF byte: ms per MB)
        return data.rstrip(b"\x00").endswith(b"\xff\xd9")
    return _webp_end(data) is not None


def _webp_end(data: bytes) -> int | None:
    """Where a WebP's last chunk ends, if its chunks fill its RIFF exactly; else None."""
    end = 8 + int.from_bytes(data[4:8], "little")
    pos = 12
    while pos + 8 <= end:
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + size + (size & 1)  # a chunk of odd size is padded
    return end if pos == end <= len(data) else None


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
