"""`imagehub serve` with one or more processes, in front of the fake upstream, on SQLite and
PostgreSQL: throughput, CPU per task and, on PostgreSQL, commits per task.

Each run starts a fresh store (a new SQLite folder, or a new PostgreSQL database), the fake
OpenAI upstream of `upstream.py` (50 ms by default) and `imagehub serve [--workers N]` routed
to it; 32 closed-loop clients send `POST /hub/v1/tasks` with `Prefer: wait=30`. Measured over
the timed window (after a warm-up):

  per_s            completed tasks per second
  hub_cpu_ms       CPU (user + system, from /proc) of the serve process tree, per task
  pg_cpu_ms        CPU of the PostgreSQL backends connected to the run's database, per task
  commits          `xact_commit` of the run's database (pg_stat_database), per task: every
                   transaction, reads in autocommit included

    .venv/bin/python bench/workers.py --backend postgres --workers 1 2 --repeat 3
    .venv/bin/python bench/workers.py --backend sqlite --workers 1 2 --repeat 3

Medians of `--repeat` runs are printed last, with the load average before and after: the
machine is shared, and a busy neighbour moves every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream import (
    HOST,
    HUB_KEY,
    PY,
    Proc,
    _free_port,
    _healthy,
    closed_loop,
    hub_request,
    start_fake,
)

DEFAULT_PG = os.environ.get(
    "IMAGEHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
#: PostgreSQL backends report their counters when idle, at the latest this long after
STATS_SETTLE_SECONDS = 11.0


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    """`root` and every process below it."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _tree_cpu(root: int) -> float:
    total = 0.0
    for pid in _tree(root):
        try:
            total += _cpu_seconds(pid)
        except OSError:
            continue
    return total


def _sql(url: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, args or None)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def _database(admin_url: str) -> str:
    name = f"imagehub_bench_{secrets.token_hex(4)}"
    _sql(admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def _drop(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    _sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backends_cpu(admin_url: str, name: str) -> dict[int, float]:
    pids = _sql(admin_url, "SELECT pid FROM pg_stat_activity WHERE datname = %s", name)
    seconds = {}
    for (pid,) in pids:
        try:
            seconds[pid] = _cpu_seconds(pid)
        except OSError:
            continue
    return seconds


def _commits(admin_url: str, name: str) -> int:
    rows = _sql(admin_url, "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", name)
    return int(rows[0][0])


def start_serve(fake: Proc, data_dir: Path, workers: int, db_url: str | None, log: Path) -> Proc:
    port = _free_port()
    env = {
        **os.environ,
        "IMAGEHUB_OPENAI_API_KEY": "sk-bench",
        "IMAGEHUB_OPENAI_BASE_URL": f"http://{HOST}:{fake.port}/v1",
        "IMAGEHUB_DEMO": "false",
        "IMAGEHUB_ADMIN_KEY": HUB_KEY,
        "IMAGEHUB_WORKER_CONCURRENCY": "64",
    }
    if db_url:
        env["IMAGEHUB_DATABASE_URL"] = db_url
    cmd = [PY, "-m", "imagehub.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--log-level", "warning"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    process = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return Proc("imagehub", process, port)


async def one_run(args: argparse.Namespace, workers: int, workdir: Path) -> dict[str, Any]:
    log = workdir / "processes.log"
    postgres = args.backend == "postgres"
    db_url = _database(args.postgres) if postgres else None
    name = urlsplit(db_url).path.lstrip("/") if db_url else ""
    fake = start_fake(args.delay, log)
    hub: Proc | None = None
    try:
        await _healthy(fake.port, "/stats", 10, fake.process)
        hub = start_serve(fake, workdir / f"data-{secrets.token_hex(3)}", workers, db_url, log)
        await _healthy(hub.port, "/healthz", 60, hub.process)
        auth = {"Authorization": f"Bearer {HUB_KEY}"}
        warm = max(args.concurrency * 4, args.tasks // 10)
        await closed_loop("hub", hub.port, hub_request, args.concurrency, warm, auth)
        if postgres:
            await asyncio.sleep(STATS_SETTLE_SECONDS)
            commits0 = _commits(args.postgres, name)
            pg0 = _backends_cpu(args.postgres, name)
        load0 = _loadavg()
        cpu0 = _tree_cpu(hub.process.pid)
        result = await closed_loop("hub", hub.port, hub_request, args.concurrency, args.tasks, auth)
        cpu1 = _tree_cpu(hub.process.pid)
        done = len(result.latencies)
        row: dict[str, Any] = {
            "backend": args.backend,
            "workers": workers,
            "concurrency": args.concurrency,
            "tasks": done,
            "errors": len(result.errors),
            "per_s": round(done / result.elapsed, 1),
            "p50_ms": round(result.percentile(50), 1),
            "hub_cpu_ms": round((cpu1 - cpu0) * 1000 / done, 3),
            "loadavg_before": load0,
        }
        if postgres:
            pg1 = _backends_cpu(args.postgres, name)
            pg_cpu = sum(t - pg0.get(pid, 0.0) for pid, t in pg1.items())
            await asyncio.sleep(STATS_SETTLE_SECONDS)
            # the settle waits add idle commits (polls, heartbeats): counted, and reported
            row["pg_cpu_ms"] = round(pg_cpu * 1000 / done, 3)
            row["commits"] = round((_commits(args.postgres, name) - commits0) / done, 2)
        row["loadavg_after"] = _loadavg()
        for error in result.errors[:3]:
            print(f"  error: {error}", file=sys.stderr, flush=True)
        return row
    except Exception:
        print(log.read_text()[-4000:], file=sys.stderr)
        raise
    finally:
        if hub is not None:
            hub.stop()
        fake.stop()
        if db_url:
            _drop(args.postgres, db_url)


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rows[0])
    for key in ("per_s", "p50_ms", "hub_cpu_ms", "pg_cpu_ms", "commits"):
        if key in out:
            out[key] = round(statistics.median(r[key] for r in rows), 3)
    out["runs"] = len(rows)
    out["loadavg"] = [r["loadavg_before"] for r in rows]
    out.pop("loadavg_before", None)
    out.pop("loadavg_after", None)
    return out


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    medians = []
    with tempfile.TemporaryDirectory(prefix="imagehub-bench-") as tmp:
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in args.workers}
        for _ in range(args.repeat):
            for workers in args.workers:  # interleaved: a busy minute hits every scenario
                row = await one_run(args, workers, Path(tmp))
                runs[workers].append(row)
                print(json.dumps(row), flush=True)
        for workers in args.workers:
            medians.append(_median(runs[workers]))
    for row in medians:
        print(json.dumps({"median": row}), flush=True)
    return medians


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--delay", type=float, default=0.05, help="upstream delay (s)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=DEFAULT_PG, help="a server's maintenance URL")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(json.dumps({"started": started, "cores": os.cpu_count()}), flush=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
