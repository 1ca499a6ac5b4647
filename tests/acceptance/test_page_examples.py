"""The page's request examples, copied as they are and run against a real `imagehub serve`."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import KEY, Server


def code_block(page: str, element_id: str) -> str:
    match = re.search(rf'<code id="{re.escape(element_id)}"[^>]*>(.*?)</code>', page, re.S)
    assert match, f"no code block {element_id}"
    return html.unescape(match.group(1))


def run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, "IMAGEHUB_API_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def page(server: Server) -> str:
    response = httpx.get(server.url + "/", timeout=10)
    assert response.status_code == 200
    return response.text


def saved_images(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "images").iterdir())


def test_the_python_example_saves_the_image(page: str, tmp_path: Path):
    (tmp_path / "generate.py").write_text(code_block(page, "model-nano-banana-pro-code-python"))
    out = run([sys.executable, "generate.py"], tmp_path)
    assert "2048 x 2048" in out  # nano-banana-pro's example asks for 2K at 1:1
    assert len(saved_images(tmp_path)) == 1


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js 18+ to run the example")
def test_the_javascript_example_saves_the_image(page: str, tmp_path: Path):
    script = tmp_path / "generate.mjs"
    script.write_text(code_block(page, "model-gpt-image-2-code-javascript"))
    out = run(["node", str(script)], tmp_path)
    assert "768 x 1024" in out  # gpt-image-2's example asks for portrait_4_3
    [name] = saved_images(tmp_path)
    assert (tmp_path / "images" / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "curl", "jq")),
    reason="the shell polling loop needs bash, curl and jq",
)
def test_the_shell_polling_loop_ends_with_the_ready_task(page: str, tmp_path: Path):
    out = run(["bash", "-c", code_block(page, "loop-code-curl")], tmp_path)
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["error"] is None
    assert result["images"][0]["width"] == 1344  # nano-banana at 16:9


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "curl")), reason="needs bash and curl"
)
def test_the_upload_example_gives_a_url_for_image_urls(page: str, tmp_path: Path, server: Server):
    from imagehub.testing import tiny_png

    (tmp_path / "photo.png").write_bytes(tiny_png(32, 32))
    example = code_block(page, "upload-code")
    uploaded = json.loads(run(["bash", "-c", example], tmp_path))
    body = {
        "model": "nano-banana/edit",
        "input": {"prompt": "snow", "image_urls": [uploaded["url"]]},
    }
    with server.client() as client:
        task = client.post("/hub/v1/tasks", json=body, headers={"Prefer": "wait=30"}).json()
    assert task["status"] == "succeeded", task["error"]
