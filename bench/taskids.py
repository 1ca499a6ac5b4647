"""Task ids at depth: what a random task id costs the store once its tables are large, against
an id that sorts by creation time (`imagehub.tasks.new_sorted_id`).

For each kind of id, a new store is filled with `--depth` finished tasks, written as the hub
writes them (a submit charged to a key and handed off, then its finish with a journal row and
the spend settled), in 32 lanes. Then `--tasks` more are timed in `--concurrency` lanes.

SQLite (a file in a temporary folder), per timed task: this process's CPU (the loop, the writer
thread, the checkpoints), its read and write system calls and bytes (`/proc/self/io`: index
pages SQLite reads back, WAL frames it writes), and the wall time.

PostgreSQL (`--postgres`, a server's maintenance URL; a database made for the run and dropped
after it), per timed task: the CPU of the run's backends (from /proc: a server on this
machine), this process's CPU, the WAL the server wrote (`pg_current_wal_lsn`), and the wall
time.

    .venv/bin/python bench/taskids.py --depth 300000 --tasks 20000 --concurrency 1 16
    .venv/bin/python bench/taskids.py --postgres postgresql://postgres@127.0.0.1:5432/test

`random` is the id task ids had before (22 random base-62 characters); `sorted` is 8
characters of the time in milliseconds, then 14 random ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers.py's helpers
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the tests' task makers

from tests.contract.test_journal import call
from tests.contract.test_store import charged, limited_key, make_task, succeeded_at
from workers import _backends_cpu, _database, _drop, _sql

from imagehub.store import Lease, Store
from imagehub.store.postgres import PostgresStore
from imagehub.store.sqlite import SQLiteStore
from imagehub.tasks import new_id, new_sorted_id, utcnow

IDS: dict[str, Callable[[str], str]] = {"random": new_id, "sorted": new_sorted_id}


def _io() -> dict[str, int]:
    with open("/proc/self/io") as file:
        return {name: int(value) for name, value in (line.split(": ") for line in file)}


async def _lanes(store: Store, ids: Callable[[str], str], tasks: int, lanes: int) -> None:
    key = await limited_key(store, budget_micros=10**15)

    async def lane(number: int, count: int) -> None:
        for _ in range(count):
            now = utcnow()
            task = make_task(id=ids("tsk_"), created_at=now, run_after=now)
            task = await store.create(task, charged(key, 10), Lease(f"w{number}", 60))
            done = succeeded_at(task, 0.001)
            assert await store.finish(done, call(done))

    await asyncio.gather(*(lane(n, tasks // lanes) for n in range(lanes)))


async def run(kind: str, depth: int, tasks: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="imagehub-taskids-") as tmp:
        path = Path(tmp) / "imagehub.db"
        store = SQLiteStore(path)
        await store.open()
        try:
            await _lanes(store, IDS[kind], depth, 32)
            io0, cpu0, wall0 = _io(), time.process_time(), time.perf_counter()
            await _lanes(store, IDS[kind], tasks, concurrency)
            io1, cpu1, wall1 = _io(), time.process_time(), time.perf_counter()
        finally:
            await store.close()
        size = path.stat().st_size
    done = tasks // concurrency * concurrency
    per = {name: (io1[name] - io0[name]) / done for name in io0}
    return {
        "store": "sqlite",
        "ids": kind,
        "depth": depth,
        "concurrency": concurrency,
        "tasks": done,
        "cpu_ms": round((cpu1 - cpu0) * 1000 / done, 3),
        "wall_ms": round((wall1 - wall0) * 1000 / done, 3),
        "read_calls": round(per["syscr"], 2),
        "write_calls": round(per["syscw"], 2),
        "written_kb": round(per["wchar"] / 1024, 1),
        "db_mb": round(size / 2**20, 1),
    }


def _wal_position(admin: str) -> int:
    [(position,)] = _sql(admin, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    return int(position)


async def run_postgres(
    admin: str, kind: str, depth: int, tasks: int, concurrency: int
) -> dict[str, Any]:
    url = _database(admin)
    name = urlsplit(url).path.lstrip("/")
    store = PostgresStore(url, pool_size=10)
    try:
        await store.open()
        await _lanes(store, IDS[kind], depth, 32)
        pg0, wal0 = _backends_cpu(admin, name), _wal_position(admin)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await _lanes(store, IDS[kind], tasks, concurrency)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        pg1, wal1 = _backends_cpu(admin, name), _wal_position(admin)
        [(size,)] = _sql(admin, "SELECT pg_database_size(%s)", name)
    finally:
        await store.close()
        _drop(admin, url)
    done = tasks // concurrency * concurrency
    pg = sum(t - pg0.get(pid, 0.0) for pid, t in pg1.items())
    return {
        "store": "postgres",
        "ids": kind,
        "depth": depth,
        "concurrency": concurrency,
        "tasks": done,
        "pg_cpu_ms": round(pg * 1000 / done, 3),
        "client_cpu_ms": round((cpu1 - cpu0) * 1000 / done, 3),
        "wall_ms": round((wall1 - wall0) * 1000 / done, 3),
        "wal_kb": round((wal1 - wal0) / 1024 / done, 1),
        "db_mb": round(size / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=300_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--ids", choices=list(IDS), nargs="+", default=list(IDS))
    parser.add_argument("--postgres", help="a PostgreSQL server's maintenance URL")
    args = parser.parse_args(argv)
    for concurrency in args.concurrency:
        for kind in args.ids:
            if args.postgres:
                step = run_postgres(args.postgres, kind, args.depth, args.tasks, concurrency)
            else:
                step = run(kind, args.depth, args.tasks, concurrency)
            print(json.dumps(asyncio.run(step)), flush=True)


if __name__ == "__main__":
    main()
