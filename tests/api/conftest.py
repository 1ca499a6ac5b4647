from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from imagehub.api import create_app
from imagehub.hub import Hub
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider, memory_hub

ADMIN_KEY = "ih_test_admin"
#: the loopback image servers of these tests are private addresses: allow-list them
LOOPBACK = "127.0.0.1/32"


async def _client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hub=hub)
    async with LifespanManager(app) as manager:
        await hub.store.add_key(make_key(name="admin", admin=True, key=ADMIN_KEY)[1])
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://hub.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        ) as client:
            yield client


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def hub(provider: ScriptedProvider) -> Hub:
    """A hub on memory backends whose every model is served by the scripted provider."""
    return memory_hub(
        provider, retry_base_seconds=0.01, poll_seconds=0.2, fetch_allow_private=LOOPBACK
    )


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(hub):
        yield c


@pytest.fixture
async def demo_client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of a hub served by the real offline demo provider."""
    async for c in _client(memory_hub(None, poll_seconds=0.2, fetch_allow_private=LOOPBACK)):
        yield c


async def other_tenant_key(hub: Hub) -> str:
    plaintext, record = make_key("tenant-b")
    await hub.store.add_key(record)
    return plaintext
