"""`imagehub serve --workers N`: N processes on one port, each serving the API and running a
worker, so a hub uses more than one core.

What must happen once happens in the parent before any child starts (`cli._serve`): the port
check, the schema migrations, the admin key. The parent then binds one listening socket per
child on the same port (`SO_REUSEPORT`: the kernel spreads new connections over them) and keeps
it, so a restarted child takes over its predecessor's socket and the connections queued in it.
Children share the store as separate processes always could: claims are leased, writes fenced.
Wake-ups cross between them as between any processes: PostgreSQL LISTEN/NOTIFY or Redis; on
SQLite, which has neither, through the parent (`wakeups.local.Relay`).

The first SIGTERM or SIGINT is passed on as SIGTERM to every child, which stops as `serve`
does (requests and running tasks get the grace period); a second one is passed on as SIGINT,
which makes them stop at once. A child that exits on its own is restarted; one that keeps
exiting (`MAX_EXITS` times within `EXIT_WINDOW_SECONDS`) stops the whole server with a message
naming its exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from imagehub.wakeups.local import Relay, pair

log = logging.getLogger("imagehub.serve")

MAX_EXITS = 3
EXIT_WINDOW_SECONDS = 60.0
#: how often the parent looks for exited children
CHECK_SECONDS = 0.2
#: how often a child checks its parent is still there (a killed parent leaves no orphans)
ORPHAN_CHECK_SECONDS = 1.0
#: how long children may take to stop beyond their own grace period before being killed
STOP_MARGIN_SECONDS = 15.0


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A socket listening on host:port beside the others of its server (`SO_REUSEPORT`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@dataclass
class Child:
    slot: int
    process: subprocess.Popen[bytes]
    exits: list[float] = field(default_factory=list)


#: the command of a child given its listening socket's fd and its relay's fd (-1: none)
Command = Callable[[int, int], list[str]]


class Supervisor:
    """Starts, watches, restarts and stops the children of one `serve --workers N`."""

    def __init__(
        self,
        command: Command,
        sockets: list[socket.socket],
        *,
        relay: bool,
        stop_seconds: float,
    ) -> None:
        self.command = command
        self.sockets = sockets
        self.use_relay = relay
        self.stop_seconds = stop_seconds
        self.children: dict[int, Child] = {}
        self.failure: str | None = None
        self._relay: Relay | None = None
        self._stopping: asyncio.Event | None = None
        self._signals = 0

    async def run(self) -> int:
        """Run the children until a stop signal or a failing child; the exit status."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._relay = Relay() if self.use_relay else None
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal)
        try:
            for slot in range(len(self.sockets)):
                self._spawn(slot, [])
            host, port = self.sockets[0].getsockname()[:2]
            where = f"[{host}]" if ":" in host else host
            log.info("serving http://%s:%d with %d processes", where, port, len(self.sockets))
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), CHECK_SECONDS)
                self._check()
            await self._stop_all()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            if self._relay is not None:
                self._relay.close()
            for sock in self.sockets:
                sock.close()
        if self.failure is not None:
            print(f"error: {self.failure}", file=sys.stderr, flush=True)
            return 1
        return 0

    def _spawn(self, slot: int, exits: list[float]) -> None:
        child_end: socket.socket | None = None
        fds = [self.sockets[slot].fileno()]
        if self._relay is not None:
            parent_end, child_end = pair()
            self._relay.add(slot, parent_end)
            fds.append(child_end.fileno())
        try:
            relay_fd = child_end.fileno() if child_end is not None else -1
            process = subprocess.Popen(self.command(fds[0], relay_fd), pass_fds=fds, close_fds=True)
        finally:
            if child_end is not None:
                child_end.close()  # the child has its copy
        self.children[slot] = Child(slot, process, exits)

    def _check(self) -> None:
        assert self._stopping is not None
        for slot, child in list(self.children.items()):
            status = child.process.poll()
            if status is None or self._stopping.is_set():
                continue
            now = time.monotonic()
            exits = [t for t in child.exits if now - t < EXIT_WINDOW_SECONDS] + [now]
            said = _status(status)
            if len(exits) >= MAX_EXITS:
                self.failure = (
                    f"imagehub serve: process {slot + 1} of {len(self.sockets)} "
                    f"(pid {child.process.pid}) {said}, {len(exits)} times within "
                    f"{EXIT_WINDOW_SECONDS:.0f} s; stopping the server (see the log above)"
                )
                self._stopping.set()
                return
            log.warning(
                "process %d (pid %d) %s; starting it again", slot + 1, child.process.pid, said
            )
            self._spawn(slot, exits)

    def _on_signal(self) -> None:
        assert self._stopping is not None
        self._signals += 1
        if self._signals == 1:
            log.info("stopping %d processes", len(self.children))
            self._stopping.set()
        else:  # a second signal: the children stop now, as `serve` does on a second Ctrl-C
            self._send(signal.SIGINT)

    def _send(self, signum: int) -> None:
        for child in self.children.values():
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signum)

    async def _stop_all(self) -> None:
        self._send(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_seconds + STOP_MARGIN_SECONDS
        while any(c.process.poll() is None for c in self.children.values()):
            if time.monotonic() > deadline:
                log.warning("processes still running after %.0f s; killing them", self.stop_seconds)
                self._send(signal.SIGKILL)
                for child in self.children.values():
                    child.process.wait()
                return
            await asyncio.sleep(CHECK_SECONDS)


def _status(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


async def watch_parent(stop: Callable[[], None]) -> None:
    """Call `stop` once this process's parent is gone (a child of a killed `serve`)."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)
        if os.getppid() != parent:
            break
    log.warning("the serve parent process is gone; stopping")
    stop()
