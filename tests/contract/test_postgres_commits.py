"""What a task costs PostgreSQL: its commits, counted by a hook on the store's statements; and a
statement on a connection the database dropped, run once more on a fresh one."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from imagehub.routing import Router
from imagehub.settings import Settings
from imagehub.store import Lease
from imagehub.store.connector import Executor, Params
from imagehub.store.postgres import PostgresConnector, PostgresStore
from imagehub.tasks import TaskStatus, utcnow
from imagehub.tenancy.keys import make_key
from imagehub.tenancy.types import OverLimit
from imagehub.testing import ScriptedProvider
from imagehub.wiring import build_hub
from tests.contract.test_journal import call
from tests.contract.test_store import charged, limited_key, make_task, succeeded_at, usage_of

TASKS = 12
_WRITES = {"INSERT", "UPDATE", "DELETE"}


class Commits:
    """Counts the commits a connector makes: its transactions, and autocommit statements
    (each its own transaction), split into those that write and those that only read."""

    def __init__(self, db: PostgresConnector) -> None:
        self.counts: Counter[str] = Counter()
        self.on = False
        for name in ("execute", "fetch_one", "fetch_all"):
            setattr(db, name, self._statement(getattr(db, name)))
        db.transaction = self._transaction(db.transaction)  # type: ignore[method-assign]

    def _statement(self, run: Callable[..., Coroutine[Any, Any, Any]]) -> Any:
        async def counted(sql: str, params: Params | None = None) -> Any:
            if self.on:
                words = sql.upper().split()
                # a WITH clause may write: PostgreSQL's finish is one such statement
                write = words[0] in _WRITES or (words[0] == "WITH" and bool(_WRITES & {*words}))
                self.counts["write" if write else "read"] += 1
            return await (run(sql) if params is None else run(sql, params))

        return counted

    def _transaction(self, run: Callable[..., Coroutine[Any, Any, Any]]) -> Any:
        async def counted(fn: Callable[[Executor], Coroutine[Any, Any, Any]]) -> Any:
            result = await run(fn)
            if self.on:
                self.counts["transaction"] += 1
            return result

        return counted


async def test_a_task_handed_off_at_submit_costs_two_commits(tmp_path: Path, postgres_url: str):
    settings = Settings(
        database_url=postgres_url,
        data_dir=tmp_path,
        wakeups="off",  # the notifier's own commits are batched; this counts the store's
        poll_seconds=60,  # no idle claims: the in-process wake-ups drive the worker
        database_pool_size=3,
    )
    router = Router({}, fallback=ScriptedProvider())
    hub = build_hub(settings, router=router)
    commits = Commits(hub.store.db)  # type: ignore[attr-defined]
    hub.route_states = None  # published on a timer, not per task: not what this counts
    await hub.start()
    try:
        _, key = make_key(name="bench", admin=True)
        await hub.store.add_key(key)
        # a first task, not counted: the claim the worker makes as it starts may still be under
        # way at the first submit, which is then queued (its slots are taken until it answers)
        first, _ = await hub.submit(key.tenant_id, "nano-banana", {"prompt": "a buoy"}, key=key)
        assert (await hub.wait(key.tenant_id, first.id, 20)).status == TaskStatus.SUCCEEDED
        commits.on = True
        for n in range(TASKS):  # one after the other: each is handed to the idle worker
            task, _ = await hub.submit(
                key.tenant_id, "nano-banana", {"prompt": f"a lighthouse {n}"}, key=key
            )
            done = await hub.wait(key.tenant_id, task.id, 20)
            assert done.status == TaskStatus.SUCCEEDED
        commits.on = False
    finally:
        await hub.stop()
    counts = commits.counts
    # the submit: one statement (the task, leased to the worker, the reservation, the spend);
    # the finish: one statement (the outcome, the journal, the spend); and no claim: the
    # submit stored the task running
    assert counts["write"] == 2 * TASKS
    assert counts["transaction"] == 0


def _terminate_pool_backends(url: str) -> int:
    """End the pool's sessions on the test's own database (never anyone else's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        ).fetchone()
    return int(row[0]) if row else 0


async def test_a_fenced_write_on_a_dropped_connection_runs_once_more(
    postgres_url: str, caplog: Any
):
    store = PostgresStore(postgres_url, pool_size=1)
    await store.open()
    try:
        await store.create(make_task())
        (task,) = await store.claim("w1", 1, 30)
        assert _terminate_pool_backends(postgres_url) == 1
        retry = task.replace(status=TaskStatus.QUEUED, run_after=utcnow())
        with caplog.at_level(logging.INFO, logger="imagehub.store"):
            # the write fails on the dead session; the pool replaces it; it runs again
            assert await store.finish(retry)
        retried = [r for r in caplog.records if "retried" in r.getMessage()]
        assert len(retried) == 1
        again = await store.get(task.id)
        assert again is not None and again.status == TaskStatus.QUEUED
        # the lease token fences a second run of the same write: it changes nothing
        assert not await store.finish(retry)
    finally:
        await store.close()


async def test_a_submit_run_again_after_its_answer_was_lost_stores_it_once(postgres_url: str):
    """A submit whose connection broke after its commit runs again on a fresh one: the second
    run finds the task stored by the first and answers with it, reserving nothing more."""
    store = PostgresStore(postgres_url, pool_size=1)
    await store.open()
    try:
        key = await limited_key(store, budget_micros=1_000_000)
        handed = make_task(webhook_url="https://example.com/hook")
        first = await store.create(handed, charged(key, 10), Lease("w1", 30))
        assert first.status == TaskStatus.RUNNING
        again = await store.create(handed, charged(key, 10), Lease("w1", 30))
        assert (again.id, again.status, again.lease_token) == (first.id, TaskStatus.RUNNING, 1)
        keyed = make_task(idempotency_key="k-twice")
        await store.create(keyed, charged(key, 10))
        assert (await store.create(keyed, charged(key, 10))).id == keyed.id
        assert await usage_of(store, key) == (2, 20, 0)
        assert len((await store.list_deliveries("tenant-a"))[0]) == 1
    finally:
        await store.close()


async def test_a_submit_whose_keys_last_slot_was_taken_meanwhile_is_refused(postgres_url: str):
    """The statement's snapshot sees a free slot; the key's row, once its lock is got, has none:
    nothing is written, and the submit, run again, is refused."""
    store = PostgresStore(postgres_url, pool_size=1)
    await store.open()
    try:
        key = await limited_key(store, concurrency_limit=1)
        task = make_task()
        async with await psycopg.AsyncConnection.connect(postgres_url) as other:
            # another submit's reservation, not yet committed: its lock holds the key's row
            await other.execute("UPDATE api_keys SET active_tasks = 1 WHERE id = %s", (key.id,))
            submit = asyncio.create_task(store.create(task, charged(key, 0)))
            await until_a_session_waits_for_a_lock(postgres_url)
            await other.commit()
        with pytest.raises(OverLimit) as caught:
            await submit
        assert caught.value.limit == "concurrency"
        assert await store.get(task.id) is None
        assert await usage_of(store, key) == (1, 0, 0)
    finally:
        await store.close()


async def until_a_session_waits_for_a_lock(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for _ in range(500):
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            row = await cur.fetchone()
            if row and row[0]:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("no session waited for the key's row")


class RoundTrips:
    """A TCP proxy in front of PostgreSQL that counts the client's round trips: the times it
    asks the server to answer (a Sync, a Flush, a simple Query; those sent together count once,
    until the server answers), whatever the batching."""

    #: frontend message types that ask the server to answer what was sent before them
    _WAITS = frozenset(b"SHQ")

    def __init__(self, url: str) -> None:
        self.target = urlsplit(url)
        self.count = 0
        self._relays: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """The proxy's URL (plain TCP: no SSL or GSS negotiation to parse)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        netloc = self.target.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{port}"
        query = "sslmode=disable&gssencmode=disable"
        return urlunsplit(self.target._replace(netloc=netloc, query=query))

    async def close(self) -> None:
        """Once the client closed its connections: their relays end with them."""
        if self._server is not None:
            self._server.close()
        await asyncio.wait_for(asyncio.gather(*self._relays), 5)

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        host, port = self.target.hostname or "127.0.0.1", self.target.port or 5432
        relay = asyncio.current_task()
        assert relay is not None
        self._relays.add(relay)
        server, to_server = await asyncio.open_connection(host, port)
        asked = [False]  # this connection's client waits for an answer
        await asyncio.gather(
            self._frontend(client, to_server, asked),
            _backend(server, to_client, asked),
            return_exceptions=True,
        )

    async def _frontend(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, asked: list[bool]
    ) -> None:
        try:
            startup = await reader.readexactly(4)  # the startup message has no type byte
            writer.write(startup + await reader.readexactly(int.from_bytes(startup) - 4))
            while True:
                head = await reader.readexactly(5)
                body = await reader.readexactly(int.from_bytes(head[1:]) - 4)
                if head[0] in self._WAITS and not asked[0]:
                    self.count += 1
                    asked[0] = True
                writer.write(head + body)
                await writer.drain()
        finally:
            writer.close()


async def _backend(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, asked: list[bool]
) -> None:
    try:
        while data := await reader.read(65536):
            asked[0] = False
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def test_a_task_costs_three_round_trips(postgres_url: str):
    """A submit with a key and a webhook, its claim, its finish with a journal row."""
    proxy = RoundTrips(postgres_url)
    store = PostgresStore(await proxy.start(), pool_size=1)
    await store.open()
    try:
        key = await limited_key(store, budget_micros=1_000_000)
        task = make_task(webhook_url="https://example.com/hook")
        before = proxy.count
        await store.create(task, charged(key, 80_000))
        created, before = proxy.count - before, proxy.count
        [claimed] = await store.claim("w1", 1, 60)
        claim, before = proxy.count - before, proxy.count
        done = succeeded_at(claimed, 0.039)
        assert await store.finish(done, call(done))
        finish = proxy.count - before
        # the submit is one statement (its fair place, the key's reservation, the spend and
        # the delivery with it), and so is the finish
        assert (created, claim, finish) == (1, 1, 1)
        assert await usage_of(store, key) == (0, 0, 39_000)
        delivery = await store.get_delivery(task.id, task.tenant_id)
        assert delivery is not None and delivery.state == "pending"
        assert [a.route for a in await store.attempts(task.id)] == ["gemini"]
    finally:
        await store.close()
        await proxy.close()


async def test_commits_skip_the_flush_wait_only_when_chosen(postgres_url: str):
    server = PostgresStore(postgres_url, pool_size=1)
    chosen = PostgresStore(postgres_url, pool_size=1, synchronous_commit=False)
    for store in (server, chosen):
        await store.open()
    try:
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SHOW synchronous_commit").fetchone()
        assert await server.db.fetch_one("SHOW synchronous_commit") == row  # left alone
        assert await chosen.db.fetch_one("SHOW synchronous_commit") == ("off",)
    finally:
        for store in (server, chosen):
            await store.close()
