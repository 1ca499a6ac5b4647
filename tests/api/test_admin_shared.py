"""Route state shared across processes: two hubs on one database, as two processes would be;
each sees the other's routes on the admin routes (SQLite file, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from imagehub.api import create_app
from imagehub.errors import UpstreamRateLimited
from imagehub.hub import Hub
from imagehub.routing import Route, Router
from imagehub.settings import Settings
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider
from imagehub.wiring import build_hub

KEY = "ih_shared_admin"


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def hub_on(database: str, tmp_path: Path, provider: ScriptedProvider, name: str) -> Hub:
    settings = Settings(
        database_url=database,
        data_dir=tmp_path / name,
        poll_seconds=0.1,
        route_state_seconds=0.2,
        database_pool_size=3,
    )
    # one configured route of its own per hub, named after its provider
    route = Route(provider, "nano-banana-upstream", name=provider.name)
    return build_hub(settings, router=Router({"nano-banana": [route]}))


@pytest.fixture
async def two(database: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Clients of two hubs, each running tasks, on one database."""
    providers = ScriptedProvider(name="east"), ScriptedProvider(name="west")
    hubs = [hub_on(database, tmp_path, p, p.name) for p in providers]
    async with (
        LifespanManager(create_app(hub=hubs[0])) as first,
        LifespanManager(create_app(hub=hubs[1])) as second,
    ):
        await hubs[0].store.add_key(make_key(name="admin", admin=True, key=KEY)[1])
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=m.app),
                base_url="http://hub.test",
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=20,
            )
            for m in (first, second)
        ]
        try:
            yield clients[0], clients[1], providers
        finally:
            for client in clients:
                await client.aclose()


async def routes_when(client: httpx.AsyncClient, check) -> list[dict]:
    for _ in range(200):
        answer = await client.get("/hub/v1/admin/routes")
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        if check(data):
            return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {data}")


def nano(data: list[dict], route: str) -> dict | None:
    return next((r for r in data if r["model"] == "nano-banana" and r["route"] == route), None)


async def test_each_hub_sees_the_other_hubs_routes_and_cool_down(two):
    first, second, (east, west) = two

    def both_live(data: list[dict]) -> bool:
        return all((nano(data, n) or {}).get("processes") == 1 for n in ("east", "west"))

    for client in (first, second):
        data = await routes_when(client, both_live)
        assert all(nano(data, n)["healthy"] for n in ("east", "west"))

    east.script = [UpstreamRateLimited("east is pausing", retry_after=120)]
    west.script = [UpstreamRateLimited("west is pausing", retry_after=120)]
    body = {"model": "nano-banana", "input": {"prompt": "a fox"}}
    assert (await first.post("/hub/v1/tasks", json=body)).status_code == 202

    def one_cooling(data: list[dict]) -> bool:
        routes = [nano(data, n) for n in ("east", "west")]
        sick = [r for r in routes if r and not r["healthy"]]
        # the route's state is published on a timer and its call's row when the attempt
        # ends: two writes, so wait for both
        return both_live(data) and len(sick) == 1 and bool(sick[0]["last_hour"]["errors"])

    seen = [await routes_when(client, one_cooling) for client in (first, second)]
    sick = [
        next(nano(data, n) for n in ("east", "west") if not nano(data, n)["healthy"])
        for data in seen
    ]
    # whichever hub ran the task, both show its route cooling down, as it said
    assert sick[0]["route"] == sick[1]["route"]
    for route in sick:
        assert route["rate_limited"] is True and route["cooling_until"] is not None
        assert f"{route['route']} is pausing" in route["last_error"]
        assert route["last_hour"]["errors"] == {"upstream_rate_limited": 1}
