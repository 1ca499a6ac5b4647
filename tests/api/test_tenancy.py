"""Tenant isolation on every route, tried as another tenant would: ids of someone else's
tasks, webhooks and replays answer 404 or stay theirs; admin routes need an admin key."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from imagehub.hub import Hub
from imagehub.testing import ScriptedProvider, memory_hub, tiny_png
from imagehub.wiring import build_hub
from tests.api.conftest import LOOPBACK, _client

TASK = {"model": "nano-banana", "input": {"prompt": "a fox"}}


@pytest.fixture
def hub(provider: ScriptedProvider) -> Hub:
    return memory_hub(provider, poll_seconds=0.1, fetch_allow_private=LOOPBACK)


async def new_key(client: httpx.AsyncClient, tenant: str, **body: object) -> dict:
    answer = await client.post("/hub/v1/admin/keys", json={"tenant_id": tenant, **body})
    assert answer.status_code == 201, answer.text
    created: dict = answer.json()
    return created


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def mallory(client) -> dict[str, str]:
    """Headers of another tenant's (non-admin) key."""
    return bearer((await new_key(client, "mallory"))["key"])


async def test_another_tenants_task_is_404_on_every_task_route(client, mallory, receiver):
    own = (await client.post("/hub/v1/tasks", json={**TASK, "webhook_url": receiver.url})).json()
    task_id, unknown = own["task_id"], "tsk_" + "Z" * 22
    for method, path in [
        ("GET", "/hub/v1/tasks/{}"),
        ("GET", "/hub/v1/tasks/{}?wait=1"),
        ("POST", "/hub/v1/tasks/{}/cancel"),
        ("GET", "/hub/v1/tasks/{}/events"),
        ("GET", "/hub/v1/tasks/{}/webhook"),
    ]:
        answer = await client.request(method, path.format(task_id), headers=mallory)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "not_found"
        # word for word what an id that exists nowhere gets: nothing tells them apart
        missing = await client.request(method, path.format(unknown), headers=mallory)
        assert answer.text.replace(task_id, unknown) == missing.text
    mine = await client.get(f"/hub/v1/tasks/{task_id}?wait=5")
    assert mine.json()["status"] == "succeeded", "the owner's task is untouched"


async def test_lists_show_only_the_callers_own(client, mallory, receiver):
    own = (await client.post("/hub/v1/tasks", json={**TASK, "webhook_url": receiver.url})).json()
    theirs = (await client.post("/hub/v1/tasks", json=TASK, headers=mallory)).json()
    listed = (await client.get("/hub/v1/tasks", headers=mallory)).json()["data"]
    assert [t["task_id"] for t in listed] == [theirs["task_id"]]
    for status in ("queued", "running", "succeeded"):
        page = await client.get(f"/hub/v1/tasks?status={status}", headers=mallory)
        assert own["task_id"] not in page.text
    deliveries = (await client.get("/hub/v1/webhooks/deliveries", headers=mallory)).json()
    assert deliveries["data"] == []
    assert [
        d["task_id"] for d in (await client.get("/hub/v1/webhooks/deliveries")).json()["data"]
    ] == [own["task_id"]]


async def test_another_tenants_cursor_reveals_nothing(client, mallory):
    for _ in range(3):
        await client.post("/hub/v1/tasks", json=TASK)
    page = (await client.get("/hub/v1/tasks?limit=1")).json()
    theirs = await client.get(f"/hub/v1/tasks?cursor={page['next_cursor']}", headers=mallory)
    assert theirs.status_code == 200 and theirs.json()["data"] == []


async def test_an_idempotency_key_is_scoped_to_its_tenant(client, mallory):
    headers = {"Idempotency-Key": "shared-key-1"}
    own = await client.post("/hub/v1/tasks", json=TASK, headers=headers)
    theirs = await client.post("/hub/v1/tasks", json=TASK, headers={**headers, **mallory})
    assert own.status_code == theirs.status_code == 202
    assert own.json()["task_id"] != theirs.json()["task_id"]


async def test_the_openai_routes_are_scoped_too(client, mallory):
    body = {"model": "gpt-image-2", "prompt": "a fox", "size": "1024x1024"}
    headers = {"Idempotency-Key": "openai-shared"}
    own = await client.post("/v1/images/generations", json=body, headers=headers)
    theirs = await client.post("/v1/images/generations", json=body, headers={**headers, **mallory})
    assert own.status_code == theirs.status_code == 200
    own_id, their_id = own.headers["x-imagehub-task-id"], theirs.headers["x-imagehub-task-id"]
    assert own_id != their_id
    assert (await client.get(f"/hub/v1/tasks/{own_id}", headers=mallory)).status_code == 404
    assert (await client.get(f"/hub/v1/tasks/{their_id}")).status_code == 404
    files = {"image[]": ("a.png", tiny_png(), "image/png")}
    edit = await client.post("/v1/images/edits", data={"prompt": "x"}, files=files, headers=mallory)
    assert edit.status_code == 200
    assert (
        await client.get(f"/hub/v1/tasks/{edit.headers['x-imagehub-task-id']}")
    ).status_code == 404


async def test_every_authenticated_route_refuses_a_missing_or_wrong_key(client):
    routes = [
        ("GET", "/hub/v1/tasks"),
        ("POST", "/hub/v1/tasks"),
        ("GET", "/hub/v1/tasks/tsk_x"),
        ("POST", "/hub/v1/tasks/tsk_x/cancel"),
        ("GET", "/hub/v1/tasks/tsk_x/events"),
        ("GET", "/hub/v1/tasks/tsk_x/webhook"),
        ("GET", "/hub/v1/models"),
        ("POST", "/hub/v1/files"),
        ("GET", "/hub/v1/key"),
        ("GET", "/hub/v1/webhooks/secret"),
        ("POST", "/hub/v1/webhooks/secret/rotate"),
        ("GET", "/hub/v1/webhooks/deliveries"),
        ("GET", "/hub/v1/admin/keys"),
        ("POST", "/hub/v1/admin/keys"),
        ("POST", "/v1/images/generations"),
        ("POST", "/v1/images/edits"),
    ]
    for headers in ({"Authorization": ""}, bearer("ih_" + "x" * 43), bearer("not-a-key")):
        for method, path in routes:
            answer = await client.request(method, path, headers=headers)
            assert answer.status_code == 401, (method, path, answer.text)


async def test_admin_routes_are_refused_to_a_tenants_key(client, mallory):
    created = await new_key(client, "victim")
    for method, path, body in [
        ("GET", "/hub/v1/admin/keys", None),
        ("POST", "/hub/v1/admin/keys", {"tenant_id": "mallory", "admin": True}),
        ("GET", f"/hub/v1/admin/keys/{created['id']}", None),
        ("PATCH", f"/hub/v1/admin/keys/{created['id']}", {"requests_per_minute": None}),
        ("POST", f"/hub/v1/admin/keys/{created['id']}/revoke", None),
    ]:
        answer = await client.request(method, path, json=body, headers=mallory)
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"]["code"] == "forbidden"
    assert (await client.get(f"/hub/v1/admin/keys/{created['id']}")).json()["revoked_at"] is None


async def test_an_admin_manages_keys_and_never_sees_their_secrets(client):
    first = await new_key(client, "acme", name="ci", limits={"requests_per_minute": 100})
    second = await new_key(client, "acme", name="rotated")
    assert first["key"].startswith("ih_") and len(first["key"]) >= 46  # 256 random bits
    assert first["prefix"] == first["key"][:10]
    assert first["limits"] == {
        "requests_per_minute": 100,
        "concurrent_tasks": None,
        "budget_usd": None,
    }
    listed = (await client.get("/hub/v1/admin/keys?tenant_id=acme")).json()["data"]
    assert [k["id"] for k in listed] == [first["id"], second["id"]]
    everything = (await client.get("/hub/v1/admin/keys")).text
    assert first["key"] not in everything and second["key"] not in everything
    assert "key_hash" not in everything
    changed = await client.patch(f"/hub/v1/admin/keys/{first['id']}", json={"concurrent_tasks": 2})
    assert changed.json()["limits"]["concurrent_tasks"] == 2
    assert changed.json()["limits"]["requests_per_minute"] == 100, "fields not sent are kept"
    assert (await client.get("/hub/v1/admin/keys/key_missing")).status_code == 404


async def test_two_keys_of_one_tenant_share_its_tasks_and_a_revoked_one_stops_at_once(client):
    old = await new_key(client, "acme")
    new = await new_key(client, "acme")
    task = (await client.post("/hub/v1/tasks", json=TASK, headers=bearer(old["key"]))).json()
    seen = await client.get(f"/hub/v1/tasks/{task['task_id']}", headers=bearer(new["key"]))
    assert seen.status_code == 200
    revoked = await client.post(f"/hub/v1/admin/keys/{old['id']}/revoke")
    assert revoked.json()["revoked_at"] is not None
    assert (await client.get("/hub/v1/tasks", headers=bearer(old["key"]))).status_code == 401
    assert (await client.get("/hub/v1/tasks", headers=bearer(new["key"]))).status_code == 200


async def test_a_key_reads_its_own_limits_and_usage(client):
    created = await new_key(client, "acme", limits={"budget_usd": 2.5})
    own = (await client.get("/hub/v1/key", headers=bearer(created["key"]))).json()
    assert (own["id"], own["tenant_id"], own["limits"]["budget_usd"]) == (
        created["id"],
        "acme",
        2.5,
    )
    assert own["usage"] == {"active_tasks": 0, "reserved_usd": 0.0, "spent_usd": 0.0}
    assert "key" not in own


async def test_a_revocation_reaches_another_process_within_the_cache_time(tmp_path):
    """Two hubs on one SQLite file, as two processes would be."""
    from imagehub.tenancy.keys import make_key

    settings = {"data_dir": tmp_path, "key_cache_seconds": 0.3, "demo": True}
    first, second = (
        build_hub(_settings(**settings)),
        build_hub(_settings(**settings), run_worker=False),
    )
    plaintext, record = make_key("acme")
    await first.store.open()
    await first.store.add_key(record)
    await second.store.open()
    try:
        assert (await second.authenticate(plaintext)).id == record.id  # now cached there
        await first.accounts.revoke(record.id)
        await asyncio.sleep(0.4)
        with pytest.raises(Exception, match="valid API key"):
            await second.authenticate(plaintext)
    finally:
        await first.store.close()
        await second.store.close()


def _settings(**values: object):
    from imagehub.settings import Settings

    return Settings(**values)  # type: ignore[arg-type]


async def test_files_are_capabilities_readable_without_a_key(client):
    upload = await client.post(
        "/hub/v1/files", content=tiny_png(), headers={"Content-Type": "image/png"}
    )
    url = upload.json()["url"]
    assert len(upload.json()["file_id"].split(".")[0]) == 2 + 22  # 130 random bits
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://hub.test"
    ) as anonymous:
        assert (await anonymous.get(url)).status_code == 200
        assert (await anonymous.get("/hub/v1/files/f_" + "A" * 22 + ".png")).status_code == 404


async def test_a_tenant_created_over_http_works_at_once(hub):
    async for client in _client(hub):
        created = await new_key(client, "newco")
        headers = bearer(created["key"])
        task = await client.post("/hub/v1/tasks?", json=TASK, headers=headers)
        assert task.status_code == 202


async def _admin_id(client: httpx.AsyncClient) -> str:
    me: dict = (await client.get("/hub/v1/key")).json()
    return str(me["id"])


async def test_the_last_active_admin_key_cannot_be_revoked(client):
    own = await _admin_id(client)
    answer = await client.post(f"/hub/v1/admin/keys/{own}/revoke")
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "last_admin_key"
    assert (await client.get("/hub/v1/key")).status_code == 200, "the key still works"
    # with a second admin, either may go, but then not the other
    second = await new_key(client, "ops", admin=True)
    assert (await client.post(f"/hub/v1/admin/keys/{own}/revoke")).status_code == 200
    again = await client.post(
        f"/hub/v1/admin/keys/{second['id']}/revoke", headers=bearer(second["key"])
    )
    assert again.status_code == 409
    assert (await client.get("/hub/v1/key", headers=bearer(second["key"]))).status_code == 200


async def test_two_admins_revoking_each_other_at_once_leave_one(client):
    own = await _admin_id(client)
    second = await new_key(client, "ops", admin=True)
    answers = await asyncio.gather(
        client.post(f"/hub/v1/admin/keys/{second['id']}/revoke"),
        client.post(f"/hub/v1/admin/keys/{own}/revoke", headers=bearer(second["key"])),
    )
    assert sorted(a.status_code for a in answers)[0] == 200
    assert {a.status_code for a in answers} <= {200, 401, 409}  # 401: revoked meanwhile
    # answers[0] revoked the second key, answers[1] the own one: the refused one lives on
    survivor = own if answers[1].status_code != 200 else second["id"]
    listed = []
    for headers in ({}, bearer(second["key"])):
        answer = await client.get("/hub/v1/admin/keys", headers=headers)
        if answer.status_code == 200:
            listed = answer.json()["data"]
    assert [k["id"] for k in listed if k["admin"] and k["revoked_at"] is None] == [survivor]
