"""The Pillow helpers: input checks and decoding, output encoding, transcoding and measuring."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from io import BytesIO

import pytest
from PIL import Image

from imagehub import imaging
from imagehub.errors import InvalidInputImage
from imagehub.providers.base import InputImage


def _decode(data: bytes, label: str = "input image") -> InputImage:
    return imaging.decode_input(data, max_bytes=10_000_000, max_pixels=40_000_000, label=label)


def _bytes(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png(
    size: tuple[int, int] = (40, 20), color: tuple[int, ...] = (200, 30, 30), mode: str = "RGB"
) -> bytes:
    return _bytes(Image.new(mode, size, color), "PNG")


def _decoded(data: bytes) -> Image.Image:
    with Image.open(BytesIO(data)) as image:
        image.load()
        return image


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims another size, so no test allocates the pixels."""
    data = bytearray(_png((1, 1)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


# ---------------------------------------------------------------- decode_input


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_decode_accepts_the_allowed_formats_and_returns_png(fmt):
    data = _bytes(Image.new("RGB", (40, 20), (200, 30, 30)), fmt)
    result = _decode(data)
    assert (result.width, result.height, result.content_type) == (40, 20, "image/png")
    assert imaging.measure(result.data) == (40, 20, "image/png")
    assert _decoded(result.data).mode == "RGB"


def test_decode_keeps_transparency_as_rgba():
    result = _decode(_png(color=(1, 2, 3, 0), mode="RGBA"))
    image = _decoded(result.data)
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0)) == (1, 2, 3, 0)


def test_decode_converts_other_modes_to_rgb():
    gray = _bytes(Image.new("I;16", (8, 8), 1000), "PNG")
    cmyk = _bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")
    for data in (gray, cmyk):
        assert _decoded(_decode(data).data).mode == "RGB"


def test_decode_takes_the_first_frame_of_an_animated_gif():
    frames = [Image.new("RGB", (16, 16), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    image = _decoded(_decode(buffer.getvalue()).data)
    assert image.getpixel((8, 8)) == (255, 0, 0)


def test_decode_applies_exif_orientation():
    source = Image.new("RGB", (40, 20), (0, 0, 255))
    source.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    data = _bytes(source, "JPEG", exif=exif, quality=95)
    result = _decode(data)
    assert (result.width, result.height) == (20, 40)
    red, _, blue = _decoded(result.data).getpixel((10, 5))  # type: ignore[misc]
    assert red > 200 > blue  # the left edge is now the top


@pytest.mark.parametrize(
    "data", [b"", b"hello, world", b"<svg xmlns='http://www.w3.org/2000/svg'/>"]
)
def test_decode_refuses_non_images(data):
    with pytest.raises(InvalidInputImage, match="input image is not a PNG, JPEG, WebP or GIF"):
        _decode(data)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "PPM"])
def test_decode_refuses_formats_outside_the_allow_list(fmt):
    data = _bytes(Image.new("RGB", (16, 16)), fmt)
    with pytest.raises(InvalidInputImage, match="image 2 is not a PNG, JPEG, WebP or GIF image"):
        _decode(data, label="image 2")


def test_decode_refuses_too_many_bytes():
    data = _png()
    with pytest.raises(InvalidInputImage, match=f"is {len(data)} bytes; the limit is 50$"):
        imaging.decode_input(data, max_bytes=50, max_pixels=10_000)


def test_decode_refuses_too_many_pixels_from_the_header():
    data = _png_claiming(10_000, 6_000)
    with pytest.raises(InvalidInputImage, match="is 60000000 pixels; the limit is 40000000"):
        _decode(data)


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_decode_refuses_decompression_bombs(side):
    # 100 MP trips Pillow's bomb warning, 400 MP its bomb error; both are refused, never loaded
    with pytest.raises(InvalidInputImage, match="pixels"):
        imaging.decode_input(_png_claiming(side, side), max_bytes=1000, max_pixels=10**9)


def test_decode_leaves_the_warning_filters_as_they_were():
    before = list(warnings.filters)
    _decode(_png())
    with pytest.raises(InvalidInputImage):
        imaging.decode_input(_png_claiming(10_000, 10_000), max_bytes=1000, max_pixels=10**9)
    assert warnings.filters == before


def test_decode_refuses_a_truncated_image():
    data = _bytes(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(InvalidInputImage, match="input image is damaged or truncated"):
        _decode(data[: len(data) // 2])


def test_decode_refuses_an_empty_image():
    with pytest.raises(InvalidInputImage, match="input image is not a PNG"):
        _decode(_png_claiming(0, 5))


# ---------------------------------------------------------------- encode, transcode, measure


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_encode_makes_the_format_deterministically(fmt, mode):
    image = Image.effect_noise((48, 32), 40).convert(mode)
    data = imaging.encode(image, fmt)
    assert imaging.measure(data) == (48, 32, imaging.CONTENT_TYPES[fmt])
    assert imaging.encode(image.copy(), fmt) == data


def test_encode_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="unknown output format 'gif'"):
        imaging.encode(Image.new("RGB", (4, 4)), "gif")


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_transcode_returns_bytes_of_the_same_format_unchanged(fmt):
    data = imaging.encode(Image.new("RGB", (8, 8), (9, 9, 9)), fmt)
    assert imaging.transcode(data, fmt) is data


@pytest.mark.parametrize(("source", "target"), [("png", "jpeg"), ("jpeg", "webp"), ("webp", "png")])
def test_transcode_converts_between_formats(source, target):
    data = imaging.encode(Image.new("RGBA", (30, 10), (9, 9, 9, 255)), source)
    assert imaging.measure(imaging.transcode(data, target)) == (30, 10, f"image/{target}")


def test_transcode_converts_a_gif():
    data = _bytes(Image.new("RGB", (6, 4)), "GIF")
    assert imaging.measure(imaging.transcode(data, "png")) == (6, 4, "image/png")


def test_transcode_refuses_garbage_and_unknown_formats():
    with pytest.raises(ValueError, match="not a PNG, JPEG, WebP or GIF"):
        imaging.transcode(b"nope", "png")
    with pytest.raises(ValueError, match="unknown output format"):
        imaging.transcode(_png(), "bmp")


def test_measure_reads_the_header_only():
    assert imaging.measure(_png_claiming(3000, 2000)) == (3000, 2000, "image/png")


@pytest.mark.parametrize("data", [b"nope", _bytes(Image.new("RGB", (4, 4)), "GIF")])
def test_measure_refuses_anything_but_output_formats(data):
    with pytest.raises(ValueError, match="not a PNG, JPEG or WebP image"):
        imaging.measure(data)


def test_format_tables_agree():
    assert set(imaging.FORMATS) == set(imaging.EXTENSIONS) == set(imaging.CONTENT_TYPES.values())
    assert {imaging.FORMATS[ctype] for ctype in imaging.FORMATS} == set(imaging.CONTENT_TYPES)
    assert imaging.EXTENSIONS["image/jpeg"] == "jpg"


# ---------------------------------------------------------------- read_input, shrink


def _read(data: bytes) -> InputImage:
    return imaging.read_input(data, max_bytes=10_000_000, max_pixels=40_000_000)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_read_keeps_the_clients_own_bytes_when_the_upstreams_read_them(fmt):
    data = _bytes(Image.new("RGB", (40, 20), (200, 30, 30)), fmt)
    result = _read(data)
    assert result.data is data
    assert (result.width, result.height) == (40, 20)
    assert result.content_type == imaging.CONTENT_TYPES[fmt.lower()]


def test_read_reencodes_a_gif_as_png():
    result = _read(_bytes(Image.new("RGB", (16, 8), (1, 2, 3)), "GIF"))
    assert (
        imaging.measure(result.data) == (16, 8, "image/png") and result.content_type == "image/png"
    )


def test_read_rotates_a_jpeg_that_asks_for_it_and_keeps_it_a_jpeg():
    source = Image.new("RGB", (40, 20), (0, 0, 255))
    source.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    result = _read(_bytes(source, "JPEG", exif=exif, quality=95))
    assert imaging.measure(result.data) == (20, 40, "image/jpeg")
    red, _, blue = _decoded(result.data).getpixel((10, 5))  # type: ignore[misc]
    assert red > 200 > blue


def test_read_converts_a_cmyk_jpeg_to_an_rgb_jpeg():
    result = _read(_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    assert result.content_type == "image/jpeg" and _decoded(result.data).mode == "RGB"


def test_read_checks_like_decode():
    with pytest.raises(InvalidInputImage, match="input image is not a PNG, JPEG, WebP or GIF"):
        _read(b"hello")


def test_shrink_reencodes_then_downscales_to_fit():
    noise = Image.frombytes("RGB", (600, 400), os.urandom(600 * 400 * 3))
    image = _read(_bytes(noise, "PNG"))
    shrunk = imaging.shrink(image, 60_000)
    assert len(shrunk.data) <= 60_000 and shrunk.content_type == "image/jpeg"
    assert imaging.measure(shrunk.data) == (shrunk.width, shrunk.height, "image/jpeg")
    assert shrunk.width * 2 == pytest.approx(shrunk.height * 3, abs=2)


def test_shrink_keeps_transparency_as_webp():
    image = _read(_png(size=(64, 64), color=(1, 2, 3, 0), mode="RGBA"))
    shrunk = imaging.shrink(image, len(image.data))
    assert shrunk.content_type == "image/webp" and _decoded(shrunk.data).mode == "RGBA"


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("WEBP", {})],
)
def test_image_end_finds_where_the_image_stops(fmt, options):
    from imagehub.imaging import image_end

    buffer = BytesIO()
    Image.effect_noise((120, 80), 80).convert("RGB").save(buffer, fmt, **options)
    image = buffer.getvalue()
    assert image_end(image) == len(image)
    assert image_end(image + b"<html><script>alert(1)</script></html>") == len(image)
    assert image_end(image[: len(image) // 2]) is None


def test_a_jpeg_thumbnail_end_marker_is_not_the_end():
    from imagehub.imaging import image_end

    thumb = BytesIO()
    Image.new("RGB", (8, 8), "red").save(thumb, "JPEG")
    exif = Image.Exif()
    exif[0x010E] = "x"
    buffer = BytesIO()
    Image.effect_noise((64, 64), 80).convert("RGB").save(
        buffer, "JPEG", exif=exif.tobytes() + thumb.getvalue()
    )
    image = buffer.getvalue()
    assert image.count(b"\xff\xd9") >= 2
    assert image_end(image + b"trailing") == len(image)
