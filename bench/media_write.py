"""What a small image's file costs the event loop: `LocalMedia.put` of a 3 KB file, created on
the loop, against the hub's way (written into a spare: a nameless file a thread made ahead,
then linked under its name; `LocalMedia.SPARES`).

Each round writes `--files` files into a new folder beside the benchmarks' others, once each
way, one every `--interval` seconds (2 ms: a hub's rate at 500 tasks/s), and prints the loop
thread's CPU, the process's CPU and the wall time a file, and `file_create_us` (what creating a
file costs this machine now, `proccpu.py`). The way `none` keeps the bytes in memory
(`MemoryMedia`): what the pacing itself costs the loop, to subtract. `--churn N` first
creates and deletes N files, as a cleanup does: on ext4 new files may then cost more for
minutes.

    .venv/bin/python bench/media_write.py --files 2000 --rounds 3
    .venv/bin/python bench/media_write.py --files 2000 --rounds 3 --churn 40000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import proccpu
import uvloop

from imagehub.media import LocalMedia, MediaStore, MemoryMedia

DATA = os.urandom(3000)


async def one_way(way: str, files: int, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="imagehub-media-") as folder:
        media: MediaStore = MemoryMedia() if way == "none" else LocalMedia(Path(folder))
        if isinstance(media, LocalMedia):
            media.spares_work = way == "spares"
        await media.put(DATA, "image/png")  # the first spares, made before the clock starts
        await asyncio.sleep(0.2)
        cpu, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
        for _ in range(files):
            await media.put(DATA, "image/png")
            await asyncio.sleep(interval)
        cpu, process = time.thread_time() - cpu, time.process_time() - process
        wall = time.perf_counter() - wall
        await media.aclose()
    return {
        "way": way,
        "files": files,
        "loop_cpu_us": round(cpu / files * 1e6, 1),
        "process_cpu_us": round(process / files * 1e6, 1),
        "wall_us": round(wall / files * 1e6, 1),
    }


def churn(count: int) -> None:
    """Create and delete `count` files, as a benchmark's or a media cleanup's delete does."""
    folder = tempfile.mkdtemp(prefix="imagehub-churn-")
    for n in range(count):
        with open(os.path.join(folder, str(n)), "wb"):
            pass
    shutil.rmtree(folder)


async def bench(args: argparse.Namespace) -> None:
    for n in range(args.rounds):
        if args.churn:
            churn(args.churn)
        print(json.dumps({"round": n, "file_create_us": proccpu.file_create_us(60)}), flush=True)
        ways = ("none", "loop", "spares") if n % 2 == 0 else ("none", "spares", "loop")
        for way in ways:
            print(json.dumps(await one_way(way, args.files, args.interval)), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between files")
    parser.add_argument("--churn", type=int, default=0, help="files created and deleted first")
    uvloop.run(bench(parser.parse_args(argv)))  # the loop `imagehub serve` runs on


if __name__ == "__main__":
    main()
