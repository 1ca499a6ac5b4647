"""Scale-out bench: how completed tasks/s grow with worker processes on PostgreSQL.

Each scenario fills a fresh queue, starts worker-only processes (the real worker loop, an
upstream faked by `imagehub.testing.ScriptedProvider` with a delay), opens the queue to all of
them at once, and measures from the stored times:

  completed/s   tasks finished between the 10th and 90th percentile finish, per second
  claim p50/p99 duration of one claim statement that took at least one task, in each worker
  cpu           the machine's busy share during the run (2 cores here: where the limit is),
                and the worker processes' own CPU time per task

    .venv/bin/python bench/scale.py capped      # 1, 2, 4 workers x 8 tasks, 200 ms upstream
    .venv/bin/python bench/scale.py uncapped    # PostgreSQL next to SQLite, no useful cap
    .venv/bin/python bench/scale.py run --backend postgres --workers 2 --concurrency 8

The API processes are not part of this measure (bench/load.py measures the HTTP side); tasks
are written straight into the store, as `POST /hub/v1/tasks` would write them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Scenario:
    backend: str  # postgres | sqlite
    workers: int
    concurrency: int
    delay: float
    tasks: int


@dataclass
class Result:
    scenario: Scenario
    completed_per_s: float
    wall_s: float
    claim_p50_ms: float
    claim_p99_ms: float
    claims: int
    cpu_busy: float
    worker_cpu_ms_per_task: float
    database_cpu_ms_per_task: float


# -- one worker process (`scale.py worker ...`), with its claims timed


def worker_main(args: argparse.Namespace) -> None:
    from imagehub.cli.worker import run_worker_process
    from imagehub.routing import Router
    from imagehub.settings import Settings
    from imagehub.testing import ScriptedProvider
    from imagehub.wiring import build_hub

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    class Forget(list[Any]):
        def append(self, item: Any) -> None:
            pass

    settings = Settings(
        database_url=args.database_url,
        media_dir=Path(args.media_dir),
        worker_concurrency=args.concurrency,
        demo=False,
        wakeups="off",
    )
    provider = ScriptedProvider(delay=args.delay, requests=Forget())
    hub = build_hub(settings, router=Router({}, fallback=provider))
    timings: list[float] = []
    claim = hub.store.claim

    async def timed_claim(owner: str, limit: int, lease_seconds: float) -> Any:
        started = time.perf_counter()
        claimed = await claim(owner, limit, lease_seconds)
        if claimed:
            timings.append(time.perf_counter() - started)
        return claimed

    hub.store.claim = timed_claim  # type: ignore[method-assign]
    asyncio.run(run_worker_process(hub))
    Path(args.stats).write_text(json.dumps(timings))


# -- the parent: queue, processes, figures


def database(admin_url: str) -> str:
    import psycopg

    name = f"imagehub_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop(admin_url: str, url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def fill(url: str, count: int) -> None:
    """`count` queued tasks, not due for an hour: the gate opens when every worker is up."""
    from imagehub.store import open_store
    from imagehub.tasks import Task, new_id

    store = open_store(url, pool_size=8)
    await store.open()
    start, later = datetime.now(UTC), datetime.now(UTC) + timedelta(hours=1)
    tasks = [
        Task(
            id=new_id("tsk_"),
            tenant_id="bench",
            model="nano-banana",
            input={"prompt": f"bench {n}", "num_images": 1, "output_format": "png"},
            created_at=start + timedelta(microseconds=n),
            run_after=later,
        )
        for n in range(count)
    ]
    for chunk in range(0, count, 64):
        await asyncio.gather(*(store.create(t) for t in tasks[chunk : chunk + 64]))
    await store.close()


def sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        with conn:
            rows = conn.execute(statement).fetchall()
        conn.close()
        return rows
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def cpu_ticks() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu() -> dict[int, float]:
    """CPU seconds of every local PostgreSQL process, by pid."""
    seconds = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split("(", 1)[1].startswith("postgres)"):
                seconds[int(stat.parent.name)] = process_cpu_seconds(int(stat.parent.name))
        except (OSError, IndexError):
            continue  # the process ended meanwhile
    return seconds


def start_workers(s: Scenario, url: str, tmp: Path) -> list[tuple[subprocess.Popen[str], Path]]:
    procs = []
    for n in range(s.workers):
        stats, log = tmp / f"claims{n}.json", tmp / f"worker{n}.log"
        command = [sys.executable, __file__, "worker", "--database-url", url]
        command += ["--media-dir", str(tmp / "media"), "--stats", str(stats)]
        command += ["--concurrency", str(s.concurrency), "--delay", str(s.delay)]
        with log.open("w") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT
            )
        procs.append((proc, stats))
    deadline = time.monotonic() + 60
    for n, (proc, _) in enumerate(procs):
        log = tmp / f"worker{n}.log"
        while "running, up to" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text())
            time.sleep(0.05)
    return procs


def run(s: Scenario, admin_url: str) -> Result:
    with tempfile.TemporaryDirectory(prefix="imagehub-scale-") as tmpdir:
        tmp = Path(tmpdir)
        url = database(admin_url) if s.backend == "postgres" else f"sqlite:///{tmp}/hub.db"
        try:
            asyncio.run(fill(url, s.tasks))
            procs = start_workers(s, url, tmp)
            busy0, total0 = cpu_ticks()
            db0 = database_cpu()
            worker0 = sum(process_cpu_seconds(proc.pid) for proc, _ in procs)
            gate = time.time()
            sql(url, f"UPDATE tasks SET run_after = {gate}")
            while sql(url, "SELECT count(*) FROM tasks WHERE finished_at IS NULL")[0][0]:
                time.sleep(0.2)
            busy1, total1 = cpu_ticks()
            worker_cpu = sum(process_cpu_seconds(proc.pid) for proc, _ in procs) - worker0
            db_cpu = sum(t - db0.get(pid, 0.0) for pid, t in database_cpu().items())
            for proc, _ in procs:
                proc.send_signal(signal.SIGTERM)
            for proc, _ in procs:
                proc.wait(60)
            claims = [x for _, stats in procs for x in json.loads(stats.read_text())]
            finished = sorted(r[0] for r in sql(url, "SELECT finished_at FROM tasks"))
        finally:
            if s.backend == "postgres":
                drop(admin_url, url)
    lo, hi = finished[len(finished) // 10], finished[len(finished) * 9 // 10]
    cuts = statistics.quantiles(claims, n=100) if len(claims) > 1 else claims * 99
    return Result(
        scenario=s,
        completed_per_s=round((len(finished) * 8 // 10) / (hi - lo), 1),
        wall_s=round(finished[-1] - gate, 2),
        claim_p50_ms=round(cuts[49] * 1000, 2),
        claim_p99_ms=round(cuts[98] * 1000, 2),
        claims=len(claims),
        cpu_busy=round((busy1 - busy0) / max(1, total1 - total0), 2),
        worker_cpu_ms_per_task=round(worker_cpu * 1000 / len(finished), 2),
        database_cpu_ms_per_task=round(db_cpu * 1000 / len(finished), 2),
    )


def report(results: list[Result]) -> None:
    print(
        "| backend | workers | cap/worker | upstream | tasks | completed/s | x one | "
        "claim p50 ms | claim p99 ms | machine cpu busy | cpu ms/task: workers, postgres |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base: dict[tuple[str, int], float] = {}
    for r in results:
        s = r.scenario
        one = base.setdefault((s.backend, s.concurrency), r.completed_per_s)
        print(
            f"| {s.backend} | {s.workers} | {s.concurrency} | {int(s.delay * 1000)} ms | "
            f"{s.tasks} | {r.completed_per_s} | {r.completed_per_s / one:.2f} | "
            f"{r.claim_p50_ms} | {r.claim_p99_ms} | {r.cpu_busy:.0%} | "
            f"{r.worker_cpu_ms_per_task}, {r.database_cpu_ms_per_task} |"
        )
    print(json.dumps([asdict(r) for r in results]), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("capped", "uncapped", "run"):
        p = sub.add_parser(name)
        p.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
        p.add_argument("--seconds", type=float, default=15.0, help="target run length (capped)")
    one = sub.choices["run"]
    one.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    one.add_argument("--workers", type=int, default=1)
    one.add_argument("--concurrency", type=int, default=8)
    one.add_argument("--delay", type=float, default=0.2)
    one.add_argument("--tasks", type=int, default=1000)
    worker = sub.add_parser("worker")
    worker.add_argument("--database-url", required=True)
    worker.add_argument("--media-dir", required=True)
    worker.add_argument("--stats", required=True)
    worker.add_argument("--concurrency", type=int, required=True)
    worker.add_argument("--delay", type=float, required=True)
    args = parser.parse_args()
    if args.command == "worker":
        worker_main(args)
        return
    if args.command == "run":
        scenarios = [Scenario(args.backend, args.workers, args.concurrency, args.delay, args.tasks)]
    elif args.command == "capped":
        per_worker = int(8 / 0.2 * args.seconds)  # 8 slots x 5 tasks/s each
        scenarios = [Scenario("postgres", w, 8, 0.2, per_worker * w) for w in (1, 2, 4)]
    else:
        scenarios = [Scenario("sqlite", 1, 256, 0.2, 4000)]
        scenarios += [Scenario("postgres", w, 256, 0.2, 4000) for w in (1, 2, 4)]
    report([run(s, args.postgres_url) for s in scenarios])


if __name__ == "__main__":
    main()
