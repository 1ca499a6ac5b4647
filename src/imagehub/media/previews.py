"""Previews: stored images resized for the page's history, made once and kept in memory.

A preview is made from the original the first time it is asked for, off the event loop, and
kept in a least-recently-used cache bounded in bytes; it works the same over every media store.
An entry is remade after `max_age` seconds, so a preview outlives an expired or deleted original
by that long at most.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from imagehub.imagework import ImageWork
from imagehub.imaging import header, preview
from imagehub.media import MediaStore


class PreviewWidth(IntEnum):
    """The widths a preview may have, in pixels (`?w=` of GET /hub/v1/files/{id})."""

    SMALL = 128
    MEDIUM = 256
    LARGE = 512


WIDTHS = tuple(PreviewWidth)
CONTENT_TYPE = "image/webp"


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    made: float


class Previews:
    def __init__(
        self,
        media: MediaStore,
        *,
        max_bytes: int = 32 * 1024 * 1024,
        max_age: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        work: ImageWork | None = None,
    ) -> None:
        self.media = media
        #: where previews are made (worker processes); None: a thread of this process
        self.work = work
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.clock = clock
        self.size = 0
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()

    async def get(self, file_id: str, width: int) -> bytes | None:
        """The preview of a stored image, or None when the image is unknown or expired."""
        if width not in WIDTHS:
            allowed = ", ".join(str(int(w)) for w in WIDTHS)
            raise ValueError(f"a preview is {allowed} pixels wide, not {width}")
        key = (file_id, width)
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry.made < self.max_age:
            self._entries.move_to_end(key)
            return entry.data
        self._drop(key)
        original = await self.media.get(file_id)
        if original is None:
            return None
        if self.work is None:
            data = await asyncio.to_thread(preview, original, width)
        else:
            measured = header(original)
            pixels = measured[0] * measured[1] if measured else 0
            data = await self.work.run(preview, original, width, pixels=pixels)
        self._keep(key, data)
        return data

    def _keep(self, key: tuple[str, int], data: bytes) -> None:
        self._drop(key)  # a concurrent request may have made it meanwhile
        self._entries[key] = _Entry(data, self.clock())
        self.size += len(data)
        while self.size > self.max_bytes and self._entries:
            _, oldest = self._entries.popitem(last=False)
            self.size -= len(oldest.data)

    def _drop(self, key: tuple[str, int]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= len(entry.data)
