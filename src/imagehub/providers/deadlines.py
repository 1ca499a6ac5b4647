"""Deadlines of upstream calls on a few shared timers.

`asyncio.timeout` arms one loop timer per call, and aiohttp's read timeout one more per
connection, rearmed on every chunk read: about 1.3 KB a call, held for the whole call, a tenth
of what a task in flight costs. Here a deadline is rounded up to a tick (1/16 s) and every call
due in the same tick shares one timer; a call that ends leaves its tick, and a tick left empty
cancels its timer. `within` otherwise behaves as `asyncio.timeout`: the task is cancelled when
the deadline passes, and the block raises `TimeoutError` instead of `CancelledError`.

`covered` tells the HTTP client that the running task's deadline comes first, so that it need
not arm a read timeout of its own.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from types import TracebackType

#: the timers' resolution: a deadline passes at most this late
TICK = 1 / 16

#: per event loop: tick number -> the deadlines due in it, and its timer
_ticks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Tick]] = (
    weakref.WeakKeyDictionary()
)
#: the innermost deadline of each task inside `within`
_current: dict[asyncio.Task[object], Deadline] = {}


class _Tick(set["Deadline"]):
    """The deadlines due in one tick, and the timer that ends them."""

    __slots__ = ("timer",)
    timer: asyncio.TimerHandle


def within(seconds: float) -> Deadline:
    """`async with within(seconds):` as `asyncio.timeout(seconds)`, on a shared timer."""
    loop = asyncio.get_running_loop()
    return Deadline(loop, loop.time() + seconds)


def covered(seconds: float) -> bool:
    """Whether the running task's deadline passes before `seconds` from now (give or take a
    tick): a timeout of that length inside it would never be the one to fire."""
    task = asyncio.current_task()
    deadline = _current.get(task) if task is not None else None
    return deadline is not None and deadline.when <= deadline.loop.time() + seconds + TICK


class Deadline:
    """One `within` block; slotted, as every call in flight holds one."""

    __slots__ = ("_cancelling", "_outer", "_task", "_tick", "expired", "loop", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self.loop = loop
        self.when = when
        self.expired = False

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._outer = _current.get(task)
        _current[task] = self
        number = math.ceil(self.when / TICK)
        ticks = _ticks.get(self.loop)
        if ticks is None:
            ticks = _ticks[self.loop] = {}
        tick = ticks.get(number)
        if tick is None:
            tick = ticks[number] = _Tick()
            tick.timer = self.loop.call_at(number * TICK, _expire, ticks, number)
        tick.add(self)
        self._tick = tick
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tick = self._tick
        tick.discard(self)
        if not tick and not self.expired:  # the last one out: its timer has nothing to end
            tick.timer.cancel()
            ticks = _ticks.get(self.loop)
            if ticks is not None:
                ticks.pop(math.ceil(self.when / TICK), None)
        task = self._task
        if self._outer is None:
            _current.pop(task, None)
        else:
            _current[task] = self._outer
        self._outer = None
        # expired, and no other cancellation under way: the cancellation is this deadline's
        expired = self.expired and task.uncancel() <= self._cancelling
        if expired and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


def _expire(ticks: dict[int, _Tick], number: int) -> None:
    for deadline in ticks.pop(number, ()):
        deadline.expired = True
        deadline._task.cancel()
