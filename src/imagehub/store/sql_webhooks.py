"""The webhook outbox and signing secrets over a connector."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from imagehub.store.base import DeliveryFilter, decode_cursor, encode_cursor
from imagehub.store.connector import BaseConnector, Executor
from imagehub.store.rows import (
    DELIVERY_COLUMNS,
    DELIVERY_FIELDS,
    SECRET_COLUMNS,
    SECRET_FIELDS,
    delivery_from_row,
    delivery_row,
    history_json,
    insert,
    secret_from_row,
    secret_row,
    ts,
)
from imagehub.tasks import utcnow
from imagehub.webhooks.types import Delivery, WebhookSecret

_SELECT = f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
_INSERT = insert("webhook_deliveries", DELIVERY_FIELDS)
_ACTIVATE = """
    UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = {now}
    WHERE task_id = :task_id AND state = 'waiting'"""
_CLAIM = f"""
    UPDATE webhook_deliveries SET lease_owner = :owner,
        lease_expires_at = {{now}} + :lease_seconds,
        lease_token = lease_token + 1, attempts = attempts + 1
    WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending'
                 AND next_attempt_at <= {{now}}
                 AND (lease_expires_at IS NULL OR lease_expires_at < {{now}})
                 ORDER BY next_attempt_at LIMIT :limit{{skip_locked}})
    RETURNING {DELIVERY_COLUMNS}"""
_FINISH = """
    UPDATE webhook_deliveries SET state = :state, next_attempt_at = :next_attempt_at,
        history = :history, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = :id AND lease_token = :lease_token AND lease_owner = :lease_owner
        AND state = 'pending'"""
_RETRY = f"""
    UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = {{now}},
        lease_owner = NULL, lease_expires_at = NULL, lease_token = lease_token + 1
    WHERE id = :id AND state IN ('pending', 'failed')
        AND (lease_expires_at IS NULL OR lease_expires_at < {{now}})
    RETURNING {DELIVERY_COLUMNS}"""
#: what each delivery filter selects
_STATES = {
    "failing": "(state = 'failed' OR (state = 'pending' AND attempts > 0))",
    **{s: f"state = '{s}'" for s in ("waiting", "pending", "succeeded", "failed")},
}
_SECRETS = f"""
    SELECT {SECRET_COLUMNS} FROM webhook_secrets
    WHERE tenant_id = :tenant_id AND (expires_at IS NULL OR expires_at > {{now}})
    ORDER BY created_at DESC"""
_INSERT_SECRET = insert("webhook_secrets", SECRET_FIELDS)
_DROP_EXPIRED = "DELETE FROM webhook_secrets WHERE tenant_id = :tenant_id AND expires_at <= :at"
_EXPIRE = """
    UPDATE webhook_secrets SET expires_at = :until
    WHERE tenant_id = :tenant_id AND (expires_at IS NULL OR expires_at > :until)"""


async def add_delivery(tx: Executor, delivery: Delivery) -> None:
    await tx.send(_INSERT, delivery_row(delivery))


async def activate(tx: Executor, task_id: str) -> None:
    """Make a final task's waiting delivery due now."""
    await tx.send(_ACTIVATE, {"task_id": task_id})


class SQLWebhooks:
    """`DeliveryStore` over a connector."""

    db: BaseConnector

    async def claim_deliveries(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[Delivery]:
        args = {"owner": owner, "lease_seconds": lease_seconds, "limit": limit}
        return [delivery_from_row(row) for row in await self.db.fetch_all(_CLAIM, args)]

    async def finish_delivery(self, delivery: Delivery) -> bool:
        d = delivery
        args = {
            "state": d.state,
            "next_attempt_at": ts(d.next_attempt_at),
            "history": history_json(d.history),
            "id": d.id,
            "lease_token": d.lease_token,
            "lease_owner": d.lease_owner,
        }
        return bool(await self.db.execute(_FINISH, args))

    async def get_delivery(self, task_id: str, tenant_id: str) -> Delivery | None:
        where = " WHERE task_id = :task_id AND tenant_id = :tenant_id"
        row = await self.db.fetch_one(_SELECT + where, {"task_id": task_id, "tenant_id": tenant_id})
        return delivery_from_row(row) if row else None

    async def list_deliveries(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        where, args = "tenant_id = :tenant_id", {"tenant_id": tenant_id, "limit": limit + 1}
        if cursor is not None:
            args["created"], args["last_id"] = decode_cursor(cursor)
            where += " AND (created_at < :created OR (created_at = :created AND id < :last_id))"
        query = f"{_SELECT} WHERE {where} ORDER BY created_at DESC, id DESC LIMIT :limit"
        rows = await self.db.fetch_all(query, args)
        found = [delivery_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return found, encode_cursor(found[-1].created_at, found[-1].id) if more else None

    async def find_deliveries(
        self,
        *,
        tenant_id: str | None = None,
        state: DeliveryFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Delivery], str | None]:
        clauses: list[str] = []
        args: dict[str, Any] = {"limit": limit + 1}
        if tenant_id is not None:
            clauses.append("tenant_id = :tenant_id")
            args["tenant_id"] = tenant_id
        if state is not None:
            clauses.append(_STATES[state])
        if cursor is not None:
            args["created"], args["last_id"] = decode_cursor(cursor)
            clauses.append("(created_at < :created OR (created_at = :created AND id < :last_id))")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"{_SELECT}{where} ORDER BY created_at DESC, id DESC LIMIT :limit"
        rows = await self.db.fetch_all(query, args)
        found = [delivery_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return found, encode_cursor(found[-1].created_at, found[-1].id) if more else None

    async def get_delivery_by_id(self, delivery_id: str) -> Delivery | None:
        row = await self.db.fetch_one(_SELECT + " WHERE id = :id", {"id": delivery_id})
        return delivery_from_row(row) if row else None

    async def retry_delivery(self, delivery_id: str) -> Delivery | None:
        row = await self.db.fetch_one(_RETRY, {"id": delivery_id})
        return delivery_from_row(row) if row else None

    async def webhook_secrets(self, tenant_id: str) -> list[WebhookSecret]:
        rows = await self.db.fetch_all(_SECRETS, {"tenant_id": tenant_id})
        return [secret_from_row(row) for row in rows]

    async def _locked(self, tx: Executor, tenant_id: str) -> dict[str, Any]:
        """Serialise the writers of a tenant's secrets, where the engine needs it."""
        args = {"tenant_id": tenant_id}
        lock = self.db.dialect.secret_lock
        if lock is not None:
            await tx.send(lock, args)
        return args

    async def ensure_webhook_secret(self, secret: WebhookSecret) -> list[WebhookSecret]:
        async def ensure(tx: Executor) -> None:
            args = await self._locked(tx, secret.tenant_id)
            if await tx.fetch_one(_SECRETS, args) is None:
                await tx.send(_INSERT_SECRET, secret_row(secret))

        await self.db.transaction(ensure)
        return await self.webhook_secrets(secret.tenant_id)

    async def rotate_webhook_secret(
        self, secret: WebhookSecret, overlap_seconds: float
    ) -> list[WebhookSecret]:
        now = utcnow()
        until = (now + timedelta(seconds=overlap_seconds)).timestamp()

        async def rotate(tx: Executor) -> None:
            args = await self._locked(tx, secret.tenant_id)
            await tx.send(_DROP_EXPIRED, {**args, "at": now.timestamp()})
            await tx.send(_EXPIRE, {**args, "until": until})
            await tx.send(_INSERT_SECRET, secret_row(secret))

        await self.db.transaction(rotate)
        return await self.webhook_secrets(secret.tenant_id)
