"""Keys and their limits over a connector, and the spend moves a task's transaction makes.

Counters move by guarded single-statement updates (`... WHERE active_tasks <
concurrency_limit`), which PostgreSQL re-checks on the row it locks and SQLite's single writer
runs alone, so concurrent submits never overshoot a limit.
"""

from __future__ import annotations

from typing import Any

from imagehub.store.base import gcra
from imagehub.store.connector import BaseConnector, Executor
from imagehub.store.rows import KEY_COLUMNS, KEY_FIELDS, insert, key_from_row, key_row
from imagehub.tasks import utcnow
from imagehub.tenancy.types import ApiKey, OverLimit

_SELECT = f"SELECT {KEY_COLUMNS} FROM api_keys"
_INSERT = insert("api_keys", KEY_FIELDS)
_COUNT = "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"
_REVOKE = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, :now_at) WHERE id = :id"
_RESTORE = "UPDATE api_keys SET revoked_at = NULL, admin = 1 WHERE id = :id"
_SET_LIMITS = """
    UPDATE api_keys SET rpm_limit = :rpm_limit, concurrency_limit = :concurrency_limit,
        budget_micros = :budget_micros
    WHERE id = :id"""
#: a key's limits allow one more task, estimated at :amount
ROOM = """(concurrency_limit IS NULL OR active_tasks < concurrency_limit)
        AND (budget_micros IS NULL OR spent_micros + reserved_micros + :amount <= budget_micros)"""
#: one slot and the estimate, only if the key's limits allow them
_RESERVE = f"""
    UPDATE api_keys SET active_tasks = active_tasks + 1,
        reserved_micros = reserved_micros + :amount
    WHERE id = :key_id AND {ROOM}"""
_INSERT_SPEND = """
    INSERT INTO spend (task_id, key_id, reserved_micros, state)
    VALUES (:task_id, :key_id, :amount, 'reserved')"""
#: a settle's two statements read nothing back, so a transaction sends them with its COMMIT:
#: the key first, from the spend row still reserved; then that row. The task's row, changed
#: first in the same transaction, keeps concurrent settles of one task apart.
_SETTLE_KEY = """
    UPDATE api_keys SET active_tasks = active_tasks - 1,
        reserved_micros = reserved_micros - (SELECT s.reserved_micros FROM spend AS s
            WHERE s.task_id = :task_id AND s.state = 'reserved'),
        spent_micros = spent_micros + :cost
    WHERE id = (SELECT s.key_id FROM spend AS s
        WHERE s.task_id = :task_id AND s.state = 'reserved')"""
_SETTLE = """
    UPDATE spend SET state = 'settled', cost_micros = :cost
    WHERE task_id = :task_id AND state = 'reserved'"""
#: a hit within the minute's allowance moves the TAT on; a refused one changes nothing
_RATE = """
    INSERT INTO rate_limits (key_id, tat) VALUES (:key_id, {now} + :interval)
    ON CONFLICT (key_id) DO UPDATE SET tat = {greatest}(rate_limits.tat, {now}) + :interval
    WHERE {greatest}(rate_limits.tat, {now}) + :interval - {now} <= 60
    RETURNING tat"""
_RATE_WAIT = "SELECT tat, {now} FROM rate_limits WHERE key_id = :key_id"


async def reserve(tx: Executor, task_id: str, key_id: str, amount: int) -> None:
    """Take a slot and `amount` of the key's budget for a task; OverLimit if refused."""
    args = {"task_id": task_id, "key_id": key_id, "amount": amount}
    if await tx.execute(_RESERVE, args):
        await tx.send(_INSERT_SPEND, args)
        return
    await refuse(tx, key_id)


async def refuse(tx: Executor, key_id: str) -> None:
    """OverLimit for a key whose limits refused a task, with the limit that did."""
    row = await tx.fetch_one(f"{_SELECT} WHERE id = :id", {"id": key_id})
    if row is None:
        return  # not a stored key: nothing to count against
    key = key_from_row(row)
    limit = key.concurrency_limit
    full = limit is not None and key.active_tasks >= limit
    raise OverLimit("concurrency" if full else "budget", key)


async def settle(tx: Executor, task_id: str, cost: int) -> None:
    """Free a final task's slot and charge its cost instead of its reservation (once)."""
    args = {"cost": cost, "task_id": task_id}
    await tx.send(_SETTLE_KEY, args)
    await tx.send(_SETTLE, args)


class SQLKeys:
    """`KeyStore` over a connector."""

    db: BaseConnector

    async def _keys(self, where: str = "", args: dict[str, Any] | None = None) -> list[ApiKey]:
        rows = await self.db.fetch_all(f"{_SELECT} {where} ORDER BY created_at, id", args or {})
        return [key_from_row(row) for row in rows]

    async def add_key(self, key: ApiKey) -> None:
        await self.db.execute(_INSERT, key_row(key))

    async def get_key(self, key_hash: str) -> ApiKey | None:
        found = await self._keys("WHERE key_hash = :key_hash", {"key_hash": key_hash})
        return found[0] if found else None

    async def get_key_by_id(self, key_id: str) -> ApiKey | None:
        found = await self._keys("WHERE id = :id", {"id": key_id})
        return found[0] if found else None

    async def count_keys(self) -> int:
        row = await self.db.fetch_one(_COUNT)
        return int(row[0]) if row else 0

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        if tenant_id is None:
            return await self._keys()
        return await self._keys("WHERE tenant_id = :tenant_id", {"tenant_id": tenant_id})

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        await self.db.execute(_REVOKE, {"now_at": utcnow().timestamp(), "id": key_id})
        return await self.get_key_by_id(key_id)

    async def restore_key(self, key_id: str) -> ApiKey | None:
        await self.db.execute(_RESTORE, {"id": key_id})
        return await self.get_key_by_id(key_id)

    async def set_key_limits(
        self,
        key_id: str,
        *,
        rpm_limit: int | None,
        concurrency_limit: int | None,
        budget_micros: int | None,
    ) -> ApiKey | None:
        limits = {
            "rpm_limit": rpm_limit,
            "concurrency_limit": concurrency_limit,
            "budget_micros": budget_micros,
        }
        await self.db.execute(_SET_LIMITS, {**limits, "id": key_id})
        return await self.get_key_by_id(key_id)

    async def rate_hit(self, key_id: str, per_minute: int) -> float:
        args = {"key_id": key_id, "interval": 60.0 / per_minute}
        if await self.db.fetch_one(_RATE, args) is not None:
            return 0.0
        row = await self.db.fetch_one(_RATE_WAIT, args)
        return 0.0 if row is None else gcra(row[0], row[1], per_minute)[1]
