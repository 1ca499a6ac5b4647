"""One run of a coroutine function at a time, shared by every caller that asks meanwhile.

For readings that many requests may find stale at the same moment (the estimates' journal, an
OAuth token). A lock would do it too, but a released `asyncio.Lock` wakes its waiters one turn
of the event loop after another: with 64 submits in flight a turn lasted ~25 ms, and the last
of a dozen waiters waited ~300 ms. The callers here all wait on one future and all resume in
the same turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class SingleFlight(Generic[T]):
    def __init__(self, fn: Callable[[], Awaitable[T]], name: str) -> None:
        self._fn = fn
        #: what the run reads, for the log line of a run that failed
        self.name = name
        self._running: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        # a caller that gives up (cancelled) does not cancel the run the others wait for
        return await asyncio.shield(self.start())

    def start(self) -> asyncio.Future[T]:
        """The run going on, started if none is: to wait for, or not."""
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._fn())
            running.add_done_callback(self._ended)
        return running

    def _ended(self, running: asyncio.Future[T]) -> None:
        if self._running is running:
            self._running = None
        if not running.cancelled() and running.exception() is not None:
            # said here too: a run started without a waiter has nobody else to say it
            log.warning("%s failed: %s", self.name, running.exception())
