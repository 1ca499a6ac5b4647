"""What the clients add on top of the hub: one task at a time, submit to images in hand.

Against a running hub (bench/serve.py: a scripted provider, so the hub's own overhead is all
there is), it measures per task, sequentially:

  raw      POST with Prefer: wait=30 through httpx (the floor)
  sdk      imagehub.client.Client.generate
  openai   the official openai package on /v1/images/generations (b64_json)
  cli      `python -m imagehub.cli generate --json` as a new process (start-up included)

    .venv/bin/python bench/serve.py --port 8765 &
    .venv/bin/python bench/clients.py --url http://127.0.0.1:8765 --tasks 200

Figures (2 cores, Python 3.11, bench/serve.py defaults, 200 tasks, CLI 10):
raw p50 3.2 ms (p95 10.1), sdk p50 3.3 ms (p95 6.4), openai p50 4.3 ms (p95 8.2),
cli p50 265 ms (p95 286, nearly all of it interpreter start-up and imports).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import httpx
import openai

from imagehub.client import Client

BODY = {"model": "nano-banana", "input": {"prompt": "bench"}}


def timed(run: Callable[[], object], count: int) -> dict[str, float]:
    run()  # warm up: connections, imports
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return {
        "tasks": count,
        "p50_ms": round(statistics.median(seconds) * 1000, 2),
        "p95_ms": round(seconds[int(len(seconds) * 0.95) - 1] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8765")
    parser.add_argument("--key", default="ih_bench")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--cli-tasks", type=int, default=10)
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.key}", "Prefer": "wait=30"}
    env = {**os.environ, "IMAGEHUB_URL": args.url, "IMAGEHUB_API_KEY": args.key}
    cli = [sys.executable, "-m", "imagehub.cli", "generate", "-m", "nano-banana", "bench"]
    with (
        httpx.Client(base_url=args.url, headers=headers) as raw,
        Client(args.url, args.key) as sdk,
        openai.OpenAI(base_url=f"{args.url}/v1", api_key=args.key) as compat,
        tempfile.TemporaryDirectory() as folder,
    ):
        results = {
            "raw": timed(
                lambda: raw.post("/hub/v1/tasks", json=BODY).raise_for_status(), args.tasks
            ),
            "sdk": timed(lambda: sdk.generate("nano-banana", prompt="bench"), args.tasks),
            "openai": timed(
                lambda: compat.images.generate(model="nano-banana", prompt="bench"), args.tasks
            ),
            "cli": timed(
                lambda: subprocess.run(
                    [*cli, "--json", "-o", folder], env=env, check=True, capture_output=True
                ),
                args.cli_tasks,
            ),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
