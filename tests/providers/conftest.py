from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from imagehub.catalog import Catalog
from imagehub.hub import Hub
from imagehub.media import MemoryMedia
from imagehub.routing.config import build_router
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.tasks import Task
from imagehub.wiring import build_hub
from tests.providers.fake_upstream import FakeUpstream

TENANT = "tenant-a"
KEYS = {
    "gemini": "test-gemini-key-123",
    "openai": "sk-test-openai-456",
    "openrouter": "sk-or-test-789",
    "fal": "fal-test-key-abc",
}
#: settings that keep the failure policy quick in tests
FAST = {"retry_base_seconds": 0.01, "poll_seconds": 0.05, "route_cooldown_seconds": 30.0}


def hub_for(routes_file: Path | None = None, **settings: Any) -> Hub:
    """A hub on memory backends whose routes come from the settings, as in production."""
    values: dict[str, Any] = {"demo": False, **FAST, **settings}
    config = Settings(routes_file=routes_file, **values)
    catalog = Catalog.load()
    return build_hub(
        config,
        store=MemoryStore(),
        media=MemoryMedia(),
        catalog=catalog,
        router=build_router(config, catalog),
    )


def provider_settings(kind: str, upstream: FakeUpstream, base_path: str = "") -> dict[str, Any]:
    """The environment-variable configuration of one provider, pointed at a fake upstream."""
    key_field = "fal_key" if kind == "fal" else f"{kind}_api_key"
    return {key_field: SecretStr(KEYS[kind]), f"{kind}_base_url": upstream.url + base_path}


HubFactory = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream().start()
    yield server
    await server.close()


@pytest.fixture
async def make_hub() -> AsyncIterator[HubFactory]:
    hubs: list[Hub] = []

    async def make(routes_file: Path | None = None, **settings: Any) -> Hub:
        hub = hub_for(routes_file, **settings)
        await hub.start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.stop()


async def run_task(hub: Hub, model: str, input: dict[str, Any], wait: float = 30) -> Task:
    """Submit a task and wait until it is ready."""
    task, _ = await hub.submit(TENANT, model, input)
    done = await hub.wait(TENANT, task.id, wait)
    assert done.ready, f"task not ready after {wait} s: {done.status} {done.error}"
    return done


def assert_no_secret(task: Task) -> None:
    text = repr(task.error) + repr(task.warnings) + repr(task.output)
    for key in KEYS.values():
        assert key not in text


#: headers the HTTP client adds on its own; everything else is what the provider chose to send
TRANSPORT_HEADERS = {"host", "user-agent", "accept", "accept-encoding", "content-length"}


def app_headers(seen: Any) -> dict[str, str]:
    """The request's headers minus the transport's, content-type without its boundary."""
    headers = {k: v for k, v in seen.headers.items() if k not in TRANSPORT_HEADERS}
    if headers.get("content-type", "").startswith("multipart/form-data"):
        headers["content-type"] = "multipart/form-data"
    return headers
