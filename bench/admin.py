"""Admin routes bench: how long a usage report takes over many stored tasks.

Fills a fresh store with finished tasks (written straight into the store, 20 tenants, two
models, one task every 20 s back from now), then times `Admin.usage` (what
`GET /hub/v1/admin/usage` runs) by day and by tenant over all of them:

    .venv/bin/python bench/admin.py --tasks 20000
    .venv/bin/python bench/admin.py --tasks 20000 --database-url postgresql://postgres@127.0.0.1:5432/bench

A PostgreSQL database must be an empty one of its own: the tasks are left in it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from imagehub.admin import Admin
from imagehub.routing import Router
from imagehub.store import open_store
from imagehub.tasks import (
    OutputImage,
    Task,
    TaskOutput,
    TaskStatus,
    Usage,
    new_id,
    utcnow,
)


def finished(i: int) -> Task:
    now = utcnow()
    image = OutputImage("image/png", "x.png", 1_482_915, 1024, 1024, file_id="f_x.png")
    created = now - timedelta(seconds=20 * i)
    return Task(
        id=new_id("t_"),
        tenant_id=f"tenant-{i % 20}",
        model=("nano-banana", "gpt-image-2")[i % 2],
        input={"prompt": "a red fox in the snow at golden hour", "num_images": 1},
        status=TaskStatus.SUCCEEDED if i % 10 else TaskStatus.FAILED,
        output=TaskOutput(images=(image,)) if i % 10 else None,
        provider="gemini",
        usage=Usage(0.039, basis="per_image"),
        created_at=created,
        started_at=created + timedelta(seconds=1),
        finished_at=created + timedelta(seconds=9),
    )


async def main(tasks: int, url: str, repeat: int) -> None:
    store = open_store(url)
    await store.open()
    try:
        started = time.perf_counter()
        for i in range(tasks):
            await store.create(finished(i))
        print(f"stored {tasks} tasks in {time.perf_counter() - started:.1f} s")
        admin = Admin(store, Router({}))
        until = utcnow() + timedelta(seconds=1)
        since = until - timedelta(seconds=20 * tasks + 60)
        for group_by in ("day", "tenant"):
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                report = await admin.usage(group_by, since, until)
                times.append(time.perf_counter() - started)
            print(
                f"usage group_by={group_by}: {report.total.tasks} tasks, "
                f"median {statistics.median(times):.2f} s of {repeat} runs"
            )
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'hub.db'}"
    asyncio.run(main(args.tasks, url, args.repeat))
