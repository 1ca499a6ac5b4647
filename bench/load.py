"""Load generator for a running hub: completed tasks/s and submit→ready latency.

Each of `--concurrency` clients submits a task and waits until it is ready, then the next:

  wait  POST with `Prefer: wait=30` (one request per task); on 202, GET ?wait=30 until ready
  poll  POST (202), then GET ?wait=30 until ready

    .venv/bin/python bench/load.py --concurrency 32 --tasks 5000 --mode wait
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

#: an HTTP call: (method, path, JSON body or None, extra headers) -> (status, JSON body)
Call = Callable[[str, str, dict[str, Any] | None, dict[str, str]], Awaitable[tuple[int, Any]]]
MAX_FOLLOW_UPS = 10  # long-polls of 30 s each: a task not ready by then is an error


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (one connection)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def __call__(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._conn
        payload = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"Authorization: Bearer {self.key}", f"Content-Length: {len(payload)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            head.append("Content-Type: application/json")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        try:
            status_line = await reader.readuntil(b"\r\n")
            raw_headers = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.aclose()
            raise
        length, close = 0, False
        for line in raw_headers.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await reader.readexactly(length)
        if close:
            await self.aclose()
        return int(status_line.split()[1]), json.loads(data) if data else None

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


def httpx_call(client: httpx.AsyncClient) -> Call:
    async def call(
        method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        response = await client.request(method, path, json=body, headers=headers)
        return response.status_code, response.json()

    return call


async def one_task(call: Call, args: argparse.Namespace, n: int, started: float) -> float:
    """Submit one task and wait until it is ready; seconds from `started` to ready."""
    body = {"model": args.model, "input": {"prompt": f"bench task {n}"}}
    prefer = {"Prefer": "wait=30"} if args.mode == "wait" else {}
    status, task = await call("POST", "/hub/v1/tasks", body, prefer)
    for _ in range(MAX_FOLLOW_UPS):
        if status not in (200, 202):
            raise RuntimeError(f"HTTP {status}: {task}")
        if task["ready"]:
            if task["status"] != "succeeded":
                raise RuntimeError(f"task {task['task_id']} {task['status']}")
            return time.perf_counter() - started
        status, task = await call("GET", f"/hub/v1/tasks/{task['task_id']}?wait=30", None, {})
    raise RuntimeError(f"task {task['task_id']} not ready")


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0


async def run_phase(
    calls: list[Call], args: argparse.Namespace, tasks: int, seconds: float
) -> Phase:
    """Run up to `tasks` tasks (or until `seconds` pass) on every client at once.

    With `--rate`, task n is due at start + n / rate (open loop) and its latency counts from
    then, so time spent waiting for a free client is included.
    """
    phase, counter = Phase(), iter(range(tasks))
    started = time.perf_counter()
    deadline = started + seconds

    async def client(call: Call) -> None:
        for n in counter:
            due = started + n / args.rate if args.rate else time.perf_counter()
            if due > deadline:
                return
            await asyncio.sleep(due - time.perf_counter())
            try:
                phase.latencies.append(await one_task(call, args, n, due))
            except Exception as exc:
                phase.errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(client(call) for call in calls))
    phase.elapsed = time.perf_counter() - started
    return phase


def summary(phase: Phase, args: argparse.Namespace) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in phase.latencies)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {
        "mode": args.mode,
        "client": args.client,
        "rate": args.rate,
        "concurrency": args.concurrency,
        "tasks": len(ms),
        "errors": len(phase.errors),
        "elapsed_s": round(phase.elapsed, 3),
        "tasks_per_s": round(len(ms) / phase.elapsed, 1) if phase.elapsed else 0.0,
        "p50_ms": round(cuts[49], 2) if ms else None,
        "p90_ms": round(cuts[89], 2) if ms else None,
        "p99_ms": round(cuts[98], 2) if ms else None,
        "max_ms": round(ms[-1], 2) if ms else None,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    if url.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("bench/load.py only talks to 127.0.0.1")
    pool: httpx.AsyncClient | None = None
    raws: list[RawClient] = []
    if args.client == "httpx":
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        pool = httpx.AsyncClient(
            base_url=args.url,
            headers={"Authorization": f"Bearer {args.key}"},
            limits=limits,
            timeout=httpx.Timeout(60.0),
        )
        calls: list[Call] = [httpx_call(pool)] * args.concurrency
    else:
        raws = [RawClient("127.0.0.1", url.port or 80, args.key) for _ in range(args.concurrency)]
        calls = list(raws)
    try:
        await run_phase(calls, args, args.warmup, args.seconds)
        phase = await run_phase(calls, args, args.tasks, args.seconds)
    finally:
        if pool is not None:
            await pool.aclose()
        for raw in raws:
            await raw.aclose()
    for error in phase.errors[:5]:
        print(f"error: {error}", file=sys.stderr)
    return summary(phase, args)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="imagehub load generator")
    parser.add_argument("--url", default="http://127.0.0.1:18765")
    parser.add_argument("--key", default="ih_bench")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=3000, help="measured tasks (upper bound)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound per phase")
    parser.add_argument("--warmup", type=int, default=200, help="tasks run first, not measured")
    parser.add_argument("--model", default="nano-banana")
    parser.add_argument("--mode", choices=("wait", "poll"), default="wait")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--rate", type=float, help="open loop: start this many tasks/s")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['mode']}/{result['client']} c={result['concurrency']}"
        f"{f' rate={args.rate:g}/s' if args.rate else ''}: "
        f"{result['tasks']} tasks, {result['errors']} errors in {result['elapsed_s']} s -> "
        f"{result['tasks_per_s']} tasks/s; submit→ready ms p50 {result['p50_ms']} "
        f"p90 {result['p90_ms']} p99 {result['p99_ms']} max {result['max_ms']}"
    )


if __name__ == "__main__":
    main()
