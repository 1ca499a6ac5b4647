"""Tenant routes (admin): a tenant's priority in the fair queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from imagehub.api.deps import AdminDep, HubDep
from imagehub.api.errors import body_schema, parse_body
from imagehub.schemas import ErrorBody
from imagehub.schemas.tenants import TenantIn, TenantOut

endpoints = APIRouter(tags=["tenants"])
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 413, 422, 429, 503)
}
TenantPath = Annotated[str, Path(min_length=1, max_length=64)]


@endpoints.get("/hub/v1/admin/tenants/{tenant_id}", response_model=TenantOut, responses=_ERRORS)
async def get_tenant(tenant_id: TenantPath, hub: HubDep, admin: AdminDep) -> TenantOut:
    """A tenant's settings (admin); a tenant without any has the defaults."""
    return TenantOut(tenant_id=tenant_id, priority=await hub.store.priority(tenant_id))


@endpoints.patch(
    "/hub/v1/admin/tenants/{tenant_id}",
    response_model=TenantOut,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body_schema(TenantIn)}},
        }
    },
)
async def set_tenant(
    tenant_id: TenantPath, request: Request, hub: HubDep, admin: AdminDep
) -> TenantOut:
    """Set a tenant's priority in the fair queue (admin); it weighs the tenant's next submits."""
    body = parse_body(await request.body(), TenantIn)
    await hub.store.set_priority(tenant_id, body.priority)
    return TenantOut(tenant_id=tenant_id, priority=body.priority)
