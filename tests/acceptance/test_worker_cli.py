"""`imagehub serve --no-worker` and `imagehub worker` as separate processes, and their signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.acceptance.conftest import KEY
from tests.acceptance.test_serve import wait_ready
from tests.fault.cluster import Api, Worker, client

BODY = {"model": "nano-banana", "input": {"prompt": "p"}}


def wait_status(http, task_id: str, status: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task = http.get(f"/hub/v1/tasks/{task_id}").json()
        if task["status"] == status:
            return task
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} never became {status}")


def test_api_and_worker_processes_share_one_sqlite_hub(tmp_path: Path):
    """The real `imagehub worker` command (demo provider) next to an API-only process."""
    data = tmp_path / "data"
    api = Api(data).start()
    env = {**os.environ, "IMAGEHUB_ADMIN_KEY": KEY}
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "imagehub.cli", "worker", "--data-dir", str(data)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with client(api) as http:
            # an API-only process runs no worker: it reports none rather than a healthy one
            assert http.get("/readyz").json() == {"status": "ok", "store": True, "worker": None}
            task_id = http.post("/hub/v1/tasks", json=BODY).json()["task_id"]
            task = wait_ready(http, task_id)
            assert task["status"] == "succeeded" and task["provider"] == "demo"
            assert http.get(task["output"]["images"][0]["url"]).status_code == 200
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        api.stop()
        log.close()
    # the worker logs its routing table at start: nothing configured, so the demo serves
    assert (
        "nano-banana -> demo (demo: offline placeholder)" in (tmp_path / "worker.log").read_text()
    )


def test_the_first_signal_lets_the_running_task_finish(tmp_path: Path):
    data = tmp_path / "data"
    api = Api(data).start()
    worker = Worker(data, {"IMAGEHUB_SHUTDOWN_GRACE_SECONDS": "30"}, "w", delay=1.5).start()
    try:
        with client(api) as http:
            task_id = http.post("/hub/v1/tasks", json=BODY).json()["task_id"]
            wait_status(http, task_id, "running")
            worker.signal(signal.SIGTERM)
            assert worker.proc is not None and worker.proc.wait(30) == 0
            task = http.get(f"/hub/v1/tasks/{task_id}").json()
            assert task["status"] == "succeeded" and task["attempts"] == 1
    finally:
        worker.ensure_dead()
        api.stop()


def test_a_second_signal_stops_at_once_and_hands_the_task_back(tmp_path: Path):
    data = tmp_path / "data"
    api = Api(data).start()
    env = {"IMAGEHUB_SHUTDOWN_GRACE_SECONDS": "600"}
    worker = Worker(data, env, "w", delay=600).start()
    try:
        with client(api) as http:
            task_id = http.post("/hub/v1/tasks", json=BODY).json()["task_id"]
            wait_status(http, task_id, "running")
            worker.signal(signal.SIGTERM)
            time.sleep(0.3)
            assert worker.alive, "the first signal waits for the running task"
            worker.signal(signal.SIGINT)
            # the 600 s grace and the 600 s upstream call are both cut short
            assert worker.proc is not None and worker.proc.wait(20) == 0
            task = http.get(f"/hub/v1/tasks/{task_id}").json()
            assert task["status"] == "queued" and task["attempts"] == 1, "handed back"
    finally:
        worker.ensure_dead()
        api.stop()


def test_cli_help_lists_worker_and_migrate():
    result = subprocess.run(
        [sys.executable, "-m", "imagehub.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "worker" in result.stdout and "migrate" in result.stdout
    worker_help = subprocess.run(
        [sys.executable, "-m", "imagehub.cli", "worker", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--concurrency" in worker_help.stdout
