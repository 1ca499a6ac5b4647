"""Wire schemas of keys and their limits (admin routes, a key's own view)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsIn(_Wire):
    """A key's limits; null (or left out when creating) is no limit."""

    requests_per_minute: int | None = Field(
        None, ge=1, le=1_000_000, description="Requests per minute, every route counted."
    )
    concurrent_tasks: int | None = Field(
        None, ge=1, le=1_000_000, description="Tasks queued or running at once."
    )
    budget_usd: float | None = Field(
        None,
        strict=True,  # `false` is no budget (an integer still counts)
        ge=0,
        le=1_000_000_000,
        description="Total spend: a submit reserves its price on the dearest of the model's "
        "routes, the finish settles the real cost.",
    )


class KeyCreate(_Wire):
    """The body of POST /hub/v1/admin/keys."""

    tenant_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="The tenant the key belongs to; a new id makes a new tenant.",
    )
    name: str = Field(
        "",
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="A label, to tell keys apart.",
    )
    admin: bool = Field(False, description="Whether the key may use the admin routes.")
    limits: LimitsIn = Field(default_factory=LimitsIn)


class LimitsOut(BaseModel):
    requests_per_minute: int | None
    concurrent_tasks: int | None
    budget_usd: float | None


class KeyUsageOut(BaseModel):
    active_tasks: int
    reserved_usd: float
    spent_usd: float


class KeyOut(BaseModel):
    """A key as the API shows it: never its secret part nor its hash."""

    id: str
    tenant_id: str
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    admin: bool
    created_at: str
    revoked_at: str | None
    limits: LimitsOut
    usage: KeyUsageOut


class KeyCreated(KeyOut):
    key: str = Field(description="The API key. It is shown only this once.")


class KeyList(BaseModel):
    data: list[KeyOut]
