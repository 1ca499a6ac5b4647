"""A real HTTP/1.1 server on loopback whose every answer is scripted by the test.

It runs on the test's own event loop (asyncio streams), records every request, and can answer
in ways a framework would not let it: hang, reset the connection, or cut a body short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    #: when it arrived (loop time)
    at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> list[tuple[str, str | None, str, bytes]]:
        """Multipart parts: (field name, file name, content type, bytes), in order."""
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        parts = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            ctype = part.get_content_type() if part.get("content-type") else ""
            parts.append((str(name), part.get_filename(), ctype, payload))
        return parts


@dataclass
class Reply:
    status: int = 200
    #: dict or list: sent as JSON; bytes: sent as they are
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Hang:
    """Read the request, then answer nothing for `seconds`."""

    seconds: float = 30.0


@dataclass
class Reset:
    """Read the request, then reset the connection (TCP RST)."""


@dataclass
class Truncate:
    """Announce the whole body, send half of it, close."""

    body: bytes
    status: int = 200


@dataclass
class Chunked:
    """Send the body in chunks, without a Content-Length."""

    body: bytes
    status: int = 200
    chunk: int = 16 * 1024


@dataclass
class Stream:
    """Answer 200 with a server-sent event stream (chunked, `text/event-stream`), event by event.

    Before the event numbered `hold_before` it waits for `gate` (set by the test, from any
    thread through its loop); with `cut_inside`, it sends half of that event and closes the
    connection without ending the chunked body.
    """

    events: list[bytes]
    gate: asyncio.Event | None = None
    hold_before: int | None = None
    cut_inside: int | None = None
    #: large events go out in pieces of this size, as a network delivers them
    chunk: int = 64 * 1024
    #: when given, the loop time at which each event was fully written (bench/partials.py)
    sent: list[float] | None = None


Action = Reply | Hang | Reset | Truncate | Chunked | Stream
Handler = Callable[[Seen], Action]


def _not_scripted(seen: Seen) -> Action:
    return Reply(599, {"error": f"the test scripted no answer for {seen.method} {seen.path}"})


class FakeUpstream:
    """Answers with the scripted actions first (one per request), then with `handler`."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler = handler or _not_scripted
        self.script: list[Action | Handler] = []
        self.seen: list[Seen] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def then(self, *actions: Action | Handler) -> FakeUpstream:
        self.script.extend(actions)
        return self

    async def start(self) -> FakeUpstream:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for runner in list(self._connections):
            runner.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def requests(self, method: str | None = None, path_part: str = "") -> list[Seen]:
        return [
            s for s in self.seen if (method is None or s.method == method) and path_part in s.path
        ]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        runner = asyncio.current_task()
        assert runner is not None
        self._connections.add(runner)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._connections.discard(runner)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        seen = await _read_request(reader)
        if seen is None:
            return False
        self.seen.append(seen)
        step = self.script.pop(0) if self.script else self.handler
        action = step(seen) if callable(step) else step
        return await _answer(action, writer)


async def _read_request(reader: asyncio.StreamReader) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    url = urlsplit(target)
    at = asyncio.get_running_loop().time()
    return Seen(method, url.path, parse_qs(url.query), headers, body, at)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            await reader.readline()
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readline()


async def _answer(action: Action, writer: asyncio.StreamWriter) -> bool:
    """Carry out one action; return whether the connection stays open."""
    if isinstance(action, Hang):
        await asyncio.sleep(action.seconds)
        return False
    if isinstance(action, Reset):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False
    if isinstance(action, Truncate):
        writer.write(_head(action.status, len(action.body), {"content-type": "application/json"}))
        writer.write(action.body[: len(action.body) // 2])
        await writer.drain()
        return False
    if isinstance(action, Stream):
        return await _stream(action, writer)
    if isinstance(action, Chunked):
        head = f"HTTP/1.1 {action.status} Scripted\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head.encode("latin-1"))
        for start in range(0, len(action.body), action.chunk):
            piece = action.body[start : start + action.chunk]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True
    if action.delay:
        await asyncio.sleep(action.delay)
    body = action.body
    headers = dict(action.headers)
    if not isinstance(body, bytes):
        body = b"" if body is None else json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    writer.write(_head(action.status, len(body), headers) + body)
    await writer.drain()
    return True


async def _stream(action: Stream, writer: asyncio.StreamWriter) -> bool:
    head = (
        "HTTP/1.1 200 Scripted\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    writer.write(head.encode("latin-1"))
    await writer.drain()
    for number, event in enumerate(action.events):
        if number == action.hold_before and action.gate is not None:
            await action.gate.wait()
        body = event[: len(event) // 2] if number == action.cut_inside else event
        for start in range(0, len(body), action.chunk):
            piece = body[start : start + action.chunk]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        if number == action.cut_inside:
            return False  # closed with the body unfinished
        if action.sent is not None:
            action.sent.append(asyncio.get_running_loop().time())
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


def _head(status: int, length: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Scripted", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
