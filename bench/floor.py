"""The event loop's floor per task: the same HTTP server, upstream client and durable writes
as the hub, with none of the hub's own logic, beside the hub in the same run.

A floor server (`floor.py server`) is a bare ASGI app on the hub's engines: uvicorn with
uvloop and httptools, an aiohttp client session, orjson, SQLite on the loop with one group
commit per turn of the loop. Each level adds a part of a task's work:

  http      read the JSON body, wait as long as the upstream would, answer a fixed body
  proxy     + one call to the fake upstream (50 ms), its JSON parsed, its base64 answered
  durable   + the hub's eight accounting statements in two transactions (task, key
            reservation, fair share, spend; finish, journal row, spend and key settled), the
            image's base64 decoded and written to a new file by the hub's own `LocalMedia`
            (into a nameless file a thread made ahead, then linked under its name)

`durable` is a task's whole durable work with nothing else: no validation, auth, catalog,
routing, metrics, wake-ups or rendering. The hub (`imagehub serve`, OpenAI-compatible path)
runs in the same round against the same fake upstream. Each target answers one client first
(c=1: its p50 above the upstream's own), then 32 (c=32: tasks/s and CPU per task, read from
/proc per thread as in `loopbench.py`).

    .venv/bin/python bench/floor.py --rounds 2

`--calls` counts instead the Python calls a task makes on each target's loop thread at c=32
(each run under `profiled.py`, cProfile on for the timed tasks only); no time is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import pstats
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import loopbench
import proccpu
import upstream

from imagehub.media import LocalMedia

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ("http", "proxy", "durable")

SCHEMA = """
CREATE TABLE tasks (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, model TEXT NOT NULL,
    input TEXT NOT NULL, status TEXT NOT NULL, output TEXT, created_at REAL NOT NULL,
    run_after REAL NOT NULL, finished_at REAL);
CREATE INDEX tasks_queue ON tasks (run_after, created_at) WHERE status = 'queued';
CREATE INDEX tasks_history ON tasks (tenant_id, created_at DESC, id DESC);
CREATE TABLE api_keys (id TEXT PRIMARY KEY, active_tasks INTEGER NOT NULL,
    reserved_micros INTEGER NOT NULL, spent_micros INTEGER NOT NULL);
CREATE TABLE fair_shares (tenant_id TEXT PRIMARY KEY, last_fair REAL NOT NULL);
CREATE TABLE spend (task_id TEXT PRIMARY KEY, key_id TEXT NOT NULL,
    reserved_micros INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE attempts (task_id TEXT NOT NULL, number INTEGER NOT NULL, route TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL NOT NULL, error TEXT);
CREATE INDEX attempts_finished ON attempts (finished_at);
INSERT INTO api_keys VALUES ('key', 0, 0, 0);
"""


# ---------------------------------------------------------------- the floor server


class GroupCommit:
    """The writes of one turn of the loop in one transaction, on the loop's connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pending: list[tuple[Callable[[sqlite3.Connection], None], asyncio.Future[None]]] = []

    def write(self, run: Callable[[sqlite3.Connection], None]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self.pending:
            loop.call_soon(self.flush)
        self.pending.append((run, future))
        return future

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        self.conn.execute("BEGIN IMMEDIATE")
        for run, _ in pending:
            run(self.conn)
        self.conn.execute("COMMIT")
        for _, future in pending:
            future.set_result(None)


def _submit(task_id: str, body: bytes) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        now = time.time()
        conn.execute(
            "UPDATE api_keys SET active_tasks = active_tasks + 1, "
            "reserved_micros = reserved_micros + 40000 WHERE id = 'key'"
        )
        conn.execute(
            "INSERT INTO fair_shares VALUES ('t', :now) "
            "ON CONFLICT (tenant_id) DO UPDATE SET last_fair = :now",
            {"now": now},
        )
        conn.execute(
            "INSERT INTO tasks VALUES (:id, 't', 'gpt-image-2', :input, 'running', NULL, "
            ":now, :now, NULL)",
            {"id": task_id, "input": body, "now": now},
        )
        conn.execute("INSERT INTO spend VALUES (:id, 'key', 40000, 'reserved')", {"id": task_id})

    return run


def _finish(task_id: str, output: bytes, started: float) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        now = time.time()
        conn.execute(
            "UPDATE tasks SET status = 'succeeded', output = :output, finished_at = :now "
            "WHERE id = :id",
            {"id": task_id, "output": output, "now": now},
        )
        conn.execute(
            "INSERT INTO attempts VALUES (:id, 1, 'openai', :started, :now, NULL)",
            {"id": task_id, "started": started, "now": now},
        )
        conn.execute("UPDATE spend SET state = 'settled' WHERE task_id = :id", {"id": task_id})
        conn.execute(
            "UPDATE api_keys SET active_tasks = active_tasks - 1, "
            "reserved_micros = reserved_micros - 40000, "
            "spent_micros = spent_micros + 40000 WHERE id = 'key'"
        )

    return run


async def _respond(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class FloorApp:
    """The bare ASGI app of one level."""

    def __init__(
        self, level: str, upstream_url: str, data_dir: Path, delay: float, jitter: float
    ) -> None:
        self.level = level
        self.next_delay = upstream.delays(delay, jitter)
        self.upstream_url = upstream_url
        self.data_dir = data_dir
        self.ids = iter(range(1 << 62))
        self.http: Any = None
        self.writes: GroupCommit | None = None
        self.files: LocalMedia | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["path"] == "/healthz":
            await _respond(send, b'{"ok":true}')
        else:
            await _respond(send, await self.task(await _body(receive)))

    async def lifespan(self, receive: Any, send: Any) -> None:
        import aiohttp

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.http = aiohttp.ClientSession()
                conn = sqlite3.connect(str(self.data_dir / "floor.db"), isolation_level=None)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript(SCHEMA)
                self.writes = GroupCommit(conn)
                self.files = LocalMedia(self.data_dir / "media")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.http.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def task(self, raw: bytes) -> bytes:
        import orjson

        request = orjson.loads(raw)
        if self.level == "http":
            # the same waves as against the upstream
            await asyncio.sleep(self.next_delay())
            return orjson.dumps({"created": 1, "data": [{"b64_json": "aW1hZ2U="}]})
        task_id, started = f"t_{next(self.ids)}", time.time()
        durable = self.writes if self.level == "durable" else None
        if durable:
            await durable.write(_submit(task_id, raw))
        payload = orjson.dumps({"model": request.get("model"), "prompt": request.get("prompt")})
        headers = {"Content-Type": "application/json"}
        async with self.http.post(self.upstream_url, data=payload, headers=headers) as answer:
            result = orjson.loads(await answer.read())
        b64 = result["data"][0]["b64_json"]
        if durable:
            assert self.files is not None
            file_id = await self.files.put(base64.b64decode(b64), "image/png")
            await durable.write(_finish(task_id, orjson.dumps({"file": file_id}), started))
        return orjson.dumps({"created": 1, "data": [{"b64_json": b64}]})


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    app = FloorApp(args.level, args.upstream, Path(args.data_dir), args.delay, args.jitter)
    uvicorn.run(
        app,
        host=upstream.HOST,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


# ---------------------------------------------------------------- the benchmark


def start_floor(
    fake: upstream.Proc,
    level: str,
    data_dir: Path,
    args: argparse.Namespace,
    log: Path,
    wrapper: tuple[str, ...] = (),
) -> upstream.Proc:
    data_dir.mkdir(parents=True)
    port = upstream._free_port()
    cmd = [upstream.PY, *wrapper, __file__, "server", "--level", level, "--port", str(port)]
    cmd += ["--upstream", f"http://{upstream.HOST}:{fake.port}/v1/images/generations"]
    cmd += ["--data-dir", str(data_dir), "--delay", str(args.delay), "--jitter", str(args.jitter)]
    process = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return upstream.Proc(f"floor-{level}", process, port)


async def measure(
    target: str, proc: upstream.Proc, args: argparse.Namespace, floor_ms: float
) -> dict[str, Any]:
    await upstream._healthy(proc.port, "/healthz", 60, proc.process)
    await upstream.closed_loop("warm", proc.port, loopbench.openai_request, 8, 400, loopbench.AUTH)
    one = await upstream.closed_loop(
        target, proc.port, loopbench.openai_request, 1, args.c1_tasks, loopbench.AUTH
    )
    sample = proccpu.Sample(proc.process.pid).start()
    result = await upstream.closed_loop(
        target, proc.port, loopbench.openai_request, args.concurrency, args.tasks, loopbench.AUTH
    )
    cpu = sample.since()
    done = max(len(result.latencies), 1)
    row = {
        "target": target,
        "tasks": len(result.latencies),
        "errors": len(result.errors),
        "per_s": round(len(result.latencies) / result.elapsed, 1),
        "loop_cpu_ms": round(cpu["loop_cpu_s"] * 1000 / done, 3),
        "tree_cpu_ms": round(cpu["tree_cpu_s"] * 1000 / done, 3),
        "c1_overhead_ms": round(one.percentile(50) - floor_ms, 2),
    }
    print(json.dumps(row), flush=True)
    return row


async def count_calls(
    target: str, proc: upstream.Proc, args: argparse.Namespace, profile: Path
) -> dict[str, Any]:
    """The Python calls a task makes on the loop's thread at c=32 (`profiled.py`: a coroutine's
    every resumption counts as a call); the profiler slows the process, so no time is taken."""
    await upstream._healthy(proc.port, "/healthz", 60, proc.process)
    request, auth = loopbench.openai_request, loopbench.AUTH
    await upstream.closed_loop("warm", proc.port, request, args.concurrency, 1000, auth)
    proc.process.send_signal(signal.SIGUSR1)
    result = await upstream.closed_loop(
        target, proc.port, request, args.concurrency, args.tasks, auth
    )
    proc.process.send_signal(signal.SIGUSR2)
    for _ in range(100):  # the process writes its profile when the signal reaches it
        await asyncio.sleep(0.1)
        if await asyncio.to_thread(profile.exists):
            break
    await asyncio.sleep(0.5)
    stats = (await asyncio.to_thread(pstats.Stats, str(profile))).stats  # type: ignore[attr-defined]
    done = max(len(result.latencies), 1)
    row = {
        "target": target,
        "tasks": len(result.latencies),
        "errors": len(result.errors),
        "calls": round(sum(entry[1] for entry in stats.values()) / done, 1),
        "functions": sum(1 for entry in stats.values() if entry[1] >= done / 2),
    }
    print(json.dumps(row), flush=True)
    return row


async def calls(args: argparse.Namespace, workdir: Path) -> None:
    log = workdir / "processes.log"
    fake = upstream.start_fake(args.delay, log, args.jitter)
    wrapper = (str(Path(__file__).with_name("profiled.py")),)
    rows = []
    try:
        await upstream._healthy(fake.port, "/stats", 20, fake.process)
        for level in (*LEVELS, "hub"):
            profile = workdir / f"{level}.prof"
            os.environ["BENCH_PROFILE"] = str(profile)
            if level == "hub":
                proc = loopbench.start_hub(fake, workdir / "hub", ROOT / "src", log, 1, wrapper)
                target = "hub (OpenAI path)"
            else:
                proc = start_floor(fake, level, workdir / f"floor-{level}", args, log, wrapper)
                target = f"floor {level}"
            try:
                rows.append(await count_calls(target, proc, args, profile))
            finally:
                proc.stop()
    finally:
        fake.stop()
    print("| target | Python calls a task | functions called at least every other task |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['target']} | {row['calls']:.0f} | {row['functions']} |")


async def one_round(args: argparse.Namespace, workdir: Path, n: int) -> list[dict[str, Any]]:
    log = workdir / "processes.log"
    fake = upstream.start_fake(args.delay, log, args.jitter)
    rows = []
    try:
        await upstream._healthy(fake.port, "/stats", 20, fake.process)
        direct = await upstream.closed_loop(
            "direct", fake.port, upstream.direct_request, 1, args.c1_tasks, {}
        )
        floor_ms = direct.percentile(50)
        for level in LEVELS:
            proc = start_floor(fake, level, workdir / f"floor-{level}-{n}", args, log)
            try:
                rows.append(await measure(f"floor {level}", proc, args, floor_ms))
            finally:
                proc.stop()
        hub = loopbench.start_hub(fake, workdir / f"hub-{n}", ROOT / "src", log)
        try:
            rows.append(await measure("hub (OpenAI path)", hub, args, floor_ms))
        finally:
            hub.stop()
    finally:
        fake.stop()
    return rows


async def bench(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    if args.calls:
        with tempfile.TemporaryDirectory(prefix="imagehub-floor-") as tmp:
            await calls(args, Path(tmp))
        return
    print(json.dumps({"file_create_us": proccpu.file_create_us()}), flush=True)
    with tempfile.TemporaryDirectory(prefix="imagehub-floor-") as tmp:
        for n in range(args.rounds):
            rows += await one_round(args, Path(tmp), n)
    keys = ("per_s", "loop_cpu_ms", "tree_cpu_ms", "c1_overhead_ms")
    print("| target | c=32 tasks/s | c=32 loop CPU ms | c=32 tree CPU ms | c=1 overhead p50 ms |")
    print("|---|---|---|---|---|")
    for target in dict.fromkeys(r["target"] for r in rows):
        mine = [r for r in rows if r["target"] == target]
        per_s, loop, tree, c1 = (statistics.median(r[k] for r in mine) for k in keys)
        print(f"| {target} | {per_s:.0f} | {loop:.3f} | {tree:.3f} | {c1:.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    server = sub.add_parser("server", help="run one floor server")
    server.add_argument("--level", choices=LEVELS, required=True)
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--upstream", required=True)
    server.add_argument("--data-dir", required=True)
    server.add_argument("--delay", type=float, required=True)
    server.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--c1-tasks", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.05, help="upstream delay (s)")
    parser.add_argument("--jitter", type=float, default=0.0, help=upstream.JITTER_HELP)
    parser.add_argument(
        "--calls", action="store_true", help="count Python calls a task instead (cProfile)"
    )
    args = parser.parse_args(argv)
    if args.command == "server":
        serve(args)
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
