"""How `imagehub serve` runs uvicorn: bounded request heads, no connection held for free, and a
response in one write.

uvicorn's httptools protocol reads request lines and headers of any size and, on a new
connection, waits for the first bytes forever. `guarded_protocol` adds both limits:
`IMAGEHUB_MAX_HEADER_BYTES` for the request line and headers (431 past it) and
`IMAGEHUB_HEADER_TIMEOUT_SECONDS` to send them (408 and the connection closed). Bodies have
their own deadline in the app (`api.errors.BodyLimit`), idle keep-alive connections uvicorn's
`timeout_keep_alive`. `OneWrite` sends a response's head with its body.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from imagehub.cli.worker import run_on_uvloop
from imagehub.settings import Settings

_HEAD_TOO_LARGE = b"Request line and headers too large"
_HEAD_TOO_SLOW = b"Request line and headers not received in time"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run's options for the client-facing limits of the settings."""
    return {
        "http": guarded_protocol(settings.max_header_bytes, settings.header_timeout_seconds),
        "timeout_keep_alive": settings.keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }


def serve_child(app: Any, settings: Settings, log_level: str, sock: socket.socket) -> None:
    """Serve `app` on a listening socket the `serve --workers N` parent handed down."""
    from imagehub.cli.processes import watch_parent
    from imagehub.logs import uvicorn_log_config

    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=uvicorn_log_config(settings.log_format),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True

    async def main() -> None:
        watcher = asyncio.create_task(watch_parent(stop))
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.cancel()

    run_on_uvloop(main())


def guarded_protocol(max_head_bytes: int, head_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class, with these limits, for uvicorn's `http` option."""
    attributes = {"max_head_bytes": max_head_bytes, "head_timeout": head_timeout}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), attributes)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size cap and a deadline on each request's head."""

    max_head_bytes = 32768
    head_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_too_large = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = cast("asyncio.Transport", OneWrite(transport, self.loop))
        self._arm()  # a connection that never sends a byte is dropped too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:  # raised from on_url/on_header: say what it was
            self._refuse(b"431 Request Header Fields Too Large", _HEAD_TOO_LARGE)
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            raise ValueError("request head too large")  # the parser fails: send_400_response

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._refuse(b"408 Request Timeout", _HEAD_TOO_SLOW)

    def _refuse(self, status: bytes, message: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + message
        )
        self.transport.close()


class OneWrite:
    """A connection's transport that sends a response's head with its first body bytes.

    uvicorn writes the head and the body in two calls: two system calls, two TCP segments and
    two wake-ups of the client where one does. A small write is held until the next write, the
    connection's close, or the event loop's next turn (what streams a response, or a head
    whose body is still being made, waits at most), and the two go out in one `writelines`.
    """

    HELD_BYTES = 16384

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._transport.writelines([held, data])
        elif len(data) <= self.HELD_BYTES and not self._transport.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def writelines(self, data: Any) -> None:
        self.write(b"".join(data))

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
