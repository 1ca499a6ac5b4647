"""Wake-ups: who waits for a task to change, and the worker waiting for queued work.

A wake-up is a hint that makes things fast; every waiter also re-reads the store on a timer,
so a change made by another process is seen even without a hint.

A task that reached its final status in this process is also announced to the listeners of
`on_finished` (metrics, the webhook sender): whoever finishes a task tells the notifier, not
the parts that care about it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

from imagehub.imaging import Base64
from imagehub.tasks import Task

#: called with a task that reached its final status in this process
FinishedListener = Callable[[Task], None]
_NONE: Mapping[str, Base64] = MappingProxyType({})


class Watch(asyncio.Event):
    """Set on the next change of a task; carries the task when this process finished it.

    A waiter woken by `task_finished` takes `task` and needs no read of the store; one woken by
    any other change (or by another process) sees None and reads it. `base64` then holds the
    upstream's own base64 of the task's files, by file id, where the worker still had it: an
    answer with the images inline splices it rather than reading and encoding the files. It
    lives as long as the waiter holds it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.task: Task | None = None
        self.base64 = _NONE


class Notifier:
    """In-process wake-ups on asyncio events."""

    def __init__(self) -> None:
        self._watchers: defaultdict[str, set[Watch]] = defaultdict(set)
        #: watchers that only care about a task becoming ready
        self._ready_watchers: defaultdict[str, set[Watch]] = defaultdict(set)
        self._queued = asyncio.Event()
        self._finished: list[FinishedListener] = []

    def task_changed(self, task_id: str, *, ready: bool = True) -> None:
        """Wake the task's watchers; `ready=False` says the change cannot have made it ready."""
        for event in self._watchers.get(task_id, ()):
            event.set()
        if ready:
            for event in self._ready_watchers.get(task_id, ()):
                event.set()

    @contextmanager
    def watch(self, task_id: str, *, ready_only: bool = False) -> Iterator[Watch]:
        """An event set on the next change of the task; subscribe before reading the store.

        With `ready_only`, changes announced as not making the task ready are skipped.
        """
        event = Watch()
        table = self._ready_watchers if ready_only else self._watchers
        watchers = table[task_id]
        watchers.add(event)
        try:
            yield event
        finally:
            watchers.discard(event)
            if not watchers:
                table.pop(task_id, None)

    def on_finished(self, listener: FinishedListener) -> None:
        """Call `listener` with every task this process finishes (succeeded, failed, canceled)."""
        self._finished.append(listener)

    def watched(self, task_id: str) -> bool:
        """Whether anyone in this process waits for the task to change."""
        return task_id in self._watchers or task_id in self._ready_watchers

    def task_finished(self, task: Task, base64: Mapping[str, Base64] = _NONE) -> None:
        """The task reached its final status here (as stored): wake its watchers with it (and
        the upstream's `base64` of its files, see `Watch`), and tell the listeners."""
        for table in (self._watchers, self._ready_watchers):
            for event in table.get(task.id, ()):
                event.task, event.base64 = task, base64
        self.task_changed(task.id)
        for listener in self._finished:
            listener(task)

    def task_queued(self) -> None:
        self._queued.set()

    def nudge(self) -> None:
        """Wake this process's dispatch loop only (a slot freed, or it is stopping)."""
        self._queued.set()

    def wake_all(self) -> None:
        """Wake every waiter of this process: hints were lost, so everyone re-reads the store."""
        for watchers in self._watchers.values():
            for event in watchers:
                event.set()
        self._queued.set()

    async def start(self) -> None:
        """Begin exchanging hints with other processes (in-process: nothing to do)."""

    async def close(self) -> None:
        """Stop exchanging hints with other processes."""

    async def wait_queued(self, seconds: float) -> None:
        """Return when a task was queued since the last call, or after `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queued.wait(), seconds)
        self._queued.clear()
