from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from asgi_lifespan import LifespanManager

from imagehub.api import create_app
from imagehub.client import AsyncClient
from imagehub.hub import Hub
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider, memory_hub
from tests.api.conftest import ADMIN_KEY

BASE_URL = "http://hub.test"


@dataclass
class FaultyTransport(httpx.AsyncBaseTransport):
    """The app in process, behind a network that fails as scripted, and a log of requests.

    Faults, taken one per request: "refuse" (connection refused, nothing sent), "drop" (the
    hub gets the request, the answer is lost), "503" (an overloaded answer, nothing sent).
    """

    inner: httpx.AsyncBaseTransport
    faults: list[str] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "503":
            body = {"error": {"code": "overloaded", "message": "busy"}}
            return httpx.Response(503, json=body, headers={"Retry-After": "0"})
        response = await self.inner.handle_async_request(request)
        if fault == "drop":
            await response.aread()
            raise httpx.ReadError("connection reset", request=request)
        return response

    def paths(self, method: str = "GET") -> list[str]:
        return [r.url.path for r in self.requests if r.method == method]


@dataclass
class InProcess:
    hub: Hub
    transport: FaultyTransport
    client: AsyncClient


async def _in_process(hub: Hub) -> AsyncIterator[InProcess]:
    app = create_app(hub=hub)
    async with LifespanManager(app) as manager:
        await hub.store.add_key(make_key(name="admin", admin=True, key=ADMIN_KEY)[1])
        transport = FaultyTransport(httpx.ASGITransport(app=manager.app))
        client = AsyncClient(BASE_URL, ADMIN_KEY, transport=transport)
        async with client:
            yield InProcess(hub, transport, client)


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
async def hub_app(provider: ScriptedProvider) -> AsyncIterator[InProcess]:
    """The SDK against a hub in process whose models are served by the scripted provider."""
    async for env in _in_process(
        memory_hub(provider, retry_base_seconds=0.01, poll_seconds=0.2, shutdown_grace_seconds=0.2)
    ):
        yield env


@pytest.fixture
async def demo_app() -> AsyncIterator[InProcess]:
    """The SDK against a hub in process served by the real offline demo provider."""
    async for env in _in_process(memory_hub(None, poll_seconds=0.2)):
        yield env
