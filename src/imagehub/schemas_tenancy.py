"""Wire schemas of keys, limits and webhooks (admin routes, a key's own view, deliveries)."""

from __future__ import annotations

from typing import Literal

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
        ge=0,
        le=1_000_000_000,
        description="Total spend: a submit reserves the catalog price, the finish settles "
        "the real cost.",
    )


class KeyCreate(_Wire):
    """The body of POST /hub/v1/admin/keys."""

    tenant_id: str = Field(
        min_length=1,
        max_length=64,
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


class UsageOut(BaseModel):
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
    usage: UsageOut


class KeyCreated(KeyOut):
    key: str = Field(description="The API key. It is shown only this once.")


class KeyList(BaseModel):
    data: list[KeyOut]


class SecretOut(BaseModel):
    secret: str
    created_at: str
    expires_at: str | None


class WebhookSecretOut(BaseModel):
    """The tenant's webhook signing secret; after a rotation the previous one signs too."""

    secret: str = Field(description="The current `whsec_` secret.")
    created_at: str
    previous: list[SecretOut] = Field(
        description="Older secrets that still sign every delivery until they expire."
    )


class AttemptOut(BaseModel):
    at: str
    status: int | None = Field(description="The receiver's HTTP status; null when none.")
    error: str | None


class DeliveryOut(BaseModel):
    """A task's webhook delivery and its attempts."""

    webhook_id: str
    task_id: str
    url: str = Field(description="The webhook URL, without its query.")
    state: Literal["waiting", "pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: str | None
    created_at: str
    history: list[AttemptOut] = Field(description="The latest attempts, oldest first.")


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None
