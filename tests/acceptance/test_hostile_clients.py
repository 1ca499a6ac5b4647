"""`imagehub serve` against clients that misbehave on the wire: huge heads, slow heads, slow
bodies, connections that never say anything. Each gets a clear 4xx (or is dropped) and the
hub keeps answering everyone else."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.conftest import KEY, Server

ENV = {
    "IMAGEHUB_MAX_HEADER_BYTES": "8192",
    "IMAGEHUB_HEADER_TIMEOUT_SECONDS": "1",
    "IMAGEHUB_BODY_TIMEOUT_SECONDS": "1",
    "IMAGEHUB_FETCH_ALLOW_PRIVATE": "127.0.0.1",
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One hub for the module: each test checks it still serves everyone else."""
    server = Server(tmp_path_factory.mktemp("hostile") / "data", ENV).start()
    yield server
    server.stop()


def exchange(server: Server, data: bytes, pause: float = 0.0) -> bytes:
    """Send raw bytes, then read what comes back until the server closes (at most 10 s)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        time.sleep(pause)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_huge_request_head_is_431(hub: Server):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    assert exchange(hub, head).startswith(b"HTTP/1.1 431 ")
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n"
    assert exchange(hub, many).startswith(b"HTTP/1.1 431 ")
    assert httpx.get(hub.url + "/healthz").status_code == 200


def test_a_head_sent_too_slowly_is_408_and_the_connection_closed(hub: Server):
    started = time.monotonic()
    assert exchange(hub, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").startswith(b"HTTP/1.1 408 ")
    assert exchange(hub, b"").startswith(b"HTTP/1.1 408 "), "silent connections too"
    assert time.monotonic() - started < 8
    assert httpx.get(hub.url + "/healthz").status_code == 200


def test_a_body_sent_too_slowly_is_408(hub: Server):
    head = (
        b"POST /hub/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    answer = exchange(hub, head + b'{"model": ')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request_timeout" in answer
    with hub.client() as client:
        assert client.get("/hub/v1/tasks").json()["data"] == []


def test_a_long_poll_outlives_the_body_deadline(hub: Server):
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/a.png"
        body = {"model": "nano-banana/edit", "input": {"prompt": "x", "image_urls": [url]}}
        with hub.client() as client:
            task_id = client.post("/hub/v1/tasks", json=body).json()["task_id"]
            # the body deadline is 1 s: a 2 s long-poll must not be cut by it
            waited = client.get(f"/hub/v1/tasks/{task_id}?wait=2")
            assert waited.status_code == 200 and waited.json()["status"] == "running"
            assert client.post(f"/hub/v1/tasks/{task_id}/cancel").status_code == 200
