"""Key routes: admin keys manage every tenant's keys; any key reads its own limits and usage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from imagehub.api.deps import AccountsDep, AdminDep, CallerDep
from imagehub.api.errors import body_schema, parse_body
from imagehub.render import rfc3339
from imagehub.schemas import ErrorBody
from imagehub.schemas.admin import TenantList, TenantOut
from imagehub.schemas.keys import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    KeyUsageOut,
    LimitsIn,
    LimitsOut,
)
from imagehub.tenancy.accounts import Limits
from imagehub.tenancy.types import ApiKey

endpoints = APIRouter(tags=["keys"])
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 429, 503)
}


def _body(schema: type[KeyCreate] | type[LimitsIn]) -> dict[str, object]:
    content = {"application/json": {"schema": body_schema(schema)}}
    return {"requestBody": {"required": True, "content": content}}


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        tenant_id=key.tenant_id,
        name=key.name,
        prefix=key.prefix,
        admin=key.admin,
        created_at=rfc3339(key.created_at) or "",
        revoked_at=rfc3339(key.revoked_at),
        limits=LimitsOut(
            requests_per_minute=key.rpm_limit,
            concurrent_tasks=key.concurrency_limit,
            budget_usd=None if key.budget_micros is None else key.budget_micros / 1e6,
        ),
        usage=KeyUsageOut(
            active_tasks=key.active_tasks,
            reserved_usd=key.reserved_micros / 1e6,
            spent_usd=key.spent_micros / 1e6,
        ),
    )


def limits_of(body: LimitsIn, current: ApiKey | None = None) -> Limits:
    """The limits a body sets; fields it leaves out keep their current value."""
    sent = body.model_fields_set
    budget = None if body.budget_usd is None else round(body.budget_usd * 1_000_000)
    new = Limits(body.requests_per_minute, body.concurrent_tasks, budget)
    if current is None:
        return new
    return Limits(
        new.rpm if "requests_per_minute" in sent else current.rpm_limit,
        new.concurrency if "concurrent_tasks" in sent else current.concurrency_limit,
        new.budget_micros if "budget_usd" in sent else current.budget_micros,
    )


@endpoints.get("/hub/v1/key", response_model=KeyOut, responses=_ERRORS)
async def own_key(caller: CallerDep, accounts: AccountsDep) -> KeyOut:
    """The calling key: its tenant, limits and usage."""
    return key_out(await accounts.key(caller.id))


@endpoints.post(
    "/hub/v1/admin/keys",
    status_code=201,
    response_model=KeyCreated,
    responses=_ERRORS,
    openapi_extra=_body(KeyCreate),
)
async def create_key(request: Request, accounts: AccountsDep, admin: AdminDep) -> KeyCreated:
    """Create a key for a tenant (admin). The key itself is in this answer only."""
    body = parse_body(await request.body(), KeyCreate)
    plaintext, key = await accounts.create_key(
        body.tenant_id, name=body.name, admin=body.admin, limits=limits_of(body.limits)
    )
    return KeyCreated(**key_out(key).model_dump(), key=plaintext)


@endpoints.get("/hub/v1/admin/keys", response_model=KeyList, responses=_ERRORS)
async def list_keys(
    accounts: AccountsDep,
    admin: AdminDep,
    tenant_id: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="Only keys whose name, prefix or tenant contains this (any case).",
        ),
    ] = None,
) -> KeyList:
    """Every key, or a tenant's, revoked ones included, oldest first (admin)."""
    found = await accounts.list_keys(tenant_id)
    if q is not None:
        needle = q.casefold()
        found = [
            k
            for k in found
            if any(needle in text.casefold() for text in (k.name, k.prefix, k.tenant_id))
        ]
    return KeyList(data=[key_out(k) for k in found])


@endpoints.get("/hub/v1/admin/keys/{key_id}", response_model=KeyOut, responses=_ERRORS)
async def get_key(key_id: str, accounts: AccountsDep, admin: AdminDep) -> KeyOut:
    """One key (admin)."""
    return key_out(await accounts.key(key_id))


@endpoints.patch(
    "/hub/v1/admin/keys/{key_id}",
    response_model=KeyOut,
    responses=_ERRORS,
    openapi_extra=_body(LimitsIn),
)
async def set_limits(
    key_id: str, request: Request, accounts: AccountsDep, admin: AdminDep
) -> KeyOut:
    """Change a key's limits (admin): the fields sent; null removes a limit."""
    body = parse_body(await request.body(), LimitsIn)
    current = await accounts.key(key_id)
    return key_out(await accounts.set_limits(key_id, limits_of(body, current)))


@endpoints.post(
    "/hub/v1/admin/keys/{key_id}/revoke",
    response_model=KeyOut,
    responses={**_ERRORS, 409: {"model": ErrorBody}},
)
async def revoke_key(key_id: str, accounts: AccountsDep, admin: AdminDep) -> KeyOut:
    """Revoke a key (admin): every process refuses it within IMAGEHUB_KEY_CACHE_SECONDS.

    The last active admin key cannot be revoked (409 last_admin_key)."""
    return key_out(await accounts.revoke(key_id))


@endpoints.get("/hub/v1/admin/tenants", response_model=TenantList, responses=_ERRORS)
async def list_tenants(
    accounts: AccountsDep,
    admin: AdminDep,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Only tenants whose id contains this."),
    ] = None,
) -> TenantList:
    """Every tenant (admin): its keys, tasks in flight and spend, summed over its keys."""
    tenants: dict[str, list[ApiKey]] = {}
    for key in await accounts.list_keys(None):
        tenants.setdefault(key.tenant_id, []).append(key)
    needle = q.casefold() if q is not None else ""
    return TenantList(
        data=[
            _tenant(tenant_id, keys)
            for tenant_id, keys in sorted(tenants.items())
            if needle in tenant_id.casefold()
        ]
    )


def _tenant(tenant_id: str, keys: list[ApiKey]) -> TenantOut:
    active = [k for k in keys if k.revoked_at is None]
    return TenantOut(
        tenant_id=tenant_id,
        keys=len(keys),
        active_keys=len(active),
        admin_keys=sum(k.admin for k in active),
        active_tasks=sum(k.active_tasks for k in keys),
        reserved_usd=sum(k.reserved_micros for k in keys) / 1e6,
        spent_usd=sum(k.spent_micros for k in keys) / 1e6,
        created_at=rfc3339(min(k.created_at for k in keys)) or "",
    )
