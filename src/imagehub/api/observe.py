"""Every request gets an id and, when tracing is on, a server span: pure ASGI, kept small.

The id is the client's `X-Request-Id` when it is sane (1-128 characters of a safe set), else a
new one; it goes back on every response and on every log line of the request. The span
continues the client's W3C `traceparent` when it sends one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from imagehub import logs
from imagehub.tasks import random_hex
from imagehub.tracing import Span, Tracing

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._~:+=/-]{1,128}")


def request_id(value: bytes | None) -> str:
    """The client's id when it is sane, else a new one (32 hex digits)."""
    if value is not None and _SANE.fullmatch(value):
        return value.decode("ascii")
    return random_hex(16)


class Observe:
    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent, parent = None, None
        for name, value in scope["headers"]:
            if name == HEADER:
                sent = value
            elif name == b"traceparent":
                parent = value.decode("latin-1")
        rid = request_id(sent)
        token = logs.request_id.set(rid)
        try:
            if not self.tracing.enabled:  # the fast path: the header, nothing else
                await self.app(scope, receive, _with_id(send, rid, None))
                return
            method = scope["method"]
            attributes = {"http.request.method": method, "url.path": scope["path"]}
            with self.tracing.span(method, attributes, parent=parent, kind="server") as span:
                span.set("imagehub.request_id", rid)
                try:
                    await self.app(scope, receive, _with_id(send, rid, span))
                finally:
                    route = getattr(scope.get("route"), "path", None)
                    if isinstance(route, str):
                        span.set("http.route", route)
                        span.rename(f"{method} {route}")
        finally:
            logs.request_id.reset(token)


def _with_id(send: Send, rid: str, span: Span | None) -> Send:
    header = (b"x-request-id", rid.encode("ascii"))

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
            if span is not None:
                status = int(message["status"])
                span.set("http.response.status_code", status)
                if status >= 500:
                    span.fail(str(status))
        await send(message)

    return sending
