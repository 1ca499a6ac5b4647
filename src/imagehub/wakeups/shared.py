"""Wake-ups across processes: a `Notifier` whose hints also reach every other hub process.

A hint says "task X changed" or "a task was queued". It makes waiters (`?wait=`, `Prefer:
wait`, the event stream) and idle workers react at once to a change made by another process;
it is never relied on: every waiter re-reads the store on a jittered timer anyway, and after a
listener reconnects (hints may have been lost meanwhile) every waiter re-reads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
from collections.abc import Callable
from typing import Protocol

from imagehub.settings import Settings
from imagehub.wakeups.notifier import Notifier

__all__ = ["Broadcast", "SharedNotifier", "open_notifier"]

log = logging.getLogger("imagehub.wakeups.shared")

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
MAX_MESSAGE_BYTES = 7900
#: a process says it is there at least this often (a hint says it too); heard from no other
#: process for three times this, while listening all along, it is alone
PRESENCE_SECONDS = 5.0


class Broadcast(Protocol):
    """A fan-out channel between hub processes; delivery is best effort."""

    async def start(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        """Listen in the background: `on_message` per message from any process (this one
        included), `on_gap` after a reconnection (messages may have been missed)."""

    async def publish(self, messages: list[str]) -> None: ...

    async def close(self) -> None: ...


class SharedNotifier(Notifier):
    """In-process wake-ups, plus the same hints published to and received from other processes.

    Hints are batched: the first one of a batch waits `batch_seconds` for others (and hints
    raised while a publish is under way go into the next), so a busy process sends one message
    (one NOTIFY, one commit) per batch, never one per task or per waiter. A "queued" hint is
    only sent when this process's worker will not take the task itself (`claims_here`): other
    workers would only race it to the claim, each with a claim that finds nothing.

    A process alone sends no hints (no NOTIFY, no commit per batch): every process says it is
    there on start and every `presence_seconds`, and one that has been listening for three
    times that without hearing another keeps its hints in process until it hears one.
    """

    def __init__(
        self,
        broadcast: Broadcast,
        *,
        batch_seconds: float = 0.0,
        presence_seconds: float = PRESENCE_SECONDS,
    ) -> None:
        super().__init__()
        self.broadcast = broadcast
        self.batch_seconds = batch_seconds
        self.presence_seconds = presence_seconds
        #: whether this process's worker claims a newly queued task itself (set by the wiring)
        self.claims_here: Callable[[], bool] = lambda: False
        self.sender = secrets.token_hex(6)
        self._changed: set[str] = set()
        self._queued_hint = False
        self._pending = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._closing = False
        #: when each other process was last heard from (loop time)
        self._peers: dict[str, float] = {}
        #: since when this process has heard every message (start, or its listener's return)
        self._listening_since = 0.0
        self._last_published = -presence_seconds  # due at once: say so on start

    def task_changed(self, task_id: str, *, ready: bool = True) -> None:
        # other processes learn only "changed": their ready-only waiters re-read once more
        super().task_changed(task_id, ready=ready)
        self._changed.add(task_id)
        self._pending.set()

    def task_queued(self) -> None:
        super().task_queued()
        if not self.claims_here():
            self._queued_hint = True
            self._pending.set()

    async def start(self) -> None:
        self._closing = False
        self._listening_since = asyncio.get_running_loop().time()
        await self.broadcast.start(self._receive, self._gap)
        self._publisher = asyncio.create_task(self._publish_loop(), name="imagehub-broadcast")

    async def close(self) -> None:
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publish_pending()  # the last hints: a worker's final results
            self._closing = True
            # a cancellation landing inside redis-py's publish can be swallowed, and the loop
            # would publish on: cancel until it has ended (the flag ends its loop)
            while not self._publisher.done():
                self._publisher.cancel()
                await asyncio.wait({self._publisher}, timeout=0.5)
            self._publisher = None
        await self.broadcast.close()

    def _gap(self) -> None:
        """The listener is back: others may have come meanwhile, unheard."""
        self._listening_since = asyncio.get_running_loop().time()
        self.wake_all()

    def alone(self) -> bool:
        """Whether no other process listens: none heard for three presence periods, while
        listening all along."""
        since = asyncio.get_running_loop().time() - 3 * self.presence_seconds
        return self._listening_since <= since and all(t <= since for t in self._peers.values())

    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            if loop.time() - self._last_published >= self.presence_seconds:
                self._pending.set()  # time to say this process is there
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.presence_seconds):
                    await self._pending.wait()
            if self.batch_seconds > 0:
                await asyncio.sleep(self.batch_seconds)
            try:
                await self._publish_pending()
            except Exception as exc:
                # a lost hint only delays waiters until their next poll
                log.warning("could not publish wake-ups: %s", exc)
                await asyncio.sleep(random.uniform(0.5, 1.5))

    async def _publish_pending(self) -> None:
        self._pending.clear()
        changed, queued = self._changed, self._queued_hint
        self._changed, self._queued_hint = set(), False
        now = asyncio.get_running_loop().time()
        due = now - self._last_published >= self.presence_seconds
        if due:  # forget the processes that stopped
            gone = now - 3 * self.presence_seconds
            self._peers = {p: t for p, t in self._peers.items() if t > gone}
        if self.alone():  # the hints are for nobody: in-process wake-ups were enough
            changed, queued = set(), False
        if due or changed or queued:
            self._last_published = now
            await self.broadcast.publish(encode(self.sender, queued, changed))

    def _receive(self, message: str) -> None:
        sender, queued, changed = decode(message)
        if sender == self.sender:
            return
        self._peers[sender] = asyncio.get_running_loop().time()
        for task_id in changed:
            Notifier.task_changed(self, task_id)
        if queued:
            Notifier.task_queued(self)


def encode(sender: str, queued: bool, changed: set[str]) -> list[str]:
    """Messages `<sender> <q|-> <task id>...`, each small enough for a NOTIFY."""
    messages, ids = [], sorted(changed)
    while True:
        head = f"{sender} {'q' if queued else '-'}"
        size, batch = len(head), []
        while ids and size + 1 + len(ids[-1]) <= MAX_MESSAGE_BYTES:
            size += 1 + len(ids[-1])
            batch.append(ids.pop())
        messages.append(" ".join([head, *batch]))
        queued = False  # once is enough
        if not ids:
            return messages


def decode(message: str) -> tuple[str, bool, list[str]]:
    sender, flag, *changed = message.split(" ")
    return sender, flag == "q", changed


def open_notifier(settings: Settings, relay: socket.socket | None = None) -> Notifier:
    """The notifier the settings describe: see `Settings.wakeups`.

    `relay` is a child's channel to the other processes of its `serve --workers N`: used
    where the settings choose no engine (`auto` on SQLite), which would leave them in-process.
    """
    choice = settings.wakeups
    postgres = settings.store_url.startswith(("postgresql://", "postgres://"))
    batch = settings.wakeup_batch_seconds
    if choice == "auto":
        choice = "redis" if settings.redis_url else "postgres" if postgres else "off"
    if choice == "redis":
        if not settings.redis_url:
            raise ValueError("IMAGEHUB_WAKEUPS=redis needs IMAGEHUB_REDIS_URL")
        from imagehub.wakeups.redis import RedisBroadcast

        redis = RedisBroadcast(settings.redis_url, settings.wakeup_channel)
        return SharedNotifier(redis, batch_seconds=batch)
    if choice == "postgres":
        if not postgres:
            raise ValueError("IMAGEHUB_WAKEUPS=postgres needs a postgresql:// database URL")
        from imagehub.wakeups.postgres import PostgresBroadcast

        pg = PostgresBroadcast(settings.store_url, settings.wakeup_channel)
        return SharedNotifier(pg, batch_seconds=batch)
    if relay is not None and settings.wakeups == "auto":
        from imagehub.wakeups.local import LocalBroadcast

        return SharedNotifier(LocalBroadcast(relay), batch_seconds=batch)
    return Notifier()
