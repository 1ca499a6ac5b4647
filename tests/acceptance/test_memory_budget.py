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


def tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants (its image workers) right now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    total = 0
    for pid in tree:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return total / 1024


class PeakSampler:
    """The highest resident memory of a process tree, sampled every 20 ms while it runs."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, tree_rss_mib(self.root))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


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
        # four image workers: without the budget, four huge decodes would run at once
        "IMAGEHUB_IMAGE_PROCESSES": "4",
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
        before = tree_rss_mib(server.proc.pid)
        body = {"model": "gpt-image-2/edit", "input": {"prompt": "x", "image_urls": [url] * 16}}
        with PeakSampler(server.proc.pid) as sampler:
            ids = [client.post("/hub/v1/tasks", json=body).json()["task_id"] for _ in range(4)]
            for task_id in ids:
                task = client.get(f"/hub/v1/tasks/{task_id}", params={"wait": 60}).json()
                while not task["ready"]:
                    time.sleep(0.5)
                    task = client.get(f"/hub/v1/tasks/{task_id}", params={"wait": 60}).json()
                assert task["status"] == "succeeded", task
                assert task["provider"] == "openai"
        grown = sampler.peak - before
    server.stop()
    # the server and its four image workers together: measured ~200 MiB within a one-image
    # budget (the decodes take turns), ~540 MiB with room for four at once
    assert grown < 400, f"peak RSS of the server's processes grew {grown:.0f} MiB"
