"""In-memory store: the same contract as SQL backends, for tests and experiments."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from imagehub.store.base import (
    ApiKey,
    DuplicateTask,
    Page,
    Submission,
    decode_cursor,
    encode_cursor,
)
from imagehub.store.memory_tenancy import MemoryTenancy
from imagehub.store.rows import LOST_WORKER_ERROR
from imagehub.store.tenancy import cost_micros
from imagehub.tasks import Task, TaskStatus, utcnow


class MemoryStore(MemoryTenancy):
    """Tasks and keys in dicts; nothing survives the process."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[str, Task] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def create(self, task: Task, submission: Submission | None = None) -> None:
        if task.id in self.tasks:
            raise ValueError(f"task {task.id} exists already")
        if task.idempotency_key is not None:
            for other in self.tasks.values():
                if (other.tenant_id, other.idempotency_key) == (
                    task.tenant_id,
                    task.idempotency_key,
                ):
                    raise DuplicateTask(other)
        self._submitted(task, submission)
        self.tasks[task.id] = task

    async def get(self, task_id: str, tenant_id: str | None = None) -> Task | None:
        task = self.tasks.get(task_id)
        if task is None or (tenant_id is not None and task.tenant_id != tenant_id):
            return None
        return task

    async def list_tasks(
        self,
        tenant_id: str,
        *,
        model: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        after = decode_cursor(cursor) if cursor else None
        tasks = sorted(
            (
                t
                for t in self.tasks.values()
                if t.tenant_id == tenant_id
                and (model is None or t.model == model)
                and (status is None or t.status == status)
                and (after is None or (t.created_at.timestamp(), t.id) < after)
            ),
            key=lambda t: (t.created_at.timestamp(), t.id),
            reverse=True,
        )
        page = tasks[:limit]
        more = len(tasks) > limit
        return Page(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Task]:
        now = utcnow()
        due = sorted(
            (
                t
                for t in self.tasks.values()
                if t.status == TaskStatus.QUEUED and t.run_after <= now
            ),
            key=lambda t: (t.run_after, t.created_at),
        )[:limit]
        claimed = []
        for task in due:
            task = dataclasses.replace(
                task,
                status=TaskStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                lease_token=task.lease_token + 1,
                attempts=task.attempts + 1,
                started_at=task.started_at or now,
            )
            self.tasks[task.id] = task
            claimed.append(task)
        return sorted(claimed, key=lambda t: t.created_at)

    def _held(self, owner: str) -> list[Task]:
        return [
            t
            for t in self.tasks.values()
            if t.lease_owner == owner and t.status == TaskStatus.RUNNING
        ]

    async def heartbeat(self, owner: str, lease_seconds: float) -> set[str]:
        until = utcnow() + timedelta(seconds=lease_seconds)
        held = self._held(owner)
        for task in held:
            self.tasks[task.id] = dataclasses.replace(task, lease_expires_at=until)
        return {t.id for t in held}

    async def finish(self, task: Task) -> bool:
        current = self.tasks.get(task.id)
        if (
            current is None
            or current.status != TaskStatus.RUNNING
            or current.lease_token != task.lease_token
        ):
            return False
        self.tasks[task.id] = dataclasses.replace(
            current,
            status=task.status,
            output=task.output,
            error=task.error,
            provider=task.provider,
            warnings=task.warnings,
            usage=task.usage,
            finished_at=task.finished_at,
            run_after=task.run_after,
            lease_owner=None,
            lease_expires_at=None,
        )
        if task.ready:
            self._finished(task.id, cost_micros(task))
        return True

    async def release(self, owner: str) -> int:
        held = self._held(owner)
        for task in held:
            self.tasks[task.id] = dataclasses.replace(
                task,
                status=TaskStatus.QUEUED,
                lease_owner=None,
                lease_expires_at=None,
                run_after=utcnow(),
            )
        return len(held)

    async def reap(self) -> list[Task]:
        now = utcnow()
        reaped = []
        for task in list(self.tasks.values()):
            expires = task.lease_expires_at
            if task.status != TaskStatus.RUNNING or expires is None or expires >= now:
                continue
            spent = task.attempts >= task.max_attempts
            task = dataclasses.replace(
                task,
                status=TaskStatus.FAILED if spent else TaskStatus.QUEUED,
                error=json.loads(LOST_WORKER_ERROR) if spent else task.error,
                finished_at=now if spent else None,
                run_after=now,
                lease_owner=None,
                lease_expires_at=None,
            )
            self.tasks[task.id] = task
            reaped.append(task)
            if spent:
                self._finished(task.id, 0)
        return reaped

    async def cancel(self, task_id: str, tenant_id: str) -> Task | None:
        task = await self.get(task_id, tenant_id)
        if task is None or task.ready:
            return task
        task = dataclasses.replace(
            task,
            status=TaskStatus.CANCELED,
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
            error={"code": "canceled", "message": "The task was canceled.", "retryable": False},
        )
        self.tasks[task_id] = task
        self._finished(task_id, 0)
        return task

    async def purge_output(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if task is not None and task.output is not None:
            output = dataclasses.replace(task.output, images=(), purged=True)
            self.tasks[task_id] = dataclasses.replace(task, output=output)

    async def get_key(self, key_hash: str) -> ApiKey | None:
        return self.keys.get(key_hash)

    async def count_keys(self) -> int:
        return sum(1 for k in self.keys.values() if k.revoked_at is None)
