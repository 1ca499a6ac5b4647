"""`imagehub serve` against requests an attacker sends over HTTP: bodies shaped to be costly
or unrenderable, an admin locking everyone out, a key hoarding long-polls, requests without
`Host`. Each gets a clear 4xx, nothing half-written, and the hub keeps serving."""

from __future__ import annotations

import socket
import time

import httpx

from tests.acceptance.conftest import KEY, Server


def test_a_deeply_nested_metadata_is_422_and_leaves_the_history_readable(server: Server):
    with server.client() as client:
        deep = "[" * 300 + "1" + "]" * 300
        raw = '{"model":"nano-banana","input":{"prompt":"x"},"metadata":{"a":' + deep + "}}"
        answer = client.post("/hub/v1/tasks", content=raw)
        assert answer.status_code == 422
        assert answer.json()["error"]["details"][0]["loc"] == ["metadata"]
        history = client.get("/hub/v1/tasks")
        assert history.status_code == 200 and history.json()["data"] == []


def test_a_million_keys_is_a_short_422_and_the_hub_keeps_answering(server: Server):
    many = ",".join(f'"k{i}":1' for i in range(1_000_000))
    raw = '{"model":"nano-banana","input":{' + many + "}}"
    with server.client() as client:
        answer = client.post("/hub/v1/tasks", content=raw)
        assert answer.status_code == 422 and len(answer.content) < 2_000
        assert answer.json()["error"]["details"][0]["loc"] == ["input"]
        assert client.get("/healthz").status_code == 200


def test_the_configured_admin_key_survives_a_revoke_and_a_restart(server: Server):
    with server.client() as client:
        own = client.get("/hub/v1/key").json()["id"]
        refused = client.post(f"/hub/v1/admin/keys/{own}/revoke")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "last_admin_key"
        other = client.post("/hub/v1/admin/keys", json={"tenant_id": "ops", "admin": True})
        second = other.json()["key"]
    with server.client(second) as client:
        assert client.post(f"/hub/v1/admin/keys/{own}/revoke").status_code == 200
    assert httpx.get(server.url + "/hub/v1/key", headers=_bearer(KEY)).status_code == 401
    server.stop()
    server.start()
    assert httpx.get(server.url + "/hub/v1/key", headers=_bearer(KEY)).status_code == 200


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_event_streams_and_long_polls_per_key_are_capped(server_factory, tmp_path):
    env = {"IMAGEHUB_MAX_STREAMS_PER_KEY": "1", "IMAGEHUB_FETCH_ALLOW_PRIVATE": "127.0.0.1"}
    server = server_factory(tmp_path / "capped", env).start()
    with socket.socket() as silent, server.client() as client:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/a.png"
        body = {"model": "nano-banana/edit", "input": {"prompt": "x", "image_urls": [url]}}
        task_id = client.post("/hub/v1/tasks", json=body).json()["task_id"]
        with client.stream("GET", f"/hub/v1/tasks/{task_id}/events") as events:
            assert events.status_code == 200
            lines = events.iter_lines()  # kept: dropping it would close the stream
            next(lines)  # the stream is open and holds the key's one slot
            over = client.get(f"/hub/v1/tasks/{task_id}?wait=5")
            assert over.status_code == 429 and "Retry-After" in over.headers
            again = client.get(f"/hub/v1/tasks/{task_id}/events")
            assert again.status_code == 429
        # the closed stream gave its slot back
        deadline = time.monotonic() + 10
        while (answer := client.get(f"/hub/v1/tasks/{task_id}?wait=0.1")).status_code == 429:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert answer.status_code == 200


def exchange(server: Server, data: bytes, *, close_early: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        if close_early:
            return b""
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b"Connection: close" not in answer:
                break
        return answer


def test_an_http11_request_without_host_is_400(server: Server):
    assert exchange(server, b"GET /healthz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_client_leaving_mid_body_is_no_error_in_the_log(server: Server):
    head = (
        b"POST /hub/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    for _ in range(3):
        exchange(server, head + b'{"model": "nano-ban', close_early=True)
    time.sleep(1)
    assert httpx.get(server.url + "/healthz").status_code == 200
    log = server.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-2000:]


def test_an_uploaded_polyglot_is_stored_without_its_trailing_html(server: Server):
    from imagehub.testing import tiny_png

    polyglot = tiny_png() + b"<html><script>alert(document.cookie)</script></html>"
    with server.client() as client:
        raw = client.post("/hub/v1/files", content=polyglot)
        form = client.post("/hub/v1/files", files={"file": ("a.png", polyglot)})
        for answer in (raw, form):
            assert answer.status_code == 201, answer.text
            served = httpx.get(answer.json()["url"])
            assert served.content == tiny_png()
            assert served.headers["X-Content-Type-Options"] == "nosniff"
