"""One run of a coroutine function at a time, shared by every caller that asks meanwhile.

For readings that many requests may find stale at the same moment (the estimates' journal, an
OAuth token). A lock would do it too, but a released `asyncio.Lock` wakes its waiters one turn
of the event loop after another: under load, with each turn tens of milliseconds long, the
last of a few dozen waiters waited a second. The callers here all wait on one future and all
resume in the same turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self, fn: Callable[[], Awaitable[T]]) -> None:
        self._fn = fn
        self._running: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._fn())
            running.add_done_callback(self._ended)
        # a caller that gives up (cancelled) does not cancel the run the others wait for
        return await asyncio.shield(running)

    def _ended(self, running: asyncio.Future[T]) -> None:
        if self._running is running:
            self._running = None
        if not running.cancelled():
            running.exception()  # retrieved here: every waiter may have given up
