"""Media: stored image bytes. A file id is the capability to read it (128 random bits).

Backends: `LocalMedia` (a folder), `MemoryMedia` (tests) and `S3Media` (`imagehub.media.s3`,
any S3-compatible object store); `open_media` picks the one the settings describe.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import time
import weakref
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

logger = logging.getLogger(__name__)

#: file extension by content type, and back, for every format the hub stores (GIF included)
EXTENSIONS = {f.content_type: f.extension for f in IMAGE_FORMATS}
CONTENT_TYPES = {f.extension: f.content_type for f in IMAGE_FORMATS}
#: \Z, not $: "$" would also match before a trailing newline
FILE_ID = re.compile(r"^f_[A-Za-z0-9]{22}\.(png|jpg|webp|gif)\Z")
#: a new file, never one that exists
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
#: a new nameless file in a folder (Linux), linked under its name once written
_TMPFILE = os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC if hasattr(os, "O_TMPFILE") else None
#: what refuses a nameless file for now, not for good: no descriptor, no space, no memory, the
#: folder removed (made again by the next write)
_FOR_NOW = {errno.EMFILE, errno.ENFILE, errno.ENOSPC, errno.EDQUOT, errno.ENOMEM, errno.ENOENT}
#: how long spares are not asked for after such a refusal
SPARES_RETRY_SECONDS = 1.0


def content_type_of(file_id: str) -> str:
    return CONTENT_TYPES[file_id.rsplit(".", 1)[1]]


class MediaStore(Protocol):
    async def put(self, data: bytes, content_type: str) -> str:
        """Store bytes; return the new file id."""

    async def get(self, file_id: str) -> bytes | None:
        """The bytes, or None when unknown or expired."""

    async def delete(self, file_id: str) -> None: ...

    async def aclose(self) -> None:
        """Let go of what the store holds open (at the hub's stop)."""


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

    A file up to `INLINE_BYTES` is written on the event loop into a spare: a nameless file
    (`O_TMPFILE`) that a thread created ahead of time, then linked under its name, whole. What
    is slow in making a file is the new inode (10-20 µs on a quiet ext4, 150-1,300 µs for
    minutes after a mass delete, on some machines), and the spares take it off the loop, a
    batch per hand-off to the thread; the write and the link take 10-20 µs on the loop. A spare
    no file needed vanishes with its descriptor, even in a crash. Where the file system has no
    `O_TMPFILE`, or the spares run out, the file is created on the loop. Larger files go to a
    thread whole.
    """

    INLINE_BYTES = 256 * 1024
    #: spares made at once by the thread, when fewer than half are left
    SPARES = 64

    def __init__(self, root: Path, ttl_seconds: float | None = None) -> None:
        self.root = root
        self.ttl_seconds = ttl_seconds
        self._folder = str(root)
        #: the fan-out folders known to exist: no `mkdir` per file
        self._made: set[str] = set()
        #: descriptors of nameless files made ahead, closed with the media or when collected
        self._spares: list[int] = []
        #: the media folder's descriptor, which spares are linked under (see `_write_spare`)
        self._dir: list[int] = []
        self._closer = weakref.finalize(self, _close_all, self._spares, self._dir)
        #: the batch of spares being made, if any
        self._making: asyncio.Future[list[int]] | None = None
        #: no batch before this (loop time): the last one was refused for now (no descriptor
        #: or no space left)
        self._wait_until = 0.0
        #: False where the file system has no nameless files (no `O_TMPFILE`, or no /proc)
        self.spares_work = _TMPFILE is not None and os.path.isdir("/proc/self/fd")

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
            return file_id
        if self.spares_work and len(self._spares) <= self.SPARES // 2:
            self._make_spares()
        if not (self._spares and self._write_spare(self._spares.pop(), path, data)):
            self._write(path, data)
        return file_id

    def _make_spares(self) -> None:
        """Start a batch of spares on a thread, unless one is under way in this loop."""
        loop = asyncio.get_running_loop()
        if self._making is not None and self._making.get_loop() is loop:
            return
        if loop.time() < self._wait_until:  # the last batch could not make one
            return
        if not self._dir:
            try:
                os.makedirs(self._folder, exist_ok=True)
                self._dir.append(os.open(self._folder, _FOLDER))
            except OSError as exc:
                self._refused(exc, loop)
                return
        count = self.SPARES - len(self._spares)
        self._making = loop.run_in_executor(None, _nameless_files, self._folder, count)
        self._making.add_done_callback(self._spares_made)

    def _spares_made(self, making: asyncio.Future[list[int]]) -> None:
        if making is self._making:
            self._making = None
        if making.cancelled():
            return
        error = making.exception()
        if error is not None:
            self._refused(error, making.get_loop())
        elif self._closer.alive:
            self._spares.extend(making.result())
        else:  # closed meanwhile
            _close_all(making.result())

    def _refused(self, error: BaseException, loop: asyncio.AbstractEventLoop) -> None:
        if isinstance(error, OSError) and error.errno in _FOR_NOW:
            self._wait_until = loop.time() + SPARES_RETRY_SECONDS
        else:
            self._no_spares(error)

    def _no_spares(self, error: BaseException) -> None:
        """No nameless files here: from now on, files are created as they are written."""
        self.spares_work = False
        logger.info("media: no spare files in %s (%s)", self._folder, error)

    def _write_spare(self, fd: int, path: str, data: bytes) -> bool:
        """Write `data` into the nameless file `fd`, then give it its name: no reader finds it
        part-written, and a failed write leaves nothing. False: no link (the media folder
        removed since its descriptor was opened, say): `put` then writes the file as it would
        without spares."""
        folder = os.path.dirname(path)
        if folder not in self._made:
            self._make_folder(folder)
        try:
            _write_all(fd, data)
            # `linkat` of the descriptor's /proc entry, followed: a folder descriptor makes
            # `os.link` pass AT_SYMLINK_FOLLOW (AT_EMPTY_PATH would need a capability)
            name = path[len(self._folder) + 1 :]
            try:
                os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=self._dir[0])
            except OSError as exc:
                if exc.errno not in _FOR_NOW:  # this file system links no spare
                    self._no_spares(exc)
                _close_all(self._spares, self._dir)  # the next spares open the folder again
                self._made.clear()
                return False
        finally:
            os.close(fd)
        return True

    def _make_folder(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self._made.add(folder)

    def _write(self, path: str, data: bytes) -> None:
        folder = os.path.dirname(path)
        if folder not in self._made:
            self._make_folder(folder)
        # written in place, with no temporary name to rename (which doubled the system calls'
        # cost): no reader can ask for a file before `put` returns its id, and a write that
        # fails removes what it wrote
        try:
            fd = os.open(path, _CREATE, 0o644)
        except FileNotFoundError:  # the folder was removed since it was made
            self._make_folder(folder)
            fd = os.open(path, _CREATE, 0o644)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
        except BaseException:  # a full disk leaves no half-written file behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise

    async def aclose(self) -> None:
        """Let go of the spares (nameless: nothing is left on disk)."""
        self._closer()

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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _nameless_files(folder: str, count: int) -> list[int]:
    """Up to `count` new nameless files in `folder` (run on a thread: each takes a new inode).
    Those made before an error are kept: out of descriptors, the spares hold what they got."""
    assert _TMPFILE is not None
    fds: list[int] = []
    try:
        for _ in range(count):
            fds.append(os.open(folder, _TMPFILE, 0o644))
    except OSError:
        if not fds:
            raise
    return fds


def _close_all(*lists: list[int]) -> None:
    for fds in lists:
        while fds:
            os.close(fds.pop())


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

    async def aclose(self) -> None:
        pass


def open_media(settings: Settings) -> MediaStore:
    """The media store the settings describe: S3 for an `s3://` media URL, else a folder."""
    if settings.media_url:
        # imported here: the S3 client is an optional dependency (the `scale` extra)
        from imagehub.media.s3 import S3Media

        return S3Media.from_settings(settings)
    return LocalMedia(settings.media_path, ttl_seconds=settings.file_ttl_seconds)
