"""The HTTP API: `create_app()` builds it; nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from imagehub.api import (
    admin,
    console,
    files,
    keys,
    models,
    openai_images,
    ops,
    page,
    tasks,
    tenants,
    webhooks,
)
from imagehub.api.errors import BodyLimit, HostRequired, NoNulBytes, install_error_handlers
from imagehub.api.hot import HotRoutes
from imagehub.api.observe import Observe
from imagehub.api.responses import JSONBody
from imagehub.hub import Hub
from imagehub.settings import Settings
from imagehub.wiring import build_admin, build_hub

__all__ = ["HubApp", "create_app"]


class HubApp(FastAPI):
    """FastAPI behind the hub's own pure-ASGI layers (`front`, set by `create_app`).

    The layers wrap FastAPI rather than sit in its middleware stack, so a hot route
    (`imagehub.api.hot`) passes through them alone, not through the layers FastAPI puts
    outside every user middleware (server errors, telemetry, a body limit): the hub's layers
    and the hot routes' own error answers do that work, and each layer costs every request and
    every message it sends (about 4 % of the loop's time a task, `bench/README.md`).
    """

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await self.front(scope, receive, send)

    async def fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request as FastAPI alone answers it."""
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, hub: Hub | None = None, hot: bool = True
) -> HubApp:
    """The ASGI app; it starts and stops `hub` (built from `settings` if not given).

    `hot=False` leaves the hot routes to FastAPI too (their tests compare the two answers).
    """
    settings = settings or (hub.settings if hub else Settings())
    the_hub = hub or build_hub(settings)
    # what the endpoints depend on (imagehub.api.deps): the hub, and the tenancy it holds
    state = {
        "hub": the_hub,
        "accounts": the_hub.accounts,
        "settings": settings,
        "admin": build_admin(the_hub),
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await the_hub.start()
        try:
            yield state
        finally:
            await the_hub.stop()

    app = HubApp(
        title="imagehub",
        version="0.1.0",
        summary="One asynchronous task API in front of hosted image models.",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    install_error_handlers(app)
    # innermost: the hot routes see the body limits and request ids of every other route
    inner: ASGIApp = app.fastapi
    if hot:
        inner = HotRoutes(inner, (*tasks.hot, *openai_images.hot))
    inner = BodyLimit(inner, settings.max_body_bytes, settings.body_timeout_seconds)
    # outermost: every answer, a refusal of the layers below included, has its id
    app.front = Observe(HostRequired(NoNulBytes(inner)), tracing=the_hub.tracing)
    routers = (tasks, models, files, ops, openai_images, page, console, keys, tenants, webhooks)
    for module in (*routers, admin):
        app.include_router(module.endpoints)
    return app
