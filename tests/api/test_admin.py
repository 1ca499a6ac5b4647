"""The admin routes across tenants: usage, routes, tasks with their route calls, webhook
deliveries and retry-now, key search; admin keys only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from imagehub.errors import ContentPolicyViolation, UpstreamRateLimited, UpstreamUnavailable
from imagehub.hub import Hub
from imagehub.tasks import Usage, utcnow
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider, memory_hub
from tests.api.conftest import LOOPBACK
from tests.webhook_receiver import Receiver

ADMIN_GETS = [
    "/hub/v1/admin/usage",
    "/hub/v1/admin/routes",
    "/hub/v1/admin/tasks",
    "/hub/v1/admin/tasks/t_any",
    "/hub/v1/admin/webhooks/deliveries",
    "/hub/v1/admin/keys",
    "/hub/v1/admin/tenants",
]


@pytest.fixture
def hub(provider: ScriptedProvider) -> Hub:
    return memory_hub(
        provider,
        retry_base_seconds=0.01,
        poll_seconds=0.1,
        fetch_allow_private=LOOPBACK,
        webhook_retry_delays=[0.05],
        webhook_timeout_seconds=5,
        route_state_seconds=0.2,
    )


async def key_of(hub: Hub, tenant: str) -> dict[str, str]:
    plaintext, record = make_key(tenant, name=f"{tenant} key")
    await hub.store.add_key(record)
    return {"Authorization": f"Bearer {plaintext}"}


async def run(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **body: object
) -> dict:
    """Submit a task (as `headers`' key) and wait until it is ready."""
    body = {"model": "nano-banana", "input": {"prompt": "a fox"}, **body}
    answer = await client.post("/hub/v1/tasks", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["task_id"]
    for _ in range(200):
        done = await client.get(f"/hub/v1/tasks/{task_id}?wait=10", headers=headers)
        if done.json()["ready"]:
            return done.json()
    raise AssertionError(f"task {task_id} never finished")


@pytest.fixture
def west_of_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process in New York's time zone: a naive time read as local would be hours off."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# ---------------------------------------------------------------- admin keys only


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_a_non_admin_key_is_refused_every_admin_route(client, hub, path):
    tenant = await key_of(hub, "tenant-b")
    answer = await client.get(path, headers=tenant)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"
    anonymous = await client.get(path, headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_a_non_admin_key_cannot_retry_a_delivery(client, hub):
    tenant = await key_of(hub, "tenant-b")
    answer = await client.post("/hub/v1/admin/webhooks/deliveries/msg_x/retry", headers=tenant)
    assert answer.status_code == 403


# ---------------------------------------------------------------- usage


async def test_usage_by_model_tenant_provider_and_day(client, hub, provider):
    alpha, beta = await key_of(hub, "alpha"), await key_of(hub, "beta")
    await run(client, alpha, input={"prompt": "a fox", "num_images": 2})
    await run(client, beta, model="gpt-image-2")
    provider.script = [ContentPolicyViolation("blocked")]
    failed = await run(client, beta)
    assert failed["status"] == "failed"

    by_tenant = (await client.get("/hub/v1/admin/usage?group_by=tenant")).json()
    groups = {g["key"]: g for g in by_tenant["groups"]}
    assert set(groups) == {"alpha", "beta"}
    assert (groups["alpha"]["tasks"], groups["alpha"]["images"]) == (1, 2)
    assert (groups["beta"]["tasks"], groups["beta"]["succeeded"], groups["beta"]["failed"]) == (
        2,
        1,
        1,
    )
    assert groups["beta"]["failure_rate"] == 0.5
    assert groups["alpha"]["failure_rate"] == 0.0
    assert groups["alpha"]["cost_usd"] > 0
    assert groups["alpha"]["latency_p50_seconds"] >= 0
    total = by_tenant["total"]
    assert (total["tasks"], total["images"]) == (3, 3)
    assert total["cost_usd"] == pytest.approx(sum(g["cost_usd"] for g in groups.values()))

    by_model = (await client.get("/hub/v1/admin/usage?group_by=model")).json()
    assert {g["key"]: g["tasks"] for g in by_model["groups"]} == {
        "nano-banana": 2,
        "gpt-image-2": 1,
    }
    by_provider = (await client.get("/hub/v1/admin/usage?group_by=provider")).json()
    assert {g["key"]: g["tasks"] for g in by_provider["groups"]} == {"scripted": 3}

    by_day = (await client.get("/hub/v1/admin/usage")).json()
    assert by_day["group_by"] == "day" and len(by_day["groups"]) in (7, 8)
    today = utcnow().date().isoformat()
    assert [g["key"] for g in by_day["groups"]][-1] == today
    assert {g["key"]: g["tasks"] for g in by_day["groups"] if g["tasks"]} == {today: 3}
    assert by_day["truncated"] is False


async def test_usage_counts_only_the_time_range(client, hub):
    await run(client)
    later = (utcnow() + timedelta(minutes=1)).isoformat()
    much_later = (utcnow() + timedelta(hours=1)).isoformat()
    answer = await client.get(
        "/hub/v1/admin/usage", params={"group_by": "model", "since": later, "until": much_later}
    )
    assert answer.status_code == 200
    assert answer.json()["groups"] == [] and answer.json()["total"]["tasks"] == 0
    before = (utcnow() - timedelta(minutes=5)).isoformat()
    answer = await client.get("/hub/v1/admin/usage", params={"since": before})
    assert answer.json()["total"]["tasks"] == 1


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-05-02T00:00:00Z", "until": "2026-05-01T00:00:00Z"},
        {"since": "2026-01-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"},
        {"since": "yesterday"},
        {"group_by": "week"},
    ],
    ids=["reversed", "too-long", "not-a-time", "unknown-group"],
)
async def test_usage_refuses_a_bad_range_or_grouping(client, params):
    answer = await client.get("/hub/v1/admin/usage", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"


# ---------------------------------------------------------------- routes


async def test_routes_show_a_cool_down_and_the_last_hour(client, hub, provider):
    await run(client)
    provider.script = [UpstreamRateLimited("slow down", retry_after=120)]
    body = {"model": "nano-banana", "input": {"prompt": "a fox"}}
    assert (await client.post("/hub/v1/tasks", json=body)).status_code == 202
    for _ in range(200):
        data = (await client.get("/hub/v1/admin/routes")).json()["data"]
        route = next(r for r in data if r["model"] == "nano-banana")
        if not route["healthy"]:
            break
        await asyncio.sleep(0.05)
    assert route["healthy"] is False and route["rate_limited"] is True
    assert route["cooling_until"] > utcnow().isoformat()[:19]
    assert "slow down" in route["last_error"]
    assert (route["route"], route["provider"], route["processes"]) == ("scripted",) * 2 + (1,)
    assert route["last_hour"]["requests"] == 2
    assert route["last_hour"]["succeeded"] == 1
    assert route["last_hour"]["errors"] == {"upstream_rate_limited": 1}
    assert route["last_hour"]["p95_seconds"] >= route["last_hour"]["p50_seconds"] >= 0


# ---------------------------------------------------------------- tasks


async def test_tasks_across_tenants_with_filters_and_pages(client, hub, provider, west_of_utc):
    alpha, beta = await key_of(hub, "alpha"), await key_of(hub, "beta")
    a = await run(client, alpha)
    b = await run(client, beta, model="gpt-image-2")
    provider.script = [ContentPolicyViolation("blocked")]
    c = await run(client, beta)

    async def ids(**params: str) -> list[str]:
        answer = await client.get("/hub/v1/admin/tasks", params=params)
        assert answer.status_code == 200, answer.text
        return [t["task_id"] for t in answer.json()["data"]]

    assert await ids() == [c["task_id"], b["task_id"], a["task_id"]]
    assert await ids(tenant_id="beta") == [c["task_id"], b["task_id"]]
    assert await ids(status="failed") == [c["task_id"]]
    assert await ids(model="gpt-image-2") == [b["task_id"]]
    assert await ids(provider="scripted", tenant_id="alpha") == [a["task_id"]]
    assert await ids(provider="vertex") == []
    assert await ids(since=(utcnow() + timedelta(minutes=1)).isoformat()) == []
    # a time without an offset is UTC, whatever the server's own zone
    naive = (utcnow() - timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    assert len(await ids(since=naive)) == 3
    first = (await client.get("/hub/v1/admin/tasks?limit=2")).json()
    assert [t["tenant_id"] for t in first["data"]] == ["beta", "beta"]
    rest = (await client.get(f"/hub/v1/admin/tasks?limit=2&cursor={first['next_cursor']}")).json()
    assert [t["task_id"] for t in rest["data"]] == [a["task_id"]] and rest["next_cursor"] is None
    assert (await client.get("/hub/v1/admin/tasks?status=lost")).status_code == 422


async def test_a_task_detail_has_every_route_call_and_error(client, hub, provider):
    beta = await key_of(hub, "beta")
    provider.script = [UpstreamUnavailable("overloaded"), UpstreamUnavailable("still")]
    task = await run(client, beta)
    assert task["status"] == "succeeded" and task["attempts"] == 3
    answer = await client.get(f"/hub/v1/admin/tasks/{task['task_id']}")
    assert answer.status_code == 200
    detail = answer.json()
    assert detail["tenant_id"] == "beta" and detail["status"] == "succeeded"
    calls = detail["route_calls"]
    assert [(c["number"], c["outcome"]) for c in calls] == [
        (1, "upstream_unavailable"),
        (2, "upstream_unavailable"),
        (3, "succeeded"),
    ]
    assert calls[0]["message"] == "overloaded" and calls[0]["route"] == "scripted"
    assert all(c["seconds"] >= 0 for c in calls)
    assert detail["webhook"] is None
    missing = await client.get("/hub/v1/admin/tasks/t_missing")
    assert missing.status_code == 404


# ---------------------------------------------------------------- webhooks


async def delivery_when(client: httpx.AsyncClient, task_id: str, *states: str) -> dict:
    for _ in range(300):
        answer = await client.get("/hub/v1/admin/webhooks/deliveries")
        found = [d for d in answer.json()["data"] if d["task_id"] == task_id]
        if found and found[0]["state"] in states:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"the delivery never reached {states}")


async def test_retry_now_makes_a_failed_delivery_succeed(client, hub, receiver: Receiver):
    beta = await key_of(hub, "beta")
    receiver.script = [410]  # the receiver said stop: failed at once
    task = await run(client, beta, webhook_url=receiver.url)
    failed = await delivery_when(client, task["task_id"], "failed")
    assert failed["tenant_id"] == "beta" and failed["attempts"] == 1
    failing = (await client.get("/hub/v1/admin/webhooks/deliveries?state=failing")).json()
    assert [d["task_id"] for d in failing["data"]] == [task["task_id"]]
    ok = (await client.get("/hub/v1/admin/webhooks/deliveries?state=succeeded")).json()
    assert ok["data"] == []

    answer = await client.post(f"/hub/v1/admin/webhooks/deliveries/{failed['webhook_id']}/retry")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "pending"
    done = await delivery_when(client, task["task_id"], "succeeded")
    assert [a["status"] for a in done["history"]] == [410, 200]
    assert done["attempts"] == 2 and len(receiver.received) == 2
    detail = (await client.get(f"/hub/v1/admin/tasks/{task['task_id']}")).json()
    assert detail["webhook"]["state"] == "succeeded"
    assert [a["status"] for a in detail["webhook"]["history"]] == [410, 200]
    again = await client.post(f"/hub/v1/admin/webhooks/deliveries/{failed['webhook_id']}/retry")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_retryable"
    unknown = await client.post("/hub/v1/admin/webhooks/deliveries/msg_missing/retry")
    assert unknown.status_code == 404


# ---------------------------------------------------------------- keys


async def test_keys_are_searched_by_name_prefix_or_tenant(client, hub):
    created = await client.post(
        "/hub/v1/admin/keys", json={"tenant_id": "acme", "name": "Render farm"}
    )
    assert created.status_code == 201
    key = created.json()
    await key_of(hub, "other")

    async def found(q: str) -> list[str]:
        answer = await client.get("/hub/v1/admin/keys", params={"q": q})
        assert answer.status_code == 200
        return [k["id"] for k in answer.json()["data"]]

    assert await found("render FARM") == [key["id"]]
    assert await found("acm") == [key["id"]]
    assert key["id"] in await found(key["prefix"])
    assert await found("no-such-key") == []


async def test_usage_is_summed_from_the_stored_cost(client, hub):
    """A task's cost as the store keeps it is what the report adds up (the price book aside)."""
    task = await run(client)
    stored = await hub.store.get(task["task_id"])
    assert stored is not None and stored.usage is not None
    assert isinstance(stored.usage, Usage)
    report = (await client.get("/hub/v1/admin/usage?group_by=model")).json()
    assert report["total"]["cost_usd"] == pytest.approx(stored.usage.cost_usd)


async def test_tenants_are_listed_with_their_keys_and_spend(client, hub):
    for tenant in ("acme", "acme", "zeta"):
        created = await client.post("/hub/v1/admin/keys", json={"tenant_id": tenant})
        assert created.status_code == 201
    revoked = (await client.get("/hub/v1/admin/keys", params={"tenant_id": "zeta"})).json()
    await client.post(f"/hub/v1/admin/keys/{revoked['data'][0]['id']}/revoke")
    acme = (await client.get("/hub/v1/admin/keys", params={"tenant_id": "acme"})).json()
    plaintext, record = make_key("acme", name="spender")
    await hub.store.add_key(record)
    headers = {"Authorization": f"Bearer {plaintext}"}
    task = await run(client, headers)
    answer = await client.get("/hub/v1/admin/tenants")
    assert answer.status_code == 200
    tenants = {t["tenant_id"]: t for t in answer.json()["data"]}
    assert (tenants["acme"]["keys"], tenants["acme"]["active_keys"]) == (len(acme["data"]) + 1,) * 2
    assert (tenants["zeta"]["keys"], tenants["zeta"]["active_keys"]) == (1, 0)
    stored = await hub.store.get(task["task_id"])
    assert stored is not None and stored.usage is not None
    assert tenants["acme"]["spent_usd"] == pytest.approx(stored.usage.cost_usd)
    assert tenants["acme"]["active_tasks"] == 0
    found = (await client.get("/hub/v1/admin/tenants", params={"q": "ZET"})).json()
    assert [t["tenant_id"] for t in found["data"]] == ["zeta"]
