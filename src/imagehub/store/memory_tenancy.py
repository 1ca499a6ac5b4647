"""In memory: keys and their limits, request rates, webhook deliveries and secrets.

The half of `MemoryStore` for these. Nothing here awaits, so each method is atomic on the
event loop, as the SQL backends' transactions are.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from imagehub.store import tenancy
from imagehub.store.base import (
    ApiKey,
    Delivery,
    OverLimit,
    Submission,
    WebhookSecret,
    decode_cursor,
    encode_cursor,
)
from imagehub.tasks import Task, utcnow


class MemoryTenancy:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        #: task id -> (key id, reserved micros, settled)
        self.spend: dict[str, tuple[str, int, bool]] = {}
        self.rates: dict[str, float] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.secrets: list[WebhookSecret] = []

    # -- called by the task methods

    def _submitted(self, task: Task, submission: Submission | None) -> None:
        """Check and reserve first (OverLimit leaves everything as it was), then write."""
        key = self._by_id(submission.key_id) if submission and submission.key_id else None
        if submission is not None and key is not None:
            amount = submission.reserve_micros
            if key.concurrency_limit is not None and key.active_tasks >= key.concurrency_limit:
                raise OverLimit("concurrency", key)
            committed = key.spent_micros + key.reserved_micros + amount
            if key.budget_micros is not None and committed > key.budget_micros:
                raise OverLimit("budget", key)
            self._put_key(
                key,
                active_tasks=key.active_tasks + 1,
                reserved_micros=key.reserved_micros + amount,
            )
            self.spend[task.id] = (key.id, amount, False)
        if task.webhook_url is not None:
            base_url = submission.base_url if submission else ""
            delivery = tenancy.new_delivery(task, base_url)
            self.deliveries[delivery.id] = delivery

    def _finished(self, task_id: str, cost: int) -> None:
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

    def _by_id(self, key_id: str) -> ApiKey | None:
        return next((k for k in self.keys.values() if k.id == key_id), None)

    def _put_key(self, key: ApiKey, **changes: object) -> ApiKey:
        key = dataclasses.replace(key, **changes)  # type: ignore[arg-type]
        self.keys[key.key_hash] = key
        return key

    # -- keys

    async def add_key(self, key: ApiKey) -> None:
        self.keys[key.key_hash] = key

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        found = [k for k in self.keys.values() if tenant_id is None or k.tenant_id == tenant_id]
        return sorted(found, key=lambda k: (k.created_at, k.id))

    async def get_key_by_id(self, key_id: str) -> ApiKey | None:
        return self._by_id(key_id)

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
        tat, wait = tenancy.gcra(self.rates.get(key_id), utcnow().timestamp(), per_minute)
        if tat is not None:
            self.rates[key_id] = tat
        return wait

    # -- webhooks

    async def claim_deliveries(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[Delivery]:
        now = utcnow()
        due = sorted(
            (
                d
                for d in self.deliveries.values()
                if d.state == "pending"
                and d.next_attempt_at is not None
                and d.next_attempt_at <= now
                and (d.lease_expires_at is None or d.lease_expires_at < now)
            ),
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
        return next(
            (
                d
                for d in self.deliveries.values()
                if d.task_id == task_id and d.tenant_id == tenant_id
            ),
            None,
        )

    async def list_deliveries(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        after = decode_cursor(cursor) if cursor else None
        found = sorted(
            (
                d
                for d in self.deliveries.values()
                if d.tenant_id == tenant_id
                and (after is None or (d.created_at.timestamp(), d.id) < after)
            ),
            key=lambda d: (d.created_at.timestamp(), d.id),
            reverse=True,
        )
        page = found[:limit]
        more = len(found) > limit
        return page, encode_cursor(page[-1].created_at, page[-1].id) if more else None

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
