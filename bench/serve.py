"""A real hub server for benchmarks: every model is served by a scripted provider.

The provider returns a small stored PNG (after `--delay` seconds), so what a load test
measures is the hub's own overhead: HTTP, validation, the SQLite store, the worker, media.

    .venv/bin/python bench/serve.py --port 18765 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr

from imagehub.api import create_app
from imagehub.cli.server import uvicorn_options
from imagehub.hub import Hub
from imagehub.routing import Router
from imagehub.settings import Settings
from imagehub.testing import ScriptedProvider
from imagehub.wiring import build_hub


class _Forget(list[Any]):
    """ScriptedProvider records every request; a long bench should not grow memory with it."""

    def append(self, item: Any) -> None:
        pass


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="imagehub bench server (scripted provider)")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--data-dir", type=Path, help="SQLite and media folder (default: temp)")
    parser.add_argument("--delay", type=float, default=0.0, help="provider delay, seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="worker concurrency")
    parser.add_argument("--key", default="ih_bench", help="admin API key")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--rpm", type=int, help="a requests-per-minute limit on the key")
    return parser.parse_args(argv)


async def _bootstrap(hub: Hub, key: str, rpm: int | None) -> None:
    """Store the admin key, as `imagehub serve` does before starting the server."""
    await hub.store.open()
    try:
        await hub.ensure_admin_key()
        if rpm is not None:  # every request then counts against the key's rate, in the store
            record = await hub.authenticate(key)
            await hub.store.set_key_limits(
                record.id, rpm_limit=rpm, concurrency_limit=None, budget_micros=None
            )
    finally:
        await hub.store.close()


def serve(args: argparse.Namespace, data_dir: Path) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=args.port,
        data_dir=data_dir,
        admin_key=SecretStr(args.key),
        worker_concurrency=args.concurrency,
        demo=False,
    )
    provider = ScriptedProvider(delay=args.delay, requests=_Forget())
    hub = build_hub(settings, router=Router({}, fallback=provider))
    asyncio.run(_bootstrap(hub, args.key, args.rpm))
    uvicorn.run(
        create_app(settings, hub=hub),
        host="127.0.0.1",
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
        **uvicorn_options(settings),  # as `imagehub serve` runs: bounded request heads
    )


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    # uvicorn re-raises SIGTERM after its graceful shutdown; exit normally so the temp dir goes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.data_dir is not None:
        serve(args, args.data_dir)
        return
    with tempfile.TemporaryDirectory(prefix="imagehub-bench-") as tmp:
        serve(args, Path(tmp))


if __name__ == "__main__":
    main()
