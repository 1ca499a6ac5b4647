"""Transient storage faults (disk full, no descriptor left): 503 at the API, a retry in the
worker, never a permanent failure nor a half-written file."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from imagehub.errors import is_storage_fault
from imagehub.hub import Hub
from imagehub.media import LocalMedia, MemoryMedia
from imagehub.testing import ScriptedProvider, tiny_png


def full_sqlite() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EMFILE, "Too many open files"), True),
        (OSError(errno.ENFILE, "Too many open files in system"), True),
        (full_sqlite(), True),
        (OSError(errno.ENOENT, "No such file"), False),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("no"), False),
        (sqlite3.OperationalError("no such table: tasks"), False),
    ],
)
def test_which_faults_pass_by_themselves(exc: Exception, transient: bool) -> None:
    assert is_storage_fault(exc) is transient


def test_a_fault_wrapped_by_another_error_is_still_seen() -> None:
    outer = RuntimeError("writing failed")
    outer.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_storage_fault(outer)


class FullMedia(MemoryMedia):
    """Media whose disk is full for the next `failures` writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def put(self, data: bytes, content_type: str) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return await super().put(data, content_type)


async def test_an_upload_to_a_full_disk_answers_503_with_retry_after(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    hub.media = FullMedia(failures=1)
    response = await client.post("/hub/v1/files", content=tiny_png())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert int(response.headers["Retry-After"]) >= 1
    # the disk has room again: the same upload is stored
    assert (await client.post("/hub/v1/files", content=tiny_png())).status_code == 201


async def test_a_submit_the_store_cannot_write_answers_503(
    hub: Hub, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def full(*args: object, **kwargs: object) -> None:
        raise full_sqlite()

    monkeypatch.setattr(hub.store, "create", full)
    body = {"model": "nano-banana", "input": {"prompt": "a cat"}}
    response = await client.post("/hub/v1/tasks", json=body)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert "Retry-After" in response.headers
    openai = await client.post("/v1/images/generations", json={"prompt": "a cat"})
    assert openai.status_code == 503
    assert "Retry-After" in openai.headers


async def test_a_task_that_meets_a_full_disk_runs_again_instead_of_failing(
    hub: Hub, client: httpx.AsyncClient, provider: ScriptedProvider
) -> None:
    # more failures than the task has attempts: a storage fault does not spend its budget
    hub.media = FullMedia(failures=hub.settings.max_attempts + 1)
    assert hub.worker is not None
    hub.worker.media = hub.media
    body = {"model": "nano-banana", "input": {"prompt": "a cat"}}
    created = (await client.post("/hub/v1/tasks", json=body)).json()
    task = await _ready(client, created["task_id"])
    assert task["status"] == "succeeded", task
    assert len(provider.requests) == hub.settings.max_attempts + 2
    assert task["output"]["images"][0]["url"]


async def _ready(client: httpx.AsyncClient, task_id: str) -> dict[str, object]:
    for _ in range(100):
        task = (await client.get(f"/hub/v1/tasks/{task_id}?wait=5")).json()
        if task["ready"]:
            return task  # type: ignore[no-any-return]
    raise AssertionError(f"task {task_id} never became ready")


async def test_a_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = LocalMedia(tmp_path)

    real_write = os.write

    def full(fd: int, data: memoryview) -> int:
        real_write(fd, data[:10])  # the disk fills up part way through
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("imagehub.media.os.write", full)
    with pytest.raises(OSError, match="No space"):
        await media.put(tiny_png(), "image/png")
    assert _files(tmp_path) == []


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_readiness_is_false_while_the_media_folder_cannot_write(
    hub: Hub, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    hub.media = LocalMedia(tmp_path / "media")
    assert (await client.get("/readyz")).status_code == 200
    assert _files(tmp_path) == []  # the probe cleans up
    (tmp_path / "blocked").write_bytes(b"a file where the folder should be")
    hub.media = LocalMedia(tmp_path / "blocked" / "media")
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["store"] is False
