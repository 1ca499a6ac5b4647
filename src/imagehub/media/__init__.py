"""Media: stored image bytes. A file id is the capability to read it (128 random bits).

Backends: `LocalMedia` (a folder), `MemoryMedia` (tests) and `S3Media` (`imagehub.media.s3`,
any S3-compatible object store); `open_media` picks the one the settings describe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from imagehub.imaging import IMAGE_FORMATS
from imagehub.tasks import new_id

if TYPE_CHECKING:
    from imagehub.settings import Settings

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "FILE_ID",
    "LocalMedia",
    "MediaStore",
    "MemoryMedia",
    "Presigning",
    "content_type_of",
    "open_media",
]

#: file extension by content type, and back, for every format the hub stores (GIF included)
EXTENSIONS = {f.content_type: f.extension for f in IMAGE_FORMATS}
CONTENT_TYPES = {f.extension: f.content_type for f in IMAGE_FORMATS}
#: \Z, not $: "$" would also match before a trailing newline
FILE_ID = re.compile(r"^f_[A-Za-z0-9]{22}\.(png|jpg|webp|gif)\Z")
#: a new file, never one that exists
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def content_type_of(file_id: str) -> str:
    return CONTENT_TYPES[file_id.rsplit(".", 1)[1]]


class MediaStore(Protocol):
    async def put(self, data: bytes, content_type: str) -> str:
        """Store bytes; return the new file id."""

    async def get(self, file_id: str) -> bytes | None:
        """The bytes, or None when unknown or expired."""

    async def delete(self, file_id: str) -> None: ...


@runtime_checkable
class Presigning(Protocol):
    """Media that clients can download from directly, through a short-lived signed URL."""

    async def presigned_url(self, file_id: str) -> str | None:
        """A URL to GET the file from, or None when unknown or expired."""


class LocalMedia:
    """Files in a folder, spread over 62 sub-folders by the id's first random character.

    Few sub-folders, so that a new media folder's first files do not each pay a `mkdir` on the
    event loop (with two characters, 3,844 folders, a fresh hub's first thousands of tasks
    did, at 50-360 µs each). A million files make 16,000 a folder, which ext4 and XFS index
    (hashed trees of names). Files written by earlier versions, under two characters, are still
    found.

    A file up to `INLINE_BYTES` is written and read on the event loop: a few tens of
    microseconds of system calls, where a hand-off to a thread and back costs the loop more
    (40-150 µs, two switches of the GIL). Larger files go to a thread, and so do small ones
    while the disk is slow: creating a file on a file system whose metadata the kernel has
    paged out, or just after a mass delete, can take a millisecond, and on the loop every
    request would wait for it.
    """

    INLINE_BYTES = 256 * 1024
    #: small writes go to a thread while they take longer than this (smoothed): several times
    #: what the hand-off costs the loop
    SLOW_WRITE_SECONDS = 0.0005
    #: the weight of the newest small write in the smoothed time
    _SMOOTHING = 0.1

    def __init__(self, root: Path, ttl_seconds: float | None = None) -> None:
        self.root = root
        self.ttl_seconds = ttl_seconds
        self._folder = str(root)
        #: the fan-out folders known to exist: no `mkdir` per file
        self._made: set[str] = set()
        #: how long a small write has been taking, smoothed (seconds)
        self.write_seconds = 0.0

    def _path(self, file_id: str) -> str:
        return os.path.join(self._folder, file_id[2], file_id)

    def _old_path(self, file_id: str) -> str:
        """Where earlier versions wrote the file: under its first two random characters."""
        return os.path.join(self._folder, file_id[2:4], file_id)

    async def put(self, data: bytes, content_type: str) -> str:
        file_id = f"{new_id('f_')}.{EXTENSIONS[content_type]}"
        path = self._path(file_id)
        if len(data) > self.INLINE_BYTES:
            await asyncio.to_thread(self._write, path, data)
        elif self.write_seconds < self.SLOW_WRITE_SECONDS:
            self._timed_write(path, data)
        else:  # timed there too: once the disk is fast again, writes come back to the loop
            await asyncio.to_thread(self._timed_write, path, data)
        return file_id

    def _timed_write(self, path: str, data: bytes) -> None:
        started = time.perf_counter()
        self._write(path, data)
        took = time.perf_counter() - started
        self.write_seconds += (took - self.write_seconds) * self._SMOOTHING

    def _write(self, path: str, data: bytes) -> None:
        folder = os.path.dirname(path)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        # written in place, with no temporary name to rename (which doubled the system calls'
        # cost): no reader can ask for a file before `put` returns its id, and a write that
        # fails removes what it wrote
        try:
            fd = os.open(path, _CREATE, 0o644)
        except FileNotFoundError:  # the folder was removed since it was made
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, _CREATE, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except BaseException:  # a full disk leaves no half-written file behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise

    async def get(self, file_id: str) -> bytes | None:
        if not FILE_ID.match(file_id):
            return None
        path = self._path(file_id)
        try:
            status = os.stat(path)
        except FileNotFoundError:
            path = self._old_path(file_id)
            try:
                status = os.stat(path)
            except FileNotFoundError:
                return None
        if self.ttl_seconds is not None and time.time() - status.st_mtime > self.ttl_seconds:
            return None
        if status.st_size <= self.INLINE_BYTES:
            return self._read(path)
        return await asyncio.to_thread(self._read, path)

    @staticmethod
    def _read(path: str) -> bytes | None:
        try:
            with open(path, "rb") as file:
                return file.read()
        except FileNotFoundError:  # deleted since
            return None

    async def delete(self, file_id: str) -> None:
        if FILE_ID.match(file_id):
            await asyncio.to_thread(self._unlink, file_id)

    def _unlink(self, file_id: str) -> None:
        for path in (self._path(file_id), self._old_path(file_id)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


class MemoryMedia:
    """Files in a dict, for tests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def put(self, data: bytes, content_type: str) -> str:
        file_id = f"{new_id('f_')}.{EXTENSIONS[content_type]}"
        self.files[file_id] = data
        return file_id

    async def get(self, file_id: str) -> bytes | None:
        return self.files.get(file_id)

    async def delete(self, file_id: str) -> None:
        self.files.pop(file_id, None)


def open_media(settings: Settings) -> MediaStore:
    """The media store the settings describe: S3 for an `s3://` media URL, else a folder."""
    if settings.media_url:
        # imported here: the S3 client is an optional dependency (the `scale` extra)
        from imagehub.media.s3 import S3Media

        return S3Media.from_settings(settings)
    return LocalMedia(settings.media_path, ttl_seconds=settings.file_ttl_seconds)
