"""Images in the hub: the value types, the one table of formats, base64 and `data:` URIs, the
synchronous Pillow helpers for input and output images (callers run those in a thread), and the
budget of decoded pixels a process holds at once."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import struct
import threading
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from io import BytesIO

import pybase64
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from imagehub.errors import InvalidInputImage


@dataclass(frozen=True, slots=True)
class InputImage:
    """A fetched, decoded and checked input image, as it goes upstream (EXIF orientation applied).

    `data` is the client's own bytes when they are a PNG, JPEG or WebP that needs no rotation,
    else the image re-encoded (see `read_input`); width and height are those of `data`.
    """

    data: bytes
    content_type: str
    width: int
    height: int


#: base64 text as an upstream sent it: a str its JSON parser made, or a view of the bytes read
Base64 = str | memoryview


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """Bytes as the provider returned them; the worker transcodes and measures them."""

    data: bytes
    content_type: str
    #: the upstream's own base64 of `data`, when it sent base64: a `data:` URI (or a `b64_json`
    #: answer) reuses it rather than encoding megabytes again
    base64: Base64 | None = None


@dataclass(frozen=True, slots=True)
class ImageFormat:
    #: the `output_format` name, and Pillow's format name in lower case
    name: str
    content_type: str
    #: file names end ".jpg", while the format is "jpeg" everywhere
    extension: str
    #: whether the hub produces it (an `output_format`), or only reads it
    output: bool = True


#: every image format the hub knows, the one table the others are views of
IMAGE_FORMATS = (
    ImageFormat("png", "image/png", "png"),
    ImageFormat("jpeg", "image/jpeg", "jpg"),
    ImageFormat("webp", "image/webp", "webp"),
    ImageFormat("gif", "image/gif", "gif", output=False),
)
_OUTPUTS = [f for f in IMAGE_FORMATS if f.output]
#: output format name (the `output_format` parameter) -> content type
CONTENT_TYPES: dict[str, str] = {f.name: f.content_type for f in _OUTPUTS}
#: content type -> output format name, the reverse of CONTENT_TYPES
FORMATS: dict[str, str] = {f.content_type: f.name for f in _OUTPUTS}
#: content type -> file extension, for the output formats
EXTENSIONS: dict[str, str] = {f.content_type: f.extension for f in _OUTPUTS}

#: what an input image may be; Pillow would otherwise sniff dozens of formats
INPUT_FORMATS = tuple(f.name.upper() for f in IMAGE_FORMATS)
OUTPUT_FORMATS = tuple(f.name.upper() for f in _OUTPUTS)
_NOT_AN_IMAGE = "is not a PNG, JPEG, WebP or GIF image"
_PNG_LEVEL = 1  # speed over size: outputs are transcoded or stored, not archived
_QUALITY = 90
_WEBP_METHOD = 2  # about twice as fast as the default 4, files barely larger
#: image modes every upstream reads as they are; others (CMYK, 16-bit) are converted
_PLAIN_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P"})

# warnings.catch_warnings swaps process-wide state: serialize it and keep it to the header read
_WARNINGS_LOCK = threading.Lock()

# -- base64 and data: URIs

_DATA_URI_HEAD = r"data:(image/[\w.+-]+);base64,"
#: the start of an image `data:` URI (group 1: its content type)
DATA_URI = re.compile(_DATA_URI_HEAD, re.IGNORECASE)
#: a whole image `data:` URI inside other text (some upstreams put them in a message)
DATA_URI_IN_TEXT = re.compile(_DATA_URI_HEAD + r"[A-Za-z0-9+/=]+", re.IGNORECASE)


# pybase64 (SIMD) rather than the standard library's base64: a 2.4 MB image's 3.2 MB of base64
# decode in about 0.3 ms rather than 6, and encode in 0.5 ms rather than 2.5 (bench/README.md)


def b64(data: bytes) -> str:
    return pybase64.b64encode(data).decode("ascii")


def b64_bytes(data: bytes) -> bytes:
    """Base64 as bytes, for bodies built as bytes (no str made of megabytes on the way)."""
    return pybase64.b64encode(data)


def base64_bytes(text: Base64) -> bytes | memoryview:
    """An upstream's base64 as bytes for a body: a view of the bytes read stays one."""
    return text.encode("ascii") if isinstance(text, str) else text


def b64_length(size: int) -> int:
    """How many base64 characters `size` bytes take."""
    return (size + 2) // 3 * 4


def unb64(payload: str | bytes | memoryview) -> bytes:
    """Strict base64 decoding (the alphabet and the padding checked); raises ValueError on
    anything else."""
    try:
        return pybase64.b64decode(payload, validate=True)
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        raise ValueError("invalid base64") from exc


def data_uri(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{b64(data)}"


def data_uri_payload(uri: str) -> str | None:
    """The base64 part of an image `data:` URI, or None if `uri` is not one."""
    match = DATA_URI.match(uri)
    return uri[match.end() :] if match else None


# -- input images


def decode_input(
    data: bytes, *, max_bytes: int, max_pixels: int, label: str = "input image"
) -> InputImage:
    """Check and decode an input image, returning it oriented, as RGB(A), re-encoded as PNG."""
    image, _, _ = _decoded_input(data, max_bytes, max_pixels, label)
    return _as_input(image, "png")


def read_input(
    data: bytes, *, max_bytes: int, max_pixels: int, label: str = "input image"
) -> InputImage:
    """Check and decode an input image; keep its own bytes when they can go upstream as they are.

    Kept: a PNG, JPEG or WebP in a plain mode that needs no EXIF rotation. Otherwise the oriented
    image is re-encoded: a JPEG as a JPEG (it was lossy already; a PNG would be many times
    larger), anything else as a PNG.
    """
    image, fmt, as_is = _decoded_input(data, max_bytes, max_pixels, label)
    if as_is:
        return InputImage(data, CONTENT_TYPES[fmt], image.width, image.height)
    return _as_input(image, "jpeg" if fmt == "jpeg" else "png")


def checked_upload(data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """An uploaded image, decoded in full to check it: its own bytes when PNG, JPEG or WebP,
    else (a GIF, or an image whose end cannot be found) its first frame as PNG.

    Bytes after the image's end are dropped (a PNG followed by HTML is a polyglot, which a
    browser sniffing content might run).
    """
    image, fmt, _ = _decoded_input(data, len(data), max_pixels, "the upload")
    end = image_end(data)
    if fmt in CONTENT_TYPES and end is not None:
        return data[:end], CONTENT_TYPES[fmt]
    return encode(image, "png"), "image/png"


def _decoded_input(
    data: bytes, max_bytes: int, max_pixels: int, label: str
) -> tuple[Image.Image, str, bool]:
    """The oriented RGB(A) image, its format name, and whether `data` may be sent as it is."""
    if len(data) > max_bytes:
        raise InvalidInputImage(f"{label} is {len(data)} bytes; the limit is {max_bytes}")
    image = _open_checked(data, max_pixels, label)
    fmt = str(image.format).lower()
    try:
        image.load()  # a GIF stays on its first frame
        as_is = (
            fmt in CONTENT_TYPES
            and image.mode in _PLAIN_MODES
            and image.getexif().get(ExifTags.Base.Orientation, 1) == 1
        )
        image = ImageOps.exif_transpose(image)
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInputImage(f"{label} is damaged or truncated and cannot be decoded") from exc
    return image, fmt, as_is


def _as_input(image: Image.Image, output_format: str) -> InputImage:
    data = encode(image, output_format, quality=95 if output_format == "jpeg" else _QUALITY)
    return InputImage(data, CONTENT_TYPES[output_format], image.width, image.height)


def _open_checked(data: bytes, max_pixels: int, label: str) -> Image.Image:
    """Read the header only, refusing other formats and too many pixels before any decoding."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data), formats=INPUT_FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidInputImage(f"{label} has too many pixels; the limit is {max_pixels}") from exc
    except (UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise InvalidInputImage(f"{label} {_NOT_AN_IMAGE}") from exc
    except OSError as exc:
        raise InvalidInputImage(f"{label} is damaged and cannot be decoded") from exc
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise InvalidInputImage(f"{label} is {pixels} pixels; the limit is {max_pixels}")
    return image


# -- output images


def encode(image: Image.Image, output_format: str, *, quality: int = _QUALITY) -> bytes:
    """Encode an image as "png", "jpeg" or "webp"; the same image always gives the same bytes."""
    buffer = BytesIO()
    if output_format == "jpeg":
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        rgb.save(buffer, format="JPEG", quality=quality)
    elif output_format in ("png", "webp"):
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        if output_format == "png":
            image.save(buffer, format="PNG", compress_level=_PNG_LEVEL)
        else:
            image.save(buffer, format="WEBP", quality=quality, method=_WEBP_METHOD)
    else:
        raise ValueError(f"unknown output format {output_format!r}; one of png, jpeg, webp")
    return buffer.getvalue()


def transcode(data: bytes, output_format: str) -> bytes:
    """Return the image in `output_format`: unchanged if it already is, else decoded and encoded.

    Raises ValueError if the bytes are not a PNG, JPEG, WebP or GIF image.
    """
    if output_format not in CONTENT_TYPES:
        raise ValueError(f"unknown output format {output_format!r}; one of png, jpeg, webp")
    try:
        with Image.open(BytesIO(data), formats=INPUT_FORMATS) as image:
            if image.format == output_format.upper():
                return data
            image.load()
            return encode(image, output_format)
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"the image {_NOT_AN_IMAGE}") from exc


def preview(data: bytes, width: int) -> bytes:
    """A WebP copy `width` pixels wide (never wider than the image), in the image's proportions.

    Raises ValueError if the bytes are not a PNG, JPEG, WebP or GIF image.
    """
    try:
        with Image.open(BytesIO(data), formats=INPUT_FORMATS) as opened:
            opened.draft("RGB", (width, width))  # a JPEG decodes at a fraction of its size
            image = ImageOps.exif_transpose(opened)
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"the image {_NOT_AN_IMAGE}") from exc
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return encode(image, "webp")


def transcoded(data: bytes, output_format: str) -> tuple[bytes, tuple[int, int, str]]:
    """The image in `output_format` and its measures, in one call (one trip to a worker)."""
    data = transcode(data, output_format)
    return data, measure(data)


def header(data: bytes) -> tuple[int, int, str] | None:
    """Width, height and content type of a PNG, JPEG or WebP image, read from the first bytes
    of its header in microseconds, without Pillow; None when they do not say.

    The same width and height Pillow reports (a JPEG's EXIF orientation is not applied).
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return _be(data, 16, 4), _be(data, 20, 4), "image/png"
    if data.startswith(b"\xff\xd8"):
        return _jpeg_header(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_header(data)
    return None


def _be(data: bytes, pos: int, size: int) -> int:
    return int.from_bytes(data[pos : pos + size], "big")


#: start-of-frame markers: baseline, progressive, lossless... (not DHT, JPG or DAC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_header(data: bytes) -> tuple[int, int, str] | None:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte
            pos += 1
            continue
        if marker in _SOF and pos + 9 <= len(data):
            height, width = _be(data, pos + 5, 2), _be(data, pos + 7, 2)
            return (width, height, "image/jpeg") if width and height else None
        if marker == 0xD9 or marker == 0xDA:  # the end, or a scan before any frame header
            return None
        pos += 2 + _be(data, pos + 2, 2)
    return None


def _webp_header(data: bytes) -> tuple[int, int, str] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    else:
        return None
    return width, height, "image/webp"


def measure(data: bytes) -> tuple[int, int, str]:
    """Width, height and content type of a PNG, JPEG or WebP image, read from its header.

    Raises ValueError if the bytes are none of those.
    """
    try:
        with Image.open(BytesIO(data), formats=OUTPUT_FORMATS) as image:
            return image.width, image.height, CONTENT_TYPES[str(image.format).lower()]
    except (OSError, SyntaxError) as exc:
        raise ValueError("the image is not a PNG, JPEG or WebP image") from exc


def pixels(data: bytes) -> int:
    """The pixels an image's header declares, without decoding; 0 when no reader knows it."""
    try:
        with Image.open(BytesIO(data), formats=INPUT_FORMATS) as image:
            return int(image.width * image.height)
    except Exception:  # the decode that follows names what is wrong with it
        return 0


class PixelBudget:
    """At most `limit` decoded pixels in flight in this process: a decode waits for room.

    One huge image still decodes alone (it takes the whole budget); many at once queue up
    instead of multiplying the process's memory.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._room = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        pixels = min(pixels, self.limit)
        async with self._room:
            await self._room.wait_for(lambda: self.used + pixels <= self.limit)
            self.used += pixels
        try:
            yield
        finally:
            async with self._room:
                self.used -= pixels
                self._room.notify_all()


def shrink(image: InputImage, max_bytes: int) -> InputImage:
    """The image in at most `max_bytes`: re-encoded (JPEG, or WebP when it has transparency),
    then downscaled step by step until it fits. Raises ValueError if even 1x1 does not."""
    with Image.open(BytesIO(image.data), formats=INPUT_FORMATS) as opened:
        opened.load()
        picture = opened.convert("RGBA" if opened.has_transparency_data else "RGB")
    fmt = "webp" if picture.mode == "RGBA" else "jpeg"
    data = encode(picture, fmt)
    while len(data) > max_bytes:
        if picture.width == picture.height == 1:
            raise ValueError(f"no image fits in {max_bytes} bytes")
        # bytes grow about with the pixel count; aim a little under
        scale = math.sqrt(max_bytes / len(data)) * 0.95
        size = (max(1, int(picture.width * scale)), max(1, int(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
        data = encode(picture, fmt)
    return InputImage(data, CONTENT_TYPES[fmt], picture.width, picture.height)


def image_end(data: bytes) -> int | None:
    """Where a PNG, JPEG or WebP image's own bytes end (anything after is not the image:
    a polyglot's HTML, say); None when its structure does not say."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_end(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_end(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        end = 8 + int.from_bytes(data[4:8], "little")
        return end if end <= len(data) else None
    return None


#: a PNG chunk's length and type, read in place (no slices: a 4K PNG in libpng's 8 KB chunks
#: has some 1,300 of them, walked in 0.35 ms rather than 0.8)
_PNG_CHUNK = struct.Struct(">I4s")


def _png_end(data: bytes) -> int | None:
    pos = 8
    while pos + 12 <= len(data):
        length, kind = _PNG_CHUNK.unpack_from(data, pos)
        pos += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return pos if pos <= len(data) else None
    return None


def _jpeg_end(data: bytes) -> int | None:
    """Walks the segments (an EXIF thumbnail's own end marker is inside one) to the EOI."""
    pos = 2
    while pos + 2 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xD9:
            return pos + 2
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 1 if marker == 0xFF else 2  # fill byte, or a segment without length
            continue
        if pos + 4 > len(data):
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # a scan: entropy-coded bytes up to the next real marker
            pos = _scan_end(data, pos)
    return None


def _scan_end(data: bytes, pos: int) -> int:
    while (pos := data.find(b"\xff", pos)) >= 0 and pos + 1 < len(data):
        following = data[pos + 1]
        if following == 0 or 0xD0 <= following <= 0xD7:  # a stuffed byte, a restart
            pos += 2
        elif following == 0xFF:
            pos += 1
        else:
            return pos
    return len(data)
