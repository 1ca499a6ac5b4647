"""What a small image's file write costs the event loop: `LocalMedia.put` of a 3 KB file, always
on the loop, against the hub's own choice (on the loop while writes are quick, on a thread
while the disk is slow: `LocalMedia.SLOW_WRITE_SECONDS`).

Each round writes `--files` files into a new folder beside the benchmarks' others, once each
way, and prints the loop thread's CPU and the wall time a file, how many writes went to a
thread, and `file_create_us` (what creating a file costs this machine now, `proccpu.py`):

    .venv/bin/python bench/media_write.py --files 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import proccpu
import uvloop

from imagehub.media import LocalMedia

DATA = os.urandom(3000)


async def one_way(way: str, files: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="imagehub-media-") as folder:
        media = LocalMedia(Path(folder))
        if way == "loop":
            media.SLOW_WRITE_SECONDS = float("inf")
        threaded = 0
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(files):
            threaded += media.write_seconds >= media.SLOW_WRITE_SECONDS
            await media.put(DATA, "image/png")
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return {
        "way": way,
        "files": files,
        "loop_cpu_us": round(cpu / files * 1e6, 1),
        "wall_us": round(wall / files * 1e6, 1),
        "on_a_thread": threaded,
    }


async def bench(args: argparse.Namespace) -> None:
    for n in range(args.rounds):
        print(json.dumps({"round": n, "file_create_us": proccpu.file_create_us(60)}), flush=True)
        for way in ("loop", "adaptive"):
            print(json.dumps(await one_way(way, args.files)), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    uvloop.run(bench(parser.parse_args(argv)))  # the loop `imagehub serve` runs on


if __name__ == "__main__":
    main()
