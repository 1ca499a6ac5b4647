"""SQL statements, commits and writer hand-offs per task on the SQLite store, counted exactly.

Runs the API in this process (no sockets: httpx's ASGI transport, the real worker, a SQLite
file in a temp folder, every model served by `imagehub.testing.ScriptedProvider` after
`--delay`), sends `--tasks` tasks through each path at each concurrency, and counts what the
SQLite connections ran with a `sqlite3` trace callback on every connection the hub opens:

    .venv/bin/python bench/sqlcount.py --tasks 400 --concurrency 1 32

Counts are per completed task, after a warm-up; statements are split into data statements
(SELECT / INSERT / UPDATE ...) and transaction control (BEGIN / COMMIT / SAVEPOINT / RELEASE /
ROLLBACK), and by the thread that ran them (the event loop's, the writer's, the readers').
`commits` counts COMMIT statements; `autocommits` the writes SQLite committed by themselves
(an INSERT / UPDATE / DELETE outside any transaction): each is a commit too. `loop_cpu_ms` and
`process_cpu_ms` are CPU per task of the event loop's thread (the client's requests included:
it runs on the same loop) and of the whole process: unlike the counts, they vary with load.
Works on any checkout of the hub (run it with `PYTHONPATH=<other checkout>/src`).

With `--postgres <a server's maintenance URL>` the hub runs on PostgreSQL instead (a new
database per run, dropped after it), and the statements are counted where psycopg's
connections run them (`AsyncConnection.execute`, every connection of the process: the store's
pool and the wake-ups' own): a write outside BEGIN / COMMIT is an autocommit (a WITH clause
that writes counts as one write), and each statement is counted by its first word too.
`pg_cpu_ms` is the CPU per task of the run's backends (from /proc: a server on this machine).

    .venv/bin/python bench/sqlcount.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from imagehub.api import create_app
from imagehub.routing import Router
from imagehub.settings import Settings
from imagehub.testing import ScriptedProvider
from imagehub.wiring import build_hub

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workers import _backends_cpu, _database, _drop

KEY = "ih_sqlcount"
CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK", "END")
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
PATHS = {
    "native": ("/hub/v1/tasks", {"model": "gpt-image-2", "input": {"prompt": "bench"}}),
    "openai": ("/v1/images/generations", {"model": "gpt-image-2", "prompt": "bench"}),
}


class Tally:
    """Statements seen by the trace callbacks, by kind and by thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        #: threads inside a transaction (each connection is used by one thread at a time)
        self.in_transaction: set[str] = set()

    def __call__(self, sql: str) -> None:
        words = sql.lstrip().split(None, 1)
        verb = words[0].upper() if words else "?"
        if verb.startswith("PRAGMA"):
            return  # connection setup, not per task
        thread = threading.current_thread().name
        where = "loop" if thread == "MainThread" else thread.rstrip("_0123456789")
        with self.lock:
            self.counts["all"] += 1
            self.counts["control" if verb in CONTROL else "data"] += 1
            if verb == "COMMIT":
                self.counts["commits"] += 1
            if verb == "BEGIN":
                self.in_transaction.add(thread)
            elif verb in ("COMMIT", "END") or (verb == "ROLLBACK" and " TO " not in sql.upper()):
                self.in_transaction.discard(thread)
            elif verb in WRITES and thread not in self.in_transaction:
                self.counts["autocommits"] += 1
            self.counts[f"on {where}"] += 1

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()


def traced(tally: Tally) -> Any:
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(*args, **kwargs)
        conn.set_trace_callback(tally)
        return conn

    return connect


class PostgresTally:
    """Statements psycopg's async connections run, by kind and by first word; a connection is
    in a transaction from its BEGIN to its COMMIT / ROLLBACK."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.in_transaction: set[int] = set()

    def __call__(self, conn: object, query: Any) -> None:
        sql = query.decode() if isinstance(query, bytes) else str(query)
        words = sql.upper().split()
        verb = words[0] if words else "?"
        writes = verb in WRITES or (verb == "WITH" and bool(set(WRITES) & set(words)))
        self.counts["all"] += 1
        self.counts["control" if verb in CONTROL else "data"] += 1
        self.counts[f"verb {verb}"] += 1
        if verb == "COMMIT":
            self.counts["commits"] += 1
        if verb == "BEGIN":
            self.in_transaction.add(id(conn))
        elif verb in ("COMMIT", "END", "ROLLBACK"):
            self.in_transaction.discard(id(conn))
        elif writes and id(conn) not in self.in_transaction:
            self.counts["autocommits"] += 1

    def reset(self) -> None:
        self.counts.clear()


def traced_postgres(tally: PostgresTally) -> None:
    """Count every statement psycopg's async connections run, from now on."""
    import psycopg

    real = psycopg.AsyncConnection.execute

    async def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        tally(self, query)
        return await real(self, query, *args, **kwargs)

    psycopg.AsyncConnection.execute = execute  # type: ignore[method-assign]


class _Forget(list[Any]):
    def append(self, item: Any) -> None:
        pass


async def run(
    path: str, concurrency: int, tasks: int, delay: float, postgres: str | None = None
) -> dict[str, Any]:
    tally: Tally | PostgresTally
    if postgres is None:
        tally = Tally()
        sqlite3.connect = traced(tally)  # type: ignore[assignment]
        database = None
    else:
        tally = PostgresTally()
        traced_postgres(tally)
        database = _database(postgres)
    try:
        return await _run(tally, path, concurrency, tasks, delay, postgres, database)
    finally:
        if postgres is not None and database is not None:
            _drop(postgres, database)


async def _run(
    tally: Tally | PostgresTally,
    path: str,
    concurrency: int,
    tasks: int,
    delay: float,
    postgres: str | None,
    database: str | None,
) -> dict[str, Any]:
    name = urlsplit(database).path.lstrip("/") if database else ""
    with tempfile.TemporaryDirectory(prefix="imagehub-sqlcount-") as tmp:
        settings = Settings(
            data_dir=Path(tmp), admin_key=SecretStr(KEY), demo=False, database_url=database
        )
        provider = ScriptedProvider(delay=delay, requests=_Forget())
        hub = build_hub(settings, router=Router({}, fallback=provider))
        await hub.bootstrap()
        app = create_app(settings, hub=hub)
        url, body = PATHS[path]
        headers = {"Authorization": f"Bearer {KEY}", "Prefer": "wait=30"}
        async with LifespanManager(app) as managed:
            transport = httpx.ASGITransport(app=managed.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:

                async def one() -> None:
                    answer = await client.post(url, json=body, headers=headers)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{answer.status_code}: {answer.text[:200]}")

                async def clients(count: int) -> None:
                    left = iter(range(count))

                    async def client_loop() -> None:
                        for _ in left:
                            await one()

                    await asyncio.gather(*(client_loop() for _ in range(concurrency)))

                await clients(max(20, concurrency * 2))  # warm-up: key cache, first claims
                await asyncio.sleep(0.2)
                tally.reset()
                pg_cpu = _backends_cpu(postgres, name) if postgres else {}
                loop_cpu, process_cpu = time.thread_time(), time.process_time()
                await clients(tasks)
                loop_cpu, process_cpu = (
                    time.thread_time() - loop_cpu,
                    time.process_time() - process_cpu,
                )
                if postgres:
                    after = _backends_cpu(postgres, name)
                    pg_seconds = sum(t - pg_cpu.get(pid, 0.0) for pid, t in after.items())
                await asyncio.sleep(0.2)  # the last finishes' writes
                counts = dict(tally.counts)
    row = {
        "path": path,
        "concurrency": concurrency,
        "tasks": tasks,
        **{name: round(value / tasks, 2) for name, value in sorted(counts.items())},
        "loop_cpu_ms": round(loop_cpu * 1000 / tasks, 3),
        "process_cpu_ms": round(process_cpu * 1000 / tasks, 3),
    }
    if postgres:
        row["pg_cpu_ms"] = round(pg_seconds * 1000 / tasks, 3)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--path", choices=sorted(PATHS), nargs="+", default=sorted(PATHS))
    parser.add_argument("--delay", type=float, default=0.05, help="provider delay, seconds")
    parser.add_argument("--postgres", help="PostgreSQL instead of SQLite: a maintenance URL")
    args = parser.parse_args(argv)
    for path in args.path:
        for concurrency in args.concurrency:
            row = asyncio.run(run(path, concurrency, args.tasks, args.delay, args.postgres))
            print(json.dumps(row))


if __name__ == "__main__":
    main()
