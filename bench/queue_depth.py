"""What queue position and ETA cost a `GET /hub/v1/tasks/{id}` at depth.

Fills a store with `--depth` queued tasks of several tenants (straight into the store, as
`POST /hub/v1/tasks` writes them, fair places included) and a journal of recent attempts, then
times sequential GETs through the real app (FastAPI, in process over httpx's ASGI transport) of
the last task submitted (the longest count: every other task is ahead of it) and of the first:

  with      the task with queue_position, eta_seconds and progress (what the hub serves)
  without   the same GET as it was before estimates (`Hub.get_estimated` reading the task only)

    .venv/bin/python bench/queue_depth.py                       # SQLite, 10,000 queued
    .venv/bin/python bench/queue_depth.py --database-url postgresql://postgres@127.0.0.1:5432/bench

With `--database-url` the database is emptied first: give it one of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from imagehub.api import create_app
from imagehub.estimates import Estimate
from imagehub.hub import Hub
from imagehub.media import MemoryMedia
from imagehub.settings import Settings
from imagehub.store import Store, open_store
from imagehub.tasks import Attempt, Task, TaskStatus, new_id, utcnow
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider, memory_hub
from imagehub.wiring import build_hub

KEY = "ih_bench_depth"


async def fill(store: Store, depth: int, tenants: int) -> list[Task]:
    """`depth` queued tasks, tenants taking turns in bursts of 100, and 500 journal rows."""
    tasks = []
    for n in range(depth):
        task = Task(
            id=new_id("tsk_"),
            tenant_id=f"tenant-{(n // 100) % tenants}",
            model="nano-banana",
            input={"prompt": f"task {n}", "num_images": 1},
        )
        await store.create(task)
        tasks.append(task)
    end = utcnow()
    attempts = [
        Attempt(
            task_id=f"tsk_done{n}",
            tenant_id="tenant-0",
            number=1,
            model="nano-banana",
            route="scripted",
            provider="scripted",
            started_at=end - timedelta(seconds=n + 8 + n % 5),
            finished_at=end - timedelta(seconds=n),
            outcome="succeeded",
        )
        for n in range(500)
    ]
    # the journal is written with a finish: the first task's attempt, handed back for a retry
    [claimed] = await store.claim("bench", 1, 60)
    assert await store.finish(claimed.replace(status=TaskStatus.QUEUED), attempts)
    return tasks


async def timed(client: httpx.AsyncClient, task_id: str, count: int) -> dict[str, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        answer = await client.get(f"/hub/v1/tasks/{task_id}")
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p90_ms": round(samples[int(len(samples) * 0.9)], 3),
        "p99_ms": round(samples[int(len(samples) * 0.99)], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


def without_estimates(hub: Hub) -> None:
    """The GET as it was before estimates: the task alone."""

    async def plain(tenant_id: str, task_id: str) -> tuple[Task, Estimate]:
        return await hub.get(tenant_id, task_id), Estimate()

    hub.get_estimated = plain  # type: ignore[method-assign]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        if args.database_url:
            await empty(args.database_url)
        store = open_store(url)
        hub: Hub = build_hub(
            Settings(data_dir=Path(folder), admin_key=KEY),  # type: ignore[arg-type]
            router=memory_hub(ScriptedProvider()).router,
            store=store,
            media=MemoryMedia(),
            run_worker=False,
        )
        app = create_app(hub=hub)
        async with LifespanManager(app) as manager:
            await store.add_key(make_key(tenant_id="tenant-0", key=KEY + "0")[1])
            tasks = await fill(store, args.depth, args.tenants)
            transport = httpx.ASGITransport(app=manager.app)
            headers = {"Authorization": f"Bearer {KEY}0"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=headers
            ) as client:
                mine = [t for t in tasks if t.tenant_id == "tenant-0"]
                last, first = mine[-1], mine[0]
                shown = (await client.get(f"/hub/v1/tasks/{last.id}")).json()
                results: dict[str, Any] = {
                    "backend": url.split(":")[0],
                    "depth": args.depth,
                    "last_position": shown["queue_position"],
                    "last_eta_seconds": shown["eta_seconds"],
                }
                await timed(client, last.id, 200)  # warm-up
                for name, task in (("last", last), ("first", first)):
                    results[f"{name}_with"] = await timed(client, task.id, args.gets)
                    without_estimates(hub)
                    results[f"{name}_without"] = await timed(client, task.id, args.gets)
                    del hub.get_estimated  # the class's own again
    return results


async def empty(url: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=10_000, help="queued tasks (10,000)")
    parser.add_argument("--tenants", type=int, default=10, help="tenants submitting (10)")
    parser.add_argument("--gets", type=int, default=2_000, help="timed GETs per case (2,000)")
    parser.add_argument("--database-url", help="a PostgreSQL database of its own (emptied)")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
