"""Wire schemas of a tenant's settings (admin)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: a tenant's weight in the fair queue: how many claims it gets for another tenant's one
PRIORITY = Field(
    gt=0,
    le=1000,
    description="The tenant's weight in the fair queue (default 1): a tenant at 2 gets two "
    "claims for one of a tenant at 1 while both have tasks queued.",
)


class TenantIn(BaseModel):
    """The body of PATCH /hub/v1/admin/tenants/{tenant_id}."""

    model_config = ConfigDict(extra="forbid")

    priority: float = PRIORITY


class TenantOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    priority: float = PRIORITY
