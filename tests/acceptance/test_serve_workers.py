"""`imagehub serve --workers 2`: two real processes on one port, on SQLite and on PostgreSQL.

The test finds which process serves each of its connections (the server side of the TCP
connection, looked up in /proc), so it can submit to one process while that one's worker is
busy and see the other run the task. Processes poll the store only every 30 s, longer than
any wait below: a task that comes back ready was handed over by wake-ups.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import Server

#: the fake upstream holds each image this long: the first task keeps its process busy
UPSTREAM_SECONDS = 3.0
BODY = {"model": "gpt-image-2", "input": {"prompt": "a harbour", "quality": "low"}}


@pytest.fixture
def upstream() -> Iterator[str]:
    """An OpenAI Images API on loopback that answers after UPSTREAM_SECONDS."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 90, 160)).save(buffer, "PNG")
    answer = json.dumps(
        {
            "created": 1,
            "data": [{"b64_json": base64.b64encode(buffer.getvalue()).decode()}],
            "usage": {"input_tokens": 10, "output_tokens": 272, "total_tokens": 282},
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            time.sleep(UPSTREAM_SECONDS)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    return {
        "IMAGEHUB_DATABASE_URL": request.getfixturevalue("postgres_url"),
        "IMAGEHUB_WAKEUP_CHANNEL": f"imagehub_test_{secrets.token_hex(4)}",
    }


def start(server: Server, *args: str) -> Server:
    """`server.start`, and no server left running when it never became ready."""
    try:
        return server.start(*args)
    except BaseException:
        if server.proc is not None:
            server.stop()
        raise


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def serving_pid(conn: http.client.HTTPConnection, pids: list[int]) -> int:
    """The process holding the server side of this client connection."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == conn.port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    assert inode, "the server side of the connection was not found"
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no serve process holds the connection")


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    key: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    payload = json.dumps(body).encode() if body is not None else None
    heads = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(method, path, body=payload, headers={**heads, **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    if response.getheader("content-type", "").startswith("application/json"):
        return response.status, json.loads(data)
    return response.status, data.decode()


def metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def test_two_processes_share_the_port_the_bootstrap_and_the_tasks(
    tmp_path: Path, upstream: str, store_env: dict[str, str]
):
    server = Server(tmp_path / "data")
    server.env = {k: v for k, v in os.environ.items() if k != "IMAGEHUB_ADMIN_KEY"}
    server.env.update(
        IMAGEHUB_OPENAI_API_KEY="sk-test",
        IMAGEHUB_OPENAI_BASE_URL=upstream,
        IMAGEHUB_DEMO="false",
        IMAGEHUB_WORKER_CONCURRENCY="1",
        IMAGEHUB_POLL_SECONDS="30",
        IMAGEHUB_KEEP_ALIVE_SECONDS="300",  # the test's connections idle through the waits
        **store_env,
    )
    start(server, "--workers", "2", "--log-level", "info")
    assert server.proc is not None
    pids = children(server.proc.pid)
    conns: dict[int, http.client.HTTPConnection] = {}
    try:
        assert len(pids) == 2
        log = server.log.read_text()
        keys = [line.strip() for line in log.splitlines() if line.strip().startswith("ih_")]
        assert len(keys) == 1, "one admin key, created and printed by the parent alone"
        key = keys[0]
        # connections until one reaches each process (the kernel spreads them by address)
        for _ in range(64):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            try:
                call(conn, "GET", "/healthz", "")  # accepted by now: a process holds it
                pid = serving_pid(conn, pids)
            except BaseException:
                conn.close()
                raise
            if pid in conns:
                conn.close()
            else:
                conns[pid] = conn
            if len(conns) == 2:
                break
        a_conn, b_conn = conns.values()

        status, listed = call(a_conn, "GET", "/hub/v1/admin/keys", key)
        assert status == 200 and len(listed["data"]) == 1

        # A's only worker slot: taken by a task held upstream
        status, first = call(a_conn, "POST", "/hub/v1/tasks", key, BODY)
        assert status == 202
        for _ in range(600):
            status, first = call(a_conn, "GET", f"/hub/v1/tasks/{first['task_id']}", key)
            if first["status"] == "running":
                break
            time.sleep(0.01)
        assert first["status"] == "running"
        # submitted to A, which cannot take it: B's worker must, and A's waiter hear of it
        status, second = call(a_conn, "POST", "/hub/v1/tasks", key, BODY, {"Prefer": "wait=25"})
        assert status == 200 and second["status"] == "succeeded"
        status, metrics = call(b_conn, "GET", "/metrics", key)
        assert metric(metrics, "imagehub_tasks_submitted_total") == 0, "nothing was sent to B"
        assert metric(metrics, "imagehub_tasks_finished_total") == 1, "B ran A's task"
        status, first = call(a_conn, "GET", f"/hub/v1/tasks/{first['task_id']}?wait=25", key)
        assert first["status"] == "succeeded"
    finally:
        for conn in conns.values():
            conn.close()
        code = server.stop()
    assert code == 0
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()], "children left running"
    log = server.log.read_text()
    # the parent migrated the new store; the children found it up to date
    assert log.count("database schema upgraded to version 1\n") == 1
    assert "stopping 2 processes" in log


def test_a_killed_process_is_replaced_and_one_that_keeps_dying_stops_the_server(tmp_path: Path):
    server = start(Server(tmp_path / "data"), "--workers", "2")
    assert server.proc is not None
    first = children(server.proc.pid)
    assert len(first) == 2
    victim = first[0]
    for kill in range(3):
        os.kill(victim, signal.SIGKILL)
        if kill == 2:
            break
        replacement = wait_for(lambda: set(children(server.proc.pid)) - set(first))
        (victim,) = replacement
        first.append(victim)
        with server.client() as client:  # still serving meanwhile
            assert client.get("/hub/v1/models").status_code == 200
    # the third exit of the same process within a minute stops everything, and says why
    assert server.proc.wait(60) == 1
    assert not [pid for pid in first if Path(f"/proc/{pid}").exists()], "children left running"
    said = server.log.read_text()
    assert "was killed by SIGKILL, 3 times within 60 s; stopping the server" in said


def wait_for(found: Callable[[], set[int]]) -> set[int]:
    """What `found` returns once it is not empty (a replacement child, started)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if result := found():
            return result
        time.sleep(0.05)
    raise AssertionError("no replacement process started")
