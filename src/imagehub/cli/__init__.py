"""The `imagehub` command."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagehub.cli import heap
from imagehub.cli import keys as cli_keys
from imagehub.cli.client import add_commands as add_client_commands
from imagehub.cli.commands import Exit

if TYPE_CHECKING:  # the server's modules load only for `serve`: the client commands lack them
    from imagehub.settings import Settings


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:  # a closed pipe shows here (`--help` included), not at exit with a traceback
            sys.stdout.flush()
    except BrokenPipeError:
        # nothing more can be printed; Python would report it again flushing stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return Exit.PIPE_CLOSED


def _main(argv: list[str] | None) -> int:
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
    serve.add_argument(
        "--workers",
        type=int,
        help="processes on the port, each the API and a worker (default 1; see docs/scale-out)",
    )
    # a child of `serve --workers N`: its listening socket and wake-up relay, as fds
    serve.add_argument("--child", help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)
    routes = commands.add_parser("routes", help="list the upstream routes of every model")
    routes.add_argument(
        "--check-live",
        action="store_true",
        help="also call each route once with its credentials (a cheap call, no image)",
    )
    routes.set_defaults(run=_routes)
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
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from imagehub.api import create_app
        from imagehub.cli.server import uvicorn_options
        from imagehub.wiring import build_hub
    except ImportError as exc:  # a client-only install: the base package is the SDK and CLI
        print(f"imagehub serve needs the server extra ({exc}):", file=sys.stderr)
        print("    python -m pip install 'imagehub[server]'", file=sys.stderr)
        return 2

    from imagehub.logs import uvicorn_log_config
    from imagehub.routing.config import RoutesConfigError, log_routes

    settings = _settings(args)
    if args.child:
        return _serve_child(args, settings)
    if settings.workers > 1 and settings.store_url == "memory://":
        print("error: --workers needs a store the processes share, not memory://", file=sys.stderr)
        return 2
    _logging(args.log_level, settings)
    busy = _port_in_use(settings.host, settings.port)
    if busy:  # before any side effect: no database made, no admin key printed for nothing
        print(f"error: {busy}", file=sys.stderr)
        return 2
    try:
        hub = build_hub(settings, run_worker=not args.no_worker)
    except RoutesConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log_routes(hub.router, hub.catalog, logging.getLogger("imagehub"))
    created = asyncio.run(hub.bootstrap())
    if created:
        print(
            "Created the admin API key. It is shown only this once; keep it safe:\n\n"
            f"    {created}\n",
            file=sys.stderr,
            flush=True,
        )
    if settings.workers > 1:
        return _serve_processes(args, settings)
    app = create_app(settings, hub=hub)
    heap.settle()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        log_config=uvicorn_log_config(settings.log_format),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
        **uvicorn_options(settings),
    )
    return 0


def _serve_processes(args: argparse.Namespace, settings: Settings) -> int:
    """Run `settings.workers` children on the port (`cli.processes`), bootstrap done."""
    from imagehub.cli.processes import Supervisor, listening_socket

    sockets = [listening_socket(settings.host, settings.port) for _ in range(settings.workers)]
    forwarded = ["--host", settings.host, "--port", str(settings.port)]
    forwarded += ["--data-dir", str(settings.data_dir), "--log-level", args.log_level]
    if args.no_worker:
        forwarded.append("--no-worker")

    def command(listen_fd: int, relay_fd: int) -> list[str]:
        child = ["--child", f"{listen_fd},{relay_fd}"]
        return [sys.executable, "-m", "imagehub.cli", "serve", *forwarded, *child]

    postgres = settings.store_url.startswith(("postgresql://", "postgres://"))
    supervisor = Supervisor(
        command,
        sockets,
        relay=not postgres and not settings.redis_url,
        stop_seconds=settings.shutdown_grace_seconds + 5,
    )
    return asyncio.run(supervisor.run())


def _serve_child(args: argparse.Namespace, settings: Settings) -> int:
    """One process of `serve --workers N`: the API and a worker on the parent's socket."""
    from imagehub.api import create_app
    from imagehub.cli.server import serve_child
    from imagehub.wiring import build_hub

    # the parent migrated: children only check the schema (SQLite finds nothing to do)
    settings = settings.model_copy(update={"migrate_on_start": False})
    _logging(args.log_level, settings)
    listen_fd, relay_fd = (int(fd) for fd in args.child.split(","))
    sock = socket.socket(fileno=listen_fd)
    relay = socket.socket(fileno=relay_fd) if relay_fd >= 0 else None
    hub = build_hub(settings, run_worker=not args.no_worker, relay=relay)
    app = create_app(settings, hub=hub)
    heap.settle()
    serve_child(app, settings, args.log_level, sock)
    return 0


def _port_in_use(host: str, port: int) -> str | None:
    """Why `serve` cannot listen on host:port, or None when it can.

    A trial bind, as uvicorn binds (SO_REUSEADDR: a port left in TIME_WAIT is free; Linux still
    refuses one another process listens on), released at once for uvicorn to take.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as trial:
        trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            trial.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (another imagehub serve?); "
                    "stop that process, or choose another port with --port or IMAGEHUB_PORT"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _worker(args: argparse.Namespace) -> int:
    from imagehub.cli.worker import run_on_uvloop, run_worker_process
    from imagehub.routing.config import RoutesConfigError, log_routes
    from imagehub.wiring import build_hub

    settings = _settings(args)
    _logging(args.log_level, settings)
    try:
        hub = build_hub(settings)
    except RoutesConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log_routes(hub.router, hub.catalog, logging.getLogger("imagehub"))
    heap.settle()
    run_on_uvloop(run_worker_process(hub))
    return 0


def _logging(level: str, settings: Settings) -> None:
    from imagehub import logs
    from imagehub.outbound.client import quiet_url_logs

    logs.configure(level, settings.log_format)
    quiet_url_logs()


def _migrate(args: argparse.Namespace) -> int:
    from imagehub.store import migrate

    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    settings = _settings(args)
    version = asyncio.run(migrate(settings.store_url))
    print(f"database schema at version {version}")
    return 0


_ROUTE_COLUMNS = ("model", "route", "provider", "upstream_model", "priority", "weight",
                  "max_concurrency", "timeout", "base_url")  # fmt: skip


def _routes(args: argparse.Namespace) -> int:
    from imagehub.catalog import Catalog
    from imagehub.routing.config import RoutesConfigError, build_router
    from imagehub.routing.router import check_live, describe

    catalog = Catalog.load()
    try:
        router = build_router(_settings(args), catalog)
    except RoutesConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = describe(router, catalog)
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in _ROUTE_COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in _ROUTE_COLUMNS).rstrip())
    for row in rows:
        print("  ".join(row.get(c, "").ljust(widths[c]) for c in _ROUTE_COLUMNS).rstrip())
    if not args.check_live:
        return 0
    results = asyncio.run(_check(router, check_live))
    print()
    for name, ok, said in results:
        print(f"{'ok    ' if ok else 'FAILED'} {name}: {said}")
    return 0 if all(ok for _, ok, _ in results) else 1


async def _check(router: Any, check_live: Any) -> list[tuple[str, bool, str]]:
    try:
        results: list[tuple[str, bool, str]] = await check_live(router)
        return results
    finally:
        for provider in router.providers():
            await provider.aclose()
