"""A worker process whose every model is served by a scripted fake upstream (tests only).

Like `imagehub worker` (same settings, same signals), but the upstream is
`imagehub.testing.ScriptedProvider` with a delay, and every upstream call is logged:

    python -m tests.fault.worker_entry --delay 0.05 --calls-log calls.txt
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from imagehub.cli.worker import run_worker_process
from imagehub.providers import GenerationRequest, GenerationResult
from imagehub.routing import Router
from imagehub.settings import Settings
from imagehub.testing import ScriptedProvider
from imagehub.wiring import build_hub


class _Forget(list[Any]):
    """ScriptedProvider records every request; a long run should not grow memory with it."""

    def append(self, item: Any) -> None:
        pass


class LoggedProvider(ScriptedProvider):
    """Appends each call's prompt to a file before answering: the upstream's own ledger."""

    calls_log: Path | None = None

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.calls_log is not None:
            with self.calls_log.open("a") as log:
                log.write(request.params["prompt"] + "\n")
        return await super().generate(request)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.05, help="upstream delay, seconds")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--calls-log", type=Path)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides: dict[str, Any] = {"demo": False}
    if args.concurrency:
        overrides["worker_concurrency"] = args.concurrency
    provider = LoggedProvider(delay=args.delay, requests=_Forget())
    provider.calls_log = args.calls_log
    hub = build_hub(Settings(**overrides), router=Router({}, fallback=provider))
    asyncio.run(run_worker_process(hub))


if __name__ == "__main__":
    main()
