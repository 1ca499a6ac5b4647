"""What a task's writes cost PostgreSQL, at the store (no HTTP, no worker): CPU per task.

Each run makes a new database (dropped after it), opens a `PostgresStore` and, in
`--concurrency` lanes, writes tasks as the hub does: a submit charged to a key (handed off, so
stored running; or `--queued`, then claimed), then its finish with a journal row and the
spend settled. Reported per task, over the timed tasks (after a warm-up of 50): the CPU of the
run's backends (from /proc: a server on this machine), this process's CPU (psycopg and the
store's Python), and the wall time. `--keys each` gives every lane a key of its own;
`shared` (the default) charges one key for all, as one client's many connections would:

    .venv/bin/python bench/pgstore.py --concurrency 1 16 --keys shared each

Works on any checkout of the hub (run it with `PYTHONPATH=<other checkout>/src`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers.py's helpers
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the tests' task makers

from tests.contract.test_journal import call
from tests.contract.test_store import charged, limited_key, make_task, succeeded_at
from workers import DEFAULT_PG, _backends_cpu, _database, _drop, _loadavg

from imagehub.store import Lease
from imagehub.store.postgres import PostgresStore
from imagehub.tasks import Task

WARM_UP = 50


async def run(admin: str, tasks: int, concurrency: int, keys: str, queued: bool) -> dict[str, Any]:
    url = _database(admin)
    name = urlsplit(url).path.lstrip("/")
    store = PostgresStore(url, pool_size=min(concurrency, 10))
    try:
        await store.open()
        lanes = [await limited_key(store, budget_micros=10**12)]
        if keys == "each":
            lanes += [await limited_key(store, budget_micros=10**12) for _ in range(concurrency)]

        async def one(lane: int) -> None:
            key = lanes[lane % len(lanes)]
            task: Task = make_task()
            if queued:
                await store.create(task, charged(key, 10))
                [task] = await store.claim(f"w{lane}", 1, 60)
            else:
                task = await store.create(task, charged(key, 10), Lease(f"w{lane}", 60))
            done = succeeded_at(task, 0.001)
            assert await store.finish(done, call(done))

        async def lane(number: int, count: int) -> None:
            for _ in range(count):
                await one(number)

        await asyncio.gather(*(lane(n, WARM_UP // concurrency + 1) for n in range(concurrency)))
        load = _loadavg()
        each = tasks // concurrency
        pg0, cpu0, wall0 = _backends_cpu(admin, name), time.process_time(), time.perf_counter()
        await asyncio.gather(*(lane(n, each) for n in range(concurrency)))
        pg1, cpu1, wall1 = _backends_cpu(admin, name), time.process_time(), time.perf_counter()
    finally:
        await store.close()
        _drop(admin, url)
    done = each * concurrency
    pg = sum(t - pg0.get(pid, 0.0) for pid, t in pg1.items())
    return {
        "concurrency": concurrency,
        "keys": keys,
        "path": "queued, claimed" if queued else "handed off",
        "tasks": done,
        "pg_cpu_ms": round(pg * 1000 / done, 3),
        "client_cpu_ms": round((cpu1 - cpu0) * 1000 / done, 3),
        "wall_ms": round((wall1 - wall0) * 1000 / done, 3),
        "loadavg": load,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1600)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--keys", choices=["shared", "each"], nargs="+", default=["shared"])
    parser.add_argument("--queued", action="store_true", help="queue, then claim each task")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--postgres", default=DEFAULT_PG, help="a server's maintenance URL")
    args = parser.parse_args(argv)
    print(json.dumps({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    for _ in range(args.repeat):
        for concurrency in args.concurrency:
            for keys in args.keys:
                row = asyncio.run(run(args.postgres, args.tasks, concurrency, keys, args.queued))
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
