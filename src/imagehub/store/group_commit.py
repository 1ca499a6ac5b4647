"""PostgreSQL's group commit: the submits and finishes of one process, committed together.

Each submit and each finish is one statement that updates its key's row (the slot and the
money it reserves or settles) and, for a submit, its tenant's fair-queue row. Alone, each is
its own transaction, which holds those rows until its commit is on disk: one client's tasks,
all charged to one key, take turns at one row, and each turn waits for a WAL flush.

Here a write that finds fewer than `SLOTS` (two) transactions of them under way runs at once,
alone, as before. Writes that arrive while two are under way wait for one to end, then go
together: one transaction, one round trip, one commit, each key and fair-queue row locked
once.

A group first locks every row its writes will lock, each kind in sorted order (the finishing
tasks, the tenants' fair-queue rows, the keys): the order single writes take them in (a task
or a fair-queue row before a key), so two groups, or a group and a single write, never wait
for each other in a cycle. The statements that change many tasks at once (a worker's
heartbeat and release, the reaper) lock theirs in id order too. A group that fails whole (one
write's error undoes the others) runs again write by write, each reporting its own outcome:
every write in it may run twice, which the submit and the finish allow (see
`imagehub.store.postgres`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imagehub.store.connector import Locks, Params, Row

if TYPE_CHECKING:
    from imagehub.store.postgres import PostgresConnector

log = logging.getLogger("imagehub.store")

#: past this many writes a group takes no more: bounds how long its first write waits
MAX_GROUP = 256
#: transactions of submits and finishes at a time, alone or grouped
SLOTS = 2

_LOCK_TASKS = "SELECT 1 FROM tasks WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
_LOCK_PLACES = "SELECT 1 FROM fair_shares WHERE tenant_id = ANY(:ids) ORDER BY tenant_id FOR UPDATE"
_LOCK_KEYS = """
    SELECT 1 FROM api_keys WHERE id = ANY(:ids)
        OR id IN (SELECT key_id FROM spend WHERE task_id = ANY(:tasks) AND state = 'reserved')
    ORDER BY id FOR UPDATE"""


@dataclass(eq=False)
class _Write:
    sql: str
    params: Params
    locks: Locks
    future: asyncio.Future[Row | None]


class GroupCommit:
    """Submits and finishes of one process, at most `slots` transactions of them at a time."""

    def __init__(self, db: PostgresConnector, slots: int = SLOTS) -> None:
        self.db = db
        self.slots = slots
        self._waiting: list[_Write] = []
        self._running = 0
        #: set while no write runs (the store may close)
        self._idle = asyncio.Event()
        self._idle.set()
        #: the groups running, referenced until they end
        self._groups: set[asyncio.Task[None]] = set()

    async def fetch_one(self, sql: str, params: Params, locks: Locks) -> Row | None:
        """`sql`'s first row, committed alone or in the next group; `locks` names the rows
        the statement will lock."""
        if self._running < self.slots:
            self._running += 1
            self._idle.clear()
            try:
                return await self.db.fetch_one(sql, params)
            finally:
                self._next()
        write = _Write(sql, params, locks, asyncio.get_running_loop().create_future())
        self._waiting.append(write)
        return await write.future

    async def drain(self) -> None:
        """Wait until every write handed over has its outcome."""
        await self._idle.wait()

    def _next(self) -> None:
        """A write or group is done: its slot goes to the next group, if writes wait."""
        if not self._waiting:
            self._running -= 1
            if not self._running:
                self._idle.set()
            return
        writes, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
        group = asyncio.create_task(self._commit(writes))
        self._groups.add(group)
        group.add_done_callback(self._groups.discard)

    async def _commit(self, writes: list[_Write]) -> None:
        try:
            if len(writes) == 1:
                await _alone(self.db, writes[0])
            else:
                await self._together(writes)
        finally:
            for write in writes:  # cancelled (the store closing under it): nothing is known
                write.future.cancel()
            self._next()

    async def _together(self, writes: list[_Write]) -> None:
        named = [w.locks for w in writes]
        tasks = sorted({n.task_id for n in named if n.task_id is not None})
        tenants = sorted({n.tenant_id for n in named if n.tenant_id is not None})
        keys = sorted({n.key_id for n in named if n.key_id is not None})
        settled = [n.task_id for n in named if n.settles and n.task_id is not None]
        locks: list[tuple[str, Params]] = []
        if tasks:
            locks.append((_LOCK_TASKS, {"ids": tasks}))
        if tenants:
            locks.append((_LOCK_PLACES, {"ids": tenants}))
        if keys or settled:
            locks.append((_LOCK_KEYS, {"ids": keys, "tasks": settled}))
        statements = locks + [(w.sql, w.params) for w in writes]
        try:
            rows = await self.db.fetch_each(statements)
        except Exception as exc:  # one write failed, or the group could not commit
            log.debug("a group of %d writes ran again one by one: %s", len(writes), exc)
            await asyncio.gather(*(_alone(self.db, w) for w in writes))
            return
        for write, row in zip(writes, rows[len(locks) :], strict=True):
            if not write.future.done():
                write.future.set_result(row)


async def _alone(db: PostgresConnector, write: _Write) -> None:
    """`write` as its own transaction; its outcome, error included, goes to its waiter."""
    try:
        row = await db.fetch_one(write.sql, write.params)
    except Exception as exc:
        if not write.future.done():
            write.future.set_exception(exc)
        return
    if not write.future.done():
        write.future.set_result(row)
