"""FastAPI dependencies as named aliases, reading from the app's lifespan state."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import URL

from imagehub import logs
from imagehub.admin import Admin
from imagehub.errors import Forbidden, Unauthorized
from imagehub.hub import Hub
from imagehub.settings import Settings
from imagehub.tenancy.accounts import Accounts
from imagehub.tenancy.types import ApiKey

bearer = HTTPBearer(auto_error=False, description="An imagehub API key.")


# async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a hop per request
async def get_hub(request: Request) -> Hub:
    hub: Hub = request.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


async def get_accounts(request: Request) -> Accounts:
    """Tenants and their keys: authentication, rates, key management, webhook secrets."""
    accounts: Accounts = request.state.accounts
    return accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


# the hot path's dependencies read the lifespan state themselves: every dependency FastAPI
# resolves costs tens of microseconds on the event loop, per request
async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    if credentials is None or not credentials.credentials:
        raise Unauthorized()
    accounts: Accounts = request.state.accounts
    key = await accounts.authenticate(credentials.credentials)
    logs.tenant.set(key.tenant_id)  # the request's log lines name its tenant from here on
    await accounts.check_rate(key)  # every authenticated request counts
    return key


CallerDep = Annotated[ApiKey, Depends(get_caller)]


async def get_admin(caller: CallerDep) -> ApiKey:
    if not caller.admin:
        raise Forbidden()
    return caller


AdminDep = Annotated[ApiKey, Depends(get_admin)]


async def get_operator_view(request: Request, admin: AdminDep) -> Admin:
    """The operator's view across tenants; asking for it needs an admin key."""
    view: Admin = request.state.admin
    return view


#: the admin routes' view of the hub (it checks the caller's key is an admin key)
OperatorDep = Annotated[Admin, Depends(get_operator_view)]


async def get_base_url(request: Request) -> str:
    """Where clients reach the hub: the configured public URL, else this request's own."""
    settings: Settings = request.state.settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    root = scope.get("app_root_path", scope.get("root_path", ""))
    return _base_url(scope.get("scheme", "http"), host, scope.get("server"), root)


@functools.lru_cache(maxsize=64)
def _base_url(
    scheme: str, host: bytes | None, server: tuple[str, int | None] | None, root: str
) -> str:
    """Starlette's `request.base_url` (which parses a URL on every request), kept per
    (scheme, Host header, server, root path): a hub is reached by a handful of names."""
    scope: dict[str, Any] = {
        "type": "http",
        "scheme": scheme,
        "server": server,
        "headers": [(b"host", host)] if host is not None else [],
        "path": root if root.endswith("/") else root + "/",
        "root_path": root,
        "query_string": b"",
    }
    return str(URL(scope=scope)).rstrip("/")


BaseUrlDep = Annotated[str, Depends(get_base_url)]


#: a page's `next_cursor`: its alphabet is checked here (422), its meaning by the store (404)
CursorQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        pattern="^[A-Za-z0-9_-]+$",
        description="The `next_cursor` of the previous page; a cursor that names no page is 404.",
    ),
]
