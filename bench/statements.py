"""What each SQLite statement of a task costs the event loop: amid the hub's work, amid the
store's alone, and run back to back.

Every statement the loop thread runs is timed (a `sqlite3.Connection` subclass around
`execute`), in three settings:

  hub     the API in this process as `sqlcount.py` runs it (httpx's ASGI transport, the real
          worker, a scripted provider after 50 ms), `--concurrency` clients with `Prefer: wait`
  store   `SQLiteStore` alone, no HTTP and no worker: `--concurrency` lanes, each storing a task
          handed off (the submit's statement) and then its finish, as the hub's worker does
  alone   the submit's hand-off insert, as `store` ran it (the same SQL and parameters, a new
          id each time), back to back on a copy of `store`'s database, ten a transaction

Printed: each statement's median and mean in microseconds and how many ran a task. The same
statement on the same kind of database costs what the work around it leaves it: the processor's
caches and SQLite's own are shared with everything else the loop does.

    .venv/bin/python bench/statements.py --tasks 3000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sqlcount's runner
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the tests' task makers

import sqlcount
from tests.contract.test_journal import call
from tests.contract.test_store import charged, limited_key, make_task, succeeded_at

from imagehub.store import Lease
from imagehub.store.sqlite import SQLiteStore

HAND_OFF = "WITH q AS"  # how the submit's hand-off insert begins


def _name(sql: str) -> str:
    return " ".join(sql.split())[:48]


class Timer:
    """Each statement's times on the loop thread (in nanoseconds), by its first 48 characters."""

    def __init__(self) -> None:
        self.times: defaultdict[str, list[int]] = defaultdict(list)
        self.counts: Counter[str] = Counter()  # what sqlcount's runner reports besides
        #: the first hand-off insert and its parameters, for `alone`
        self.hand_off: tuple[str, dict[str, Any]] | None = None

    def reset(self) -> None:
        self.times.clear()

    def connection(self) -> type[sqlite3.Connection]:
        timer, loop_thread = self, threading.main_thread()

        class Timed(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                if threading.current_thread() is not loop_thread:
                    return super().execute(sql, *args)
                started = time.perf_counter_ns()
                try:
                    return super().execute(sql, *args)
                finally:
                    timer.times[_name(sql)].append(time.perf_counter_ns() - started)
                    if timer.hand_off is None and sql.lstrip().startswith(HAND_OFF):
                        timer.hand_off = (sql, dict(args[0]))

        return Timed

    def install(self) -> None:
        real, factory = sqlite3.connect, self.connection()

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            kwargs.setdefault("factory", factory)
            conn: sqlite3.Connection = real(*args, **kwargs)
            return conn

        sqlite3.connect = connect  # type: ignore[assignment]

    def rows(self, setting: str, tasks: int) -> list[dict[str, Any]]:
        return [
            _row(setting, name, times, tasks)
            for name, times in sorted(self.times.items(), key=lambda item: -sum(item[1]))
            if len(times) >= tasks / 5
        ]


def _row(setting: str, statement: str, times: list[int], tasks: int) -> dict[str, Any]:
    return {
        "setting": setting,
        "statement": statement,
        "per_task": round(len(times) / tasks, 2),
        "p50_us": round(statistics.median(times) / 1000, 1),
        "mean_us": round(statistics.fmean(times) / 1000, 1),
    }


async def in_store(timer: Timer, folder: Path, tasks: int, lanes: int) -> Path:
    """`tasks` tasks through `SQLiteStore` alone; the database's path."""
    path = folder / "store.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        key = await limited_key(store, budget_micros=10**12)

        async def lane(name: str, count: int) -> None:
            for _ in range(count):
                task = await store.create(make_task(), charged(key, 10), Lease(name, 60))
                done = succeeded_at(task, 0.001)
                assert await store.finish(done, call(done))

        await asyncio.gather(*(lane(f"w{n}", 20) for n in range(lanes)))  # warm-up
        timer.reset()
        await asyncio.gather(*(lane(f"w{n}", tasks // lanes) for n in range(lanes)))
    finally:
        await store.close()
    return path


def alone(timer: Timer, database: Path, folder: Path, count: int) -> list[dict[str, Any]]:
    """The hand-off insert `in_store` ran, `count` times back to back on a copy of its database."""
    assert timer.hand_off is not None, "the store ran no hand-off"
    sql, params = timer.hand_off
    copy = folder / "alone.db"
    shutil.copy(database, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    times = []
    try:
        for n in range(count):
            if n % 10 == 0:
                conn.execute("BEGIN IMMEDIATE")
            started = time.perf_counter_ns()
            conn.execute(sql, {**params, "id": f"t_alone_{n:08d}"}).fetchall()
            times.append(time.perf_counter_ns() - started)
            if n % 10 == 9:
                conn.execute("COMMIT")
        if conn.in_transaction:
            conn.execute("COMMIT")
    finally:
        conn.close()
    return [_row("alone", _name(sql), times, count)]


async def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    timer = Timer()
    timer.install()
    await sqlcount._run(timer, "native", args.concurrency, args.tasks, 0.05, None, None)  # type: ignore[arg-type]
    rows = timer.rows("hub", args.tasks)
    timer.reset()
    timer.hand_off = None
    with tempfile.TemporaryDirectory(prefix="imagehub-statements-") as tmp:
        database = await in_store(timer, Path(tmp), args.tasks, args.concurrency)
        rows += timer.rows("store", args.tasks)
        rows += alone(timer, database, Path(tmp), args.tasks)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    rows = asyncio.run(measure(args))
    print("| setting | statement | a task | p50 µs | mean µs |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['setting']} | `{row['statement']}` | {row['per_task']} "
            f"| {row['p50_us']} | {row['mean_us']} |"
        )


if __name__ == "__main__":
    main()
