"""The store protocol: where tasks and keys live. The queue is the task table.

Every write a worker makes after a claim is fenced by the task's `lease_token`: a worker that
lost its lease writes nothing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from imagehub.tasks import Task, TaskStatus, utcnow


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: only its hash is kept."""

    id: str
    tenant_id: str
    key_hash: str
    #: the first characters of the key, to recognise it in lists
    prefix: str
    name: str = ""
    admin: bool = False
    created_at: datetime = field(default_factory=utcnow)
    revoked_at: datetime | None = None
    # limits, None for none: requests per minute, tasks in flight, total spend in micro-USD
    rpm_limit: int | None = None
    concurrency_limit: int | None = None
    budget_micros: int | None = None
    # kept by the store as tasks are submitted and finish
    active_tasks: int = 0
    reserved_micros: int = 0
    spent_micros: int = 0


@dataclass(frozen=True, slots=True)
class Submission:
    """What a submit writes along with its task, in the same transaction."""

    #: the key charged: one slot of its concurrency limit and `reserve_micros` of its budget,
    #: settled (at the task's real cost) or released when the task finishes
    key_id: str | None = None
    reserve_micros: int = 0
    #: where clients reach the hub, for the file URLs of the task's webhook
    base_url: str = ""


class OverLimit(Exception):
    """A key's concurrency limit or budget does not allow one more task; nothing was written."""

    def __init__(self, limit: Literal["concurrency", "budget"], key: ApiKey) -> None:
        self.limit = limit
        self.key = key
        super().__init__(limit)


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


@dataclass(frozen=True, slots=True)
class Page:
    tasks: list[Task]
    next_cursor: str | None


class DuplicateTask(Exception):
    """A task with this tenant and idempotency key exists already."""

    def __init__(self, existing: Task) -> None:
        self.existing = existing
        super().__init__(existing.id)


class TaskStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def create(self, task: Task, submission: Submission | None = None) -> None:
        """Insert a queued task; raise DuplicateTask on a (tenant, idempotency key) clash.

        With a submission, in the same transaction: reserve a slot and budget of its key
        (OverLimit, and nothing written, when the key's limits refuse), and, when the task has
        a webhook_url, add its waiting delivery.
        """

    async def get(self, task_id: str, tenant_id: str | None = None) -> Task | None: ...

    async def list_tasks(
        self,
        tenant_id: str,
        *,
        model: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """The tenant's tasks, newest first."""

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Task]:
        """Lease up to `limit` due queued tasks to `owner`: status running, attempts + 1."""

    async def heartbeat(self, owner: str, lease_seconds: float) -> set[str]:
        """Renew all of `owner`'s leases at once; return the ids it still holds."""

    async def finish(self, task: Task) -> bool:
        """Write a running task's outcome (status, output/error, ...) if its lease still holds.

        `task.status` is the new status: succeeded, failed, or queued for a retry. Returns
        False when the lease was lost (the task was reaped, canceled or taken over).

        Every change to a final status (here, in `cancel` and in `reap`) also settles the
        task's reservation at its `usage.cost_usd` (0 unless succeeded) and makes its waiting
        delivery pending, in the same transaction; both happen once per task.
        """

    async def release(self, owner: str) -> int:
        """Hand `owner`'s running tasks back to the queue (graceful shutdown)."""

    async def reap(self) -> list[Task]:
        """Requeue tasks whose lease expired, or fail them when out of attempts."""

    async def cancel(self, task_id: str, tenant_id: str) -> Task | None:
        """Cancel a queued or running task; return it as it now is (None if unknown)."""

    async def purge_output(self, task_id: str) -> None:
        """Drop a sync_mode task's inline images after they were read once."""

    async def add_key(self, key: ApiKey) -> None: ...

    async def get_key(self, key_hash: str) -> ApiKey | None: ...

    async def count_keys(self) -> int: ...

    # -- keys and their limits

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        """Every key (of a tenant), revoked ones included, oldest first."""

    async def get_key_by_id(self, key_id: str) -> ApiKey | None: ...

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        """Revoke a key (once: a second revoke keeps the first time); None if unknown."""

    async def restore_key(self, key_id: str) -> ApiKey | None:
        """Make a key an active admin key again (the configured admin key); None if unknown."""

    async def set_key_limits(
        self,
        key_id: str,
        *,
        rpm_limit: int | None,
        concurrency_limit: int | None,
        budget_micros: int | None,
    ) -> ApiKey | None:
        """Replace a key's three limits; None if unknown."""

    async def rate_hit(self, key_id: str, per_minute: int) -> float:
        """Count one request against a key's per-minute rate (GCRA, a burst of `per_minute`).

        Returns 0 when allowed, else the seconds until one more request would be.
        """

    # -- webhooks

    async def claim_deliveries(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[Delivery]:
        """Lease up to `limit` due pending deliveries (or expired leases); attempts + 1."""

    async def finish_delivery(self, delivery: Delivery) -> bool:
        """Write an attempt's outcome (state, next_attempt_at, history) if the lease holds."""

    async def get_delivery(self, task_id: str, tenant_id: str) -> Delivery | None: ...

    async def list_deliveries(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        """The tenant's deliveries, newest first, and the cursor of the next page."""

    async def webhook_secrets(self, tenant_id: str) -> list[WebhookSecret]:
        """The tenant's secrets that still sign, newest first."""

    async def ensure_webhook_secret(self, secret: WebhookSecret) -> list[WebhookSecret]:
        """Add `secret` only if its tenant has none that signs; the secrets that sign after."""

    async def rotate_webhook_secret(
        self, secret: WebhookSecret, overlap_seconds: float
    ) -> list[WebhookSecret]:
        """Add `secret`; the tenant's other secrets expire after `overlap_seconds`."""


def encode_cursor(created_at: datetime, task_id: str) -> str:
    raw = f"{created_at.timestamp():.6f}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raise ValueError on a malformed cursor."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    ts, task_id = raw.split("|", 1)
    return float(ts), task_id
