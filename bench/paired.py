"""Two checkouts of the hub measured paired: both up at once against one fake upstream, c=32
load alternating between them in blocks, the ratio of their loop time a task taken per pair of
blocks.

On a machine whose speed moves from one minute to the next, two runs one after the other differ
by more than a change of a few percent; two hubs measured block by block, in alternating order,
see the same machine. Each block is `--tasks` tasks at `--concurrency` through one path
(`openai`: `/v1/images/generations`; `native`: `POST /hub/v1/tasks` with `Prefer: wait`); the
figure is the median, over `--blocks` pairs, of B's loop CPU a task over A's (and of B's
tasks/s over A's, the same way):

    .venv/bin/python bench/paired.py --a <other checkout>/src --b src --blocks 10

Both hubs start on a fresh data directory and are warmed with 1,500 tasks each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import loopbench
import proccpu
import upstream

WARM_UP = 1500


async def block(
    hub: upstream.Proc, request: upstream.Request, args: argparse.Namespace
) -> tuple[float, float]:
    """Loop CPU ms a task and tasks/s over one block (`loopbench.scenario`'s measures)."""
    row = await loopbench.scenario("block", hub, request, args.concurrency, args.tasks)
    if row["errors"]:
        raise RuntimeError(f"{row['errors']} of {args.tasks} requests failed")
    return float(row["loop_cpu_ms"]), float(row["per_s"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    request = loopbench.openai_request if args.path == "openai" else loopbench.native_request
    with tempfile.TemporaryDirectory(prefix="imagehub-paired-") as tmp:
        log = Path(tmp) / "processes.log"
        fake = upstream.start_fake(0.05, log, args.jitter)
        a = loopbench.start_hub(fake, Path(tmp) / "a", Path(args.a), log)
        b = loopbench.start_hub(fake, Path(tmp) / "b", Path(args.b), log)
        try:
            await upstream._healthy(fake.port, "/stats", 20, fake.process)
            for hub in (a, b):
                await upstream._healthy(hub.port, "/healthz", 60, hub.process)
                await upstream.closed_loop(
                    "warm", hub.port, request, args.concurrency, WARM_UP, loopbench.AUTH
                )
            ratios, speeds = [], []
            for n in range(args.blocks):
                # alternating which goes first: neither always meets the machine a block later
                first, second = (a, b) if n % 2 == 0 else (b, a)
                measured = {id(first): await block(first, request, args)}
                measured[id(second)] = await block(second, request, args)
                (a_loop, a_per_s), (b_loop, b_per_s) = measured[id(a)], measured[id(b)]
                ratios.append(b_loop / a_loop)
                speeds.append(b_per_s / a_per_s)
                row = {
                    "block": n,
                    "a_loop_ms": round(a_loop, 3),
                    "b_loop_ms": round(b_loop, 3),
                    "a_per_s": a_per_s,
                    "b_per_s": b_per_s,
                }
                print(json.dumps({**row, "b_over_a": round(ratios[-1], 3)}), flush=True)
        finally:
            a.stop()
            b.stop()
            fake.stop()
    return {
        "path": args.path,
        "blocks": args.blocks,
        "median_b_over_a": round(statistics.median(ratios), 3),
        "range": [round(min(ratios), 3), round(max(ratios), 3)],
        "median_per_s_b_over_a": round(statistics.median(speeds), 3),
        "per_s_range": [round(min(speeds), 3), round(max(speeds), 3)],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="the `src` folder of checkout A")
    parser.add_argument("--b", required=True, help="the `src` folder of checkout B")
    parser.add_argument("--path", choices=["openai", "native"], default="openai")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=500, help="tasks a block")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--jitter", type=float, default=0.0, help=upstream.JITTER_HELP)
    args = parser.parse_args(argv)
    print(json.dumps({"file_create_us": proccpu.file_create_us()}))
    print(json.dumps(asyncio.run(run(args))))
    print(json.dumps({"file_create_us": proccpu.file_create_us()}))


if __name__ == "__main__":
    main()
