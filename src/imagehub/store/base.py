"""The store protocols: tasks (the queue is the task table), keys, and the webhook outbox.

Every write a worker makes after a claim is fenced by the task's `lease_token`: a worker that
lost its lease writes nothing. A backend implements all three protocols in one class, so a
submit's task, key reservation and delivery are written in one transaction.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from imagehub.tasks import Attempt, Page, QueueStats, Task, TaskStatus
from imagehub.tenancy.types import ApiKey, Submission
from imagehub.webhooks.types import Delivery, WebhookSecret, delivery_id


class TaskStore(Protocol):
    """What the worker and the Hub need of tasks."""

    async def create(
        self, task: Task, submission: Submission | None = None, lease: Lease | None = None
    ) -> Task:
        """Insert a queued task and return it as stored; raise DuplicateTask on a (tenant,
        idempotency key) clash.

        With a submission, in the same transaction: reserve a slot and budget of its key
        (OverLimit, and nothing written, when the key's limits refuse), and, when the task has
        a webhook_url, add its waiting delivery.

        With a `lease` (a hand-off to a worker of the submitting process), the task is stored
        running, leased as a claim by `lease.owner` would have leased it, when no other task is
        due (checked in the same transaction, so a hand-off never passes a waiting task);
        otherwise it is queued as without one.
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

    async def finish(self, task: Task, attempt: Attempt | Sequence[Attempt] | None = None) -> bool:
        """Write a running task's outcome (status, output/error, ...) if its lease still holds.

        `task.status` is the new status: succeeded, failed, or queued for a retry. Returns
        False when the lease was lost (the task was reaped, canceled or taken over).

        `attempt`, the journal row(s) of this attempt's route calls, is written in the same
        transaction, and only when the outcome is.

        Every change to a final status (here, in `cancel` and in `reap`) also settles the
        task's reservation at its `usage.cost_usd` (0 unless succeeded) and makes its waiting
        delivery pending, in the same transaction; both happen once per task.
        """

    async def set_partials(self, task: Task) -> bool:
        """Write a running task's partial images (`task.partials`) if its lease still holds.

        Every claim, requeue, reap and cancel clears them (they belong to one attempt); `finish`
        writes the task's own (a retry's or failure's empty ones, a success's kept).
        """

    async def release(self, owner: str) -> int:
        """Hand `owner`'s running tasks back to the queue (graceful shutdown)."""

    async def reap(self) -> list[Task]:
        """Requeue tasks whose lease expired, or fail them when out of attempts."""

    async def cancel(self, task_id: str, tenant_id: str) -> Task | None:
        """Cancel a queued or running task; return it as it now is (None if unknown)."""

    async def purge_output(self, task_id: str) -> None:
        """Drop a sync_mode task's inline images after they were read once."""

    async def attempts(self, task_id: str) -> list[Attempt]:
        """The task's journal: every route call, in the order they were made."""

    async def recent_attempts(
        self, since: datetime, *, model: str | None = None, limit: int = 10_000
    ) -> list[Attempt]:
        """Route calls (of every tenant) finished at or after `since`, newest first."""

    async def queue_position(self, task_id: str) -> int | None:
        """How many queued tasks a claim would take before this one; None if it is not queued.

        Claims are fair across tenants: each task gets a place in a virtual time when it is
        submitted (`fair_place`), claims take the lowest places first, and a retry keeps its
        place. The count is a range of one index, cheap however deep the queue.
        """

    async def queue_place(
        self, task_id: str, at_most: int | None = None
    ) -> tuple[float, float, int] | None:
        """A queued task's (place, submit time, tasks ahead): claims take the lowest places
        first; the tasks ahead are counted up to `at_most` at most. None if not queued."""

    async def queue_places(self, limit: int) -> list[tuple[float, float]]:
        """The (place, submit time) of the first `limit` queued tasks, in claim order."""

    async def set_priority(self, tenant_id: str, priority: float) -> None:
        """Set a tenant's weight in the fair queue (1 by default) for its next submits."""

    async def priority(self, tenant_id: str) -> float:
        """A tenant's weight in the fair queue."""

    async def queue_stats(self) -> QueueStats:
        """Queued and running tasks by model, the oldest due wait, the webhook backlog.

        Read at metrics scrape time: it must stay cheap on a long history.
        """


class KeyStore(Protocol):
    """API keys, the counters of their limits, and request rates."""

    async def add_key(self, key: ApiKey) -> None: ...

    async def get_key(self, key_hash: str) -> ApiKey | None: ...

    async def get_key_by_id(self, key_id: str) -> ApiKey | None: ...

    async def count_keys(self) -> int:
        """Keys not revoked."""

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        """Every key (of a tenant), revoked ones included, oldest first."""

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


class DeliveryStore(Protocol):
    """The webhook outbox (one delivery per task with a webhook_url) and signing secrets."""

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


@dataclass(frozen=True, slots=True)
class Lease:
    """A hand-off's lease: the task is stored running, held by `owner` for `seconds`."""

    owner: str
    seconds: float


@dataclass(frozen=True, slots=True)
class RouteState:
    """What one process last said of one of its routes (for one model)."""

    process_id: str
    route: str
    model: str
    #: healthy, cooling_until, rate_limited, in_flight, max_concurrency, last_error...
    state: dict[str, Any]
    updated_at: datetime


class RouteStateStore(Protocol):
    """Each process's view of its routes, shared so any process can show them all."""

    async def publish_route_states(self, process_id: str, states: Sequence[RouteState]) -> None:
        """Replace `process_id`'s rows with `states`; drop every process's long-stale rows."""

    async def route_states(self, since: datetime) -> list[RouteState]:
        """The rows of every process updated at or after `since`."""


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks of every tenant an operator looks at; None is any."""

    tenant_id: str | None = None
    model: str | None = None
    status: TaskStatus | None = None
    #: the route that ran it (`Task.provider`)
    provider: str | None = None
    #: created at or after
    since: datetime | None = None
    #: created before
    until: datetime | None = None


#: delivery filters: a state, or "failing" (failed, or pending after a failed attempt)
DeliveryFilter = Literal["waiting", "pending", "succeeded", "failed", "failing"]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """What a usage report needs of a task, read without the rest of it."""

    created_at: float
    finished_at: float | None
    status: str
    model: str
    tenant_id: str
    provider: str | None
    #: what it cost (0 unless it succeeded)
    cost_usd: float
    #: the images it made
    images: int


def usage_row(
    created_at: float,
    finished_at: float | None,
    status: str,
    model: str,
    tenant_id: str,
    provider: str | None,
    usage: str | None,
    output: str | None,
    input: str,
) -> UsageRow:
    """A usage row from a task's stored columns; only a succeeded task's JSON is read."""
    cost, images = 0.0, 0
    if status == TaskStatus.SUCCEEDED.value:
        cost = float(json.loads(usage).get("cost_usd", 0.0)) if usage else 0.0
        if output:
            # the stored form is compact JSON: one "content_type" per image, no need to parse
            images = output.count('"content_type":')
            if images == 0 and json.loads(output).get("purged"):  # a sync_mode output, read
                images = int(json.loads(input).get("num_images", 1))
    return UsageRow(created_at, finished_at, status, model, tenant_id, provider, cost, images)


class OperatorStore(Protocol):
    """What an operator reads across tenants, and the one thing it changes: a retry."""

    async def find_tasks(
        self, where: TaskFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Every tenant's tasks that match, newest first."""

    async def usage_rows(self, since: datetime, until: datetime, limit: int) -> list[UsageRow]:
        """The tasks created in [since, until), newest first, at most `limit`."""

    async def find_deliveries(
        self,
        *,
        tenant_id: str | None = None,
        state: DeliveryFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Delivery], str | None]:
        """Every tenant's deliveries that match, newest first, and the next page's cursor."""

    async def get_delivery_by_id(self, delivery_id: str) -> Delivery | None: ...

    async def retry_delivery(self, delivery_id: str) -> Delivery | None:
        """Make a pending or failed delivery that no sender holds due now; None if it is not.

        Its lease token grows, so a sender whose lease had expired writes nothing.
        """


class Store(TaskStore, KeyStore, DeliveryStore, RouteStateStore, OperatorStore, Protocol):
    """A whole backend: the stores over one database, opened and closed together."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = f"{created_at.timestamp():.6f}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raise ValueError on a malformed cursor."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    ts, item_id = raw.split("|", 1)
    return float(ts), item_id


# -- rules every backend applies alike


def cost_micros(task: Task) -> int:
    """What a finished task is charged, in micro-USD: its cost when it succeeded, else nothing."""
    if task.status != TaskStatus.SUCCEEDED or task.usage is None:
        return 0
    return round(task.usage.cost_usd * 1_000_000)


def new_delivery(task: Task, base_url: str) -> Delivery:
    """The waiting delivery a submit adds for a task with a webhook_url."""
    assert task.webhook_url is not None
    return Delivery(
        id=delivery_id(task.id),
        task_id=task.id,
        tenant_id=task.tenant_id,
        url=task.webhook_url,
        base_url=base_url,
        created_at=task.created_at,
    )


def fair_place(clock: float, last: float, weight: float) -> float:
    """A submit's place in the fair queue (start-time fair queuing).

    `clock` is the queue's virtual time, read, never kept: one before the place at its head
    (the lowest of the due tasks), or when none is due the latest place any tenant took (all
    were claimed); `last` is the tenant's previous place (0 before its first). A tenant's
    tasks are 1/weight apart, and a tenant that was idle starts level with the clock: neither
    behind the others' backlog nor ahead of it by its past idleness.
    """
    return max(clock, last) + 1.0 / weight


def handed_off(task: Task, lease: Lease, now: datetime) -> Task:
    """A submitted task as a hand-off stores it: running, leased as a claim at `now` leases."""
    return task.replace(
        status=TaskStatus.RUNNING,
        lease_owner=lease.owner,
        lease_expires_at=now + timedelta(seconds=lease.seconds),
        lease_token=task.lease_token + 1,
        attempts=task.attempts + 1,
        started_at=now,
    )


def gcra(tat: float | None, now: float, per_minute: int) -> tuple[float | None, float]:
    """One request against a GCRA limiter: (the new TAT or None if refused, seconds to wait).

    The burst is the whole minute's allowance: `per_minute` requests at once, then one every
    60 / per_minute seconds, as a token bucket of that size would allow.
    """
    interval = 60.0 / per_minute
    new_tat = max(tat if tat is not None else now, now) + interval
    wait = new_tat - 60.0 - now
    return (new_tat, 0.0) if wait <= 0 else (None, wait)


def journal(attempt: Attempt | Sequence[Attempt] | None) -> list[Attempt]:
    """`finish`'s journal argument as a list."""
    if attempt is None:
        return []
    if isinstance(attempt, Attempt):
        return [attempt]
    return list(attempt)
