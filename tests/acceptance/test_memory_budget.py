"""One small PNG that decodes to 40 megapixels, named 16 times in each of 4 edit tasks on an
OpenAI route: the process's peak memory stays within its decode budget instead of multiplying."""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagehub.testing import tiny_png

from .conftest import Server

#: one image's worth of decoding at a time
BUDGET = 40_000_000


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def bomb() -> bytes:
    """A few kilobytes of PNG that decode to 39.9 megapixels."""
    out = io.BytesIO()
    Image.new("L", (7000, 5700), 128).save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.fixture
def openai_upstream() -> Iterator[str]:
    """A loopback stand-in for OpenAI's image edits: reads the upload, answers one image."""
    answer = json.dumps(
        {"created": 0, "data": [{"b64_json": base64.b64encode(tiny_png(64, 64)).decode()}]}
    ).encode()

    class Edits(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Edits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(180)
def test_many_references_to_a_huge_image_stay_within_the_budget(
    server_factory: type[Server], tmp_path: Path, openai_upstream: str
) -> None:
    env = {
        "IMAGEHUB_DECODE_BUDGET_PIXELS": str(BUDGET),
        "IMAGEHUB_OPENAI_API_KEY": "sk-test",
        "IMAGEHUB_OPENAI_BASE_URL": openai_upstream,
        "IMAGEHUB_FETCH_ALLOW_PRIVATE": "127.0.0.1/32",
    }
    server = server_factory(tmp_path / "data", env=env).start()
    assert server.proc is not None
    png = bomb()
    assert len(png) < 200_000
    with server.client() as client:
        url = client.post("/hub/v1/files", content=png).json()["url"]
        before = peak_rss_mib(server.proc.pid)
        body = {"model": "gpt-image-2/edit", "input": {"prompt": "x", "image_urls": [url] * 16}}
        ids = [client.post("/hub/v1/tasks", json=body).json()["task_id"] for _ in range(4)]
        for task_id in ids:
            task = client.get(f"/hub/v1/tasks/{task_id}", params={"wait": 60}).json()
            while not task["ready"]:
                time.sleep(0.5)
                task = client.get(f"/hub/v1/tasks/{task_id}", params={"wait": 60}).json()
            assert task["status"] == "succeeded", task
            assert task["provider"] == "openai"
        grown = peak_rss_mib(server.proc.pid) - before
    server.stop()
    # measured: ~320 MiB within a one-image budget, ~710 MiB with room for ten at once (and
    # 2.2 GB before each task decoded a repeated image once)
    assert grown < 500, f"peak RSS grew {grown:.0f} MiB"
