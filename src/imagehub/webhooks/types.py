"""A task's webhook as the store keeps it: the outbox row and its attempts, and the secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from imagehub.tasks import utcnow

DeliveryState = Literal["waiting", "pending", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One try of a webhook delivery: the HTTP status, or why there was none."""

    at: datetime
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.timestamp(), "status": self.status, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryAttempt:
        at = datetime.fromtimestamp(data["at"], UTC)
        return cls(at, data.get("status"), data.get("error"))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A task's webhook: an outbox row, leased by the sender like tasks are by workers.

    `waiting` until the task is ready, then `pending` (due at `next_attempt_at`) until it
    ends `succeeded` or `failed`. `id` is the stable `webhook-id` of every attempt.
    """

    id: str
    task_id: str
    tenant_id: str
    url: str
    base_url: str = ""
    state: DeliveryState = "waiting"
    #: attempts started (a claim counts one, as for tasks)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    history: tuple[DeliveryAttempt, ...] = ()
    created_at: datetime = field(default_factory=utcnow)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    lease_token: int = 0


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """A tenant's `whsec_` signing secret; after a rotation the old one signs until it expires."""

    tenant_id: str
    secret: str
    created_at: datetime = field(default_factory=utcnow)
    expires_at: datetime | None = None


def delivery_id(task_id: str) -> str:
    """The webhook-id of a task's delivery: derived from the task, so repeats never duplicate."""
    return f"msg_{task_id}"
