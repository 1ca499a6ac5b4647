"""Where the memory of the tasks in flight goes: a tracemalloc snapshot diff of `imagehub serve`.

A fake upstream (`upstream.py fake`) holds every call; `imagehub serve` runs under tracemalloc
(this script's `hub` command) and dumps a snapshot on SIGUSR1. After a warm-up, one snapshot at
rest, then `--tasks` tasks submitted and held at the upstream, then a second one: the difference,
grouped by traceback (or by line), per task in flight, largest first.

    .venv/bin/python bench/heap.py --tasks 2000
    .venv/bin/python bench/heap.py --tasks 2000 --group lineno --frames 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upstream  # a sibling script, not a package


def hub(argv: list[str]) -> int:
    """`imagehub serve` under tracemalloc; SIGUSR1 dumps a snapshot to $HEAP_SNAPSHOT."""
    tracemalloc.start(int(os.environ.get("HEAP_FRAMES", "12")))
    target = os.environ["HEAP_SNAPSHOT"]

    def dump(*_: object) -> None:
        tracemalloc.take_snapshot().dump(target + ".part")
        os.replace(target + ".part", target)

    signal.signal(signal.SIGUSR1, dump)
    from imagehub.cli import main

    return main(argv)


async def _snapshot(proc: subprocess.Popen[bytes], path: Path) -> tracemalloc.Snapshot:
    await asyncio.to_thread(path.unlink, missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            raise RuntimeError("no snapshot")
        await asyncio.sleep(0.2)
    return await asyncio.to_thread(tracemalloc.Snapshot.load, str(path))


def _start_hub(port: int, workdir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "hub", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(workdir / "data"), "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def measure(args: argparse.Namespace, workdir: Path) -> None:
    log = workdir / "processes.log"
    fake = upstream.start_fake(args.hold, log)
    port = upstream._free_port()
    env = {
        **os.environ,
        "IMAGEHUB_OPENAI_API_KEY": "sk-bench",
        "IMAGEHUB_OPENAI_BASE_URL": f"http://{upstream.HOST}:{fake.port}/v1",
        "IMAGEHUB_DEMO": "false",
        "IMAGEHUB_ADMIN_KEY": upstream.HUB_KEY,
        "IMAGEHUB_WORKER_CONCURRENCY": str(args.tasks + args.warm + 64),
        "HEAP_SNAPSHOT": str(workdir / "snapshot"),
        "HEAP_FRAMES": str(args.frames),
    }
    proc = _start_hub(port, workdir, env, log)
    try:
        await upstream._healthy(fake.port, "/stats", 10, fake.process)
        await upstream._healthy(port, "/healthz", 300, proc)
        auth = {"Authorization": f"Bearer {upstream.HUB_KEY}"}
        # a warm-up held at the upstream too: sessions, connections, caches made once
        await upstream._submit_all(port, auth, args.warm)
        await upstream._wait_in_flight(fake.port, args.warm, time.perf_counter() + 60)
        before = await _snapshot(proc, workdir / "snapshot")
        await upstream._submit_all(port, auth, args.tasks)
        wanted = args.warm + args.tasks
        seen = await upstream._wait_in_flight(fake.port, wanted, time.perf_counter() + 120)
        await asyncio.sleep(1)
        after = await _snapshot(proc, workdir / "snapshot")
    finally:
        proc.terminate()
        proc.wait(30)
        fake.stop()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        before.dump(str(args.save / "before"))
        after.dump(str(args.save / "after"))
    report(before, after, args, seen - args.warm)


def report(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, args: argparse.Namespace, held: int
) -> None:
    stats = after.compare_to(before, args.group, cumulative=args.group != "traceback")
    total = sum(s.size_diff for s in stats)
    count = sum(s.count_diff for s in stats)
    print(f"tasks held at the upstream: {held}")
    print(f"traced: {total / held:,.0f} B and {count / held:.1f} blocks per task in flight\n")
    for stat in stats[: args.top]:
        if abs(stat.size_diff) / held < args.min_bytes:
            continue
        print(f"{stat.size_diff / held:8,.0f} B {stat.count_diff / held:6.1f} blocks")
        frames = stat.traceback.format(limit=args.frames, most_recent_first=True)
        for line in frames[: args.lines]:
            print("    " + line.strip())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "hub":
        sys.exit(hub(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--hold", type=float, default=120.0, help="upstream delay (s)")
    parser.add_argument("--frames", type=int, default=12, help="frames kept per allocation")
    parser.add_argument("--group", default="traceback", choices=["traceback", "lineno", "filename"])
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--lines", type=int, default=6, help="frames shown per group")
    parser.add_argument("--min-bytes", type=float, default=16.0, help="per task, to be shown")
    parser.add_argument("--save", type=Path, help="keep both snapshots in this folder")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="imagehub-heap-") as path:
        asyncio.run(measure(args, Path(path)))


if __name__ == "__main__":
    main()
