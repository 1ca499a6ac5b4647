"""Out of file descriptors under a real `imagehub serve`: 503s, never a 500, and the server
recovers once connections close."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imagehub.testing import tiny_png

from .conftest import Server

#: the server's descriptor limit: enough to start, few enough to run out of
LIMIT = 160


@pytest.fixture
def idle_sockets() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def _wait_for_descriptors(pid: int, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(os.listdir(f"/proc/{pid}/fd")) < count:
        assert time.monotonic() < deadline, "the server never took every descriptor"
        time.sleep(0.01)


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux's prlimit")
def test_descriptor_exhaustion_answers_503_not_500(
    server_factory: type[Server], tmp_path: Path, idle_sockets: list[socket.socket]
) -> None:
    prefix = ("prlimit", f"--nofile={LIMIT}:{LIMIT}", "--")
    server = server_factory(tmp_path / "data", prefix=prefix).start()
    with server.client() as client:  # one kept-alive connection, opened while there was room
        file_url = client.post("/hub/v1/files", content=tiny_png(32, 32)).json()["url"]
        body = {"model": "nano-banana", "input": {"prompt": "x"}}
        created = client.post("/hub/v1/tasks", json=body)
        assert created.status_code == 202
        # finished first: writing its image lets go of one of the media's spare files, and
        # that descriptor would be free again once the idle connections had taken the rest
        for _ in range(20):
            task = client.get(f"/hub/v1/tasks/{created.json()['task_id']}?wait=5").json()
            if task["ready"]:
                break
        assert task["status"] == "succeeded", task
        # idle connections take every descriptor the server has left, once it has accepted them
        for _ in range(LIMIT + 40):
            idle_sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        assert server.proc is not None
        _wait_for_descriptors(server.proc.pid, LIMIT)
        # reading a file takes a descriptor: none is left, and the server says so
        statuses = {client.get(file_url).status_code}
        assert statuses == {503}, statuses
        for _ in range(20):
            statuses.add(client.get(file_url).status_code)
            statuses.add(client.post("/hub/v1/files", content=tiny_png(32, 32)).status_code)
            statuses.add(client.post("/hub/v1/tasks", json=body).status_code)
            statuses.add(client.get("/hub/v1/tasks").status_code)
        # a file written takes no new descriptor (it goes into a spare, made before) and
        # lets go of one: the other requests may be answered, but never with a 500
        assert 500 not in statuses, statuses
        for sock in idle_sockets:
            sock.close()
        idle_sockets.clear()
        recovered = httpx.get(file_url, timeout=10)
        assert recovered.status_code == 200
    server.stop()
    assert "Traceback" not in server.log.read_text()
