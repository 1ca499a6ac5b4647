"""An upstream's image checked before it is stored: complete PNG, JPEG and WebP bytes pass,
anything cut, damaged or not an image is refused (a retryable `UpstreamUnavailable`); and base64
cut out of an upstream's JSON decodes, its JSON escapes included."""

from __future__ import annotations

import base64
import random
import struct
import zlib
from io import BytesIO

import orjson
import pytest
from PIL import Image

from imagehub.errors import UpstreamUnavailable
from imagehub.providers.images import check_image, decode_b64_image, lift_base64, lifted_payload


def _image(fmt: str, size: tuple[int, int] = (300, 200), **options: object) -> bytes:
    rng = random.Random(4)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


PNG = _image("PNG")
JPEG = _image("JPEG", quality=90)
WEBP = _image("WEBP", quality=80)
WEBP_LOSSLESS = _image("WEBP", lossless=True)
WEBP_ALPHA = _image("WEBP", quality=80, exif=b"Exif\x00\x00" + b"\x00" * 7)  # a VP8X file


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (WEBP, "image/webp"),
        (WEBP_LOSSLESS, "image/webp"),
        (WEBP_ALPHA, "image/webp"),
        (PNG + b"<html>", "image/png"),  # bytes after the end are not the image's concern here
    ],
    ids=["png", "jpeg", "webp", "webp-lossless", "webp-vp8x", "png-trailing"],
)
def test_a_complete_image_passes_with_its_type(data, content_type):
    assert check_image(data, "route") == content_type


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_of(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body)
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def _damaged_ihdr() -> bytes:
    data = bytearray(PNG)
    data[20] ^= 0x01  # the height, without its CRC updated
    return bytes(data)


def _missing_middle() -> bytes:
    """A segment of the PNG lost in transit: the chunk lengths no longer lead to the IEND."""
    return PNG[: len(PNG) // 3] + PNG[len(PNG) // 2 :]


def _zero_width() -> bytes:
    chunks = _png_chunks(PNG)
    kind, body = chunks[0]
    return _png_of([(kind, b"\x00\x00\x00\x00" + body[4:]), *chunks[1:]])


def _webp_bad_chunk() -> bytes:
    data = bytearray(WEBP)
    data[16:20] = struct.pack("<I", len(WEBP))  # the VP8 chunk says it runs past the file
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (PNG[: len(PNG) // 2], "truncated"),
        (PNG[:-12], "truncated"),  # everything but the IEND
        (_missing_middle(), "truncated"),
        (_damaged_ihdr(), "damaged"),
        (_zero_width(), "damaged"),
        (JPEG[: len(JPEG) // 2], "truncated"),
        (JPEG[:-2], "truncated"),
        (WEBP[: len(WEBP) // 2], "truncated"),
        (_webp_bad_chunk(), "truncated"),
        (PNG[:20], "damaged"),  # not even a whole header
        (b"GIF89a" + PNG[6:], "damaged"),
        (b"<html>not an image</html>", "damaged"),
        (b"", "damaged"),
    ],
    ids=[
        "png-half",
        "png-no-iend",
        "png-missing-middle",
        "png-ihdr-crc",
        "png-zero-width",
        "jpeg-half",
        "jpeg-no-eoi",
        "webp-half",
        "webp-chunk-overruns",
        "png-header-cut",
        "not-png",
        "html",
        "empty",
    ],
)
def test_a_cut_or_damaged_image_is_refused(data, words):
    with pytest.raises(UpstreamUnavailable, match=words):
        check_image(data, "route")


def _lifted(body: bytes) -> str | memoryview:
    content, lifted = lift_base64(body, b"b64_json")
    return lifted_payload(orjson.loads(content)["data"][0]["b64_json"], lifted)


BIG = _image("PNG", (600, 400))  # base64 long enough to be cut out of the JSON


async def test_lifted_base64_decodes_from_the_bytes_read():
    text = base64.b64encode(BIG)
    body = b'{"data": [{"b64_json" : "' + text + b'"}], "usage": {}}'
    payload = _lifted(body)
    assert isinstance(payload, memoryview)  # a view of the bytes read, no str made
    image = await decode_b64_image(payload, "route")
    assert image.data == BIG and image.content_type == "image/png"
    assert bytes(image.base64 or b"") == text


async def test_lifted_base64_with_json_escapes_is_unescaped():
    text = base64.b64encode(BIG)
    escaped = text.replace(b"/", b"\\/")
    assert escaped != text
    payload = _lifted(b'{"data": [{"b64_json": "' + escaped + b'"}]}')
    image = await decode_b64_image(payload, "route")
    assert image.data == BIG and image.base64 == text.decode()  # what a data: URI may reuse


async def test_an_escaped_quote_leaves_the_string_to_the_json_parser():
    body = b'{"data": [{"b64_json": "' + b"A" * 70_000 + b'\\" and more"}]}'
    content, lifted = lift_base64(body, b"b64_json")
    assert lifted == [] and content == body
    with pytest.raises(UpstreamUnavailable, match="invalid or truncated"):
        await decode_b64_image(orjson.loads(content)["data"][0]["b64_json"], "route")


async def test_cut_base64_is_refused():
    text = base64.b64encode(BIG)[:-3]
    with pytest.raises(UpstreamUnavailable, match="invalid or truncated"):
        await decode_b64_image(_lifted(b'{"data": [{"b64_json": "' + text + b'"}]}'), "route")
