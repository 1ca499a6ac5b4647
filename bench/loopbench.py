"""Tasks/s, overhead and CPU per task (process tree and event-loop thread) in front of the fake
OpenAI upstream, for this checkout and, alternated with it, another one (the previous main).

Per round and per checkout: a fresh fake upstream (`bench/upstream.py fake`, 50 ms) and a fresh
`imagehub serve` (SQLite, the real worker and the `openai` provider), then

  direct c=1    the upstream alone: its own p50, the floor the overhead is measured from
  native c=1    `POST /hub/v1/tasks` with `Prefer: wait=30`, one client
  openai c=1    `POST /v1/images/generations` (b64_json answer), one client
  native c=32   as above, 32 clients back to back (closed loop)
  openai c=32

CPU per task is read from /proc over each scenario (`bench/proccpu.py`): the hub's process
tree, and its main thread, which runs the event loop. Checkouts alternate within each round, so
both see the same background load; the medians over the rounds are printed last. With
`--workers N` both hubs run as `serve --workers N`, and the loop figure is the N loops' sum.

    .venv/bin/python bench/loopbench.py --other <checkout>/src --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import proccpu
import upstream

ROOT = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": f"Bearer {upstream.HUB_KEY}"}
OPENAI_BODY = {"model": "gpt-image-2", "prompt": "bench", "quality": "low"}


async def native_request(conn: upstream.Connection) -> None:
    await upstream.hub_request(conn)


async def openai_request(conn: upstream.Connection) -> None:
    status, body = await conn.call("POST", "/v1/images/generations", OPENAI_BODY)
    if status != 200 or not body.get("data") or "b64_json" not in body["data"][0]:
        raise RuntimeError(f"HTTP {status}: {str(body)[:200]}")


def start_hub(
    fake: upstream.Proc,
    data_dir: Path,
    src: Path,
    log: Path,
    workers: int = 1,
    wrapper: tuple[str, ...] = (),
) -> upstream.Proc:
    """`imagehub serve` from `src` in front of `fake`; `wrapper` runs it (`profiled.py`)."""
    port = upstream._free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "IMAGEHUB_OPENAI_API_KEY": "sk-bench",
        "IMAGEHUB_OPENAI_BASE_URL": f"http://{upstream.HOST}:{fake.port}/v1",
        "IMAGEHUB_DEMO": "false",
        "IMAGEHUB_ADMIN_KEY": upstream.HUB_KEY,
        "IMAGEHUB_WORKER_CONCURRENCY": "64",
    }
    cmd = [upstream.PY, *wrapper, "-m", "imagehub.cli", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--log-level", "warning"]
    if workers != 1:  # checkouts from before `--workers` (issue 11's own baseline) serve too
        cmd += ["--workers", str(workers)]
    process = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return upstream.Proc("imagehub", process, port)


async def scenario(
    name: str, hub: upstream.Proc, request: upstream.Request, concurrency: int, count: int
) -> dict[str, Any]:
    sample = proccpu.Sample(hub.process.pid).start()
    result = await upstream.closed_loop(name, hub.port, request, concurrency, count, AUTH)
    cpu = sample.since()
    done = max(len(result.latencies), 1)
    return {
        "scenario": name,
        "concurrency": concurrency,
        "tasks": len(result.latencies),
        "errors": len(result.errors),
        "per_s": round(len(result.latencies) / result.elapsed, 1),
        "p50_ms": round(result.percentile(50), 2),
        "p99_ms": round(result.percentile(99), 2),
        "tree_cpu_ms": round(cpu["tree_cpu_s"] * 1000 / done, 3),
        "loop_cpu_ms": round(cpu["loop_cpu_s"] * 1000 / done, 3),
    }


async def one_checkout(
    label: str, src: Path, args: argparse.Namespace, workdir: Path
) -> list[dict[str, Any]]:
    log = workdir / "processes.log"
    fake = upstream.start_fake(args.delay, log, args.jitter)
    hub = start_hub(fake, workdir / f"hub-{label}", src, log, args.workers)
    try:
        await upstream._healthy(fake.port, "/stats", 20, fake.process)
        await upstream._healthy(hub.port, "/healthz", 60, hub.process)
        direct = await upstream.closed_loop(
            "direct", fake.port, upstream.direct_request, 1, args.c1_tasks, {}
        )
        floor = direct.percentile(50)
        # warm-up: connections, the key cache, the upstream session
        await upstream.closed_loop("warm", hub.port, native_request, 8, 200, AUTH)
        await upstream.closed_loop("warm", hub.port, openai_request, 8, 200, AUTH)
        rows = []
        for name, request, concurrency, count in (
            ("native", native_request, 1, args.c1_tasks),
            ("openai", openai_request, 1, args.c1_tasks),
            ("native", native_request, 32, args.tasks),
            ("openai", openai_request, 32, args.tasks),
        ):
            row = await scenario(name, hub, request, concurrency, count)
            row["overhead_p50_ms"] = round(row["p50_ms"] - floor, 2)
            row["checkout"] = label
            row["workers"] = args.workers
            row["loadavg"] = _loadavg()[0]
            print(json.dumps(row), flush=True)
            rows.append(row)
        return rows
    finally:
        hub.stop()
        fake.stop()


def _loadavg() -> list[str]:
    with open("/proc/loadavg") as file:
        return file.read().split()[:3]


def summary(rows: list[dict[str, Any]]) -> None:
    """Medians (and ranges) per checkout and scenario."""
    keys = ("per_s", "overhead_p50_ms", "tree_cpu_ms", "loop_cpu_ms")
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["checkout"], row["scenario"], row["concurrency"]), []).append(row)
    print("| checkout | scenario | c | " + " | ".join(keys) + " |")
    print("|---" * (3 + len(keys)) + "|")
    for (label, name, concurrency), group in sorted(groups.items(), key=lambda g: g[0][1:]):
        cells = []
        for key in keys:
            values = [row[key] for row in group]
            cells.append(f"{statistics.median(values):g} ({min(values):g} to {max(values):g})")
        print(f"| {label} | {name} | {concurrency} | " + " | ".join(cells) + " |")


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    checkouts = [("this", ROOT / "src")]
    if args.other is not None:
        checkouts.append(("other", args.other.resolve()))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="imagehub-loopbench-") as tmp:
        for number in range(args.rounds):
            # alternate which goes first, so neither always meets the same moment of load
            order = checkouts if number % 2 == 0 else checkouts[::-1]
            for label, src in order:
                workdir = Path(tmp) / f"round-{number}"
                workdir.mkdir(exist_ok=True)
                rows += await one_checkout(label, src, args, workdir)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other", type=Path, help="the src folder of another checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per c=32 scenario")
    parser.add_argument("--c1-tasks", type=int, default=200, help="tasks per c=1 scenario")
    parser.add_argument("--delay", type=float, default=0.05, help="upstream delay (s)")
    parser.add_argument("--jitter", type=float, default=0.0, help=upstream.JITTER_HELP)
    parser.add_argument(
        "--workers", type=int, default=1, help="`serve --workers N` (loop CPU: the N loops' sum)"
    )
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    args = parser.parse_args(argv)
    print(json.dumps({"loadavg_before": _loadavg(), "file_create_us": proccpu.file_create_us()}))
    rows = asyncio.run(run(args))
    print(json.dumps({"loadavg_after": _loadavg(), "file_create_us": proccpu.file_create_us()}))
    summary(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
