"""The `imagehub` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagehub import cli_keys
from imagehub.cli_client import add_commands as add_client_commands

if TYPE_CHECKING:  # the server's modules load only for `serve`: the client commands lack them
    from imagehub.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    result: int = args.run(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagehub", description="One asynchronous task API in front of image models."
    )
    commands = parser.add_subparsers(title="commands")
    serve = commands.add_parser("serve", help="run the API and a worker in one process")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--data-dir", type=Path, help="SQLite and media folder (./imagehub-data)")
    serve.add_argument("--no-worker", action="store_true", help="serve the API only")
    serve.add_argument("--log-level", default="info", help="debug, info, warning or error")
    serve.set_defaults(run=_serve)
    add_client_commands(commands)
    worker = commands.add_parser(
        "worker", help="run only a worker (no HTTP), next to `serve --no-worker` processes"
    )
    worker.add_argument("--concurrency", type=int, help="tasks run at once (default 64)")
    worker.add_argument("--data-dir", type=Path, help="SQLite and media folder (./imagehub-data)")
    worker.add_argument("--log-level", default="info", help="debug, info, warning or error")
    worker.set_defaults(run=_worker)
    migrate = commands.add_parser("migrate", help="bring the database schema up to date in place")
    migrate.add_argument("--data-dir", type=Path, help="SQLite and media folder (./imagehub-data)")
    migrate.set_defaults(run=_migrate)
    cli_keys.add_commands(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from imagehub.settings import Settings

    overrides: dict[str, Any] = {
        name: value
        for name in ("host", "port", "data_dir")
        if (value := getattr(args, name, None)) is not None
    }
    if getattr(args, "concurrency", None) is not None:
        overrides["worker_concurrency"] = args.concurrency
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from imagehub.api import create_app
        from imagehub.hub import Hub
        from imagehub.serving import uvicorn_options
    except ImportError as exc:  # a client-only install: the base package is the SDK and CLI
        print(f"imagehub serve needs the server extra ({exc}):", file=sys.stderr)
        print("    python -m pip install 'imagehub[server]'", file=sys.stderr)
        return 2

    _logging(args.log_level)
    settings = _settings(args)
    hub = Hub.from_settings(settings, run_worker=not args.no_worker)
    created = asyncio.run(_bootstrap(hub))
    if created:
        print(
            "Created the admin API key. It is shown only this once; keep it safe:\n\n"
            f"    {created}\n",
            file=sys.stderr,
            flush=True,
        )
    app = create_app(settings, hub=hub)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
        **uvicorn_options(settings),
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from imagehub.hub import Hub
    from imagehub.service import run_worker_process

    _logging(args.log_level)
    asyncio.run(run_worker_process(Hub.from_settings(_settings(args))))
    return 0


def _logging(level: str) -> None:
    from imagehub.safehttp import quiet_url_logs

    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_url_logs()


def _migrate(args: argparse.Namespace) -> int:
    from imagehub.store import migrate

    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    settings = _settings(args)
    version = asyncio.run(migrate(settings.store_url))
    print(f"database schema at version {version}")
    return 0


async def _bootstrap(hub: Any) -> str | None:
    await hub.store.open()
    try:
        created: str | None = await hub.ensure_admin_key()
        return created
    finally:
        await hub.store.close()


if __name__ == "__main__":
    sys.exit(main())
