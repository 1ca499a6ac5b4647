"""A full disk under a real `imagehub serve`: 503s, not 500s; running tasks wait, not fail;
readiness tells; nothing half-written stays behind once there is room again."""

from __future__ import annotations

import errno
import http.server
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from imagehub.testing import tiny_png

from .conftest import Server


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of the test's own (root may mount one; elsewhere the test skips)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a small tmpfs here: {done.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def slow_image() -> Iterator[str]:
    """A loopback server that answers a PNG after 2 s: time to fill the disk meanwhile."""
    png = tiny_png(64, 64)

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(2)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/in.png"
    server.shutdown()
    server.server_close()


def fill(folder: Path) -> Path:
    """Write a file until the disk is full."""
    filler = folder / "filler"
    with filler.open("wb") as out, pytest.raises(OSError, match="No space left") as full:
        _write_forever(out, b"\0" * 65536)
    assert full.value.errno == errno.ENOSPC
    return filler


def _write_forever(out: BinaryIO, chunk: bytes) -> None:
    while True:
        out.write(chunk)
        out.flush()


def test_a_full_disk_answers_503_and_fails_no_task(
    server_factory: type[Server], small_disk: Path, slow_image: str
) -> None:
    env = {"IMAGEHUB_FETCH_ALLOW_PRIVATE": "127.0.0.1/32", "IMAGEHUB_RETRY_BASE_SECONDS": "0.2"}
    server = server_factory(small_disk / "data", env=env).start()
    with server.client() as client:
        body = {"model": "nano-banana/edit", "input": {"prompt": "x", "image_urls": [slow_image]}}
        ids = [client.post("/hub/v1/tasks", json=body).json()["task_id"] for _ in range(4)]
        filler = fill(small_disk)  # while the tasks download their input

        upload = client.post("/hub/v1/files", content=tiny_png(512, 512))
        assert upload.status_code == 503, upload.text
        assert upload.json()["error"]["code"] == "overloaded"
        assert int(upload.headers["Retry-After"]) >= 1
        ready = httpx.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["store"] is False
        submit = client.post("/hub/v1/tasks", json=body)
        assert submit.status_code in (202, 503), submit.text  # SQLite may still find room

        time.sleep(4)  # the tasks finish drawing and meet the full disk
        statuses = [client.get(f"/hub/v1/tasks/{i}").json()["status"] for i in ids]
        assert "failed" not in statuses

        filler.unlink()
        for task_id in ids:
            task = client.get(f"/hub/v1/tasks/{task_id}", params={"wait": 60}).json()
            assert task["status"] == "succeeded", task
            assert task["attempts"] >= 2  # it met the full disk, and ran again
            assert client.get(task["output"]["images"][0]["url"]).status_code == 200
        assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
    server.stop()
    assert list(small_disk.rglob("*.part")) == []
    shutil.rmtree(small_disk / "data", ignore_errors=True)
