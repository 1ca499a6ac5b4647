"""The store protocol: where tasks and keys live. The queue is the task table.

Every write a worker makes after a claim is fenced by the task's `lease_token`: a worker that
lost its lease writes nothing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

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

    async def create(self, task: Task) -> None:
        """Insert a queued task; raise DuplicateTask on a (tenant, idempotency key) clash."""

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


def encode_cursor(created_at: datetime, task_id: str) -> str:
    raw = f"{created_at.timestamp():.6f}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raise ValueError on a malformed cursor."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    ts, task_id = raw.split("|", 1)
    return float(ts), task_id
