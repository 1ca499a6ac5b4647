"""The real `imagehub serve` process, driven through HTTP only, as a new user would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.acceptance.conftest import Server


def wait_ready(client, task_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        task = client.get(f"/hub/v1/tasks/{task_id}", params={"wait": 10}).json()
        if task["ready"]:
            return task
    raise AssertionError(f"task {task_id} never became ready")


def test_a_new_user_generates_and_downloads_an_image(server: Server):
    with server.client() as client:
        models = client.get("/hub/v1/models").json()["data"]
        assert len(models) == 8
        created = client.post(
            "/hub/v1/tasks",
            json={
                "model": "nano-banana-2",
                "input": {"prompt": "a lighthouse", "aspect_ratio": "16:9"},
            },
        )
        assert created.status_code == 202
        task = wait_ready(client, created.json()["task_id"])
        assert task["status"] == "succeeded" and task["provider"] == "demo"
        image = task["output"]["images"][0]
        file = client.get(image["url"], headers={"Authorization": ""})
        assert file.status_code == 200 and len(file.content) == image["file_size"]
        assert (image["width"], image["height"]) == (1376, 768)


def test_first_start_without_a_key_creates_one_and_prints_it_once(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "IMAGEHUB_ADMIN_KEY"}
    server = Server(tmp_path / "data")
    server.env = env
    server.start()
    server.stop()
    output = server.log.read_text()
    keys = [line.strip() for line in output.splitlines() if line.strip().startswith("ih_")]
    assert len(keys) == 1
    server.start()
    with server.client(keys[0]) as client:
        assert client.get("/hub/v1/models").status_code == 200
    server.stop()
    printed = [
        line for line in server.log.read_text().splitlines() if line.strip().startswith("ih_")
    ]
    assert len(printed) == 1, "the key must be printed only on the first start"


def test_tasks_survive_kill_9_and_finish_exactly_once(server_factory, tmp_path: Path):
    env = {"IMAGEHUB_LEASE_SECONDS": "1.5", "IMAGEHUB_WORKER_CONCURRENCY": "2"}
    server = server_factory(tmp_path / "data", env=env).start()
    body = {"model": "nano-banana-2", "input": {"prompt": "p", "resolution": "2K", "num_images": 2}}
    with server.client() as client:
        ids = [client.post("/hub/v1/tasks", json=body).json()["task_id"] for _ in range(12)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses = [client.get(f"/hub/v1/tasks/{i}").json()["status"] for i in ids]
            if "running" in statuses:
                break
        assert "running" in statuses and "queued" in statuses
    server.kill()

    server.start()
    with server.client() as client:
        tasks = [wait_ready(client, task_id) for task_id in ids]
        for task in tasks:
            assert task["status"] == "succeeded", task
            assert len(task["output"]["images"]) == 2
            for image in task["output"]["images"]:
                assert client.get(image["url"]).status_code == 200
        attempts = [t["attempts"] for t in tasks]
        assert max(attempts) == 2, "the tasks running at the kill were run again"
        assert min(attempts) == 1
        # every task is reported once in the history, with one outcome
        history = client.get("/hub/v1/tasks", params={"limit": 200}).json()["data"]
        assert sorted(t["task_id"] for t in history) == sorted(ids)


def test_sigterm_lets_running_tasks_finish(server_factory, tmp_path: Path):
    server = server_factory(tmp_path / "data", env={"IMAGEHUB_WORKER_CONCURRENCY": "4"}).start()
    body = {"model": "nano-banana-pro", "input": {"prompt": "p", "resolution": "4K"}}
    with server.client() as client:
        task_id = client.post("/hub/v1/tasks", json=body).json()["task_id"]
        while client.get(f"/hub/v1/tasks/{task_id}").json()["status"] == "queued":
            time.sleep(0.01)
    # uvicorn re-raises the signal after its graceful shutdown
    assert server.stop() in (0, -15)
    server.start()
    with server.client() as client:
        task = client.get(f"/hub/v1/tasks/{task_id}").json()
        assert task["status"] == "succeeded" and task["attempts"] == 1


def test_cli_help_lists_serve():
    result = subprocess.run(
        [sys.executable, "-m", "imagehub.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "serve" in result.stdout
