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
from collections.abc import Callable
from typing import Protocol

from imagehub.settings import Settings
from imagehub.wakeups.notifier import Notifier

__all__ = ["Broadcast", "SharedNotifier", "open_notifier"]

log = logging.getLogger("imagehub.wakeups.shared")

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
MAX_MESSAGE_BYTES = 7900


class Broadcast(Protocol):
    """A fan-out channel between hub processes; delivery is best effort."""

    async def start(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        """Listen in the background: `on_message` per message from any process (this one
        included), `on_gap` after a reconnection (messages may have been missed)."""

    async def publish(self, messages: list[str]) -> None: ...

    async def close(self) -> None: ...


class SharedNotifier(Notifier):
    """In-process wake-ups, plus the same hints published to and received from other processes.

    Hints raised while a publish is under way are batched into the next one, so a busy process
    sends few messages (at most one per batch, never one per waiter).
    """

    def __init__(self, broadcast: Broadcast) -> None:
        super().__init__()
        self.broadcast = broadcast
        self.sender = secrets.token_hex(6)
        self._changed: set[str] = set()
        self._queued_hint = False
        self._pending = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None

    def task_changed(self, task_id: str, *, ready: bool = True) -> None:
        # other processes learn only "changed": their ready-only waiters re-read once more
        super().task_changed(task_id, ready=ready)
        self._changed.add(task_id)
        self._pending.set()

    def task_queued(self) -> None:
        super().task_queued()
        self._queued_hint = True
        self._pending.set()

    async def start(self) -> None:
        await self.broadcast.start(self._receive, self.wake_all)
        self._publisher = asyncio.create_task(self._publish_loop(), name="imagehub-broadcast")

    async def close(self) -> None:
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publish_pending()  # the last hints: a worker's final results
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None
        await self.broadcast.close()

    async def _publish_loop(self) -> None:
        while True:
            await self._pending.wait()
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
        if changed or queued:
            await self.broadcast.publish(encode(self.sender, queued, changed))

    def _receive(self, message: str) -> None:
        sender, queued, changed = decode(message)
        if sender == self.sender:
            return
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


def open_notifier(settings: Settings) -> Notifier:
    """The notifier the settings describe: see `Settings.wakeups`."""
    choice = settings.wakeups
    postgres = settings.store_url.startswith(("postgresql://", "postgres://"))
    if choice == "auto":
        choice = "redis" if settings.redis_url else "postgres" if postgres else "off"
    if choice == "redis":
        if not settings.redis_url:
            raise ValueError("IMAGEHUB_WAKEUPS=redis needs IMAGEHUB_REDIS_URL")
        from imagehub.wakeups.redis import RedisBroadcast

        return SharedNotifier(RedisBroadcast(settings.redis_url, settings.wakeup_channel))
    if choice == "postgres":
        if not postgres:
            raise ValueError("IMAGEHUB_WAKEUPS=postgres needs a postgresql:// database URL")
        from imagehub.wakeups.postgres import PostgresBroadcast

        return SharedNotifier(PostgresBroadcast(settings.store_url, settings.wakeup_channel))
    return Notifier()
