"""Tasks over a connector: the queue is the task table, written once for every SQL engine."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from imagehub.store.base import (
    Lease,
    RouteState,
    TaskFilter,
    UsageRow,
    cost_micros,
    decode_cursor,
    encode_cursor,
    handed_off,
    journal,
    new_delivery,
    usage_row,
)
from imagehub.store.connector import BaseConnector, Executor, Locks, Params, Row
from imagehub.store.rows import (
    ATTEMPT_COLUMNS,
    ATTEMPT_FIELDS,
    DELIVERY_FIELDS,
    TASK_COLUMNS,
    TASK_FIELDS,
    attempt_from_row,
    attempt_row,
    delivery_row,
    dt,
    dumps,
    failure_json,
    insert,
    outcome_row,
    partials_json,
    task_from_row,
    task_row,
)
from imagehub.store.sql_keys import ROOM, refuse, reserve, settle
from imagehub.store.sql_webhooks import activate, add_delivery
from imagehub.tasks import (
    CANCELED_ERROR,
    LOST_WORKER_ERROR,
    Attempt,
    DuplicateTask,
    Page,
    QueueStats,
    Task,
    TaskStatus,
)
from imagehub.tenancy.types import Submission

_SELECT = f"SELECT {TASK_COLUMNS} FROM tasks"
#: a clash on the idempotency key inserts nothing and returns no row; the place is the one
#: `_FAIR_PLACE` just gave the tenant, read here so both travel in one round trip
_INSERT = (
    insert("tasks", [*TASK_FIELDS, "fair_at"]).replace(
        ":fair_at", "(SELECT last_fair FROM fair_shares WHERE tenant_id = :tenant_id)"
    )
    + """
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id"""
)
#: a hand-off: the task stored running and leased to :owner, as a claim leases (on the
#: database's clock), unless a queued task is due (one probe of the tasks_fair index): then
#: queued as by `_INSERT`, so a hand-off never passes a waiting task
_RUNNING = "NOT (SELECT due FROM q)"
_DUE = (
    "q AS (SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'queued'"
    " AND run_after <= {now}) AS due)"
)
_LEASED = {
    "status": f"CASE WHEN {_RUNNING} THEN 'running' ELSE 'queued' END",
    "attempts": f"CASE WHEN {_RUNNING} THEN :attempts + 1 ELSE :attempts END",
    "started_at": f"CASE WHEN {_RUNNING} THEN {{now}} END",
    "lease_owner": f"CASE WHEN {_RUNNING} THEN :owner END",
    "lease_expires_at": f"CASE WHEN {_RUNNING} THEN {{now}} + :lease_seconds END",
    "lease_token": f"CASE WHEN {_RUNNING} THEN :lease_token + 1 ELSE :lease_token END",
}
_HAND_OFF = (
    f"WITH {_DUE} "
    + insert(
        "tasks",
        [*TASK_FIELDS, "fair_at"],
        {**_LEASED, "fair_at": "(SELECT last_fair FROM fair_shares WHERE tenant_id = :tenant_id)"},
    )
    + """
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING status, started_at, lease_expires_at"""
)
_CLAIM = f"""
    UPDATE tasks SET status = 'running', lease_owner = :owner,
        lease_expires_at = {{now}} + :lease_seconds,
        lease_token = lease_token + 1, attempts = attempts + 1,
        started_at = COALESCE(started_at, {{now}}), partials = '[]'
    WHERE id IN (SELECT id FROM tasks WHERE status = 'queued' AND run_after <= {{now}}
                 ORDER BY fair_at, created_at LIMIT :limit{{skip_locked}})
    RETURNING {TASK_COLUMNS}, fair_at"""
#: the queue's virtual clock (`base.fair_place`): read, never written, so a claim writes no more
_CLOCK = """COALESCE(
        (SELECT fair_at - 1 FROM tasks WHERE status = 'queued' AND run_after <= {now}
         ORDER BY fair_at LIMIT 1),
        (SELECT MAX(last_fair) FROM fair_shares), 0)"""
#: a submit's place in the fair queue (`base.fair_place`), kept as the tenant's last place;
#: a tenant's first row has weight 1 and last place 0
_FAIR_TAKEN = f"""
    ON CONFLICT (tenant_id) DO UPDATE SET
        last_fair = {{greatest}}(fair_shares.last_fair, {_CLOCK}) + 1.0 / fair_shares.weight"""
_FAIR_PLACE = f"""
    INSERT INTO fair_shares (tenant_id, last_fair) VALUES (:tenant_id, {_CLOCK} + 1.0)
    {_FAIR_TAKEN}"""
#: a submit as one statement where a WITH clause may write (PostgreSQL): one round trip, one
#: commit. If its key is stored and its limits have no room (as the statement's snapshot sees
#: them), nothing is written and `go` says so. Else the fair place, the task (as `_INSERT`, or
#: leased as `_HAND_OFF`) and, only if the task was inserted, the key's reservation: a guarded
#: update, which re-checks the limits on the row it locks (a concurrent submit may have taken
#: the last slot meanwhile: it then reserves nothing, and the spend row, whose key it names,
#: breaks its NOT NULL and the whole statement with it; `PostgresStore` runs it again), the
#: spend row and the delivery. The key's row is locked last and by its update alone: one
#: key's submits and finishes wait for each other on it. Any clash inserts nothing: one on
#: the idempotency key, or on the task's id when a first run's answer was lost with its
#: connection and the run retried.
_SUBMIT_KEY = f"""
    known AS (SELECT {ROOM} AS room FROM api_keys WHERE id = :key_id),
    ok AS (SELECT :key_id IS NULL OR COALESCE((SELECT room FROM known), true) AS go),
    fair AS (INSERT INTO fair_shares (tenant_id, last_fair)
        SELECT :tenant_id, {_CLOCK} + 1.0 FROM ok WHERE ok.go
        {_FAIR_TAKEN}
        RETURNING last_fair)"""
_SUBMIT_SPEND = f"""
    key AS (UPDATE api_keys SET active_tasks = active_tasks + 1,
            reserved_micros = reserved_micros + :amount
        WHERE id = :key_id AND {ROOM} AND EXISTS (SELECT 1 FROM task) RETURNING id),
    spent AS (INSERT INTO spend (task_id, key_id, reserved_micros, state)
        SELECT :id, (SELECT id FROM key), :amount, 'reserved' FROM task
        WHERE EXISTS (SELECT 1 FROM known))"""
_SUBMIT_END = """
    SELECT ok.go, task.status, task.started_at, task.lease_expires_at
    FROM ok LEFT JOIN task ON true"""
_SET_PRIORITY = """
    INSERT INTO fair_shares (tenant_id, weight) VALUES (:tenant_id, :weight)
    ON CONFLICT (tenant_id) DO UPDATE SET weight = :weight"""
#: a queued task's place and the tasks a claim takes before it: a range of the fair queue's
#: index, counted up to :at_most at most
_PLACE = """
    SELECT mine.fair_at, mine.created_at, (SELECT COUNT(*) FROM (
            SELECT 1 FROM tasks AS ahead
            WHERE ahead.status = 'queued' AND ahead.fair_at <= mine.fair_at
                AND (ahead.fair_at < mine.fair_at OR ahead.created_at < mine.created_at)
            LIMIT :at_most) AS ahead)
    FROM tasks AS mine WHERE mine.id = :id AND mine.status = 'queued'"""
#: the same, counted only when fewer than :at_most are ahead: the queue's :at_most-th task, one
#: walk of the index, says so first; a deep task's count would read :at_most rows on every read
_PLACE_NEAR = """
    SELECT mine.fair_at, mine.created_at, CASE WHEN EXISTS (
            SELECT 1 FROM (
                SELECT fair_at, created_at FROM tasks WHERE status = 'queued'
                ORDER BY fair_at, created_at LIMIT 1 OFFSET :at_most - 1) AS edge
            WHERE edge.fair_at < mine.fair_at
                OR (edge.fair_at = mine.fair_at AND edge.created_at < mine.created_at))
        THEN :at_most
        ELSE (SELECT COUNT(*) FROM (
            SELECT 1 FROM tasks AS ahead
            WHERE ahead.status = 'queued' AND ahead.fair_at <= mine.fair_at
                AND (ahead.fair_at < mine.fair_at OR ahead.created_at < mine.created_at)
            LIMIT :at_most) AS ahead) END
    FROM tasks AS mine WHERE mine.id = :id AND mine.status = 'queued'"""
_PLACES = """
    SELECT fair_at, created_at FROM tasks WHERE status = 'queued'
    ORDER BY fair_at, created_at LIMIT :limit"""
#: "no limit" to a count: more tasks than a queue holds
_ALL = 2**62
#: the rows of statements that change many tasks are locked in id order, the order a group
#: commit locks those it finishes (`group_commit`): neither waits for a row the other holds
#: while holding one the other waits for
_OWNED = """id IN (SELECT id FROM tasks WHERE lease_owner = :owner AND status = 'running'
        ORDER BY id{for_update}) AND lease_owner = :owner AND status = 'running'"""
_HEARTBEAT = f"""
    UPDATE tasks SET lease_expires_at = {{now}} + :lease_seconds
    WHERE {_OWNED} RETURNING id"""
_FINISH = """
    UPDATE tasks SET status = :status, output = :output, error = :error, provider = :provider,
        warnings = :warnings, usage = :usage, finished_at = :finished_at, run_after = :run_after,
        lease_owner = NULL, lease_expires_at = NULL, partials = :partials
    WHERE id = :id AND lease_token = :lease_token AND status = 'running'"""
#: the journal rows' fields, read from JSON (columns added later keep their defaults)
_JOURNAL_FIELDS = ", ".join(f"r.{name}" for name in ATTEMPT_FIELDS)
#: a finish as one statement where a WITH clause may write: the outcome, fenced by the lease
#: token; only if it was written, the journal rows (JSON, typed by the table's own row type)
#: and, for a final status, the spend settled, the key's slot freed, the webhook made due.
#: The task's row, locked first, keeps concurrent final writes of one task apart.
_FINISH_ALL = f"""
    WITH done AS ({_FINISH} RETURNING id),
    journal AS (INSERT INTO attempts ({ATTEMPT_COLUMNS})
        SELECT {_JOURNAL_FIELDS} FROM done, json_populate_recordset(NULL::attempts, :journal) AS r),
    keys AS (UPDATE api_keys SET active_tasks = active_tasks - 1,
            reserved_micros = api_keys.reserved_micros - s.reserved_micros,
            spent_micros = spent_micros + :cost
        FROM done, spend AS s
        WHERE :ready AND s.task_id = done.id AND s.state = 'reserved' AND api_keys.id = s.key_id),
    spent AS (UPDATE spend SET state = 'settled', cost_micros = :cost FROM done
        WHERE :ready AND spend.task_id = done.id AND spend.state = 'reserved'),
    hook AS (UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = {{now}} FROM done
        WHERE :ready AND webhook_deliveries.task_id = done.id
            AND webhook_deliveries.state = 'waiting')
    SELECT count(*) FROM done"""
_PARTIALS = """
    UPDATE tasks SET partials = :partials
    WHERE id = :id AND lease_token = :lease_token AND status = 'running'"""
_RELEASE = f"""
    UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
        run_after = {{now}}, partials = '[]'
    WHERE {_OWNED}"""
_REAP = f"""
    UPDATE tasks SET
        status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
        error = CASE WHEN attempts >= max_attempts THEN :error ELSE error END,
        finished_at = CASE WHEN attempts >= max_attempts THEN {{now}} ELSE NULL END,
        run_after = {{now}}, lease_owner = NULL, lease_expires_at = NULL, partials = '[]'
    WHERE id IN (SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < {{now}}
                 ORDER BY id{{for_update}})
        AND status = 'running' AND lease_expires_at < {{now}}
    RETURNING {TASK_COLUMNS}"""
_CANCEL = """
    UPDATE tasks SET status = 'canceled', finished_at = {now}, lease_owner = NULL,
        lease_expires_at = NULL, error = :error, partials = '[]'
    WHERE id = :id AND tenant_id = :tenant_id AND status IN ('queued', 'running')"""
_INSERT_ATTEMPT = insert("attempts", ATTEMPT_FIELDS)
_ATTEMPTS = f"""
    SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE task_id = :task_id
    ORDER BY started_at, finished_at"""
_PUBLISH_ROUTE = """
    INSERT INTO route_states (process_id, route, model, state, updated_at)
    VALUES (:process_id, :route, :model, :state, :updated_at)
    ON CONFLICT (process_id, route, model)
    DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"""
#: a process's rows older than this are dropped (it stopped long ago)
ROUTE_STATE_KEEP_SECONDS = 3600.0
#: each half reads one partial index (tasks_fair, tasks_leases): cheap however long the history
_QUEUE = """
    SELECT model, 'queued', COUNT(*),
        {now} - MIN(CASE WHEN run_after <= {now} THEN run_after END)
    FROM tasks WHERE status = 'queued' GROUP BY model
    UNION ALL
    SELECT model, 'running', COUNT(*), NULL FROM tasks WHERE status = 'running' GROUP BY model"""
_BACKLOG = """
    SELECT COUNT(*), {now} - MIN(CASE WHEN next_attempt_at <= {now} THEN next_attempt_at END)
    FROM webhook_deliveries WHERE state = 'pending'"""
_PURGE = "UPDATE tasks SET output = {purged_output} WHERE id = :id AND output IS NOT NULL"


@functools.cache
def _submit(hand_off: bool, webhook: bool) -> str:
    """PostgreSQL's one-statement submit (`_SUBMIT_KEY`), queued or handed off, with or
    without a webhook delivery (its parameters are the delivery's fields, prefixed `hook_`)."""
    values = {**(_LEASED if hand_off else {}), "fair_at": "fair.last_fair"}
    source = "fair, q" if hand_off else "fair"
    task = insert("tasks", [*TASK_FIELDS, "fair_at"], values, source)
    parts = [_SUBMIT_KEY]
    if hand_off:
        parts.append(_DUE)
    parts.append(
        f"task AS ({task} ON CONFLICT DO NOTHING RETURNING status, started_at, lease_expires_at)"
    )
    parts.append(_SUBMIT_SPEND)
    if webhook:
        hook = {name: f":hook_{name}" for name in DELIVERY_FIELDS}
        delivery = insert("webhook_deliveries", DELIVERY_FIELDS, hook, "task")
        parts.append(f"hook AS ({delivery})")
    return "WITH " + ",\n".join(parts) + _SUBMIT_END


def _as_stored(
    task: Task, lease: Lease | None, status: str, started_at: Any, expires_at: Any
) -> Task:
    """The submitted task as its insert stored it: queued, or handed off to `lease`'s worker
    (its times the database clock's, as the insert returned them)."""
    if lease is None or status != TaskStatus.RUNNING:
        return task
    return handed_off(task, lease, _when(started_at)).replace(lease_expires_at=_when(expires_at))


async def finished(tx: Executor, task_id: str, cost: int, webhooks: bool = True) -> None:
    """What a task's change to a final status writes with it: its spend and its webhook.

    `webhooks=False` when the task has no webhook_url: one statement less.
    """
    await settle(tx, task_id, cost)
    if webhooks:
        await activate(tx, task_id)


def history_query(
    tenant_id: str,
    model: str | None,
    status: TaskStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """The history page's SELECT: one row more than `limit`, to tell if a next page exists."""
    where, args = ["tenant_id = :tenant_id"], {"tenant_id": tenant_id, "limit": limit + 1}
    if model is not None:
        where.append("model = :model")
        args["model"] = model
    if status is not None:
        where.append("status = :status")
        args["status"] = status.value
    if cursor is not None:
        args["created"], args["last_id"] = decode_cursor(cursor)
        where.append("(created_at < :created OR (created_at = :created AND id < :last_id))")
    clauses = " AND ".join(where)
    return f"{_SELECT} WHERE {clauses} ORDER BY created_at DESC, id DESC LIMIT :limit", args


def find_query(where: TaskFilter, cursor: str | None, limit: int) -> tuple[str, dict[str, Any]]:
    """An operator's SELECT of every tenant's tasks: one row more than `limit`."""
    clauses: list[str] = []
    args: dict[str, Any] = {"limit": limit + 1}
    for name in ("tenant_id", "model", "provider"):
        value = getattr(where, name)
        if value is not None:
            clauses.append(f"{name} = :{name}")
            args[name] = value
    if where.status is not None:
        clauses.append("status = :status")
        args["status"] = where.status.value
    if where.since is not None:
        clauses.append("created_at >= :since")
        args["since"] = where.since.timestamp()
    if where.until is not None:
        clauses.append("created_at < :until")
        args["until"] = where.until.timestamp()
    if cursor is not None:
        args["created"], args["last_id"] = decode_cursor(cursor)
        clauses.append("(created_at < :created OR (created_at = :created AND id < :last_id))")
    filtered = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"{_SELECT}{filtered} ORDER BY created_at DESC, id DESC LIMIT :limit", args


class SQLTasks:
    """`TaskStore` over a connector."""

    db: BaseConnector

    async def create(
        self, task: Task, submission: Submission | None = None, lease: Lease | None = None
    ) -> Task:
        if self.db.dialect.writing_with:
            stored = await self._create_at_once(task, submission, lease)
        else:
            stored = await self._create_in_transaction(task, submission, lease)
        if stored is not None:
            return stored
        row = await self.db.fetch_one(
            f"{_SELECT} WHERE id = :id OR (tenant_id = :tenant_id AND idempotency_key = :key)",
            {"id": task.id, "tenant_id": task.tenant_id, "key": task.idempotency_key},
        )
        if row is None:  # rows are never deleted: a clash always finds its task
            raise RuntimeError(f"task {task.id} clashed with a task that no longer exists")
        if row[0] == task.id:  # stored by a first run whose answer was lost (PostgreSQL)
            return task_from_row(row)
        raise DuplicateTask(task_from_row(row))

    async def _create_at_once(
        self, task: Task, submission: Submission | None, lease: Lease | None
    ) -> Task | None:
        """The submit as one statement (`_submit`); None if it clashed."""
        key_id = submission.key_id if submission else None
        args: dict[str, Any] = {
            **task_row(task),
            "key_id": key_id,
            "amount": submission.reserve_micros if submission else 0,
        }
        if lease is not None:
            args.update(owner=lease.owner, lease_seconds=lease.seconds)
        if task.webhook_url is not None:
            delivery = new_delivery(task, submission.base_url if submission else "")
            args.update({f"hook_{name}": value for name, value in delivery_row(delivery).items()})
        statement = _submit(lease is not None, task.webhook_url is not None)
        row = await self._write_one(statement, args, Locks(task.tenant_id, key_id))
        assert row is not None  # the statement's last SELECT always has its one row
        go, status, started_at, expires_at = row
        if not go:
            assert key_id is not None
            await refuse(self.db, key_id)
            raise AssertionError(f"key {key_id} refused a task, then was not found")
        if status is None:
            return None
        return _as_stored(task, lease, status, started_at, expires_at)

    async def _write_one(self, sql: str, params: Params, locks: Locks) -> Row | None:
        """A submit or finish as one statement (`locks`: for PostgreSQL's group commit)."""
        return await self.db.fetch_one(sql, params)

    async def _create_in_transaction(
        self, task: Task, submission: Submission | None, lease: Lease | None
    ) -> Task | None:
        """The submit as a transaction of several statements; None if it clashed."""

        async def insert(tx: Executor) -> Task | None:
            await tx.send(_FAIR_PLACE, {"tenant_id": task.tenant_id})
            if lease is None:
                if await tx.fetch_one(_INSERT, task_row(task)) is None:
                    return None
                stored = task
            else:
                args = {**task_row(task), "owner": lease.owner, "lease_seconds": lease.seconds}
                row = await tx.fetch_one(_HAND_OFF, args)
                if row is None:
                    return None
                stored = _as_stored(task, lease, *row)
            await self._submitted(tx, task, submission)
            return stored

        return await self.db.transaction(insert)

    @staticmethod
    async def _submitted(tx: Executor, task: Task, submission: Submission | None) -> None:
        """What a submit writes after its task row: the key's reservation, the delivery."""
        if submission is not None and submission.key_id is not None:
            await reserve(tx, task.id, submission.key_id, submission.reserve_micros)
        if task.webhook_url is not None:
            base_url = submission.base_url if submission else ""
            await add_delivery(tx, new_delivery(task, base_url))

    async def get(self, task_id: str, tenant_id: str | None = None) -> Task | None:
        row = await self.db.fetch_one(f"{_SELECT} WHERE id = :id", {"id": task_id})
        if row is None or (tenant_id is not None and row[1] != tenant_id):
            return None
        return task_from_row(row)

    async def list_tasks(
        self,
        tenant_id: str,
        *,
        model: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        query, args = history_query(tenant_id, model, status, cursor, limit)
        rows = await self.db.fetch_all(query, args)
        tasks = [task_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(tasks, encode_cursor(tasks[-1].created_at, tasks[-1].id) if more else None)

    async def find_tasks(
        self, where: TaskFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        query, args = find_query(where, cursor, limit)
        rows = await self.db.fetch_all(query, args)
        tasks = [task_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(tasks, encode_cursor(tasks[-1].created_at, tasks[-1].id) if more else None)

    async def usage_rows(self, since: datetime, until: datetime, limit: int) -> list[UsageRow]:
        rows = await self.db.fetch_all(
            "SELECT created_at, finished_at, status, model, tenant_id, provider, usage, output,"
            " input FROM tasks WHERE created_at >= :since AND created_at < :until"
            " ORDER BY created_at DESC, id DESC LIMIT :limit",
            {"since": since.timestamp(), "until": until.timestamp(), "limit": limit},
        )
        return [usage_row(*row) for row in rows]

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Task]:
        args = {"owner": owner, "lease_seconds": lease_seconds, "limit": limit}
        rows = await self.db.fetch_all(_CLAIM, args)
        rows.sort(key=lambda row: (row[-1], row[16]))  # fair order: place, then submit time
        return [task_from_row(row) for row in rows]

    async def heartbeat(self, owner: str, lease_seconds: float) -> set[str]:
        args = {"owner": owner, "lease_seconds": lease_seconds}
        return {row[0] for row in await self.db.fetch_all(_HEARTBEAT, args)}

    async def finish(self, task: Task, attempt: Attempt | Sequence[Attempt] | None = None) -> bool:
        calls = journal(attempt)
        if not task.ready and not calls:
            return bool(await self.db.execute(_FINISH, outcome_row(task)))
        if self.db.dialect.writing_with:
            args = {
                **outcome_row(task),
                "journal": dumps([attempt_row(call) for call in calls]),
                "ready": task.ready,
                "cost": cost_micros(task),
            }
            locks = Locks(task_id=task.id, settles=task.ready)
            row = await self._write_one(_FINISH_ALL, args, locks)
            return bool(row and row[0])

        async def write(tx: Executor) -> bool:
            if not await tx.execute(_FINISH, outcome_row(task)):
                return False
            for call in calls:
                await tx.send(_INSERT_ATTEMPT, attempt_row(call))
            if task.ready:
                await finished(tx, task.id, cost_micros(task), task.webhook_url is not None)
            return True

        return await self.db.transaction(write)

    async def set_partials(self, task: Task) -> bool:
        args = {"id": task.id, "lease_token": task.lease_token, "partials": partials_json(task)}
        return bool(await self.db.execute(_PARTIALS, args))

    async def release(self, owner: str) -> int:
        return await self.db.execute(_RELEASE, {"owner": owner})

    async def reap(self) -> list[Task]:
        async def write(tx: Executor) -> list[Task]:
            rows = await tx.fetch_all(_REAP, {"error": failure_json(LOST_WORKER_ERROR)})
            reaped = [task_from_row(row) for row in rows]
            for task in reaped:
                if task.ready:
                    await finished(tx, task.id, 0)
            return reaped

        return await self.db.transaction(write)

    async def cancel(self, task_id: str, tenant_id: str) -> Task | None:
        args = {"id": task_id, "tenant_id": tenant_id, "error": failure_json(CANCELED_ERROR)}

        async def write(tx: Executor) -> None:
            if await tx.execute(_CANCEL, args):
                await finished(tx, task_id, 0)

        await self.db.transaction(write)
        return await self.get(task_id, tenant_id)

    async def purge_output(self, task_id: str) -> None:
        await self.db.execute(_PURGE, {"id": task_id})

    async def attempts(self, task_id: str) -> list[Attempt]:
        rows = await self.db.fetch_all(_ATTEMPTS, {"task_id": task_id})
        return [attempt_from_row(row) for row in rows]

    async def recent_attempts(
        self, since: datetime, *, model: str | None = None, limit: int = 10_000
    ) -> list[Attempt]:
        where = "finished_at >= :since"
        args: dict[str, Any] = {"since": since.timestamp(), "limit": limit}
        if model is not None:
            where += " AND model = :model"
            args["model"] = model
        rows = await self.db.fetch_all(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE {where}"
            " ORDER BY finished_at DESC LIMIT :limit",
            args,
        )
        return [attempt_from_row(row) for row in rows]

    async def queue_position(self, task_id: str) -> int | None:
        place = await self.queue_place(task_id)
        return None if place is None else place[2]

    async def queue_place(
        self, task_id: str, at_most: int | None = None
    ) -> tuple[float, float, int] | None:
        if at_most is None:
            row = await self.db.fetch_one(_PLACE, {"id": task_id, "at_most": _ALL})
        else:
            row = await self.db.fetch_one(_PLACE_NEAR, {"id": task_id, "at_most": at_most})
        return None if row is None else (float(row[0]), float(row[1]), int(row[2]))

    async def queue_places(self, limit: int) -> list[tuple[float, float]]:
        rows = await self.db.fetch_all(_PLACES, {"limit": limit})
        return [(float(row[0]), float(row[1])) for row in rows]

    async def set_priority(self, tenant_id: str, priority: float) -> None:
        await self.db.execute(_SET_PRIORITY, {"tenant_id": tenant_id, "weight": priority})

    async def priority(self, tenant_id: str) -> float:
        row = await self.db.fetch_one(
            "SELECT weight FROM fair_shares WHERE tenant_id = :tenant_id", {"tenant_id": tenant_id}
        )
        return 1.0 if row is None else float(row[0])

    # -- route states (`RouteStateStore`)

    async def publish_route_states(self, process_id: str, states: Sequence[RouteState]) -> None:
        async def write(tx: Executor) -> None:
            now = max((s.updated_at.timestamp() for s in states), default=0.0)
            await tx.send(
                "DELETE FROM route_states WHERE process_id = :process_id OR updated_at < :stale",
                {"process_id": process_id, "stale": now - ROUTE_STATE_KEEP_SECONDS},
            )
            for state in states:
                await tx.send(
                    _PUBLISH_ROUTE,
                    {
                        "process_id": process_id,
                        "route": state.route,
                        "model": state.model,
                        "state": dumps(state.state),
                        "updated_at": state.updated_at.timestamp(),
                    },
                )

        await self.db.transaction(write)

    async def route_states(self, since: datetime) -> list[RouteState]:
        rows = await self.db.fetch_all(
            "SELECT process_id, route, model, state, updated_at FROM route_states"
            " WHERE updated_at >= :since ORDER BY route, model, process_id",
            {"since": since.timestamp()},
        )
        return [
            RouteState(row[0], row[1], row[2], json.loads(row[3]), _when(row[4])) for row in rows
        ]

    async def queue_stats(self) -> QueueStats:
        tasks: dict[tuple[str, str], int] = {}
        oldest: dict[str, float] = {}
        for model, status, count, waited in await self.db.fetch_all(_QUEUE):
            tasks[(model, status)] = count
            if waited is not None:
                oldest[model] = max(0.0, float(waited))
        backlog = await self.db.fetch_one(_BACKLOG)
        pending, due = (backlog[0], backlog[1]) if backlog else (0, None)
        return QueueStats(tasks, oldest, pending, max(0.0, float(due or 0.0)))


def _when(value: float) -> datetime:
    when = dt(value)
    assert when is not None
    return when
