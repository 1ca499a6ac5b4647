"""Wire schemas of webhooks: signing secrets and deliveries."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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
