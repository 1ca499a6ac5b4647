"""In-memory store: the same contract as the SQL backends, for tests and experiments.

Nothing here awaits, so each method is atomic on the event loop, as the SQL backends'
transactions are.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from imagehub import tasks
from imagehub.store.base import (
    DeliveryFilter,
    Lease,
    RouteState,
    TaskFilter,
    UsageRow,
    cost_micros,
    decode_cursor,
    encode_cursor,
    fair_place,
    gcra,
    handed_off,
    journal,
    new_delivery,
    usage_row,
)
from imagehub.tasks import Attempt, DuplicateTask, Page, QueueStats, Task, TaskStatus, utcnow
from imagehub.tenancy.types import ApiKey, OverLimit, Submission
from imagehub.webhooks.types import Delivery, WebhookSecret

T = TypeVar("T", Task, Delivery)


def _newest_first(items: Iterable[T], cursor: str | None, limit: int) -> tuple[list[T], str | None]:
    """A page of tasks or deliveries, newest first, after `cursor`; and the next cursor."""
    after = decode_cursor(cursor) if cursor else None
    found = sorted(
        (i for i in items if after is None or (i.created_at.timestamp(), i.id) < after),
        key=lambda i: (i.created_at.timestamp(), i.id),
        reverse=True,
    )
    page = found[:limit]
    more = len(found) > limit
    return page, encode_cursor(page[-1].created_at, page[-1].id) if more else None


class MemoryStore:
    """Tasks, keys and webhooks in dicts; nothing survives the process."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.keys: dict[str, ApiKey] = {}
        #: task id -> (key id, reserved micros, settled)
        self.spend: dict[str, tuple[str, int, bool]] = {}
        self.rates: dict[str, float] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.secrets: list[WebhookSecret] = []
        #: the attempts journal, in the order written
        self.journal: list[Attempt] = []
        #: (process id, route, model) -> its last published state
        self.route_rows: dict[tuple[str, str, str], RouteState] = {}

        #: the fair queue: each task's place, each tenant's (weight, last place)
        self.places: dict[str, float] = {}
        self.shares: dict[str, tuple[float, float]] = {}

    async def open(self) -> None:
        """Nothing to open, close or reach: the store is this object."""

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    # -- tasks

    async def create(
        self, task: Task, submission: Submission | None = None, lease: Lease | None = None
    ) -> Task:
        if task.id in self.tasks:
            raise ValueError(f"task {task.id} exists already")
        key = (task.tenant_id, task.idempotency_key)
        for other in self.tasks.values():
            if task.idempotency_key is not None and (other.tenant_id, other.idempotency_key) == key:
                raise DuplicateTask(other)
        if submission is not None and submission.key_id is not None:
            self._reserve(task.id, submission.key_id, submission.reserve_micros)
        if task.webhook_url is not None:
            delivery = new_delivery(task, submission.base_url if submission else "")
            self.deliveries[delivery.id] = delivery
        weight, last = self.shares.get(task.tenant_id, (1.0, 0.0))
        place = fair_place(self._clock(), last, weight)
        self.shares[task.tenant_id] = (weight, place)
        self.places[task.id] = place
        if lease is not None and not self._due():  # no task waits: this one need not
            task = handed_off(task, lease, utcnow())
        self.tasks[task.id] = task
        return task

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
        mine = (
            t
            for t in self.tasks.values()
            if t.tenant_id == tenant_id
            and (model is None or t.model == model)
            and (status is None or t.status == status)
        )
        return Page(*_newest_first(mine, cursor, limit))

    async def find_tasks(
        self, where: TaskFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        found = (
            t
            for t in self.tasks.values()
            if (where.tenant_id is None or t.tenant_id == where.tenant_id)
            and (where.model is None or t.model == where.model)
            and (where.status is None or t.status == where.status)
            and (where.provider is None or t.provider == where.provider)
            and (where.since is None or t.created_at >= where.since)
            and (where.until is None or t.created_at < where.until)
        )
        return Page(*_newest_first(found, cursor, limit))

    async def usage_rows(self, since: datetime, until: datetime, limit: int) -> list[UsageRow]:
        found = sorted(
            (t for t in self.tasks.values() if since <= t.created_at < until),
            key=lambda t: (t.created_at, t.id),
            reverse=True,
        )[:limit]
        return [
            usage_row(
                t.created_at.timestamp(),
                t.finished_at.timestamp() if t.finished_at else None,
                t.status.value,
                t.model,
                t.tenant_id,
                t.provider,
                json.dumps(t.usage.to_dict()) if t.usage else None,
                json.dumps(t.output.to_dict(), separators=(",", ":")) if t.output else None,
                json.dumps(t.input),
            )
            for t in found
        ]

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Task]:
        now = utcnow()
        due = sorted(
            (t for t in self.tasks.values() if t.status == "queued" and t.run_after <= now),
            key=self._fair_order,
        )[:limit]
        claimed = [
            self._put(
                task,
                status=TaskStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                lease_token=task.lease_token + 1,
                attempts=task.attempts + 1,
                started_at=task.started_at or now,
                partials=(),
            )
            for task in due
        ]
        return claimed

    def _due(self) -> list[Task]:
        """The queued tasks a claim would take now."""
        now = utcnow()
        return [
            t for t in self.tasks.values() if t.status == TaskStatus.QUEUED and t.run_after <= now
        ]

    def _clock(self) -> float:
        """The queue's virtual clock (`fair_place`)."""
        due = [self.places[t.id] for t in self._due()]
        if due:
            return min(due) - 1.0
        return max((last for _, last in self.shares.values()), default=0.0)

    def _fair_order(self, task: Task) -> tuple[float, datetime]:
        return self.places[task.id], task.created_at

    async def queue_position(self, task_id: str) -> int | None:
        place = await self.queue_place(task_id)
        return None if place is None else place[2]

    async def queue_place(
        self, task_id: str, at_most: int | None = None
    ) -> tuple[float, float, int] | None:
        task = self.tasks.get(task_id)
        if task is None or task.status != TaskStatus.QUEUED:
            return None
        mine = (self.places[task.id], task.created_at.timestamp())
        ahead = sum(1 for queued in self._queued_places() if queued < mine)
        return *mine, ahead if at_most is None else min(ahead, at_most)

    async def queue_places(self, limit: int) -> list[tuple[float, float]]:
        return sorted(self._queued_places())[:limit]

    def _queued_places(self) -> list[tuple[float, float]]:
        return [
            (self.places[t.id], t.created_at.timestamp())
            for t in self.tasks.values()
            if t.status == TaskStatus.QUEUED
        ]

    async def set_priority(self, tenant_id: str, priority: float) -> None:
        self.shares[tenant_id] = (priority, self.shares.get(tenant_id, (1.0, 0.0))[1])

    async def priority(self, tenant_id: str) -> float:
        return self.shares.get(tenant_id, (1.0, 0.0))[0]

    def _put(self, task: Task, **changes: Any) -> Task:
        task = dataclasses.replace(task, **changes)
        self.tasks[task.id] = task
        return task

    def _held(self, owner: str) -> list[Task]:
        return [
            t
            for t in self.tasks.values()
            if t.lease_owner == owner and t.status == TaskStatus.RUNNING
        ]

    async def heartbeat(self, owner: str, lease_seconds: float) -> set[str]:
        until = utcnow() + timedelta(seconds=lease_seconds)
        return {self._put(task, lease_expires_at=until).id for task in self._held(owner)}

    async def finish(self, task: Task, attempt: Attempt | Sequence[Attempt] | None = None) -> bool:
        current = self.tasks.get(task.id)
        if (
            current is None
            or current.status != TaskStatus.RUNNING
            or current.lease_token != task.lease_token
        ):
            return False
        self._put(
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
            partials=task.partials,
        )
        self.journal.extend(journal(attempt))
        if task.ready:
            self._finished(task.id, cost_micros(task))
        return True

    async def set_partials(self, task: Task) -> bool:
        current = self.tasks.get(task.id)
        if (
            current is None
            or current.status != TaskStatus.RUNNING
            or current.lease_token != task.lease_token
        ):
            return False
        self._put(current, partials=task.partials)
        return True

    async def release(self, owner: str) -> int:
        held = self._held(owner)
        for task in held:
            self._put(
                task,
                status=TaskStatus.QUEUED,
                lease_owner=None,
                lease_expires_at=None,
                run_after=utcnow(),
                partials=(),
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
            task = self._put(
                task,
                status=TaskStatus.FAILED if spent else TaskStatus.QUEUED,
                error=tasks.LOST_WORKER_ERROR if spent else task.error,
                finished_at=now if spent else None,
                run_after=now,
                lease_owner=None,
                lease_expires_at=None,
                partials=(),
            )
            reaped.append(task)
            if spent:
                self._finished(task.id, 0)
        return reaped

    async def cancel(self, task_id: str, tenant_id: str) -> Task | None:
        task = await self.get(task_id, tenant_id)
        if task is None or task.ready:
            return task
        task = self._put(
            task,
            status=TaskStatus.CANCELED,
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
            error=tasks.CANCELED_ERROR,
            partials=(),
        )
        self._finished(task_id, 0)
        return task

    async def purge_output(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if task is not None and task.output is not None:
            self._put(task, output=task.output.purge())

    async def attempts(self, task_id: str) -> list[Attempt]:
        mine = [a for a in self.journal if a.task_id == task_id]
        return sorted(mine, key=lambda a: (a.started_at, a.finished_at))

    async def recent_attempts(
        self, since: datetime, *, model: str | None = None, limit: int = 10_000
    ) -> list[Attempt]:
        found = [
            a
            for a in self.journal
            if a.finished_at >= since and (model is None or a.model == model)
        ]
        return sorted(found, key=lambda a: a.finished_at, reverse=True)[:limit]

    async def publish_route_states(self, process_id: str, states: Sequence[RouteState]) -> None:
        for key in [k for k in self.route_rows if k[0] == process_id]:
            del self.route_rows[key]
        for state in states:
            self.route_rows[(process_id, state.route, state.model)] = dataclasses.replace(
                state, process_id=process_id
            )

    async def route_states(self, since: datetime) -> list[RouteState]:
        rows = [r for r in self.route_rows.values() if r.updated_at >= since]
        return sorted(rows, key=lambda r: (r.route, r.model, r.process_id))

    async def queue_stats(self) -> QueueStats:
        now = utcnow().timestamp()
        counts: dict[tuple[str, str], int] = {}
        oldest: dict[str, float] = {}
        for task in self.tasks.values():
            if task.status not in (TaskStatus.QUEUED, TaskStatus.RUNNING):
                continue
            key = (task.model, task.status.value)
            counts[key] = counts.get(key, 0) + 1
            waited = now - task.run_after.timestamp()
            if task.status == TaskStatus.QUEUED and waited >= 0:
                oldest[task.model] = max(oldest.get(task.model, 0.0), waited)
        pending = [d for d in self.deliveries.values() if d.state == "pending"]
        due = [
            now - d.next_attempt_at.timestamp()
            for d in pending
            if d.next_attempt_at is not None and d.next_attempt_at.timestamp() <= now
        ]
        return QueueStats(counts, oldest, len(pending), max(due, default=0.0))

    def _reserve(self, task_id: str, key_id: str, amount: int) -> None:
        """Check, then take a slot and `amount`: OverLimit leaves everything as it was."""
        key = self._by_id(key_id)
        if key is None:
            return  # not a stored key: nothing to count against
        if key.concurrency_limit is not None and key.active_tasks >= key.concurrency_limit:
            raise OverLimit("concurrency", key)
        committed = key.spent_micros + key.reserved_micros + amount
        if key.budget_micros is not None and committed > key.budget_micros:
            raise OverLimit("budget", key)
        self._put_key(
            key, active_tasks=key.active_tasks + 1, reserved_micros=key.reserved_micros + amount
        )
        self.spend[task_id] = (key.id, amount, False)

    def _finished(self, task_id: str, cost: int) -> None:
        """Settle a final task's spend (once) and make its waiting delivery due."""
        entry = self.spend.get(task_id)
        if entry is not None and not entry[2]:
            key_id, reserved, _ = entry
            self.spend[task_id] = (key_id, reserved, True)
            key = self._by_id(key_id)
            if key is not None:
                self._put_key(
                    key,
                    active_tasks=key.active_tasks - 1,
                    reserved_micros=key.reserved_micros - reserved,
                    spent_micros=key.spent_micros + cost,
                )
        for d in self.deliveries.values():
            if d.task_id == task_id and d.state == "waiting":
                self.deliveries[d.id] = dataclasses.replace(
                    d, state="pending", next_attempt_at=utcnow()
                )

    # -- keys

    def _by_id(self, key_id: str) -> ApiKey | None:
        return next((k for k in self.keys.values() if k.id == key_id), None)

    def _put_key(self, key: ApiKey, **changes: Any) -> ApiKey:
        key = dataclasses.replace(key, **changes)
        self.keys[key.key_hash] = key
        return key

    async def add_key(self, key: ApiKey) -> None:
        self.keys[key.key_hash] = key

    async def get_key(self, key_hash: str) -> ApiKey | None:
        return self.keys.get(key_hash)

    async def get_key_by_id(self, key_id: str) -> ApiKey | None:
        return self._by_id(key_id)

    async def count_keys(self) -> int:
        return sum(1 for k in self.keys.values() if k.revoked_at is None)

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        found = [k for k in self.keys.values() if tenant_id is None or k.tenant_id == tenant_id]
        return sorted(found, key=lambda k: (k.created_at, k.id))

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        key = self._by_id(key_id)
        if key is None or key.revoked_at is not None:
            return key
        return self._put_key(key, revoked_at=utcnow())

    async def restore_key(self, key_id: str) -> ApiKey | None:
        key = self._by_id(key_id)
        return None if key is None else self._put_key(key, revoked_at=None, admin=True)

    async def set_key_limits(
        self,
        key_id: str,
        *,
        rpm_limit: int | None,
        concurrency_limit: int | None,
        budget_micros: int | None,
    ) -> ApiKey | None:
        key = self._by_id(key_id)
        if key is None:
            return None
        return self._put_key(
            key,
            rpm_limit=rpm_limit,
            concurrency_limit=concurrency_limit,
            budget_micros=budget_micros,
        )

    async def rate_hit(self, key_id: str, per_minute: int) -> float:
        tat, wait = gcra(self.rates.get(key_id), utcnow().timestamp(), per_minute)
        if tat is not None:
            self.rates[key_id] = tat
        return wait

    # -- webhooks

    async def claim_deliveries(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[Delivery]:
        now = utcnow()
        due = sorted(
            (d for d in self.deliveries.values() if _due(d, now.timestamp())),
            key=lambda d: d.next_attempt_at or now,
        )[:limit]
        claimed = []
        for d in due:
            d = dataclasses.replace(
                d,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                lease_token=d.lease_token + 1,
                attempts=d.attempts + 1,
            )
            self.deliveries[d.id] = d
            claimed.append(d)
        return claimed

    async def finish_delivery(self, delivery: Delivery) -> bool:
        current = self.deliveries.get(delivery.id)
        if (
            current is None
            or current.state != "pending"
            or current.lease_token != delivery.lease_token
            or current.lease_owner is None
            or current.lease_owner != delivery.lease_owner
        ):
            return False
        self.deliveries[delivery.id] = dataclasses.replace(
            current,
            state=delivery.state,
            next_attempt_at=delivery.next_attempt_at,
            history=delivery.history,
            lease_owner=None,
            lease_expires_at=None,
        )
        return True

    async def get_delivery(self, task_id: str, tenant_id: str) -> Delivery | None:
        found = self._where(self.deliveries.values(), task_id=task_id, tenant_id=tenant_id)
        return next(iter(found), None)

    async def list_deliveries(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        mine = self._where(self.deliveries.values(), tenant_id=tenant_id)
        return _newest_first(mine, cursor, limit)

    async def find_deliveries(
        self,
        *,
        tenant_id: str | None = None,
        state: DeliveryFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Delivery], str | None]:
        found = (
            d
            for d in self.deliveries.values()
            if (tenant_id is None or d.tenant_id == tenant_id)
            and (state is None or _matches(d, state))
        )
        return _newest_first(found, cursor, limit)

    async def get_delivery_by_id(self, delivery_id: str) -> Delivery | None:
        return self.deliveries.get(delivery_id)

    async def retry_delivery(self, delivery_id: str) -> Delivery | None:
        d = self.deliveries.get(delivery_id)
        now = utcnow()
        if d is None or d.state not in ("pending", "failed"):
            return None
        if d.lease_expires_at is not None and d.lease_expires_at >= now:
            return None
        d = dataclasses.replace(
            d,
            state="pending",
            next_attempt_at=now,
            lease_owner=None,
            lease_expires_at=None,
            lease_token=d.lease_token + 1,
        )
        self.deliveries[d.id] = d
        return d

    @staticmethod
    def _where(items: Iterable[Delivery], **fields: str) -> list[Delivery]:
        return [i for i in items if all(getattr(i, k) == v for k, v in fields.items())]

    async def webhook_secrets(self, tenant_id: str) -> list[WebhookSecret]:
        now = utcnow()
        active = [
            s
            for s in self.secrets
            if s.tenant_id == tenant_id and (s.expires_at is None or s.expires_at > now)
        ]
        return sorted(active, key=lambda s: s.created_at, reverse=True)

    async def ensure_webhook_secret(self, secret: WebhookSecret) -> list[WebhookSecret]:
        if not await self.webhook_secrets(secret.tenant_id):
            self.secrets.append(secret)
        return await self.webhook_secrets(secret.tenant_id)

    async def rotate_webhook_secret(
        self, secret: WebhookSecret, overlap_seconds: float
    ) -> list[WebhookSecret]:
        now = utcnow()
        until = now + timedelta(seconds=overlap_seconds)
        kept = []
        for s in self.secrets:
            if s.tenant_id == secret.tenant_id:
                if s.expires_at is not None and s.expires_at <= now:
                    continue
                if s.expires_at is None or s.expires_at > until:
                    s = dataclasses.replace(s, expires_at=until)
            kept.append(s)
        self.secrets = [*kept, secret]
        return await self.webhook_secrets(secret.tenant_id)


def _due(d: Delivery, now: float) -> bool:
    """A pending delivery whose time has come and that no sender holds."""
    lease = d.lease_expires_at
    return (
        d.state == "pending"
        and d.next_attempt_at is not None
        and d.next_attempt_at.timestamp() <= now
        and (lease is None or lease.timestamp() < now)
    )


def _matches(d: Delivery, state: DeliveryFilter) -> bool:
    if state == "failing":
        return d.state == "failed" or (d.state == "pending" and d.attempts > 0)
    return d.state == state
