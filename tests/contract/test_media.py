"""The MediaStore contract, run against every backend, plus LocalMedia's expiry and id checks."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from imagehub import media
from imagehub.media import FILE_ID, LocalMedia, MediaStore, MemoryMedia, content_type_of

#: one factory per backend, given a fresh temporary directory
BACKENDS: dict[str, Callable[[Path], MediaStore]] = {
    "local": lambda tmp_path: LocalMedia(tmp_path / "media"),
    "memory": lambda tmp_path: MemoryMedia(),
}

EXTENSION_OF = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
needs_spares = pytest.mark.skipif(
    not LocalMedia(Path()).spares_work, reason="nameless files need Linux's O_TMPFILE and /proc"
)


@pytest.fixture(params=list(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStore:
    return BACKENDS[request.param](tmp_path)


@pytest.mark.parametrize("content_type", list(EXTENSION_OF))
async def test_put_get_delete_round_trip(store, content_type):
    data = PNG + content_type.encode()
    file_id = await store.put(data, content_type)
    assert await store.get(file_id) == data
    await store.delete(file_id)
    assert await store.get(file_id) is None


@pytest.mark.parametrize(("content_type", "extension"), list(EXTENSION_OF.items()))
async def test_ids_match_file_id_and_carry_the_extension_of_the_content_type(
    store, content_type, extension
):
    file_id = await store.put(PNG, content_type)
    assert FILE_ID.match(file_id)
    assert file_id.endswith("." + extension)
    assert content_type_of(file_id) == content_type


async def test_every_put_gets_a_new_id_and_keeps_its_own_bytes(store):
    stored = {await store.put(bytes([i]) * 10, "image/png"): bytes([i]) * 10 for i in range(20)}
    assert len(stored) == 20
    for file_id, data in stored.items():
        assert await store.get(file_id) == data


async def test_get_of_an_unknown_id_returns_none(store):
    await store.put(PNG, "image/png")
    assert await store.get("f_" + "Z" * 22 + ".png") is None


async def test_delete_of_an_unknown_id_is_a_no_op(store):
    file_id = await store.put(PNG, "image/png")
    await store.delete("f_" + "Z" * 22 + ".png")
    assert await store.get(file_id) == PNG


async def test_empty_files_round_trip(store):
    file_id = await store.put(b"", "image/webp")
    assert await store.get(file_id) == b""


@pytest.mark.parametrize("bad", ["../x", "", "f_short.png", "f_" + "a" * 22 + ".exe"])
async def test_ids_that_are_not_file_ids_are_unknown(store, bad):
    assert await store.get(bad) is None


# ---------------------------------------------------------------- FILE_ID


@pytest.mark.parametrize(
    "text",
    [
        "f_" + "a" * 22 + ".png\n",
        "f_" + "a" * 21 + ".png",
        "f_" + "a" * 23 + ".png",
        "f_" + "a" * 21 + "-.png",
        "g_" + "a" * 22 + ".png",
        "f_" + "a" * 22 + ".jpeg",
        "x/f_" + "a" * 22 + ".png",
    ],
)
def test_file_id_pattern_refuses_near_misses(text):
    assert FILE_ID.match(text) is None


def test_file_id_pattern_accepts_all_four_extensions():
    for ext in ("png", "jpg", "webp", "gif"):
        assert FILE_ID.match("f_" + "aZ0" * 7 + "q." + ext)


# ---------------------------------------------------------------- LocalMedia


def _path_of(root: Path, file_id: str) -> Path:
    [path] = list(root.rglob(file_id))
    return path


async def test_local_media_serves_old_files_without_a_ttl(tmp_path):
    store = LocalMedia(tmp_path)
    file_id = await store.put(PNG, "image/png")
    old = time.time() - 10 * 365 * 86400
    os.utime(_path_of(tmp_path, file_id), (old, old))
    assert await store.get(file_id) == PNG


async def test_local_media_expires_files_older_than_the_ttl(tmp_path):
    store = LocalMedia(tmp_path, ttl_seconds=3600)
    fresh = await store.put(PNG, "image/png")
    stale = await store.put(PNG, "image/jpeg")
    old = time.time() - 3600 - 60
    os.utime(_path_of(tmp_path, stale), (old, old))
    assert await store.get(stale) is None
    assert await store.get(fresh) == PNG


async def test_local_media_keeps_files_just_inside_the_ttl(tmp_path):
    store = LocalMedia(tmp_path, ttl_seconds=3600)
    file_id = await store.put(PNG, "image/png")
    recent = time.time() - 3600 + 60
    os.utime(_path_of(tmp_path, file_id), (recent, recent))
    assert await store.get(file_id) == PNG


async def test_local_media_keeps_a_4k_image_whole_when_the_disk_takes_it_in_parts(
    tmp_path, monkeypatch
):
    """A 4K image's size (11 MB, written on a thread): `os.write` may take less than it is
    given, and the rest is written after it."""
    image = os.urandom(11 * 1024 * 1024)
    real_write = os.write
    calls = []

    def short_write(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        return real_write(fd, data[: 1024 * 1024])

    monkeypatch.setattr(media.os, "write", short_write)
    store = LocalMedia(tmp_path)
    file_id = await store.put(image, "image/png")
    assert len(calls) == 11
    assert _path_of(tmp_path, file_id).read_bytes() == image
    assert await store.get(file_id) == image


async def _spares_ready(store: LocalMedia) -> None:
    for _ in range(500):
        if store._spares:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no spare files were made")


@needs_spares
async def test_local_media_creates_no_file_on_the_event_loop_once_spares_are_made(
    tmp_path, monkeypatch
):
    """A new inode can take a millisecond: a thread makes them, nameless, ahead of the
    writes, and the loop only writes into one and links it under its name."""
    real_open = os.open
    opens: list[tuple[str, bool]] = []

    def recording_open(path, flags, *args, **kwargs):
        opens.append((threading.current_thread().name, bool(flags & os.O_CREAT)))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(media.os, "open", recording_open)
    store = LocalMedia(tmp_path)
    loop_thread = threading.current_thread().name
    ids = [await store.put(PNG, "image/png")]  # no spares yet: created as written
    await _spares_ready(store)
    opens.clear()
    ids += [await store.put(PNG, kind) for _ in range(10) for kind in EXTENSION_OF]
    for _ in range(500):  # the next spares, begun when half were left
        if len(store._spares) > LocalMedia.SPARES - len(ids):
            break
        await asyncio.sleep(0.01)
    assert opens
    assert [name for name, _ in opens if name == loop_thread] == []
    assert all([await store.get(file_id) == PNG for file_id in ids])
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(ids)  # the spares left have no name


@needs_spares
async def test_local_media_takes_spares_up_to_inline_bytes_and_real_images_to_a_thread(
    tmp_path, monkeypatch
):
    """Real sizes: a 1K JPEG's 250 KB goes into a spare on the loop; a 2.4 MB PNG and a 4K
    image's 11 MB are created and written whole on a thread, and take no spare."""
    real_open = os.open
    creates: list[tuple[str, int]] = []

    def recording_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            creates.append((threading.current_thread().name, flags))
        return real_open(path, flags, *args, **kwargs)

    store = LocalMedia(tmp_path)
    await store.put(PNG, "image/png")
    await _spares_ready(store)
    monkeypatch.setattr(media.os, "open", recording_open)
    loop_thread = threading.current_thread().name
    bodies = {
        "image/jpeg": os.urandom(250 * 1024),
        "image/png": os.urandom(2_400_000),
        "image/webp": os.urandom(11 * 1024 * 1024),
    }
    spares = len(store._spares)
    ids = {kind: await store.put(body, kind) for kind, body in bodies.items()}
    assert len(store._spares) == spares - 1  # the 250 KB file's
    assert len(creates) == 2
    assert all(name != loop_thread for name, _ in creates)
    for kind, body in bodies.items():
        assert await store.get(ids[kind]) == body
        assert _path_of(tmp_path, ids[kind]).stat().st_size == len(body)


@needs_spares
async def test_local_media_lets_go_of_its_spares_when_closed(tmp_path):
    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = descriptors()
    store = LocalMedia(tmp_path)
    file_id = await store.put(PNG, "image/png")
    await _spares_ready(store)
    assert descriptors() > before
    await store.aclose()
    assert descriptors() == before
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [file_id]


@needs_spares
async def test_a_failed_write_into_a_spare_leaves_no_file(tmp_path, monkeypatch):
    store = LocalMedia(tmp_path)
    kept = await store.put(PNG, "image/png")
    await _spares_ready(store)
    real_write = os.write

    def full(fd: int, data: memoryview) -> int:
        real_write(fd, data[:10])  # the disk fills up part way through
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(media.os, "write", full)
    with pytest.raises(OSError, match="No space"):
        await store.put(PNG, "image/png")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [kept]
    monkeypatch.setattr(media.os, "write", real_write)
    assert await store.get(await store.put(PNG, "image/png")) == PNG  # spares still in use
    assert store.spares_work


@needs_spares
async def test_local_media_writes_on_after_its_folder_is_removed(tmp_path):
    root = tmp_path / "media"
    store = LocalMedia(root)
    await store.put(PNG, "image/png")
    await _spares_ready(store)
    shutil.rmtree(root)
    ids = [await store.put(PNG, "image/png") for _ in range(2)]
    await _spares_ready(store)  # made again, in the new folder
    ids.append(await store.put(PNG, "image/png"))
    assert all([await store.get(file_id) == PNG for file_id in ids])
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == sorted(ids)


@needs_spares
async def test_local_media_asks_for_spares_again_after_running_out_of_descriptors(
    tmp_path, monkeypatch
):
    """Out of descriptors is for now, not for good: the spares are asked for again later."""
    real = media._nameless_files
    batches: list[int] = []

    def out_of_descriptors_once(folder: str, count: int) -> list[int]:
        batches.append(count)
        if len(batches) == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return real(folder, count)

    monkeypatch.setattr(media, "_nameless_files", out_of_descriptors_once)
    monkeypatch.setattr(media, "SPARES_RETRY_SECONDS", 0.05)
    store = LocalMedia(tmp_path)
    ids = [await store.put(PNG, "image/png")]
    await asyncio.sleep(0.01)
    ids.append(await store.put(PNG, "image/png"))  # too soon: no second batch yet
    assert batches == [LocalMedia.SPARES]
    assert store.spares_work
    await asyncio.sleep(0.1)
    ids.append(await store.put(PNG, "image/png"))
    await _spares_ready(store)
    assert len(batches) == 2
    assert all([await store.get(file_id) == PNG for file_id in ids])


@needs_spares
def test_a_batch_of_spares_keeps_what_it_made_before_running_out(tmp_path, monkeypatch):
    real_open = os.open
    made: list[int] = []

    def three_then_none(path, flags, *args, **kwargs):
        if len(made) >= 3:
            raise OSError(errno.EMFILE, "Too many open files")
        made.append(real_open(path, flags, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(media.os, "open", three_then_none)
    fds = media._nameless_files(str(tmp_path), 10)
    assert fds == made
    media._close_all(fds)
    with pytest.raises(OSError, match="Too many"):
        media._nameless_files(str(tmp_path), 10)


@needs_spares
@pytest.mark.parametrize(
    ("error", "spares_after"), [(errno.ENOSPC, True), (errno.EPERM, False)], ids=["full", "refused"]
)
async def test_a_spare_that_cannot_be_linked_is_written_as_a_new_file(
    tmp_path, monkeypatch, error, spares_after
):
    """No space for the name is for now: spares stay on. A link the file system refuses
    switches them off. The file is stored either way."""
    store = LocalMedia(tmp_path)
    ids = [await store.put(PNG, "image/png")]
    await _spares_ready(store)

    def refused(*args, **kwargs):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(media.os, "link", refused)
    ids.append(await store.put(PNG, "image/png"))
    assert store.spares_work is spares_after
    assert store._spares == []  # let go of: the next ones are made afresh
    assert all([await store.get(file_id) == PNG for file_id in ids])
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(ids)


async def test_local_media_creates_files_as_written_where_there_are_no_spares(
    tmp_path, monkeypatch
):
    def refused(folder: str, count: int) -> list[int]:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(media, "_nameless_files", refused)
    store = LocalMedia(tmp_path)
    ids = [await store.put(PNG, "image/png") for _ in range(3)]
    for _ in range(100):
        if not store.spares_work:
            break
        await asyncio.sleep(0.01)
    assert not store.spares_work
    ids += [await store.put(PNG, "image/png") for _ in range(3)]
    assert all([await store.get(file_id) == PNG for file_id in ids])


async def test_local_media_writes_no_partial_files(tmp_path):
    store = LocalMedia(tmp_path)
    for content_type in EXTENSION_OF:
        await store.put(PNG, content_type)
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert len(names) == 4
    assert all(FILE_ID.match(name) for name in names)


async def test_local_media_refuses_a_path_that_climbs_out_of_its_folder(tmp_path):
    root = tmp_path / "media"
    store = LocalMedia(root)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    # where an unchecked id would lead, in either layout: root / "a" / "f_ab/../../../secret.png"
    # or root / "ab" / "f_ab/../../../secret.png"
    (root / "a" / "f_ab").mkdir(parents=True)
    (root / "ab" / "f_ab").mkdir(parents=True)
    sneaky = "f_ab/../../../secret.png"
    assert (root / "a" / sneaky).resolve() == secret.resolve()
    assert (root / "ab" / sneaky).resolve() == secret.resolve()
    assert await store.get(sneaky) is None
    await store.delete(sneaky)
    assert secret.read_bytes() == b"secret"
    assert await store.get("../x") is None


async def test_local_media_spreads_files_over_62_folders(tmp_path):
    store = LocalMedia(tmp_path)
    ids = [await store.put(PNG, "image/png") for _ in range(300)]
    folders = {path.name for path in tmp_path.iterdir()}
    assert folders == {file_id[2] for file_id in ids}
    assert all(len(name) == 1 and name.isalnum() for name in folders)


async def test_local_media_finds_and_deletes_files_of_the_two_character_layout(tmp_path):
    """Earlier versions wrote a file under its id's first two random characters."""
    store = LocalMedia(tmp_path)
    file_id = "f_Xy" + "c" * 20 + ".png"
    old = tmp_path / "Xy" / file_id
    old.parent.mkdir()
    old.write_bytes(PNG)
    assert await store.get(file_id) == PNG
    await store.delete(file_id)
    assert not old.exists()
    assert await store.get(file_id) is None


async def test_local_media_refuses_an_id_with_a_trailing_newline(tmp_path):
    store = LocalMedia(tmp_path)
    file_id = "f_ab" + "c" * 20 + ".png"
    # a file whose name really ends in a newline, where an unchecked id would find it
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / (file_id + "\n")).write_bytes(b"hidden")
    assert await store.get(file_id + "\n") is None
    await store.delete(file_id + "\n")
    assert (tmp_path / "ab" / (file_id + "\n")).exists()


def test_extensions_and_content_types_are_inverse_tables():
    assert media.EXTENSIONS == EXTENSION_OF
    assert {v: k for k, v in media.CONTENT_TYPES.items()} == media.EXTENSIONS
