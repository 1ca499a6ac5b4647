"""Synchronous Pillow helpers for input and output images; callers run them in a thread."""

from __future__ import annotations

import threading
import warnings
from io import BytesIO

from PIL import Image, ImageOps, UnidentifiedImageError

from imagehub.errors import InvalidInputImage
from imagehub.providers.base import InputImage

#: output format name (the `output_format` parameter) -> content type
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
#: content type -> output format name, the reverse of CONTENT_TYPES
FORMATS: dict[str, str] = {ctype: fmt for fmt, ctype in CONTENT_TYPES.items()}
#: content type -> file extension; the format is "jpeg" everywhere, only file names end ".jpg"
EXTENSIONS: dict[str, str] = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}

#: what an input image may be; Pillow would otherwise sniff dozens of formats
INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP")
_NOT_AN_IMAGE = "is not a PNG, JPEG, WebP or GIF image"
_PNG_LEVEL = 1  # speed over size: outputs are transcoded or stored, not archived
_QUALITY = 90
_WEBP_METHOD = 2  # about twice as fast as the default 4, files barely larger

# warnings.catch_warnings swaps process-wide state: serialize it and keep it to the header read
_WARNINGS_LOCK = threading.Lock()


def decode_input(
    data: bytes, *, max_bytes: int, max_pixels: int, label: str = "input image"
) -> InputImage:
    """Check and decode an input image, returning it oriented, as RGB(A), re-encoded as PNG."""
    if len(data) > max_bytes:
        raise InvalidInputImage(f"{label} is {len(data)} bytes; the limit is {max_bytes}")
    image = _open_checked(data, max_pixels, label)
    try:
        image.load()  # a GIF stays on its first frame
        image = ImageOps.exif_transpose(image)
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInputImage(f"{label} is damaged or truncated and cannot be decoded") from exc
    return InputImage(
        data=encode(image, "png"),
        content_type="image/png",
        width=image.width,
        height=image.height,
    )


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


def encode(image: Image.Image, output_format: str) -> bytes:
    """Encode an image as "png", "jpeg" or "webp"; the same image always gives the same bytes."""
    buffer = BytesIO()
    if output_format == "jpeg":
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        rgb.save(buffer, format="JPEG", quality=_QUALITY)
    elif output_format in ("png", "webp"):
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        if output_format == "png":
            image.save(buffer, format="PNG", compress_level=_PNG_LEVEL)
        else:
            image.save(buffer, format="WEBP", quality=_QUALITY, method=_WEBP_METHOD)
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


def measure(data: bytes) -> tuple[int, int, str]:
    """Width, height and content type of a PNG, JPEG or WebP image, read from its header.

    Raises ValueError if the bytes are none of those.
    """
    try:
        with Image.open(BytesIO(data), formats=_OUTPUT_FORMATS) as image:
            return image.width, image.height, CONTENT_TYPES[str(image.format).lower()]
    except (OSError, SyntaxError) as exc:
        raise ValueError("the image is not a PNG, JPEG or WebP image") from exc
