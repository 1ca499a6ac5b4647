"""Previews: made once per width, bounded in bytes, remade after their maximum age."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image

from imagehub.media import MemoryMedia
from imagehub.media.previews import Previews


def png(width: int, height: int) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (width, height), "#3366cc").save(buffer, format="PNG")
    return buffer.getvalue()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_least_recently_used_previews_go_first_when_over_the_byte_bound():
    media = MemoryMedia()
    ids = [await media.put(png(600, 400), "image/png") for _ in range(3)]
    one = len(await Previews(media).get(ids[0], 128) or b"")
    previews = Previews(media, max_bytes=2 * one)
    for file_id in ids[:2]:
        await previews.get(file_id, 128)
    await previews.get(ids[0], 128)  # now the most recently used
    await previews.get(ids[2], 128)  # evicts ids[1]
    assert previews.size <= 2 * one
    for file_id in ids:
        await media.delete(file_id)
    assert await previews.get(ids[0], 128) is not None
    assert await previews.get(ids[2], 128) is not None
    assert await previews.get(ids[1], 128) is None  # evicted, and the original is gone


async def test_a_preview_is_remade_after_its_maximum_age():
    media, clock = MemoryMedia(), Clock()
    previews = Previews(media, max_age=600, clock=clock)
    file_id = await media.put(png(600, 400), "image/png")
    first = await previews.get(file_id, 256)
    await media.delete(file_id)
    clock.now = 599
    assert await previews.get(file_id, 256) == first
    clock.now = 601  # older than max_age: the original is read again, and it is gone
    assert await previews.get(file_id, 256) is None
    assert previews.size == 0


async def test_only_the_allowed_widths():
    with pytest.raises(ValueError, match="128, 256, 512"):
        await Previews(MemoryMedia()).get("f_x.png", 300)
