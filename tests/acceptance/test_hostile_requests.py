"""`imagehub serve` against requests an attacker sends over HTTP: bodies shaped to be costly
or unrenderable, an admin locking everyone out, a key hoarding long-polls, requests without
`Host`. Each gets a clear 4xx, nothing half-written, and the hub keeps serving."""

from __future__ import annotations

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
