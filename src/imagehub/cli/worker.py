"""The worker-only process behind `imagehub worker`: the claim loop without HTTP.

The first SIGTERM or SIGINT stops claiming and gives running tasks the shutdown grace period
to finish; a second one stops at once, handing every running task back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from imagehub.hub import Hub

log = logging.getLogger("imagehub.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

T = TypeVar("T")


def run_on_uvloop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop, as uvicorn runs `serve` (plain asyncio without it)."""
    try:
        import uvloop
    except ImportError:  # uvloop is optional (uvicorn[standard] brings it)
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def run_worker_process(hub: Hub) -> None:
    """Run `hub`'s worker until a stop signal; `hub` must have been built with a worker."""
    worker = hub.worker
    if worker is None:
        raise ValueError("this hub runs no worker")
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal() -> None:
        if not stopping.is_set():
            log.info(
                "stopping: running tasks get %.0f s to finish (signal again to stop now)",
                worker.grace_seconds,
            )
            stopping.set()
        else:
            log.warning("stopping now: running tasks go back to the queue")
            worker.abort()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal)
    exporter = _serve_metrics(hub)
    try:
        await hub.start()
        log.info("worker %s running, up to %d tasks at once", worker.owner, worker.concurrency)
        await stopping.wait()
        await hub.stop()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        if exporter is not None:
            exporter.shutdown()
    log.info("worker %s stopped", worker.owner)


def _serve_metrics(hub: Hub) -> WSGIServer | None:
    """Prometheus `/metrics` of this process on `IMAGEHUB_METRICS_PORT`, if set."""
    port = hub.settings.metrics_port
    if port is None:
        return None
    server, _ = start_http_server(port, addr=hub.settings.host, registry=hub.metrics.registry)
    log.info("metrics on http://%s:%d/metrics", hub.settings.host, port)
    return server
