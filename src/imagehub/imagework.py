"""CPU-heavy image work (demo drawing, transcodes, input decoding and shrinking, uploads, previews)
off the event loop.

Pillow holds the GIL through much of its work, so a thread in the API's process still takes the
event loop's core: with thousands of demo tasks queued, reads of the API would wait behind the
drawing. `ImageWork` runs such functions in a small pool of worker processes instead, with two
bounds: at most a few calls handed to the pool at once (the others wait here, as coroutines,
without their arguments pickled into the pool's queue), and at most `budget_pixels` decoded pixels
in flight, so many large images at once queue instead of multiplying the memory.

With `processes=0` the calls run on a thread of this process (tests, the in-memory hub).
A worker process that dies (killed, out of memory) fails the calls it had with `WorkerCrashed`,
which the task retries; the pool is started again for the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from imagehub.errors import WorkerCrashed
from imagehub.imaging import PixelBudget

__all__ = ["ImageWork", "WorkerCrashed"]

log = logging.getLogger("imagehub.imagework")
T = TypeVar("T")

#: what each worker process imports once, before it forks the workers (spawn-safe, no threads)
_PRELOAD = ["imagehub.imaging"]


def _call(
    fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[T, int, float]:
    """Run in the worker: the value, the worker's pid, and the CPU seconds the call took."""
    started = time.thread_time()
    value = fn(*args, **kwargs)
    return value, os.getpid(), time.thread_time() - started


#: how much lower the workers' CPU priority is than the API's: on a busy machine the event
#: loop gets the core first, and image work takes what is left
_NICENESS = 10


def _worker_started() -> None:
    """In each worker: a lower CPU priority, and no Ctrl-C (it goes to the whole process group,
    but the hub stops its workers itself; a worker killed by it would fail the calls it has)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(_NICENESS)
    hub = multiprocessing.parent_process()
    if hub is not None:
        threading.Thread(
            target=_exit_with, args=(hub.sentinel,), name="imagehub-hub-watch", daemon=True
        ).start()


def _exit_with(sentinel: int) -> None:
    """End this worker once the hub's process has ended without stopping it (killed, out of
    memory): it would wait for work forever, and keep the fork server alive with it."""
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


class ImageWork:
    """A bounded pool for CPU-heavy image functions, with a budget of pixels in flight."""

    def __init__(self, *, processes: int, budget_pixels: int, threads: int = 2) -> None:
        #: worker processes (0: threads of this process)
        self.processes = processes
        self.budget = PixelBudget(budget_pixels)
        #: calls handed to the pool at once: two per process, one runs while the next one's
        #: arguments are on their way
        self.capacity = max(1, processes * 2 if processes else threads)
        self._slots = asyncio.Semaphore(self.capacity)
        self._threads = threads
        self._executor: Executor | None = None
        #: held while a pool starts (on a thread) or stops
        self._starting = threading.Lock()
        #: calls finished, by function name
        self.calls: Counter[str] = Counter()
        #: CPU seconds spent, by function name (the worker's own clock)
        self.cpu_seconds: dict[str, float] = {}
        #: the processes that ran calls (this process's pid with threads)
        self.pids: set[int] = set()
        #: worker processes that died under a call
        self.crashes = 0

    async def run(self, fn: Callable[..., T], *args: Any, pixels: int = 0, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in a worker, once `pixels` fit in the budget.

        `fn` and its arguments must pickle (a module-level function, plain data). Its exceptions
        reach the caller as they are; a worker that died raises `WorkerCrashed`.
        """
        loop = asyncio.get_running_loop()
        async with self.budget.hold(pixels), self._slots:
            executor = self._executor
            try:
                if executor is None:
                    # started on a thread: a process spawn waits for the fork server (its
                    # imports), up to a second that would stall every request on the loop
                    executor = await asyncio.to_thread(self._started)
                value, pid, cpu = await loop.run_in_executor(executor, _call, fn, args, kwargs)
            except BrokenProcessPool:
                if executor is not None:
                    self._restart(executor)
                raise WorkerCrashed(
                    "A process drawing or converting the task's images stopped abruptly "
                    "(killed or out of memory)."
                ) from None
        name = getattr(fn, "__qualname__", repr(fn))
        self.calls[name] += 1
        self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu
        self.pids.add(pid)
        return value

    def worker_pids(self) -> list[int]:
        """The pids of the live worker processes (none before the first call, or with threads)."""
        executor = self._executor
        if not isinstance(executor, ProcessPoolExecutor):
            return []
        processes = getattr(executor, "_processes", None) or {}
        return list(processes)

    def close(self) -> None:
        """Stop the workers; calls not started are canceled. Safe to call twice."""
        with self._starting:  # a pool being started is stopped once it is
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _started(self) -> Executor:
        """The pool, started with all its processes (on a thread: it blocks)."""
        with self._starting:
            if self._executor is None:
                self._executor = self._start()
            return self._executor

    def _start(self) -> Executor:
        if self.processes > 0:
            context = multiprocessing.get_context("forkserver")
            # the server imports these once; each worker forks from it ready to draw
            context.set_forkserver_preload(_PRELOAD)
            pool = ProcessPoolExecutor(
                self.processes, mp_context=context, initializer=_worker_started
            )
            # a pool spawns a process at a call that finds none idle: spawn them all here
            try:
                for started in [pool.submit(os.getpid) for _ in range(self.processes)]:
                    started.result()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            return pool
        return ThreadPoolExecutor(self._threads, thread_name_prefix="imagehub-imagework")

    def _restart(self, broken: Executor) -> None:
        """Drop a broken pool (once, however many calls it failed); the next call starts one."""
        if self._executor is broken:
            self.crashes += 1
            log.warning("an image worker process died; starting the pool again")
            self._executor = None
            with contextlib.suppress(Exception):
                broken.shutdown(wait=False, cancel_futures=True)
