"""Wake-ups between the processes of one `imagehub serve --workers N`, with no database engine.

SQLite has no LISTEN/NOTIFY, and the processes of one `serve` share a machine and a parent:
the parent gives each child one end of a Unix datagram socket pair and relays what a child
sends to every other child (`Relay`). A child's `LocalBroadcast` is a `Broadcast` like the
PostgreSQL and Redis ones. Datagrams keep message boundaries, need no framing, and a full
buffer drops a hint instead of blocking anyone: hints are best effort, every waiter also polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

log = logging.getLogger("imagehub.wakeups.local")

#: larger than any message `shared.encode` makes
MAX_DATAGRAM = 65536


def pair() -> tuple[socket.socket, socket.socket]:
    """(the parent's end, the child's end) of one child's channel; the child's is inheritable."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    parent.setblocking(False)
    child.set_inheritable(True)
    return parent, child


class LocalBroadcast:
    """A child's side: send to the parent, receive what the other children sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        #: set while receiving (tests wait for it, as for the other broadcasts)
        self.listening = asyncio.Event()

    async def start(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        def readable() -> None:
            while True:
                try:
                    data = self.sock.recv(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # the parent is gone: nothing more will come
                    log.warning("wake-up relay closed: %s", exc)
                    asyncio.get_running_loop().remove_reader(self.sock.fileno())
                    self.listening.clear()
                    return
                if not data:
                    return
                on_message(data.decode())

        asyncio.get_running_loop().add_reader(self.sock.fileno(), readable)
        self.listening.set()

    async def publish(self, messages: list[str]) -> None:
        for message in messages:
            try:
                self.sock.send(message.encode())
            except BlockingIOError:
                log.debug("wake-up relay full; hint dropped")  # the poll covers it

    async def close(self) -> None:
        if self.listening.is_set():
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.listening.clear()
        self.sock.close()


class Relay:
    """The parent's side: every datagram a child sends goes to every other child."""

    def __init__(self) -> None:
        self._ends: dict[int, socket.socket] = {}

    def add(self, slot: int, end: socket.socket) -> None:
        """Relay for the child in `slot` (replacing a previous child's end)."""
        self.remove(slot)
        self._ends[slot] = end
        asyncio.get_running_loop().add_reader(end.fileno(), self._forward, slot)

    def remove(self, slot: int) -> None:
        end = self._ends.pop(slot, None)
        if end is not None:
            asyncio.get_running_loop().remove_reader(end.fileno())
            end.close()

    def close(self) -> None:
        for slot in list(self._ends):
            self.remove(slot)

    def _forward(self, slot: int) -> None:
        source = self._ends.get(slot)
        if source is None:
            return
        while True:
            try:
                data = source.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # that child is gone; the supervisor replaces its end
            for other, end in self._ends.items():
                if other != slot:
                    with contextlib.suppress(OSError):  # full or gone: a lost hint
                        end.send(data)
