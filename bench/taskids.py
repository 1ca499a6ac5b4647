"""Task ids at depth: what a random task id costs the SQLite store once its tables are large,
against an id that sorts by creation time (`imagehub.tasks.new_sorted_id`).

For each kind of id, a new SQLite store (in a temporary folder) is filled with `--depth`
finished tasks, written as the hub writes them (a submit charged to a key and handed off, then
its finish with a journal row and the spend settled), in 32 lanes. Then `--tasks` more are
timed in `--concurrency` lanes. Reported per timed task: this process's CPU (the loop, the
writer thread, the checkpoints), its read and write system calls and bytes (`/proc/self/io`:
index pages SQLite reads back, WAL frames it writes), and the wall time.

    .venv/bin/python bench/taskids.py --depth 300000 --tasks 20000 --concurrency 1 16

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' task makers

from tests.contract.test_journal import call
from tests.contract.test_store import charged, limited_key, make_task, succeeded_at

from imagehub.store import Lease
from imagehub.store.sqlite import SQLiteStore
from imagehub.tasks import new_id, new_sorted_id, utcnow

IDS: dict[str, Callable[[str], str]] = {"random": new_id, "sorted": new_sorted_id}


def _io() -> dict[str, int]:
    with open("/proc/self/io") as file:
        return {name: int(value) for name, value in (line.split(": ") for line in file)}


async def _lanes(store: SQLiteStore, ids: Callable[[str], str], tasks: int, lanes: int) -> None:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=300_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--ids", choices=list(IDS), nargs="+", default=list(IDS))
    args = parser.parse_args(argv)
    for concurrency in args.concurrency:
        for kind in args.ids:
            row = asyncio.run(run(kind, args.depth, args.tasks, concurrency))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
