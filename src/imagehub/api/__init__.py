"""The HTTP API: `create_app()` builds it; nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

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

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, *, hub: Hub | None = None) -> FastAPI:
    """The ASGI app; it starts and stops `hub` (built from `settings` if not given)."""
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

    app = FastAPI(
        title="imagehub",
        version="0.1.0",
        summary="One asynchronous task API in front of hosted image models.",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    install_error_handlers(app)
    # innermost: the hot routes see the body limits and request ids of every other route
    app.add_middleware(HotRoutes, routes=(*tasks.hot, *openai_images.hot))
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout_seconds
    )
    app.add_middleware(NoNulBytes)
    app.add_middleware(HostRequired)
    # outermost: every answer, a refusal of the middlewares above included, has its id
    app.add_middleware(Observe, tracing=the_hub.tracing)
    routers = (tasks, models, files, ops, openai_images, page, console, keys, tenants, webhooks)
    for module in (*routers, admin):
        app.include_router(module.endpoints)
    return app
