"""What an idle gap costs: one client, one task at a time, in front of fake upstreams that
answer after 0, 5, 20 and 50 ms, for the hub and for the fake upstream alone.

With no gap (0 ms) the processes never sleep between tasks; with a 50 ms gap (the c=1
scenario of `loopbench.py`) every task starts on a core woken from idle. The same work then
costs the hub, the fake upstream and this load generator several times the CPU, so the hub's
overhead over the upstream grows with the gap although it does nothing more. Per delay, a fresh
fake and a fresh `imagehub serve` (SQLite, the OpenAI route):

  direct_p50_ms     the fake upstream alone, as this client sees it
  overhead_p50_ms   the hub's p50 (OpenAI `generations`) minus direct_p50_ms
  loop_cpu_ms       the hub's event-loop thread per task
  fake_cpu_ms       the fake upstream's CPU per request it answered for the hub (the same
                    code, whatever the delay: its growth is the machine's, not the hub's)

    .venv/bin/python bench/idle.py --tasks 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import loopbench
import proccpu
import upstream


async def one_delay(delay: float, tasks: int, workdir: Path) -> dict[str, float]:
    log = workdir / "processes.log"
    fake = upstream.start_fake(delay, log)
    hub = loopbench.start_hub(fake, workdir / f"hub-{delay}", loopbench.ROOT / "src", log)
    try:
        await upstream._healthy(fake.port, "/stats", 20, fake.process)
        await upstream._healthy(hub.port, "/healthz", 60, hub.process)
        direct = await upstream.closed_loop(
            "direct", fake.port, upstream.direct_request, 1, tasks, {}
        )
        await upstream.closed_loop(
            "warm", hub.port, loopbench.openai_request, 4, 100, loopbench.AUTH
        )
        sample = proccpu.Sample(hub.process.pid).start()
        fake_before = proccpu.tree_cpu(fake.process.pid)
        result = await upstream.closed_loop(
            "hub", hub.port, loopbench.openai_request, 1, tasks, loopbench.AUTH
        )
        cpu = sample.since()
        fake_cpu = proccpu.tree_cpu(fake.process.pid) - fake_before
        done = max(len(result.latencies), 1)
        return {
            "delay_ms": delay * 1000,
            "direct_p50_ms": round(direct.percentile(50), 2),
            "overhead_p50_ms": round(result.percentile(50) - direct.percentile(50), 2),
            "loop_cpu_ms": round(cpu["loop_cpu_s"] * 1000 / done, 3),
            "tree_cpu_ms": round(cpu["tree_cpu_s"] * 1000 / done, 3),
            "fake_cpu_ms": round(fake_cpu * 1000 / done, 3),
            "errors": len(result.errors),
        }
    finally:
        hub.stop()
        fake.stop()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="imagehub-idle-") as tmp:
        for delay in args.delays:
            row = await one_delay(delay / 1000, args.tasks, Path(tmp))
            row["loadavg"] = float(os.getloadavg()[0])
            print(json.dumps(row), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--delays", type=float, nargs="+", default=[0, 5, 20, 50], help="ms")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
